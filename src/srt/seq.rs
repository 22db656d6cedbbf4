//! SRT sequence numbers (draft-sharabayko-srt §3.1): 31-bit counters that wrap, compared by
//! their signed distance so that a number just past the wrap is "after" one just before it.
//! Owns the arithmetic only; buffers and loss lists use it.

/// A 31-bit packet sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SeqNo(u32);

impl SeqNo {
    /// The largest sequence number; the next one is 0.
    pub const MAX: u32 = 0x7FFF_FFFF;

    /// The sequence number `value` (its top bit dropped, as on the wire).
    pub const fn new(value: u32) -> SeqNo {
        SeqNo(value & Self::MAX)
    }

    pub const fn value(self) -> u32 {
        self.0
    }

    /// `self + n`, wrapping at 2^31.
    pub const fn add(self, n: u32) -> SeqNo {
        SeqNo::new(self.0.wrapping_add(n))
    }

    pub const fn next(self) -> SeqNo {
        self.add(1)
    }

    pub const fn prev(self) -> SeqNo {
        SeqNo::new(self.0.wrapping_sub(1))
    }

    /// How far `later` is after `self`: positive when `later` follows, negative when it
    /// precedes (the shorter way round the 2^31 circle).
    pub const fn distance_to(self, later: SeqNo) -> i32 {
        let d = later.0.wrapping_sub(self.0) & Self::MAX;
        if d > Self::MAX / 2 {
            (d as i64 - (Self::MAX as i64 + 1)) as i32
        } else {
            d as i32
        }
    }

    /// `self` comes strictly before `other`.
    pub const fn precedes(self, other: SeqNo) -> bool {
        self.distance_to(other) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_compares_across_the_wrap() {
        let last = SeqNo::new(SeqNo::MAX);
        assert_eq!(last.next(), SeqNo::new(0));
        assert_eq!(SeqNo::new(0).prev(), last);
        assert_eq!(last.distance_to(SeqNo::new(2)), 3);
        assert_eq!(SeqNo::new(2).distance_to(last), -3);
        assert!(last.precedes(SeqNo::new(0)));
        assert!(!SeqNo::new(5).precedes(SeqNo::new(5)));
        assert_eq!(SeqNo::new(0x8000_0001), SeqNo::new(1));
    }
}
