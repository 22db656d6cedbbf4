//! The receiver's buffer (draft-sharabayko-srt §4.5, §4.8): packets by sequence number
//! from the next one to deliver, the holes between them (what the NAKs ask for), the ACK
//! point, and in-order delivery at each packet's TSBPD time, skipping holes whose time has
//! passed (too-late drop on the receiver, §4.6). Bounded: a packet further ahead than the
//! capacity is refused, so a forged sequence number cannot grow it.

use super::tsbpd::TsbpdClock;
use crate::srt::seq::SeqNo;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// Not received: a loss to NAK.
    Missing,
    /// The sender dropped it (DROPREQ): never NAKed, skipped at delivery.
    Dropped,
    Received {
        ext_ts: u64,
        payload: Vec<u8>,
    },
}

/// What happened to an arriving packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Stored; `gap` is the range it revealed as lost.
    Stored {
        gap: Option<(SeqNo, SeqNo)>,
    },
    Duplicate,
    /// Before the next to deliver (already delivered or skipped).
    TooOld,
    /// Further ahead than the buffer holds.
    TooFarAhead,
}

#[derive(Clone, Debug)]
pub struct ReceiveBuffer {
    /// The sequence number of `slots[0]`.
    head: SeqNo,
    slots: VecDeque<Slot>,
    capacity: usize,
    missing: usize,
    pub clock: TsbpdClock,
    /// Packets skipped at delivery because they never came.
    pub skipped: u64,
}

impl ReceiveBuffer {
    pub fn new(first: SeqNo, capacity: usize, clock: TsbpdClock) -> ReceiveBuffer {
        ReceiveBuffer {
            head: first,
            slots: VecDeque::new(),
            capacity,
            missing: 0,
            clock,
            skipped: 0,
        }
    }

    pub fn insert(&mut self, seq: SeqNo, ts: u32, payload: Vec<u8>, now: Instant) -> Arrival {
        let offset = self.head.distance_to(seq);
        let Ok(index) = usize::try_from(offset) else {
            return Arrival::TooOld;
        };
        if index >= self.capacity {
            return Arrival::TooFarAhead;
        }
        let ext_ts = self.clock.extend(ts);
        self.clock.observe(ext_ts, now);
        let mut gap = None;
        if index >= self.slots.len() {
            let lost = index - self.slots.len();
            if lost > 0 {
                let first = self.head.add(self.slots.len() as u32);
                gap = Some((first, seq.prev()));
                self.missing += lost;
            }
            self.slots.resize(index + 1, Slot::Missing);
        } else if matches!(self.slots[index], Slot::Received { .. }) {
            return Arrival::Duplicate;
        } else if self.slots[index] == Slot::Missing {
            self.missing -= 1;
        }
        self.slots[index] = Slot::Received { ext_ts, payload };
        Arrival::Stored { gap }
    }

