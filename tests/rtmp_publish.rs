//! RTMP publish ingest (`input publish://;`) against the real binary: a real ffmpeg
//! publisher (x264 + AAC over RTMP) feeds a stream that ffprobe/ffmpeg then play over every
//! output (RTMP, HLS TS and fMP4, DASH, RTSP, HTTP MPEG-TS); `on_publish` refuses a bad
//! token; a second publisher is refused while the first is live; viewers are told when the
//! publisher leaves, HLS keeps its segments, and a new publisher continues the timeline;
//! viewers on both shards get the stream.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const MEDIA: &str = "/cam/tracks-v1a1/mono.m3u8";

struct Ports {
    http: u16,
    rtmp: u16,
    rtsp: u16,
}

fn start() -> (Server, Ports) {
    let ports = Ports {
        http: free_port(),
        rtmp: free_port(),
        rtsp: free_port(),
    };
    let config = format!(
        "http 127.0.0.1:{};\nrtmp 127.0.0.1:{};\nrtsp 127.0.0.1:{};\n\
         auth_backend publishers {{\n    allow token secret;\n}}\n\
         stream cam {{\n    input publish://;\n    on_publish auth://publishers;\n    segment_duration 1;\n}}\n",
        ports.http, ports.rtmp, ports.rtsp
    );
    (Server::start(&config, ports.http), ports)
}

