//! Authorization: the one phase every play request of every protocol goes through.
//!
//! `Authorizer::authorize` is the single entry point. In order: revocations (a revoked
//! token or session is refused whatever else is cached), the shard's `DecisionCache`, then
//! the stream's `Policy` (signed tokens, local rules). When the rules leave the question to
//! portal backends, the answer is `Authorization::Pending`: the question goes into
//! `Lookups` (once per key per shard; the shard that claims the key in `PortalClaims` asks
//! the portal once for every shard) and the caller waits for `complete`. A
//! portal allow past its duration is served stale while `update_session` re-asks. Sessions
//! (`SessionTable`) are tracked beside it with ids every shard derives alike; users with a
//! session limit are reported to their owner shard (`UserSessions`). The shard owns one
//! `Authorizer`; nothing here does I/O, and only `claims` (atomics) is shared between
//! threads.
//!
//! Sans-IO parts: `portal` (the backend request/answer codec), `backend_client` (keep-alive
//! client state machine, pool bookkeeping, circuit breaker), `lookup` (pending questions),
//! `revoke`, `users` + `session_limit` (X-Max-Sessions), `signed` and `securetoken`.

pub mod backend_client;
pub mod cache;
pub mod catalog;
pub mod claims;
pub mod fleet;
pub mod lookup;
pub mod play;
pub mod policy;
pub mod portal;
pub mod revoke;
pub mod securetoken;
pub mod session;
pub mod session_limit;
pub mod signed;
pub mod users;
pub mod verdict;

use crate::auth::cache::{Cached, DecisionCache, DecisionKey, Grant};
use crate::auth::catalog::{AuthCatalog, PolicyId};
use crate::auth::lookup::{Lookups, PortalQuestion};
use crate::auth::policy::PolicyAnswer;
use crate::auth::portal::{BackendAnswer, BackendDecision, RequestType};
use crate::auth::revoke::{Revocations, RevokeTarget};
use crate::auth::session::{Session, SessionId, SessionTable, TokenTag, Touch};
use crate::auth::session_limit::LimitPolicy;
use crate::auth::verdict::{
    Access, DenyReason, PlayRequest, Proto, StreamId, Verdict, canonical_ip,
};
use ahash::AHashMap;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a verdict holds when nothing says otherwise (the spec's `X-AuthDuration`
/// default). It is also how long an HTTP session survives without requests.
pub const DEFAULT_DECISION_TTL: Duration = Duration::from_secs(30);
/// Decisions cached per shard.
pub const DECISION_CACHE_CAPACITY: usize = 100_000;
/// Sessions per shard.
pub const SESSION_CAPACITY: usize = 100_000;
/// When no portal answered: how long a new viewer's `backend_unavailable` holds before the
/// portal is asked again (the circuit breaker keeps the retries cheap).
pub const UNAVAILABLE_TTL: Duration = Duration::from_secs(1);
/// When no portal answered an `update_session`: how long the stale allow is served before
/// the next try.
pub const RETRY_STALE_AFTER: Duration = Duration::from_secs(5);
/// Upper bounds (ms) of the portal latency histogram buckets; `+Inf` follows.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// The answer to a play request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    Allow(Grant),
    Deny(DenyReason),
    /// A portal is being asked; wait (`Lookups::wait` with this key) and ask again.
    Pending(u64),
    /// The portal sends this HTTP client elsewhere (`302 Location`).
    Redirect(Rc<str>),
}

impl Authorization {
    /// The verdict, with a pending question counted as unanswered (`backend_unavailable`).
    pub fn verdict(&self) -> Verdict {
        match self {
            Authorization::Allow(_) => Verdict::Allow,
            Authorization::Deny(r) => Verdict::Deny(*r),
            Authorization::Pending(_) => Verdict::Deny(DenyReason::BackendUnavailable),
            Authorization::Redirect(_) => Verdict::Deny(DenyReason::BackendDenied),
        }
    }
}

/// How a portal question ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortalOutcome {
    Answered(BackendAnswer),
    /// Every backend failed (timeout, connection error, unexpected status, open circuit).
    Unreachable,
}

/// A session of a user with a limit opened or closed: reported to the user's owner shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserEvent {
    Opened {
        user: Box<str>,
        session: SessionId,
        max: NonZeroU32,
        policy: LimitPolicy,
    },
    Closed {
        user: Box<str>,
        session: SessionId,
    },
}

/// Counters the shard exports (`/metrics`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AuthStats {
    pub allowed: u64,
    pub denied: u64,
    /// Denials by `DenyReason as usize`.
    pub denied_by: [u64; verdict::DENY_REASONS],
    pub sessions_opened: u64,
    pub sessions_closed: u64,
    /// Portal questions this shard asked (as owner) and how they ended.
    pub portal_requests: u64,
    pub portal_allowed: u64,
    pub portal_denied: u64,
    pub portal_unreachable: u64,
    /// Requests served from a stale allow while the portal was re-asked or unreachable.
    pub stale_served: u64,
    /// Sessions cut by revocation or a session limit.
    pub sessions_revoked: u64,
    /// Portal question latency: cumulative counts per `LATENCY_BUCKETS_MS`
    /// bucket, then `+Inf`; and the sum.
    pub portal_latency_buckets: [u64; 13],
    pub portal_latency_sum_us: u64,
}

pub struct Authorizer {
    cache: DecisionCache,
    sessions: SessionTable,
    pub lookups: Lookups,
    revocations: Revocations,
    /// Process-wide random seeds: every shard hashes a key alike (owner shards, session
    /// ids), nobody outside can aim collisions at the tables.
    key_hasher: ahash::RandomState,
    session_hasher: ahash::RandomState,
    /// Fixed keys, so the same token gets the same tag in every run's logs.
    tag_hasher: ahash::RandomState,
    decision_ttl: Duration,
    /// When each stream was last re-authorized by the operator (kept while a question
    /// asked before it may still be answered).
    reauthed: AHashMap<StreamId, Instant>,
    user_events: Vec<UserEvent>,
    pub stats: AuthStats,
}

/// The keys of one request, computed once.
struct Keys<'a> {
    policy: PolicyId,
    decision: DecisionKey<'a>,
}

impl Authorizer {
    /// `seed`: process-wide randomness, the same for every shard.
    pub fn new(seed: u64) -> Self {
        let mut mix = SplitMix64(seed);
        let mut hasher = || {
            ahash::RandomState::with_seeds(
                mix.next_u64(),
                mix.next_u64(),
                mix.next_u64(),
                mix.next_u64(),
            )
        };
        Authorizer {
            cache: DecisionCache::new(DECISION_CACHE_CAPACITY),
            sessions: SessionTable::new(DEFAULT_DECISION_TTL, SESSION_CAPACITY),
            lookups: Lookups::default(),
            revocations: Revocations::default(),
            key_hasher: hasher(),
            session_hasher: hasher(),
            tag_hasher: ahash::RandomState::with_seeds(
                0x7465_7373,
                0x6572_6121,
                0x746f_6b65,
                0x6e74_6167,
            ),
            decision_ttl: DEFAULT_DECISION_TTL,
            reauthed: AHashMap::new(),
            user_events: Vec::new(),
            stats: AuthStats::default(),
        }
    }

