//! criterion benches of the HTTP playback hot path, phase by phase and whole:
//! request parsing, target normalization, a decision-cache hit, media playlist rendering
//! with a token, and the full cached request (parse → normalize → route → authorize → serve).

use bytes::Bytes;
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Instant;
use tessera::auth::Authorizer;
use tessera::auth::verdict::{PlayRequest, Proto};
use tessera::hls::playlist::{TokenQuery, write_media};
use tessera::http::limits::HttpLimits;
use tessera::http::request::{Parsed, parse_head};
use tessera::http::service::{ConnScratch, respond};
use tessera::http::target::Target;
use tessera::shard::{Now, ShardState};
use tessera::stream::catalog::Catalog;
use tessera::stream::segment::Segment;
use tessera::stream::view::StreamEvent;
use tessera::stream::window::SegmentWindow;

const REQUEST: &[u8] = b"GET /auth-check/tracks-v1a1/mono.m3u8?token=test1 HTTP/1.1\r\n\
User-Agent: Lavf/59.27.100\r\nAccept: */*\r\nRange: bytes=0-\r\nConnection: keep-alive\r\n\
Host: 127.0.0.1:8080\r\nIcy-MetaData: 1\r\n\r\n";

fn catalog() -> Arc<Catalog> {
    let config =
        tessera::config::parse(tessera::config::DEFAULT_CONFIG, "default").expect("default config");
    Arc::new(Catalog::from_config(&config))
}

fn segments() -> Vec<Segment> {
    (0..8u64)
        .map(|i| Segment {
            sequence: i,
            start_utc_ms: 1_706_988_696_000 + i as i64 * 2000,
            duration_ms: 2000,
            ts: Bytes::from(vec![0x47u8; 188 * 1000]),
            fmp4: None,
            dash: Default::default(),
            start_dts: 0,
            end_dts: 180_000,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let limits = HttpLimits::default();
    c.bench_function("http/parse_head", |b| {
        b.iter(|| match parse_head(black_box(REQUEST), &limits) {
            Parsed::Complete(h) => h.head_len,
            _ => unreachable!(),
        })
    });

    let mut target = Target::new();
    c.bench_function("http/normalize_target", |b| {
        b.iter(|| {
            target.parse(
                black_box(b"/auth-check/tracks-v1a1/mono.m3u8?token=test1"),
                b"token",
            )
        })
    });

    let catalog = catalog();
    let mut auth = Authorizer::new(1);
    let req = PlayRequest {
        stream: 0,
        proto: Proto::Hls,
        token: Some(b"test1"),
        ip: "192.0.2.1".parse().unwrap(),
        user_agent: Some(b"Lavf/59.27.100"),
    };
    let now = Instant::now();
    auth.authorize(&catalog, &req, now, 1_700_000_000_000);
    c.bench_function("auth/decision_cache_hit", |b| {
        b.iter(|| auth.authorize(&catalog, black_box(&req), now, 1_700_000_000_000))
    });

    let mut window = SegmentWindow::default();
    for s in segments() {
        window.push(s);
    }
    let mut out = Vec::with_capacity(4096);
    let token = TokenQuery {
        param: "token",
        token: Some(b"test1"),
    };
    c.bench_function("hls/media_playlist_with_token", |b| {
        b.iter(|| {
            out.clear();
            write_media(
                &mut out,
                window.playlist(),
                "",
                token,
                tessera::hls::names::Container::Ts,
            );
            out.len()
        })
    });

    let mut shard = ShardState::new(0, 1, catalog.clone(), HttpLimits::default(), 7);
    shard.apply(StreamEvent::Media {
        stream: 0,
        info: tessera::source::fake::FakeSource::new(0, 25).media_info(),
    });
    for s in segments() {
        shard.apply(StreamEvent::Segment {
            stream: 0,
            segment: s,
        });
    }
    let mut scratch = ConnScratch::default();
    let peer = "192.0.2.1".parse().unwrap();
    let mut group = c.benchmark_group("service");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cached_media_playlist_request", |b| {
        b.iter(|| {
            let Parsed::Complete(head) = parse_head(REQUEST, &limits) else {
                unreachable!()
            };
            out.clear();
            respond(
                &mut shard,
                &mut scratch,
                &head,
                peer,
                Now::read(),
                &mut out,
                true,
            )
            .status
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