    /// The ACK point: the first sequence number not received from the head on.
    pub fn ack_point(&self) -> SeqNo {
        let received = self
            .slots
            .iter()
            .take_while(|s| matches!(s, Slot::Received { .. }))
            .count();
        self.head.add(received as u32)
    }

    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.slots.len())
    }

    pub fn has_losses(&self) -> bool {
        self.missing > 0
    }

    /// The missing ranges, inclusive, in order.
    pub fn losses(&self) -> Vec<(SeqNo, SeqNo)> {
        let mut ranges: Vec<(SeqNo, SeqNo)> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if *slot != Slot::Missing {
                continue;
            }
            let seq = self.head.add(i as u32);
            match ranges.last_mut() {
                Some((_, last)) if last.next() == seq => *last = seq,
                _ => ranges.push((seq, seq)),
            }
        }
        ranges
    }

    /// The sender gave up on `first..=last` (DROPREQ): stop asking for them.
    pub fn sender_dropped(&mut self, first: SeqNo, last: SeqNo) {
        let start = self.head.distance_to(first).max(0) as usize;
        let end = (i64::from(self.head.distance_to(last)) + 1).max(0) as usize;
        for i in start..end.min(self.slots.len()) {
            if self.slots[i] == Slot::Missing {
                self.slots[i] = Slot::Dropped;
                self.missing -= 1;
            }
        }
    }

    /// The next payload due by `now`, in order. Holes before a due packet are skipped.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let (index, due) = self.first_received()?;
        if due > now {
            return None;
        }
        for _ in 0..index {
            if self.pop_front() == Some(Slot::Missing) {
                self.missing -= 1;
            }
            self.skipped += 1;
        }
        match self.pop_front() {
            Some(Slot::Received { payload, .. }) => Some(payload),
            _ => None,
        }
    }

    /// Everything still buffered, in order, holes skipped: the publisher said goodbye, so
    /// nothing more will come and nothing needs to wait for its time.
    pub fn drain_all(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(slot) = self.pop_front() {
            match slot {
                Slot::Received { payload, .. } => out.push(payload),
                _ => self.skipped += 1,
            }
        }
        self.missing = 0;
        out
    }

    /// When the next packet will be due.
    pub fn next_due(&self) -> Option<Instant> {
        self.first_received().map(|(_, due)| due)
    }

    fn first_received(&self) -> Option<(usize, Instant)> {
        self.slots.iter().enumerate().find_map(|(i, s)| match s {
            Slot::Received { ext_ts, .. } => self.clock.due(*ext_ts).map(|d| (i, d)),
            _ => None,
        })
    }

    fn pop_front(&mut self) -> Option<Slot> {
        let slot = self.slots.pop_front()?;
        self.head = self.head.next();
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LATENCY: Duration = Duration::from_millis(100);

    fn buffer() -> ReceiveBuffer {
        ReceiveBuffer::new(SeqNo::new(10), 64, TsbpdClock::new(LATENCY))
    }

    #[test]
    fn gaps_are_losses_until_filled() {
        let t0 = Instant::now();
        let mut b = buffer();
        assert_eq!(
            b.insert(SeqNo::new(10), 0, vec![0], t0),
            Arrival::Stored { gap: None }
        );
        let gap = Some((SeqNo::new(11), SeqNo::new(13)));
        assert_eq!(
            b.insert(SeqNo::new(14), 4000, vec![4], t0),
            Arrival::Stored { gap }
        );
        assert_eq!(b.ack_point(), SeqNo::new(11));
        assert_eq!(b.losses(), vec![(SeqNo::new(11), SeqNo::new(13))]);
        b.insert(SeqNo::new(12), 2000, vec![2], t0);
        assert_eq!(
            b.losses(),
            vec![
                (SeqNo::new(11), SeqNo::new(11)),
                (SeqNo::new(13), SeqNo::new(13))
            ]
        );
        assert_eq!(
            b.insert(SeqNo::new(12), 2000, vec![2], t0),
            Arrival::Duplicate
        );
        assert_eq!(b.insert(SeqNo::new(9), 0, vec![], t0), Arrival::TooOld);
        assert_eq!(
            b.insert(SeqNo::new(10 + 64), 0, vec![], t0),
            Arrival::TooFarAhead
        );
        b.sender_dropped(SeqNo::new(13), SeqNo::new(13));
        assert_eq!(b.losses(), vec![(SeqNo::new(11), SeqNo::new(11))]);
        assert!(b.has_losses());
    }

    #[test]
    fn delivers_in_order_at_tsbpd_time_and_skips_late_holes() {
        let t0 = Instant::now();
        let mut b = buffer();
        b.insert(SeqNo::new(10), 1_000, vec![0], t0);
        b.insert(SeqNo::new(12), 3_000, vec![2], t0);
        assert_eq!(b.pop_due(t0 + LATENCY - Duration::from_millis(1)), None);
        assert_eq!(b.pop_due(t0 + LATENCY), Some(vec![0]));
        assert_eq!(b.next_due(), Some(t0 + LATENCY + Duration::from_millis(2)));
        // 11 never came; 12 is due: 11 is skipped.
        assert_eq!(
            b.pop_due(t0 + LATENCY + Duration::from_millis(2)),
            Some(vec![2])
        );
        assert_eq!(b.skipped, 1);
        assert!(!b.has_losses());
        assert_eq!(b.ack_point(), SeqNo::new(13));
        b.insert(SeqNo::new(15), 5_000, vec![5], t0);
        b.insert(SeqNo::new(16), 6_000, vec![6], t0);
        assert_eq!(b.drain_all(), vec![vec![5], vec![6]]);
        assert_eq!((b.skipped, b.has_losses(), b.next_due()), (3, false, None));
    }
}
