//! The demuxer as a whole: tessera's own muxer and the fake source round-tripped, every split
//! of the bytes, resync, damage, limits, and real ffmpeg output (`tests/data/`, see its
//! README for the commands that made it).

use super::*;
use crate::media::aac;
use crate::media::frame::{TrackKind, VideoConfig};
use crate::mux::ts::{TIMESTAMP_OFFSET, TS_PACKET_LEN, TsMuxer};
use crate::source::fake::FakeSource;
use bytes::BytesMut;

const H264_AAC: &[u8] = include_bytes!("../../../tests/data/h264_aac.ts");
const H264_BFRAMES_AAC48K: &[u8] = include_bytes!("../../../tests/data/h264_bframes_aac48k.ts");
const HEVC: &[u8] = include_bytes!("../../../tests/data/hevc.ts");
const MP3: &[u8] = include_bytes!("../../../tests/data/mp3.ts");

/// `seconds` of the fake source muxed the way `TsFeed` does: PAT/PMT before keyframes.
fn fake_stream(seconds: i64) -> (MediaInfo, Vec<Frame>, Vec<u8>) {
    let mut source = FakeSource::new(0, 25);
    let info = source.media_info();
    let mut frames = Vec::new();
    source.poll(seconds * 90_000 - 1, &mut frames);
    let mut muxer = TsMuxer::new(&info);
    let mut ts = BytesMut::new();
    for f in &frames {
        if f.track == TrackKind::Video && f.keyframe {
            muxer.write_tables(&mut ts);
        }
        muxer.write_frame(f, &mut ts).unwrap();
    }
    (info, frames, ts.to_vec())
}

fn demux_in_steps(ts: &[u8], step: usize) -> Vec<DemuxEvent> {
    let mut demuxer = TsDemuxer::new();
    let mut out = Vec::new();
    for chunk in ts.chunks(step.max(1)) {
        demuxer.push(chunk, &mut out);
    }
    demuxer.finish(&mut out);
    out
}

