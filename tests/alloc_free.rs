//! The cached-decision request path allocates nothing per request: a counting global
//! allocator around the real service code (parse → normalize → route → authorize → serve).

use bytes::Bytes;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera::http::limits::HttpLimits;
use tessera::http::request::{Parsed, parse_head};
use tessera::http::service::{ConnScratch, respond};
use tessera::shard::{Now, ShardState};
use tessera::stream::catalog::Catalog;
use tessera::stream::segment::Segment;
use tessera::stream::view::StreamEvent;

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Counting is per thread: the test harness's own threads allocate whenever they like.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    // `try_with`: during thread teardown the slot may be gone; nothing is counted then.
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn shard_with_segments() -> (ShardState, Vec<String>) {
    let config =
        tessera::config::parse(tessera::config::DEFAULT_CONFIG, "default").expect("default config");
    let catalog = Arc::new(Catalog::from_config(&config));
    let mut shard = ShardState::new(0, 1, catalog, HttpLimits::default(), 42);
    let info = tessera::source::fake::FakeSource::new(0, 25).media_info();
    shard.apply(StreamEvent::Media { stream: 0, info });
    let start = 1_706_988_696_000;
    let mut names = Vec::new();
    for i in 0..6u64 {
        let segment = Segment {
            sequence: i,
            start_utc_ms: start + i as i64 * 2000,
            duration_ms: 2000,
            ts: Bytes::from(vec![0x47u8; 188 * 100]),
            fmp4: None,
            dash: Default::default(),
            mss: tessera::stream::segment::MssFragments {
                video: (i > 0).then(|| tessera::stream::segment::MssFragment {
                    time: (i - 1) * 180_000,
                    duration: 180_000,
                    bytes: Bytes::from(vec![0u8; 4096]),
                }),
                audio: None,
            },
            start_dts: 0,
            end_dts: 180_000,
        };
        let mut name = Vec::new();
        tessera::hls::names::write_segment_path(
            &mut name,
            &segment,
            tessera::hls::names::Container::Ts,
        );
        names.push(String::from_utf8(name).unwrap());
        shard.apply(StreamEvent::Segment { stream: 0, segment });
    }
    (shard, names)
}

#[test]
fn cached_requests_do_not_allocate() {
    let (mut shard, names) = shard_with_segments();
    let requests: Vec<Vec<u8>> = [
        "/auth-check/tracks-v1a1/mono.m3u8?token=test1".to_string(),
        "/auth-check/index.m3u8?token=test1".to_string(),
        format!("/auth-check/tracks-v1a1/{}?token=test1", names[5]),
        "/auth-check/index.m3u8?token=nope".to_string(),
        "/auth-check/index.m3u8".to_string(),
        "/auth-check.isml/manifest?token=test1".to_string(),
        "/auth-check.isml/QualityLevels(1)/Fragments(video=360000)?token=test1".to_string(),
        "/auth-check/embed.html?token=test1&format=mss".to_string(),
    ]
    .iter()
    .map(|path| {
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Lavf/59.27.100\r\n\r\n")
            .into_bytes()
    })
    .collect();
    let limits = HttpLimits::default();
    let peer = "127.0.0.1".parse().unwrap();
    let mut scratch = ConnScratch::default();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut run = |shard: &mut ShardState, out: &mut Vec<u8>| {
        let mut statuses = Vec::with_capacity(0);
        for req in &requests {
            let Parsed::Complete(head) = parse_head(req, &limits) else {
                panic!("parse")
            };
            out.clear();
            let reply = respond(shard, &mut scratch, &head, peer, Now::read(), out, true);
            statuses.push(reply.status.code());
            drop(reply);
        }
        statuses
    };
    // Warm-up: opens the session, fills the decision cache, grows the buffers.
    assert_eq!(
        run(&mut shard, &mut out),
        vec![200, 200, 200, 403, 403, 200, 200, 200]
    );
    let before = shard.auth.cache().hits;

    COUNTING.with(|c| c.set(true));
    for _ in 0..1000 {
        let Parsed::Complete(head) = parse_head(&requests[0], &limits) else {
            panic!("parse")
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
        );
        for req in &requests[1..] {
            let Parsed::Complete(head) = parse_head(req, &limits) else {
                panic!("parse")
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
            );
        }
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in 8000 cached requests"
    );
    assert_eq!(
        shard.auth.cache().hits - before,
        7000,
        "every decision came from the cache (the player page asks for none)"
    );
}
