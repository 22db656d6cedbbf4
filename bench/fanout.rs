//! criterion benches of the per-viewer media path: what one RTMP viewer costs per frame
//! (chunk headers written, payload placed in the outbox, outbox cleared as after a send),
//! over one GOP of the fake source (a keyframe and the frames after it).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::Instant;
use tessera::rtmp::chunk::ChunkEncoder;
use tessera::rtmp::viewer::RtmpViewer;
use tessera::source::fake::FakeSource;
use tessera::stream::viewer::{FrameViewer, MediaNow, Outbox, fake_frames};

fn bench(c: &mut Criterion) {
    let media = FakeSource::new(0, 25).media_info();
    let gop = fake_frames(60);
    let bytes: usize = gop.iter().map(|f| f.flv.body.len()).sum();
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(4096).expect("valid");
    let mut viewer = RtmpViewer::new(encoder, 1, &media, Some(1));
    let mut out = Outbox::default();
    let now = Instant::now();
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(gop.len() as u64));
    group.bench_function(
        format!("rtmp_viewer_gop_{}_frames_{bytes}_bytes", gop.len()),
        |b| {
            b.iter(|| {
                let mut sent = 0;
                for frame in &gop {
                    let at = MediaNow {
                        version: 1,
                        info: Some(&media),
                    };
                    viewer.queue(frame, at, now, 0);
                    while !viewer.write(&mut out, 32 * 1024) {
                        sent += out.len();
                        out.clear();
                    }
                    sent += out.len();
                    out.clear();
                }
                sent
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
