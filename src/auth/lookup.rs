//! `Lookups`: the portal questions a shard has open, so that no question is asked twice.
//!
//! Owns: one `Pending` per decision key with the wakers of the local requests waiting for it,
//! the outbox of keys the runtime has yet to send (to the portal when this shard holds the
//! key's claim, `claims`, or to the shard that does), and the question itself
//! (`PortalQuestion`, owned, `Send`, so it can cross shards; the asker sends the outcome
//! with the question to every shard, asked or not).
//!
//! Never does: I/O, clocks, or deciding. Coalescing is two-level: every shard asks once per
//! key however many of its viewers wait, and the shard holding the key's claim asks the
//! portal once however many shards ask it (spec §7.1).
//!
//! A question can be on its way to the claim's holder while the holder settles the same
//! key: the asking shard opened it just before the holder's answer reached it. So a shard
//! remembers how each question it settled ended for `LATE_QUESTION_WINDOW`, and a remote
//! question for a key settled that recently is answered with that outcome instead of asking
//! the portal a second time.

use crate::auth::PortalOutcome;
use crate::auth::catalog::PolicyId;
use crate::auth::portal::RequestType;
use crate::auth::session::SessionId;
use crate::auth::verdict::{Proto, StreamId};
use ahash::AHashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::task::Waker;
use std::time::{Duration, Instant};

/// How long a settled question's outcome answers remote questions for the same key that
/// were sent before the answer reached their shard (at most the answer's own duration).
/// Mesh messages take microseconds to milliseconds; this is generous.
pub const LATE_QUESTION_WINDOW: Duration = Duration::from_secs(2);
/// Settled outcomes kept at most (the oldest are dropped first).
const SETTLED_CAPACITY: usize = 4096;

/// Everything a portal request says, owned (it may travel to another shard).
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
    /// When the asking shard opened it (a reauth after it makes its answer stale at once).
    pub opened: Instant,
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

/// How a question ended, kept for questions that were already on their way.
struct Settled {
    asked: Asked,
    outcome: PortalOutcome,
    until: Instant,
}

/// What identifies a settled question (not its headers or query, which a late question
/// need not repeat): kept small, since a shard may hold `SETTLED_CAPACITY` of them.
#[derive(Debug)]
struct Asked {
    key: u64,
    policy: PolicyId,
    stream: StreamId,
    ip: IpAddr,
    token: Option<Box<[u8]>>,
}

/// What the claim's holder does with another shard's question.
#[derive(Debug, PartialEq, Eq)]
pub enum RemoteQuestion {
    /// Nothing open or recently settled for the key: the portal must be asked.
    Ask,
    /// The open lookup's answer will serve it.
    Joined,
    /// Settled a moment ago: answer the asking shard with this.
    Settled(PortalOutcome),
}

#[derive(Default)]
pub struct Lookups {
    pending: AHashMap<u64, Pending>,
    outbox: VecDeque<u64>,
    dispatcher: Option<Waker>,
    settled: AHashMap<u64, Settled>,
    /// Keys in the order they were settled (`settled` has at most one entry per key).
    settled_order: VecDeque<(Instant, u64)>,
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

    /// On the claim's holder: another shard asks `question`. The portal is asked only when nothing
    /// is open for the key and nothing settled it within `LATE_QUESTION_WINDOW`.
    pub fn begin_remote(&mut self, question: PortalQuestion, now: Instant) -> RemoteQuestion {
        self.forget_settled(now);
        if let Some(s) = self.settled.get(&question.key)
            && s.until > now
            && same_question(&s.asked, &question)
        {
            return RemoteQuestion::Settled(s.outcome.clone());
        }
        if self.begin(question, now) {
            RemoteQuestion::Ask
        } else {
            RemoteQuestion::Joined
        }
    }

    /// Remembers how `question` ended (settled here at `now`) for late remote questions.
    pub fn remember(&mut self, question: &PortalQuestion, outcome: &PortalOutcome, now: Instant) {
        self.forget_settled(now);
        let hold = match outcome {
            PortalOutcome::Answered(a) => a.duration.min(LATE_QUESTION_WINDOW),
            PortalOutcome::Unreachable => LATE_QUESTION_WINDOW,
        };
        if hold.is_zero() {
            return;
        }
        while self.settled.len() >= SETTLED_CAPACITY {
            match self.settled_order.pop_front() {
                Some((at, key)) => self.forget_if_settled_at(key, at),
                None => break,
            }
        }
        let key = question.key;
        self.settled.insert(
            key,
            Settled {
                asked: Asked {
                    key,
                    policy: question.policy,
                    stream: question.stream,
                    ip: question.ip,
                    token: question.token.clone(),
                },
                outcome: outcome.clone(),
                until: now + hold,
            },
        );
        self.settled_order.push_back((now + hold, key));
    }

    /// Forgets the settled outcomes of `stream`'s questions: its decisions are being asked
    /// again on purpose (the operator's reauth), so no question may be answered by an
    /// outcome from before.
    pub fn forget_settled_stream(&mut self, stream: StreamId) {
        self.settled.retain(|_, s| s.asked.stream != stream);
    }

    /// Drops settled outcomes past their window.
    fn forget_settled(&mut self, now: Instant) {
        while let Some(&(until, key)) = self.settled_order.front() {
            if until > now {
                break;
            }
            self.settled_order.pop_front();
            self.forget_if_settled_at(key, until);
        }
    }

