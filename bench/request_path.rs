//! criterion benches of the HTTP playback hot path, phase by phase and whole:
//! request parsing, target normalization, a decision-cache hit, a signed-token check, the
//! portal miss path (the shard's side of it: question built, answer cached, next request a
//! hit), the media playlist with a token as a request gets it (from the template the shard
//! keeps) and the template's rendering at a segment cut, the full cached request (parse →
//! normalize → route → authorize → serve), and the full 403 answer to a request without a
//! token.

use bytes::Bytes;
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Instant;
use tessera::auth::portal::{BackendAnswer, BackendDecision, HeaderNotes};
use tessera::auth::verdict::{PlayRequest, Proto};
use tessera::auth::{Authorization, Authorizer, PortalOutcome};
use tessera::catalog::Catalog;
use tessera::hls::kept::write_kept_media;
use tessera::hls::names::Container;
use tessera::hls::playlist::{TokenQuery, write_media};
use tessera::http::limits::HttpLimits;
use tessera::http::request::{Parsed, parse_head};
use tessera::http::service::{ConnScratch, respond};
use tessera::http::target::Target;
use tessera::shard::{Now, ShardState};
use tessera::stream::segment::Segment;
use tessera::stream::view::{StreamEvent, StreamView};
use tessera::uri::TokenTemplate;

const REQUEST: &[u8] = b"GET /auth-check/tracks-v1a1/mono.m3u8?token=test1 HTTP/1.1\r\n\
User-Agent: Lavf/59.27.100\r\nAccept: */*\r\nRange: bytes=0-\r\nConnection: keep-alive\r\n\
Host: 127.0.0.1:8080\r\nIcy-MetaData: 1\r\n\r\n";

const REQUEST_NO_TOKEN: &[u8] = b"GET /auth-check/tracks-v1a1/mono.m3u8 HTTP/1.1\r\n\
User-Agent: Lavf/59.27.100\r\nAccept: */*\r\nConnection: keep-alive\r\n\
Host: 127.0.0.1:8080\r\n\r\n";

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
            parts: Default::default(),
            dash: Default::default(),
            mss: Default::default(),
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
        referer: None,
        qs: b"token=test1",
    };
    let now = Instant::now();
    auth.authorize(&catalog, &req, now, 1_700_000_000_000);
    c.bench_function("auth/decision_cache_hit", |b| {
        b.iter(|| auth.authorize(&catalog, black_box(&req), now, 1_700_000_000_000))
    });

    // A signed token checked by the policy (HMAC-SHA256, constant-time compare): what a
    // cache miss costs for `signed_key`, with no backend round trip.
    let signed_config = tessera::config::parse(
        "auth_backend s { signed_key k1 0123456789abcdef0123456789abcdef; }\n\
         stream live { input fake://fake; on_play auth://s; }",
        "bench",
    )
    .expect("bench config");
    let signed_catalog = Catalog::from_config(&signed_config);
    let policy = &signed_catalog.policies[0];
    let now_unix = 1_700_000_000;
    let mut keys = tessera::auth::signed::SignedKeys::new();
    keys.insert("k1", b"0123456789abcdef0123456789abcdef")
        .expect("valid key");
    let token = keys
        .sign("k1", now_unix + 3600, "live", None)
        .expect("signable");
    let signed_req = PlayRequest {
        token: Some(token.as_bytes()),
        ..req
    };
    c.bench_function("auth/signed_token_check", |b| {
        b.iter(|| policy.decide(black_box(&signed_req), "live", now_unix))
    });

    // The shard's share of a portal miss: the request's question is built and queued, the
    // portal's answer is cached and its waiters woken, and the next request is a hit.
    let portal_config = tessera::config::parse(
        "auth_backend p { backend http://127.0.0.1:9/auth; }\n\
         stream live { input fake://fake; on_play auth://p; }",
        "bench",
    )
    .expect("bench config");
    let portal_catalog = Catalog::from_config(&portal_config);
    let mut portal_auth = Authorizer::new(2);
    let allow = PortalOutcome::Answered(BackendAnswer {
        decision: BackendDecision::Allow,
        duration: std::time::Duration::from_secs(30),
        user_id: None,
        max_sessions: None,
        notes: HeaderNotes::default(),
    });
    let mut n = 0u64;
    let mut token_buf = Vec::with_capacity(32);
    c.bench_function("auth/portal_miss_path", |b| {
        b.iter(|| {
            n += 1;
            token_buf.clear();
            token_buf.extend_from_slice(format!("viewer-{n}").as_bytes());
            let r = PlayRequest {
                token: Some(&token_buf),
                ..req
            };
            let Authorization::Pending(key) = portal_auth.authorize(&portal_catalog, &r, now, 0)
            else {
                unreachable!("a new token is a miss")
            };
            let q = portal_auth.lookups.next_to_send().expect("queued");
            portal_auth.complete(&portal_catalog, &q, &allow, now);
            debug_assert_eq!(key, q.key);
            portal_auth.authorize(&portal_catalog, &r, now, 0)
        })
    });

    let mut view = StreamView::default();
    for segment in segments() {
        view.apply(0, StreamEvent::Segment { stream: 0, segment });
    }
    let mut out = Vec::with_capacity(4096);
    let token = TokenQuery {
        param: "token",
        token: Some(b"test1"),
    };
    // What a request pays: the kept template copied with the token written in.
    c.bench_function("hls/media_playlist_with_token", |b| {
        b.iter(|| {
            out.clear();
            write_kept_media(&mut out, &view, "", Container::Ts, token);
            out.len()
        })
    });
    // What a segment cut pays, once per playlist asked for: the template rendered.
    let mut template = TokenTemplate::default();
    let mut revision = 0;
    c.bench_function("hls/media_playlist_template_render", |b| {
        b.iter(|| {
            revision += 1;
            template.refresh(revision, |text, marks| {
                write_media(text, view.window.playlist(), "", marks, Container::Ts)
            });
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
    // A whole request, parse to answer: the cached token playlist, and the 403 path (the
    // same playlist without a token).
    for (name, request) in [
        ("cached_media_playlist_request", REQUEST),
        ("denied_request", REQUEST_NO_TOKEN),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let Parsed::Complete(head) = parse_head(request, &limits) else {
                    unreachable!()
                };
                out.clear();
                let now = Now::read();
                respond(&mut shard, &mut scratch, &head, peer, now, &mut out, true).status
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
