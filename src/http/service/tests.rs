//! Each phase alone, without a runtime: a shard fed by a `fake://` source through its
//! `LiveInput` (real segments, parts and frames), requests as heads, and the bytes the
//! phase writes to `out` next to the `Reply` or typed result it returns.

use super::*;
use crate::auth::PortalOutcome;
use crate::auth::portal::parse_backend_response;
use crate::http::limits::HttpLimits;
use crate::shard::Outgoing;
use crate::source::fake::FakeSource;
use crate::stream::live_input::{LiveInput, Timeline};
use std::sync::Arc;
use std::time::Instant;

/// `auth-check` needs `token=test1`; `idle` is open but never gets media (no publisher).
const CONFIG: &str = "auth_backend play-auth { allow token test1; }\n\
    stream auth-check { input fake://fake; on_play auth://play-auth; }\n\
    stream idle { input publish://; }\n";

/// `auth-check` is left to a portal.
const PORTAL_CONFIG: &str = "auth_backend p { backend http://127.0.0.1:9/auth; }\n\
    stream auth-check { input fake://fake; on_play auth://p; }\n";

/// Wall clock of the source's first frame.
const T0: i64 = 1_706_988_696_000;

/// A shard whose stream 0 has had 9.3 s of the fake source: four 2 s segments (0-3), the
/// open segment's parts, and the frames in the ring.
fn shard(config: &str) -> ShardState {
    let config = crate::config::parse(config, "test").expect("valid config");
    let catalog = Arc::new(Catalog::from_config(&config));
    let mut shard = ShardState::new(0, 1, catalog, HttpLimits::default(), 42);
    let mut source = FakeSource::new(T0, 25);
    let mut input = LiveInput::new(0, 0, 2000, Timeline::default());
    input.configure(source.media_info());
    let mut frames = Vec::new();
    source.poll(90_000 * 9 + 30_000, &mut frames);
    let mut events = Vec::new();
    for frame in frames {
        input.push(frame, T0, &mut events);
    }
    for event in events {
        shard.apply(event);
    }
    shard
}

fn now() -> Now {
    Now {
        instant: Instant::now(),
        utc_ms: T0 + 9_300,
    }
}

fn request(method: Method, target: &str) -> RequestHead<'_> {
    RequestHead {
        method,
        target: target.as_bytes(),
        user_agent: Some(b"test-player/1"),
        referer: None,
        authorization: None,
        close: false,
        body_len: 0,
        head_len: 0,
    }
}

fn get(target: &str) -> RequestHead<'_> {
    request(Method::Get, target)
}

/// One connection to a shard, as `http_conn` drives it.
struct Client {
    shard: ShardState,
    scratch: ConnScratch,
    out: Vec<u8>,
}

impl Client {
    fn new(config: &str) -> Client {
        Client {
            shard: shard(config),
            scratch: ConnScratch::default(),
            out: Vec::new(),
        }
    }

    /// All phases.
    fn respond(&mut self, head: &RequestHead<'_>, may_wait: bool) -> Reply {
        self.out.clear();
        let (shard, scratch) = (&mut self.shard, &mut self.scratch);
        respond(shard, scratch, head, peer(), now(), &mut self.out, may_wait)
    }

    /// Runs `phase` with this connection's answer to `head`, as `respond` would.
    fn phase<T>(
        &mut self,
        head: &RequestHead<'_>,
        phase: impl FnOnce(&mut ShardState, &mut ConnScratch, &mut Answer<'_>) -> T,
    ) -> T {
        self.out.clear();
        self.scratch.body.clear();
        self.shard.count_http_request();
        let mut answer = Answer::new(&mut self.out, head, now());
        phase(&mut self.shard, &mut self.scratch, &mut answer)
    }

    /// Normalizes and routes `target` (both must pass) and serves it.
    fn serve(&mut self, target: &str, may_wait: bool) -> Result<Served<'_>, Unserved> {
        let catalog = self.shard.catalog().clone();
        let scratch = &mut self.scratch;
        scratch.body.clear();
        scratch.target.parse(target.as_bytes(), b"token").unwrap();
        let (name, resource) = crate::http::route::route(scratch.target.path()).unwrap();
        let stream = catalog.stream_by_name(name).unwrap();
        let serving = Serving::new(
            &self.shard,
            &catalog,
            stream,
            &scratch.target,
            now(),
            may_wait,
        );
        serve(&serving, &mut scratch.body, resource)
    }

