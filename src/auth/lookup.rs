//! `Lookups`: the portal questions a shard has open, so that no question is asked twice.
//!
//! Owns: one `Pending` per decision key with the wakers of the local requests waiting for it,
//! the outbox of keys the
//! runtime has yet to send (to the owner shard, or to the portal when this shard owns the
//! key), and the question itself (`PortalQuestion`, owned, `Send`, so it can cross shards;
//! the owner sends the outcome with the question to every shard, asked or not).
//!
//! Never does: I/O, clocks, or deciding. Coalescing is two-level: every shard asks once per
//! key however many of its viewers wait, and the owner shard (the key's hash modulo the
//! shard count) asks the portal once however many shards ask it (spec §7.1).

use crate::auth::catalog::PolicyId;
use crate::auth::portal::RequestType;
use crate::auth::session::SessionId;
use crate::auth::verdict::{Proto, StreamId};
use ahash::AHashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::task::Waker;
use std::time::Instant;

/// Everything a portal request says, owned (it may travel to the owner shard).
#[derive(Clone, Debug)]
pub struct PortalQuestion {
    /// The decision key's hash (process-wide seeds: the same on every shard).
    pub key: u64,
    pub policy: PolicyId,
    pub stream: StreamId,
    pub proto: Proto,
    pub ip: IpAddr,
    pub token: Option<Box<[u8]>>,
    pub user_agent: Option<Box<[u8]>>,
    pub referer: Option<Box<[u8]>>,
    pub qs: Box<[u8]>,
    pub session_id: SessionId,
    pub request_type: RequestType,
    pub request_number: u64,
    pub stream_clients: u64,
    pub total_clients: u64,
}

struct Pending {
    question: PortalQuestion,
    waiters: Vec<Waker>,
    since: Instant,
}

/// A finished lookup.
pub struct Finished {
    pub question: PortalQuestion,
}

#[derive(Default)]
pub struct Lookups {
    pending: AHashMap<u64, Pending>,
    outbox: VecDeque<u64>,
    dispatcher: Option<Waker>,
}

impl Lookups {
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn is_pending(&self, key: u64) -> bool {
        self.pending.contains_key(&key)
    }

    /// Opens a lookup for a local request; `false` when one is already open for the key
    /// (the caller just waits for it).
    pub fn begin(&mut self, question: PortalQuestion, now: Instant) -> bool {
        let key = question.key;
        if self.pending.contains_key(&key) {
            return false;
        }
        self.pending.insert(
            key,
            Pending {
                question,
                waiters: Vec::new(),
                since: now,
            },
        );
        self.queue(key);
        true
    }

    /// On the owner: another shard asks `question`. Returns `true` when the portal must be
    /// asked (nothing was open for the key); otherwise the open lookup answers it too.
    pub fn begin_remote(&mut self, question: PortalQuestion, now: Instant) -> bool {
        self.begin(question, now)
    }

    fn queue(&mut self, key: u64) {
        self.outbox.push_back(key);
        self.wake_dispatcher();
    }

    /// Tells the runtime's dispatcher there is something to send (questions, user events).
    pub fn wake_dispatcher(&mut self) {
        if let Some(w) = self.dispatcher.take() {
            w.wake();
        }
    }

    /// Registers the dispatcher's waker (it found nothing to send).
    pub fn park_dispatcher(&mut self, dispatcher: &Waker) {
        self.dispatcher = Some(dispatcher.clone());
    }

    /// Registers a request waiting for `key`'s answer; `false` when nothing is pending.
    pub fn wait(&mut self, key: u64, waker: &Waker) -> bool {
        match self.pending.get_mut(&key) {
            Some(p) => {
                if !p.waiters.iter().any(|w| w.will_wake(waker)) {
                    p.waiters.push(waker.clone());
                }
                true
            }
            None => false,
        }
    }

    /// The next question to send, if any.
    pub fn next_to_send(&mut self) -> Option<PortalQuestion> {
        while let Some(key) = self.outbox.pop_front() {
            if let Some(p) = self.pending.get(&key) {
                return Some(p.question.clone());
            }
        }
        None
    }

    /// Closes the lookup of `key`, waking its local waiters.
    pub fn finish(&mut self, key: u64) -> Option<Finished> {
        let p = self.pending.remove(&key)?;
        for w in p.waiters {
            w.wake();
        }
        Some(Finished {
            question: p.question,
        })
    }

    /// Lookups open since before `cutoff` (their answer was lost: a shard went away); the
    /// caller finishes them as unanswered.
    pub fn overdue(&self, cutoff: Instant) -> Vec<u64> {
        self.pending
            .iter()
            .filter(|(_, p)| p.since < cutoff)
            .map(|(&k, _)| k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn question(key: u64) -> PortalQuestion {
        PortalQuestion {
            key,
            policy: 0,
            stream: 0,
            proto: Proto::Hls,
            ip: "127.0.0.1".parse().unwrap(),
            token: Some(b"t".as_slice().into()),
            user_agent: None,
            referer: None,
            qs: Box::default(),
            session_id: SessionId::from_random([0; 16]),
            request_type: RequestType::NewSession,
            request_number: 1,
            stream_clients: 0,
            total_clients: 0,
        }
    }

    #[test]
    fn one_question_per_key_however_many_wait() {
        let mut l = Lookups::default();
        let now = Instant::now();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        assert!(l.begin(question(1), now));
        assert!(!l.begin(question(1), now), "coalesced");
        assert!(l.wait(1, &waker));
        let other = Arc::new(Count(AtomicUsize::new(0)));
        assert!(l.wait(1, &Waker::from(other.clone())));
        assert_eq!(l.next_to_send().map(|q| q.key), Some(1));
        assert!(l.next_to_send().is_none());
        let done = l.finish(1).unwrap();
        assert_eq!(done.question.key, 1);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(other.0.load(Ordering::Relaxed), 1);
        assert!(!l.wait(1, &waker));
        assert!(l.finish(1).is_none());
    }

    #[test]
    fn the_owner_asks_once_for_every_shard() {
        let mut l = Lookups::default();
        let now = Instant::now();
        assert!(l.begin_remote(question(5), now));
        assert!(!l.begin_remote(question(5), now));
        assert!(!l.begin(question(5), now), "a local request joins too");
        assert!(l.finish(5).is_some());
        assert!(l.begin(question(5), now + Duration::from_secs(1)));
        assert_eq!(l.overdue(now + Duration::from_secs(1)), Vec::<u64>::new());
        assert_eq!(l.overdue(now + Duration::from_secs(2)), vec![5]);
    }
}
