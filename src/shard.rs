//! `ShardState`: everything one shard owns, as a plain value with no I/O: the stream views
//! it serves from, its authorizer (decision cache, sessions), the HTTP limits and counters,
//! and a cached `Date` header. The runtime wraps it in `Rc<RefCell<_>>` inside the shard;
//! it is never shared with another thread (other shards talk to it only through
//! `StreamEvent`s and `AuthMsg`s).
//!
//! Its fields are private: callers say what they do (`decide_play`, `count_http_bytes`,
//! `settle_portal_question`, ...), and each method lends the authorizer the catalog itself,
//! so no caller clones the catalog to get around a borrow.

use crate::auth::cache::Grant;
use crate::auth::lookup::{PortalQuestion, RemoteQuestion};
use crate::auth::play::{Access, Attempt, Decision, PlayLifecycle, Step as PlayStep, decide};
use crate::auth::revoke::RevokeTarget;
use crate::auth::session::{SessionId, TokenTag};
use crate::auth::users::UserSessions;
use crate::auth::verdict::{DenyReason, PlayRequest};
use crate::auth::{Authorizer, PortalOutcome, UserEvent};
use crate::catalog::{Catalog, Changes};
use crate::config::{ConnectionCaps, HttpLimits};
use crate::stream::StreamId;
use crate::stream::view::{StreamEvent, StreamView};
use crate::utc::{HTTP_DATE_LEN, http_date};
use std::net::IpAddr;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// How long past the slowest backend's timeout a portal question may stay unanswered
/// before the shard gives up on it (the answer was lost with a shard).
const LOOKUP_GRACE: Duration = Duration::from_secs(2);

/// A moment, both as a monotonic instant (for timeouts) and as wall-clock ms (for names).
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub instant: Instant,
    pub utc_ms: i64,
}

impl Now {
    pub fn read() -> Now {
        Now {
            instant: Instant::now(),
            utc_ms: crate::utc::now_ms(),
        }
    }
}

/// Counters of one shard's HTTP traffic.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpStats {
    pub requests: u64,
    pub bytes_sent: u64,
    pub connections_open: usize,
    pub connections_refused: u64,
    /// TLS handshakes of every TLS listener: completed, failed (bad input, no common
    /// ground), and given up after the handshake deadline.
    pub tls_handshakes: u64,
    pub tls_failed: u64,
    pub tls_timed_out: u64,
}

/// How a TLS handshake ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    Done,
    /// Bad input, or no protocol version, cipher or certificate in common.
    Failed,
    /// Not done within the handshake deadline.
    TimedOut,
}

/// The kinds of connection a shard caps (each holds one file descriptor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnKind {
    Http,
    Rtmp,
    Rtsp,
}

/// Why a new connection was not taken in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The shard holds its cap of connections of this kind.
    ShardFull,
    /// The client's IP holds its cap of connections (`max_connections_per_ip`).
    IpFull,
}

/// Open connections per kind and per client IP, against the shard's `ConnectionCaps`.
#[derive(Debug)]
struct ConnectionCount {
    caps: ConnectionCaps,
    /// Open RTMP and RTSP connections (HTTP's are in `HttpStats`).
    rtmp: usize,
    rtsp: usize,
    refused: u64,
    evicted: u64,
    /// Open connections per client IP; an IP leaves the map with its last connection.
    per_ip: ahash::AHashMap<std::net::IpAddr, u32>,
}

/// What the shard's authorizer has for other shards (the runtime's dispatcher sends it).
#[derive(Debug)]
pub enum Outgoing {
    /// A portal question, for the owner shard of its key.
    Question(PortalQuestion),
    /// Session openings and closings of users with a limit, each for the user's owner.
    UserEvents(Vec<UserEvent>),
}

