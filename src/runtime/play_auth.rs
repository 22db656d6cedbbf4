//! Waiting for authorization, and keeping it, in connection tasks.
//!
//! `DecisionReady` is what a request awaits while a portal is asked about it: it resolves
//! when the shard's `Lookups` no longer hold the question (answered, or given up), woken
//! by `Authorizer::complete`, never by polling. `ConnectionPlay` is the authorization of a
//! connection protocol's play (RTMP, RTSP, HTTP MPEG-TS): it asks the shard's one
//! `Authorizer` (waiting for a portal when needed), opens the connection's session, and
//! re-asks every `RECHECK_INTERVAL` while the viewer plays, so a revocation, a session
//! limit or a portal's deny on `update_session` cuts the connection within a second (spec
//! §4, §7.3). `authorize_publish` is the publisher's flavour (no session, no re-check).
//! A re-check is a cache hit (tens of ns); re-asking the portal when a decision
//! runs out happens inside `authorize` while the stale allow keeps the viewer playing.

use crate::auth::Authorization;
use crate::auth::cache::Grant;
use crate::auth::session::SessionId;
use crate::auth::verdict::{DenyReason, PlayRequest, Proto, StreamId, Verdict};
use crate::shard::ShardState;
use std::cell::RefCell;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How often a playing connection's authorization is re-checked.
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Resolves when the portal question under `key` is no longer pending on this shard.
pub struct DecisionReady<'a> {
    pub state: &'a Rc<RefCell<ShardState>>,
    pub key: u64,
}