    pub fn cache(&self) -> &DecisionCache {
        &self.cache
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    fn decision_hash(
        &self,
        access: Access,
        policy: PolicyId,
        req: &PlayRequest<'_>,
        reads_ua: bool,
    ) -> u64 {
        let ip = canonical_ip(req.ip);
        let mut h = self.key_hasher.build_hasher();
        // A play allow never answers a publish with the same token, nor the reverse.
        h.write_u8(access as u8);
        h.write_u32(policy);
        h.write_u32(req.stream);
        // A request without the parameter and one with an empty value are kept apart.
        h.write_u8(u8::from(req.token.is_some()));
        h.write(req.token.unwrap_or_default());
        h.write_usize(req.token.map_or(0, <[u8]>::len));
        std::hash::Hash::hash(&ip, &mut h);
        if reads_ua {
            h.write(req.user_agent.unwrap_or_default());
        }
        h.finish()
    }

    /// The session key and id of a request: (stream, proto, client IP, token).
    fn session_key(&self, req: &PlayRequest<'_>) -> (u64, SessionId) {
        let ip = canonical_ip(req.ip);
        let mut h = self.session_hasher.build_hasher();
        h.write_u32(req.stream);
        h.write_u8(req.proto as u8);
        std::hash::Hash::hash(&ip, &mut h);
        h.write(req.token.unwrap_or_default());
        h.write_usize(req.token.map_or(usize::MAX, <[u8]>::len));
        let key = h.finish();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&key.to_le_bytes());
        bytes[8..].copy_from_slice(&self.session_hasher.hash_one(key).to_le_bytes());
        (key, SessionId::from_random(bytes))
    }

    /// Keyed 64-bit hash of a token (revocation by token).
    pub fn token_hash(&self, token: &[u8]) -> u64 {
        token_hash_with(&self.session_hasher, token)
    }

    /// The owner shard of a user's session count.
    pub fn user_hash(&self, user: &str) -> u64 {
        self.key_hasher.hash_one(user)
    }

    /// Decides a play request at `now` (monotonic, for the cache) / `now_unix_ms` (wall
    /// clock, for signed-token expiry). Open streams (no `on_play`) are allowed.
    ///
    /// `Pending(key)`: a portal is being asked; wait for `key` and call again. A caller
    /// that cannot wait any longer takes `Authorization::verdict` of the answer, or calls
    /// `unanswered`.
    pub fn authorize(
        &mut self,
        catalog: &AuthCatalog,
        req: &PlayRequest<'_>,
        now: Instant,
        now_unix_ms: i64,
    ) -> Authorization {
        self.authorize_access(Access::Play, catalog, req, now, now_unix_ms)
    }

    /// The publish flavour of `authorize`: the same phases (revocations, cache, policy,
    /// portal), with the stream's `on_publish` policy. A stream without one takes any
    /// publisher. A portal is asked like for a play (proto `rtmp`); the decision is cached
    /// apart from play decisions.
    pub fn authorize_publish(
        &mut self,
        catalog: &AuthCatalog,
        req: &PlayRequest<'_>,
        now: Instant,
        now_unix_ms: i64,
    ) -> Authorization {
        self.authorize_access(Access::Publish, catalog, req, now, now_unix_ms)
    }

    fn authorize_access(
        &mut self,
        access: Access,
        catalog: &AuthCatalog,
        req: &PlayRequest<'_>,
        now: Instant,
        now_unix_ms: i64,
    ) -> Authorization {
        let answer = self.decide(access, catalog, req, now, now_unix_ms);
        match &answer {
            Authorization::Allow(_) => self.stats.allowed += 1,
            Authorization::Deny(reason) => {
                self.stats.denied += 1;
                self.stats.denied_by[*reason as usize] += 1;
                log::debug!(
                    "deny {} stream={} proto={} ip={} token={} reason={reason}",
                    match access {
                        Access::Play => "play",
                        Access::Publish => "publish",
                    },
                    catalog.stream(req.stream).map_or("?", |s| &s.name),
                    req.proto.as_str(),
                    canonical_ip(req.ip),
                    self.token_tag(req.token),
                );
            }
            Authorization::Pending(_) | Authorization::Redirect(_) => {}
        }
        answer
    }

    fn decide(
        &mut self,
        access: Access,
        catalog: &AuthCatalog,
        req: &PlayRequest<'_>,
        now: Instant,
        now_unix_ms: i64,
    ) -> Authorization {
        let Some(stream) = catalog.stream(req.stream) else {
            return Authorization::Deny(DenyReason::BackendDenied);
        };
        let policy = match access {
            Access::Play => stream.on_play,
            Access::Publish => stream.on_publish,
        };
        let Some(policy_id) = policy else {
            return Authorization::Allow(Grant::default());
        };
        // A reference the config check missed: closed, never open.
        let Some(policy) = catalog.policies.get(policy_id as usize) else {
            return Authorization::Deny(DenyReason::BackendDenied);
        };
        if !self.revocations.is_empty() {
            if let Some(t) = req.token
                && let Some(reason) = self.revocations.token(self.token_hash(t), now)
            {
                return Authorization::Deny(reason);
            }
            if self.revocations.has_sessions() {
                let (_, id) = self.session_key(req);
                if let Some(reason) = self.revocations.session(&id, now) {
                    return Authorization::Deny(reason);
                }
            }
        }
        let keys = Keys {
            policy: policy_id,
            decision: DecisionKey {
                hash: self.decision_hash(access, policy_id, req, policy.reads_user_agent()),
                stream: req.stream,
                ip: canonical_ip(req.ip),
                token: req.token.unwrap_or_default(),
            },
        };
        match self.cache.get(&keys.decision, now) {
            Cached::Fresh(verdict, grant) => self.granted(req.proto, verdict, grant, now),
            Cached::Stale(grant) => {
                // Serve the allow while the portal is re-asked (spec §4: the next request
                // after the duration sends update_session).
                self.stats.stale_served += 1;
                if !self.lookups.is_pending(keys.decision.hash) {
                    self.ask_portal(catalog, req, &keys, true, now);
                }
                self.granted(req.proto, Verdict::Allow, grant, now)
            }
            Cached::Miss => {
                if self.lookups.is_pending(keys.decision.hash) {
                    return Authorization::Pending(keys.decision.hash);
                }
                match policy.decide(req, &stream.name, now_unix_ms.div_euclid(1000)) {
                    PolicyAnswer::Decided(decision) => {
                        // A signed token's allow lasts no longer than the token.
                        let ttl = decision
                            .valid_until_unix
                            .map_or(self.decision_ttl, |until| {
                                let left_ms = (until * 1000 - now_unix_ms).max(0) as u64;
                                self.decision_ttl.min(Duration::from_millis(left_ms))
                            });
                        self.cache.insert(
                            &keys.decision,
                            decision.verdict,
                            Grant::default(),
                            now,
                            ttl,
                        );
                        self.granted(req.proto, decision.verdict, Grant::default(), now)
                    }
                    PolicyAnswer::AskPortal => {
                        self.ask_portal(catalog, req, &keys, false, now);
                        Authorization::Pending(keys.decision.hash)
                    }
                }
            }
        }
    }