    /// Removes `key`'s settled outcome if it is the one recorded with `until` (a key settled
    /// again later has a newer entry, which stays).
    fn forget_if_settled_at(&mut self, key: u64, until: Instant) {
        if self.settled.get(&key).is_some_and(|s| s.until == until) {
            self.settled.remove(&key);
        }
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

    /// When the lookup of `key` was opened on this shard, while it is open.
    pub fn opened_at(&self, key: u64) -> Option<Instant> {
        self.pending.get(&key).map(|p| p.since)
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

/// Whether two questions under one key hash ask about the same thing (a hash collision
/// must not hand one viewer's outcome to another); the token in constant time.
fn same_question(a: &Asked, b: &PortalQuestion) -> bool {
    let token = match (&a.token, &b.token) {
        (Some(x), Some(y)) => crate::constant_time::constant_time_eq(x, y),
        (None, None) => true,
        _ => false,
    };
    token && a.key == b.key && a.policy == b.policy && a.stream == b.stream && a.ip == b.ip
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
            opened: Instant::now(),
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
        assert_eq!(l.begin_remote(question(5), now), RemoteQuestion::Ask);
        assert_eq!(l.begin_remote(question(5), now), RemoteQuestion::Joined);
        assert!(!l.begin(question(5), now), "a local request joins too");
        assert!(l.finish(5).is_some());
        assert!(l.begin(question(5), now + Duration::from_secs(1)));
        assert_eq!(l.overdue(now + Duration::from_secs(1)), Vec::<u64>::new());
        assert_eq!(l.overdue(now + Duration::from_secs(2)), vec![5]);
    }

    fn allow(secs: u64) -> PortalOutcome {
        PortalOutcome::Answered(crate::auth::portal::BackendAnswer {
            decision: crate::auth::portal::BackendDecision::Allow,
            duration: Duration::from_secs(secs),
            user_id: None,
            max_sessions: None,
            notes: Default::default(),
        })
    }

    #[test]
    fn a_question_on_its_way_when_the_key_was_settled_is_not_asked_again() {
        // Shard B opened a question just before the owner's answer reached it; its question
        // reaches the owner after the owner settled the key.
        let mut owner = Lookups::default();
        let now = Instant::now();
        assert!(owner.begin(question(7), now));
        let done = owner.finish(7).unwrap();
        owner.remember(&done.question, &allow(30), now);
        let late = now + Duration::from_millis(5);
        assert_eq!(
            owner.begin_remote(question(7), late),
            RemoteQuestion::Settled(allow(30))
        );
        assert!(!owner.is_pending(7), "nothing asked");
        assert!(owner.next_to_send().is_none());
        // Another viewer (another token, same key hash) is not answered by it.
        let mut other = question(7);
        other.token = Some(b"u".as_slice().into());
        assert_eq!(owner.begin_remote(other, late), RemoteQuestion::Ask);
    }

    #[test]
    fn a_settled_outcome_answers_late_questions_for_a_short_while_only() {
        let mut l = Lookups::default();
        let now = Instant::now();
        l.remember(&question(1), &allow(1), now);
        l.remember(&question(2), &PortalOutcome::Unreachable, now);
        l.remember(&question(3), &allow(0), now);
        let soon = now + Duration::from_millis(500);
        assert!(matches!(
            l.begin_remote(question(1), soon),
            RemoteQuestion::Settled(_)
        ));
        assert!(matches!(
            l.begin_remote(question(2), soon),
            RemoteQuestion::Settled(_)
        ));
        assert_eq!(
            l.begin_remote(question(3), soon),
            RemoteQuestion::Ask,
            "duration 0"
        );
        // Past the answer's own duration (1 s) and past the window (2 s).
        let later = now + Duration::from_millis(1500);
        assert_eq!(l.begin_remote(question(1), later), RemoteQuestion::Ask);
        let much_later = now + LATE_QUESTION_WINDOW;
        assert_eq!(l.begin_remote(question(2), much_later), RemoteQuestion::Ask);
        assert!(l.settled.is_empty() && l.settled_order.is_empty());
    }

    #[test]
    fn a_reauth_forgets_the_stream_s_outcomes() {
        let mut l = Lookups::default();
        let now = Instant::now();
        let mut elsewhere = question(2);
        elsewhere.stream = 1;
        l.remember(&question(1), &allow(30), now);
        l.remember(&elsewhere, &allow(30), now);
        l.forget_settled_stream(0);
        assert_eq!(l.begin_remote(question(1), now), RemoteQuestion::Ask);
        assert!(matches!(
            l.begin_remote(elsewhere, now),
            RemoteQuestion::Settled(_)
        ));
    }

    #[test]
    fn settled_outcomes_are_bounded() {
        let mut l = Lookups::default();
        let now = Instant::now();
        for key in 0..(SETTLED_CAPACITY as u64 + 10) {
            l.remember(&question(key), &allow(30), now + Duration::from_nanos(key));
        }
        assert_eq!(l.settled.len(), SETTLED_CAPACITY);
        assert_eq!(
            l.begin_remote(question(0), now),
            RemoteQuestion::Ask,
            "the oldest went"
        );
    }
}