impl Future for DecisionReady<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self
            .state
            .borrow_mut()
            .auth
            .lookups
            .wait(self.key, cx.waker())
        {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

/// How long a request waits for a portal's verdict before it counts as unanswered: the
/// slowest backend's timeout and a second for the answer to cross shards.
pub fn decision_wait(state: &Rc<RefCell<ShardState>>) -> Duration {
    state.borrow().catalog.max_backend_timeout() + Duration::from_secs(1)
}

/// The query string a connection protocol's request is reported to a portal with (`qs`):
/// the token under the configured parameter, as an HTTP player would have sent it.
fn token_query(state: &Rc<RefCell<ShardState>>, token: Option<&[u8]>) -> Vec<u8> {
    let Some(t) = token else {
        return Vec::new();
    };
    let mut qs = state.borrow().catalog.token_param.as_bytes().to_vec();
    qs.push(b'=');
    crate::http::target::percent_encode_into(t, &mut qs);
    qs
}

/// One connection's play, authorized and accounted.
pub struct ConnectionPlay {
    state: Rc<RefCell<ShardState>>,
    pub stream: StreamId,
    proto: Proto,
    token: Option<Box<[u8]>>,
    ip: IpAddr,
    user_agent: Option<Box<[u8]>>,
    qs: Box<[u8]>,
    /// The open session's key, once playing.
    session: Option<u64>,
    /// What the last allow granted (user, session limit), for the session.
    grant: Grant,
    next_check: Instant,
    unreported: u64,
}

impl ConnectionPlay {
    pub fn new(
        state: &Rc<RefCell<ShardState>>,
        stream: StreamId,
        proto: Proto,
        token: Option<&[u8]>,
        ip: IpAddr,
        user_agent: Option<&[u8]>,
    ) -> Self {
        let qs = token_query(state, token);
        ConnectionPlay {
            state: state.clone(),
            stream,
            proto,
            token: token.map(Into::into),
            ip,
            user_agent: user_agent.map(Into::into),
            qs: qs.into(),
            session: None,
            grant: Grant::default(),
            next_check: Instant::now() + RECHECK_INTERVAL,
            unreported: 0,
        }
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

    fn ask(&self) -> Authorization {
        let mut shard = self.state.borrow_mut();
        let shard = &mut *shard;
        let catalog = shard.catalog.clone();
        shard.auth.authorize(
            &catalog,
            &self.request(),
            Instant::now(),
            crate::utc::now_ms(),
        )
    }

    /// The verdict for this play, waiting (bounded) for a portal when one is asked.
    pub async fn authorize(&mut self) -> Result<(), DenyReason> {
        let mut waited = false;
        loop {
            match self.ask() {
                Authorization::Allow(grant) => {
                    self.grant = grant;
                    return Ok(());
                }
                Authorization::Deny(reason) => return Err(reason),
                // Only HTTP clients follow a portal's redirect; a connection is refused.
                Authorization::Redirect(_) => return Err(DenyReason::BackendDenied),
                Authorization::Pending(_) if waited => {
                    let shard = self.state.borrow();
                    return match shard.auth.unanswered(&shard.catalog, self.stream) {
                        Verdict::Allow => Ok(()),
                        Verdict::Deny(reason) => Err(reason),
                    };
                }
                Authorization::Pending(key) => {
                    let wait = decision_wait(&self.state);
                    let ready = DecisionReady {
                        state: &self.state,
                        key,
                    };
                    futures_lite::future::or(ready, glommio::timer::sleep(wait)).await;
                    waited = true;
                }
            }
        }
    }

    /// Opens the connection's session (after an allow); its id, for the logs.
    pub fn open_session(&mut self) -> Option<SessionId> {
        let mut shard = self.state.borrow_mut();
        let shard = &mut *shard;
        let catalog = shard.catalog.clone();
        let (key, id) = shard.auth.open_connection_session(
            &catalog,
            &self.request(),
            &self.grant,
            Instant::now(),
        )?;
        self.session = Some(key);
        self.next_check = Instant::now() + RECHECK_INTERVAL;
        Some(id)
    }

    /// When the next re-check is due.
    pub fn next_check(&self) -> Instant {
        self.next_check
    }

    /// Re-checks a playing session; `Err` when it must end now. A question to a portal
    /// (the decision ran out and was not cached stale) keeps the viewer playing until its
    /// answer, which a later re-check sees.
    pub fn recheck(&mut self) -> Result<(), DenyReason> {
        self.next_check = Instant::now() + RECHECK_INTERVAL;
        if self.unreported > 0
            && let Some(key) = self.session
        {
            let mut shard = self.state.borrow_mut();
            shard
                .auth
                .account_connection(key, Instant::now(), self.unreported);
            self.unreported = 0;
        }
        match self.ask() {
            Authorization::Allow(_) | Authorization::Pending(_) => Ok(()),
            Authorization::Deny(reason) => Err(reason),
            Authorization::Redirect(_) => Err(DenyReason::BackendDenied),
        }
    }

    /// Bytes sent to the viewer (reported to the session at the next re-check).
    pub fn sent(&mut self, bytes: u64) {
        self.unreported += bytes;
    }
}

impl Drop for ConnectionPlay {
    fn drop(&mut self) {
        let Some(key) = self.session.take() else {
            return;
        };
        // Never borrowed across an await; a failed borrow would mean a bug, not a race.
        if let Ok(mut shard) = self.state.try_borrow_mut() {
            let shard = &mut *shard;
            let catalog = shard.catalog.clone();
            shard
                .auth
                .account_connection(key, Instant::now(), self.unreported);
            shard
                .auth
                .close_connection_session(&catalog, key, Instant::now());
        }
    }
}

/// A publisher's authorization (`Authorizer::authorize_publish`, the stream's
/// `on_publish`), waiting (bounded) for a portal when one is asked, like a play.
pub async fn authorize_publish(
    state: &Rc<RefCell<ShardState>>,
    stream: StreamId,
    token: Option<&[u8]>,
    ip: IpAddr,
) -> Result<(), DenyReason> {
    let qs = token_query(state, token);
    let request = PlayRequest {
        stream,
        proto: Proto::Rtmp,
        token,
        ip,
        user_agent: None,
        referer: None,
        qs: &qs,
    };
    let mut waited = false;
    loop {
        let answer = {
            let mut shard = state.borrow_mut();
            let shard = &mut *shard;
            let catalog = shard.catalog.clone();
            shard
                .auth
                .authorize_publish(&catalog, &request, Instant::now(), crate::utc::now_ms())
        };
        match answer {
            Authorization::Allow(_) => return Ok(()),
            Authorization::Deny(reason) => return Err(reason),
            // A publisher cannot follow a redirect.
            Authorization::Redirect(_) => return Err(DenyReason::BackendDenied),
            Authorization::Pending(_) if waited => {
                let shard = state.borrow();
                return match shard.auth.unanswered_publish(&shard.catalog, stream) {
                    Verdict::Allow => Ok(()),
                    Verdict::Deny(reason) => Err(reason),
                };
            }
            Authorization::Pending(key) => {
                let wait = decision_wait(state);
                let ready = DecisionReady { state, key };
                futures_lite::future::or(ready, glommio::timer::sleep(wait)).await;
                waited = true;
            }
        }
    }
}
