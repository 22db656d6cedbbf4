//! The play lifecycle: one authorization, from the first decision to the closed session,
//! for every protocol (HTTP requests, connection viewers, publishers). Sans-IO: the shard's
//! `Authorizer` and the time are passed in; the runtime only awaits what this asks for.
//!
//! ```text
//!   decide ──Allow──▶ (open_session ──▶ recheck every RECHECK_INTERVAL ──▶ close)
//!     │ Pending(key)
//!     ▼
//!   the caller waits for the verdict (bounded), then decide once more:
//!   still pending = unanswered (`backend_unavailable`, or in under `allow default;`)
//! ```
//!
//! `decide` is the one place that turns "a portal is being asked" into "wait, then ask
//! once more"; HTTP requests call it with borrowed fields (no allocation), connections own
//! a `PlayLifecycle`, which adds the session and the periodic re-check (spec §4, §7.3): a
//! revocation, a session limit or a portal's deny on `update_session` ends the viewer
//! within a second. A re-check is a cache hit (tens of ns).

use crate::auth::cache::Grant;
use crate::auth::catalog::AuthCatalog;
use crate::auth::session::SessionId;
use crate::auth::verdict::{DenyReason, PlayRequest, Proto, StreamId, Verdict};
use crate::auth::{Authorization, Authorizer};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often a playing connection's authorization is re-checked.
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Which of a stream's policies decides: its `on_play`, or its `on_publish`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Play,
    Publish,
}

/// Whether the caller already waited for a portal's verdict on this request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    First,
    /// Asked again after waiting: a question still open counts as unanswered.
    AfterWait,
}

/// What a play request gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Grant),
    Deny(DenyReason),
    /// A portal sends this HTTP client elsewhere (connections are refused instead).
    Redirect(Rc<str>),
    /// A portal is being asked: wait (bounded) for `key`, then decide again with
    /// `Attempt::AfterWait`.
    WaitForVerdict(u64),
}

/// Decides `req` once: revocations, cache, policy, portal (`Authorizer::authorize`), with
/// the one rule for a question that stays open after the wait.
pub fn decide(
    auth: &mut Authorizer,
    catalog: &AuthCatalog,
    access: Access,
    req: &PlayRequest<'_>,
    attempt: Attempt,
    now: Instant,
    now_unix_ms: i64,
) -> Decision {
    let answer = match access {
        Access::Play => auth.authorize(catalog, req, now, now_unix_ms),
        Access::Publish => auth.authorize_publish(catalog, req, now, now_unix_ms),
    };
    match answer {
        Authorization::Allow(grant) => Decision::Allow(grant),
        Authorization::Deny(reason) => Decision::Deny(reason),
        Authorization::Redirect(location) => Decision::Redirect(location),
        Authorization::Pending(key) if attempt == Attempt::First => Decision::WaitForVerdict(key),
        Authorization::Pending(_) => {
            let verdict = match access {
                Access::Play => auth.unanswered(catalog, req.stream),
                Access::Publish => auth.unanswered_publish(catalog, req.stream),
            };
            match verdict {
                Verdict::Allow => Decision::Allow(Grant::default()),
                Verdict::Deny(reason) => Decision::Deny(reason),
            }
        }
    }
}

/// The query string a connection's request is reported to a portal with (`qs`): the token
/// under the configured parameter, as an HTTP player would have sent it.
pub fn token_query(token_param: &str, token: Option<&[u8]>) -> Vec<u8> {
    let Some(t) = token else {
        return Vec::new();
    };
    let mut qs = token_param.as_bytes().to_vec();
    qs.push(b'=');
    crate::uri::percent_encode_into(t, &mut qs);
    qs
}

/// Where a lifecycle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not decided yet, or waiting for a portal's verdict.
    Deciding(Attempt),
    /// Allowed; no session yet (RTSP: between DESCRIBE and PLAY).
    Allowed,
    /// Playing with an open session (key), re-checked.
    Playing(u64),
    /// Refused or ended; nothing left open.
    Over,
}

/// One connection's authorization (a viewer or a publisher), owned by its connection.
#[derive(Debug)]
pub struct PlayLifecycle {
    access: Access,
    stream: StreamId,
    proto: Proto,
    token: Option<Box<[u8]>>,
    ip: IpAddr,
    user_agent: Option<Box<[u8]>>,
    qs: Box<[u8]>,
    phase: Phase,
    /// What the last allow granted (user, session limit), for the session.
    grant: Grant,
    next_check: Instant,
    unreported: u64,
}

/// What to do after `PlayLifecycle::decide`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Allowed,
    Denied(DenyReason),
    /// Await the portal's verdict for `key` (at most the caller's bound), then call
    /// `decide` again.
    WaitForVerdict(u64),
}

