//! Bypass attempts and malformed requests against the real binary: no spelling of a URL
//! turns a denied request into an allowed one, bad input gets the right status, and other
//! viewers are unaffected.

mod common;
use common::*;

const MEDIA: &str = "/auth-check/tracks-v1a1/mono.m3u8?token=test1";

fn config(port: u16) -> String {
    format!(
        "{}auth_backend other-auth {{ allow token test2; }}\n\
         stream other {{ input fake://fake; on_play auth://other-auth; segment_duration 1; }}\n",
        demo_config(port)
    )
}

#[test]
fn path_and_query_tricks_never_open_a_stream() {
    let port = free_port();
    let server = Server::start(&config(port), port);
    server.wait_ok(MEDIA);
    let cases: &[(&str, u16)] = &[
        ("/auth-check/../auth-check/index.m3u8", 400),
        ("/x/..%2Fauth-check/index.m3u8?token=test1", 400),
        ("/auth-check/%2e%2e/auth-check/index.m3u8", 400),
        ("//auth-check//index.m3u8", 403),
        ("/./auth-check/./index.m3u8", 403),
        ("/auth%2Dcheck/index.m3u8", 403),
        ("/auth%2dcheck/index%2Em3u8?token=wrong", 403),
        ("/AUTH-CHECK/index.m3u8?token=test1", 404),
        ("/auth-check/INDEX.M3U8?token=test1", 404),
        ("/auth-check/index.m3u8?token=test1&token=bad", 400),
        ("/auth-check/index.m3u8?token=bad&token=test1", 400),
        ("/auth-check/index.m3u8?token=bad&%74oken=test1", 400),
        ("/auth-check/index.m3u8?TOKEN=test1", 403),
        ("/auth-check/index.m3u8?token=TEST1", 403),
        ("/auth-check/index.m3u8?token=test1%00", 403),
        ("/auth-check/index.m3u8?token=test1%20", 403),
        ("/auth-check/index.m3u8?token=%74est", 403),
        ("/auth-check/index.m3u8?xtoken=test1", 403),
        ("/auth-check/index.m3u8#?token=test1", 400),
        ("/auth-check/index.m3u8;token=test1", 404),
        ("/token=test1/auth-check/index.m3u8", 404),
        ("/auth-check/index.m3u8/?token=", 403),
        // A token of stream A does not open stream B, and the reverse.
        ("/other/index.m3u8?token=test1", 403),
        ("/auth-check/index.m3u8?token=test2", 403),
    ];
    for (path, want) in cases {
        let r = get(server.http, path);
        assert_eq!(r.status, *want, "{path}\n{}", r.head);
    }
    // The percent-encoded token is the same token, once decoded.
    assert_eq!(
        get(server.http, "/auth-check/index.m3u8?token=%74est1").status,
        200
    );
    assert_eq!(
        get(server.http, "/auth-check/index.m3u8?token=test1&other=1").status,
        200
    );
}

