//! The runtime side of the play lifecycle (`auth::play`): awaiting what it asks for.
//!
//! `DecisionReady` is what a request awaits while a portal is asked about it: it resolves
//! when the shard's `Lookups` no longer hold the question (answered, or given up), woken by
//! `Authorizer::complete`, never by polling. `authorize` drives a connection's
//! `PlayLifecycle` to its decision (viewers and publishers alike); HTTP requests wait the
//! same way between two calls of the service.

use crate::auth::play::{PlayLifecycle, Step};
use crate::auth::session::SessionId;
use crate::auth::verdict::DenyReason;
use crate::shard::{Now, ShardState};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
            .verdict_pending(self.key, cx.waker())
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
    state.borrow().catalog().max_backend_timeout() + Duration::from_secs(1)
}

/// Waits (bounded by `decision_wait`) until the portal question `key` is settled.
pub async fn wait_for_verdict(state: &Rc<RefCell<ShardState>>, key: u64) {
    let ready = DecisionReady { state, key };
    futures_lite::future::or(ready, glommio::timer::sleep(decision_wait(state))).await;
}

/// Drives `play` to its decision, waiting for a portal's verdict when one is asked.
pub async fn authorize(
    state: &Rc<RefCell<ShardState>>,
    play: &mut PlayLifecycle,
) -> Result<(), DenyReason> {
    loop {
        let step = state.borrow_mut().decide_play(play, Now::read());
        match step {
            Step::Allowed => return Ok(()),
            Step::Denied(reason) => return Err(reason),
            Step::WaitForVerdict(key) => wait_for_verdict(state, key).await,
        }
    }
}

/// Opens `play`'s session (after an allow); its id, for logs.
pub fn open_session(
    state: &Rc<RefCell<ShardState>>,
    play: &mut PlayLifecycle,
) -> Option<SessionId> {
    state.borrow_mut().open_play_session(play, Instant::now())
}
