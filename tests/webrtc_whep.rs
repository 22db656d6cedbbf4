//! WHEP signalling with a client that is not a browser: a recorded Chromium offer
//! (tests/data/chromium_whep_offer.sdp, made by Chromium's RTCPeerConnection with a video
//! and an audio recvonly transceiver) posted as a WHEP client posts it: 201 with Location
//! and an SDP answer naming a shard's own UDP port, then DELETE of that resource, on the
//! same connection or another. The answer sends Opus on the offer's audio section. Refusals:
//! no token 403 with the reason, PATCH 405, an oversized offer 413, an offer without H.264
//! 400. `/metrics` counts the peers and the sessions whose ICE never came up.

mod common;
use common::*;

const OFFER: &str = include_str!("data/chromium_whep_offer.sdp");
const NAME: &str = "auth-check";

const API_KEY: &str = "whep-metrics-key-0123";

fn config(http: u16, webrtc: u16) -> String {
    format!(
        "{}webrtc 127.0.0.1:{webrtc};\napi_key {API_KEY};\n",
        demo_config(http)
    )
}

/// The answer's section of `kind` ("audio", "video"): its lines, from its `m=` line on.
fn section<'a>(answer: &'a str, kind: &str) -> Option<&'a str> {
    let start = answer.find(&format!("m={kind} "))?;
    let rest = &answer[start..];
    let end = rest[2..].find("\nm=").map_or(rest.len(), |e| e + 2);
    Some(&rest[..end])
}

/// The responses to `requests` sent back to back on one keep-alive connection (the last
/// one asks to close).
fn exchange(port: u16, requests: &[Vec<u8>]) -> Vec<Response> {
    let data: Vec<u8> = requests.concat();
    parse_responses(&raw(port, &data), false)
}

fn post(path: &str, headers: &str, body: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n\
         {headers}{connection}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn bare(method: &str, path: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{connection}\r\n").into_bytes()
}

#[test]
fn a_recorded_browser_offer_is_answered() {
    let (http, webrtc) = (free_port(), free_port());
    let server = Server::start(&config(http, webrtc), http);
    let whep = format!("/{NAME}/whep?token=test1");
    let first = exchange(http, &[post(&whep, "", OFFER, true)]);
    let created = &first[0];
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("content-type"), Some("application/sdp"));
    let location = created.header("location").expect("Location").to_owned();
    let id = location
        .strip_prefix(&format!("/{NAME}/whep/"))
        .expect("resource path");
    assert_eq!(id.len(), 32, "{location}");
    let answer = created.text();
    for needle in [
        "v=0",
        "a=ice-lite",
        "a=fingerprint:sha-256 ",
        "a=setup:passive",
    ] {
        assert!(
            answer.contains(needle),
            "{needle} missing from the answer:\n{answer}"
        );
    }
    assert!(answer.contains("H264/90000") && answer.contains("packetization-mode=1"));
    let audio = section(&answer, "audio").expect("an audio section");
    assert!(!audio.starts_with("m=audio 0 "), "audio rejected:\n{audio}");
    assert!(audio.contains("opus/48000/2"), "no Opus:\n{audio}");
    assert!(audio.contains("a=sendonly"), "{audio}");
    let shard_ports = [webrtc, webrtc + 1].map(|p| format!(" 127.0.0.1 {p} typ host"));
    assert!(
        shard_ports.iter().any(|c| answer.contains(c.as_str())),
        "no host candidate on a shard's port:\n{answer}"
    );
    drop(server);
}

/// DELETE ends the session of its resource and nothing else: the first DELETE ends it, the
/// second finds nothing, whichever connection (and shard) it comes on.
#[test]
fn delete_ends_the_session_of_its_own_resource_only() {
    let (http, webrtc) = (free_port(), free_port());
    let server = Server::start(&config(http, webrtc), http);
    let whep = format!("/{NAME}/whep?token=test1");
    // Resources are only known once created, so: one POST, then the DELETEs on the same
    // connection, read back after the POST's answer names the resource.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let created = roundtrip(&mut conn, &post(&whep, "", OFFER, false));
    assert_eq!(created.status, 201, "{}", created.text());
    let location = created.header("location").unwrap().to_owned();
    let other = format!("/{NAME}/whep/{}", "0".repeat(32));
    assert_eq!(
        roundtrip(&mut conn, &bare("DELETE", &other, false)).status,
        404
    );
    assert_eq!(
        roundtrip(&mut conn, &bare("DELETE", &location, false)).status,
        200
    );
    assert_eq!(
        roundtrip(&mut conn, &bare("DELETE", &location, false)).status,
        404
    );
    // Another connection may land on the other shard: the DELETE is passed to the shard
    // holding the session, whichever takes it.
    for _ in 0..4 {
        let created = roundtrip(&mut conn, &post(&whep, "", OFFER, false));
        let location = created.header("location").unwrap().to_owned();
        assert_eq!(request(http, "DELETE", &location, "").status, 200);
        assert_eq!(request(http, "DELETE", &location, "").status, 404);
    }
    drop(server);
}

/// Sends one request on `conn` and reads its response (content-length framed).
fn roundtrip(conn: &mut std::net::TcpStream, request: &[u8]) -> Response {
    use std::io::{Read, Write};
    conn.write_all(request).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = conn.read(&mut buf).expect("a response");
        assert!(n > 0, "closed before a whole response");
        data.extend_from_slice(&buf[..n]);
        if let Some(r) = parse_responses(&data, false).into_iter().next() {
            let len: usize = r
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if r.body.len() == len {
                return r;
            }
        }
    }
}

