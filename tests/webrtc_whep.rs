//! WHEP signalling with a client that is not a browser: a recorded Chromium offer
//! (tests/data/chromium_whep_offer.sdp, made by Chromium's RTCPeerConnection with a video
//! and an audio recvonly transceiver) posted as a WHEP client posts it: 201 with Location
//! and an SDP answer naming a shard's own UDP port, then DELETE of that resource, on the
//! same connection or another. Refusals: no token 403 with the reason, PATCH 405, an
//! oversized offer 413, an offer without H.264 400.

mod common;
use common::*;

const OFFER: &str = include_str!("data/chromium_whep_offer.sdp");
const NAME: &str = "auth-check";

fn config(http: u16, webrtc: u16) -> String {
    format!("{}webrtc 127.0.0.1:{webrtc};\n", demo_config(http))
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