    fn granted(&self, proto: Proto, verdict: Verdict, grant: Grant, now: Instant) -> Authorization {
        match verdict {
            Verdict::Deny(reason) => match grant.redirect {
                Some(location) if portal::is_http_proto(proto) => Authorization::Redirect(location),
                _ => Authorization::Deny(reason),
            },
            Verdict::Allow => {
                if let Some(user) = &grant.user
                    && self.revocations.has_users()
                    && let Some(reason) = self.revocations.user(user, now)
                {
                    return Authorization::Deny(reason);
                }
                Authorization::Allow(grant)
            }
        }
    }

    fn ask_portal(
        &mut self,
        catalog: &AuthCatalog,
        req: &PlayRequest<'_>,
        keys: &Keys<'_>,
        update: bool,
        now: Instant,
    ) {
        let (session_key, session_id) = self.session_key(req);
        let session = self.sessions.get(session_key);
        let request_type = match (update, session) {
            (true, Some(s)) => RequestType::UpdateSession {
                duration: now.saturating_duration_since(s.opened),
                bytes: s.bytes_sent,
            },
            (true, None) => RequestType::UpdateSession {
                duration: Duration::ZERO,
                bytes: 0,
            },
            (false, _) => RequestType::NewSession,
        };
        let request_number = session.map_or(0, |s| s.portal_requests) + 1;
        if let Some(s) = self.sessions.get_mut(session_key) {
            s.portal_requests += 1;
        }
        let question = PortalQuestion {
            key: keys.decision.hash,
            policy: keys.policy,
            stream: req.stream,
            proto: req.proto,
            ip: keys.decision.ip,
            token: req.token.map(Into::into),
            user_agent: req.user_agent.map(Into::into),
            referer: req.referer.map(Into::into),
            qs: req.qs.into(),
            session_id,
            request_type,
            request_number,
            stream_clients: self.sessions.on_stream(req.stream),
            total_clients: self.sessions.len() as u64,
            opened: now,
        };
        let _ = catalog;
        self.lookups.begin(question, now);
    }

