//! Timestamp-based packet delivery (draft-sharabayko-srt §4.5): maps a sender's 32-bit
//! microsecond timestamps (which wrap every ~71 minutes) onto the receiver's clock. The base
//! is the arrival of the first packet minus its timestamp; a packet is due at base +
//! timestamp + latency. Owns the mapping only; the receive buffer asks it.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct TsbpdClock {
    latency: Duration,
    /// (arrival, extended timestamp) of the first packet.
    origin: Option<(Instant, u64)>,
    /// The last extended timestamp seen, to unwrap the next.
    last: u64,
}

const WRAP: u64 = 1 << 32;

impl TsbpdClock {
    pub fn new(latency: Duration) -> TsbpdClock {
        TsbpdClock {
            latency,
            origin: None,
            last: 0,
        }
    }

    /// Extends a 32-bit timestamp to 64 bits: the candidate nearest the last one seen.
    pub fn extend(&mut self, ts: u32) -> u64 {
        let base = self.last & !(WRAP - 1);
        let candidates = [base.wrapping_sub(WRAP), base, base + WRAP];
        let ext = candidates
            .into_iter()
            .filter(|c| c.checked_add(u64::from(ts)).is_some())
            .map(|c| c.wrapping_add(u64::from(ts)))
            .min_by_key(|c| c.abs_diff(self.last))
            .unwrap_or(u64::from(ts));
        if self.origin.is_none() || ext > self.last {
            self.last = ext;
        }
        ext
    }

    /// Records a packet's arrival (the first sets the base).
    pub fn observe(&mut self, ext_ts: u64, arrival: Instant) {
        if self.origin.is_none() {
            self.origin = Some((arrival, ext_ts));
            self.last = ext_ts;
        }
    }

    /// When the packet with extended timestamp `ext_ts` is due; `None` before the first.
    pub fn due(&self, ext_ts: u64) -> Option<Instant> {
        let (arrival, first) = self.origin?;
        let at = if ext_ts >= first {
            arrival + Duration::from_micros(ext_ts - first)
        } else {
            let early = Duration::from_micros(first - ext_ts);
            arrival.checked_sub(early).unwrap_or(arrival)
        };
        Some(at + self.latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_and_schedules() {
        let t0 = Instant::now();
        let mut c = TsbpdClock::new(Duration::from_millis(120));
        let first = c.extend(0xFFFF_FF00);
        c.observe(first, t0);
        assert_eq!(c.due(first), Some(t0 + Duration::from_millis(120)));
        let after_wrap = c.extend(0x100);
        assert_eq!(after_wrap, (1 << 32) + 0x100);
        assert_eq!(
            c.due(after_wrap),
            Some(t0 + Duration::from_micros(0x200) + Duration::from_millis(120))
        );
        // A late packet from before the wrap still maps before it.
        assert_eq!(c.extend(0xFFFF_FF80), 0xFFFF_FF80);
    }
}
