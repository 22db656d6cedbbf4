use super::*;
use crate::media::frame::{Frame, TrackKind};
use crate::rtp::aac::AacPacketizer;
use crate::rtp::h264::H264Packetizer;
use crate::rtp::h264::tests::config;
use crate::rtp::{RtpPacket, RtpParams};

fn params(payload_type: u8, clock_rate: u32) -> RtpParams {
    RtpParams {
        ssrc: 7,
        seq: 65_530,
        rtptime: 1000,
        payload_type,
        clock_rate,
    }
}

fn avcc(nals: &[Vec<u8>]) -> Bytes {
    let mut v = Vec::new();
    for n in nals {
        v.extend_from_slice(&(n.len() as u32).to_be_bytes());
        v.extend_from_slice(n);
    }
    v.into()
}

fn wire(packets: &[RtpPacket]) -> Vec<Vec<u8>> {
    packets
        .iter()
        .map(|p| {
            let mut d = Vec::new();
            p.write_datagram(&mut d);
            d
        })
        .collect()
}

fn video_frame(pts: i64, keyframe: bool, nals: &[Vec<u8>]) -> Frame {
    Frame {
        track: TrackKind::Video,
        pts,
        dts: pts,
        keyframe,
        data: avcc(nals),
    }
}

fn depacketize(d: &mut H264Depacketizer, datagrams: &[Vec<u8>]) -> Vec<H264Output> {
    let mut out = Vec::new();
    for dgram in datagrams {
        let (header, payload) = parse_rtp(dgram).unwrap();
        d.push(&header, payload, &mut out).unwrap();
    }
    out
}

#[test]
fn h264_single_nal_and_fu_a_round_trip_through_the_packetizer() {
    let mut p = H264Packetizer::new(params(96, 90_000), &config(), 200);
    let idr: Vec<u8> = std::iter::once(0x65)
        .chain((0..1000).map(|i| i as u8))
        .collect();
    let sei = vec![0x06, 1, 2, 3];
    let key = video_frame(0, true, &[sei.clone(), idr.clone()]);
    let delta = video_frame(3600, false, &[vec![0x41, 9, 9]]);
    let mut packets = Vec::new();
    p.packetize(&key, &mut packets).unwrap();
    p.packetize(&delta, &mut packets).unwrap();
    let mut d = H264Depacketizer::new();
    let out = depacketize(&mut d, &wire(&packets));
    let units: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            H264Output::Unit(u) => Some(u),
            _ => None,
        })
        .collect();
    assert!(out.contains(&H264Output::Sps(config().sps)));
    assert!(out.contains(&H264Output::Pps(config().pps)));
    assert_eq!(units.len(), 2);
    assert_eq!(units[0].data, avcc(&[sei, idr]));
    assert!(units[0].keyframe);
    assert_eq!(units[1].data, avcc(&[vec![0x41, 9, 9]]));
    assert!(!units[1].keyframe);
    assert_eq!(units[1].timestamp.wrapping_sub(units[0].timestamp), 3600);
}

#[test]
fn h264_stap_a_and_a_lost_fragment() {
    // STAP-A with SPS, PPS and an IDR slice, marker set.
    let mut pkt = vec![0x80, 0xe0, 0, 1, 0, 0, 0, 10, 0, 0, 0, 1, 0x18];
    for nal in [&[0x67u8, 1, 2][..], &[0x68, 3], &[0x65, 4, 5, 6]] {
        pkt.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        pkt.extend_from_slice(nal);
    }
    let mut d = H264Depacketizer::new();
    let out = depacketize(&mut d, &[pkt]);
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[2],
        H264Output::Unit(H264AccessUnit {
            timestamp: 10,
            data: avcc(&[vec![0x65, 4, 5, 6]]),
            keyframe: true
        })
    );
    // FU-A start (seq 2), middle lost (seq 3), end (seq 4): the unit is dropped.
    let fu = |seq: u8, fu_header: u8, marker: u8| {
        vec![
            0x80, marker, 0, seq, 0, 0, 0, 20, 0, 0, 0, 1, 0x7c, fu_header, 0xaa,
        ]
    };
    let out = depacketize(&mut d, &[fu(2, 0x81, 0x60), fu(4, 0x41, 0xe0)]);
    assert!(out.is_empty(), "{out:?}");
    // The next whole unit comes through.
    let out = depacketize(
        &mut d,
        &[fu(5, 0x85, 0x60), fu(6, 0x05, 0x60), fu(7, 0x45, 0xe0)],
    );
    assert_eq!(
        out,
        [H264Output::Unit(H264AccessUnit {
            timestamp: 20,
            data: avcc(&[vec![0x65, 0xaa, 0xaa, 0xaa]]),
            keyframe: true
        })]
    );
}

