//! `TimestampUnwrapper`: 33-bit PTS/DTS values (§2.4.3.7, 90 kHz, wrapping every 26.5 hours)
//! onto one continuous `i64` timeline.
//!
//! One unwrapper serves every track of a program, so video and audio stay on the same
//! timeline. Each value is placed at the point of the timeline nearest to the previous one
//! (at most 2^32 ticks, 13.25 hours, either way), which extends a wrap forwards and takes a
//! value slightly older than the last (audio after video, a B-frame's PTS) as what it is,
//! not as a wrap.

/// PTS and DTS are 33-bit counters.
pub const TIMESTAMP_BITS: u32 = 33;
const MODULUS: i64 = 1 << TIMESTAMP_BITS;
const HALF: i64 = MODULUS / 2;

/// Extends 33-bit timestamps to an unbounded timeline. The first value is taken as is.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimestampUnwrapper {
    last: Option<i64>,
}

impl TimestampUnwrapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// The timeline value of the 33-bit `raw` timestamp (higher bits are ignored).
    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let raw = (raw & (MODULUS as u64 - 1)) as i64;
        let value = match self.last {
            None => raw,
            Some(last) => {
                let delta = (raw - last).rem_euclid(MODULUS);
                let delta = if delta >= HALF {
                    delta - MODULUS
                } else {
                    delta
                };
                last + delta
            }
        };
        self.last = Some(value);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_is_kept_and_small_steps_follow() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap(126_000), 126_000);
        assert_eq!(u.unwrap(129_600), 129_600);
        // Older than the last (audio behind video): a step back, not a wrap.
        assert_eq!(u.unwrap(120_000), 120_000);
    }

    #[test]
    fn wrap_continues_forwards() {
        let mut u = TimestampUnwrapper::new();
        let near_end = (MODULUS - 1800) as u64;
        assert_eq!(u.unwrap(near_end), MODULUS - 1800);
        assert_eq!(u.unwrap(1800), MODULUS + 1800);
        // A B-frame's reordered value just before the wrap point stays before it.
        assert_eq!(u.unwrap(near_end + 900), MODULUS - 900);
        assert_eq!(u.unwrap(3600), MODULUS + 3600);
        // Several wraps in a row keep counting.
        let mut t = MODULUS + 3600;
        for _ in 0..5 {
            t += HALF - 1;
            assert_eq!(u.unwrap(t.rem_euclid(MODULUS) as u64), t);
        }
    }

    #[test]
    fn a_value_before_zero_goes_negative_instead_of_wrapping() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap(900), 900);
        assert_eq!(u.unwrap((MODULUS - 900) as u64), -900);
    }

    #[test]
    fn bits_above_33_are_ignored() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap((1 << 40) | 5), 5);
    }
}
