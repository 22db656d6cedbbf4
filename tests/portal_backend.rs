//! Portal backends end to end (spec §3, §4, §7): the real `tessera` binary asks the real
//! example portal (`tools/portal.rs`, a separate process that counts what it is asked),
//! and real ffmpeg clients play over HLS, RTMP and RTSP.

mod common;

use common::portal::Portal;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const API_KEY: &str = "test-api-key-0123456789";

struct Ports {
    http: u16,
    rtmp: u16,
    rtsp: u16,
}

/// tessera with one stream `live` authorized by the portal (and nothing else).
fn start_tessera(portal: &Portal, extra: &str) -> (Server, Ports) {
    let ports = Ports {
        http: free_port(),
        rtmp: free_port(),
        rtsp: free_port(),
    };
    let config = format!(
        "http 127.0.0.1:{};\nrtmp 127.0.0.1:{};\nrtsp 127.0.0.1:{};\napi_key {API_KEY};\n\
         auth_backend portal {{\n    backend http://127.0.0.1:{}/auth;\n    backend_timeout 2;\n{extra}}}\n\
         stream live {{\n    input fake://fake;\n    on_play auth://portal;\n}}\n",
        ports.http, ports.rtmp, ports.rtsp, portal.port
    );
    let server = Server::start(&config, ports.http);
    // The stream has segments before the first viewer (no token: 403, no portal call).
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=warmup-token").status != 200 {
        assert!(Instant::now() < deadline, "stream never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    (server, ports)
}

fn api(port: u16, method: &str, path: &str) -> Response {
    request(
        port,
        method,
        path,
        &format!("Authorization: Bearer {API_KEY}\r\n"),
    )
}

/// `count` pipelined GETs of `path` on one keep-alive connection; their statuses.
fn pipelined(port: u16, path: &str, count: usize) -> Vec<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let one = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    let last = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut all = one.repeat(count - 1);
    all.push_str(&last);
    s.write_all(all.as_bytes()).expect("send");
    let mut data = Vec::new();
    let _ = s.read_to_end(&mut data);
    parse_responses(&data, false)
        .iter()
        .map(|r| r.status)
        .collect()
}

#[test]
fn one_viewer_one_portal_request_and_the_portal_protocol() {
    let portal = Portal::start(&["--token", "viewer-1:alice", "--token", "warmup-token"]);
    let (_server, ports) = start_tessera(&portal, "");
    let before = portal.stat("requests");
    let statuses = pipelined(
        ports.http,
        "/live/tracks-v1a1/mono.m3u8?token=viewer-1",
        1000,
    );
    assert_eq!(statuses.len(), 1000);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(
        portal.stat("requests") - before,
        1,
        "1000 requests, 1 question"
    );
    assert_eq!(portal.stat("by_token viewer-1"), 1);
    // An unknown token: the portal says no; tessera says why.
    let denied = get(ports.http, "/live/index.m3u8?token=stranger");
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("x-deny-reason"), Some("backend_denied"));
    // The sessions API shows the viewer, with the portal's user id and a token tag only.
    let list = api(
        ports.http,
        "GET",
        "/streamer/api/v3/sessions?name=live&proto=hls",
    );
    assert_eq!(list.status, 200);
    let text = list.text();
    assert!(text.contains("\"user_id\":\"alice\""), "{text}");
    assert!(
        !text.contains("viewer-1"),
        "tokens never leave whole: {text}"
    );
    assert_eq!(
        request(ports.http, "GET", "/streamer/api/v3/sessions", "").status,
        401
    );
    let metrics = api(ports.http, "GET", "/metrics").text();
    assert!(
        metrics.contains("tessera_backend_requests_total{outcome=\"allow\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_sessions_open{proto=\"hls\"}"),
        "{metrics}"
    );
}

#[test]
fn concurrent_first_requests_across_shards_make_one_portal_request() {
    // 50 simultaneous first requests for one token, 20 times in a row (a new token each
    // round): the portal is asked once per round. A slow portal keeps the first ones
    // waiting; later ones land while its answer crosses from the key's owner shard to the
    // other, which is where a second question used to slip through.
    const ROUNDS: usize = 20;
    let tokens: Vec<String> = (0..ROUNDS).map(|i| format!("crowd{i}")).collect();
    let mut args = vec!["--token", "warmup-token", "--delay-ms", "300"];
    for t in &tokens {
        args.extend(["--token", t.as_str()]);
    }
    let portal = Portal::start(&args);
    let (_server, ports) = start_tessera(&portal, "");
    for token in &tokens {
        let workers: Vec<_> = (0..50)
            .map(|_| {
                let path = format!("/live/tracks-v1a1/mono.m3u8?token={token}");
                std::thread::spawn(move || get(ports.http, &path).status)
            })
            .collect();
        let statuses: Vec<u16> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(statuses.iter().all(|&s| s == 200), "{token}: {statuses:?}");
        assert_eq!(
            portal.stat(&format!("by_token {token}")),
            1,
            "{token}: 50 viewers, 1 question"
        );
    }
}