impl PlayLifecycle {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        access: Access,
        stream: StreamId,
        proto: Proto,
        token: Option<&[u8]>,
        ip: IpAddr,
        user_agent: Option<&[u8]>,
        token_param: &str,
        now: Instant,
    ) -> Self {
        PlayLifecycle {
            access,
            stream,
            proto,
            token: token.map(Into::into),
            ip,
            user_agent: user_agent.map(Into::into),
            qs: token_query(token_param, token).into(),
            phase: Phase::Deciding(Attempt::First),
            grant: Grant::default(),
            next_check: now + RECHECK_INTERVAL,
            unreported: 0,
        }
    }

    pub fn stream(&self) -> StreamId {
        self.stream
    }

    fn request(&self) -> PlayRequest<'_> {
        PlayRequest {
            stream: self.stream,
            proto: self.proto,
            token: self.token.as_deref(),
            ip: self.ip,
            user_agent: self.user_agent.as_deref(),
            referer: None,
            qs: &self.qs,
        }
    }

    /// The first decision, or the one after waiting for a portal. A connection cannot
    /// follow a portal's redirect: it is refused.
    pub fn decide(
        &mut self,
        auth: &mut Authorizer,
        catalog: &AuthCatalog,
        now: Instant,
        now_unix_ms: i64,
    ) -> Step {
        let Phase::Deciding(attempt) = self.phase else {
            return match self.phase {
                Phase::Over => Step::Denied(DenyReason::BackendDenied),
                _ => Step::Allowed,
            };
        };
        let req = self.request();
        match decide(auth, catalog, self.access, &req, attempt, now, now_unix_ms) {
            Decision::Allow(grant) => {
                self.grant = grant;
                self.phase = Phase::Allowed;
                Step::Allowed
            }
            Decision::Deny(reason) => {
                self.phase = Phase::Over;
                Step::Denied(reason)
            }
            Decision::Redirect(_) => {
                self.phase = Phase::Over;
                Step::Denied(DenyReason::BackendDenied)
            }
            Decision::WaitForVerdict(key) => {
                self.phase = Phase::Deciding(Attempt::AfterWait);
                Step::WaitForVerdict(key)
            }
        }
    }

    /// Opens the play's session once allowed (publishers have none); its id, for logs.
    /// `None` when not allowed, already open, or the shard's session table is full.
    pub fn open_session(
        &mut self,
        auth: &mut Authorizer,
        catalog: &AuthCatalog,
        now: Instant,
    ) -> Option<SessionId> {
        if self.phase != Phase::Allowed || self.access == Access::Publish {
            return None;
        }
        let (key, id) = auth.open_connection_session(catalog, &self.request(), &self.grant, now)?;
        self.phase = Phase::Playing(key);
        self.next_check = now + RECHECK_INTERVAL;
        Some(id)
    }

    /// When the next re-check is due: only while playing with a session.
    pub fn next_check(&self) -> Option<Instant> {
        matches!(self.phase, Phase::Playing(_)).then_some(self.next_check)
    }

    /// Re-checks a playing session; `Err` when it must end now (its session is then
    /// closed). A question to a portal (the decision ran out and was not cached stale)
    /// keeps the viewer playing until its answer, which a later re-check sees.
    pub fn recheck(
        &mut self,
        auth: &mut Authorizer,
        catalog: &AuthCatalog,
        now: Instant,
        now_unix_ms: i64,
    ) -> Result<(), DenyReason> {
        let Phase::Playing(key) = self.phase else {
            return Ok(());
        };
        self.next_check = now + RECHECK_INTERVAL;
        if self.unreported > 0 {
            auth.account_connection(key, now, std::mem::take(&mut self.unreported));
        }
        let answer = match self.access {
            Access::Play => auth.authorize(catalog, &self.request(), now, now_unix_ms),
            Access::Publish => auth.authorize_publish(catalog, &self.request(), now, now_unix_ms),
        };
        let refused = match answer {
            Authorization::Allow(_) | Authorization::Pending(_) => return Ok(()),
            Authorization::Deny(reason) => reason,
            Authorization::Redirect(_) => DenyReason::BackendDenied,
        };
        self.close(auth, catalog, now);
        Err(refused)
    }

    /// Bytes sent to the viewer (reported to the session at the next re-check or close).
    pub fn sent(&mut self, bytes: u64) {
        self.unreported += bytes;
    }

    /// Whether a session is open (and must be closed).
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Playing(_))
    }

    /// The key of the open session, if one is.
    pub fn session_key(&self) -> Option<u64> {
        match self.phase {
            Phase::Playing(key) => Some(key),
            _ => None,
        }
    }

    /// Ends the play: reports what was sent and closes the session. Idempotent.
    pub fn close(&mut self, auth: &mut Authorizer, catalog: &AuthCatalog, now: Instant) {
        if let Phase::Playing(key) = std::mem::replace(&mut self.phase, Phase::Over) {
            auth.account_connection(key, now, std::mem::take(&mut self.unreported));
            auth.close_connection_session(catalog, key, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::revoke::RevokeTarget;
    use crate::config;

    fn catalog(text: &str) -> AuthCatalog {
        let cfg = config::parse(text, "t.conf").expect("test config parses");
        AuthCatalog::from_config(&cfg, &crate::auth::catalog::in_order(&cfg))
    }

    /// A shard's authorizer under `config`, and a play of `token` from now.
    fn setup(config: &str, token: &[u8]) -> (AuthCatalog, Authorizer, Instant, PlayLifecycle) {
        let t0 = Instant::now();
        (catalog(config), Authorizer::new(1), t0, play(token, t0))
    }

    const RULES: &str = "auth_backend a { allow token good; }\n\
                         stream s { input fake://fake; on_play auth://a; }\n";
    const PORTAL: &str = "auth_backend p { backend http://127.0.0.1:9/auth; }\n\
                          stream s { input fake://fake; on_play auth://p; }\n";
    const PORTAL_DEFAULT: &str = "auth_backend p { backend http://127.0.0.1:9/auth; allow default; }\n\
                                  stream s { input fake://fake; on_play auth://p; }\n";

    fn ip() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    fn play(token: &[u8], now: Instant) -> PlayLifecycle {
        PlayLifecycle::new(
            Access::Play,
            0,
            Proto::Rtmp,
            Some(token),
            ip(),
            None,
            "token",
            now,
        )
    }

    #[test]
    fn allowed_play_opens_rechecks_and_closes_its_session() {
        let (cat, mut auth, t0, mut p) = setup(RULES, b"good");
        assert_eq!(p.next_check(), None, "no re-check before the session opens");
        assert_eq!(p.decide(&mut auth, &cat, t0, 0), Step::Allowed);
        assert!(p.open_session(&mut auth, &cat, t0).is_some());
        assert_eq!(auth.sessions().len(), 1);
        assert_eq!(p.next_check(), Some(t0 + RECHECK_INTERVAL));
        p.sent(1000);
        let t1 = t0 + RECHECK_INTERVAL;
        assert_eq!(p.recheck(&mut auth, &cat, t1, 250), Ok(()));
        assert_eq!(p.next_check(), Some(t1 + RECHECK_INTERVAL));
        p.close(&mut auth, &cat, t1);
        p.close(&mut auth, &cat, t1);
        assert_eq!(auth.sessions().len(), 0, "closed once, idempotent");
        assert!(!p.is_open());
    }

    #[test]
    fn denied_play_opens_nothing() {
        let (cat, mut auth, t0, mut p) = setup(RULES, b"bad");
        assert!(matches!(p.decide(&mut auth, &cat, t0, 0), Step::Denied(_)));
        assert_eq!(p.open_session(&mut auth, &cat, t0), None);
        assert_eq!(auth.sessions().len(), 0);
    }

    #[test]
    fn revocation_ends_the_play_at_the_next_recheck_and_closes_the_session() {
        let (cat, mut auth, t0, mut p) = setup(RULES, b"good");
        p.decide(&mut auth, &cat, t0, 0);
        p.open_session(&mut auth, &cat, t0);
        auth.revoke(
            &cat,
            &RevokeTarget::Token(b"good".to_vec().into()),
            DenyReason::SessionRevoked,
            t0,
        );
        let t1 = t0 + RECHECK_INTERVAL;
        assert_eq!(
            p.recheck(&mut auth, &cat, t1, 250),
            Err(DenyReason::SessionRevoked)
        );
        assert_eq!(auth.sessions().len(), 0);
        assert_eq!(p.next_check(), None);
    }

    #[test]
    fn a_portal_question_waits_once_then_counts_as_unanswered() {
        let cases = [
            (PORTAL, Step::Denied(DenyReason::BackendUnavailable)),
            (PORTAL_DEFAULT, Step::Allowed),
        ];
        for (config, after_wait) in cases {
            let (cat, mut auth, t0, mut p) = setup(config, b"t");
            let first = p.decide(&mut auth, &cat, t0, 0);
            assert!(matches!(first, Step::WaitForVerdict(_)), "{first:?}");
            assert_eq!(p.decide(&mut auth, &cat, t0, 0), after_wait, "{config}");
        }
    }

    #[test]
    fn decide_maps_every_answer() {
        let cat = catalog(PORTAL);
        let mut auth = Authorizer::new(1);
        let t0 = Instant::now();
        let req = PlayRequest {
            stream: 0,
            proto: Proto::Hls,
            token: Some(b"x"),
            ip: ip(),
            user_agent: None,
            referer: None,
            qs: b"token=x",
        };
        let first = decide(&mut auth, &cat, Access::Play, &req, Attempt::First, t0, 0);
        assert!(matches!(first, Decision::WaitForVerdict(_)));
        let again = decide(
            &mut auth,
            &cat,
            Access::Play,
            &req,
            Attempt::AfterWait,
            t0,
            0,
        );
        assert_eq!(again, Decision::Deny(DenyReason::BackendUnavailable));
    }

    #[test]
    fn token_query_encodes_the_token() {
        assert_eq!(token_query("token", Some(b"a b&c")), b"token=a%20b%26c");
        assert!(token_query("token", None).is_empty());
    }
}
