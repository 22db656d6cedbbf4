//! The sender's buffer (draft-sharabayko-srt §4.5, §4.6): every packet sent and not yet
//! acknowledged, kept for retransmission until an ACK covers it or it is too late to be
//! of use (too-late packet drop, §4.6). Bounded by packets and bytes; a full buffer refuses
//! the next packet (the viewer above decides what to skip). Sequence numbers in the buffer
//! are contiguous, so a lookup is an index.

use crate::srt::seq::SeqNo;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

/// The send buffer's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendLimits {
    pub packets: usize,
    pub bytes: usize,
}

impl Default for SendLimits {
    /// About 10 s of a 10 Mbit/s stream in 1316-byte payloads, libsrt's default buffer size.
    fn default() -> Self {
        SendLimits {
            packets: 8192,
            bytes: 12 * 1024 * 1024,
        }
    }
}

/// One packet in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    pub seq: SeqNo,
    pub msg_no: u32,
    /// When it was first sent: the too-late drop counts from here.
    pub origin: Instant,
    /// When it was last (re)sent.
    pub last_sent: Instant,
    pub retransmitted: bool,
    /// The whole datagram as first sent (encrypted when the connection is).
    pub datagram: Bytes,
}

/// The buffer is at its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferFull;

#[derive(Clone, Debug)]
pub struct SendBuffer {
    packets: VecDeque<InFlight>,
    bytes: usize,
    limits: SendLimits,
}

impl SendBuffer {
    pub fn new(limits: SendLimits) -> SendBuffer {
        SendBuffer {
            packets: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Would a datagram of `len` bytes fit?
    pub fn has_room(&self, len: usize) -> bool {
        self.packets.len() < self.limits.packets && self.bytes + len <= self.limits.bytes
    }

    /// Appends the next packet; its sequence number must follow the last one's.
    pub fn push(&mut self, packet: InFlight) -> Result<(), BufferFull> {
        if !self.has_room(packet.datagram.len()) {
            return Err(BufferFull);
        }
        debug_assert!(self.back_seq().is_none_or(|b| b.next() == packet.seq));
        self.bytes += packet.datagram.len();
        self.packets.push_back(packet);
        Ok(())
    }

    pub fn front_seq(&self) -> Option<SeqNo> {
        self.packets.front().map(|p| p.seq)
    }

    fn back_seq(&self) -> Option<SeqNo> {
        self.packets.back().map(|p| p.seq)
    }

    /// Removes every packet before `ack` (the receiver's next expected sequence number);
    /// returns how many. An ACK beyond what was sent is clamped.
    pub fn acknowledge(&mut self, ack: SeqNo) -> usize {
        let mut removed = 0;
        while let Some(front) = self.packets.front() {
            if !front.seq.precedes(ack) {
                break;
            }
            self.bytes -= front.datagram.len();
            self.packets.pop_front();
            removed += 1;
        }
        removed
    }

    /// The packet `seq`, if still buffered.
    pub fn get_mut(&mut self, seq: SeqNo) -> Option<&mut InFlight> {
        let front = self.front_seq()?;
        let index = usize::try_from(front.distance_to(seq)).ok()?;
        self.packets.get_mut(index)
    }

    /// The buffered part of the inclusive range `first..=last`, as indices.
    pub fn indices(&self, first: SeqNo, last: SeqNo) -> std::ops::Range<usize> {
        let Some(front) = self.front_seq() else {
            return 0..0;
        };
        let start = front.distance_to(first).max(0) as usize;
        let end = (i64::from(front.distance_to(last)) + 1).max(0) as usize;
        start.min(self.len())..end.min(self.len())
    }

    pub fn at_mut(&mut self, index: usize) -> Option<&mut InFlight> {
        self.packets.get_mut(index)
    }

    /// Drops the packets first sent before `cutoff`; returns the dropped range and the first
    /// one's message number, for the DROPREQ.
    pub fn drop_older_than(&mut self, cutoff: Instant) -> Option<(SeqNo, SeqNo, u32)> {
        let mut dropped: Option<(SeqNo, SeqNo, u32)> = None;
        while let Some(front) = self.packets.front() {
            if front.origin >= cutoff {
                break;
            }
            let (seq, msg) = (front.seq, front.msg_no);
            dropped = Some(dropped.map_or((seq, seq, msg), |(f, _, m)| (f, seq, m)));
            self.bytes -= front.datagram.len();
            self.packets.pop_front();
        }
        dropped
    }

    /// When the oldest packet was first sent.
    pub fn oldest_origin(&self) -> Option<Instant> {
        self.packets.front().map(|p| p.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn packet(seq: u32, at: Instant) -> InFlight {
        InFlight {
            seq: SeqNo::new(seq),
            msg_no: seq,
            origin: at,
            last_sent: at,
            retransmitted: false,
            datagram: vec![0; 100].into(),
        }
    }

    #[test]
    fn bounded_acknowledged_and_dropped() {
        let t0 = Instant::now();
        let mut b = SendBuffer::new(SendLimits {
            packets: 3,
            bytes: 1000,
        });
        let start = SeqNo::MAX - 1; // across the wrap
        for i in 0..3 {
            let seq = SeqNo::new(start).add(i).value();
            b.push(packet(seq, t0 + Duration::from_millis(u64::from(i))))
                .unwrap();
        }
        assert_eq!(b.push(packet(1, t0)), Err(BufferFull));
        assert_eq!(b.bytes(), 300);
        assert!(b.get_mut(SeqNo::new(0)).is_some());
        assert!(b.get_mut(SeqNo::new(1)).is_none());
        assert!(b.indices(SeqNo::new(5), SeqNo::new(2)).is_empty());
        assert_eq!(b.indices(SeqNo::new(start - 5), SeqNo::new(0)), 0..3);
        assert_eq!(b.acknowledge(SeqNo::new(SeqNo::MAX)), 1);
        let dropped = b.drop_older_than(t0 + Duration::from_millis(2));
        assert_eq!(
            dropped,
            Some((SeqNo::new(SeqNo::MAX), SeqNo::new(SeqNo::MAX), SeqNo::MAX))
        );
        assert_eq!(b.len(), 1);
        assert_eq!(b.acknowledge(SeqNo::new(100)), 1);
        assert!(b.is_empty() && b.bytes() == 0);
    }
}
