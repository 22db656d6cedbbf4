//! The media side of an SRT viewer, sans-IO: the stream's shared TS chunks (one per ring
//! frame, the bytes `/NAME/mpegts` sends, PAT/PMT ahead of every keyframe) cut into live-mode
//! payloads of 7 TS packets (1316 bytes), the size every libsrt receiver expects. It starts at
//! the first chunk that opens with a PAT, so a player's first payload is PAT, PMT and an IDR.
//!
//! Payloads go into the outbox as datagrams; the connection (`SrtConnection::send`, called
//! by the runtime's driver) turns each into a data packet. What is left of a chunk after its
//! last whole payload waits for the next frame's chunk. Owns the cutting only; sequence
//! numbers, retransmission and encryption are the connection's.

use crate::stream::ring::FeedFrame;
use crate::stream::viewer::{Channel, DatagramTo, FrameViewer, MediaNow, Outbox};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

/// One TS packet.
pub const TS_PACKET: usize = 188;
/// TS packets per SRT payload (libsrt's live-mode default payload, 1316 bytes).
pub const PACKETS_PER_PAYLOAD: usize = 7;
/// The payload size.
pub const PAYLOAD: usize = TS_PACKET * PACKETS_PER_PAYLOAD;

/// Where the viewer's datagrams go: the driver sends them through the connection.
const MEDIA: DatagramTo = DatagramTo {
    channel: Channel::Media,
    port: 0,
};

/// One SRT viewer: the chunks queued and not yet cut.
#[derive(Debug, Default)]
pub struct SrtViewer {
    started: bool,
    chunks: VecDeque<Bytes>,
    /// Bytes of the front chunk already cut.
    offset: usize,
    queued: usize,
    payloads: u64,
    resyncs: u32,
}

impl SrtViewer {
    pub fn new() -> SrtViewer {
        SrtViewer::default()
    }

    /// Payloads written so far.
    pub fn payloads(&self) -> u64 {
        self.payloads
    }

    /// Drops what is queued and starts again at the next keyframe that opens with a PAT
    /// (the connection could not take the payloads: its peer is behind).
    pub fn resync(&mut self) {
        self.started = false;
        self.chunks.clear();
        self.offset = 0;
        self.queued = 0;
        self.resyncs += 1;
    }

    /// How many times the viewer was resynchronized.
    pub fn resyncs(&self) -> u32 {
        self.resyncs
    }

    /// Bytes queued and not yet written (less than one payload between frames).
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Copies the next `PAYLOAD` bytes (queued ≥ `PAYLOAD`) across chunks into `out`.
    fn cut(&mut self, out: &mut Vec<u8>) {
        let mut want = PAYLOAD;
        while want > 0 {
            let Some(front) = self.chunks.front() else {
                return;
            };
            let take = (front.len() - self.offset).min(want);
            out.extend_from_slice(&front[self.offset..self.offset + take]);
            self.offset += take;
            want -= take;
            if self.offset == front.len() {
                self.chunks.pop_front();
                self.offset = 0;
            }
        }
    }
}

/// Does this chunk start with a PAT (TS packet of PID 0)?
fn starts_with_pat(ts: &[u8]) -> bool {
    ts.len() >= TS_PACKET && ts[0] == 0x47 && ts[1] & 0x1f == 0 && ts[2] == 0
}

impl FrameViewer for SrtViewer {
    fn queue(&mut self, frame: &FeedFrame, _media: MediaNow<'_>, _now: Instant, _wall_ms: i64) {
        if frame.ts.is_empty() {
            return;
        }
        if !self.started {
            if !(frame.frame.keyframe && starts_with_pat(&frame.ts)) {
                return;
            }
            self.started = true;
        }
        self.queued += frame.ts.len();
        self.chunks.push_back(frame.ts.clone());
    }

