//! When to try a failed origin again: exponential backoff with jitter, capped, and the
//! order a stream's sources are tried in (primary first, then each backup, round after
//! round). Sans-IO: the caller sleeps for what it is told.

/// First delay after a full round of failed sources.
const BASE_MS: u64 = 500;
/// Longest delay: an origin back after a restart is found within this.
const CAP_MS: u64 = 8_000;

/// Delays between rounds of failed sources: 0.5 s, 1 s, 2 s ... capped at 8 s, each with
/// up to half of it in random jitter (many edges reconnecting to one restarted origin do
/// not arrive in step).
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Self {
        Backoff {
            failures: 0,
            rng: seed | 1,
        }
    }

    /// A source delivered media: the next failure starts from the base delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay before the next round, in milliseconds; each call doubles the next.
    pub fn next_delay_ms(&mut self) -> u64 {
        let full = (BASE_MS << self.failures.min(16)).min(CAP_MS);
        self.failures = self.failures.saturating_add(1);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        full / 2 + self.rng % (full / 2 + 1)
    }
}

/// Which of a stream's sources to use: `0` is the primary (the first `input` line).
#[derive(Debug, Clone)]
pub struct Failover {
    sources: usize,
    current: usize,
    /// Sources that failed since one last delivered media.
    failed_in_round: usize,
}

impl Failover {
    pub fn new(sources: usize) -> Self {
        Failover {
            sources: sources.max(1),
            current: 0,
            failed_in_round: 0,
        }
    }

    pub fn current(&self) -> usize {
        self.current
    }

    /// The current source delivered media.
    pub fn delivered(&mut self) {
        self.failed_in_round = 0;
    }

    /// The current source failed: moves to the next one. Returns true when every source
    /// has failed in a row (time to back off before the next round).
    pub fn failed(&mut self) -> bool {
        self.failed_in_round += 1;
        self.current = (self.current + 1) % self.sources;
        if self.failed_in_round >= self.sources {
            self.failed_in_round = 0;
            self.current = 0;
            return true;
        }
        false
    }

    /// Back to the primary (it answered a probe while a backup ran).
    pub fn back_to_primary(&mut self) {
        self.current = 0;
        self.failed_in_round = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(42);
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay_ms()).collect();
        assert!((250..=500).contains(&delays[0]), "{delays:?}");
        assert!((500..=1000).contains(&delays[1]), "{delays:?}");
        assert!(
            delays[5..].iter().all(|d| (4000..=8000).contains(d)),
            "{delays:?}"
        );
        b.reset();
        assert!(b.next_delay_ms() <= 500);
    }

    #[test]
    fn sources_are_tried_in_order_then_a_round_backs_off() {
        let mut f = Failover::new(3);
        assert_eq!(f.current(), 0);
        assert!(!f.failed());
        assert_eq!(f.current(), 1);
        f.delivered();
        assert!(!f.failed());
        assert_eq!(f.current(), 2);
        assert!(!f.failed());
        assert_eq!(f.current(), 0);
        assert!(f.failed(), "three in a row: every source failed");
        assert_eq!(f.current(), 0, "the next round starts at the primary");
        let mut one = Failover::new(1);
        assert!(one.failed());
        assert_eq!(one.current(), 0);
    }
}
