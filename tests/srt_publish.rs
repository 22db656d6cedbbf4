//! SRT publish ingest (`m=publish` into an `input publish://;` stream) against the real
//! binary: a real ffmpeg publisher (x264 + AAC in MPEG-TS over SRT, libsrt 1.5) feeds a
//! stream that ffprobe/ffmpeg then play over HLS, RTMP, RTSP and SRT; `on_publish` refuses
//! a wrong or missing token; one publisher per stream across protocols (an RTMP and an SRT
//! publisher compete; the slot frees when the SRT publisher leaves); a TS tessera cannot
//! carry (HEVC, no PAT) ends that publisher with a log line naming the stream and the
//! reason, and other streams play on. Only 127.0.0.1; every run bounded.

mod common;
use common::*;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

const MEDIA: &str = "/cam/tracks-v1a1/mono.m3u8";

struct Ports {
    tcp: Listeners,
    srt: u16,
}

fn start() -> (Server, Ports) {
    let ports = Ports {
        tcp: Listeners::free(),
        srt: free_port(),
    };
    let config = format!(
        "{}srt 127.0.0.1:{};\n\
         auth_backend publishers {{\n    allow token secret;\n}}\n\
         stream cam {{\n    input publish://;\n    on_publish auth://publishers;\n    segment_duration 1;\n}}\n\
         stream other {{\n    input fake://fake;\n}}\n",
        ports.tcp.config(),
        ports.srt
    );
    (Server::start(&config, ports.tcp.http), ports)
}

fn srt_url(srt: u16, stream_id: &str) -> String {
    format!("srt://127.0.0.1:{srt}?streamid={stream_id}")
}

/// An SRT publisher of the test signal into `cam`, for `seconds`.
fn srt_publisher(srt: u16, stream_id: &str, seconds: u32) -> std::process::Command {
    publish_to(&srt_url(srt, stream_id), "mpegts", seconds)
}

const PUBLISH: &str = "#!::r=cam,m=publish,token=secret";
/// Flussonic's ingest convention: the token as the user.
const PUBLISH_AS_USER: &str = "#!::u=secret,r=cam,m=publish";

#[test]
fn an_srt_publisher_plays_over_hls_rtmp_rtsp_and_srt() {
    let (server, ports) = start();
    let _publisher = Background::spawn(&mut srt_publisher(ports.srt, PUBLISH, 40));
    server.wait_ok(MEDIA);
    let hls = server.url("/cam/index.m3u8");
    assert_probe_shows_publisher(&[], &hls);
    assert_decodes_cleanly(&[], &hls, 3, &[]);
    let rtmp = format!("rtmp://127.0.0.1:{}/static/cam", ports.tcp.rtmp);
    assert_probe_shows_publisher(&[], &rtmp);
    let rtsp = format!("rtsp://127.0.0.1:{}/cam", ports.tcp.rtsp);
    assert_probe_shows_publisher(&["-rtsp_transport", "tcp"], &rtsp);
    let srt = srt_url(ports.srt, "#!::r=cam,m=request");
    assert_probe_shows_publisher(&[], &srt);
    assert_decodes_cleanly(&[], &srt, 3, &[]);
    let log = server.log_text();
    assert!(log.contains("srt publish allowed stream=cam"), "{log}");
    assert!(log.contains("srt publish started stream=cam"), "{log}");
    assert!(
        !log.contains("damaged"),
        "a clean publisher damaged:\n{log}"
    );
    assert!(!log.contains("secret"), "whole token in the log:\n{log}");
}

