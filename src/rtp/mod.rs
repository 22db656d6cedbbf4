//! RTP packets and per-track sender state (RFC 3550 §5.1, §5.3.1; RFC 2326 §10.12).
//!
//! Owns: the RTP fixed header, sequence numbering, the SSRC, the conversion of 90 kHz frame
//! timestamps to a track's RTP clock, the packet/octet counters an RTCP sender report needs,
//! and the two wire forms of a packet: a UDP datagram and an RTSP interleaved frame
//! (`$`, channel, 16-bit length, RTP packet; RFC 2326 §10.12).
//!
//! Never does: I/O, clocks, codec parsing (that is [`h264`] and [`aac`]), or copying a frame's
//! payload. A packet is a small header (RTP fixed header plus the few payload-header bytes a
//! payload format prepends) and a [`Bytes`] slice of the frame, so a frame is written once and
//! every viewer's packets share it.
//!
//! The per-track starting values (SSRC, first sequence number, first RTP timestamp) are chosen
//! by the RTSP session ([`crate::rtsp::session`]), announced in `RTP-Info` (RFC 2326 §12.33),
//! and handed to the packetizers through [`RtpParams`], so the first packet on the wire carries
//! exactly what the client was told.

pub mod aac;
pub mod depacketize;
pub mod h264;
pub mod rtcp;

use crate::media::frame::TIMESCALE;
use bytes::Bytes;
use std::fmt;

/// Length of the RTP fixed header without CSRCs (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// Longest payload header a packetizer prepends to the payload slice (RFC 3640 AU header
/// section: 4 bytes; RFC 6184 FU-A indicator + header: 2 bytes).
pub const MAX_PAYLOAD_HEADER_LEN: usize = 4;
/// Length of the RTSP interleaved framing in front of each packet (RFC 2326 §10.12).
pub const INTERLEAVED_HEADER_LEN: usize = 4;
/// Default limit of an RTP payload (everything after the 12-byte RTP header): keeps a packet
/// with IP/UDP headers under a 1500-byte Ethernet MTU.
pub const DEFAULT_MAX_PAYLOAD: usize = 1400;
/// Smallest payload limit a packetizer accepts; smaller requests are raised to it.
pub const MIN_MAX_PAYLOAD: usize = 64;
/// Largest payload limit a packetizer accepts; keeps every packet expressible in the 16-bit
/// length of an interleaved frame.
pub const MAX_MAX_PAYLOAD: usize = 65_000;

/// Where a track's RTP stream starts and how its clock runs. Chosen by the RTSP session at
/// SETUP, announced in `RTP-Info`, used by the packetizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpParams {
    pub ssrc: u32,
    /// Sequence number of the first packet.
    pub seq: u16,
    /// RTP timestamp of the first frame sent.
    pub rtptime: u32,
    pub payload_type: u8,
    /// RTP clock rate: 90000 for video, the sample rate for AAC (RFC 3640 §4.1).
    pub clock_rate: u32,
}

/// One RTP packet: header bytes in a small inline buffer plus a zero-copy payload slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    header: [u8; RTP_HEADER_LEN + MAX_PAYLOAD_HEADER_LEN],
    header_len: u8,
    payload: Bytes,
}

impl RtpPacket {
    /// The RTP fixed header followed by the payload-format header bytes, if any.
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    /// The payload-format header (FU indicator/header, AU header section), possibly empty.
    pub fn payload_header(&self) -> &[u8] {
        &self.header[RTP_HEADER_LEN..usize::from(self.header_len)]
    }