fn frames(events: &[DemuxEvent]) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn errors(events: &[DemuxEvent]) -> Vec<&DemuxError> {
    events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Error(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn last_media(events: &[DemuxEvent]) -> Option<&MediaInfo> {
    events.iter().rev().find_map(|e| match e {
        DemuxEvent::Media(m) => Some(m),
        _ => None,
    })
}

/// Frames as comparable tuples, in a stable order (the demuxer emits a video frame when
/// the next video PES starts, so the interleaving with audio differs from the muxer's input).
fn sorted(frames: &[&Frame], shift: i64) -> Vec<(TrackKind, i64, i64, bool, Vec<u8>)> {
    let mut v: Vec<_> = frames
        .iter()
        .map(|f| {
            (
                f.track,
                f.dts - shift,
                f.pts - shift,
                f.keyframe,
                f.data.to_vec(),
            )
        })
        .collect();
    v.sort_by_key(|(track, dts, ..)| (*dts, *track == TrackKind::Audio));
    v
}

#[test]
fn round_trips_tesseras_own_muxer() {
    let (info, sent, ts) = fake_stream(3);
    let events = demux_in_steps(&ts, 188 * 7);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    assert_eq!(last_media(&events), Some(&info));
    let sent: Vec<&Frame> = sent.iter().collect();
    assert_eq!(sorted(&frames(&events), TIMESTAMP_OFFSET), sorted(&sent, 0));
    // Configuration comes before the first frame of each track.
    let first_frame = events
        .iter()
        .position(|e| matches!(e, DemuxEvent::Frame(_)));
    let first_media = events
        .iter()
        .position(|e| matches!(e, DemuxEvent::Media(_)));
    assert!(first_media < first_frame);
}

#[test]
fn every_split_gives_the_same_events() {
    let (_, _, ts) = fake_stream(1);
    let whole = format!("{:?}", demux_in_steps(&ts, ts.len()));
    for step in [1, 2, 100, 187, 188, 189, 1316, 4096] {
        assert_eq!(
            format!("{:?}", demux_in_steps(&ts, step)),
            whole,
            "step {step}"
        );
    }
}

#[test]
fn resyncs_after_garbage_and_keeps_going() {
    let (_, sent, ts) = fake_stream(2);
    // Garbage in the middle of the second second, on a packet boundary and off it.
    let cut = (ts.len() / 188 / 2) * 188 + 50;
    let mut damaged = ts[..cut].to_vec();
    damaged.extend_from_slice(&[0x47, 0x00, 0x13, 0x47, 0x47, 0xAA]);
    damaged.extend(std::iter::repeat_n(0x55, 1000));
    damaged.extend_from_slice(&ts[cut..]);
    for step in [1, 188, 5000] {
        let events = demux_in_steps(&damaged, step);
        let errs = errors(&events);
        assert!(matches!(errs[0], DemuxError::LostSync { .. }), "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| matches!(e, DemuxError::Resynced { .. })),
            "{errs:?}"
        );
        let got = frames(&events);
        // The packet cut in two and the PES it belonged to are lost, and the frames around.
        assert!(
            got.len() > sent.len() - 8,
            "{} of {}",
            got.len(),
            sent.len()
        );
        assert!(got.last().unwrap().dts > sent.last().unwrap().dts);
    }
}

#[test]
fn a_lost_packet_is_a_continuity_error_with_its_pid() {
    let (_, sent, ts) = fake_stream(2);
    // Drop one video packet in the middle (not the first of a PES).
    let packets: Vec<&[u8]> = ts.chunks(TS_PACKET_LEN).collect();
    let drop_at = (packets.len() / 2..)
        .find(|&i| packets[i][1] & 0x40 == 0 && packets[i][2] == 0x00 && packets[i][1] & 0x1F == 1)
        .unwrap();
    let damaged: Vec<u8> = packets
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != drop_at)
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    let events = demux_in_steps(&damaged, 1000);
    let errs = errors(&events);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let DemuxError::Continuity { pid, offset, .. } = errs[0] else {
        panic!("{errs:?}");
    };
    assert_eq!((*pid, *offset), (0x100, (drop_at * TS_PACKET_LEN) as u64));
    assert_eq!(frames(&events).len(), sent.len() - 1);
}

#[test]
fn a_duplicate_packet_is_dropped_silently() {
    let (_, sent, ts) = fake_stream(1);
    let mut doubled = ts[..188 * 10].to_vec();
    doubled.extend_from_slice(&ts[188 * 9..]);
    let events = demux_in_steps(&doubled, 188);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    assert_eq!(frames(&events).len(), sent.len());
}

#[test]
fn a_stream_without_tables_is_reported() {
    let (_, _, ts) = fake_stream(1);
    let without_pmt: Vec<u8> = ts
        .chunks(TS_PACKET_LEN)
        .filter(|p| !(p[1] & 0x1F == 0x10 && p[2] == 0x00))
        .flatten()
        .copied()
        .collect();
    let events = demux_in_steps(&without_pmt, 4096);
    assert!(frames(&events).is_empty());
    let errs = errors(&events);
    assert!(
        matches!(errs[..], [DemuxError::MissingTables { pat_seen: true, .. }]),
        "{errs:?}"
    );
    assert_eq!(errs[0].to_string().split(" in ").next(), Some("ts: no PMT"));
    let events = demux_in_steps(&[0x47, 0x1F, 0xFF, 0x10].repeat(47 * 3000)[..], 188 * 100);
    let errs = errors(&events);
    assert!(
        matches!(
            errs[..],
            [DemuxError::MissingTables {
                pat_seen: false,
                packets: MISSING_TABLES_PACKETS,
                ..
            }]
        ),
        "{errs:?}"
    );
}

#[test]
fn timestamps_run_on_across_the_33_bit_wrap() {
    let mut source = FakeSource::new(0, 25);
    let info = source.media_info();
    let mut sent = Vec::new();
    source.poll(3 * 90_000, &mut sent);
    let base = (1i64 << 33) - TIMESTAMP_OFFSET - 90_000;
    let mut muxer = TsMuxer::new(&info);
    let mut ts = BytesMut::new();
    muxer.write_tables(&mut ts);
    for f in &mut sent {
        f.pts += base;
        f.dts += base;
        muxer.write_frame(f, &mut ts).unwrap();
    }
    let events = demux_in_steps(&ts, 4096);
    let got = frames(&events);
    assert_eq!(got.len(), sent.len());
    let video: Vec<i64> = got
        .iter()
        .filter(|f| f.track == TrackKind::Video)
        .map(|f| f.dts)
        .collect();
    assert!(video.windows(2).all(|w| w[1] > w[0]), "monotonic");
    assert_eq!(*video.last().unwrap() - video[0], 3 * 90_000);
    assert!(*video.last().unwrap() > 1 << 33);
}

/// A hand-built stream: PAT, a PMT with `streams`, then `pes` packets on their PIDs.
struct Builder {
    ts: Vec<u8>,
    cc: std::collections::HashMap<u16, u8>,
}

impl Builder {
    fn new(streams: &[(u8, u16, &[u8])]) -> Self {
        let mut b = Builder {
            ts: Vec::new(),
            cc: Default::default(),
        };
        let pat = psi::tests::section(0, 1, &[0, 1, 0xF0, 0x00]);
        b.section(0, &pat);
        let pmt = psi::tests::section(2, 1, &psi::tests::pmt_body(streams));
        b.section(0x1000, &pmt);
        b
    }

    fn next_cc(&mut self, pid: u16) -> u8 {
        let cc = self.cc.entry(pid).or_insert(0);
        let value = *cc;
        *cc = (*cc + 1) & 0x0F;
        value
    }

    fn section(&mut self, pid: u16, section: &[u8]) {
        let cc = self.next_cc(pid);
        let mut p = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | cc, 0];
        p.extend_from_slice(section);
        assert!(
            p.len() <= TS_PACKET_LEN,
            "the test's sections fit one packet"
        );
        p.resize(TS_PACKET_LEN, 0xFF);
        self.ts.extend(p);
    }

    /// The PES in packets, the last one padded with an adaptation field.
    fn pes(&mut self, pid: u16, pes: &[u8]) {
        for (i, chunk) in pes.chunks(184).enumerate() {
            let cc = self.next_cc(pid);
            let start = if i == 0 { 0x40 } else { 0 };
            let mut p = vec![0x47, start | (pid >> 8) as u8, pid as u8, cc];
            let pad = 184 - chunk.len();
            if pad == 0 {
                p[3] |= 0x10;
            } else {
                p[3] |= 0x30;
                p.push((pad - 1) as u8);
                if pad > 1 {
                    p.push(0);
                    p.resize(p.len() + pad - 2, 0xFF);
                }
            }
            p.extend_from_slice(chunk);
            self.ts.extend(p);
        }
    }
}

