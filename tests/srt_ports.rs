//! SRT passphrases and Flussonic's per-stream SRT forms against the real binary with
//! Debian's ffprobe/ffmpeg (libsrt 1.5): a `srt_passphrase` stream plays with the right
//! passphrase and not without it or with a wrong one; `srt_play { port N; }` plays its
//! stream with no stream id at all and refuses publishers; `srt N;` inside a `publish://`
//! stream takes a publisher (`m=publish`) and plays it (`m=request`) on one port; an
//! encrypted publisher feeds a passphrase stream.
//! Only 127.0.0.1; every run bounded.

mod common;
use common::*;
use std::time::Duration;

const PASSPHRASE: &str = "stream-secret-1";

struct Ports {
    http: u16,
    srt: u16,
    play: u16,
    both: u16,
}

fn start() -> (Server, Ports) {
    let ports = Ports {
        http: free_port(),
        srt: free_port(),
        play: free_port(),
        both: free_port(),
    };
    let config = format!(
        "{}srt 127.0.0.1:{};\n\
         stream secret {{\n    input fake://fake;\n    srt_passphrase {PASSPHRASE};\n}}\n\
         stream open {{\n    input fake://fake;\n    srt_play {{\n        port 127.0.0.1:{};\n    }}\n}}\n\
         stream cam {{\n    input publish://;\n    srt 127.0.0.1:{};\n}}\n\
         stream vault {{\n    input publish://;\n    srt_passphrase {PASSPHRASE};\n}}\n",
        demo_config(ports.http),
        ports.srt,
        ports.play,
        ports.both
    );
    let server = Server::start(&config, ports.http);
    server.wait_ok("/secret/tracks-v1a1/mono.m3u8");
    server.wait_ok("/open/tracks-v1a1/mono.m3u8");
    (server, ports)
}

fn fails_to_open(url: &str) -> String {
    let out = run_bounded(tool("ffprobe").arg(url), Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{url} played:\n{err}");
    err
}

#[test]
fn a_passphrase_stream_plays_with_its_passphrase_only() {
    let (server, ports) = start();
    let base = format!(
        "srt://127.0.0.1:{}?streamid=#!::r=secret,m=request",
        ports.srt
    );
    let right = format!("{base}&passphrase={PASSPHRASE}");
    assert_probe_shows_fake_source(&[], &right);
    assert_decodes_cleanly(&[], &right, 3, &[]);
    for pbkeylen in ["24", "32"] {
        assert_probe_shows_fake_source(&[], &format!("{right}&pbkeylen={pbkeylen}"));
    }
    fails_to_open(&base);
    fails_to_open(&format!("{base}&passphrase=not-the-secret"));
    // A passphrase on a stream without one is refused too (libsrt's enforced encryption).
    let open = format!(
        "srt://127.0.0.1:{}?streamid=#!::r=auth-check,m=request,token=test1&passphrase={PASSPHRASE}",
        ports.srt
    );
    fails_to_open(&open);
    let log = server.log_text();
    assert!(log.contains("reject code 10"), "no BADSECRET:\n{log}");
    assert!(log.contains("reject code 11"), "no UNSECURE:\n{log}");
    assert!(
        !log.contains(PASSPHRASE),
        "the passphrase in the log:\n{log}"
    );
}

#[test]
fn srt_play_port_plays_its_stream_without_a_stream_id_and_refuses_publishers() {
    let (server, ports) = start();
    let url = format!("srt://127.0.0.1:{}", ports.play);
    assert_probe_shows_fake_source(&[], &url);
    // A stream id naming another stream still gets this port's stream.
    assert_probe_shows_fake_source(&[], &format!("{url}?streamid=#!::r=cam,m=request"));
    let publish = format!("{url}?streamid=#!::m=publish");
    let out = run_bounded(
        &mut publish_to(&publish, "mpegts", 3),
        Duration::from_secs(30),
    );
    assert!(
        !out.status.success(),
        "a publisher was taken on a play port"
    );
    wait_log(&server, "refused: publishing on a play-only port");
}

#[test]
fn srt_port_in_a_stream_takes_its_publisher_and_plays_it() {
    let (server, ports) = start();
    let url = format!("srt://127.0.0.1:{}", ports.both);
    let _publisher = Background::spawn(&mut publish_to(
        &format!("{url}?streamid=#!::m=publish"),
        "mpegts",
        40,
    ));
    server.wait_ok("/cam/tracks-v1a1/mono.m3u8");
    let out = run_bounded(
        tool("ffprobe").arg(format!("{url}?streamid=#!::m=request")),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Video: h264") && err.contains("Audio: aac"),
        "{err}"
    );
    wait_log(&server, "srt publish started stream=cam");
}

#[test]
fn an_encrypted_publisher_feeds_a_passphrase_stream() {
    let (server, ports) = start();
    let base = format!(
        "srt://127.0.0.1:{}?streamid=#!::r=vault,m=publish",
        ports.srt
    );
    let out = run_bounded(&mut publish_to(&base, "mpegts", 3), Duration::from_secs(30));
    assert!(!out.status.success(), "an unencrypted publisher was taken");
    let _publisher = Background::spawn(&mut publish_to(
        &format!("{base}&passphrase={PASSPHRASE}&pbkeylen=32"),
        "mpegts",
        40,
    ));
    server.wait_ok("/vault/tracks-v1a1/mono.m3u8");
    assert_probe_shows_publisher(&[], &server.url("/vault/index.m3u8"));
    let play = format!(
        "srt://127.0.0.1:{}?streamid=#!::r=vault,m=request&passphrase={PASSPHRASE}",
        ports.srt
    );
    assert_probe_shows_publisher(&[], &play);
}