#[test]
fn absolute_form_targets_follow_the_origin_form_rules() {
    // RFC 9112 §3.2.2: a server accepts `GET http://host/path HTTP/1.1`; the authority is
    // ignored for routing, and nothing in it counts as a token.
    let port = free_port();
    let server = Server::start(&config(port), port);
    server.wait_ok(MEDIA);
    let status_of = |target: &str| -> u16 {
        let req =
            format!("GET {target} HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n");
        let data = raw(server.http, req.as_bytes());
        parse_responses(&data, false)
            .first()
            .map_or(0, |r| r.status)
    };
    let cases: &[(&str, u16)] = &[
        ("http://edge.example/auth-check/index.m3u8?token=test1", 200),
        (
            "HTTP://edge.example:8080/auth-check/tracks-v1a1/mono.m3u8?token=test1",
            200,
        ),
        (
            "https://edge.example/auth-check/index.m3u8?token=%74est1",
            200,
        ),
        ("http://edge.example/auth-check/index.m3u8", 403),
        ("http://edge.example/auth-check/index.m3u8?token=wrong", 403),
        ("http://token=test1@edge.example/auth-check/index.m3u8", 403),
        (
            "http://test1:test1@edge.example/auth-check/index.m3u8?x=1",
            403,
        ),
        ("http://edge.example;token=test1/auth-check/index.m3u8", 403),
        (
            "http://edge.example%3Ftoken=test1/auth-check/index.m3u8",
            403,
        ),
        ("http://edge.example?token=test1/auth-check/index.m3u8", 404),
        (
            "http://edge.example/auth-check/../auth-check/index.m3u8?token=test1",
            400,
        ),
        (
            "http://edge.example/auth-check/index.m3u8?token=bad&token=test1",
            400,
        ),
        (
            "http://edge.example/auth-check/index.m3u8#?token=test1",
            400,
        ),
        ("http:///auth-check/index.m3u8?token=test1", 400),
        ("ftp://edge.example/auth-check/index.m3u8?token=test1", 400),
        ("http://edge.example/other/index.m3u8?token=test1", 403),
    ];
    for (target, want) in cases {
        assert_eq!(status_of(target), *want, "{target}");
    }
    // curl sends the absolute form as given.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--request-target",
            "http://edge.example/auth-check/index.m3u8?token=test1",
        ])
        .arg(format!("http://127.0.0.1:{}/", server.http))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn malformed_requests_get_the_right_status_and_others_are_unaffected() {
    let port = free_port();
    let server = Server::start(&config(port), port);
    server.wait_ok(MEDIA);
    let status_of = |req: &[u8]| -> u16 {
        let data = raw(server.http, req);
        parse_responses(&data, false)
            .first()
            .map_or(0, |r| r.status)
    };
    assert_eq!(status_of(b"\x16\x03\x01\x02\x00garbage\r\n\r\n"), 400);
    assert_eq!(status_of(b"GET /a b c HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status_of(b"GET / HTTP/1.1\r\nbad header\r\n\r\n"), 400);
    assert_eq!(
        status_of(b"GET /auth-check/index.m3u8 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
    assert_eq!(
        status_of(format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(10_000)).as_bytes()),
        414
    );
    assert_eq!(
        status_of(format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000)).as_bytes()),
        431
    );
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(
        status_of(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
        431
    );
    assert_eq!(
        status_of(b"GET /nothing/here HTTP/1.1\r\nConnection: close\r\n\r\n"),
        404
    );

    let post = request(
        server.http,
        "POST",
        "/auth-check/index.m3u8?token=test1",
        "Content-Length: 0\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD, OPTIONS"));

    // Everyone else is still served.
    assert_eq!(get(server.http, MEDIA).status, 200);
}

#[test]
fn keep_alive_pipelining_head_and_options() {
    let port = free_port();
    let server = Server::start(&config(port), port);
    server.wait_ok(MEDIA);

    // Three pipelined requests on one connection come back in order.
    let req = format!(
        "GET {MEDIA} HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /auth-check/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /auth-check/index.m3u8?token=test1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let responses = parse_responses(&raw(server.http, req.as_bytes()), false);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 403, 200]);
    assert!(responses[0].text().starts_with("#EXTM3U"));
    assert!(
        responses[2]
            .text()
            .contains("tracks-v1a1/mono.m3u8?token=test1")
    );

    // A GET body is read and skipped without desynchronising the connection.
    let req = format!(
        "GET {MEDIA} HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET {MEDIA} HTTP/1.1\r\nConnection: close\r\n\r\n"
    );
    let statuses: Vec<u16> = parse_responses(&raw(server.http, req.as_bytes()), false)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 200]);

    let head = request(server.http, "HEAD", MEDIA, "");
    assert_eq!(head.status, 200);
    assert!(
        head.header("content-length")
            .is_some_and(|l| l.parse::<usize>().unwrap() > 0)
    );
    assert!(head.body.is_empty());

    let options = request(
        server.http,
        "OPTIONS",
        "/auth-check/index.m3u8",
        "Origin: http://example.com\r\n",
    );
    assert_eq!(options.status, 204);
    assert_eq!(options.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn every_shard_serves_the_stream() {
    let port = free_port();
    let server = Server::start(&config(port), port);
    server.wait_ok(MEDIA);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = get(server.http, MEDIA);
        assert_eq!(r.status, 200);
        let shard: usize = r
            .header("x-shard")
            .and_then(|s| s.parse().ok())
            .expect("x-shard");
        // A segment from whichever shard answered this connection.
        let uri = r
            .text()
            .lines()
            .rfind(|l| l.ends_with("?token=test1"))
            .map(str::to_owned)
            .unwrap();
        let seg = get(server.http, &format!("/auth-check/tracks-v1a1/{uri}"));
        assert_eq!(
            seg.status, 200,
            "segment {uri} via a connection to some shard"
        );
        seen.insert(shard);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "connections spread over both shards: {seen:?}"
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let port = free_port();
    let mut server = Server::start(&config(port), port);
    let pid = server.child().id();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = server.child().try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}

/// A connection's input buffer starts small and grows for a head that needs it: heads of
/// 3, 6 and 12 KB (all under the 16 KB limit), pipelined on one keep-alive connection
/// after a small one, are served like any other.
#[test]
fn request_heads_larger_than_the_first_buffer_are_served() {
    let port = free_port();
    let server = Server::start(&config(port), port);
    server.wait_ok(MEDIA);
    let mut requests = format!("GET {MEDIA} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes();
    for pad in [3_000, 6_000, 12_000] {
        let head = format!(
            "GET {MEDIA} HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(pad)
        );
        requests.extend_from_slice(head.as_bytes());
    }
    requests
        .extend_from_slice(format!("GET {MEDIA} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes());
    let data = raw(server.http, &requests);
    let statuses: Vec<u16> = parse_responses(&data, false)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200]);
}