/// A PES with a PTS, `bounded` with its real PES_packet_length.
fn pes_bytes(pts: u64, payload: &[u8], bounded: bool) -> Vec<u8> {
    pes::tests::pes(pts, None, payload, bounded)
}

#[test]
fn adts_frames_split_across_pes_packets_keep_their_times() {
    let config = aac::audio_config(2, 48_000, 2).unwrap();
    let adts = |fill: u8, len: usize| {
        let mut f = aac::adts_header(&config, len).unwrap().to_vec();
        f.extend(std::iter::repeat_n(fill, len));
        f
    };
    let (a, b, c, d) = (adts(1, 100), adts(2, 200), adts(3, 50), adts(4, 60));
    let mut b_builder = Builder::new(&[(0x0F, 0x101, &[])]);
    // PES 1: a, then the first 120 bytes of b. PES 2: the rest of b, c, d.
    let first = [&a[..], &b[..120]].concat();
    let second = [&b[120..], &c[..], &d[..]].concat();
    b_builder.pes(0x101, &pes_bytes(9000, &first, true));
    b_builder.pes(0x101, &pes_bytes(9000 + 2 * 1920 + 1, &second, true));
    let events = demux_in_steps(&b_builder.ts, 1);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let got: Vec<(i64, u8, usize)> = frames(&events)
        .iter()
        .map(|f| (f.pts, f.data[0], f.data.len()))
        .collect();
    // b keeps the time after a; c takes the second PES's PTS (the first frame starting in it).
    assert_eq!(
        got,
        [
            (9000, 1, 100),
            (10_920, 2, 200),
            (12_841, 3, 50),
            (14_761, 4, 60)
        ]
    );
    assert_eq!(last_media(&events).unwrap().audio, Some(config));
}

#[test]
fn an_oversized_pes_is_dropped_with_its_limit() {
    let mut b = Builder::new(&[(0x1B, 0x100, &[])]);
    let big = vec![0u8; MAX_PES_LEN + 1000];
    b.pes(0x100, &pes_bytes(0, &big, false));
    b.pes(0x100, &pes_bytes(3600, &[0, 0, 1, 0x09, 0xF0], false));
    let events = demux_in_steps(&b.ts, 65_536);
    let errs = errors(&events);
    assert_eq!(
        errs,
        [&DemuxError::PesTooLarge {
            pid: 0x100,
            offset: 376,
            limit: MAX_PES_LEN
        }]
    );
}

