//! SRT playback against the real binary with Debian's ffprobe/ffmpeg (libsrt 1.5) and
//! srt-live-transmit: the fake source plays with the token in the stream id (as written and
//! percent-encoded whole); no token, a wrong token, an unknown stream, an unreachable portal
//! and a publisher fail to open (the handshake's rejection); a revocation through the API ends a playing viewer within about a
//! second. Only 127.0.0.1; every run bounded.

mod common;
use common::*;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const API_KEY: &str = "srt-playback-key";

fn start() -> (Server, u16) {
    let (http, srt) = (free_port(), free_port());
    // `down`'s portal listens nowhere: its viewers are refused as backend_unavailable.
    let config = format!(
        "{}srt 127.0.0.1:{srt};\nsrt_latency 200;\napi_key {API_KEY};\n\
         stream down {{\n    input fake://fake;\n    on_play http://127.0.0.1:{}/auth;\n}}\n",
        demo_config(http),
        free_port()
    );
    let server = Server::start(&config, http);
    // Viewers start at a keyframe; wait until the stream has produced media.
    server.wait_ok("/auth-check/tracks-v1a1/mono.m3u8?token=test1");
    (server, srt)
}

fn url(srt: u16, stream_id: &str) -> String {
    format!("srt://127.0.0.1:{srt}?streamid={stream_id}")
}

const PLAY: &str = "#!::r=auth-check,m=request,token=test1";

#[test]
fn ffprobe_shows_the_fake_source_for_every_stream_id_form() {
    let (server, srt) = start();
    for id in [
        PLAY,
        "%23%21%3A%3Ar%3Dauth-check%2Cm%3Drequest%2Ctoken%3Dtest1",
        "auth-check?token=test1",
    ] {
        assert_probe_shows_fake_source(&[], &url(srt, id));
    }
    let log = server.log_text();
    assert!(log.contains("proto=srt"), "{log}");
    assert!(!log.contains("test1"), "whole token in the log:\n{log}");
}

#[test]
fn ffmpeg_decodes_five_seconds_without_a_warning() {
    let (_server, srt) = start();
    assert_decodes_cleanly(&[], &url(srt, PLAY), 5, &[]);
}

#[test]
fn no_token_wrong_token_unknown_stream_portal_down_and_publish_fail_to_open() {
    let (server, srt) = start();
    for (id, code) in [
        ("#!::r=auth-check,m=request", "(1401)"),
        ("#!::r=auth-check,m=request,token=bad", "(1403)"),
        ("#!::r=other,m=request,token=test1", "no such stream"),
        ("#!::r=down,m=request,token=test1", "(1503)"),
        (
            "#!::r=auth-check,m=publish,token=test1",
            "input is not publish://",
        ),
    ] {
        let out = run_bounded(tool("ffprobe").arg(url(srt, id)), Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{id} played");
        assert!(
            err.contains("REJECT") || err.contains("rror"),
            "{id}:\n{err}"
        );
        let log = server.log_text();
        assert!(log.contains(code), "{id}: no {code} in the log:\n{log}");
    }
}

#[test]
fn srt_live_transmit_receives_the_stream_from_a_pat() {
    let (_server, srt) = start();
    let out = run_bounded(
        std::process::Command::new("srt-live-transmit")
            .args(["-t", "3", &url(srt, PLAY), "file://con"])
            .stdin(Stdio::null()),
        Duration::from_secs(30),
    );
    let ts = out.stdout;
    assert!(
        ts.len() > 100 * 188,
        "{} bytes:\n{}",
        ts.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ts.len() % 188, 0, "whole TS packets");
    assert_eq!(&ts[..3], &[0x47, 0x40, 0x00], "a PAT first");
}

fn api(port: u16, method: &str, path: &str) -> Response {
    api_call(port, API_KEY, method, path)
}

/// An ffmpeg player decoding `url` into nothing for up to a minute.
fn player(url: &str) -> Child {
    tool("ffmpeg")
        .args(["-v", "error", "-i", url, "-t", "60", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

#[test]
fn a_revocation_ends_the_viewer_within_a_second() {
    let (server, srt) = start();
    let mut viewer = player(&url(srt, PLAY));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = api(server.http, "GET", "/streamer/api/v3/sessions?proto=srt").text();
        if text.contains("\"id\":") {
            break;
        }
        assert!(Instant::now() < deadline, "no srt session listed: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let revoked = api(server.http, "POST", "/streamer/api/v3/revoke?token=test1");
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    let start = Instant::now();
    let gone = loop {
        if viewer.try_wait().expect("wait").is_some() {
            break Some(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = viewer.kill();
            let _ = viewer.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let gone = gone.expect("the SRT viewer still plays after the revocation");
    eprintln!("revoke to ffmpeg's exit: {gone:?}");
    // The server ends it at its next re-check (250 ms) with a shutdown; ffmpeg then exits.
    assert!(gone < Duration::from_millis(1500), "took {gone:?}");
    let log = server.log_text();
    assert!(
        log.contains("srt 127.0.0.1: play ended: session_revoked"),
        "{log}"
    );
    let listed = api(server.http, "GET", "/streamer/api/v3/sessions?proto=srt").text();
    assert!(!listed.contains("\"id\":"), "{listed}");
}