#[test]
fn a_cold_decision_is_asked_by_the_shard_that_took_the_request() {
    // 20 first requests one after another, a new token each: the shard that answered
    // (`x-shard`) is the one that asked the portal (its `decision` log line), not the key's
    // hash owner, so a cold decision does not cross to the other shard and back. (The other
    // shard asks only when it holds the key's claim slot, shared by 16 Ki keys: rare here.)
    const TOKENS: usize = 20;
    let tokens: Vec<String> = (0..TOKENS).map(|i| format!("own{i}")).collect();
    let mut args = vec!["--token", "warmup-token"];
    for t in &tokens {
        args.extend(["--token", t.as_str()]);
    }
    let portal = Portal::start(&args);
    let (server, ports) = start_tessera(&portal, "");
    let mut answered_by = Vec::new();
    for token in &tokens {
        let r = get(
            ports.http,
            &format!("/live/tracks-v1a1/mono.m3u8?token={token}"),
        );
        assert_eq!(r.status, 200, "{token}");
        answered_by.push(r.header("x-shard").expect("x-shard").to_string());
    }
    // Each decision's log line is written a moment after its answer, and the two shards'
    // lines need not come in the order of the requests: a token's line is found by its tag.
    let tags: Vec<String> = tokens.iter().map(|t| token_tag(t)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let asked_by = loop {
        let shards = decision_shards(&server.log_text());
        let found: Option<Vec<String>> = tags.iter().map(|t| shards.get(t).cloned()).collect();
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "{shards:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let same = answered_by
        .iter()
        .zip(&asked_by)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same >= TOKENS - 2,
        "answered by {answered_by:?}, asked by {asked_by:?}"
    );
}

/// The tag the server's log lines give `token` (fixed keys: the same in every process).
fn token_tag(token: &str) -> String {
    tessera::auth::Authorizer::new(0)
        .token_tag(Some(token.as_bytes()))
        .to_string()
}

/// The shard of each portal `decision` log line, by its token's tag.
fn decision_shards(log: &str) -> std::collections::HashMap<String, String> {
    log.lines()
        .filter(|l| l.contains("] decision stream="))
        .filter_map(|l| {
            let shard = l.split("[shard ").nth(1)?.split(']').next()?;
            let tag = l.split(" token=").nth(1)?.split(' ').next()?;
            Some((tag.to_string(), shard.to_string()))
        })
        .collect()
}

#[test]
fn an_expired_decision_is_renewed_with_one_update_session() {
    let portal = Portal::start(&[
        "--token",
        "renew",
        "--token",
        "warmup-token",
        "--duration",
        "5",
    ]);
    let (_server, ports) = start_tessera(&portal, "");
    let start = Instant::now();
    // A player reloading its playlist four times a second for 7 s: past one 5 s duration,
    // short of a second renewal (due at 10 s).
    while start.elapsed() < Duration::from_secs(7) {
        let r = get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=renew");
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(portal.stat("by_token renew"), 2);
    let text = portal.http("GET", "/stats").text();
    assert!(text.contains("update_session 1"), "{text}");
}

#[test]
fn a_dead_portal_keeps_sessions_and_refuses_newcomers() {
    let mut portal = Portal::start(&[
        "--token",
        "old",
        "--token",
        "warmup-token",
        "--duration",
        "5",
    ]);
    let (_server, ports) = start_tessera(&portal, "");
    assert_eq!(
        get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=old").status,
        200
    );
    portal.kill();
    // Past the decision's duration: the session keeps playing on its stale allow.
    std::thread::sleep(Duration::from_secs(6));
    for _ in 0..3 {
        assert_eq!(
            get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=old").status,
            200
        );
    }
    let newcomer = get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=new");
    assert_eq!(newcomer.status, 403);
    assert_eq!(
        newcomer.header("x-deny-reason"),
        Some("backend_unavailable")
    );
}

#[test]
fn a_slow_portal_does_not_delay_other_viewers() {
    let portal = Portal::start(&[
        "--token",
        "slow",
        "--token",
        "fast",
        "--token",
        "warmup-token",
    ]);
    let (_server, ports) = start_tessera(&portal, "");
    assert_eq!(
        get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=fast").status,
        200
    );
    assert_eq!(
        portal
            .http("POST", "/control?token=slow&delay_ms=1500")
            .status,
        200
    );
    let slow = std::thread::spawn(move || {
        get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=slow").status
    });
    std::thread::sleep(Duration::from_millis(300));
    // While the slow question is out, a cached viewer and the operator API are served.
    for _ in 0..20 {
        assert_eq!(
            get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=fast").status,
            200
        );
    }
    assert_eq!(api(ports.http, "GET", "/metrics").status, 200);
    assert!(
        !slow.is_finished(),
        "the slow viewer is still waiting for its portal"
    );
    assert_eq!(slow.join().unwrap(), 200);
}

/// Waits (bounded) until the sessions API lists `n` sessions matching `filter`.
fn wait_sessions(http: u16, filter: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = api(http, "GET", &format!("/streamer/api/v3/sessions?{filter}")).text();
        if text.matches("\"id\":").count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {n} sessions for {filter}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn revoking_a_token_ends_rtmp_rtsp_and_hls_sessions() {
    let portal = Portal::start(&["--token", "doomed", "--token", "warmup-token"]);
    let (server, ports) = start_tessera(&portal, "");
    let mut rtmp = player(
        &format!("rtmp://127.0.0.1:{}/static/live?token=doomed", ports.rtmp),
        &[],
    );
    let mut rtsp = player(
        &format!("rtsp://127.0.0.1:{}/live?token=doomed", ports.rtsp),
        &["-rtsp_transport", "tcp"],
    );
    assert_eq!(
        get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=doomed").status,
        200
    );
    wait_sessions(ports.http, "proto=rtmp", 1);
    wait_sessions(ports.http, "proto=rtsp", 1);
    let revoked = api(ports.http, "POST", "/streamer/api/v3/revoke?token=doomed");
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    assert!(
        revoked.text().contains("\"sessions_closed\":3"),
        "{}",
        revoked.text()
    );
    let rtmp_gone = wait_exit(&mut rtmp, Duration::from_secs(10));
    let rtsp_gone = wait_exit(&mut rtsp, Duration::from_secs(10));
    assert!(rtmp_gone.is_some(), "RTMP play still running after revoke");
    assert!(rtsp_gone.is_some(), "RTSP play still running after revoke");
    eprintln!("revoke to exit: rtmp {rtmp_gone:?}, rtsp {rtsp_gone:?}");
    let hls = get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=doomed");
    assert_eq!(hls.status, 403);
    assert_eq!(hls.header("x-deny-reason"), Some("session_revoked"));
    let log = server.log_text();
    assert!(log.contains("reason=session_revoked"), "{log}");
    assert!(!log.contains("doomed"), "a token reached the log");
}

#[test]
fn the_portal_pushes_revocation_and_delete_ends_one_session() {
    let portal_port = free_port();
    let http = free_port();
    // The portal is told where tessera's API is; tessera where the portal is.
    let portal = Portal::start(&[
        "--token",
        "pushed",
        "--token",
        "warmup-token",
        "--token",
        "kept",
        "--tessera",
        &format!("http://127.0.0.1:{http}"),
        "--api-key",
        API_KEY,
    ]);
    let _ = portal_port;
    let config = format!(
        "http 127.0.0.1:{http};\napi_key {API_KEY};\n\
         stream live {{ input fake://fake; on_play http://127.0.0.1:{}/auth; }}\n",
        portal.port
    );
    let _server = Server::start(&config, http);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(http, "/live/tracks-v1a1/mono.m3u8?token=kept").status != 200 {
        assert!(Instant::now() < deadline, "stream never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        get(http, "/live/tracks-v1a1/mono.m3u8?token=pushed").status,
        200
    );
    let pushed = portal.http("POST", "/revoke?token=pushed");
    assert_eq!(pushed.status, 200, "{}", pushed.text());
    let r = get(http, "/live/tracks-v1a1/mono.m3u8?token=pushed");
    assert_eq!(r.header("x-deny-reason"), Some("session_revoked"));
    // DELETE one session by id: only that one ends.
    let list = api(http, "GET", "/streamer/api/v3/sessions?name=live").text();
    let id = list
        .split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a session id")
        .to_owned();
    assert_eq!(
        api(http, "GET", &format!("/streamer/api/v3/sessions/{id}")).status,
        200
    );
    assert_eq!(
        api(http, "DELETE", &format!("/streamer/api/v3/sessions/{id}")).status,
        200
    );
    assert_eq!(
        api(http, "GET", &format!("/streamer/api/v3/sessions/{id}")).status,
        404
    );
    assert_eq!(
        get(http, "/live/tracks-v1a1/mono.m3u8?token=kept").header("x-deny-reason"),
        Some("session_revoked")
    );
}

#[test]
fn max_sessions_one_closes_the_first_session_when_a_second_opens() {
    let portal = Portal::start(&["--token", "solo:bob:1", "--token", "warmup-token"]);
    let (_server, ports) = start_tessera(&portal, "");
    let mut first = player(
        &format!("rtmp://127.0.0.1:{}/static/live?token=solo", ports.rtmp),
        &[],
    );
    wait_sessions(ports.http, "user_id=bob", 1);
    // The same user opens a second session (HLS): the older one (RTMP) is closed.
    assert_eq!(
        get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=solo").status,
        200
    );
    let gone = wait_exit(&mut first, Duration::from_secs(10));
    assert!(
        gone.is_some(),
        "the first session kept playing past X-Max-Sessions: 1"
    );
    assert_eq!(
        get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=solo").status,
        200
    );
}

#[test]
fn reauth_asks_the_portal_again_for_running_sessions() {
    let portal = Portal::start(&["--token", "again", "--token", "warmup-token"]);
    let (_server, ports) = start_tessera(&portal, "");
    assert_eq!(
        get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=again").status,
        200
    );
    assert_eq!(portal.stat("by_token again"), 1);
    let r = api(
        ports.http,
        "POST",
        "/streamer/api/v3/sessions/reauth?name=live",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        api(
            ports.http,
            "POST",
            "/streamer/api/v3/sessions/reauth?name=nope"
        )
        .status,
        404
    );
    // The next request is served and renews the decision with update_session.
    assert_eq!(
        get(ports.http, "/live/tracks-v1a1/mono.m3u8?token=again").status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while portal.stat("by_token again") < 2 {
        assert!(Instant::now() < deadline, "no update_session after reauth");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(portal.stat("update_session"), 1);
}

#[test]
fn a_portal_redirect_is_a_302_for_http_clients() {
    let portal = Portal::start(&[
        "--token",
        "warmup-token",
        "--redirect",
        "moved=http://other.example/live/index.m3u8",
    ]);
    let (_server, ports) = start_tessera(&portal, "");
    let r = get(ports.http, "/live/index.m3u8?token=moved");
    assert_eq!(r.status, 302, "{}", r.head);
    assert_eq!(
        r.header("location"),
        Some("http://other.example/live/index.m3u8")
    );
    // Cached like any decision: the portal was asked once.
    assert_eq!(get(ports.http, "/live/index.m3u8?token=moved").status, 302);
    assert_eq!(portal.stat("by_token moved"), 1);
    // An RTMP player cannot follow it: refused.
    let out = run_bounded(
        tool("ffprobe").args([
            "-v",
            "error",
            &format!("rtmp://127.0.0.1:{}/static/live?token=moved", ports.rtmp),
        ]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
}

#[test]
fn a_blocking_reload_waits_for_its_portal_verdict_then_for_its_part() {
    let portal = Portal::start(&["--token", "warmup-token", "--token", "fresh"]);
    let (_server, ports) = start_tessera(&portal, "");
    let playlist = get(ports.http, "/live/index.ll.m3u8?token=warmup-token").text();
    // The part the server announces next: `ll/MSN.PART.m4s`.
    let hint = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .unwrap_or_else(|| panic!("no preload hint:\n{playlist}"));
    let name = hint
        .split("ll/")
        .nth(1)
        .and_then(|rest| rest.split(".m4s").next())
        .expect("a part name");
    let (msn, part) = name.split_once('.').expect("MSN.PART");
    // A viewer the portal has not decided about yet asks for that part's playlist: it
    // waits for the verdict, then for the part, and gets it (not a 503).
    let r = get(
        ports.http,
        &format!("/live/index.ll.m3u8?token=fresh&_HLS_msn={msn}&_HLS_part={part}"),
    );
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        r.text().contains(&format!("ll/{msn}.{part}.m4s")),
        "{}",
        r.text()
    );
}

#[test]
fn head_on_the_api_sends_no_body_and_keeps_the_connection_in_step() {
    let portal = Portal::start(&["--token", "warmup-token"]);
    let (_server, ports) = start_tessera(&portal, "");
    let auth = format!("Authorization: Bearer {API_KEY}\r\n");
    let req = format!(
        "HEAD /metrics HTTP/1.1\r\nHost: t\r\n{auth}\r\n\
         GET /metrics HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n"
    );
    let data = raw(ports.http, req.as_bytes());
    let text = String::from_utf8_lossy(&data);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    // The HEAD answer is a head only: the second status line follows it directly.
    let second = text
        .find("\r\n\r\nHTTP/1.1 200 OK")
        .expect("two heads back to back");
    assert!(text[..second].starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("tessera_shards"), "{text}");
}