#[test]
fn unsupported_and_ignored_streams_are_named_once() {
    let mut b = Builder::new(&[(0x24, 0x101, &[]), (0x15, 0x102, &[]), (0x0F, 0x103, &[])]);
    let pmt = psi::tests::section(
        2,
        1,
        &psi::tests::pmt_body(&[(0x24, 0x101, &[]), (0x15, 0x102, &[]), (0x0F, 0x103, &[])]),
    );
    b.section(0x1000, &pmt);
    let events = demux_in_steps(&b.ts, 188);
    let errs = errors(&events);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0].to_string(),
        "ts: unsupported codec stream_type 0x24 (HEVC) on PID 0x101"
    );
    assert!(errs[0].is_fatal());
    assert_eq!(
        errs[1].to_string(),
        "ts: ignoring stream_type 0x15 (metadata, ID3) on PID 0x102"
    );
    assert!(!errs[1].is_fatal());
}

#[test]
fn an_access_unit_over_several_bounded_pes_is_one_frame() {
    let source = FakeSource::new(0, 25);
    let info = source.media_info();
    let config = info.video.as_ref().unwrap();
    let idr = [0x65u8, 0x88, 0x84, 0x21, 0x43];
    let au = [
        &[0, 0, 0, 1][..],
        &config.sps,
        &[0, 0, 0, 1],
        &config.pps,
        &[0, 0, 0, 1],
        &idr,
    ]
    .concat();
    let (head, tail) = au.split_at(12);
    let mut b = Builder::new(&[(0x1B, 0x100, &[])]);
    b.pes(0x100, &pes_bytes(9000, head, true));
    // The rest in a PES without PTS (PTS_DTS_flags 00, no header data).
    let mut untimed = vec![0, 0, 1, 0xE0, 0, (3 + tail.len()) as u8, 0x80, 0x00, 0];
    untimed.extend_from_slice(tail);
    b.pes(0x100, &untimed);
    b.pes(0x100, &pes_bytes(12_600, &[0, 0, 1, 0x41, 0x9A], true));
    let events = demux_in_steps(&b.ts, 188);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let got = frames(&events);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].pts, got[0].keyframe), (9000, true));
    assert_eq!(&got[0].data[..], [&[0, 0, 0, 5][..], &idr].concat());
    assert_eq!(
        last_media(&events),
        Some(&MediaInfo {
            video: info.video.clone(),
            audio: None
        })
    );
}

#[test]
fn video_before_its_parameter_sets_is_reported_once() {
    let mut b = Builder::new(&[(0x1B, 0x100, &[])]);
    for i in 0..3 {
        b.pes(
            0x100,
            &pes_bytes(i * 3600, &[0, 0, 1, 0x41, 0x9A, 0x02], false),
        );
    }
    let events = demux_in_steps(&b.ts, 188);
    assert!(frames(&events).is_empty());
    assert_eq!(
        errors(&events),
        [&DemuxError::NoConfig {
            pid: 0x100,
            track: TrackKind::Video
        }]
    );
}

/// What a real stream must look like after demuxing.
struct Expect {
    video_frames: usize,
    keyframes: usize,
    audio_frames: usize,
    width: u16,
    height: u16,
    sample_rate: u32,
    channels: u8,
    b_frames: bool,
}

fn check_real_stream(ts: &[u8], expect: Expect) {
    let events = demux_in_steps(ts, 1316);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let media = events
        .iter()
        .filter(|e| matches!(e, DemuxEvent::Media(_)))
        .count();
    assert_eq!(media, 1, "one Media, with both tracks, before any frame");
    assert!(matches!(events[0], DemuxEvent::Media(_)));
    let info = last_media(&events).expect("media");
    let video: &VideoConfig = info.video.as_ref().expect("video config");
    assert_eq!((video.width, video.height), (expect.width, expect.height));
    let audio = info.audio.as_ref().expect("audio config");
    assert_eq!(
        (audio.sample_rate, audio.channels),
        (expect.sample_rate, expect.channels)
    );
    let got = frames(&events);
    let (v, a): (Vec<&Frame>, Vec<&Frame>) = got.iter().partition(|f| f.track == TrackKind::Video);
    assert_eq!(v.len(), expect.video_frames);
    assert_eq!(a.len(), expect.audio_frames);
    assert_eq!(v.iter().filter(|f| f.keyframe).count(), expect.keyframes);
    assert!(v[0].keyframe);
    assert!(
        v.windows(2).all(|w| w[1].dts > w[0].dts),
        "video DTS monotonic"
    );
    assert!(
        a.windows(2).all(|w| w[1].pts > w[0].pts),
        "audio PTS monotonic"
    );
    assert!(v.iter().all(|f| f.pts >= f.dts));
    assert_eq!(v.iter().any(|f| f.pts != f.dts), expect.b_frames);
    for f in &v {
        // AVCC, no AUD, SPS or PPS.
        for nal in crate::media::h264::avcc_nal_units(&f.data) {
            let kind = crate::media::h264::nal_unit_type(nal.unwrap()).unwrap();
            assert!(!matches!(kind, 7..=9), "NAL type {kind} left in the frame");
        }
    }
    assert!(
        a.iter()
            .all(|f| f.data[0] != 0xFF || f.data.get(1).is_some_and(|b| b & 0xF0 != 0xF0))
    );
}