    /// Counts a portal question this shard asked (as the key's owner) and how it ended,
    /// with an audit line (token as a tag).
    pub fn record_portal(
        &mut self,
        catalog: &AuthCatalog,
        q: &PortalQuestion,
        outcome: &PortalOutcome,
        took: Duration,
    ) {
        let verdict = match outcome {
            PortalOutcome::Answered(a) => {
                if !a.notes.is_empty() {
                    log::warn!("portal answer adjusted: {}", a.notes);
                }
                match a.decision.for_proto(q.proto) {
                    BackendDecision::Allow => "allow",
                    BackendDecision::Deny(r) => r.as_str(),
                    BackendDecision::Redirect(_) => "redirect (refused)",
                }
            }
            PortalOutcome::Unreachable => "unreachable",
        };
        let (user, max, duration) = match outcome {
            PortalOutcome::Answered(a) => (
                a.user_id.as_deref().unwrap_or("-"),
                a.max_sessions.map_or(0, NonZeroU32::get),
                a.duration.as_secs(),
            ),
            PortalOutcome::Unreachable => ("-", 0, 0),
        };
        log::info!(
            "decision stream={} proto={} ip={} token={} session={} request={} verdict={verdict} user={user} max_sessions={max} for={duration}s took={}ms",
            catalog.stream(q.stream).map_or("?", |s| &s.name),
            q.proto.as_str(),
            q.ip,
            self.token_tag(q.token.as_deref()),
            q.session_id,
            match q.request_type {
                RequestType::NewSession => "new_session",
                RequestType::UpdateSession { .. } => "update_session",
            },
            took.as_millis(),
        );
        let st = &mut self.stats;
        st.portal_requests += 1;
        match outcome {
            PortalOutcome::Answered(a) if a.decision == BackendDecision::Allow => {
                st.portal_allowed += 1
            }
            PortalOutcome::Answered(_) => st.portal_denied += 1,
            PortalOutcome::Unreachable => st.portal_unreachable += 1,
        }
        let ms = took.as_millis() as u64;
        for (i, le) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if ms <= *le {
                st.portal_latency_buckets[i] += 1;
            }
        }
        st.portal_latency_buckets[12] += 1;
        st.portal_latency_sum_us += took.as_micros() as u64;
    }

    /// What a request gets when its portal question stays unanswered past the wait:
    /// `allow default;` allows, anything else is `backend_unavailable` (spec §3).
    pub fn unanswered(&self, catalog: &AuthCatalog, stream: StreamId) -> Verdict {
        self.unanswered_policy(catalog, catalog.stream(stream).and_then(|s| s.on_play))
    }

    /// `unanswered` for a publish (the stream's `on_publish` policy).
    pub fn unanswered_publish(&self, catalog: &AuthCatalog, stream: StreamId) -> Verdict {
        self.unanswered_policy(catalog, catalog.stream(stream).and_then(|s| s.on_publish))
    }

    fn unanswered_policy(&self, catalog: &AuthCatalog, policy: Option<PolicyId>) -> Verdict {
        let allows = policy
            .and_then(|p| catalog.policies.get(p as usize))
            .is_some_and(|p| p.allows_by_default());
        if allows {
            Verdict::Allow
        } else {
            Verdict::Deny(DenyReason::BackendUnavailable)
        }
    }

    /// A portal question ended (asked here, or by another shard: the owner tells every
    /// shard, so each caches the verdict whichever shard the viewer's next request lands
    /// on). Caches the verdict and wakes the requests of this shard waiting for it.
    pub fn complete(
        &mut self,
        catalog: &AuthCatalog,
        q: &PortalQuestion,
        outcome: &PortalOutcome,
        now: Instant,
    ) {
        self.lookups.finish(q.key);
        self.lookups.remember(q, outcome, now);
        self.settle(catalog, q, outcome, now);
    }

    fn settle(
        &mut self,
        catalog: &AuthCatalog,
        q: &PortalQuestion,
        outcome: &PortalOutcome,
        now: Instant,
    ) {
        let key = q.key;
        let dkey = DecisionKey {
            hash: key,
            stream: q.stream,
            ip: q.ip,
            token: q.token.as_deref().unwrap_or_default(),
        };
        match outcome {
            PortalOutcome::Answered(answer) => {
                // A redirect is kept whatever protocol asked: the decision key is shared
                // by protocols, and each request applies it to its own (`granted`).
                let (verdict, redirect) = match &answer.decision {
                    BackendDecision::Allow => (Verdict::Allow, None),
                    BackendDecision::Deny(reason) => (Verdict::Deny(*reason), None),
                    BackendDecision::Redirect(location) => (
                        Verdict::Deny(DenyReason::BackendDenied),
                        Some(Rc::from(&**location)),
                    ),
                };
                let grant = Grant {
                    user: answer.user_id.as_deref().map(Rc::from),
                    max_sessions: answer.max_sessions,
                    from_portal: true,
                    redirect,
                };
                // Asked before the operator's reauth of its stream (the answer, or its copy
                // from another shard, arrived after it): already due for renewal.
                let duration = if self.asked_before_reauth(q) {
                    Duration::ZERO
                } else {
                    answer.duration
                };
                self.cache.insert(&dkey, verdict, grant, now, duration);
            }
            PortalOutcome::Unreachable => {
                if let Some(grant) = self.cache.stale_grant(&dkey, now) {
                    // An existing session keeps its allow; the portal is asked again later.
                    let _ = grant;
                    self.cache.retry_later(&dkey, now, RETRY_STALE_AFTER);
                } else {
                    let verdict = self.unanswered_policy(catalog, Some(q.policy));
                    let grant = Grant {
                        from_portal: true,
                        ..Grant::default()
                    };
                    let ttl = if verdict == Verdict::Allow {
                        RETRY_STALE_AFTER
                    } else {
                        UNAVAILABLE_TTL
                    };
                    self.cache.insert(&dkey, verdict, grant, now, ttl);
                }
            }
        }
    }

    /// Attributes an allowed request to its session (opening it on first sight) and returns
    /// the session id, or `None` when the shard's session table is full.
    pub fn track_session(
        &mut self,
        catalog: &AuthCatalog,
        req: &PlayRequest<'_>,
        grant: &Grant,
        now: Instant,
        bytes: u64,
    ) -> Option<SessionId> {
        self.touch_session(catalog, req, grant, now, bytes, false)
            .map(|(_, id)| id)
    }

    /// Opens the session of a connection (RTMP, RTSP, HTTP MPEG-TS): it lives until
    /// `close_connection_session`. Returns its key and id.
    pub fn open_connection_session(
        &mut self,
        catalog: &AuthCatalog,
        req: &PlayRequest<'_>,
        grant: &Grant,
        now: Instant,
    ) -> Option<(u64, SessionId)> {
        self.touch_session(catalog, req, grant, now, 0, true)
    }

    /// Adds bytes sent to a connection's session.
    pub fn account_connection(&mut self, key: u64, now: Instant, bytes: u64) {
        if let Some(s) = self.sessions.get_mut(key) {
            s.last_seen = now;
            s.bytes_sent += bytes;
        }
    }

    /// A connection ended: its session closes.
    pub fn close_connection_session(&mut self, catalog: &AuthCatalog, key: u64, now: Instant) {
        if let Some(s) = self.sessions.get_mut(key)
            && s.connections > 1
        {
            // Another connection of the same viewer still plays in this session.
            s.connections -= 1;
            return;
        }
        if let Some(s) = self.sessions.close(key) {
            self.closed(catalog, &s, now, "closed");
        }
    }

    fn touch_session(
        &mut self,
        catalog: &AuthCatalog,
        req: &PlayRequest<'_>,
        grant: &Grant,
        now: Instant,
        bytes: u64,
        connection: bool,
    ) -> Option<(u64, SessionId)> {
        let (key, id) = self.session_key(req);
        let ip = canonical_ip(req.ip);
        let tag = self.token_tag(req.token);
        let token_hash = req.token.map_or(0, |t| self.token_hash(t));
        let (touch, _) = self.sessions.touch(key, now, bytes, || Session {
            id,
            stream: req.stream,
            proto: req.proto,
            ip,
            token_tag: tag,
            opened: now,
            last_seen: now,
            requests: 0,
            bytes_sent: 0,
            user: grant.user.clone(),
            token_hash,
            connection,
            connections: 0,
            // The portal's new_session question came before the session existed.
            portal_requests: u64::from(grant.from_portal),
        })?;
        if connection && let Some(s) = self.sessions.get_mut(key) {
            s.connections += 1;
        }
        if touch == Touch::Opened {
            self.stats.sessions_opened += 1;
            log::info!(
                "session opened id={id} stream={} proto={} ip={ip} token={tag} user={}",
                catalog.stream(req.stream).map_or("?", |s| &s.name),
                req.proto.as_str(),
                grant.user.as_deref().unwrap_or("-"),
            );
            if let (Some(user), Some(max)) = (&grant.user, grant.max_sessions) {
                let policy = catalog
                    .stream(req.stream)
                    .and_then(|s| s.on_play)
                    .and_then(|p| catalog.policies.get(p as usize))
                    .map_or(LimitPolicy::CloseOldest, |p| {
                        if p.refuse_new_sessions {
                            LimitPolicy::RefuseNew
                        } else {
                            LimitPolicy::CloseOldest
                        }
                    });
                self.user_events.push(UserEvent::Opened {
                    user: user.as_ref().into(),
                    session: id,
                    max,
                    policy,
                });
                self.lookups.wake_dispatcher();
            }
        }
        Some((key, id))
    }

    fn closed(&mut self, catalog: &AuthCatalog, s: &Session, now: Instant, why: &str) {
        self.stats.sessions_closed += 1;
        log_closed(catalog, s, now, why);
        if let Some(user) = &s.user {
            self.user_events.push(UserEvent::Closed {
                user: user.as_ref().into(),
                session: s.id,
            });
            self.lookups.wake_dispatcher();
        }
    }

    /// User session events for the owners of the users (the runtime sends them).
    pub fn take_user_events(&mut self) -> Vec<UserEvent> {
        std::mem::take(&mut self.user_events)
    }

    /// Applies a revocation on this shard: the target's cached decisions go, its sessions
    /// close (connections see the deny at their next check, within a second), and it is
    /// refused for `REVOKE_TTL`. Returns how many sessions of this shard were cut.
    pub fn revoke(
        &mut self,
        catalog: &AuthCatalog,
        target: &RevokeTarget,
        reason: DenyReason,
        now: Instant,
    ) -> usize {
        let mut cut_ids = Vec::new();
        match target {
            RevokeTarget::Token(token) => {
                let h = self.token_hash(token);
                self.revocations.revoke_token(h, reason, now);
                self.cache.remove_where(|_, t, _| t == &token[..]);
                for s in self.sessions.iter().filter(|s| s.token_hash == h) {
                    cut_ids.push(s.id);
                }
            }
            RevokeTarget::TokenHash(h) => {
                self.revocations.revoke_token(*h, reason, now);
                let hasher = self.session_hasher.clone();
                self.cache
                    .remove_where(|_, t, _| token_hash_with(&hasher, t) == *h);
                for s in self.sessions.iter().filter(|s| s.token_hash == *h) {
                    cut_ids.push(s.id);
                }
            }
            RevokeTarget::User(user) => {
                self.revocations.revoke_user(user, reason, now);
                self.cache
                    .remove_where(|_, _, g| g.user.as_deref() == Some(&user[..]));
                for s in self.sessions.iter() {
                    if s.user.as_deref() == Some(&user[..]) {
                        cut_ids.push(s.id);
                    }
                }
            }
            RevokeTarget::Session(id) => {
                self.revocations.revoke_session(*id, reason, now);
                cut_ids.extend(self.sessions.iter().filter(|s| s.id == *id).map(|s| s.id));
            }
            RevokeTarget::Stream(name) => {
                if let Some(stream) = catalog.stream_by_name(name) {
                    let id = stream.id;
                    self.cache.remove_where(|s, _, _| s == id);
                    for s in self.sessions.iter().filter(|s| s.stream == id) {
                        cut_ids.push(s.id);
                    }
                    for sid in &cut_ids {
                        self.revocations.revoke_session(*sid, reason, now);
                    }
                }
            }
        }
        if !cut_ids.is_empty() {
            // Every cut session is refused from now on, whatever the target was (a
            // connection's next check finds its session id here).
            for sid in &cut_ids {
                self.revocations.revoke_session(*sid, reason, now);
            }
            let mut closed = Vec::new();
            self.sessions.close_where(
                |s| cut_ids.contains(&s.id),
                |s| closed.push(session_copy(s)),
            );
            for s in &closed {
                self.closed(catalog, s, now, reason.as_str());
            }
        }
        self.stats.sessions_revoked += cut_ids.len() as u64;
        cut_ids.len()
    }

    /// `POST .../sessions/reauth?name=`: every portal verdict of the stream is re-asked at
    /// its session's next request (allows keep serving until the answer).
    pub fn reauth_stream(&mut self, stream: StreamId, now: Instant) -> usize {
        self.reauthed.insert(stream, now);
        self.lookups.forget_settled_stream(stream);
        self.cache.expire_stream(stream, now)
    }

    fn asked_before_reauth(&self, q: &PortalQuestion) -> bool {
        self.reauthed
            .get(&q.stream)
            .is_some_and(|&reauth| q.opened <= reauth)
    }

    /// On the shard that asks the portal for another shard: a new-session question about a
    /// key this shard holds an allow for is a running session's renewal (the asking shard
    /// had not yet received this shard's copy of the decision, e.g. right after a reauth),
    /// so it goes out as `update_session`, as it would have from here.
    pub fn renewal_of(&self, q: &mut PortalQuestion, now: Instant) {
        if q.request_type != RequestType::NewSession {
            return;
        }
        let dkey = DecisionKey {
            hash: q.key,
            stream: q.stream,
            ip: q.ip,
            token: q.token.as_deref().unwrap_or_default(),
        };
        if let Cached::Fresh(Verdict::Allow, _) | Cached::Stale(_) = self.cache.peek(&dkey, now) {
            q.request_type = RequestType::UpdateSession {
                duration: Duration::ZERO,
                bytes: 0,
            };
        }
    }

    /// Housekeeping for the shard's timer: drops expired decisions and revocations, closes
    /// idle sessions, and gives up on portal questions whose answer never came.
    pub fn expire(&mut self, catalog: &AuthCatalog, now: Instant, lookup_deadline: Duration) {
        self.cache.sweep(now);
        self.revocations.sweep(now);
        // A question lives at most `lookup_deadline`: older reauths can no longer matter.
        self.reauthed
            .retain(|_, &mut at| now.saturating_duration_since(at) <= lookup_deadline);
        let mut closed = Vec::new();
        let timeout = DEFAULT_DECISION_TTL;
        self.sessions.close_where(
            |s| !s.connection && now.saturating_duration_since(s.last_seen) >= timeout,
            |s| closed.push(session_copy(s)),
        );
        for s in &closed {
            self.closed(catalog, s, now, "idle");
        }
        if let Some(cutoff) = now.checked_sub(lookup_deadline) {
            for key in self.lookups.overdue(cutoff) {
                if let Some(done) = self.lookups.finish(key) {
                    self.settle(catalog, &done.question, &PortalOutcome::Unreachable, now);
                }
            }
        }
    }

    /// Drops the cached decisions of every stream `stream` selects (a reload changed their
    /// policies): their next request or re-check is decided anew.
    pub fn forget_decisions(&mut self, mut stream: impl FnMut(StreamId) -> bool) -> usize {
        self.cache.remove_where(|s, _, _| stream(s))
    }

    /// Closes every session (the shard stops), each with its audit line; how many.
    pub fn close_all_sessions(&mut self, catalog: &AuthCatalog, now: Instant) -> usize {
        let mut closed = Vec::new();
        self.sessions
            .close_where(|_| true, |s| closed.push(session_copy(s)));
        for s in &closed {
            self.closed(catalog, s, now, "server stopping");
        }
        closed.len()
    }

    /// The tag logs use for a token: a short hash, never the token.
    pub fn token_tag(&self, token: Option<&[u8]>) -> TokenTag {
        match token {
            None => TokenTag(0),
            Some(t) => TokenTag(self.tag_hasher.hash_one(t) as u32),
        }
    }
}