    /// All phases for a GET of `target`: the status, and the body after the head.
    fn answered(&mut self, target: &str, may_wait: bool) -> (Status, &str) {
        let reply = self.respond(&get(target), may_wait);
        (reply.status, self.body())
    }

    /// Serves `target`, which must park, and checks that all phases park it too: nothing
    /// written, nothing counted.
    fn parked(&mut self, target: &str) -> SegmentWait {
        let Err(Unserved::Wait(wait)) = self.serve(target, true) else {
            panic!("{target} parks")
        };
        let requests = self.shard.http_stats().requests;
        let reply = self.respond(&get(target), true);
        assert!(matches!(reply.next, Next::WaitForSegment(w) if w.until == wait.until));
        assert!(reply.parks() && self.out.is_empty());
        assert_eq!(self.shard.http_stats().requests, requests);
        wait
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.out).expect("text response")
    }

    /// The response head's value of `name`.
    fn header(&self, name: &str) -> Option<&str> {
        let head = self.text().split("\r\n\r\n").next()?;
        head.split("\r\n")
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
    }

    fn body(&self) -> &str {
        self.text()
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }

    fn newest(&self) -> &Segment {
        let view = self.shard.view(0).expect("stream 0");
        view.window.newest().expect("segments")
    }

    /// Play decisions the authorizer made or found (the cache sees every one).
    fn decisions(&self) -> u64 {
        let cache = self.shard.authorizer().cache();
        cache.hits + cache.misses
    }
}

fn peer() -> IpAddr {
    "192.0.2.7".parse().unwrap()
}

// Method.

fn checked_method(c: &mut Client, head: &RequestHead<'_>) -> Result<(), Reply> {
    c.phase(head, |shard, _, answer| method(shard, head.method, answer))
}

#[test]
fn options_is_a_preflight_that_reveals_nothing() {
    let mut c = Client::new(CONFIG);
    let head = request(Method::Options, "/auth-check/index.m3u8");
    let reply = checked_method(&mut c, &head).expect_err("answered");
    assert_eq!((reply.status, reply.close), (Status::NoContent, false));
    assert!(matches!(reply.next, Next::Done));
    assert!(c.text().starts_with("HTTP/1.1 204 No Content\r\n"));
    assert!(c.text().ends_with("connection: keep-alive\r\n\r\n"));
    assert_eq!(
        c.header("access-control-allow-methods"),
        Some(ALLOWED_METHODS)
    );
    for hidden in [
        "content-type",
        "content-length",
        "x-session-id",
        "x-deny-reason",
    ] {
        assert_eq!(c.header(hidden), None, "{hidden} in {}", c.text());
    }
    // All phases: answered before any authorization, so no token is needed.
    assert_eq!(c.respond(&head, true).status, Status::NoContent);
    assert_eq!(c.decisions(), 0);
}