#[test]
fn the_offer_is_authorized_first_and_bounded() {
    let (http, webrtc) = (free_port(), free_port());
    let _server = Server::start(&config(http, webrtc), http);
    let whep = format!("/{NAME}/whep");

    let refused = &exchange(http, &[post(&whep, "", OFFER, true)])[0];
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.header("x-deny-reason"), Some("backend_denied"));

    let bearer = &exchange(
        http,
        &[post(&whep, "Authorization: Bearer test1\r\n", OFFER, true)],
    )[0];
    assert_eq!(
        bearer.status, 201,
        "the token may ride in Authorization: Bearer"
    );

    let wrong = &exchange(
        http,
        &[post(&whep, "Authorization: Bearer nope\r\n", OFFER, true)],
    )[0];
    assert_eq!(wrong.status, 403);

    let options = request(http, "OPTIONS", &whep, "");
    assert_eq!(options.status, 204);
    assert_eq!(options.header("accept-post"), Some("application/sdp"));
    assert_eq!(
        options.header("access-control-allow-methods"),
        Some("POST, DELETE, OPTIONS")
    );

    let patch = request(http, "PATCH", &format!("{whep}/{}", "a".repeat(32)), "");
    assert_eq!(patch.status, 405, "trickle ICE is not supported");
    assert!(patch.text().contains("PATCH"), "{}", patch.text());

    let huge = "a".repeat(40 * 1024);
    let too_large = &exchange(
        http,
        &[post(&format!("{whep}?token=test1"), "", &huge, true)],
    )[0];
    assert_eq!(too_large.status, 413);

    let no_h264 = OFFER.replace("H264/90000", "H265/90000");
    let unplayable = &exchange(
        http,
        &[post(&format!("{whep}?token=test1"), "", &no_h264, true)],
    )[0];
    assert_eq!(unplayable.status, 400, "{}", unplayable.text());

    let unknown = &exchange(http, &[post("/nope/whep?token=test1", "", OFFER, true)])[0];
    assert_eq!(unknown.status, 404);
}

/// A `/metrics` sample line's value (`name` with its labels, as written).
fn metric(http: u16, name: &str) -> f64 {
    let text = api_call(http, API_KEY, "GET", "/metrics").text();
    let line = text
        .lines()
        .find(|l| l.rsplit_once(' ').is_some_and(|(n, _)| n == name))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

/// A session DELETEd before ICE is no failure; one whose browser never sends a STUN
/// check is an ICE failure once `ICE_WAIT` (10 s) passed, and leaves the gauge.
#[test]
fn metrics_count_peers_and_ice_failures() {
    let (http, webrtc) = (free_port(), free_port());
    let _server = Server::start(&config(http, webrtc), http);
    let whep = format!("/{NAME}/whep?token=test1");
    let ice = "tessera_webrtc_failures_total{stage=\"ice\"}";
    let connecting = "tessera_webrtc_peers{state=\"connecting\"}";
    assert_eq!(metric(http, ice), 0.0);
    let created = &exchange(http, &[post(&whep, "", OFFER, true)])[0];
    let location = created.header("location").expect("Location").to_owned();
    assert_eq!(request(http, "DELETE", &location, "").status, 200);
    let created = &exchange(http, &[post(&whep, "", OFFER, true)])[0];
    assert_eq!(created.status, 201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while metric(http, ice) < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no ICE failure counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(metric(http, ice), 1.0, "the DELETEd session is no failure");
    assert_eq!(metric(http, connecting), 0.0);
    assert_eq!(
        metric(http, "tessera_webrtc_failures_total{stage=\"dtls\"}"),
        0.0
    );
}

/// A `publish://` stream's H.264 goes out only on a profile the offer receives: a High
/// profile publisher (x264 `veryfast`) against the recorded Chromium offer (Baseline,
/// Constrained Baseline, Main, High 4:4:4: nothing that takes High as str0m answers) is
/// refused with 406 and a message naming the stream's profile.
#[test]
fn a_published_profile_the_offer_does_not_receive_is_refused() {
    let (http, webrtc, rtmp) = (free_port(), free_port(), free_port());
    let config = format!(
        "http 127.0.0.1:{http};\nrtmp 127.0.0.1:{rtmp};\nwebrtc 127.0.0.1:{webrtc};\n\
         auth_backend any {{\n    allow token t1;\n}}\n\
         stream cam {{\n    input publish://;\n    on_play auth://any;\n    \
         on_publish auth://any;\n    segment_duration 1;\n}}\n"
    );
    let server = Server::start(&config, http);
    let mut high = publisher(60);
    high.args(["-preset", "veryfast", "-pix_fmt", "yuv420p", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{rtmp}/static/cam?token=t1"));
    let _publisher = Background::spawn(&mut high);
    server.wait_ok("/cam/index.m3u8?token=t1");
    let refused = &exchange(http, &[post("/cam/whep?token=t1", "", OFFER, true)])[0];
    assert_eq!(refused.status, 406, "{}", refused.text());
    assert!(refused.text().contains("avc1.64"), "{}", refused.text());
}
