//! RTSP playback against the real binary with real ffprobe/ffmpeg: both transports play the
//! fake source with the token; no token and a wrong token are refused with 403.

mod common;
use common::*;
use std::time::Duration;

fn config(http: u16, rtsp: u16) -> String {
    format!("{}rtsp 127.0.0.1:{rtsp};\n", demo_config(http))
}

fn start() -> (Server, u16) {
    let (http, rtsp) = (free_port(), free_port());
    let server = Server::start(&config(http, rtsp), http);
    // RTSP viewers start at a keyframe; wait until the stream has produced media.
    server.wait_ok("/auth-check/tracks-v1a1/mono.m3u8?token=test1");
    (server, rtsp)
}

#[test]
fn ffprobe_plays_both_transports_with_the_token() {
    let (_server, rtsp) = start();
    let url = format!("rtsp://127.0.0.1:{rtsp}/auth-check?token=test1");
    for transport in ["tcp", "udp"] {
        assert_probe_shows_fake_source(&["-rtsp_transport", transport], &url);
    }
}

#[test]
fn ffmpeg_decodes_five_seconds_on_both_transports_without_a_warning() {
    let (server, rtsp) = start();
    let url = format!("rtsp://127.0.0.1:{rtsp}/auth-check?token=test1");
    for transport in ["tcp", "udp"] {
        assert_decodes_cleanly(&["-rtsp_transport", transport], &url, 5, &[]);
    }
    let log = server.log_text();
    assert!(log.contains("proto=rtsp"), "{log}");
    assert!(!log.contains("test1"), "whole token in the log:\n{log}");
}

#[test]
fn no_token_wrong_token_and_unknown_stream_are_refused() {
    let (_server, rtsp) = start();
    for (path, expect) in [
        ("/auth-check", "403 Forbidden"),
        ("/auth-check?token=bad", "403 Forbidden"),
        ("/auth-check?token=test1&token=test1", "400"),
        ("/other?token=test1", "404"),
    ] {
        let url = format!("rtsp://127.0.0.1:{rtsp}{path}");
        let out = run_bounded(
            tool("ffprobe").args(["-rtsp_transport", "tcp", &url]),
            Duration::from_secs(30),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{path} played");
        assert!(err.contains(expect), "{path}: expected {expect}:\n{err}");
    }
}

#[test]
fn describe_denial_carries_the_reason() {
    let (_server, rtsp) = start();
    let reply = raw(
        rtsp,
        format!("DESCRIBE rtsp://127.0.0.1:{rtsp}/auth-check RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n").as_bytes(),
    );
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("RTSP/1.0 403 Forbidden\r\n"), "{text}");
    assert!(text.contains("CSeq: 2\r\n"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("x-deny-reason: backend_denied"),
        "{text}"
    );
}

/// Sends requests on one connection and returns each response's status line.
fn statuses(port: u16, requests: &[String]) -> Vec<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut out = Vec::new();
    for req in requests {
        s.write_all(req.as_bytes()).unwrap();
        let mut status = String::new();
        if reader.read_line(&mut status).unwrap_or(0) == 0 {
            out.push("closed".to_string());
            break;
        }
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).unwrap();
        out.push(status.trim_end().to_string());
    }
    out
}

#[test]
fn bad_requests_get_rtsp_statuses_and_others_keep_playing() {
    let (server, rtsp) = start();
    let base = format!("rtsp://127.0.0.1:{rtsp}/auth-check");
    let got = statuses(
        rtsp,
        &[
            format!("OPTIONS {base} RTSP/1.0\r\n\r\n"),
            format!("DESCRIBE {base}?token=test1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            format!(
                "SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;multicast\r\n\r\n"
            ),
            format!(
                "SETUP {base}/trackID=7 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
            ),
            format!(
                "SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nSession: nope\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
            ),
            format!("RECORD {base} RTSP/1.0\r\nCSeq: 5\r\n\r\n"),
            format!("PLAY {base} RTSP/1.0\r\nCSeq: 6\r\nSession: nope\r\n\r\n"),
        ],
    );
    assert_eq!(
        got,
        vec![
            "RTSP/1.0 400 Bad Request",
            "RTSP/1.0 200 OK",
            "RTSP/1.0 461 Unsupported Transport",
            "RTSP/1.0 404 Not Found",
            "RTSP/1.0 454 Session Not Found",
            "RTSP/1.0 405 Method Not Allowed",
            "RTSP/1.0 454 Session Not Found",
        ],
        "server log:\n{}",
        server.log_text()
    );
    // Garbage on another connection is refused and closed...
    let reply = raw(rtsp, b"\x00\x01\x02 garbage\r\n\r\n");
    assert!(
        String::from_utf8_lossy(&reply).starts_with("RTSP/1.0 400"),
        "{reply:?}"
    );
    // ...and a viewer is still served.
    let url = format!("{base}?token=test1");
    let out = run_bounded(
        tool("ffprobe").args(["-rtsp_transport", "tcp", &url]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn stream_names_with_slashes_play_over_rtsp() {
    let (http, rtsp) = (free_port(), free_port());
    let config = format!(
        "http 127.0.0.1:{http};\nrtsp 127.0.0.1:{rtsp};\n\
         auth_backend cams {{ allow token cam-token; }}\n\
         stream live/cam1 {{ input fake://fake; on_play auth://cams; segment_duration 1; }}\n"
    );
    let server = Server::start(&config, http);
    server.wait_ok("/live/cam1/tracks-v1a1/mono.m3u8?token=cam-token");
    let url = format!("rtsp://127.0.0.1:{rtsp}/live/cam1?token=cam-token");
    let out = run_bounded(
        tool("ffprobe").args(["-rtsp_transport", "tcp", &url]),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}\n{}", server.log_text());
    assert!(err.contains("Video: h264 (Constrained Baseline)"), "{err}");
    let denied = format!("rtsp://127.0.0.1:{rtsp}/live/cam1?token=wrong");
    let out = run_bounded(
        tool("ffprobe").args(["-rtsp_transport", "tcp", &denied]),
        Duration::from_secs(30),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("403 Forbidden"));
}