    /// The slice of the frame this packet carries after its headers.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Length of the RTP packet (header, payload header and payload).
    pub fn wire_len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }

    /// Octets RFC 3550 §6.4.1 counts as payload: everything after the fixed header.
    pub fn payload_octets(&self) -> usize {
        self.wire_len() - RTP_HEADER_LEN
    }

    pub fn marker(&self) -> bool {
        self.header[1] & 0x80 != 0
    }

    pub fn payload_type(&self) -> u8 {
        self.header[1] & 0x7f
    }

    pub fn sequence_number(&self) -> u16 {
        u16::from_be_bytes([self.header[2], self.header[3]])
    }

    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ])
    }

    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([
            self.header[8],
            self.header[9],
            self.header[10],
            self.header[11],
        ])
    }

    /// Appends the packet as one UDP datagram's contents.
    pub fn write_datagram(&self, out: &mut Vec<u8>) {
        out.reserve(self.wire_len());
        out.extend_from_slice(self.header());
        out.extend_from_slice(&self.payload);
    }

    /// Appends the packet as an RTSP interleaved frame on `channel` (RFC 2326 §10.12).
    pub fn write_interleaved(&self, channel: u8, out: &mut Vec<u8>) {
        // Packets are only built by `RtpSender::packet`, whose payload is bounded by
        // MAX_MAX_PAYLOAD (65 000) plus a 16-byte header, so the length always fits in u16.
        let len = u16::try_from(self.wire_len()).unwrap_or(u16::MAX);
        out.reserve(INTERLEAVED_HEADER_LEN + self.wire_len());
        out.push(b'$');
        out.push(channel);
        out.extend_from_slice(&len.to_be_bytes());
        self.write_datagram(out);
    }
}

/// Why a frame could not be packetized. Carries the frame's pts and the byte offset inside
/// the frame, so a log line points at the bad byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketizeError {
    /// The frame's 90 kHz presentation time.
    pub pts: i64,
    pub kind: PacketizeErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketizeErrorKind {
    /// A frame of the other track was given to this packetizer.
    WrongTrack,
    /// Fewer than 4 bytes left where an AVCC length prefix was expected.
    TruncatedLength { offset: usize, frame_len: usize },
    /// A NAL unit's length runs past the end of the frame.
    NalOverrun {
        offset: usize,
        nal_len: usize,
        frame_len: usize,
    },
    /// A zero-length NAL unit.
    EmptyNal { offset: usize },
    /// A frame with no NAL unit / no audio bytes.
    EmptyFrame,
    /// An access unit too large for one packet or for the 13-bit AU-size field.
    AuTooLarge { size: usize, max: usize },
}

impl fmt::Display for PacketizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot packetize frame at pts {}: ", self.pts)?;
        match &self.kind {
            PacketizeErrorKind::WrongTrack => f.write_str("frame of another track"),
            PacketizeErrorKind::TruncatedLength { offset, frame_len } => write!(
                f,
                "truncated AVCC length prefix at byte {offset} of {frame_len}"
            ),
            PacketizeErrorKind::NalOverrun {
                offset,
                nal_len,
                frame_len,
            } => write!(
                f,
                "NAL unit of {nal_len} bytes at byte {offset} overruns the {frame_len}-byte frame"
            ),
            PacketizeErrorKind::EmptyNal { offset } => {
                write!(f, "empty NAL unit at byte {offset}")
            }
            PacketizeErrorKind::EmptyFrame => f.write_str("empty frame"),
            PacketizeErrorKind::AuTooLarge { size, max } => {
                write!(f, "access unit of {size} bytes exceeds {max}")
            }
        }
    }
}

impl std::error::Error for PacketizeError {}

/// Sender state of one track: sequence numbers, the RTP clock and the RTCP counters.
#[derive(Clone, Debug)]
pub struct RtpSender {
    params: RtpParams,
    next_seq: u16,
    /// The 90 kHz pts that maps to `params.rtptime` (the first frame's pts).
    base_pts: Option<i64>,
    packet_count: u32,
    octet_count: u32,
}

impl RtpSender {
    pub fn new(params: RtpParams) -> Self {
        RtpSender {
            params,
            next_seq: params.seq,
            base_pts: None,
            packet_count: 0,
            octet_count: 0,
        }
    }

    pub fn params(&self) -> &RtpParams {
        &self.params
    }

    /// Sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Packets sent so far (RFC 3550 §6.4.1 sender's packet count).
    pub fn packet_count(&self) -> u32 {
        self.packet_count
    }

    /// Payload octets sent so far (RFC 3550 §6.4.1 sender's octet count).
    pub fn octet_count(&self) -> u32 {
        self.octet_count
    }

    /// Fixes the 90 kHz media instant that `params.rtptime` stands for. The shell should give
    /// every track of a PLAY the same origin (e.g. the pts of the first frame it sends, of
    /// any track), so all tracks' `RTP-Info` rtptimes name one instant and the client lines
    /// them up without waiting for a sender report. Without it, a track's first frame is its
    /// origin.
    pub fn set_origin_pts(&mut self, pts: i64) {
        self.base_pts = Some(pts);
    }

