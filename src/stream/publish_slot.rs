//! `PublishSlot`: the one cross-shard fact about a `publish://` stream: whether a publisher
//! holds it right now, and where the stream's timeline stands for the next one.
//!
//! A publisher may connect to any shard, and two may arrive at once on two shards; the
//! claim must be decided before the publisher is answered. The slot is a compare-and-swap
//! in the read-only `Catalog` (the one piece of interior mutability it has, touched twice
//! per publish, never per request or frame). A message to an owner shard would need a reply
//! channel and clean-up for a publisher that leaves while its claim is in flight; the
//! `catalog::PublishClaim` guard instead releases the slot on drop whatever ends the publish.
//!
//! Never does: media, fan-out, authorization (the shell asks the `Authorizer` first).

use crate::stream::live_input::Timeline;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// No wall-clock base recorded yet (the stream never had media).
const NO_BASE: i64 = i64::MIN;

/// Per `publish://` stream: `state` is `generation << 1 | live`.
#[derive(Debug, Default)]
pub struct PublishSlot {
    state: AtomicU64,
    next_dts: AtomicI64,
    next_sequence: AtomicU64,
    utc_base_ms: AtomicI64,
}

impl PublishSlot {
    pub fn new() -> Self {
        PublishSlot {
            utc_base_ms: AtomicI64::new(NO_BASE),
            ..PublishSlot::default()
        }
    }

    /// Takes the slot: the new publish generation (from 1) and the timeline to continue,
    /// or `None` while another publisher holds it.
    pub fn claim(&self) -> Option<(u64, Timeline)> {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if current & 1 == 1 {
                return None;
            }
            let generation = (current >> 1) + 1;
            match self.state.compare_exchange(
                current,
                (generation << 1) | 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let base = self.utc_base_ms.load(Ordering::Acquire);
                    let timeline = Timeline {
                        next_dts: self.next_dts.load(Ordering::Acquire),
                        next_sequence: self.next_sequence.load(Ordering::Acquire),
                        utc_base_ms: (base != NO_BASE).then_some(base),
                    };
                    return Some((generation, timeline));
                }
                Err(now) => current = now,
            }
        }
    }

    /// Gives the slot back with the timeline the publisher reached (written before the
    /// release, so the next claimer reads it).
    pub fn release(&self, generation: u64, timeline: Timeline) {
        if self.state.load(Ordering::Acquire) != (generation << 1) | 1 {
            return;
        }
        self.next_dts.store(timeline.next_dts, Ordering::Release);
        self.next_sequence
            .store(timeline.next_sequence, Ordering::Release);
        self.utc_base_ms
            .store(timeline.utc_base_ms.unwrap_or(NO_BASE), Ordering::Release);
        self.state.store(generation << 1, Ordering::Release);
    }

    /// Whether a publisher holds the slot.
    pub fn is_live(&self) -> bool {
        self.state.load(Ordering::Acquire) & 1 == 1
    }
}
