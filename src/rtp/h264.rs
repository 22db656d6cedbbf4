//! H.264 RTP packetizer, packetization-mode=1 (RFC 6184 §5.6 single NAL unit packets,
//! §5.8 FU-A fragmentation units; timestamps and marker bit per §5.1).
//!
//! Owns: walking a frame's AVCC (4-byte length-prefixed) NAL units, sending SPS and PPS as
//! single NAL unit packets before every keyframe (out-of-band `sprop-parameter-sets` alone is
//! not enough for a client that joins mid-stream and loses the first ones), fragmenting NAL
//! units larger than the payload limit into FU-A packets, and setting the marker bit on the
//! last packet of each access unit.
//!
//! Never does: copy NAL unit bytes (every payload is a `Bytes::slice` of the frame; only the
//! 1-byte NAL header of a fragmented unit is rewritten into the 2-byte FU indicator/header),
//! aggregate NAL units (STAP-A is optional in mode 1), parse SPS contents, or panic on
//! malformed frames: a frame is validated completely before any packet is emitted, so an error
//! leaves the sequence numbers untouched.

use super::{
    PacketizeError, PacketizeErrorKind, RtpPacket, RtpParams, RtpSender, clamp_max_payload,
};
use crate::media::frame::{Frame, TrackKind, VideoConfig};
use bytes::Bytes;
use std::ops::Range;

/// Dynamic payload type announced in the SDP for H.264.
pub const PAYLOAD_TYPE: u8 = 96;
/// RTP clock rate of H.264 (RFC 6184 §8.2.1).
pub const CLOCK_RATE: u32 = 90_000;
/// NAL unit type of a fragmentation unit A (RFC 6184 §5.8).
const FU_A: u8 = 28;

/// Turns H.264 access units into RTP packets for one viewer.
#[derive(Clone, Debug)]
pub struct H264Packetizer {
    sender: RtpSender,
    sps: Bytes,
    pps: Bytes,
    max_payload: usize,
}

