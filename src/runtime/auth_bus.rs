//! `AuthBus`: how shards talk about authorization, over a glommio channel mesh of
//! `AuthMsg` (the stream mesh carries media; this one carries decisions).
//!
//! - Portal questions: a shard's `Lookups` outbox is drained by the dispatcher task. The
//!   shard that claims the key's slot in the process-wide `PortalClaims` asks the portal
//!   itself (`PortalClient`), so a cold decision crosses no shard; a question whose slot
//!   another shard holds goes to that shard, which asks once for every shard that asked.
//!   The asker sends the outcome to every shard.
//! - User session events go to the owner shard of the user, whose `UserSessions` names the
//!   sessions a limit closes; those are revoked on every shard (fire and forget).
//! - Operator API calls run as gathers: every shard applies the call (list sessions,
//!   metrics, revoke, reauth, delete) to its own state and answers with its part.
//!
//! Sends never wait while a handler runs: a full peer queue gets the message from a spawned
//! task, so two shards answering each other cannot deadlock.

use crate::auth::claims::{Claim, PortalClaims};
use crate::auth::lookup::PortalQuestion;
use crate::auth::revoke::RevokeTarget;
use crate::auth::verdict::{DenyReason, StreamId};
use crate::auth::{PortalOutcome, UserEvent};
use crate::http::api::{MetricsSnapshot, SessionInfo};
use crate::runtime::operator_api::{shard_metrics, shard_sessions};
use crate::runtime::portal_client::{PortalClient, PortalTime};
use crate::runtime::webrtc_conn::WebRtcEndpoint;
use crate::shard::{Outgoing, ShardState};
use ahash::AHashMap;
use glommio::channels::channel_mesh::{Receivers, Senders};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// Messages queued per peer before a sender has to wait.
pub const AUTH_MESH_QUEUE: usize = 1024;
/// How long after its viewers were answered a decision is copied to the other shards.
/// Waking another shard at once competes with the answer on its way out (measured on 2
/// cores, `tools/measure-portal.sh` with `SHARDS=2`: 40-70 µs of the median cold request);
/// a request on another shard meanwhile finds the key's claim held here and is answered
/// from this shard's memory of the outcome (one hop, no second portal question).
const ANSWER_COPY_DELAY: Duration = Duration::from_millis(1);
/// How long an API call waits for the other shards' parts.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

/// What one shard tells another about authorization.
#[derive(Debug)]
pub enum AuthMsg {
    /// To the holder of `question.key`'s claim: ask the portal (or join the open question).
    Ask {
        from: usize,
        question: PortalQuestion,
    },
    /// From the asker, to every shard: how a question ended, and the portal's share of
    /// the time it took (zero when answered from memory).
    Answer {
        question: PortalQuestion,
        outcome: PortalOutcome,
        portal: Duration,
    },
    /// Applied by everyone (session limits).
    Revoke {
        target: RevokeTarget,
        reason: DenyReason,
    },
    /// To the owner of the user.
    User { from: usize, event: UserEvent },
    /// An API call's share for the receiver.
    Gather {
        from: usize,
        id: u64,
        call: GatherCall,
    },
    /// The receiver's share of gather `id`.
    Gathered { id: u64, part: GatherPart },
}

/// What every shard does for an API call.
#[derive(Clone, Debug)]
pub enum GatherCall {
    Sessions,
    Metrics,
    Revoke {
        target: RevokeTarget,
        reason: DenyReason,
    },
    Reauth {
        stream: StreamId,
    },
    /// `DELETE` of a WHEP session resource, which any shard's connection may take: the
    /// shard holding the session ends it (`Count(1)`).
    EndWhep {
        id: String,
    },
}

/// One shard's answer to a gather.
#[derive(Debug)]
pub enum GatherPart {
    Sessions(Vec<SessionInfo>),
    Metrics(Box<MetricsSnapshot>),
    /// Sessions cut, or decisions marked for re-asking.
    Count(u64),
}

struct Gathering {
    parts: Vec<GatherPart>,
    missing: usize,
    waker: Option<Waker>,
}

