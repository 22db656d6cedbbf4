//! What every frame-by-frame viewer (RTMP, RTSP, HTTP MPEG-TS; SRT and WebRTC next) has in
//! common: a sans-IO machine that turns the stream's ring frames into its protocol's bytes
//! (`FrameViewer`), and the `Outbox` it writes them into. The runtime's connection driver
//! steps the viewer's ring cursor, hands each frame to `FrameViewer::queue`, lets the viewer
//! `write` until the outbox holds a flush's worth, and sends the outbox: a connection's bytes
//! in order (copied header bytes and shared payloads) and datagrams. Nothing here reads a
//! clock or touches a socket: time comes in as arguments.

use crate::media::frame::MediaInfo;
use crate::stream::ring::FeedFrame;
use bytes::Bytes;
use std::time::Instant;

/// The stream's media when a frame reaches a viewer: its configuration and the version
/// that changes whenever the configuration does (a new publisher, a codec change).
#[derive(Clone, Copy, Debug)]
pub struct MediaNow<'a> {
    pub version: u64,
    pub info: Option<&'a MediaInfo>,
}

/// A viewer's protocol side of the media path.
pub trait FrameViewer {
    /// Takes the next frame of the viewer's ring (in order, none skipped but by the
    /// cursor's catch-up): what it means for this viewer is queued, to be written by
    /// `write`. `now` and `wall_ms` are when it is sent (report schedules, clock mapping).
    fn queue(&mut self, frame: &FeedFrame, media: MediaNow<'_>, now: Instant, wall_ms: i64);

    /// Writes queued output into `out` until `out` holds at least `mark` bytes (it may pass
    /// the mark by one packet or chunk) or nothing is queued; `true` when nothing is left.
    fn write(&mut self, out: &mut Outbox, mark: usize) -> bool;
}

/// Where a datagram goes: one of the connection's channels (RTP or RTCP for RTSP over
/// UDP) and the peer's port on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatagramTo {
    pub channel: Channel,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Media,
    Control,
}

/// Payload slices of at least this many bytes are sent from the shared `Bytes`.
pub const SHARE_FROM: usize = 1024;

/// What a connection's outbox keeps between bursts (bytes per buffer): an RTMP viewer's
/// steady flush is a frame's chunk headers and, for audio, its copied payload.
pub const IDLE_CAPACITY: usize = 2 * 1024;

/// Output of one connection waiting to be sent: the byte stream (copied bytes, with shared
/// payloads placed between them, so a payload is never copied to be sent) and datagrams.
/// Buffers are kept across flushes: the steady state allocates nothing.
#[derive(Debug, Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    /// Shared payloads, each sent after `bytes[..at]` (in `at` order).
    shared: Vec<(usize, Bytes)>,
    shared_len: usize,
    datagrams: Vec<u8>,
    /// Where each datagram of `datagrams` ends, and where it goes.
    datagram_ends: Vec<(usize, DatagramTo)>,
}

/// One piece of the byte stream, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Copied(&'a [u8]),
    Shared(&'a Bytes),
}

impl Outbox {
    pub fn with_capacity(bytes: usize) -> Outbox {
        Outbox {
            bytes: Vec::with_capacity(bytes),
            ..Outbox::default()
        }
    }

    /// The copied part of the byte stream, to append to.
    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Appends a shared payload to the byte stream: a reference, not a copy.
    pub fn push_shared(&mut self, payload: Bytes) {
        self.shared_len += payload.len();
        self.shared.push((self.bytes.len(), payload));
    }

    /// Appends `payload[range]` to the byte stream: shared when it is at least
    /// [`SHARE_FROM`] bytes, copied when smaller (a copy of a few hundred bytes costs less
    /// than a reference count touched from every shard and one more piece to send).
    pub fn push_payload(&mut self, payload: &Bytes, range: std::ops::Range<usize>) {
        if range.len() >= SHARE_FROM {
            self.push_shared(payload.slice(range));
        } else {
            self.bytes.extend_from_slice(&payload[range]);
        }
    }

    /// Gives back memory a burst left behind; called with a flush's contents, before
    /// `clear`. Each buffer above [`IDLE_CAPACITY`] (a piece list above its share) that
    /// holds less than half of it shrinks to it: a viewer keeps what its steady flushes
    /// use and no more (an RTMP viewer of a 300 kb/s stream copies a few hundred bytes of
    /// chunk headers and audio per flush, its video payloads are shared, so the start-up
    /// burst's and the handshake's bytes are given back at its first steady flush); one
    /// that always sends big flushes keeps its buffers.
    pub fn release_excess(&mut self) {
        shrink_idle(&mut self.bytes, IDLE_CAPACITY);
        shrink_idle(&mut self.datagrams, IDLE_CAPACITY);
        let pieces = IDLE_CAPACITY / 128;
        shrink_idle(&mut self.shared, pieces);
        shrink_idle(&mut self.datagram_ends, pieces);
    }

    /// Appends one datagram, written by `fill`.
    pub fn push_datagram(&mut self, to: DatagramTo, fill: impl FnOnce(&mut Vec<u8>)) {
        fill(&mut self.datagrams);
        self.datagram_ends.push((self.datagrams.len(), to));
    }

    /// Bytes of the byte stream waiting.
    pub fn stream_len(&self) -> usize {
        self.bytes.len() + self.shared_len
    }