#[test]
fn malformed_packets_are_errors_not_panics() {
    assert_eq!(parse_rtp(&[0x80, 0x60]), Err(DepacketizeError::BadHeader));
    assert_eq!(parse_rtp(&[0x40; 12]), Err(DepacketizeError::BadHeader));
    // Padding longer than the packet.
    let mut pkt = vec![0xa0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xff];
    assert_eq!(parse_rtp(&pkt), Err(DepacketizeError::BadHeader));
    pkt[0] = 0x80;
    let (h, payload) = parse_rtp(&pkt).unwrap();
    let mut d = H264Depacketizer::new();
    assert!(d.push(&h, &[0x18, 0, 9, 1], &mut Vec::new()).is_err());
    assert!(d.push(&h, payload, &mut Vec::new()).is_err());
    let mut a = AacDepacketizer::new(13, 3).unwrap();
    assert!(a.push(&h, &[0, 16, 0xff], &mut Vec::new()).is_err());
    assert!(AacDepacketizer::new(20, 3).is_none());
}

#[test]
fn aac_hbr_round_trip_and_several_aus_per_packet() {
    let mut p = AacPacketizer::new(params(97, 48_000), 1400);
    let frame = Frame {
        track: TrackKind::Audio,
        pts: 0,
        dts: 0,
        keyframe: true,
        data: Bytes::from_static(&[0x21, 0x10, 0x05]),
    };
    let mut packets = Vec::new();
    p.packetize(&frame, &mut packets).unwrap();
    let mut a = AacDepacketizer::new(13, 3).unwrap();
    let mut out = Vec::new();
    for dgram in wire(&packets) {
        let (h, payload) = parse_rtp(&dgram).unwrap();
        a.push(&h, payload, &mut out).unwrap();
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data, frame.data);
    // Two AUs of 2 and 1 bytes: headers (2 << 3) and (1 << 3).
    let h = RtpHeader {
        marker: true,
        payload_type: 97,
        seq: 9,
        timestamp: 5000,
        ssrc: 1,
    };
    let payload = [0, 32, 0, 16, 0, 8, 0xa, 0xb, 0xc];
    out.clear();
    a.push(&h, &payload, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(&out[0].data[..], &[0xa, 0xb]);
    assert_eq!((out[1].timestamp, &out[1].data[..]), (6024, &[0xc][..]));
}

#[test]
fn aac_fragmented_au_is_reassembled() {
    let mut a = AacDepacketizer::new(13, 3).unwrap();
    let h = |seq, marker| RtpHeader {
        marker,
        payload_type: 97,
        seq,
        timestamp: 77,
        ssrc: 1,
    };
    // AU-size 4, split 3 + 1.
    let mut out = Vec::new();
    a.push(&h(1, false), &[0, 16, 0, 32, 1, 2, 3], &mut out)
        .unwrap();
    assert!(out.is_empty());
    a.push(&h(2, true), &[0, 16, 0, 32, 4], &mut out).unwrap();
    assert_eq!(&out[0].data[..], &[1, 2, 3, 4]);
}