fn session_copy(s: &Session) -> Session {
    Session {
        user: s.user.clone(),
        ..*s
    }
}

fn log_closed(catalog: &AuthCatalog, s: &Session, now: Instant, why: &str) {
    log::info!(
        "session closed id={} stream={} proto={} ip={} token={} user={} requests={} bytes={} seconds={} reason={why}",
        s.id,
        catalog.stream(s.stream).map_or("?", |st| &st.name),
        s.proto.as_str(),
        s.ip,
        s.token_tag,
        s.user.as_deref().unwrap_or("-"),
        s.requests,
        s.bytes_sent,
        now.saturating_duration_since(s.opened).as_secs()
    );
}

/// Whether a protocol's sessions live with a connection.
pub fn is_connection_proto(proto: Proto) -> bool {
    matches!(
        proto,
        Proto::Rtmp | Proto::Rtsp | Proto::Srt | Proto::WebRtc | Proto::TsHttp
    )
}

/// A small, fast generator for session ids (Steele, Lea, Flood: SplitMix64). Seeded from
/// the OS per shard; ids need to be unique and unguessable enough to not collide, they
/// are not credentials.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `Authorizer::token_hash` with the authorizer's session hasher.
fn token_hash_with(hasher: &ahash::RandomState, token: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_u8(0x54);
    h.write(token);
    h.finish()
}

