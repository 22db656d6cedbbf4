//! AAC RTP packetizer: RFC 3640 `mpeg4-generic`, mode AAC-hbr (§3.3.6), one access unit per
//! packet.
//!
//! Owns: the AU header section (§3.2.1: a 16-bit AU-headers-length in bits, then one AU
//! header of a 13-bit AU-size and a 3-bit AU-Index of 0), the RTP timestamp at the AAC
//! sampling rate (§3.2.1: the composition time of the first AU in the packet), and the marker
//! bit (§3.2: set on every packet that ends an AU; with one whole AU per packet, always).
//!
//! Never does: interleaving or concatenating several AUs into one packet, or fragmenting an AU
//! across packets (§3.2.3 allows it; our AAC frames are a few hundred bytes, so an AU that
//! does not fit is refused with an error instead), or copying the AU: the payload is the
//! frame's `Bytes`.

use super::{
    PacketizeError, PacketizeErrorKind, RtpPacket, RtpParams, RtpSender, clamp_max_payload,
};
use crate::media::frame::{Frame, TrackKind};

/// Dynamic payload type announced in the SDP for AAC.
pub const PAYLOAD_TYPE: u8 = 97;
/// Bytes of the AU header section: AU-headers-length (16 bits) + one 16-bit AU header.
pub const AU_HEADER_SECTION_LEN: usize = 4;
/// Largest AU the 13-bit AU-size field can describe.
pub const MAX_AU_SIZE: usize = (1 << 13) - 1;

/// Turns raw AAC frames into RTP packets for one viewer.
#[derive(Clone, Debug)]
pub struct AacPacketizer {
    sender: RtpSender,
    max_payload: usize,
}

impl AacPacketizer {
    /// `params.clock_rate` must be the AAC sampling rate (RFC 3640 §4.1 `rate`).
    /// `max_payload` is clamped like the H.264 packetizer's.
    pub fn new(params: RtpParams, max_payload: usize) -> Self {
        AacPacketizer {
            sender: RtpSender::new(params),
            max_payload: clamp_max_payload(max_payload),
        }
    }

    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    /// The sender state: origin pts, counters and sender reports.
    pub fn sender_mut(&mut self) -> &mut RtpSender {
        &mut self.sender
    }

    /// Appends the one packet of `frame` to `out`.
    pub fn packetize(
        &mut self,
        frame: &Frame,
        out: &mut Vec<RtpPacket>,
    ) -> Result<(), PacketizeError> {
        let err = |kind| PacketizeError {
            pts: frame.pts,
            kind,
        };
        if frame.track != TrackKind::Audio {
            return Err(err(PacketizeErrorKind::WrongTrack));
        }
        let size = frame.data.len();
        if size == 0 {
            return Err(err(PacketizeErrorKind::EmptyFrame));
        }
        let max = MAX_AU_SIZE.min(self.max_payload - AU_HEADER_SECTION_LEN);
        if size > max {
            return Err(err(PacketizeErrorKind::AuTooLarge { size, max }));
        }
        let timestamp = self.sender.rtp_timestamp(frame.pts);
        // AU-headers-length = 16 bits; AU-size (13 bits) | AU-Index (3 bits) = 0.
        let au_header = (size as u16) << 3;
        let [h0, h1] = au_header.to_be_bytes();
        out.push(
            self.sender
                .packet(true, timestamp, &[0x00, 0x10, h0, h1], frame.data.clone()),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn params() -> RtpParams {
        RtpParams {
            ssrc: 0x0102_0304,
            seq: 7,
            rtptime: 1_000_000,
            payload_type: PAYLOAD_TYPE,
            clock_rate: 48_000,
        }
    }

    fn frame(len: usize, pts: i64) -> Frame {
        Frame {
            track: TrackKind::Audio,
            pts,
            dts: pts,
            keyframe: true,
            data: Bytes::from(vec![0x21; len]),
        }
    }

    #[test]
    fn au_header_values_marker_and_timestamps() {
        let mut p = AacPacketizer::new(params(), 1400);
        let mut out = Vec::new();
        p.packetize(&frame(371, 90_000), &mut out).unwrap();
        p.packetize(&frame(6, 90_000 + 1920), &mut out).unwrap();
        assert_eq!(out.len(), 2);
        // 371 = 0b1_0111_0011 → AU-size<<3 = 0x0b98.
        assert_eq!(out[0].payload_header(), &[0x00, 0x10, 0x0b, 0x98]);
        assert_eq!(out[1].payload_header(), &[0x00, 0x10, 0x00, 0x30]);
        assert!(out.iter().all(RtpPacket::marker));
        assert_eq!(out[0].timestamp(), 1_000_000);
        assert_eq!(out[1].timestamp(), 1_000_000 + 1024);
        assert_eq!(out[0].sequence_number(), 7);
        assert_eq!(out[1].sequence_number(), 8);
        assert_eq!(out[0].payload_type(), 97);
        let mut wire = Vec::new();
        out[1].write_datagram(&mut wire);
        assert_eq!(
            wire,
            [
                0x80, 0xe1, 0x00, 0x08, 0x00, 0x0f, 0x46, 0x40, 0x01, 0x02, 0x03, 0x04, 0x00, 0x10,
                0x00, 0x30, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21
            ]
        );
        assert_eq!(p.sender().octet_count(), 4 + 371 + 4 + 6);
    }

    #[test]
    fn oversized_and_wrong_frames_are_refused() {
        let mut p = AacPacketizer::new(params(), 1400);
        let mut out = Vec::new();
        assert_eq!(
            p.packetize(&frame(1397, 0), &mut out).unwrap_err().kind,
            PacketizeErrorKind::AuTooLarge {
                size: 1397,
                max: 1396
            }
        );
        p.packetize(&frame(1396, 0), &mut out).unwrap();
        let mut big = AacPacketizer::new(params(), 60_000);
        assert_eq!(
            big.packetize(&frame(8192, 0), &mut out).unwrap_err().kind,
            PacketizeErrorKind::AuTooLarge {
                size: 8192,
                max: 8191
            }
        );
        assert_eq!(
            p.packetize(&frame(0, 0), &mut out).unwrap_err().kind,
            PacketizeErrorKind::EmptyFrame
        );
        let mut video = frame(5, 0);
        video.track = TrackKind::Video;
        assert_eq!(
            p.packetize(&video, &mut out).unwrap_err().kind,
            PacketizeErrorKind::WrongTrack
        );
        assert_eq!(out.len(), 1);
    }
}
