//! `Fanout`: how an input on its owner shard reaches every shard. The event is applied to
//! the local `ShardState` directly and sent to every other shard over the channel mesh.
//! Events carry `Bytes`, so each extra shard costs a reference count, not a copy.

use crate::shard::ShardState;
use crate::stream::view::StreamEvent;
use glommio::channels::channel_mesh::Senders;
use std::cell::RefCell;
use std::rc::Rc;

pub struct Fanout {
    senders: Senders<StreamEvent>,
    state: Rc<RefCell<ShardState>>,
}

impl Fanout {
    pub fn new(senders: Senders<StreamEvent>, state: Rc<RefCell<ShardState>>) -> Self {
        Fanout { senders, state }
    }

    /// The shard's state (an input reports its status there).
    pub fn state(&self) -> &Rc<RefCell<ShardState>> {
        &self.state
    }

    /// Delivers `event` to every shard. Waits only if a peer's queue is full (a peer that
    /// is minutes behind), which throttles the input instead of growing memory.
    pub async fn publish(&self, event: StreamEvent) {
        let me = self.senders.peer_id();
        for peer in 0..self.senders.nr_consumers() {
            if peer != me && self.senders.send_to(peer, event.clone()).await.is_err() {
                log::warn!("shard {me}: shard {peer} no longer takes stream events");
            }
        }
        self.state.borrow_mut().apply(event);
    }
}
