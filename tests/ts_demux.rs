//! The MPEG-TS demuxer (`mux::ts_demux`) against what tessera itself serves and what ffmpeg
//! writes: the continuous TS of `/NAME/mpegts` (`TsFeed`) and HLS segments (`Segmenter`),
//! both from the fake source, come back as the frames and configuration that went in; a
//! longer ffmpeg stream (x264 + AAC, made here at run time) comes back with ffprobe's own
//! timestamps, frame for frame.

mod common;
use common::*;
use std::time::Duration;
use tessera::media::frame::{Frame, MediaInfo, TrackKind};
use tessera::mux::ts::TIMESTAMP_OFFSET;
use tessera::mux::ts_demux::{DemuxEvent, TsDemuxer};
use tessera::source::fake::FakeSource;
use tessera::stream::segmenter::Segmenter;
use tessera::stream::ts_feed::TsFeed;

/// SRT carries 7 packets per datagram.
const DATAGRAM: usize = 7 * 188;

fn fake_frames(seconds: i64) -> (MediaInfo, Vec<Frame>) {
    let mut source = FakeSource::new(1_700_000_000_000, 25);
    let mut frames = Vec::new();
    source.poll(seconds * 90_000 - 1, &mut frames);
    (source.media_info(), frames)
}

struct Demuxed {
    media: Vec<MediaInfo>,
    frames: Vec<Frame>,
    errors: Vec<String>,
}

fn demux(chunks: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Demuxed {
    let mut demuxer = TsDemuxer::new();
    let mut events = Vec::new();
    for chunk in chunks {
        demuxer.push(chunk.as_ref(), &mut events);
    }
    demuxer.finish(&mut events);
    let mut out = Demuxed {
        media: Vec::new(),
        frames: Vec::new(),
        errors: Vec::new(),
    };
    for e in events {
        match e {
            DemuxEvent::Media(m) => out.media.push(m),
            DemuxEvent::Frame(f) => out.frames.push(f),
            DemuxEvent::Error(e) => out.errors.push(e.to_string()),
        }
    }
    out
}

/// (track, dts, pts, keyframe, payload) with timestamps shifted back by `shift`, in decode
/// order (video first at a tie; the demuxer emits a video frame when its next PES starts).
fn comparable(frames: &[Frame], shift: i64) -> Vec<(TrackKind, i64, i64, bool, Vec<u8>)> {
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
fn the_mpegts_feed_round_trips_in_datagrams() {
    let (info, sent) = fake_frames(4);
    let mut feed = TsFeed::new(&info);
    let ts: Vec<u8> = sent
        .iter()
        .flat_map(|f| feed.chunk(f).unwrap().to_vec())
        .collect();
    let got = demux(ts.chunks(DATAGRAM));
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    assert_eq!(got.media.last(), Some(&info));
    assert_eq!(
        comparable(&got.frames, TIMESTAMP_OFFSET),
        comparable(&sent, 0)
    );
}

#[test]
fn hls_segments_round_trip_back_to_back_and_alone() {
    let (info, sent) = fake_frames(7);
    let mut segmenter = Segmenter::new(&info, 2000, 1_700_000_000_000);
    let mut segments = Vec::new();
    for f in &sent {
        segments.extend(segmenter.push(f).unwrap());
    }
    let end = sent.last().unwrap().dts + 3600;
    segments.extend(segmenter.finish(end));
    assert!(segments.len() >= 3);

    // Back to back, as an HLS pull reads them (one muxer: counters run on).
    let got = demux(segments.iter().map(|s| s.ts.clone()));
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    assert_eq!(got.media, std::slice::from_ref(&info));
    assert_eq!(
        comparable(&got.frames, TIMESTAMP_OFFSET),
        comparable(&sent, 0)
    );

    // One segment alone, as a player joining the stream reads it.
    let middle = &segments[1];
    let got = demux([middle.ts.clone()]);
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    assert_eq!(got.media, [info]);
    let first = got
        .frames
        .iter()
        .find(|f| f.track == TrackKind::Video)
        .unwrap();
    assert!(first.keyframe);
    assert_eq!(first.dts - TIMESTAMP_OFFSET, middle.start_dts);
    let expected: Vec<Frame> = sent
        .iter()
        .filter(|f| (middle.start_dts..middle.end_dts).contains(&f.dts))
        .cloned()
        .collect();
    assert_eq!(
        comparable(&got.frames, TIMESTAMP_OFFSET),
        comparable(&expected, 0)
    );
}

/// (stream index, pts, dts, keyframe) of every packet, as ffprobe reads the file.
fn ffprobe_packets(path: &std::path::Path) -> Vec<(usize, i64, i64, bool)> {
    let out = run_bounded(
        tool("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "packet=stream_index,pts,dts,flags",
            ])
            .args(["-of", "csv=p=0"])
            .arg(path),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].starts_with('K'),
            )
        })
        .collect()
}