    /// Everything waiting: the byte stream and the datagrams.
    pub fn len(&self) -> usize {
        self.stream_len() + self.datagrams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The byte stream's pieces in order.
    pub fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        let mut at = 0;
        let mut shared = self.shared.iter();
        let mut next_shared = shared.next();
        std::iter::from_fn(move || {
            if let Some((until, payload)) = next_shared {
                if at < *until {
                    let piece = Piece::Copied(&self.bytes[at..*until]);
                    at = *until;
                    return Some(piece);
                }
                next_shared = shared.next();
                return Some(Piece::Shared(payload));
            }
            if at < self.bytes.len() {
                let piece = Piece::Copied(&self.bytes[at..]);
                at = self.bytes.len();
                return Some(piece);
            }
            None
        })
    }

    /// The byte stream joined (tests read what would be sent).
    #[cfg(test)]
    pub(crate) fn stream_bytes(&self) -> Vec<u8> {
        let mut joined = Vec::with_capacity(self.stream_len());
        for piece in self.pieces() {
            match piece {
                Piece::Copied(b) => joined.extend_from_slice(b),
                Piece::Shared(b) => joined.extend_from_slice(b),
            }
        }
        joined
    }

    /// The datagrams in order, with where each goes.
    pub fn datagrams(&self) -> impl Iterator<Item = (DatagramTo, &[u8])> {
        let mut start = 0;
        self.datagram_ends.iter().map(move |&(end, to)| {
            let d = &self.datagrams[start..end];
            start = end;
            (to, d)
        })
    }

    /// Forgets what was sent; keeps the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.shared.clear();
        self.shared_len = 0;
        self.datagrams.clear();
        self.datagram_ends.clear();
    }
}

/// Shrinks `buf` to `idle` when its capacity is above that and it holds less than half.
fn shrink_idle<T>(buf: &mut Vec<T>, idle: usize) {
    if buf.capacity() > idle && buf.len() < idle / 2 {
        buf.shrink_to(idle);
    }
}

/// The fake source's first `n` frames as a ring holds them: test and bench input for every
/// viewer.
#[doc(hidden)]
pub fn fake_frames(n: usize) -> Vec<FeedFrame> {
    let mut source = crate::source::fake::FakeSource::new(0, 25);
    let mut polled = Vec::new();
    let mut elapsed = 0;
    while polled.len() < n {
        elapsed += 3600;
        source.poll(elapsed, &mut polled);
    }
    polled
        .into_iter()
        .take(n)
        .map(|frame| FeedFrame {
            flv: crate::mux::flv::frame_tag(&frame),
            ts: Bytes::new(),
            opus: Bytes::new(),
            frame,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_keep_copied_and_shared_bytes_in_order() {
        let mut out = Outbox::default();
        out.bytes_mut().extend_from_slice(b"ab");
        out.push_shared(Bytes::from_static(b"XY"));
        out.push_shared(Bytes::from_static(b"Z"));
        out.bytes_mut().extend_from_slice(b"cd");
        assert_eq!(out.stream_bytes(), b"abXYZcd");
        assert_eq!(out.stream_len(), 7);
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.pieces().count(), 0);
    }

    #[test]
    fn large_payload_slices_are_shared_small_ones_copied() {
        let payload = Bytes::from(vec![7u8; 3 * SHARE_FROM]);
        let mut out = Outbox::default();
        out.bytes_mut().extend_from_slice(b"h1");
        out.push_payload(&payload, 0..SHARE_FROM);
        out.bytes_mut().extend_from_slice(b"h2");
        out.push_payload(&payload, SHARE_FROM..SHARE_FROM + 10);
        let kinds: Vec<bool> = out
            .pieces()
            .map(|p| matches!(p, Piece::Shared(_)))
            .collect();
        assert_eq!(kinds, [false, true, false]);
        let mut want = b"h1".to_vec();
        want.extend_from_slice(&payload[..SHARE_FROM]);
        want.extend_from_slice(b"h2");
        want.extend_from_slice(&payload[SHARE_FROM..SHARE_FROM + 10]);
        assert_eq!(out.stream_bytes(), want);
    }

    #[test]
    fn a_burst_s_buffer_is_given_back_after_a_small_flush() {
        let mut out = Outbox::default();
        out.bytes_mut().resize(8 * IDLE_CAPACITY, 0);
        out.release_excess();
        out.clear();
        assert!(
            out.bytes_mut().capacity() >= 8 * IDLE_CAPACITY,
            "kept for big flushes"
        );
        out.bytes_mut().resize(100, 0);
        out.release_excess();
        out.clear();
        assert!(out.bytes_mut().capacity() <= IDLE_CAPACITY);
    }

    #[test]
    fn shared_payloads_do_not_keep_a_burst_s_copied_bytes() {
        let payload = Bytes::from(vec![7u8; 4 * SHARE_FROM]);
        let mut out = Outbox::default();
        out.bytes_mut().resize(8 * IDLE_CAPACITY, 0);
        out.release_excess();
        out.clear();
        out.bytes_mut().resize(12, 0);
        out.push_payload(&payload, 0..payload.len());
        out.release_excess();
        out.clear();
        assert!(
            out.bytes_mut().capacity() <= IDLE_CAPACITY,
            "a big flush of shared video with a few copied bytes"
        );
    }

    #[test]
    fn datagrams_keep_their_bounds_and_destinations() {
        let mut out = Outbox::default();
        let rtp = DatagramTo {
            channel: Channel::Media,
            port: 5000,
        };
        let rtcp = DatagramTo {
            channel: Channel::Control,
            port: 5001,
        };
        out.push_datagram(rtp, |b| b.extend_from_slice(b"one"));
        out.push_datagram(rtcp, |b| b.extend_from_slice(b"two!"));
        let got: Vec<_> = out.datagrams().collect();
        assert_eq!(got, vec![(rtp, &b"one"[..]), (rtcp, &b"two!"[..])]);
        assert_eq!(out.len(), 7);
        assert_eq!(out.stream_len(), 0);
    }
}