    fn write(&mut self, out: &mut Outbox, mark: usize) -> bool {
        while self.queued >= PAYLOAD {
            if out.len() >= mark {
                return false;
            }
            out.push_datagram(MEDIA, |d| self.cut(d));
            self.queued -= PAYLOAD;
            self.payloads += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{Frame, TrackKind};

    fn packet(pid: u16, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; TS_PACKET];
        p[0] = 0x47;
        p[1] = (pid >> 8) as u8 & 0x1f;
        p[2] = pid as u8;
        p
    }

    fn entry(keyframe: bool, packets: &[Vec<u8>]) -> FeedFrame {
        let frame = Frame {
            track: TrackKind::Video,
            pts: 0,
            dts: 0,
            keyframe,
            data: Bytes::from_static(b"x"),
        };
        FeedFrame {
            flv: crate::mux::flv::frame_tag(&frame),
            ts: Bytes::from(packets.concat()),
            opus: Bytes::new(),
            frame,
        }
    }

    const MEDIA_NOW: MediaNow<'static> = MediaNow {
        version: 0,
        info: None,
    };

    #[test]
    fn starts_at_a_keyframe_with_pat_and_cuts_seven_packets() {
        let mut v = SrtViewer::new();
        let now = Instant::now();
        // A delta frame and a keyframe without PAT come before the start: skipped.
        v.queue(&entry(false, &[packet(0, 1)]), MEDIA_NOW, now, 0);
        v.queue(&entry(true, &[packet(256, 2)]), MEDIA_NOW, now, 0);
        assert_eq!(v.queued(), 0);
        let mut key = vec![packet(0, 3), packet(4096, 4)];
        key.extend((0..8).map(|_| packet(256, 5)));
        v.queue(&entry(true, &key), MEDIA_NOW, now, 0);
        v.queue(&entry(false, &vec![packet(257, 6); 5]), MEDIA_NOW, now, 0);
        let mut out = Outbox::default();
        assert!(v.write(&mut out, usize::MAX));
        let payloads: Vec<_> = out.datagrams().map(|(_, d)| d.to_vec()).collect();
        assert_eq!(payloads.len(), 2, "15 packets: two payloads, one left");
        assert!(payloads.iter().all(|p| p.len() == PAYLOAD));
        assert_eq!(&payloads[0][..TS_PACKET], &packet(0, 3)[..]);
        assert_eq!(&payloads[0][TS_PACKET..2 * TS_PACKET], &packet(4096, 4)[..]);
        // The second payload spans both chunks.
        assert_eq!(&payloads[1][..TS_PACKET], &packet(256, 5)[..]);
        assert_eq!(&payloads[1][6 * TS_PACKET..], &packet(257, 6)[..]);
        assert_eq!(v.queued(), TS_PACKET);
        assert_eq!(v.payloads(), 2);
    }

    #[test]
    fn write_stops_at_the_mark_and_resumes() {
        let mut v = SrtViewer::new();
        let mut key = vec![packet(0, 0)];
        key.extend((0..27).map(|_| packet(256, 1)));
        v.queue(&entry(true, &key), MEDIA_NOW, Instant::now(), 0);
        let mut out = Outbox::default();
        assert!(!v.write(&mut out, PAYLOAD), "one payload reaches the mark");
        assert_eq!(out.datagrams().count(), 1);
        out.clear();
        assert!(v.write(&mut out, usize::MAX));
        assert_eq!(out.datagrams().count(), 3);
        assert_eq!(v.queued(), 0);
    }

    #[test]
    fn a_resync_drops_what_is_queued_and_restarts_at_the_next_keyframe_with_pat() {
        let mut v = SrtViewer::new();
        let now = Instant::now();
        let key = |fill| {
            let mut k = vec![packet(0, fill)];
            k.extend((0..6).map(|_| packet(256, fill)));
            entry(true, &k)
        };
        v.queue(&key(1), MEDIA_NOW, now, 0);
        v.queue(&entry(false, &[packet(256, 2)]), MEDIA_NOW, now, 0);
        v.resync();
        assert_eq!((v.queued(), v.resyncs()), (0, 1));
        // Delta frames after the resync wait for the next keyframe.
        v.queue(&entry(false, &vec![packet(256, 3); 7]), MEDIA_NOW, now, 0);
        assert_eq!(v.queued(), 0);
        v.queue(&key(4), MEDIA_NOW, now, 0);
        let mut out = Outbox::default();
        assert!(v.write(&mut out, usize::MAX));
        let payloads: Vec<_> = out.datagrams().map(|(_, d)| d.to_vec()).collect();
        assert_eq!(payloads.len(), 1);
        assert_eq!(
            &payloads[0][..TS_PACKET],
            &packet(0, 4)[..],
            "PAT of the new keyframe first"
        );
    }
}
