//! HTTP MPEG-TS (`/NAME/mpegts`): one continuous TS response, token-checked, that ffprobe
//! and ffmpeg play; refused without the token.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn live_ts_plays_with_the_token_and_is_refused_without() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    server.wait_ok("/auth-check/tracks-v1a1/mono.m3u8?token=test1");

    let denied = get(server.http, "/auth-check/mpegts");
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("x-deny-reason"), Some("backend_denied"));
    assert_eq!(
        get(server.http, "/auth-check/mpegts?token=nope").status,
        403
    );

    let url = server.url("/auth-check/mpegts?token=test1");
    assert_probe_shows_fake_source(&[], &url);
    assert_decodes_cleanly(&[], &url, 5, &[]);
}

#[test]
fn the_response_is_close_delimited_and_starts_with_pat_pmt() {
    use std::io::{Read, Write};
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    server.wait_ok("/auth-check/tracks-v1a1/mono.m3u8?token=test1");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /auth-check/mpegts?token=test1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut data = vec![0u8; 0];
    let mut buf = [0u8; 65536];
    while data.len() < 64 * 1024 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        data.extend_from_slice(&buf[..n]);
    }
    let end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(
        !head.lines().any(|l| l.starts_with("content-length:")),
        "{head}"
    );
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("content-type: video/mp2t"), "{head}");
    let body = &data[end..];
    assert_eq!(body[0], 0x47);
    let pid = |p: &[u8]| (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
    assert_eq!(pid(&body[..188]), 0, "PAT first");
    assert_eq!(pid(&body[188..376]), 0x1000, "PMT second");
}