#[test]
fn other_methods_are_405_with_allow() {
    let mut c = Client::new(CONFIG);
    let head = request(Method::Post, "/auth-check/index.m3u8?token=test1");
    let reply = checked_method(&mut c, &head).expect_err("answered");
    assert_eq!(reply.status, Status::MethodNotAllowed);
    assert!(c.text().starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_eq!(c.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(c.body(), "method not allowed\n");
}

#[test]
fn get_and_head_go_on_without_writing() {
    let mut c = Client::new(CONFIG);
    for m in [Method::Get, Method::Head] {
        let head = request(m, "/auth-check/index.m3u8");
        assert!(checked_method(&mut c, &head).is_ok());
        assert!(c.out.is_empty());
    }
}

// Normalize.

fn normalized(c: &mut Client, target: &str) -> Result<(), Reply> {
    let head = get(target);
    c.phase(&head, |shard, scratch, answer| {
        let catalog = shard.catalog().clone();
        normalize(shard, scratch, head.target, &catalog, answer)
    })
}

#[test]
fn a_bad_target_is_400_with_the_reason() {
    let mut c = Client::new(CONFIG);
    let reply = normalized(&mut c, "/auth-check/../idle/index.m3u8").expect_err("refused");
    assert_eq!((reply.status, reply.close), (Status::BadRequest, false));
    assert!(c.text().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert_eq!(c.body(), "bad request: path contains a .. segment\n");
    assert_eq!(c.header("content-length"), Some("40"));
}

#[test]
fn a_repeated_token_is_400() {
    let mut c = Client::new(CONFIG);
    let target = "/auth-check/index.m3u8?token=test1&token=other";
    let reply = normalized(&mut c, target).expect_err("refused");
    assert_eq!(reply.status, Status::BadRequest);
    assert_eq!(
        c.body(),
        "bad request: token parameter given more than once\n"
    );
}

#[test]
fn a_good_target_is_normalized_without_writing() {
    let mut c = Client::new(CONFIG);
    assert!(normalized(&mut c, "//auth-check/./index.m3u8?token=te%73t1").is_ok());
    assert!(c.out.is_empty());
    assert_eq!(c.scratch.target.path(), "/auth-check/index.m3u8");
    assert_eq!(c.scratch.target.token(), Some(&b"test1"[..]));
}

// Route.

fn routed(c: &mut Client, target: &str) -> Result<(StreamId, Resource), Reply> {
    normalized(c, target).expect("normal target");
    let head = get(target);
    c.phase(&head, |shard, scratch, answer| {
        let catalog = shard.catalog().clone();
        route(shard, scratch, head.target, &catalog, answer).map(|(s, r)| (s.id, r))
    })
}

#[test]
fn an_unknown_stream_is_404() {
    let mut c = Client::new(CONFIG);
    let reply = routed(&mut c, "/nope/index.m3u8?token=test1").expect_err("answered");
    assert_eq!(reply.status, Status::NotFound);
    assert!(c.text().starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert_eq!(c.body(), "not found\n");
}

#[test]
fn a_known_stream_is_routed_without_writing() {
    let mut c = Client::new(CONFIG);
    let routed = routed(&mut c, "/auth-check/dash/v-init.mp4").expect("routed");
    let track = DashTrack::Video;
    assert_eq!(routed, (0, Resource::DashInit { track }));
    assert!(c.out.is_empty());
}

#[test]
fn player_scripts_are_public() {
    let mut c = Client::new(CONFIG);
    let reply = routed(&mut c, "/_player/embed.js").expect_err("answered");
    assert_eq!(reply.status, Status::Ok);
    let Next::Body(script) = &reply.next else {
        panic!("{reply:?}")
    };
    let length = script.len().to_string();
    assert_eq!(c.header("content-length"), Some(length.as_str()));
    assert_eq!(c.header("x-content-type-options"), Some("nosniff"));
    let cache = c.header("cache-control");
    assert_eq!(cache, Some("private, max-age=3600, immutable"));
    // Known but not installed here: a 404 that says what to do.
    let reply = routed(&mut c, "/_player/hls.min.js").expect_err("answered");
    assert_eq!(reply.status, Status::NotFound);
    assert!(
        c.body()
            .starts_with("player script not installed on this server")
    );
    let reply = routed(&mut c, "/_player/other.js").expect_err("answered");
    assert_eq!((reply.status, c.body()), (Status::NotFound, "not found\n"));
    assert_eq!(c.decisions(), 0);
}

#[test]
fn the_embed_page_is_not_authorized() {
    let mut c = Client::new(CONFIG);
    let target = "/auth-check/embed.html?token=wrong&format=dash";
    let reply = routed(&mut c, target).expect_err("answered");
    assert_eq!(reply.status, Status::Ok);
    assert!(matches!(reply.next, Next::Done));
    assert_eq!(c.header("content-type"), Some(HTML_TYPE));
    assert!(c.header("content-security-policy").is_some());
    assert!(c.body().contains("auth-check"));
    assert_eq!(c.decisions(), 0, "the page asked for no decision");
    // All phases: the same page, still without a decision.
    let head = get(target);
    assert_eq!(c.respond(&head, true).status, Status::Ok);
    assert_eq!(c.decisions(), 0);
    let reply = routed(&mut c, "/auth-check/embed.html?format=flash").expect_err("answered");
    assert_eq!(reply.status, Status::BadRequest);
}

// Authorize.

fn authorized(c: &mut Client, target: &str) -> Result<Grant, Refusal> {
    routed(c, target).expect("routed");
    let head = get(target);
    let play = play_request(&head, &c.scratch.target, 0, Resource::HlsMaster, peer());
    let waited = c.scratch.portal_waited;
    authorize(&mut c.shard, &play, waited, now())
}

/// Answers `refusal` as `phases` does.
fn refused(c: &mut Client, target: &str, refusal: Refusal) -> Reply {
    let head = get(target);
    c.phase(&head, |shard, scratch, answer| {
        refuse(shard, &mut scratch.body, refusal, answer)
    })
}

#[test]
fn no_token_is_403_backend_denied() {
    let mut c = Client::new(CONFIG);
    let target = "/auth-check/index.m3u8";
    let refusal = authorized(&mut c, target).expect_err("denied");
    assert_eq!(refusal, Refusal::Deny(DenyReason::BackendDenied));
    let reply = refused(&mut c, target, refusal);
    assert_eq!((reply.status, reply.parks()), (Status::Forbidden, false));
    assert!(c.text().starts_with("HTTP/1.1 403 Forbidden\r\n"));
    assert_eq!(c.header("x-deny-reason"), Some("backend_denied"));
    assert_eq!(c.body(), "403 Forbidden: backend_denied\n");
    assert_eq!(c.header("x-session-id"), None);
}

#[test]
fn the_token_is_allowed() {
    let mut c = Client::new(CONFIG);
    let grant = authorized(&mut c, "/auth-check/index.m3u8?token=test1");
    assert_eq!(grant, Ok(Grant::default()));
}

#[test]
fn a_portal_policy_waits_for_the_verdict_then_counts_it_unanswered() {
    let mut c = Client::new(PORTAL_CONFIG);
    let target = "/auth-check/index.m3u8?token=viewer";
    let Err(Refusal::AwaitVerdict(key)) = authorized(&mut c, target) else {
        panic!("a portal question")
    };
    let reply = refused(&mut c, target, Refusal::AwaitVerdict(key));
    assert!(reply.parks());
    assert!(matches!(reply.next, Next::WaitForVerdict(k) if k == key));
    assert!(
        c.out.is_empty(),
        "nothing written while the portal is asked"
    );
    // All phases: the parked request is not counted.
    let head = get(target);
    let requests = c.shard.http_stats().requests;
    assert!(c.respond(&head, true).parks());
    assert_eq!(c.shard.http_stats().requests, requests);
    // Asked again after the wait, the question still open: unanswered.
    c.scratch.portal_waited = true;
    let refusal = authorized(&mut c, target).expect_err("unanswered");
    assert_eq!(refusal, Refusal::Deny(DenyReason::BackendUnavailable));
    let reply = c.respond(&head, true);
    assert_eq!(reply.status, Status::Forbidden);
    assert_eq!(c.header("x-deny-reason"), Some("backend_unavailable"));
}

#[test]
fn a_portal_redirect_is_302_with_location() {
    let mut c = Client::new(PORTAL_CONFIG);
    let target = "/auth-check/index.m3u8?token=viewer";
    assert!(c.respond(&get(target), true).parks());
    let Some(Outgoing::Question(question)) = c.shard.next_outgoing(std::task::Waker::noop()) else {
        panic!("a question")
    };
    let portal = "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.example/play\r\n\r\n";
    let answer = PortalOutcome::Answered(parse_backend_response(portal.as_bytes()).unwrap());
    c.shard
        .settle_portal_question(&question, &answer, Instant::now());
    let Err(refusal @ Refusal::Redirect(_)) = authorized(&mut c, target) else {
        panic!("a redirect")
    };
    let reply = refused(&mut c, target, refusal);
    assert_eq!(reply.status, Status::Found);
    assert_eq!(c.header("location"), Some("http://elsewhere.example/play"));
}

// Serve.

#[test]
fn the_master_playlist_carries_the_token() {
    let mut c = Client::new(CONFIG);
    let served = c.serve("/auth-check/index.m3u8?token=a%26b", true);
    let served = served.expect("served");
    assert_eq!(served.content_type, PLAYLIST_TYPE);
    let Body::Rendered(playlist) = served.body else {
        panic!("rendered")
    };
    let playlist = std::str::from_utf8(playlist).unwrap();
    assert!(playlist.starts_with("#EXTM3U\n"));
    assert!(playlist.contains("\ntracks-v1a1/mono.m3u8?token=a%26b\n"));
    // All phases: the playlist follows the head.
    let (status, body) = c.answered("/auth-check/index.m3u8?token=test1", true);
    assert_eq!(status, Status::Ok);
    assert!(body.contains("\ntracks-v1a1/mono.m3u8?token=test1\n"));
    assert_eq!(c.header("content-type"), Some(PLAYLIST_TYPE));
}

#[test]
fn a_dash_segment_being_cut_parks_unless_it_waited_already() {
    let mut c = Client::new(CONFIG);
    let (sequence, end_dts) = (c.newest().sequence, c.newest().end_dts);
    let target = format!("/auth-check/dash/v-{end_dts}.m4s?token=test1");
    let wait = c.parked(&target);
    assert_eq!((wait.stream, wait.timeout), (0, SEGMENT_WAIT));
    assert_eq!(wait.until, Awaited::SegmentAfter(sequence));
    // Asked again after the wait: the segment did not come.
    assert!(matches!(c.serve(&target, false), Err(Unserved::NotFound)));
    let answered = c.answered(&target, false);
    assert_eq!(answered, (Status::NotFound, "segment not found\n"));
}

#[test]
fn a_dash_segment_is_the_shared_fragment() {
    let mut c = Client::new(CONFIG);
    let newest = c.newest().clone();
    let target = format!("/auth-check/dash/a-{}.m4s?token=test1", newest.start_dts);
    let served = c.serve(&target, true).expect("served");
    assert_eq!(served.cache, CachePolicy::Immutable);
    let Body::Shared(bytes) = served.body else {
        panic!("shared")
    };
    assert_eq!(Some(bytes), newest.dash.audio);
}

#[test]
fn an_ll_hls_blocking_reload_parks() {
    let mut c = Client::new(CONFIG);
    let segment = c.newest().sequence + 1;
    let part = c.shard.view(0).expect("stream 0").window.open_parts().len() as u32;
    let query = format!("token=test1&_HLS_msn={segment}&_HLS_part={part}");
    let target = format!("/auth-check/index.ll.m3u8?{query}");
    let wait = c.parked(&target);
    assert_eq!(wait.until, Awaited::Part { segment, part });
    let three_targets = Duration::from_secs(6);
    assert_eq!(wait.timeout, three_targets);
    // Waited three target durations: the stream did not get there.
    let answered = c.answered(&target, false);
    assert_eq!(answered, (Status::ServiceUnavailable, "stream not ready\n"));
}

#[test]
fn a_bad_hls_msn_is_400() {
    let mut c = Client::new(CONFIG);
    let beyond = c.newest().sequence + 3;
    for query in ["_HLS_msn=x".to_string(), format!("_HLS_msn={beyond}")] {
        let target = format!("/auth-check/index.ll.m3u8?token=test1&{query}");
        let served = c.serve(&target, true);
        assert!(matches!(served, Err(Unserved::BadDirectives)));
        let text = "bad request: _HLS_msn/_HLS_part out of range\n";
        assert_eq!(c.answered(&target, true), (Status::BadRequest, text));
    }
}

#[test]
fn live_ts_is_streamed_by_the_connection() {
    let mut c = Client::new(CONFIG);
    let target = "/auth-check/mpegts?token=test1";
    let served = c.serve(target, true).expect("served");
    assert!(matches!(served.body, Body::LiveTs));
    let reply = c.respond(&get(target), true);
    assert!(matches!(reply.next, Next::LiveTs(0)));
    assert!(reply.close, "a live stream ends with its connection");
    assert_eq!(c.header("content-type"), Some(TS_TYPE));
    assert_eq!(c.header("connection"), Some("close"));
    // No length, no body here, and the session is the connection's own.
    for absent in ["content-length", "x-session-id"] {
        assert_eq!(c.header(absent), None);
    }
    assert_eq!(c.body(), "");
}

#[test]
fn a_fake_stream_this_shard_has_not_seen_start_waits_for_its_first_segment() {
    // Right after the process starts, a shard may take a request before the input's
    // start has reached it (a new process beside an old one gets connections at once).
    // (The harness feeds the first stream only.)
    let mut c =
        Client::new("stream fed { input fake://fake; }\nstream starting { input fake://fake; }\n");
    let wait = c.parked("/starting/index.m3u8");
    assert_eq!(wait.until, Awaited::FirstSegment);
    assert_eq!(wait.timeout, Duration::from_secs(10));
}

#[test]
fn a_stream_without_media_is_not_ready() {
    let mut c = Client::new(CONFIG);
    for resource in ["index.m3u8", "index.mpd", "mpegts", "tracks-v1a1/init.mp4"] {
        let target = format!("/idle/{resource}");
        assert!(matches!(c.serve(&target, true), Err(Unserved::NotReady)));
        let answered = c.answered(&target, true);
        assert_eq!(answered, (Status::ServiceUnavailable, "stream not ready\n"));
    }
}

// Account.

/// Accounts `served` for an allowed request.
fn accounted(c: &mut Client, head: &RequestHead<'_>, served: Served<'_>) -> Reply {
    normalized(c, std::str::from_utf8(head.target).unwrap()).expect("normal target");
    let grant = Grant::default();
    c.phase(head, |shard, scratch, answer| {
        let play = play_request(head, &scratch.target, 0, Resource::HlsMaster, peer());
        account(shard, &play, &grant, served, answer)
    })
}

#[test]
fn account_opens_the_session_and_counts_the_bytes() {
    let mut c = Client::new(CONFIG);
    let head = get("/auth-check/x.ts?token=test1");
    let segment = Bytes::from_static(&[0x47; 376]);
    let reply = accounted(&mut c, &head, Served::segment(TS_TYPE, segment.clone()));
    assert!(matches!(&reply.next, Next::Body(b) if *b == segment));
    assert_eq!(c.header("content-length"), Some("376"));
    let session = c.header("x-session-id").expect("session id");
    assert_eq!(session.len(), 36);
    assert_eq!(c.body(), "", "the shared body is the connection's to write");
    assert_eq!(c.shard.http_stats().bytes_sent, 376);
    let sessions: Vec<_> = c.shard.authorizer().sessions().iter().collect();
    assert_eq!(sessions.len(), 1);
    assert_eq!((sessions[0].requests, sessions[0].bytes_sent), (1, 376));
}

#[test]
fn a_head_request_sends_no_body() {
    let mut c = Client::new(CONFIG);
    let head = request(Method::Head, "/auth-check/index.m3u8?token=test1");
    let reply = accounted(&mut c, &head, Served::rendered(PLAYLIST_TYPE, b"#EXTM3U\n"));
    assert!(matches!(reply.next, Next::Done));
    assert!(c.text().ends_with("\r\n\r\n"));
    assert_eq!(c.body(), "");
    // The length a GET would get.
    assert_eq!(c.header("content-length"), Some("8"));
    assert_eq!(c.shard.http_stats().bytes_sent, 0);
    // All phases: a segment's HEAD leaves nothing for the connection to write either.
    let newest = c.newest().clone();
    let mut path = b"/auth-check/tracks-v1a1/".to_vec();
    crate::hls::names::write_segment_path(&mut path, &newest, Container::Ts);
    let target = format!("{}?token=test1", std::str::from_utf8(&path).unwrap());
    let reply = c.respond(&request(Method::Head, &target), true);
    assert_eq!(reply.status, Status::Ok);
    assert!(matches!(reply.next, Next::Done));
    let length = newest.ts.len().to_string();
    assert_eq!(c.header("content-length"), Some(length.as_str()));
    assert_eq!(c.shard.http_stats().bytes_sent, 0);
}

#[test]
fn parks_only_while_not_answered() {
    let wait = SegmentWait {
        stream: 0,
        until: Awaited::SegmentAfter(1),
        timeout: SEGMENT_WAIT,
    };
    let parked = [Next::WaitForSegment(wait), Next::WaitForVerdict(7)];
    for next in parked {
        assert!(Reply::then(Status::Ok, false, next).parks());
    }
    let answered = [Next::Done, Next::Body(Bytes::new()), Next::LiveTs(0)];
    for next in answered {
        assert!(!Reply::then(Status::Ok, false, next).parks());
    }
    assert!(!Reply::done(Status::NotFound, true).parks());
}