pub struct ShardState {
    id: usize,
    shards: usize,
    catalog: Arc<Catalog>,
    /// One view per catalog stream, at the stream's id.
    streams: Vec<StreamView>,
    /// The status of each pulled input this shard runs.
    inputs: ahash::AHashMap<StreamId, crate::stream::input_status::InputStatus>,
    auth: Authorizer,
    /// Sessions of the users this shard owns (session limits, across shards).
    users: UserSessions,
    limits: HttpLimits,
    http: HttpStats,
    webrtc: crate::webrtc::WebRtcStats,
    connections: ConnectionCount,
    date_second: i64,
    date: [u8; HTTP_DATE_LEN],
}

impl ShardState {
    pub fn new(
        id: usize,
        shards: usize,
        catalog: Arc<Catalog>,
        limits: HttpLimits,
        seed: u64,
    ) -> Self {
        let streams = (0..catalog.id_bound())
            .map(|_| StreamView::default())
            .collect();
        ShardState {
            id,
            shards,
            catalog,
            streams,
            inputs: ahash::AHashMap::new(),
            // The same seed on every shard: keys hash alike everywhere (owner shards,
            // session ids).
            auth: Authorizer::new(seed),
            users: UserSessions::default(),
            connections: ConnectionCount {
                caps: ConnectionCaps {
                    http: limits.max_connections_per_shard,
                    rtmp: usize::MAX,
                    rtsp: usize::MAX,
                    per_ip: usize::MAX,
                },
                rtmp: 0,
                rtsp: 0,
                refused: 0,
                evicted: 0,
                per_ip: ahash::AHashMap::new(),
            },
            limits,
            http: HttpStats::default(),
            webrtc: Default::default(),
            date_second: i64::MIN,
            date: [b' '; HTTP_DATE_LEN],
        }
    }

    /// This shard's number.
    pub fn id(&self) -> usize {
        self.id
    }

    /// How many shards the process runs.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The streams and policies every shard shares (read-only).
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The HTTP limits this shard enforces.
    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// This shard's view of `stream`; `None` for an id the catalog does not have.
    pub fn view(&self, stream: StreamId) -> Option<&StreamView> {
        self.streams.get(stream as usize)
    }

    /// This shard's view of `stream`, to wait on (a waker left with its ring or window).
    pub fn view_mut(&mut self, stream: StreamId) -> Option<&mut StreamView> {
        self.streams.get_mut(stream as usize)
    }

    /// The status of `stream`'s pulled input on this shard, to update.
    pub fn input_status_mut(
        &mut self,
        stream: StreamId,
    ) -> &mut crate::stream::input_status::InputStatus {
        self.inputs.entry(stream).or_default()
    }

    /// The pulled inputs this shard runs (or ran), with their status.
    pub fn input_statuses(
        &self,
    ) -> impl Iterator<Item = (StreamId, &crate::stream::input_status::InputStatus)> {
        self.inputs.iter().map(|(&id, s)| (id, s))
    }

    /// Applies an input's announcement to this shard's view of the stream.
    pub fn apply(&mut self, event: StreamEvent) {
        self.apply_from(self.id, event);
    }

    /// Applies an event another shard's input sent. A stream a reload removed takes only
    /// its input's end (its viewers end; its media is not kept).
    pub fn apply_from(&mut self, from: usize, event: StreamEvent) {
        let stream = event.stream();
        let in_config = self.catalog.stream(stream).is_some();
        if !in_config && !matches!(event, StreamEvent::InputEnded { .. }) {
            return;
        }
        if let Some(view) = self.view_mut(stream) {
            view.apply(from, event);
        }
    }

    /// A reload: `catalog` replaces the shard's catalog. Views of removed streams are
    /// retired (their viewers end), every new id gets a view, and decisions cached for
    /// streams whose policies changed are dropped, so the new rules decide each viewer's
    /// next request, and each connection's next re-check (at most 250 ms away).
    pub fn reload(&mut self, catalog: Arc<Catalog>, changes: &Changes) {
        for &id in &changes.removed {
            if let Some(view) = self.view_mut(id) {
                view.retire();
            }
            self.inputs.remove(&id);
        }
        self.streams.resize_with(
            catalog.id_bound().max(self.streams.len()),
            StreamView::default,
        );
        let forget: Vec<StreamId> = changes
            .reauthorized
            .iter()
            .chain(&changes.removed)
            .copied()
            .collect();
        self.auth
            .forget_decisions(|stream| forget.contains(&stream));
        self.catalog = catalog;
    }

