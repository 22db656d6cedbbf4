//! A connection's session is closed however the connection ends. Real players (ffmpeg over
//! RTMP, RTSP/TCP, RTSP/UDP, HTTP MPEG-TS) and raw clients play the fake source and a
//! published stream, each viewer is seen in the sessions API, and then every one is ended
//! a different way: the player killed (peer gone), RTSP TEARDOWN (ffmpeg's end of input),
//! a protocol error mid-play, a revocation (re-check), the publisher leaving (the input
//! ended), an HTTP client hanging up. Afterwards the sessions API lists nothing and each
//! shard's log says every opened session closed.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const API_KEY: &str = "sessions-close-key";

fn start() -> (Server, Listeners) {
    let ports = Listeners::free();
    let config = format!(
        "{}api_key {API_KEY};\n\
         auth_backend viewers {{\n    allow token watch;\n    allow token a;\n    allow token b;\n    allow token c;\n    allow token doomed;\n    allow token e;\n    allow token f;\n}}\n\
         stream live {{\n    input fake://fake;\n    on_play auth://viewers;\n}}\n\
         stream cam {{\n    input publish://;\n    on_play auth://viewers;\n    segment_duration 1;\n}}\n",
        ports.config()
    );
    (Server::start(&config, ports.http), ports)
}

fn api(port: u16, method: &str, path: &str) -> Response {
    api_call(port, API_KEY, method, path)
}

/// The sessions the API lists for `filter` (every shard's).
fn sessions(http: u16, filter: &str) -> usize {
    let text = api(http, "GET", &format!("/streamer/api/v3/sessions?{filter}")).text();
    text.matches("\"id\":").count()
}

/// Waits (bounded) until the API lists `n` sessions for `filter`.
fn wait_sessions(http: u16, filter: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sessions(http, filter) != n {
        assert!(
            Instant::now() < deadline,
            "never saw {n} sessions for {filter}: {}",
            api(http, "GET", &format!("/streamer/api/v3/sessions?{filter}")).text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An ffmpeg player decoding `url` into nothing for up to `seconds`.
fn player(url: &str, options: &[&str], seconds: u32) -> Child {
    tool("ffmpeg")
        .args(["-v", "error"])
        .args(options)
        .args(["-i", url, "-t", &seconds.to_string(), "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

/// An ffmpeg publisher of x264 + AAC to `cam` for `seconds`.
fn publisher(rtmp: u16, seconds: u32) -> Child {
    publish_cmd(rtmp, "/static/cam", seconds)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg publisher")
}

/// Waits (bounded) for `child` to exit; whether it did.
fn exits(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads one RTSP response (head and body) from `s`.
fn rtsp_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
            if got.len() >= end + 4 + len {
                return head;
            }
        }
        assert!(Instant::now() < deadline, "no RTSP response");
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "connection closed");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A raw RTSP client playing `live` over TCP interleaved; returns the playing connection.
fn raw_rtsp_play(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let base = format!("rtsp://127.0.0.1:{port}/live?token=f");
    let send = |s: &mut TcpStream, req: String| {
        s.write_all(req.as_bytes()).expect("write");
        rtsp_response(s)
    };
    let describe = send(
        &mut s,
        format!("DESCRIBE {base} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"),
    );
    assert!(describe.starts_with("RTSP/1.0 200"), "{describe}");
    let setup = send(
        &mut s,
        format!(
            "SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\n\
             Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
        ),
    );
    assert!(setup.starts_with("RTSP/1.0 200"), "{setup}");
    let session = setup
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .expect("session header");
    s.write_all(
        format!("PLAY {base} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n").as_bytes(),
    )
    .expect("play");
    s
}

#[test]
fn every_way_a_connection_ends_closes_its_session() {
    let (server, ports) = start();
    server.wait_ok("/live/index.m3u8?token=watch");
    // Each viewer has a token of its own, so each has a session of its own.
    let live_rtmp = |t: &str| format!("rtmp://127.0.0.1:{}/static/live?token={t}", ports.rtmp);
    let live_rtsp = |t: &str| format!("rtsp://127.0.0.1:{}/live?token={t}", ports.rtsp);

    // 1. An RTMP player killed, and 2. an RTSP/TCP player killed: the peer is gone.
    let rtmp_killed = player(&live_rtmp("a"), &[], 60);
    let rtsp_killed = player(&live_rtsp("b"), &["-rtsp_transport", "tcp"], 60);
    // 3. An RTSP/UDP player that reaches the end of what it asked for: TEARDOWN.
    let mut rtsp_teardown = player(&live_rtsp("c"), &["-rtsp_transport", "udp"], 8);
    // 4. A revoked RTMP player: ended by the re-check.
    let mut rtmp_revoked = player(&live_rtmp("doomed"), &[], 60);
    // 5. An HTTP MPEG-TS viewer whose client hangs up.
    let mut ts = TcpStream::connect(("127.0.0.1", ports.http)).expect("connect");
    ts.write_all(b"GET /live/mpegts?token=e HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("request");
    // 6. A raw RTSP client that sends garbage while playing: a protocol error.
    let mut garbage = raw_rtsp_play(ports.rtsp);
    // 7. An RTMP viewer of a published stream whose publisher leaves: the input ended.
    let mut publish = publisher(ports.rtmp, 6);
    server.wait_ok("/cam/index.m3u8?token=watch");
    let cam = format!("rtmp://127.0.0.1:{}/static/cam?token=watch", ports.rtmp);
    let mut cam_viewer = player(&cam, &[], 60);

    wait_sessions(ports.http, "proto=rtmp", 3);
    wait_sessions(ports.http, "proto=rtsp", 3);
    wait_sessions(ports.http, "proto=tshttp", 1);

    kill(rtmp_killed);
    kill(rtsp_killed);
    let revoked = api(ports.http, "POST", "/streamer/api/v3/revoke?token=doomed");
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    drop(ts);
    garbage
        .write_all(b"\x00\x01GARBAGE NOT RTSP\r\n\r\n")
        .expect("garbage");
    assert!(
        exits(&mut rtsp_teardown, Duration::from_secs(30)),
        "-t 3 ends"
    );
    assert!(exits(&mut rtmp_revoked, Duration::from_secs(10)), "revoked");
    assert!(
        exits(&mut publish, Duration::from_secs(30)),
        "publisher ends"
    );
    assert!(
        exits(&mut cam_viewer, Duration::from_secs(20)),
        "told of the end"
    );
    drop(garbage);

    // Every connection's session closes: none is left in the API, on any shard (the HLS
    // requests that waited for the streams have sessions of their own that idle out).
    for proto in ["rtmp", "rtsp", "tshttp"] {
        wait_sessions(ports.http, &format!("proto={proto}"), 0);
    }
    let log = server.log_text();
    assert!(log.contains("rtsp: closing on a protocol error"), "{log}");
    for proto in ["rtmp", "rtsp", "tshttp"] {
        let tag = format!("proto={proto} ");
        let lines = |what: &str| {
            log.lines()
                .filter(|l| l.contains(what) && l.contains(&tag) && l.contains("token="))
                .count()
        };
        let (opened, closed) = (lines("session opened"), lines("session closed"));
        assert!(opened >= 1, "no {proto} session opened:\n{log}");
        assert_eq!(
            opened, closed,
            "{proto}: {opened} opened, {closed} closed:\n{log}"
        );
    }
}