/// The segment URIs of a media playlist, in order.
fn segment_uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The start time (seconds) ffprobe reads from a TS segment of the media playlist.
fn segment_start(server: &Server, uri: &str) -> f64 {
    let url = server.url(&format!("/cam/tracks-v1a1/{uri}"));
    let out = run_bounded(
        tool("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "format=start_time",
            "-of",
            "csv=p=0",
            &url,
        ]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no start time for {uri}: {text:?}"))
}

#[test]
fn a_published_stream_plays_over_every_output() {
    let (server, ports) = start();
    let mut publisher =
        Background::spawn(&mut publish_cmd(ports.rtmp, "/static/cam?token=secret", 40));
    server.wait_ok(MEDIA);
    let rtmp = format!("rtmp://127.0.0.1:{}/static/cam", ports.rtmp);
    assert_probe_shows_publisher(&[], &rtmp);
    assert_decodes_cleanly(&[], &rtmp, 3, &[]);
    assert_probe_shows_publisher(&[], &server.url("/cam/index.m3u8"));
    assert_decodes_cleanly(&[], &server.url("/cam/index.m3u8"), 3, &[]);
    assert_probe_shows_publisher(&[], &server.url("/cam/index.fmp4.m3u8"));
    assert_probe_shows_publisher(&[], &server.url("/cam/index.ll.m3u8"));
    assert_probe_shows_publisher(&[], &server.url("/cam/index.mpd"));
    assert_probe_shows_publisher(&[], &server.url("/cam/mpegts"));
    assert_probe_shows_publisher(
        &["-rtsp_transport", "tcp"],
        &format!("rtsp://127.0.0.1:{}/cam", ports.rtsp),
    );
    let log = server.log_text();
    assert!(log.contains("rtmp publish allowed stream=cam"), "{log}");
    assert!(!log.contains("secret"), "whole token in the log:\n{log}");
    let _ = publisher.child.kill();
}

#[test]
fn a_bad_token_and_a_second_publisher_are_refused() {
    let (server, ports) = start();
    for path in ["/static/cam", "/static/cam?token=wrong"] {
        let out = run_bounded(
            &mut publish_cmd(ports.rtmp, path, 3),
            Duration::from_secs(30),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{path} was accepted");
        assert!(err.contains("backend_denied"), "{path}:\n{err}");
    }
    let _first = Background::spawn(&mut publish_cmd(ports.rtmp, "/static/cam?token=secret", 40));
    server.wait_ok(MEDIA);
    let out = run_bounded(
        &mut publish_cmd(ports.rtmp, "/static/cam?token=secret", 3),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second publisher was accepted");
    assert!(err.contains("already being published"), "{err}");
    // The first one is untouched: the stream still plays.
    assert_probe_shows_publisher(&[], &format!("rtmp://127.0.0.1:{}/static/cam", ports.rtmp));
    assert!(server.log_text().contains("already published"));
}

#[test]
fn viewers_wait_are_told_when_the_publisher_leaves_and_a_new_one_continues() {
    let (server, ports) = start();
    // An RTMP viewer that arrives before any publisher waits for one.
    let mut viewer = Background::spawn(tool("ffmpeg").args([
        "-v",
        "info",
        "-i",
        &format!("rtmp://127.0.0.1:{}/static/cam", ports.rtmp),
        "-f",
        "null",
        "-",
    ]));
    wait_log(&server, "rtmp play started stream=cam");
    let mut first = Background::spawn(&mut publish_cmd(ports.rtmp, "/static/cam?token=secret", 6));
    let (ok, err) = first.wait(Duration::from_secs(60));
    assert!(ok, "first publisher failed:\n{err}");
    // The viewer got the stream, then UnpublishNotify, and ends by itself.
    let (_, err) = viewer.wait(Duration::from_secs(30));
    assert!(err.contains("Video: h264"), "viewer saw no video:\n{err}");
    assert!(err.contains("frame="), "viewer decoded nothing:\n{err}");
    wait_log(&server, "play ended: the publisher left");
    wait_log(&server, "rtmp publish ended stream=cam");

    // HLS keeps listing the last segments, the flushed partial one included.
    let playlist = get(server.http, MEDIA);
    assert_eq!(playlist.status, 200, "{}", server.log_text());
    let before = segment_uris(&playlist.text());
    assert!(!before.is_empty(), "{}", playlist.text());
    let last_before = segment_start(&server, before.last().unwrap());

    let mut second = Background::spawn(&mut publish_cmd(ports.rtmp, "/static/cam?token=secret", 4));
    let (ok, err) = second.wait(Duration::from_secs(60));
    assert!(ok, "second publisher failed:\n{err}");
    wait_log(&server, "generation=2");
    let after = segment_uris(&get(server.http, MEDIA).text());
    let new: Vec<&String> = after.iter().filter(|u| !before.contains(u)).collect();
    assert!(!new.is_empty(), "no new segments: {after:?}");
    let first_after = segment_start(&server, new[0]);
    assert!(
        first_after > last_before,
        "DTS went back: {first_after} after {last_before}"
    );
    // Media sequence numbers keep counting.
    let text = get(server.http, MEDIA).text();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:"), "{text}");
}

/// Opens `path` on a fresh connection and reads the head and `want` body bytes.
fn head_and_bytes(port: u16, path: &str, want: usize) -> (String, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n")
            && data.len() >= end + 4 + want
        {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            return (head, data.len() - end - 4);
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&data).into_owned(), 0),
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn viewers_on_both_shards_receive_the_stream() {
    let (server, ports) = start();
    let _publisher =
        Background::spawn(&mut publish_cmd(ports.rtmp, "/static/cam?token=secret", 40));
    server.wait_ok(MEDIA);
    let mut shards_seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let (head, body) = head_and_bytes(ports.http, "/cam/mpegts", 188 * 50);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body >= 188 * 50, "short stream: {body} bytes\n{head}");
        let shard = head
            .lines()
            .find_map(|l| l.strip_prefix("x-shard: "))
            .expect("x-shard")
            .to_string();
        let playlist = get(ports.http, MEDIA);
        assert_eq!(playlist.status, 200);
        assert!(!segment_uris(&playlist.text()).is_empty());
        shards_seen.insert(shard);
        if shards_seen.len() == 2 {
            return;
        }
    }
    panic!("only shards {shards_seen:?} answered");
}

/// A raw RTMP connection past the (simple) handshake.
fn rtmp_handshaken(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    s.write_all(&c0c1).unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
    s.read_exact(&mut s0s1s2).expect("S0 S1 S2");
    s.write_all(&s0s1s2[1..1537]).unwrap(); // C2 echoes S1
    s
}

/// Reads until the server closes the connection (bounded by the read timeout).
fn closed_by_server(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn malformed_input_closes_the_connection_with_a_log_line() {
    let (server, ports) = start();
    // A message header declaring 16 MiB (over the 8 MiB limit).
    let mut s = rtmp_handshaken(ports.rtmp);
    s.write_all(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x14, 0, 0, 0, 0])
        .unwrap();
    assert!(closed_by_server(s), "oversized message left open");
    // An unknown command.
    let mut body = vec![0x02, 0, 10];
    body.extend_from_slice(b"frobnicate");
    body.push(0x00);
    body.extend_from_slice(&1.0f64.to_be_bytes());
    body.push(0x05);
    let mut s = rtmp_handshaken(ports.rtmp);
    let mut msg = vec![0x03, 0, 0, 0, 0, 0, body.len() as u8, 0x14, 0, 0, 0, 0];
    msg.extend_from_slice(&body);
    s.write_all(&msg).unwrap();
    assert!(closed_by_server(s), "unknown command left open");
    // AMF garbage.
    let mut s = rtmp_handshaken(ports.rtmp);
    s.write_all(&[0x03, 0, 0, 0, 0, 0, 3, 0x14, 0, 0, 0, 0, 0x0E, 0xFF, 0xFF])
        .unwrap();
    assert!(closed_by_server(s), "AMF garbage left open");
    wait_log(&server, "closing on a protocol error: rtmp chunk");
    wait_log(&server, "unknown command");
    wait_log(&server, "AMF0 garbage");
    // The shards still serve (503: the stream exists, its media does not yet).
    assert_eq!(
        get(ports.http, "/cam/index.m3u8").status,
        503,
        "no publisher yet"
    );
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
}