/// Six seconds of 320x240 at 30 fps (x264 with `x264` options, GOP 60) and 48 kHz stereo
/// AAC, written by ffmpeg's MPEG-TS muxer with `muxer` options; demuxed in datagrams and
/// compared with what ffprobe reads from the same file.
fn ffmpeg_matches_ffprobe(name: &str, x264: &[&str], muxer: &[&str]) {
    let path = temp_dir().join(format!("{name}.ts"));
    let made = run_bounded(
        tool("ffmpeg")
            .args(["-loglevel", "error", "-y"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30:duration=6",
            ])
            .args(["-f", "lavfi", "-i", "sine=duration=6:sample_rate=48000"])
            .args(["-c:v", "libx264", "-g", "60"])
            .args(x264)
            .args(["-c:a", "aac", "-ac", "2", "-f", "mpegts"])
            .args(muxer)
            .arg(&path),
        Duration::from_secs(60),
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ts = std::fs::read(&path).unwrap();
    let got = demux(ts.chunks(DATAGRAM));
    assert!(got.errors.is_empty(), "{name}: {:?}", got.errors);
    assert_eq!(got.media.len(), 1, "{name}: one Media");

    let probed = ffprobe_packets(&path);
    let video: Vec<(i64, i64, bool)> = probed
        .iter()
        .filter(|p| p.0 == 0)
        .map(|p| (p.1, p.2, p.3))
        .collect();
    let ours: Vec<(i64, i64, bool)> = got
        .frames
        .iter()
        .filter(|f| f.track == TrackKind::Video)
        .map(|f| (f.pts, f.dts, f.keyframe))
        .collect();
    assert_eq!(ours.len(), 180, "{name}");
    assert_eq!(ours.iter().filter(|f| f.2).count(), 3, "{name}");
    assert_eq!(ours, video, "{name}");

    let audio: Vec<i64> = probed.iter().filter(|p| p.0 == 1).map(|p| p.1).collect();
    let ours: Vec<i64> = got
        .frames
        .iter()
        .filter(|f| f.track == TrackKind::Audio)
        .map(|f| f.pts)
        .collect();
    assert_eq!(ours.len(), audio.len(), "{name}");
    for (a, b) in ours.iter().zip(&audio) {
        assert!((a - b).abs() <= 1, "{name}: audio pts {a} vs ffprobe's {b}");
    }
    let info = &got.media[0];
    let video = info.video.as_ref().unwrap();
    assert_eq!((video.width, video.height), (320, 240));
    assert_eq!(video.frame_rate, Some((30, 1)));
    let audio = info.audio.as_ref().unwrap();
    assert_eq!(
        (audio.sample_rate, audio.channels, audio.object_type),
        (48_000, 2, 2)
    );
}

#[test]
fn ffmpeg_x264_with_b_frames_matches_ffprobe() {
    ffmpeg_matches_ffprobe("bframes", &["-bf", "3"], &[]);
}

/// What a contribution encoder sends over SRT: constant bit rate with null packets, tables
/// repeated, no B-frames, several slices per picture.
#[test]
fn ffmpeg_cbr_multi_slice_stream_matches_ffprobe() {
    ffmpeg_matches_ffprobe(
        "cbr_slices",
        &[
            "-tune",
            "zerolatency",
            "-x264-params",
            "slices=4:nal-hrd=cbr",
            "-b:v",
            "800k",
        ],
        &[
            "-muxrate",
            "1500k",
            "-mpegts_flags",
            "+resend_headers",
            "-pcr_period",
            "20",
        ],
    );
}
