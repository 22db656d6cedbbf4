//! `PacketFramer`: a byte stream cut anywhere (a socket read, a datagram, one byte at a time)
//! back into 188-byte transport packets (§2.4.3.2), with their offsets in the stream.
//!
//! Whole packets in a pushed slice are handed out from the slice itself; only a packet split
//! between two pushes is copied (into a buffer of at most one packet). When a packet does not
//! start with the sync byte, the framer reports it and hunts: it holds a bounded window of
//! bytes and resumes at the first 0x47 that has another 0x47 188 bytes later.

use crate::mux::ts::TS_PACKET_LEN;

const SYNC_BYTE: u8 = 0x47;
/// Bytes held while hunting for sync: enough to test every start position of one packet
/// against the sync byte of the packet after it, and then some.
const HUNT_WINDOW: usize = 3 * TS_PACKET_LEN;

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// One whole packet (starting with 0x47) and the stream offset of its first byte.
    Packet { packet: &'a [u8], offset: u64 },
    /// No sync byte at `offset`, where a packet should start.
    LostSync { offset: u64 },
    /// Sync found again at `offset` after skipping `skipped` bytes.
    Resynced { offset: u64, skipped: u64 },
}

/// Cuts a byte stream into transport packets. Memory: at most three packets.
#[derive(Debug)]
pub struct PacketFramer {
    /// A partial packet (synced) or the hunting window (not synced).
    carry: Vec<u8>,
    synced: bool,
    /// Stream offset of the next byte to be pushed.
    consumed: u64,
    /// Bytes dropped since sync was lost.
    skipped: u64,
}

impl Default for PacketFramer {
    fn default() -> Self {
        PacketFramer {
            carry: Vec::with_capacity(HUNT_WINDOW),
            // The stream is expected to start on a packet boundary; if it does not, the first
            // byte is reported as lost sync.
            synced: true,
            consumed: 0,
            skipped: 0,
        }
    }
}

