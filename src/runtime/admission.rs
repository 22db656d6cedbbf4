//! Admission of accepted TCP connections: the shard's caps (per protocol, per client IP)
//! and what happens when a protocol's cap is full.
//!
//! A flood of idle connections fills a cap in an instant, and refusing every connection
//! past it would lock real viewers out until the flood's connections hit their
//! first-request deadline. So a connection is a *newcomer* until it has asked for
//! something (an HTTP request head; an RTMP/RTSP request that needs an authorization):
//! when the cap is full, the oldest newcomer of that protocol gives its place to the new
//! connection (`Newcomers::evict_oldest`). A flood then only ever displaces itself, while
//! a viewer, which asks at once, is a newcomer for a round trip. Connections that have
//! asked are never displaced; when the cap holds nothing but those, the new connection is
//! refused as before (HTTP `503`, others closed).
//!
//! An evicted connection's task is dropped at its next poll (`Admission::run`): it has no
//! session, publish or authorization yet, so there is nothing to close.

use crate::runtime::stop_signal::StopSignal;
use crate::shard::{ConnKind, Refusal, ShardState};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::rc::{Rc, Weak};

/// An admitted connection's place in its shard's counts, given back exactly once: when it
/// is evicted, or when its task ends (or is dropped), whichever comes first.
struct Slot {
    state: Rc<RefCell<ShardState>>,
    kind: ConnKind,
    ip: IpAddr,
    released: Cell<bool>,
    /// Set once the connection asked for something: it is no newcomer any more.
    asked: Cell<bool>,
    evicted: StopSignal,
}

impl Slot {
    fn release(&self) {
        if !self.released.replace(true) {
            self.state.borrow_mut().close_connection(self.kind, self.ip);
        }
    }

