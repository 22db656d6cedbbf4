//! Signed tokens (`signed_key`): checked with no backend round trip, on HLS and RTSP:
//! valid, expired, tampered, wrong stream, wrong client address. Tokens come from the real
//! `tessera token sign` command.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn config(http: u16, rtsp: u16) -> String {
    format!(
        "http 127.0.0.1:{http};\nrtsp 127.0.0.1:{rtsp};\n\
         auth_backend signed {{ signed_key old-key fedcba9876543210fedcba9876543210; signed_key k1 {SECRET}; }}\n\
         stream news/a {{ input fake://fake; on_play auth://signed; segment_duration 1; }}\n\
         stream other {{ input fake://fake; on_play auth://signed; segment_duration 1; }}\n"
    )
}

fn sign(config: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["token", "sign"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn signed_tokens_allow_and_deny_with_the_right_reason() {
    let (http, rtsp) = (free_port(), free_port());
    let text = config(http, rtsp);
    let server = Server::start(&text, http);
    let path = write_config(&text);

    let token = sign(&path, &["signed", "news/*", "--ttl", "600"]);
    assert!(
        token.starts_with("v1.k1."),
        "signed with the newest key: {token}"
    );
    let media = format!("/news/a/tracks-v1a1/mono.m3u8?token={token}");
    server.wait_ok(&media);
    let playlist = get(server.http, &media).text();
    assert!(
        playlist.contains(&format!(".ts?token={token}")),
        "the token follows: {playlist}"
    );

    let deny = |path: &str, reason: &str| {
        let r = get(server.http, path);
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.header("x-deny-reason"), Some(reason), "{path}");
    };
    // Another stream than the scope.
    deny(
        &format!("/other/index.m3u8?token={token}"),
        "backend_denied",
    );
    // Tampered: one character of the MAC changed.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    deny(
        &format!("/news/a/index.m3u8?token={tampered}"),
        "bad_signature",
    );
    // Tampered: the scope widened to everything, MAC kept.
    let parts: Vec<&str> = token.split('.').collect();
    let widened = format!(
        "{}.{}.{}.Kg.{}.{}",
        parts[0], parts[1], parts[2], parts[4], parts[5]
    );
    deny(
        &format!("/other/index.m3u8?token={widened}"),
        "bad_signature",
    );
    // Expired: signed by the library one minute in the past.
    let mut keys = tessera::auth::signed::SignedKeys::new();
    keys.insert("k1", SECRET.as_bytes()).unwrap();
    let expired = keys
        .sign("k1", tessera::utc::now_ms() / 1000 - 60, "news/*", None)
        .unwrap();
    deny(
        &format!("/news/a/index.m3u8?token={expired}"),
        "token_expired",
    );
    // Bound to another client address.
    let elsewhere = sign(&path, &["signed", "news/a", "--ip", "192.0.2.7"]);
    deny(
        &format!("/news/a/index.m3u8?token={elsewhere}"),
        "backend_denied",
    );
    // Bound to ours, and signed with the older key: both fine.
    let here = sign(
        &path,
        &[
            "signed",
            "news/a",
            "--ip",
            "127.0.0.0/8",
            "--key",
            "old-key",
        ],
    );
    assert_eq!(
        get(server.http, &format!("/news/a/index.m3u8?token={here}")).status,
        200
    );

    // The same token over RTSP.
    let url = format!("rtsp://127.0.0.1:{rtsp}/news/a?token={token}");
    let out = run_bounded(
        tool("ffprobe").args(["-rtsp_transport", "tcp", &url]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("rtsp://127.0.0.1:{rtsp}/news/a?token={expired}");
    let out = run_bounded(
        tool("ffprobe").args(["-rtsp_transport", "tcp", &url]),
        Duration::from_secs(30),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("403 Forbidden"));
    assert!(
        !server.log_text().contains(SECRET),
        "the secret reached the log"
    );
}

#[test]
fn bad_keys_are_config_errors() {
    let path = write_config(
        "http 8080;\nauth_backend b {\n    signed_key k1 short;\n    signed_key \"bad id\" 0123456789abcdef0123456789abcdef;\n}\n",
    );
    let out = Command::new(BIN)
        .arg("--check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":3:16: error: signed_key:") && err.contains("shorter than 16"),
        "{err}"
    );
    assert!(err.contains(":4:16: error: signed_key:"), "{err}");
    assert!(
        !err.contains("0123456789abcdef"),
        "a secret in an error message: {err}"
    );
}

/// A Flussonic securetoken as a portal's PHP would make it, computed here independently.
fn securetoken(name: &str, ip: &str, start: i64, end: i64, secret: &str, salt: &str) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(format!("{name}{ip}{start}{end}{secret}{salt}").as_bytes());
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hash}-{salt}-{end}-{start}")
}

#[test]
fn flussonic_securetoken_is_accepted_and_checked() {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\n\
         auth_backend st {{ securetoken s3cretkey; }}\n\
         auth_backend st-any-ip {{ securetoken s3cretkey no_check_ip; }}\n\
         stream cam {{ input fake://fake; on_play auth://st; segment_duration 1; }}\n\
         stream cam2 {{ input fake://fake; on_play auth://st-any-ip; segment_duration 1; }}\n"
    );
    let server = Server::start(&config, port);
    let now = tessera::utc::now_ms() / 1000;
    let good = securetoken(
        "cam",
        "127.0.0.1",
        now - 10,
        now + 600,
        "s3cretkey",
        "a1b2c3",
    );
    server.wait_ok(&format!("/cam/tracks-v1a1/mono.m3u8?token={good}"));
    let status = |path: String| {
        let r = get(server.http, &path);
        (r.status, r.header("x-deny-reason").map(str::to_owned))
    };
    assert_eq!(status(format!("/cam/index.m3u8?token={good}")).0, 200);
    let other_ip = securetoken(
        "cam",
        "192.0.2.9",
        now - 10,
        now + 600,
        "s3cretkey",
        "a1b2c3",
    );
    assert_eq!(status(format!("/cam/index.m3u8?token={other_ip}")).0, 403);
    let expired = securetoken(
        "cam",
        "127.0.0.1",
        now - 600,
        now - 10,
        "s3cretkey",
        "a1b2c3",
    );
    assert_eq!(
        status(format!("/cam/index.m3u8?token={expired}")),
        (403, Some("token_expired".into()))
    );
    let wrong_key = securetoken("cam", "127.0.0.1", now - 10, now + 600, "other", "a1b2c3");
    assert_eq!(
        status(format!("/cam/index.m3u8?token={wrong_key}")),
        (403, Some("bad_signature".into()))
    );
    let wrong_stream = securetoken(
        "cam2",
        "127.0.0.1",
        now - 10,
        now + 600,
        "s3cretkey",
        "a1b2c3",
    );
    assert_eq!(
        status(format!("/cam/index.m3u8?token={wrong_stream}")).0,
        403
    );
    // no_check_ip: the site hashes the literal `no_check_ip`.
    let any_ip = securetoken(
        "cam2",
        "no_check_ip",
        now - 10,
        now + 600,
        "s3cretkey",
        "zz9",
    );
    assert_eq!(status(format!("/cam2/index.m3u8?token={any_ip}")).0, 200);
}