#[test]
fn ffmpeg_x264_and_aac() {
    check_real_stream(
        H264_AAC,
        Expect {
            video_frames: 25,
            keyframes: 1,
            audio_frames: 45,
            width: 160,
            height: 120,
            sample_rate: 44_100,
            channels: 1,
            b_frames: true,
        },
    );
}

#[test]
fn ffmpeg_x264_b_frames_and_aac_48k_stereo() {
    check_real_stream(
        H264_BFRAMES_AAC48K,
        Expect {
            video_frames: 25,
            keyframes: 3,
            audio_frames: 48,
            width: 160,
            height: 120,
            sample_rate: 48_000,
            channels: 2,
            b_frames: true,
        },
    );
}

#[test]
fn ffmpeg_hevc_and_mp3_are_refused_by_name() {
    let events = demux_in_steps(HEVC, 1316);
    assert!(frames(&events).is_empty());
    let errs = errors(&events);
    assert!(
        errs.iter()
            .any(|e| e.is_fatal() && e.to_string().contains("(HEVC) on PID 0x100")),
        "{errs:?}"
    );
    let events = demux_in_steps(MP3, 1316);
    let errs = errors(&events);
    assert!(
        errs.iter()
            .any(|e| e.is_fatal() && e.to_string().contains("MP2/MP3")),
        "{errs:?}"
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic stand-in for the fuzz target: real streams with bytes flipped.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for source in [H264_AAC, H264_BFRAMES_AAC48K] {
        for _ in 0..20 {
            let mut damaged = source.to_vec();
            for _ in 0..50 {
                let at = (next() as usize) % damaged.len();
                damaged[at] = next() as u8;
            }
            let step = (next() % 2000) as usize + 1;
            let _ = demux_in_steps(&damaged, step);
        }
    }
}

#[test]
fn a_pmt_with_too_many_streams_is_reported_once_and_bounded() {
    let descriptors: &[u8] = &[];
    let streams: Vec<(u8, u16, &[u8])> = (0..30).map(|i| (0x15, 0x200 + i, descriptors)).collect();
    let mut b = Builder::new(&streams);
    let pmt = psi::tests::section(2, 1, &psi::tests::pmt_body(&streams[..29]));
    b.section(0x1000, &pmt);
    let events = demux_in_steps(&b.ts, 188);
    let errs = errors(&events);
    assert_eq!(errs.len(), MAX_LISTED_STREAMS + 1, "{errs:?}");
    assert!(matches!(
        errs.last(),
        Some(DemuxError::TooManyStreams { pid: 0x1000, .. })
    ));
}

#[test]
fn a_track_the_pmt_drops_leaves_the_media_info() {
    let (info, _, ts) = fake_stream(1);
    let mut b = Builder::new(&[(0x1B, 0x100, &[])]);
    // Continue the PMT's counter past the stream's own tables (one per keyframe).
    b.cc.insert(0x1000, 2);
    let pmt = psi::tests::section(2, 1, &psi::tests::pmt_body(&[(0x1B, 0x100, &[])]));
    b.section(0x1000, &pmt);
    let mut stream = ts.clone();
    stream.extend_from_slice(&b.ts[2 * TS_PACKET_LEN..]);
    let events = demux_in_steps(&stream, 188);
    let media: Vec<&MediaInfo> = events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Media(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(media.len(), 2, "{media:?}");
    assert_eq!(media[0], &info);
    assert_eq!(media[1].video, info.video);
    assert_eq!(media[1].audio, None);
}