impl PacketFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stream offset of the first byte of `carry`.
    fn carry_offset(&self) -> u64 {
        self.consumed - self.carry.len() as u64
    }

    /// Hands every packet completed by `input` (and every sync event) to `on`, in order.
    pub fn push(&mut self, mut input: &[u8], on: &mut impl FnMut(Framed<'_>)) {
        loop {
            if !self.synced {
                input = self.hunt(input, on);
                if !self.synced {
                    return;
                }
            }
            if !self.drain_carry(on) {
                continue;
            }
            if !self.carry.is_empty() {
                let take = (TS_PACKET_LEN - self.carry.len()).min(input.len());
                self.take_into_carry(&input[..take]);
                input = &input[take..];
                if self.carry.len() < TS_PACKET_LEN {
                    return;
                }
                continue;
            }
            input = self.whole_packets(input, on);
            match input.first() {
                None => return,
                Some(&SYNC_BYTE) => {
                    self.take_into_carry(input);
                    return;
                }
                Some(_) => self.lose_sync(self.consumed, on),
            }
        }
    }

    /// Bytes pushed so far: the stream offset of the next byte.
    pub fn position(&self) -> u64 {
        self.consumed
    }

    /// Bytes still held (a partial packet, or the hunting window).
    pub fn pending(&self) -> usize {
        self.carry.len()
    }

    fn take_into_carry(&mut self, bytes: &[u8]) {
        self.carry.extend_from_slice(bytes);
        self.consumed += bytes.len() as u64;
    }

    /// Hands out the packets at the front of `input` straight from it; returns the rest
    /// (shorter than a packet, or not starting with a sync byte).
    fn whole_packets<'a>(
        &mut self,
        mut input: &'a [u8],
        on: &mut impl FnMut(Framed<'_>),
    ) -> &'a [u8] {
        while input.len() >= TS_PACKET_LEN && input[0] == SYNC_BYTE {
            let (packet, rest) = input.split_at(TS_PACKET_LEN);
            on(Framed::Packet {
                packet,
                offset: self.consumed,
            });
            self.consumed += TS_PACKET_LEN as u64;
            input = rest;
        }
        input
    }

    /// Hands out the whole packets held in `carry`. False when sync was lost in it.
    fn drain_carry(&mut self, on: &mut impl FnMut(Framed<'_>)) -> bool {
        let mut start = 0;
        while self.carry.len() - start >= TS_PACKET_LEN && self.carry[start] == SYNC_BYTE {
            let offset = self.carry_offset() + start as u64;
            on(Framed::Packet {
                packet: &self.carry[start..start + TS_PACKET_LEN],
                offset,
            });
            start += TS_PACKET_LEN;
        }
        self.carry.drain(..start);
        match self.carry.first() {
            Some(&b) if b != SYNC_BYTE => {
                self.lose_sync(self.carry_offset(), on);
                false
            }
            _ => true,
        }
    }

    fn lose_sync(&mut self, offset: u64, on: &mut impl FnMut(Framed<'_>)) {
        self.synced = false;
        self.skipped = 0;
        on(Framed::LostSync { offset });
    }

    /// Moves `input` into the hunting window until a sync byte with another one a packet
    /// later turns up; returns what is left of `input` then (or an empty slice).
    fn hunt<'a>(&mut self, mut input: &'a [u8], on: &mut impl FnMut(Framed<'_>)) -> &'a [u8] {
        loop {
            let take = (HUNT_WINDOW - self.carry.len()).min(input.len());
            self.take_into_carry(&input[..take]);
            input = &input[take..];
            if let Some(at) = confirmed_sync(&self.carry) {
                self.skipped += at as u64;
                self.carry.drain(..at);
                self.synced = true;
                on(Framed::Resynced {
                    offset: self.carry_offset(),
                    skipped: self.skipped,
                });
                return input;
            }
            // No start before the last packet's worth of bytes can be confirmed any more.
            let stale = self.carry.len().saturating_sub(TS_PACKET_LEN);
            self.skipped += stale as u64;
            self.carry.drain(..stale);
            if input.is_empty() {
                return input;
            }
        }
    }
}

/// First position holding a sync byte with another sync byte one packet later.
fn confirmed_sync(window: &[u8]) -> Option<usize> {
    let last_start = window.len().checked_sub(TS_PACKET_LEN + 1)?;
    (0..=last_start).find(|&i| window[i] == SYNC_BYTE && window[i + TS_PACKET_LEN] == SYNC_BYTE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet whose every byte after the sync byte is `fill`.
    fn packet(fill: u8) -> Vec<u8> {
        let mut p = vec![fill; TS_PACKET_LEN];
        p[0] = SYNC_BYTE;
        p
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Packet(u8, u64),
        Lost(u64),
        Resynced(u64, u64),
    }

    fn frame_in_steps(stream: &[u8], step: usize) -> Vec<Seen> {
        let mut framer = PacketFramer::new();
        let mut seen = Vec::new();
        for chunk in stream.chunks(step) {
            framer.push(chunk, &mut |f| {
                seen.push(match f {
                    Framed::Packet { packet, offset } => {
                        assert_eq!(packet.len(), TS_PACKET_LEN);
                        Seen::Packet(packet[1], offset)
                    }
                    Framed::LostSync { offset } => Seen::Lost(offset),
                    Framed::Resynced { offset, skipped } => Seen::Resynced(offset, skipped),
                });
            });
            assert!(framer.pending() <= HUNT_WINDOW);
        }
        seen
    }

    #[test]
    fn every_split_gives_the_same_packets() {
        let stream: Vec<u8> = (1..=5).flat_map(packet).collect();
        let expected: Vec<Seen> = (1..=5u8)
            .map(|i| Seen::Packet(i, u64::from(i - 1) * 188))
            .collect();
        for step in [1, 2, 7, 187, 188, 189, 376, 1000] {
            assert_eq!(frame_in_steps(&stream, step), expected, "step {step}");
        }
    }

    #[test]
    fn garbage_between_packets_is_skipped_and_reported() {
        let mut stream = packet(1);
        stream.extend_from_slice(&[0x00, 0x47, 0x12, 0x47]); // a false sync byte or two
        stream.extend(packet(2));
        stream.extend(packet(3));
        stream.extend(packet(4));
        let expected = vec![
            Seen::Packet(1, 0),
            Seen::Lost(188),
            Seen::Resynced(192, 4),
            Seen::Packet(2, 192),
            Seen::Packet(3, 380),
            Seen::Packet(4, 568),
        ];
        for step in [1, 3, 100, 188, 189, 4096] {
            assert_eq!(frame_in_steps(&stream, step), expected, "step {step}");
        }
    }

    #[test]
    fn a_stream_that_starts_mid_packet_syncs_on_the_first_whole_one() {
        let mut stream = packet(9)[100..].to_vec();
        stream.extend(packet(1));
        stream.extend(packet(2));
        for step in [1, 50, 188, 10_000] {
            let seen = frame_in_steps(&stream, step);
            assert_eq!(
                seen,
                vec![
                    Seen::Lost(0),
                    Seen::Resynced(88, 88),
                    Seen::Packet(1, 88),
                    Seen::Packet(2, 276)
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn long_garbage_is_held_in_a_bounded_window() {
        let mut stream = packet(1);
        stream.extend(std::iter::repeat_n(0xAB, 100_000));
        stream.extend(packet(2));
        stream.extend(packet(3));
        let seen = frame_in_steps(&stream, 4096);
        assert_eq!(seen[1], Seen::Lost(188));
        assert_eq!(seen[2], Seen::Resynced(100_188, 100_000));
        assert_eq!(seen.len(), 5);
    }
}