/// 64 bits of OS randomness for seeding (falls back to time and address entropy when
/// /dev/urandom is unreadable, which only happens in broken sandboxes).
pub fn os_seed() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return u64::from_le_bytes(buf);
    }
    let t = crate::utc::now_ms() as u64;
    t ^ (&buf as *const _ as u64).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::lookup::RemoteQuestion;
    use crate::auth::portal::HeaderNotes;
    use crate::auth::verdict::{DenyReason, Proto};

    impl Authorizer {
        fn authorize_at(
            &mut self,
            catalog: &AuthCatalog,
            req: &PlayRequest<'_>,
            now: Instant,
        ) -> Verdict {
            self.authorize(catalog, req, now, 1_700_000_000_000)
                .verdict()
        }
    }

    fn catalog() -> AuthCatalog {
        let cfg = crate::config::parse(
            "auth_backend b { allow token good; }\n\
             auth_backend p { allow token local; backend http://127.0.0.1:9/auth; }\n\
             auth_backend q { backend http://127.0.0.1:9/auth; allow default; }\n\
             stream a { input fake://fake; on_play auth://b; }\n\
             stream c { input fake://fake; on_play auth://b; }\n\
             stream open { input fake://fake; }\n\
             stream portal { input fake://fake; on_play auth://p; }\n\
             stream lenient { input fake://fake; on_play auth://q; }",
            "t.conf",
        )
        .expect("config parses");
        AuthCatalog::from_config(&cfg, &crate::auth::catalog::in_order(&cfg))
    }

    const PORTAL: StreamId = 3;
    const LENIENT: StreamId = 4;

    fn req(stream: u32, token: Option<&'static [u8]>) -> PlayRequest<'static> {
        PlayRequest {
            stream,
            proto: Proto::Hls,
            token,
            ip: "192.0.2.1".parse().unwrap(),
            user_agent: None,
            referer: None,
            qs: b"",
        }
    }

    fn answer(allow: bool, secs: u64, user: Option<&str>) -> PortalOutcome {
        PortalOutcome::Answered(BackendAnswer {
            decision: if allow {
                BackendDecision::Allow
            } else {
                BackendDecision::Deny(DenyReason::BackendDenied)
            },
            duration: Duration::from_secs(secs),
            user_id: user.map(Into::into),
            max_sessions: NonZeroU32::new(1),
            notes: HeaderNotes::default(),
        })
    }

    #[test]
    fn publishers_are_decided_by_on_publish_apart_from_viewers() {
        let cfg = crate::config::parse(
            "auth_backend viewers { allow token watch; }\n\
             auth_backend publishers { allow token push; }\n\
             stream cam { input publish://; on_play auth://viewers; on_publish auth://publishers; }\n\
             stream open { input publish://; }",
            "t.conf",
        )
        .expect("config parses");
        let cat = AuthCatalog::from_config(&cfg, &crate::auth::catalog::in_order(&cfg));
        let mut a = Authorizer::new(7);
        let now = Instant::now();
        let publish = |a: &mut Authorizer, stream, token| {
            a.authorize_publish(&cat, &req(stream, token), now, 1_700_000_000_000)
                .verdict()
        };
        let denied = Verdict::Deny(DenyReason::BackendDenied);
        assert_eq!(publish(&mut a, 0, Some(b"push")), Verdict::Allow);
        assert_eq!(publish(&mut a, 0, Some(b"watch")), denied);
        assert_eq!(publish(&mut a, 0, None), denied);
        assert_eq!(publish(&mut a, 1, None), Verdict::Allow, "no on_publish");
        // The same token's play decision is its own, though both are cached now.
        assert_eq!(a.authorize_at(&cat, &req(0, Some(b"push")), now), denied);
        assert_eq!(
            a.authorize_at(&cat, &req(0, Some(b"watch")), now),
            Verdict::Allow
        );
        assert_eq!(
            publish(&mut a, 0, Some(b"watch")),
            denied,
            "still cached apart"
        );
    }

    #[test]
    fn caches_per_stream_and_token() {
        let cat = catalog();
        let mut a = Authorizer::new(1);
        let now = Instant::now();
        assert_eq!(
            a.authorize_at(&cat, &req(0, Some(b"good")), now),
            Verdict::Allow
        );
        assert_eq!(
            a.authorize_at(&cat, &req(0, Some(b"good")), now),
            Verdict::Allow
        );
        assert_eq!((a.cache().hits, a.cache().misses), (1, 1));
        // Same token on another stream is its own decision (a miss, evaluated again).
        assert_eq!(
            a.authorize_at(&cat, &req(1, Some(b"good")), now),
            Verdict::Allow
        );
        assert_eq!(a.cache().misses, 2);
        let denied = Verdict::Deny(DenyReason::BackendDenied);
        assert_eq!(a.authorize_at(&cat, &req(0, Some(b"bad")), now), denied);
        assert_eq!(a.authorize_at(&cat, &req(0, None), now), denied);
        assert_eq!(a.authorize_at(&cat, &req(0, Some(b"")), now), denied);
        assert_eq!(
            a.authorize_at(&cat, &req(2, None), now),
            Verdict::Allow,
            "open stream"
        );
    }

    #[test]
    fn a_portal_is_asked_once_per_key_and_its_answer_cached() {
        let cat = catalog();
        let mut a = Authorizer::new(1);
        let now = Instant::now();
        // A local rule of the same auth_backend answers without the portal.
        assert_eq!(
            a.authorize(&cat, &req(PORTAL, Some(b"local")), now, 0),
            Authorization::Allow(Grant::default())
        );
        let first = a.authorize(&cat, &req(PORTAL, Some(b"t")), now, 0);
        let Authorization::Pending(key) = first else {
            panic!("expected a portal question, got {first:?}")
        };
        assert_eq!(
            a.authorize(&cat, &req(PORTAL, Some(b"t")), now, 0),
            Authorization::Pending(key)
        );
        let q = a.lookups.next_to_send().expect("one question");
        assert_eq!(q.request_type, RequestType::NewSession);
        assert_eq!(q.request_number, 1);
        assert!(a.lookups.next_to_send().is_none(), "asked once");
        assert_eq!(q.key, key);
        a.complete(&cat, &q, &answer(true, 10, Some("alice")), now);
        let Authorization::Allow(grant) = a.authorize(&cat, &req(PORTAL, Some(b"t")), now, 0)
        else {
            panic!("allowed after the answer")
        };
        assert_eq!(grant.user.as_deref(), Some("alice"));
        assert!(grant.from_portal);
        // Past the duration: still served, and one update_session goes out.
        let later = now + Duration::from_secs(11);
        a.track_session(&cat, &req(PORTAL, Some(b"t")), &grant, now, 500);
        assert!(matches!(
            a.authorize(&cat, &req(PORTAL, Some(b"t")), later, 0),
            Authorization::Allow(_)
        ));
        assert!(matches!(
            a.authorize(&cat, &req(PORTAL, Some(b"t")), later, 0),
            Authorization::Allow(_)
        ));
        let update = a.lookups.next_to_send().expect("an update");
        assert_eq!(
            update.request_type,
            RequestType::UpdateSession {
                duration: Duration::from_secs(11),
                bytes: 500
            }
        );
        assert_eq!(update.request_number, 2);
        assert!(a.lookups.next_to_send().is_none(), "updated once");
        // The portal now says no: the session is refused from the next request on.
        a.complete(&cat, &update, &answer(false, 10, None), later);
        assert_eq!(
            a.authorize_at(&cat, &req(PORTAL, Some(b"t")), later),
            Verdict::Deny(DenyReason::BackendDenied)
        );
    }

    #[test]
    fn a_portal_redirect_sends_http_clients_away_and_refuses_the_rest() {
        let cat = catalog();
        let mut a = Authorizer::new(1);
        let now = Instant::now();
        let Authorization::Pending(_) = a.authorize(&cat, &req(PORTAL, Some(b"r")), now, 0) else {
            panic!()
        };
        let q = a.lookups.next_to_send().unwrap();
        let redirect = PortalOutcome::Answered(BackendAnswer {
            decision: BackendDecision::Redirect("http://other.example/live".into()),
            duration: Duration::from_secs(30),
            user_id: None,
            max_sessions: None,
            notes: HeaderNotes::default(),
        });
        a.complete(&cat, &q, &redirect, now);
        assert_eq!(
            a.authorize(&cat, &req(PORTAL, Some(b"r")), now, 0),
            Authorization::Redirect("http://other.example/live".into())
        );
        let rtmp = PlayRequest {
            proto: Proto::Rtmp,
            ..req(PORTAL, Some(b"r"))
        };
        assert_eq!(
            a.authorize(&cat, &rtmp, now, 0),
            Authorization::Deny(DenyReason::BackendDenied)
        );
    }

    /// `shard`'s portal question for token `t` on the portal stream (its first request).
    fn first_question(shard: &mut Authorizer, cat: &AuthCatalog, now: Instant) -> PortalQuestion {
        let Authorization::Pending(_) = shard.authorize(cat, &req(PORTAL, Some(b"t")), now, 0)
        else {
            panic!("a portal question")
        };
        shard.lookups.next_to_send().expect("one question")
    }

    #[test]
    fn another_shards_answer_warms_this_cache() {
        let cat = catalog();
        let (mut asker, mut other) = (Authorizer::new(9), Authorizer::new(9));
        let now = Instant::now();
        let q = first_question(&mut asker, &cat, now);
        // The owner tells every shard, also one that never asked.
        other.complete(&cat, &q, &answer(true, 10, None), now);
        assert!(matches!(
            other.authorize(&cat, &req(PORTAL, Some(b"t")), now, 0),
            Authorization::Allow(_)
        ));
        assert!(other.lookups.next_to_send().is_none());
    }

    #[test]
    fn a_question_that_crosses_the_answer_is_not_asked_again() {
        // Two shards: `owner` owns the key. Its own viewer's question is asked and settled;
        // `other` opened the same question just before the answer reached it, so its question
        // arrives at the owner after the owner settled the key.
        let cat = catalog();
        let (mut owner, mut other) = (Authorizer::new(9), Authorizer::new(9));
        let now = Instant::now();
        let asked = first_question(&mut owner, &cat, now);
        let crossing = first_question(&mut other, &cat, now);
        owner.complete(&cat, &asked, &answer(true, 10, None), now);
        let later = now + Duration::from_millis(3);
        assert_eq!(
            owner.lookups.begin_remote(crossing.clone(), later),
            RemoteQuestion::Settled(answer(true, 10, None)),
            "answered from the outcome, not asked"
        );
        assert!(
            owner.lookups.next_to_send().is_none(),
            "the portal is asked once"
        );
        // The asking shard gets that outcome and serves its viewer.
        other.complete(&cat, &crossing, &answer(true, 10, None), later);
        assert!(matches!(
            other.authorize(&cat, &req(PORTAL, Some(b"t")), later, 0),
            Authorization::Allow(_)
        ));
    }

    /// Whether `shard` lets the test viewer (token `t`) in at `now`.
    fn serves(shard: &mut Authorizer, cat: &AuthCatalog, now: Instant) -> bool {
        let asked = shard.authorize(cat, &req(PORTAL, Some(b"t")), now, 0);
        matches!(asked, Authorization::Allow(_))
    }

    /// `shard`'s next portal question, which must be an `update_session`.
    fn next_update(shard: &mut Authorizer) -> PortalQuestion {
        let q = shard.lookups.next_to_send().expect("an update_session");
        assert!(matches!(q.request_type, RequestType::UpdateSession { .. }));
        q
    }

    /// Two shards; the first asked the test viewer's question and has its allow.
    fn answered_on_one_of_two() -> (AuthCatalog, Authorizer, Authorizer, Instant, PortalQuestion) {
        let cat = catalog();
        let (mut asker, other) = (Authorizer::new(9), Authorizer::new(9));
        let now = Instant::now();
        let q = first_question(&mut asker, &cat, now);
        asker.complete(&cat, &q, &answer(true, 10, None), now);
        (cat, asker, other, now, q)
    }

    #[test]
    fn an_answer_copied_after_a_reauth_is_renewed_at_the_next_request() {
        let (cat, _asker, mut other, now, q) = answered_on_one_of_two();
        // The reauth reaches the other shard before the asker's copy of the answer.
        let soon = now + Duration::from_millis(1);
        other.reauth_stream(PORTAL, soon);
        other.complete(&cat, &q, &answer(true, 10, None), soon);
        assert!(serves(&mut other, &cat, soon));
        let mut renewed = next_update(&mut other);
        // A question asked after the reauth is answered for its whole duration.
        let later = soon + Duration::from_millis(1);
        renewed.opened = later;
        other.complete(&cat, &renewed, &answer(true, 10, None), later);
        assert!(serves(&mut other, &cat, later));
        assert!(other.lookups.next_to_send().is_none());
    }

    #[test]
    fn a_new_session_question_about_a_running_session_goes_out_as_its_renewal() {
        let (cat, mut asker, mut other, now, _) = answered_on_one_of_two();
        let soon = now + Duration::from_millis(1);
        asker.reauth_stream(PORTAL, soon);
        other.reauth_stream(PORTAL, soon);
        // The other shard has not had the copy: to it the viewer is new.
        let mut asked = first_question(&mut other, &cat, soon);
        assert_eq!(asked.request_type, RequestType::NewSession);
        asker.renewal_of(&mut asked, soon);
        assert!(matches!(
            asked.request_type,
            RequestType::UpdateSession { .. }
        ));
        // A key the shard knows nothing of (or denied) stays a new session.
        let mut fresh = first_question(&mut Authorizer::new(9), &cat, soon);
        fresh.key ^= 1;
        Authorizer::new(9).renewal_of(&mut fresh, soon);
        assert_eq!(fresh.request_type, RequestType::NewSession);
    }

    #[test]
    fn after_a_reauth_the_portal_is_asked_again_whichever_shard_asks() {
        let cat = catalog();
        let (mut owner, mut other) = (Authorizer::new(9), Authorizer::new(9));
        let now = Instant::now();
        let q = first_question(&mut owner, &cat, now);
        owner.complete(&cat, &q, &answer(true, 10, None), now);
        other.complete(&cat, &q, &answer(true, 10, None), now);
        // The operator's reauth, a moment later, on every shard.
        let soon = now + Duration::from_millis(100);
        owner.reauth_stream(PORTAL, soon);
        other.reauth_stream(PORTAL, soon);
        // The next request lands on the other shard: served, and re-asked at the owner.
        assert!(serves(&mut other, &cat, soon));
        let update = next_update(&mut other);
        assert_eq!(
            owner.lookups.begin_remote(update, soon),
            RemoteQuestion::Ask
        );
    }

    #[test]
    fn an_unreachable_portal_refuses_newcomers_and_keeps_sessions() {
        let cat = catalog();
        let mut a = Authorizer::new(1);
        let now = Instant::now();
        let Authorization::Pending(_) = a.authorize(&cat, &req(PORTAL, Some(b"old")), now, 0)
        else {
            panic!()
        };
        let q1 = a.lookups.next_to_send().unwrap();
        a.complete(&cat, &q1, &answer(true, 10, None), now);
        let later = now + Duration::from_secs(11);
        // The old session's allow went stale: served, and re-asked.
        assert_eq!(
            a.authorize_at(&cat, &req(PORTAL, Some(b"old")), later),
            Verdict::Allow
        );
        let q1u = a.lookups.next_to_send().unwrap();
        a.complete(&cat, &q1u, &PortalOutcome::Unreachable, later);
        assert_eq!(
            a.authorize_at(&cat, &req(PORTAL, Some(b"old")), later),
            Verdict::Allow,
            "kept while the portal is down"
        );
        let Authorization::Pending(_) = a.authorize(&cat, &req(PORTAL, Some(b"new")), later, 0)
        else {
            panic!()
        };
        let q2 = a.lookups.next_to_send().unwrap();
        a.complete(&cat, &q2, &PortalOutcome::Unreachable, later);
        assert_eq!(
            a.authorize_at(&cat, &req(PORTAL, Some(b"new")), later),
            Verdict::Deny(DenyReason::BackendUnavailable)
        );
        // `allow default;` lets newcomers in when the portal is down.
        let Authorization::Pending(_) = a.authorize(&cat, &req(LENIENT, Some(b"x")), later, 0)
        else {
            panic!()
        };
        assert_eq!(a.unanswered(&cat, LENIENT), Verdict::Allow);
        let q3 = a.lookups.next_to_send().unwrap();
        a.complete(&cat, &q3, &PortalOutcome::Unreachable, later);
        assert_eq!(
            a.authorize_at(&cat, &req(LENIENT, Some(b"x")), later),
            Verdict::Allow
        );
    }

    #[test]
    fn revocation_cuts_sessions_and_refuses_the_token() {
        let cat = catalog();
        let mut a = Authorizer::new(1);
        let now = Instant::now();
        let r = req(0, Some(b"good"));
        a.track_session(&cat, &r, &Grant::default(), now, 0);
        assert_eq!(a.authorize_at(&cat, &r, now), Verdict::Allow);
        let cut = a.revoke(
            &cat,
            &RevokeTarget::Token(b"good".as_slice().into()),
            DenyReason::SessionRevoked,
            now,
        );
        assert_eq!(cut, 1);
        assert_eq!(a.sessions().len(), 0);
        assert_eq!(
            a.authorize_at(&cat, &r, now),
            Verdict::Deny(DenyReason::SessionRevoked)
        );
        // Another token on the same stream is untouched.
        let mut b = Authorizer::new(1);
        assert_eq!(
            b.authorize_at(&cat, &req(1, Some(b"good")), now),
            Verdict::Allow
        );
        // Revoking a stream cuts its sessions (and only those).
        let r2 = req(1, Some(b"good"));
        b.track_session(&cat, &r2, &Grant::default(), now, 0);
        b.track_session(&cat, &req(0, Some(b"good")), &Grant::default(), now, 0);
        assert_eq!(
            b.revoke(
                &cat,
                &RevokeTarget::Stream("c".into()),
                DenyReason::SessionRevoked,
                now
            ),
            1
        );
        assert_eq!(
            b.authorize_at(&cat, &r2, now),
            Verdict::Deny(DenyReason::SessionRevoked)
        );
        assert_eq!(
            b.authorize_at(&cat, &req(0, Some(b"good")), now),
            Verdict::Allow
        );
    }

    #[test]
    fn session_ids_agree_across_shards_and_open_once() {
        let cat = catalog();
        let (mut a, mut b) = (Authorizer::new(7), Authorizer::new(7));
        let now = Instant::now();
        let g = Grant::default();
        let id1 = a
            .track_session(&cat, &req(0, Some(b"good")), &g, now, 100)
            .unwrap();
        let id2 = a
            .track_session(&cat, &req(0, Some(b"good")), &g, now, 100)
            .unwrap();
        assert_eq!(id1, id2);
        assert_eq!(
            b.track_session(&cat, &req(0, Some(b"good")), &g, now, 1)
                .unwrap(),
            id1,
            "another shard names the same session alike"
        );
        let other = a
            .track_session(&cat, &req(1, Some(b"good")), &g, now, 100)
            .unwrap();
        assert_ne!(id1, other);
        assert_eq!(a.stats.sessions_opened, 2);
        a.expire(
            &cat,
            now + DEFAULT_DECISION_TTL + Duration::from_secs(1),
            Duration::from_secs(5),
        );
        assert_eq!(a.sessions().len(), 0);
        assert_eq!(a.stats.sessions_closed, 2);
    }

    #[test]
    fn a_user_with_a_limit_is_reported_to_the_owner() {
        let cat = catalog();
        let mut a = Authorizer::new(7);
        let now = Instant::now();
        let grant = Grant {
            user: Some("alice".into()),
            max_sessions: NonZeroU32::new(1),
            from_portal: true,
            redirect: None,
        };
        let r = req(PORTAL, Some(b"t"));
        let (key, id) = a.open_connection_session(&cat, &r, &grant, now).unwrap();
        // A second connection of the same viewer shares the session, which closes (and
        // is reported closed) only with the last one.
        assert_eq!(
            a.open_connection_session(&cat, &r, &grant, now),
            Some((key, id))
        );
        a.close_connection_session(&cat, key, now);
        assert_eq!(a.sessions().len(), 1);
        a.close_connection_session(&cat, key, now);
        assert_eq!(a.sessions().len(), 0);
        assert_eq!(
            a.take_user_events(),
            vec![
                UserEvent::Opened {
                    user: "alice".into(),
                    session: id,
                    max: NonZeroU32::new(1).unwrap(),
                    policy: LimitPolicy::CloseOldest,
                },
                UserEvent::Closed {
                    user: "alice".into(),
                    session: id
                }
            ]
        );
    }

    #[test]
    fn token_tags_hide_tokens() {
        let a = Authorizer::new(3);
        let tag = a.token_tag(Some(b"test1")).to_string();
        assert_eq!(tag.len(), 9);
        assert!(!tag.contains("test1"));
        assert_eq!(
            tag,
            Authorizer::new(4).token_tag(Some(b"test1")).to_string(),
            "stable across runs"
        );
    }
}