pub struct AuthBus {
    me: usize,
    shards: usize,
    senders: Senders<AuthMsg>,
    state: Rc<RefCell<ShardState>>,
    portal: Rc<PortalClient>,
    claims: Arc<PortalClaims>,
    gathers: RefCell<AHashMap<u64, Gathering>>,
    next_gather: std::cell::Cell<u64>,
    /// The shard's WebRTC endpoint (`EndWhep`), when it has one.
    webrtc: RefCell<Option<Rc<WebRtcEndpoint>>>,
}

impl AuthBus {
    /// Joins the bus and starts its tasks: one receiver per peer and the dispatcher.
    pub fn start(
        senders: Senders<AuthMsg>,
        mut receivers: Receivers<AuthMsg>,
        state: Rc<RefCell<ShardState>>,
        claims: Arc<PortalClaims>,
    ) -> Rc<AuthBus> {
        let catalog = state.borrow().catalog().clone();
        let bus = Rc::new(AuthBus {
            me: senders.peer_id(),
            shards: senders.nr_consumers().max(1),
            senders,
            state,
            portal: PortalClient::new(catalog),
            claims,
            gathers: RefCell::new(AHashMap::new()),
            next_gather: std::cell::Cell::new(0),
            webrtc: RefCell::new(None),
        });
        for (_, receiver) in receivers.streams() {
            let bus = bus.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = receiver.recv().await {
                    bus.handle(msg);
                }
            })
            .detach();
        }
        glommio::spawn_local(bus.clone().dispatch()).detach();
        bus
    }

    /// Delivers `msg` to shard `to` (handled here when `to` is this shard). Never waits:
    /// when the peer's queue is full, a task of its own waits to send it.
    fn send(self: &Rc<Self>, to: usize, msg: AuthMsg) {
        if to == self.me {
            self.handle(msg);
            return;
        }
        match self.senders.try_send_to(to, msg) {
            Ok(()) => {}
            Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg))) => {
                let bus = self.clone();
                glommio::spawn_local(async move {
                    if bus.senders.send_to(to, msg).await.is_err() {
                        log::warn!("shard {to} no longer takes auth messages");
                    }
                })
                .detach();
            }
            Err(e) => log::warn!("cannot send an auth message to shard {to}: {e}"),
        }
    }

    /// Handles one message addressed to this shard. Never holds a borrow across an await.
    fn handle(self: &Rc<Self>, msg: AuthMsg) {
        let now = Instant::now();
        match msg {
            AuthMsg::Ask { from, question } => {
                // Queued in the outbox; the dispatcher asks the portal (this shard holds
                // the claim), unless the question crossed this key's answer on its way here.
                let settled = self
                    .state
                    .borrow_mut()
                    .queue_portal_question(question.clone(), now);
                if let Some(outcome) = settled {
                    let portal = Duration::ZERO;
                    self.send(
                        from,
                        AuthMsg::Answer {
                            question,
                            outcome,
                            portal,
                        },
                    );
                }
            }
            AuthMsg::Answer {
                question,
                outcome,
                portal,
            } => {
                let mut state = self.state.borrow_mut();
                let opened = state.portal_question_opened(question.key);
                state.settle_portal_question(&question, &outcome, now);
                if let Some(opened) = opened {
                    let times = DecisionTimes {
                        opened,
                        asked: None,
                        portal,
                        settled: now,
                    };
                    times.trace(question.key);
                }
            }
            AuthMsg::Revoke { target, reason } => {
                self.state.borrow_mut().revoke(&target, reason, now);
            }
            AuthMsg::User { from, event } => self.user_event(from, event, now),
            AuthMsg::Gather { from, id, call } => {
                let part = self.local_part(&call);
                self.send(from, AuthMsg::Gathered { id, part });
            }
            AuthMsg::Gathered { id, part } => {
                let mut gathers = self.gathers.borrow_mut();
                if let Some(g) = gathers.get_mut(&id) {
                    g.parts.push(part);
                    g.missing = g.missing.saturating_sub(1);
                    if g.missing == 0
                        && let Some(w) = g.waker.take()
                    {
                        w.wake();
                    }
                }
            }
        }
    }

    /// On the user's owner shard: counts the session, and cuts those over the limit.
    fn user_event(self: &Rc<Self>, from: usize, event: UserEvent, now: Instant) {
        if let Some(link) = crate::runtime::cluster::link() {
            link.send(crate::runtime::cluster::ToRedis::User {
                event: event.clone(),
                at_ms: crate::runtime::cluster::unix_ms(),
            });
        }
        let cut = self.state.borrow_mut().count_user_session(from, event, now);
        for (session, reason) in cut {
            log::info!("session limit: closing session {session} ({reason})");
            for shard in 0..self.shards {
                self.send(
                    shard,
                    AuthMsg::Revoke {
                        target: RevokeTarget::Session(session),
                        reason,
                    },
                );
            }
        }
    }

    /// Drains the shard's outbox: portal questions and user events, each to its owner.
    async fn dispatch(self: Rc<Self>) {
        loop {
            let outgoing = std::future::poll_fn(|cx| {
                match self.state.borrow_mut().next_outgoing(cx.waker()) {
                    Some(outgoing) => Poll::Ready(outgoing),
                    None => Poll::Pending,
                }
            })
            .await;
            match outgoing {
                Outgoing::Question(q) => self.route_question(q),
                Outgoing::UserEvents(events) => {
                    for event in events {
                        let user = match &event {
                            UserEvent::Opened { user, .. } | UserEvent::Closed { user, .. } => user,
                        };
                        let owner = self.state.borrow().user_owner(user);
                        let me = self.me;
                        self.send(owner, AuthMsg::User { from: me, event });
                    }
                }
            }
        }
    }

    /// Asks the portal here when this shard holds the key's claim (always, with one
    /// shard); otherwise sends the question to the shard that holds it.
    fn route_question(self: &Rc<Self>, q: PortalQuestion) {
        let now = Instant::now();
        let longest = self.state.borrow().catalog().max_backend_timeout();
        match self.claims.claim(q.key, self.me, now, longest) {
            Claim::Mine => {
                glommio::spawn_local(self.clone().ask_portal(q, now)).detach();
            }
            Claim::Held(holder) => {
                let me = self.me;
                self.send(
                    holder,
                    AuthMsg::Ask {
                        from: me,
                        question: q,
                    },
                );
            }
        }
    }

    /// On the claim's holder: asks the portal, settles the question here and tells every
    /// shard (not only those that asked: the viewer's next request may land anywhere).
    async fn ask_portal(self: Rc<Self>, q: PortalQuestion, claimed: Instant) {
        let (outcome, time) = self.portal.ask(&q).await;
        let portal = time.map_or(Duration::ZERO, |t| t.portal);
        let now = Instant::now();
        let opened = {
            let mut shard = self.state.borrow_mut();
            let opened = shard.portal_question_opened(q.key);
            shard.settle_portal_question(&q, &outcome, now);
            opened
        };
        // The requests just woken answer their viewers first; the other shards' copies and
        // the decision's log line come after (a yield puts this task behind them), the
        // copies `ANSWER_COPY_DELAY` later still.
        futures_lite::future::yield_now().await;
        if self.shards > 1 {
            glommio::timer::sleep(ANSWER_COPY_DELAY).await;
        }
        for shard in (0..self.shards).filter(|&s| s != self.me) {
            self.send(
                shard,
                AuthMsg::Answer {
                    question: q.clone(),
                    outcome: outcome.clone(),
                    portal,
                },
            );
        }
        self.state
            .borrow_mut()
            .record_portal_answer(&q, &outcome, now.duration_since(claimed));
        if let Some(opened) = opened {
            let times = DecisionTimes {
                opened,
                asked: Some((claimed, time)),
                portal,
                settled: now,
            };
            times.trace(q.key);
        }
    }

    /// This shard's share of an API call.
    fn local_part(&self, call: &GatherCall) -> GatherPart {
        let now = Instant::now();
        let mut shard = self.state.borrow_mut();
        match call {
            GatherCall::Sessions => {
                GatherPart::Sessions(shard_sessions(&shard, crate::shard::Now::read()))
            }
            GatherCall::Metrics => GatherPart::Metrics(Box::new(shard_metrics(&shard))),
            GatherCall::Revoke { target, reason } => {
                GatherPart::Count(shard.revoke(target, *reason, now) as u64)
            }
            GatherCall::Reauth { stream } => {
                GatherPart::Count(shard.reauth_stream(*stream, now) as u64)
            }
            GatherCall::EndWhep { id } => {
                let webrtc = self.webrtc.borrow();
                GatherPart::Count(u64::from(webrtc.as_ref().is_some_and(|w| w.end(id))))
            }
        }
    }

    /// Runs `call` on every shard and returns their parts (those that answered within
    /// `GATHER_TIMEOUT`; the count of parts tells how many).
    pub async fn gather(self: &Rc<Self>, call: GatherCall) -> Vec<GatherPart> {
        let id = self.next_gather.get();
        self.next_gather.set(id + 1);
        let local = self.local_part(&call);
        self.gathers.borrow_mut().insert(
            id,
            Gathering {
                parts: vec![local],
                missing: self.shards - 1,
                waker: None,
            },
        );
        for shard in (0..self.shards).filter(|&s| s != self.me) {
            let me = self.me;
            self.send(
                shard,
                AuthMsg::Gather {
                    from: me,
                    id,
                    call: call.clone(),
                },
            );
        }
        let done = std::future::poll_fn(|cx| {
            let mut gathers = self.gathers.borrow_mut();
            match gathers.get_mut(&id) {
                Some(g) if g.missing > 0 => {
                    g.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                _ => Poll::Ready(()),
            }
        });
        futures_lite::future::or(done, glommio::timer::sleep(GATHER_TIMEOUT)).await;
        self.gathers
            .borrow_mut()
            .remove(&id)
            .map(|g| g.parts)
            .unwrap_or_default()
    }

    /// Gives the bus the shard's WebRTC endpoint (`EndWhep`).
    pub fn set_webrtc(&self, endpoint: Rc<WebRtcEndpoint>) {
        *self.webrtc.borrow_mut() = Some(endpoint);
    }

    /// Ends WHEP resource `id` on whichever shard holds it; `false` when none does.
    pub async fn end_whep(self: &Rc<Self>, id: String) -> bool {
        let parts = self.gather(GatherCall::EndWhep { id }).await;
        parts
            .iter()
            .any(|p| matches!(p, GatherPart::Count(n) if *n > 0))
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The authorizer's keyed hash of a token (what a fleet revocation carries).
    pub fn token_hash(&self, token: &[u8]) -> u64 {
        self.state.borrow().authorizer().token_hash(token)
    }
}

/// Where a cold decision's time went on the viewer's shard, logged at trace level
/// (`TESSERA_LOG=trace`; `PHASES=1 tools/measure-portal.sh` takes the medians): from the
/// question opened (the request's `now`, before its head was parsed) to its verdict settled
/// there; the portal's share (request written to answer read); tessera's, the rest. When
/// this shard asked: `dispatch` (opened to claimed: the request's own handling, the
/// dispatcher), `prepare` (claimed to the send: the question's task, pool, request), `send`
/// (the send call) and `settle` (answer read to settled). Keys only, never tokens.
struct DecisionTimes {
    opened: Instant,
    /// When this shard claimed the key, and its portal timing (`None`: another shard asked).
    asked: Option<(Instant, Option<PortalTime>)>,
    portal: Duration,
    settled: Instant,
}

impl DecisionTimes {
    fn trace(&self, key: u64) {
        if !log::log_enabled!(log::Level::Trace) {
            return;
        }
        let us = |from: Instant, to: Instant| to.saturating_duration_since(from).as_micros();
        let total = self.settled.saturating_duration_since(self.opened);
        let mut phases = String::new();
        if let Some((claimed, time)) = self.asked {
            phases = format!(" dispatch_us={}", us(self.opened, claimed));
            if let Some(t) = time {
                phases += &format!(
                    " prepare_us={} send_us={} settle_us={}",
                    us(claimed, t.sending),
                    us(t.sending, t.written),
                    us(t.written + t.portal, self.settled)
                );
            }
        }
        log::trace!(
            "portal decision key={key:016x} asked={} total_us={} portal_us={} tessera_us={}{phases}",
            if self.asked.is_some() {
                "here"
            } else {
                "elsewhere"
            },
            total.as_micros(),
            self.portal.as_micros(),
            total.saturating_sub(self.portal).as_micros(),
        );
    }
}
