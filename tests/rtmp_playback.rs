//! RTMP playback against the real binary with real ffprobe/ffmpeg (spec §1): the token rides
//! in the play name, the application name is ignored, and a play without a valid token
//! fails in ffmpeg with "Input/output error".

mod common;
use common::*;
use std::time::Duration;

fn start() -> (Server, u16) {
    let (http, rtmp) = (free_port(), free_port());
    let config = format!("{}rtmp 127.0.0.1:{rtmp};\n", demo_config(http));
    let server = Server::start(&config, http);
    server.wait_ok("/auth-check/tracks-v1a1/mono.m3u8?token=test1");
    (server, rtmp)
}

#[test]
fn ffprobe_and_ffmpeg_play_with_the_token() {
    let (server, rtmp) = start();
    for app in ["static", "rtmp"] {
        assert_probe_shows_fake_source(
            &[],
            &format!("rtmp://127.0.0.1:{rtmp}/{app}/auth-check?token=test1"),
        );
    }
    assert_decodes_cleanly(
        &[],
        &format!("rtmp://127.0.0.1:{rtmp}/static/auth-check?token=test1"),
        5,
        &[],
    );
    let log = server.log_text();
    assert!(log.contains("rtmp play allowed stream=auth-check"), "{log}");
    assert!(!log.contains("test1"), "whole token in the log:\n{log}");
}

#[test]
fn no_token_and_wrong_token_fail_like_the_reference() {
    let (_server, rtmp) = start();
    for path in ["/static/auth-check", "/static/auth-check?token=bad"] {
        let url = format!("rtmp://127.0.0.1:{rtmp}{path}");
        let out = run_bounded(tool("ffprobe").arg(&url), Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{path} played");
        assert!(err.contains("Input/output error"), "{path}:\n{err}");
    }
    // An unknown stream, and a name that breaks the shared URL rules (a repeated token, a
    // `..`), are refused too.
    for path in [
        "/static/nothing?token=test1",
        "/static/auth-check?token=test1&token=test1",
        "/static/../auth-check?token=test1",
    ] {
        let url = format!("rtmp://127.0.0.1:{rtmp}{path}");
        let out = run_bounded(tool("ffprobe").arg(&url), Duration::from_secs(30));
        assert!(!out.status.success(), "{path} played");
    }
}

#[test]
fn publishing_to_a_fake_stream_is_refused() {
    let (_server, rtmp) = start();
    let url = format!("rtmp://127.0.0.1:{rtmp}/static/auth-check?token=test1");
    let out = run_bounded(
        tool("ffmpeg").args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x64:rate=5",
            "-t",
            "2",
            "-c:v",
            "flv1",
            "-f",
            "flv",
            &url,
        ]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "a publish was accepted");
}