impl H264Packetizer {
    /// `params` comes from the RTSP session (its `clock_rate` should be 90000);
    /// `max_payload` is the largest RTP payload (after the 12-byte RTP header), e.g.
    /// [`super::DEFAULT_MAX_PAYLOAD`]; it is clamped to [`super::MIN_MAX_PAYLOAD`]..=
    /// [`super::MAX_MAX_PAYLOAD`].
    pub fn new(params: RtpParams, config: &VideoConfig, max_payload: usize) -> Self {
        H264Packetizer {
            sender: RtpSender::new(params),
            sps: config.sps.clone(),
            pps: config.pps.clone(),
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

    /// Appends the packets of one access unit to `out`. On error nothing is appended and no
    /// sequence number is used.
    pub fn packetize(
        &mut self,
        frame: &Frame,
        out: &mut Vec<RtpPacket>,
    ) -> Result<(), PacketizeError> {
        let err = |kind| PacketizeError {
            pts: frame.pts,
            kind,
        };
        if frame.track != TrackKind::Video {
            return Err(err(PacketizeErrorKind::WrongTrack));
        }
        let mut count = 0usize;
        for nal in AvccNals::new(&frame.data) {
            nal.map_err(err)?;
            count += 1;
        }
        if count == 0 {
            return Err(err(PacketizeErrorKind::EmptyFrame));
        }

        // RFC 6184 §5.1: the timestamp is the sampling (presentation) time of the picture.
        let timestamp = self.sender.rtp_timestamp(frame.pts);
        if frame.keyframe {
            for ps in [self.sps.clone(), self.pps.clone()] {
                if !ps.is_empty() && ps.len() <= self.max_payload {
                    out.push(self.sender.packet(false, timestamp, &[], ps));
                }
            }
        }
        for (index, nal) in AvccNals::new(&frame.data).enumerate() {
            // Validated above.
            let Ok(range) = nal else { break };
            let last_nal = index + 1 == count;
            self.push_nal(frame.data.slice(range), timestamp, last_nal, out);
        }
        Ok(())
    }

    fn push_nal(&mut self, nal: Bytes, timestamp: u32, last_nal: bool, out: &mut Vec<RtpPacket>) {
        if nal.len() <= self.max_payload {
            // §5.6 single NAL unit packet; §5.1 marker on the last packet of the access unit.
            out.push(self.sender.packet(last_nal, timestamp, &[], nal));
            return;
        }
        // §5.8 FU-A: the NAL header byte is replaced by FU indicator (F, NRI, type 28) and FU
        // header (S, E, R=0, original type); the rest of the NAL unit is split.
        let nal_header = nal[0];
        let indicator = (nal_header & 0xe0) | FU_A;
        let nal_type = nal_header & 0x1f;
        let chunk = self.max_payload - 2;
        let mut start = 1;
        while start < nal.len() {
            let end = (start + chunk).min(nal.len());
            let first = start == 1;
            let last = end == nal.len();
            let fu_header = (u8::from(first) << 7) | (u8::from(last) << 6) | nal_type;
            out.push(self.sender.packet(
                last && last_nal,
                timestamp,
                &[indicator, fu_header],
                nal.slice(start..end),
            ));
            start = end;
        }
    }
}

/// Iterates the byte ranges (without the length prefix) of the NAL units of an AVCC frame;
/// yields one error and stops at the first malformed length.
struct AvccNals<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> AvccNals<'a> {
    fn new(data: &'a [u8]) -> Self {
        AvccNals {
            data,
            pos: 0,
            failed: false,
        }
    }
}

impl Iterator for AvccNals<'_> {
    type Item = Result<Range<usize>, PacketizeErrorKind>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let frame_len = self.data.len();
        let offset = self.pos;
        let fail = |this: &mut Self, kind| {
            this.failed = true;
            Some(Err(kind))
        };
        let Some(prefix) = self.data.get(offset..offset + 4) else {
            return fail(
                self,
                PacketizeErrorKind::TruncatedLength { offset, frame_len },
            );
        };
        let nal_len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if nal_len == 0 {
            return fail(self, PacketizeErrorKind::EmptyNal { offset });
        }
        let start = offset + 4;
        if nal_len > frame_len - start {
            return fail(
                self,
                PacketizeErrorKind::NalOverrun {
                    offset,
                    nal_len,
                    frame_len,
                },
            );
        }
        self.pos = start + nal_len;
        Some(Ok(start..start + nal_len))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn config() -> VideoConfig {
        VideoConfig {
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e, 0xd9]),
            pps: Bytes::from_static(&[0x68, 0xcb, 0x8c, 0xb2]),
            width: 320,
            height: 240,
            profile_idc: 0x42,
            constraint_flags: 0xc0,
            level_idc: 0x1e,
            frame_rate: Some((25, 1)),
        }
    }

    fn params() -> RtpParams {
        RtpParams {
            ssrc: 0xdead_beef,
            seq: 100,
            rtptime: 5000,
            payload_type: PAYLOAD_TYPE,
            clock_rate: CLOCK_RATE,
        }
    }

    fn avcc(nals: &[&[u8]]) -> Bytes {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        Bytes::from(v)
    }

    fn frame(data: Bytes, pts: i64, keyframe: bool) -> Frame {
        Frame {
            track: TrackKind::Video,
            pts,
            dts: pts,
            keyframe,
            data,
        }
    }

    #[test]
    fn keyframe_gets_sps_pps_then_single_nal_with_marker() {
        let mut p = H264Packetizer::new(params(), &config(), 1400);
        let mut out = Vec::new();
        let idr = [0x65u8, 0x88, 0x84, 0x00];
        p.packetize(
            &frame(avcc(&[&[0x06, 0x05, 0x01], &idr]), 9000, true),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(&out[0].payload()[..], &config().sps[..]);
        assert_eq!(&out[1].payload()[..], &config().pps[..]);
        assert_eq!(&out[2].payload()[..], &[0x06, 0x05, 0x01]);
        assert_eq!(&out[3].payload()[..], &idr);
        let markers: Vec<bool> = out.iter().map(RtpPacket::marker).collect();
        assert_eq!(markers, [false, false, false, true]);
        let seqs: Vec<u16> = out.iter().map(RtpPacket::sequence_number).collect();
        assert_eq!(seqs, [100, 101, 102, 103]);
        assert!(
            out.iter()
                .all(|p| p.timestamp() == 5000 && p.ssrc() == 0xdead_beef)
        );
        assert!(out.iter().all(|p| p.payload_header().is_empty()));

        // A non-keyframe: no parameter sets, timestamp advances by the pts distance.
        out.clear();
        p.packetize(
            &frame(avcc(&[&[0x41, 0x9a, 0x00]]), 9000 + 3600, false),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sequence_number(), 104);
        assert_eq!(out[0].timestamp(), 5000 + 3600);
        assert!(out[0].marker());
    }

    #[test]
    fn payload_is_a_slice_of_the_frame() {
        let mut p = H264Packetizer::new(params(), &config(), 1400);
        let data = avcc(&[&[0x41, 1, 2, 3]]);
        let mut out = Vec::new();
        p.packetize(&frame(data.clone(), 0, false), &mut out)
            .unwrap();
        assert_eq!(out[0].payload().as_ptr(), data[4..].as_ptr());
    }

    #[test]
    fn fu_a_boundaries_and_bits() {
        // max payload 64 → 62 bytes of NAL body per fragment.
        let mut p = H264Packetizer::new(params(), &config(), 64);
        let mut nal = vec![0x65u8];
        nal.extend((0..124u32).map(|i| i as u8)); // body of exactly 2 fragments
        let mut out = Vec::new();
        p.packetize(&frame(avcc(&[&nal]), 0, false), &mut out)
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].payload_header(), &[0x7c, 0x85]); // NRI 3, type 28; S, type 5
        assert_eq!(out[1].payload_header(), &[0x7c, 0x45]); // E, type 5
        assert_eq!(&out[0].payload()[..], &nal[1..63]);
        assert_eq!(&out[1].payload()[..], &nal[63..]);
        assert_eq!(out[0].wire_len(), 12 + 64);
        assert!(!out[0].marker() && out[1].marker());

        // One byte more → a third fragment of 1 byte; exactly max_payload → single NAL.
        nal.push(0xaa);
        out.clear();
        p.packetize(&frame(avcc(&[&nal]), 0, false), &mut out)
            .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].payload_header(), &[0x7c, 0x05]); // neither S nor E
        assert_eq!(out[2].payload_header(), &[0x7c, 0x45]);
        assert_eq!(&out[2].payload()[..], &[0xaa]);

        out.clear();
        let exact = [0x41u8; 64];
        p.packetize(&frame(avcc(&[&exact]), 0, false), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0].payload_header().is_empty());

        // Fragmented NAL that is not the last of the AU carries no marker.
        out.clear();
        let big = [0x21u8; 100];
        p.packetize(&frame(avcc(&[&big, &[0x41, 1]]), 0, false), &mut out)
            .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].payload_header(), &[0x3c, 0x81]);
        assert_eq!(out[1].payload_header(), &[0x3c, 0x41]);
        let markers: Vec<bool> = out.iter().map(RtpPacket::marker).collect();
        assert_eq!(markers, [false, false, true]);
        // Reassembling the fragments gives the NAL back.
        let mut re =
            vec![(out[0].payload_header()[0] & 0xe0) | (out[0].payload_header()[1] & 0x1f)];
        re.extend_from_slice(out[0].payload());
        re.extend_from_slice(out[1].payload());
        assert_eq!(re, big);
    }

    #[test]
    fn malformed_frames_are_errors_and_use_no_sequence_numbers() {
        let mut p = H264Packetizer::new(params(), &config(), 1400);
        let mut out = Vec::new();
        let cases: [(&[u8], PacketizeErrorKind); 4] = [
            (
                &[0, 0, 0],
                PacketizeErrorKind::TruncatedLength {
                    offset: 0,
                    frame_len: 3,
                },
            ),
            (&[0, 0, 0, 0], PacketizeErrorKind::EmptyNal { offset: 0 }),
            (
                &[0, 0, 0, 1, 0x41, 0, 0, 0, 9, 1],
                PacketizeErrorKind::NalOverrun {
                    offset: 5,
                    nal_len: 9,
                    frame_len: 10,
                },
            ),
            (&[], PacketizeErrorKind::EmptyFrame),
        ];
        for (data, kind) in cases {
            let e = p
                .packetize(&frame(Bytes::copy_from_slice(data), 7, true), &mut out)
                .unwrap_err();
            assert_eq!(e.kind, kind);
            assert_eq!(e.pts, 7);
            assert!(!e.to_string().is_empty());
        }
        assert!(out.is_empty());
        assert_eq!(p.sender().next_seq(), 100);
        let mut audio = frame(avcc(&[&[1]]), 0, true);
        audio.track = TrackKind::Audio;
        assert_eq!(
            p.packetize(&audio, &mut out).unwrap_err().kind,
            PacketizeErrorKind::WrongTrack
        );
    }

    #[test]
    fn huge_length_prefix_does_not_overflow() {
        let mut p = H264Packetizer::new(params(), &config(), 1400);
        let mut out = Vec::new();
        let e = p
            .packetize(
                &frame(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1]), 0, false),
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(e.kind, PacketizeErrorKind::NalOverrun { .. }));
    }
}
