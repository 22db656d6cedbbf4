//! criterion bench of the MPEG-TS demuxer (`mux::ts_demux`), in MB/s of transport stream:
//! the fake source's TS feed (PCM-coded video, so large frames) pushed in SRT-sized
//! datagrams, and a real x264 + AAC stream from ffmpeg (`tests/data/h264_aac.ts`) pushed
//! whole.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use tessera::media::frame::TrackKind;
use tessera::mux::ts::TsMuxer;
use tessera::mux::ts_demux::{DemuxEvent, TsDemuxer};
use tessera::source::fake::FakeSource;

const H264_AAC: &[u8] = include_bytes!("../tests/data/h264_aac.ts");
/// SRT's 7 packets per datagram.
const DATAGRAM: usize = 7 * 188;

/// Four seconds of the fake source, muxed with tables before each keyframe.
fn fake_ts() -> Vec<u8> {
    let mut source = FakeSource::new(0, 25);
    let info = source.media_info();
    let mut frames = Vec::new();
    source.poll(4 * 90_000, &mut frames);
    let mut muxer = TsMuxer::new(&info);
    let mut ts = BytesMut::new();
    for f in &frames {
        if f.track == TrackKind::Video && f.keyframe {
            muxer.write_tables(&mut ts);
        }
        muxer
            .write_frame(f, &mut ts)
            .expect("the fake source's frames mux");
    }
    ts.to_vec()
}

/// Demuxes `ts` in `step`-byte pieces; returns the number of frames.
fn demux(ts: &[u8], step: usize, events: &mut Vec<DemuxEvent>) -> usize {
    let mut demuxer = TsDemuxer::new();
    let mut frames = 0;
    for chunk in ts.chunks(step) {
        demuxer.push(chunk, events);
        frames += events
            .drain(..)
            .filter(|e| matches!(e, DemuxEvent::Frame(_)))
            .count();
    }
    demuxer.finish(events);
    frames
        + events
            .drain(..)
            .filter(|e| matches!(e, DemuxEvent::Frame(_)))
            .count()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ts_demux");
    let mut events = Vec::with_capacity(256);

    let fake = fake_ts();
    group.throughput(Throughput::Bytes(fake.len() as u64));
    group.bench_function("fake_source_datagrams", |b| {
        b.iter(|| demux(black_box(&fake), DATAGRAM, &mut events))
    });

    group.throughput(Throughput::Bytes(H264_AAC.len() as u64));
    group.bench_function("ffmpeg_x264_aac_whole", |b| {
        b.iter(|| demux(black_box(H264_AAC), H264_AAC.len(), &mut events))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
