//! The round-trip time estimate (draft-sharabayko-srt §4.10): smoothed RTT and its
//! variance, from ACK/ACKACK pairs when tessera receives, or taken from the receiver's
//! ACKs when tessera sends. Starts at 100 ms / 50 ms as libsrt does.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtt {
    pub smoothed: Duration,
    pub variance: Duration,
}

impl Default for Rtt {
    fn default() -> Self {
        Rtt {
            smoothed: Duration::from_millis(100),
            variance: Duration::from_millis(50),
        }
    }
}

impl Rtt {
    /// A new sample from an ACK/ACKACK pair: RTT = 7/8 RTT + 1/8 sample, variance =
    /// 3/4 variance + 1/4 |RTT - sample|.
    pub fn sample(&mut self, rtt: Duration) {
        let diff = self.smoothed.abs_diff(rtt);
        self.variance = (self.variance * 3 + diff) / 4;
        self.smoothed = (self.smoothed * 7 + rtt) / 8;
    }

    /// The receiver's own estimate, carried in its ACK.
    pub fn from_peer(&mut self, rtt_us: u32, var_us: u32) {
        self.smoothed = Duration::from_micros(u64::from(rtt_us));
        self.variance = Duration::from_micros(u64::from(var_us));
    }

    /// The periodic NAK interval: RTT + 4 × variance, at least 20 ms (§4.8.2).
    pub fn nak_interval(&self) -> Duration {
        (self.smoothed + self.variance * 4).max(Duration::from_millis(20))
    }

    pub fn micros(&self) -> (u32, u32) {
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        (us(self.smoothed), us(self.variance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooths_toward_samples() {
        let mut rtt = Rtt::default();
        for _ in 0..100 {
            rtt.sample(Duration::from_millis(20));
        }
        assert!(rtt.smoothed.abs_diff(Duration::from_millis(20)) < Duration::from_micros(100));
        assert!(rtt.variance < Duration::from_millis(1));
        assert_eq!(
            rtt.nak_interval(),
            Duration::from_millis(20).max(rtt.smoothed + rtt.variance * 4)
        );
        rtt.from_peer(30_000, 1_000);
        assert_eq!(rtt.micros(), (30_000, 1_000));
        assert_eq!(rtt.nak_interval(), Duration::from_millis(34));
    }
}