    fn is_newcomer(&self) -> bool {
        !self.asked.get() && !self.released.get()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Held by a connection's task for as long as it runs.
pub struct Admission {
    slot: Rc<Slot>,
}

impl Admission {
    /// Takes in a connection of `kind` from `ip`: within the caps, or in the place of the
    /// oldest newcomer of that kind when the protocol's cap is full.
    pub fn take(
        state: &Rc<RefCell<ShardState>>,
        newcomers: &Rc<RefCell<Newcomers>>,
        kind: ConnKind,
        ip: IpAddr,
    ) -> Result<Admission, Refusal> {
        let room = state.borrow().connection_room(kind, ip);
        // Not within a borrow of the state: the evicted slot gives its place back to it.
        if room == Err(Refusal::ShardFull) && newcomers.borrow_mut().evict_oldest(kind) {
            state.borrow_mut().count_evicted();
        }
        state.borrow_mut().open_connection(kind, ip)?;
        let slot = Rc::new(Slot {
            state: state.clone(),
            kind,
            ip,
            released: Cell::new(false),
            asked: Cell::new(false),
            evicted: StopSignal::new(),
        });
        newcomers.borrow_mut().push(kind, &slot);
        Ok(Admission { slot })
    }

    /// What the connection's protocol code holds to say that it has asked for something.
    pub fn arrival(&self) -> Arrival {
        Arrival {
            slot: Rc::downgrade(&self.slot),
        }
    }

    /// Runs the connection's task until it ends or the connection is evicted; the place is
    /// given back either way.
    pub async fn run(self, task: impl std::future::Future<Output = ()>) {
        let _ = self.slot.evicted.unless_fired(task).await;
        self.slot.release();
    }
}

/// A connection's handle on its newcomer status.
#[derive(Clone, Default)]
pub struct Arrival {
    slot: Weak<Slot>,
}

impl Arrival {
    /// The connection asked for something (a request head, an authorization): it keeps its
    /// place from now on.
    pub fn asked(&self) {
        if let Some(slot) = self.slot.upgrade() {
            slot.asked.set(true);
        }
    }
}

/// A shard's newcomers of each kind, oldest first.
#[derive(Default)]
pub struct Newcomers {
    by_kind: [VecDeque<Weak<Slot>>; 3],
}

impl Newcomers {
    fn queue(&mut self, kind: ConnKind) -> &mut VecDeque<Weak<Slot>> {
        &mut self.by_kind[kind as usize]
    }

    fn push(&mut self, kind: ConnKind, slot: &Rc<Slot>) {
        let queue = self.queue(kind);
        prune_front(queue);
        // Entries behind a long-lived newcomer are not pruned from the front; compact
        // them now and then so the queue stays the size of the newcomers.
        if queue.len() >= 256 && queue.len().is_power_of_two() {
            queue.retain(|w| w.upgrade().is_some_and(|s| s.is_newcomer()));
        }
        queue.push_back(Rc::downgrade(slot));
    }

    /// Evicts the oldest newcomer of `kind`: its place is given back now and its task ends
    /// at its next poll. `false` when there is none.
    fn evict_oldest(&mut self, kind: ConnKind) -> bool {
        let queue = self.queue(kind);
        prune_front(queue);
        let Some(slot) = queue.pop_front().and_then(|w| w.upgrade()) else {
            return false;
        };
        slot.release();
        slot.evicted.fire();
        true
    }
}

/// Drops the entries at the front that are no newcomers any more (gone, or asked).
fn prune_front(queue: &mut VecDeque<Weak<Slot>>) {
    while let Some(front) = queue.front() {
        if front.upgrade().is_some_and(|s| s.is_newcomer()) {
            return;
        }
        queue.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::config::ConnectionCaps;
    use crate::http::limits::HttpLimits;
    use std::sync::Arc;

    fn shard(http_cap: usize) -> Rc<RefCell<ShardState>> {
        let config = crate::config::parse("stream a { input fake://fake; }", "t").unwrap();
        let catalog = Arc::new(Catalog::from_config(&config));
        let mut s = ShardState::new(0, 1, catalog, HttpLimits::default(), 1);
        s.set_connection_caps(ConnectionCaps {
            http: http_cap,
            rtmp: 1,
            rtsp: 1,
            per_ip: 100,
        });
        Rc::new(RefCell::new(s))
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn a_full_cap_displaces_its_oldest_newcomer_and_counts_once() {
        let state = shard(2);
        let newcomers = Rc::new(RefCell::new(Newcomers::default()));
        let take = |n| Admission::take(&state, &newcomers, ConnKind::Http, ip(n));
        let first = take(1).unwrap();
        let second = take(2).unwrap();
        second.arrival().asked();
        // Full: the oldest newcomer (`first`) gives its place; `second` asked and stays.
        let third = take(3).unwrap();
        assert!(first.slot.evicted.is_fired());
        assert!(!second.slot.evicted.is_fired());
        assert_eq!(state.borrow().open_connections(ConnKind::Http), 2);
        assert_eq!(state.borrow().connections_evicted(), 1);
        // The evicted connection's end gives nothing back twice.
        drop(first);
        assert_eq!(state.borrow().open_connections(ConnKind::Http), 2);
        // `third` asks too: no newcomer left, so the next is refused.
        third.arrival().asked();
        assert_eq!(take(4).err(), Some(Refusal::ShardFull));
        assert_eq!(state.borrow().connections_refused(), 1);
        drop((second, third));
        assert_eq!(state.borrow().open_connections(ConnKind::Http), 0);
        // Other kinds are their own: an RTMP newcomer is not displaced for HTTP.
        let rtmp = Admission::take(&state, &newcomers, ConnKind::Rtmp, ip(5)).unwrap();
        let _a = take(6).unwrap();
        let _b = take(7).unwrap();
        assert!(!rtmp.slot.evicted.is_fired());
    }

    #[test]
    fn the_queue_stays_the_size_of_its_newcomers() {
        let state = shard(100_000);
        let newcomers = Rc::new(RefCell::new(Newcomers::default()));
        // One newcomer that never asks, then many connections that come and go behind it.
        let _stuck = Admission::take(&state, &newcomers, ConnKind::Http, ip(1)).unwrap();
        for n in 0..10_000u32 {
            let a = Admission::take(&state, &newcomers, ConnKind::Http, ip(n as u8)).unwrap();
            if n % 2 == 0 {
                a.arrival().asked();
            }
        }
        assert!(newcomers.borrow().by_kind[0].len() <= 512);
    }
}