#[test]
fn a_wrong_or_missing_publish_token_is_refused() {
    let (server, ports) = start();
    for id in [
        "#!::r=cam,m=publish,token=wrong",
        "#!::u=wrong,r=cam,m=publish",
        "#!::r=cam,m=publish",
    ] {
        let out = run_bounded(
            &mut srt_publisher(ports.srt, id, 3),
            Duration::from_secs(30),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{id} was accepted:\n{err}");
    }
    let log = server.log_text();
    let refusals = log
        .matches("srt publish refused stream=cam ip=127.0.0.1")
        .count();
    assert_eq!(refusals, 3, "{log}");
    assert!(log.contains("backend_denied"), "{log}");
    assert!(!log.contains("publish started"), "{log}");
}

#[test]
fn one_publisher_at_a_time_across_rtmp_and_srt() {
    let (server, ports) = start();
    let mut first = Background::spawn(&mut srt_publisher(ports.srt, PUBLISH_AS_USER, 60));
    server.wait_ok(MEDIA);
    // An RTMP publisher is refused while the SRT one is live...
    let out = run_bounded(
        &mut publish_cmd(ports.tcp.rtmp, "/static/cam?token=secret", 3),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an RTMP publisher was accepted");
    assert!(err.contains("already being published"), "{err}");
    // ...and so is a second SRT one (1409, conflict).
    let out = run_bounded(
        &mut srt_publisher(ports.srt, PUBLISH, 3),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "a second SRT publisher was accepted");
    wait_log(&server, "srt publish refused stream=cam ip=127.0.0.1");
    assert_eq!(server.log_text().matches("already published").count(), 2);
    // The first one is untouched: the stream still plays.
    assert_probe_shows_publisher(&[], &server.url("/cam/index.m3u8"));

    // The SRT publisher leaves: the slot is free, an RTMP publisher continues the stream.
    let _ = first.child.kill();
    wait_log(&server, "srt publish ended stream=cam");
    let mut next = Background::spawn(&mut publish_cmd(
        ports.tcp.rtmp,
        "/static/cam?token=secret",
        4,
    ));
    let (ok, err) = next.wait(Duration::from_secs(60));
    assert!(ok, "the RTMP publisher after the SRT one failed:\n{err}");
    wait_log(
        &server,
        "rtmp publish started stream=cam ip=127.0.0.1 generation=2",
    );
}

/// `other` (a fake source) still plays: one publisher's bad TS touched nothing else.
fn assert_other_streams_play(server: &Server) {
    server.wait_ok("/other/tracks-v1a1/mono.m3u8");
    assert_probe_shows_fake_source(&[], &server.url("/other/index.m3u8"));
}

#[test]
fn an_unsupported_codec_ends_the_publisher_with_a_log_line() {
    let (server, ports) = start();
    let hevc = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hevc.ts");
    let mut cmd = tool("ffmpeg");
    cmd.args(["-v", "error", "-re", "-stream_loop", "50", "-i", hevc])
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(srt_url(ports.srt, PUBLISH));
    let _ = run_bounded(&mut cmd, Duration::from_secs(30));
    wait_log(
        &server,
        "srt publish ended stream=cam ip=127.0.0.1: ts: unsupported codec",
    );
    let log = server.log_text();
    assert!(log.contains("HEVC"), "the codec is not named:\n{log}");
    assert_other_streams_play(&server);
    // The slot was released: a good publisher takes the stream.
    let _good = Background::spawn(&mut srt_publisher(ports.srt, PUBLISH, 30));
    server.wait_ok(MEDIA);
}

#[test]
fn a_ts_without_tables_ends_the_publisher_with_a_log_line() {
    let (server, ports) = start();
    // Null packets: TS framing but no PAT, ever.
    let mut null = [0xffu8; 188];
    null[..4].copy_from_slice(&[0x47, 0x1f, 0xff, 0x10]);
    let chunk = null.repeat(7);
    let mut sender = std::process::Command::new("srt-live-transmit")
        .args([
            "-q",
            "-c",
            "1316",
            "file://con",
            &srt_url(ports.srt, PUBLISH),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("srt-live-transmit");
    let mut stdin = sender.stdin.take().expect("stdin");
    // Paced like a live source (about 5 Mbit/s): a burst would only be lost on the way.
    // Kept open until the end: live-mode SRT drops what is unsent when the sender closes.
    for _ in 0..600 {
        // A write fails once the server ended the publisher; that is the point.
        if stdin.write_all(&chunk).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    wait_log(
        &server,
        "srt publish ended stream=cam ip=127.0.0.1: ts: no PAT",
    );
    drop(stdin);
    let _ = sender.kill();
    let _ = sender.wait();
    assert_other_streams_play(&server);
}

#[test]
fn bytes_that_are_not_ts_end_the_publisher_with_a_log_line() {
    let (server, ports) = start();
    // Raw pictures, no TS framing at all: never a packet, so never "no PAT" either.
    let mut cmd = tool("ffmpeg");
    cmd.args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25:duration=20")
        .args(["-f", "rawvideo", "-pkt_size", "1316"])
        .arg(srt_url(ports.srt, PUBLISH));
    let _sender = Background::spawn(&mut cmd);
    wait_log(
        &server,
        "srt publish ended stream=cam ip=127.0.0.1: no MPEG-TS",
    );
    assert_other_streams_play(&server);
}