    /// RTP timestamp of a 90 kHz `pts`. The origin (see [`Self::set_origin_pts`]; by default
    /// the first pts converted) maps to `params.rtptime`; later ones keep their distance,
    /// rescaled to the clock rate and rounded to the nearest tick (RFC 3550 §5.1: the
    /// timestamp wraps modulo 2^32).
    pub fn rtp_timestamp(&mut self, pts: i64) -> u32 {
        let base = *self.base_pts.get_or_insert(pts);
        self.rescale(pts, base)
    }

    /// Like [`Self::rtp_timestamp`] without fixing the base: before the first frame, `pts` is
    /// taken as the base. Used for sender reports.
    pub fn peek_rtp_timestamp(&self, pts: i64) -> u32 {
        self.rescale(pts, self.base_pts.unwrap_or(pts))
    }

    fn rescale(&self, pts: i64, base: i64) -> u32 {
        let delta = i128::from(pts) - i128::from(base);
        let rate = i128::from(self.params.clock_rate);
        let scale = i128::from(TIMESCALE);
        let ticks = (delta * rate + scale / 2).div_euclid(scale);
        // Modulo 2^32 on purpose: RTP timestamps wrap.
        self.params.rtptime.wrapping_add(ticks as u32)
    }

    /// Builds the next packet. `payload_header` must be at most [`MAX_PAYLOAD_HEADER_LEN`]
    /// bytes and `payload` at most [`MAX_MAX_PAYLOAD`]; the packetizers guarantee both.
    pub(crate) fn packet(
        &mut self,
        marker: bool,
        timestamp: u32,
        payload_header: &[u8],
        payload: Bytes,
    ) -> RtpPacket {
        debug_assert!(payload_header.len() <= MAX_PAYLOAD_HEADER_LEN);
        debug_assert!(payload.len() <= MAX_MAX_PAYLOAD);
        let mut header = [0u8; RTP_HEADER_LEN + MAX_PAYLOAD_HEADER_LEN];
        header[0] = 0x80; // V=2, P=0, X=0, CC=0
        header[1] = (u8::from(marker) << 7) | (self.params.payload_type & 0x7f);
        header[2..4].copy_from_slice(&self.next_seq.to_be_bytes());
        header[4..8].copy_from_slice(&timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&self.params.ssrc.to_be_bytes());
        let extra = payload_header.len().min(MAX_PAYLOAD_HEADER_LEN);
        header[RTP_HEADER_LEN..RTP_HEADER_LEN + extra].copy_from_slice(&payload_header[..extra]);
        let packet = RtpPacket {
            header,
            header_len: (RTP_HEADER_LEN + extra) as u8,
            payload,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.packet_count = self.packet_count.wrapping_add(1);
        self.octet_count = self
            .octet_count
            .wrapping_add(packet.payload_octets() as u32);
        packet
    }

    /// A sender report (RFC 3550 §6.4.1) saying that the media instant `pts` (90 kHz, the
    /// stream's clock) happened at wall-clock `wall_ms` (milliseconds since the Unix epoch).
    /// Every track of a session must be given the same pts↔wall mapping, so a receiver can
    /// align them (lip sync).
    pub fn sender_report(&self, wall_ms: i64, pts: i64) -> rtcp::SenderReport {
        rtcp::SenderReport {
            ssrc: self.params.ssrc,
            ntp: rtcp::NtpTimestamp::from_unix_ms(wall_ms),
            rtp_timestamp: self.peek_rtp_timestamp(pts),
            packet_count: self.packet_count,
            octet_count: self.octet_count,
        }
    }
}

/// Clamps a requested payload limit into [`MIN_MAX_PAYLOAD`, `MAX_MAX_PAYLOAD`].
pub(crate) fn clamp_max_payload(max_payload: usize) -> usize {
    max_payload.clamp(MIN_MAX_PAYLOAD, MAX_MAX_PAYLOAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(rate: u32) -> RtpParams {
        RtpParams {
            ssrc: 0x1122_3344,
            seq: 0xfffe,
            rtptime: 0xffff_ff00,
            payload_type: 96,
            clock_rate: rate,
        }
    }

    #[test]
    fn header_layout_and_sequence_wrap() {
        let mut s = RtpSender::new(params(90_000));
        let ts = s.rtp_timestamp(1000);
        let p = s.packet(true, ts, &[0x7c, 0x85], Bytes::from_static(b"abc"));
        assert_eq!(
            p.header(),
            &[
                0x80, 0xe0, 0xff, 0xfe, 0xff, 0xff, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x7c, 0x85
            ]
        );
        assert!(p.marker());
        assert_eq!(p.payload_type(), 96);
        assert_eq!(p.payload_header(), &[0x7c, 0x85]);
        assert_eq!(p.wire_len(), 17);
        let q = s.packet(false, ts, &[], Bytes::from_static(b"d"));
        assert_eq!(q.sequence_number(), 0xffff);
        assert!(!q.marker());
        let r = s.packet(false, ts, &[], Bytes::new());
        assert_eq!(r.sequence_number(), 0);
        assert_eq!(s.packet_count(), 3);
        assert_eq!(s.octet_count(), 5 + 1);
    }

    #[test]
    fn interleaved_and_datagram_forms() {
        let mut s = RtpSender::new(params(90_000));
        let p = s.packet(false, 7, &[], Bytes::from_static(b"xy"));
        let mut d = Vec::new();
        p.write_datagram(&mut d);
        assert_eq!(d.len(), 14);
        assert_eq!(&d[12..], b"xy");
        let mut i = Vec::new();
        p.write_interleaved(2, &mut i);
        assert_eq!(&i[..4], &[b'$', 2, 0, 14]);
        assert_eq!(&i[4..], &d[..]);
    }

    #[test]
    fn timestamps_rescale_from_the_first_pts() {
        let mut v = RtpSender::new(params(90_000));
        assert_eq!(v.rtp_timestamp(5_000), 0xffff_ff00);
        // Wraps modulo 2^32.
        assert_eq!(
            v.rtp_timestamp(5_000 + 3_600),
            0xffff_ff00u32.wrapping_add(3_600)
        );
        // Earlier pts (B-frames) go backwards.
        assert_eq!(v.rtp_timestamp(4_000), 0xffff_ff00 - 1_000);

        let mut a = RtpSender::new(RtpParams {
            rtptime: 1000,
            ..params(48_000)
        });
        assert_eq!(a.rtp_timestamp(90_000), 1000);
        // One 1024-sample AAC frame at 48 kHz is 1920 ticks of 90 kHz.
        assert_eq!(a.rtp_timestamp(90_000 + 1920), 1000 + 1024);
        assert_eq!(a.peek_rtp_timestamp(180_000), 1000 + 48_000);

        let mut b = RtpSender::new(RtpParams {
            rtptime: 0,
            ..params(44_100)
        });
        b.rtp_timestamp(0);
        // 2090 ticks of 90 kHz = 1024.1 samples → rounds to 1024.
        assert_eq!(b.rtp_timestamp(2090), 1024);
        // Extreme values do not overflow.
        let _ = b.rtp_timestamp(i64::MAX);
        let _ = b.rtp_timestamp(i64::MIN);
    }

    #[test]
    fn peek_before_first_frame_uses_rtptime() {
        let s = RtpSender::new(params(90_000));
        assert_eq!(s.peek_rtp_timestamp(123_456), 0xffff_ff00);
    }

    #[test]
    fn origin_and_sender_report() {
        let mut a = RtpSender::new(RtpParams {
            rtptime: 100,
            ..params(48_000)
        });
        a.set_origin_pts(90_000);
        // The first frame comes 20 ms after the origin.
        assert_eq!(a.rtp_timestamp(90_000 + 1800), 100 + 960);
        let p = a.packet(true, 1060, &[0, 0x10, 0, 0x08], Bytes::from_static(b"x"));
        assert_eq!(p.payload_octets(), 5);
        let sr = a.sender_report(1500, 180_000);
        assert_eq!(sr.ssrc, 0x1122_3344);
        assert_eq!(sr.rtp_timestamp, 100 + 48_000);
        assert_eq!(sr.packet_count, 1);
        assert_eq!(sr.octet_count, 5);
        assert_eq!(sr.ntp, rtcp::NtpTimestamp::from_unix_ms(1500));
    }
}
