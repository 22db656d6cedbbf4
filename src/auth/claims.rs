//! `PortalClaims`: which shard asks the portal about a decision key, agreed between shards
//! without a message.
//!
//! Owns: a fixed table of atomic slots, shared by every shard of the process (an `Arc`).
//! A key hashes to a slot; a slot says which shard holds it and until when. The first shard
//! to claim a free (or expired) slot holds it and asks the portal itself; any other shard
//! with a question whose key falls in a held slot sends it to the holder (which joins it to
//! its open question, answers it with the outcome it just had, or asks), so one key is never
//! asked by two shards at once. A hold lasts the longest a question can take plus
//! `LATE_QUESTION_WINDOW`, so a question that crosses the holder's answer reaches the
//! holder, which remembers that answer for that long. Holds are never shortened: a shard
//! may have several questions out in one slot, and the table cannot count them.
//!
//! Why not the owner shard alone (the key's hash modulo the shards): with N shards, N-1 of
//! N cold decisions then cross to another shard and back, and each crossing wakes a sleeping
//! executor; with the table the shard whose viewer asked is the one that asks, unless
//! another shard asked about a key of the same slot a few seconds before.
//!
//! Never does: I/O, clocks (time is passed in), or remembering outcomes (`lookup` does).
//! One slot per key hash bucket, so unrelated keys share a slot: that only sends a question
//! to the holder (one hop, as the owner shard did), never asks twice.

use crate::auth::lookup::LATE_QUESTION_WINDOW;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Slots in the table (a power of two): 128 KiB. With questions spread over it, a fresh
/// key finds its slot held by another shard only when about that many questions were asked
/// within one hold.
pub const CLAIM_SLOTS: usize = 16 * 1024;
/// Bits of a slot word holding the holder's shard number plus one (0: free).
const SHARD_BITS: u32 = 16;

/// What `claim` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This shard holds the key's slot: it asks the portal.
    Mine,
    /// Shard `n` holds it: send it the question.
    Held(usize),
}

/// The process-wide claim table (see the module header).
pub struct PortalClaims {
    slots: Box<[AtomicU64]>,
    /// Hold deadlines are milliseconds since this instant.
    epoch: Instant,
}

impl PortalClaims {
    pub fn new(now: Instant) -> Self {
        PortalClaims {
            slots: (0..CLAIM_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: now,
        }
    }

    /// Shard `me` has a question under `key` to send at `now`; a question takes at most
    /// `longest_ask`. Holds (or extends) the slot for `me` when it is free, expired or
    /// already `me`'s; otherwise says who holds it.
    pub fn claim(&self, key: u64, me: usize, now: Instant, longest_ask: Duration) -> Claim {
        let slot = &self.slots[key as usize % CLAIM_SLOTS];
        let now_ms = self.ms_since_epoch(now);
        let until = now_ms.saturating_add(millis(longest_ask + LATE_QUESTION_WINDOW));
        let mut current = slot.load(Ordering::Acquire);
        loop {
            let (holder, held_until) = unpack(current);
            let live = held_until > now_ms;
            match holder {
                Some(other) if live && other != me => return Claim::Held(other),
                _ => {}
            }
            // A live hold of our own is only ever extended.
            let keep = if live { held_until } else { 0 };
            let next = pack(me, until.max(keep));
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Claim::Mine,
                Err(seen) => current = seen,
            }
        }
    }

    fn ms_since_epoch(&self, now: Instant) -> u64 {
        millis(now.saturating_duration_since(self.epoch))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A slot word: the deadline in ms since the epoch above the holder's shard number + 1.
fn pack(shard: usize, until_ms: u64) -> u64 {
    let until = until_ms.min(u64::MAX >> SHARD_BITS);
    (until << SHARD_BITS) | (shard as u64 + 1).min((1 << SHARD_BITS) - 1)
}

fn unpack(word: u64) -> (Option<usize>, u64) {
    let shard = word & ((1 << SHARD_BITS) - 1);
    let holder = shard.checked_sub(1).map(|s| s as usize);
    (holder, word >> SHARD_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const ASK: Duration = Duration::from_secs(3);

    #[test]
    fn the_first_shard_asks_and_the_others_are_sent_to_it() {
        let now = Instant::now();
        let claims = PortalClaims::new(now);
        assert_eq!(claims.claim(7, 1, now, ASK), Claim::Mine);
        assert_eq!(claims.claim(7, 0, now, ASK), Claim::Held(1));
        assert_eq!(claims.claim(7, 1, now, ASK), Claim::Mine, "again, its own");
        // Another key of the same slot goes to the holder too (one hop, never two asks).
        let same_slot = 7 + CLAIM_SLOTS as u64;
        assert_eq!(claims.claim(same_slot, 2, now, ASK), Claim::Held(1));
        assert_eq!(claims.claim(8, 0, now, ASK), Claim::Mine, "another slot");
    }

    #[test]
    fn a_hold_outlasts_the_question_and_the_late_window_then_ends() {
        let now = Instant::now();
        let claims = PortalClaims::new(now);
        assert_eq!(claims.claim(3, 0, now, ASK), Claim::Mine);
        let last_held = now + ASK + LATE_QUESTION_WINDOW - Duration::from_millis(1);
        assert_eq!(claims.claim(3, 1, last_held, ASK), Claim::Held(0));
        let expired = now + ASK + LATE_QUESTION_WINDOW;
        assert_eq!(claims.claim(3, 1, expired, ASK), Claim::Mine);
        assert_eq!(claims.claim(3, 0, expired, ASK), Claim::Held(1));
    }

    #[test]
    fn a_hold_is_extended_never_shortened() {
        let now = Instant::now();
        let claims = PortalClaims::new(now);
        assert_eq!(
            claims.claim(3, 0, now, Duration::from_secs(10)),
            Claim::Mine
        );
        // A later, shorter claim of the same holder keeps the first deadline.
        let later = now + Duration::from_secs(1);
        assert_eq!(claims.claim(3, 0, later, Duration::ZERO), Claim::Mine);
        let after_short = later + LATE_QUESTION_WINDOW + Duration::from_millis(1);
        assert_eq!(claims.claim(3, 1, after_short, ASK), Claim::Held(0));
    }

    #[test]
    fn shards_racing_for_one_key_agree_on_one_asker() {
        for round in 0..200u64 {
            let now = Instant::now();
            let claims = Arc::new(PortalClaims::new(now));
            let racers: Vec<_> = (0..4)
                .map(|shard| {
                    let claims = claims.clone();
                    std::thread::spawn(move || claims.claim(round, shard, now, ASK))
                })
                .collect();
            let claims: Vec<Claim> = racers.into_iter().map(|r| r.join().unwrap()).collect();
            let askers: Vec<usize> = (0..4).filter(|&s| claims[s] == Claim::Mine).collect();
            assert_eq!(askers.len(), 1, "{claims:?}");
            let asker = askers[0];
            assert!(
                claims
                    .iter()
                    .enumerate()
                    .all(|(s, c)| s == asker || *c == Claim::Held(asker)),
                "{claims:?}"
            );
        }
    }

    #[test]
    fn slot_words_round_trip() {
        assert_eq!(unpack(0), (None, 0));
        assert_eq!(unpack(pack(0, 5)), (Some(0), 5));
        assert_eq!(
            unpack(pack(63, u64::MAX)),
            (Some(63), u64::MAX >> SHARD_BITS)
        );
    }
}
