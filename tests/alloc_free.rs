//! The cached-decision request path allocates nothing per request: a counting global
//! allocator around the real service code (parse → normalize → route → authorize → serve).

use bytes::Bytes;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera::catalog::Catalog;
use tessera::http::limits::HttpLimits;
use tessera::http::request::{Parsed, parse_head};
use tessera::http::service::{ConnScratch, respond};
use tessera::shard::{Now, ShardState};
use tessera::stream::segment::{Part, Segment};
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
    shard_for(tessera::config::DEFAULT_CONFIG)
}

fn shard_for(config_text: &str) -> (ShardState, Vec<String>) {
    let config = tessera::config::parse(config_text, "test").expect("valid config");
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
            parts: Default::default(),
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
    // A part of the segment being cut, for LL-HLS.
    let part = Part {
        segment: 6,
        index: 0,
        start_dts: 180_000,
        end_dts: 208_800,
        start_utc_ms: start + 12_000,
        independent: true,
        fmp4: Bytes::from(vec![0u8; 4000]),
    };
    shard.apply(StreamEvent::Part { stream: 0, part });
    (shard, names)
}

#[test]
fn cached_requests_do_not_allocate() {
    let (mut shard, names) = shard_with_segments();
    let requests: Vec<Vec<u8>> = [
        "/auth-check/tracks-v1a1/mono.m3u8?token=test1".to_string(),
        "/auth-check/index.m3u8?token=test1".to_string(),
        format!("/auth-check/tracks-v1a1/{}?token=test1", names[5]),
        "/auth-check/index.ll.m3u8?token=test1&_HLS_msn=6&_HLS_part=0".to_string(),
        "/auth-check/ll/6.0.m4s?token=test1".to_string(),
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
        vec![200, 200, 200, 200, 200, 403, 403, 200, 200, 200]
    );
    let before = shard.authorizer().cache().hits;

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
        allocations,
        0,
        "{allocations} allocations in {} cached requests",
        1000 * requests.len()
    );
    assert_eq!(
        shard.authorizer().cache().hits - before,
        1000 * (requests.len() as u64 - 1),
        "every decision came from the cache (the player page asks for none)"
    );
}

/// A portal's cached allow (with a user id and a session limit) and an active revocation
/// list cost no allocation either: the grant is a reference count, the checks are hashes.
#[test]
fn portal_decisions_in_the_cache_do_not_allocate() {
    use tessera::auth::portal::{BackendAnswer, BackendDecision, HeaderNotes};
    use tessera::auth::revoke::RevokeTarget;
    use tessera::auth::verdict::DenyReason;
    use tessera::auth::{Authorization, PortalOutcome};
    let (mut shard, _) = shard_for(
        "auth_backend p { backend http://127.0.0.1:9/auth; }\n\
         stream auth-check { input fake://fake; on_play auth://p; }",
    );
    let limits = HttpLimits::default();
    let peer = "127.0.0.1".parse().unwrap();
    let mut scratch = ConnScratch::default();
    let mut out = Vec::with_capacity(64 * 1024);
    let req = b"GET /auth-check/tracks-v1a1/mono.m3u8?token=viewer HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut ask = |shard: &mut ShardState, out: &mut Vec<u8>| {
        let Parsed::Complete(head) = parse_head(req, &limits) else {
            panic!("parse")
        };
        out.clear();
        respond(shard, &mut scratch, &head, peer, Now::read(), out, true)
    };
    // The first request waits for the portal; answer it as the owner shard would.
    let first = ask(&mut shard, &mut out);
    assert!(first.parks());
    let question = shard
        .authorizer_mut()
        .lookups
        .next_to_send()
        .expect("a portal question");
    let catalog = shard.catalog().clone();
    let answer = PortalOutcome::Answered(BackendAnswer {
        decision: BackendDecision::Allow,
        duration: std::time::Duration::from_secs(60),
        user_id: Some("alice".into()),
        max_sessions: std::num::NonZeroU32::new(2),
        notes: HeaderNotes::default(),
    });
    shard
        .authorizer_mut()
        .complete(&catalog, &question, &answer, std::time::Instant::now());
    shard.authorizer_mut().revoke(
        &catalog,
        &RevokeTarget::Token(b"someone-else".as_slice().into()),
        DenyReason::SessionRevoked,
        std::time::Instant::now(),
    );
    assert_eq!(ask(&mut shard, &mut out).status.code(), 200);
    let _ = shard.authorizer_mut().take_user_events();
    assert!(matches!(
        shard.authorizer_mut().authorize(
            &catalog,
            &tessera::auth::verdict::PlayRequest {
                stream: 0,
                proto: tessera::auth::verdict::Proto::Hls,
                token: Some(b"viewer"),
                ip: peer,
                user_agent: None,
                referer: None,
                qs: b"",
            },
            std::time::Instant::now(),
            0
        ),
        Authorization::Allow(_)
    ));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    for _ in 0..2000 {
        let reply = ask(&mut shard, &mut out);
        assert_eq!(reply.status.code(), 200);
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(allocations, 0, "{allocations} allocations in 2000 requests");
}