    /// The shard stops: every viewer's session is closed (with its audit line).
    pub fn close_all_sessions(&mut self, now: Instant) -> usize {
        self.auth.close_all_sessions(&self.catalog, now)
    }

    /// This shard's HTTP counters.
    pub fn http_stats(&self) -> &HttpStats {
        &self.http
    }

    /// This shard's WebRTC counters (`runtime::webrtc_conn` keeps them).
    pub fn webrtc_stats(&self) -> &crate::webrtc::WebRtcStats {
        &self.webrtc
    }

    pub fn webrtc_stats_mut(&mut self) -> &mut crate::webrtc::WebRtcStats {
        &mut self.webrtc
    }

    /// The connection caps this shard enforces (the runtime derives them from the file
    /// limit at start).
    pub fn set_connection_caps(&mut self, caps: ConnectionCaps) {
        self.limits.max_connections_per_shard = caps.http;
        self.connections.caps = caps;
    }

    /// A reload's `handshake_timeout`, for connections accepted from now on.
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.limits.first_request_timeout = timeout;
    }

    /// A reload's `max_connections_per_ip` (0: no limit), for connections from now on.
    pub fn set_connections_per_ip(&mut self, max: u32) {
        self.connections.caps.per_ip = ConnectionCaps::per_ip_share(max, self.shards);
    }

    /// The connection caps this shard enforces.
    pub fn connection_caps(&self) -> &ConnectionCaps {
        &self.connections.caps
    }

    /// Whether a new connection of `kind` from `ip` fits within the shard's caps (counts
    /// nothing).
    pub fn connection_room(&self, kind: ConnKind, ip: IpAddr) -> Result<(), Refusal> {
        let c = &self.connections;
        let (open, cap) = match kind {
            ConnKind::Http => (self.http.connections_open, c.caps.http),
            ConnKind::Rtmp => (c.rtmp, c.caps.rtmp),
            ConnKind::Rtsp => (c.rtsp, c.caps.rtsp),
        };
        let of_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        if open >= cap {
            Err(Refusal::ShardFull)
        } else if of_ip as usize >= c.caps.per_ip {
            Err(Refusal::IpFull)
        } else {
            Ok(())
        }
    }

    /// Takes in a new connection of `kind` from `ip`, unless the shard already holds its cap
    /// of that kind or of that IP (then it is counted as refused). An admitted connection
    /// ends with `close_connection`, whatever ends it.
    pub fn open_connection(&mut self, kind: ConnKind, ip: IpAddr) -> Result<(), Refusal> {
        if let Err(refusal) = self.connection_room(kind, ip) {
            self.connections.refused += 1;
            if kind == ConnKind::Http {
                self.http.connections_refused += 1;
            }
            return Err(refusal);
        }
        let c = &mut self.connections;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        match kind {
            ConnKind::Http => self.http.connections_open += 1,
            ConnKind::Rtmp => c.rtmp += 1,
            ConnKind::Rtsp => c.rtsp += 1,
        }
        Ok(())
    }

    /// A connection that had not asked for anything yet gave its place to a new one
    /// (`runtime::admission`).
    pub fn count_evicted(&mut self) {
        self.connections.evicted += 1;
    }

    /// Connections evicted from a full cap by newer ones (every kind).
    pub fn connections_evicted(&self) -> u64 {
        self.connections.evicted
    }

    /// An admitted connection ended.
    pub fn close_connection(&mut self, kind: ConnKind, ip: IpAddr) {
        let c = &mut self.connections;
        match kind {
            ConnKind::Http => self.http.connections_open -= 1,
            ConnKind::Rtmp => c.rtmp -= 1,
            ConnKind::Rtsp => c.rtsp -= 1,
        }
        if let Some(n) = c.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&ip);
            }
        }
    }

    /// Open connections of `kind` on this shard.
    pub fn open_connections(&self, kind: ConnKind) -> usize {
        match kind {
            ConnKind::Http => self.http.connections_open,
            ConnKind::Rtmp => self.connections.rtmp,
            ConnKind::Rtsp => self.connections.rtsp,
        }
    }

    /// Connections refused by a cap (every kind).
    pub fn connections_refused(&self) -> u64 {
        self.connections.refused
    }

    /// A TLS handshake ended (on any TLS listener).
    pub fn count_tls_handshake(&mut self, outcome: Handshake) {
        match outcome {
            Handshake::Done => self.http.tls_handshakes += 1,
            Handshake::Failed => self.http.tls_failed += 1,
            Handshake::TimedOut => self.http.tls_timed_out += 1,
        }
    }

    /// An HTTP request is being answered.
    pub fn count_http_request(&mut self) {
        self.http.requests += 1;
    }

    /// The request being answered was parked instead (a portal's verdict or a segment):
    /// it is counted again when it is answered.
    pub fn uncount_http_request(&mut self) {
        self.http.requests -= 1;
    }

    /// Media or response bytes went out over HTTP.
    pub fn count_http_bytes(&mut self, bytes: u64) {
        self.http.bytes_sent += bytes;
    }

    /// The `Date` header value, formatted at most once a second.
    pub fn date(&mut self, now: Now) -> &[u8; HTTP_DATE_LEN] {
        let second = now.utc_ms.div_euclid(1000);
        if second != self.date_second {
            self.date_second = second;
            self.date = http_date(now.utc_ms);
        }
        &self.date
    }

    /// An HTTP request's play decision (`auth::play::decide`): the first, or the one after
    /// waiting for a portal's verdict.
    pub fn decide_request(
        &mut self,
        play: &PlayRequest<'_>,
        attempt: Attempt,
        now: Now,
    ) -> Decision {
        decide(
            &mut self.auth,
            &self.catalog,
            Access::Play,
            play,
            attempt,
            now.instant,
            now.utc_ms,
        )
    }

    /// Attributes an allowed HTTP request to its session (opened on first sight); the
    /// session's id, or `None` when the shard's session table is full.
    pub fn track_session(
        &mut self,
        play: &PlayRequest<'_>,
        grant: &Grant,
        now: Instant,
        bytes: u64,
    ) -> Option<SessionId> {
        self.auth
            .track_session(&self.catalog, play, grant, now, bytes)
    }

    /// A connection's play decision (`auth::play`): the first, or the one after waiting
    /// for a portal's verdict.
    pub fn decide_play(&mut self, play: &mut PlayLifecycle, now: Now) -> PlayStep {
        play.decide(&mut self.auth, &self.catalog, now.instant, now.utc_ms)
    }

    /// Opens an allowed play's session; its id, for logs.
    pub fn open_play_session(
        &mut self,
        play: &mut PlayLifecycle,
        now: Instant,
    ) -> Option<SessionId> {
        play.open_session(&mut self.auth, &self.catalog, now)
    }

    /// Re-checks a playing connection; `Err` (its session closed) when it must end.
    pub fn recheck_play(&mut self, play: &mut PlayLifecycle, now: Now) -> Result<(), DenyReason> {
        play.recheck(&mut self.auth, &self.catalog, now.instant, now.utc_ms)
    }

    /// Closes a play's session (idempotent).
    pub fn close_play(&mut self, play: &mut PlayLifecycle, now: Instant) {
        play.close(&mut self.auth, &self.catalog, now);
    }

    /// The tag logs use for a token: a short hash, never the token.
    pub fn token_tag(&self, token: Option<&[u8]>) -> TokenTag {
        self.auth.token_tag(token)
    }

    /// Whether the portal question under `key` is still open; if it is, `waker` is woken
    /// when it is settled (or given up).
    pub fn verdict_pending(&mut self, key: u64, waker: &Waker) -> bool {
        self.auth.lookups.wait(key, waker)
    }

    /// The next thing the authorizer has for other shards; with nothing to send, `dispatcher`
    /// is woken when there is.
    pub fn next_outgoing(&mut self, dispatcher: &Waker) -> Option<Outgoing> {
        if let Some(q) = self.auth.lookups.next_to_send() {
            return Some(Outgoing::Question(q));
        }
        let events = self.auth.take_user_events();
        if !events.is_empty() {
            return Some(Outgoing::UserEvents(events));
        }
        self.auth.lookups.park_dispatcher(dispatcher);
        None
    }

    /// On the holder of its key's claim: another shard's portal question, asked here unless the
    /// same question is open already (then its answer serves both). `Some(outcome)` when
    /// the key was settled a moment ago (the question crossed the answer): the asking
    /// shard is to be answered with it at once.
    pub fn queue_portal_question(
        &mut self,
        question: PortalQuestion,
        now: Instant,
    ) -> Option<PortalOutcome> {
        let mut question = question;
        self.auth.renewal_of(&mut question, now);
        match self.auth.lookups.begin_remote(question, now) {
            RemoteQuestion::Settled(outcome) => Some(outcome),
            RemoteQuestion::Ask | RemoteQuestion::Joined => None,
        }
    }

    /// On the claim's holder: counts a portal question asked here, how it ended and how
    /// long it took.
    pub fn record_portal_answer(
        &mut self,
        question: &PortalQuestion,
        outcome: &PortalOutcome,
        took: Duration,
    ) {
        self.auth
            .record_portal(&self.catalog, question, outcome, took);
    }

    /// When the portal question under `key` was opened on this shard, while it is open.
    pub fn portal_question_opened(&self, key: u64) -> Option<Instant> {
        self.auth.lookups.opened_at(key)
    }

    /// A portal question ended (here or on another shard): caches the verdict and wakes
    /// the requests waiting for it.
    pub fn settle_portal_question(
        &mut self,
        question: &PortalQuestion,
        outcome: &PortalOutcome,
        now: Instant,
    ) {
        self.auth.complete(&self.catalog, question, outcome, now);
    }

    /// The shard that counts `user`'s sessions (session limits): the same on every shard.
    pub fn user_owner(&self, user: &str) -> usize {
        Catalog::owner_of(self.auth.user_hash(user), self.shards)
    }

    /// On the user's owner: shard `from` opened or closed a session of a user with a
    /// limit. Returns the sessions the limit cuts, and why.
    pub fn count_user_session(
        &mut self,
        from: usize,
        event: UserEvent,
        now: Instant,
    ) -> Vec<(SessionId, DenyReason)> {
        match event {
            UserEvent::Opened {
                user,
                session,
                max,
                policy,
            } => self.users.opened(&user, session, from, max, policy, now),
            UserEvent::Closed { user, session } => {
                self.users.closed(&user, session, from);
                Vec::new()
            }
        }
    }

    /// Revokes `target` on this shard (`Authorizer::revoke`); how many sessions it cut.
    pub fn revoke(&mut self, target: &RevokeTarget, reason: DenyReason, now: Instant) -> usize {
        self.auth.revoke(&self.catalog, target, reason, now)
    }

    /// Marks every portal verdict of `stream` for re-asking; how many there were.
    pub fn reauth_stream(&mut self, stream: StreamId, now: Instant) -> usize {
        self.auth.reauth_stream(stream, now)
    }

    /// The authorizer, to read (the operator API's sessions and metrics, tests).
    pub fn authorizer(&self) -> &Authorizer {
        &self.auth
    }

    /// The whole authorizer, for tests and benches that set its state up directly (a
    /// portal's answer, a revocation); the shard's own callers use the methods above.
    pub fn authorizer_mut(&mut self) -> &mut Authorizer {
        &mut self.auth
    }

    /// Periodic housekeeping (the runtime calls it every second).
    pub fn tick(&mut self, now: Now) {
        let deadline = self.catalog.max_backend_timeout() + LOOKUP_GRACE;
        self.auth.expire(&self.catalog, now.instant, deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> ShardState {
        let config = crate::config::parse("stream a { input fake://fake; }", "t").unwrap();
        let catalog = Arc::new(Catalog::from_config(&config));
        ShardState::new(0, 1, catalog, HttpLimits::default(), 1)
    }

    #[test]
    fn a_reload_drops_the_decisions_its_new_rules_may_refuse_and_retires_removed_views() {
        use crate::auth::verdict::{PlayRequest, Proto};
        let config = |tokens: &str| {
            crate::config::parse(
                &format!(
                    "auth_backend a {{ {tokens} }}\n\
                     stream s {{ input fake://fake; on_play auth://a; }}\n\
                     stream t {{ input fake://fake; }}"
                ),
                "t",
            )
            .unwrap()
        };
        let old = Arc::new(Catalog::from_config(&config(
            "allow token one; allow token two;",
        )));
        let mut s = ShardState::new(0, 1, old.clone(), HttpLimits::default(), 1);
        let now = Now::read();
        let ask = |s: &mut ShardState, token: &str| {
            let req = PlayRequest {
                stream: 0,
                proto: Proto::Hls,
                token: Some(token.as_bytes()),
                ip: "10.0.0.1".parse().unwrap(),
                user_agent: None,
                referer: None,
                qs: b"",
            };
            matches!(
                s.decide_request(&req, Attempt::First, now),
                Decision::Allow(_)
            )
        };
        assert!(ask(&mut s, "two"));
        assert_eq!(s.authorizer().cache().len(), 1, "cached");
        let (new, changes) = old.reloaded(&crate::config::parse(
            "auth_backend a { allow token one; }\nstream s { input fake://fake; on_play auth://a; }",
            "t",
        )
        .unwrap());
        s.reload(Arc::new(new), &changes);
        assert!(s.authorizer().cache().is_empty(), "the cached allow went");
        assert!(!ask(&mut s, "two"), "decided by the new rules");
        assert!(ask(&mut s, "one"));
        assert!(s.view(1).unwrap().ring.is_closed(), "`t`'s viewers end");
        assert!(s.catalog().stream(1).is_none());
    }

    #[test]
    fn connections_are_capped_per_kind_and_per_ip_and_given_back() {
        let mut s = shard();
        s.set_connection_caps(ConnectionCaps {
            http: 2,
            rtmp: 1,
            rtsp: 3,
            per_ip: 3,
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(s.open_connection(ConnKind::Http, a), Ok(()));
        assert_eq!(s.open_connection(ConnKind::Http, b), Ok(()));
        assert_eq!(
            s.open_connection(ConnKind::Http, a),
            Err(Refusal::ShardFull),
            "HTTP's cap"
        );
        assert_eq!(s.http_stats().connections_refused, 1);
        // Another kind has its own share.
        assert_eq!(s.open_connection(ConnKind::Rtmp, a), Ok(()));
        assert_eq!(
            s.open_connection(ConnKind::Rtmp, b),
            Err(Refusal::ShardFull)
        );
        assert_eq!(s.open_connection(ConnKind::Rtsp, a), Ok(()));
        // `a` holds three (every kind together): its fourth is refused, `b`'s is not.
        assert_eq!(s.open_connection(ConnKind::Rtsp, a), Err(Refusal::IpFull));
        assert_eq!(s.open_connection(ConnKind::Rtsp, b), Ok(()));
        assert_eq!(s.connections_refused(), 3);
        // Given back: room again, and an IP with nothing open leaves the map.
        s.close_connection(ConnKind::Http, a);
        s.close_connection(ConnKind::Rtmp, a);
        s.close_connection(ConnKind::Rtsp, a);
        assert_eq!(s.open_connections(ConnKind::Http), 1);
        assert_eq!(s.open_connections(ConnKind::Rtmp), 0);
        assert!(!s.connections.per_ip.contains_key(&a));
        assert_eq!(s.open_connection(ConnKind::Http, a), Ok(()));
        assert_eq!(s.limits().max_connections_per_shard, 2);
    }
}
