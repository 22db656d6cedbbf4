//! TLS listeners against the real binary: a test certificate (ECDSA P-256, made by the
//! test with openssl), then curl over HTTPS with `--cacert` (the HLS chain with the token;
//! 403 without), ffprobe over HTTPS with verification, RTMPS and RTSPS (the fake source's
//! streams; refused without the token), garbage on a TLS port that leaves other viewers
//! alone, and `--check` naming unreadable or mismatched certificate files by file:line:col.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A certificate for `localhost` in `dir`.
fn localhost_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    make_certificate(dir, name, "localhost")
}

const API_KEY: &str = "tls-test-api-key-0123";

struct TlsPorts {
    http: u16,
    https: u16,
    rtmps: u16,
    rtsps: u16,
}

fn start() -> (Server, TlsPorts, PathBuf) {
    let dir = temp_dir();
    let (cert, key) = localhost_certificate(&dir, "edge");
    let ports = TlsPorts {
        http: free_port(),
        https: free_port(),
        rtmps: free_port(),
        rtsps: free_port(),
    };
    let config = format!(
        "http 127.0.0.1:{};\nhttps 127.0.0.1:{};\nrtmps 127.0.0.1:{};\nrtsps 127.0.0.1:{};\n\
         ssl_certificate {};\nssl_certificate_key {};\napi_key {API_KEY};\n\
         auth_backend play-auth {{\n    allow token test1;\n}}\n\
         stream auth-check {{\n    input fake://fake;\n    on_play auth://play-auth;\n}}\n",
        ports.http,
        ports.https,
        ports.rtmps,
        ports.rtsps,
        cert.display(),
        key.display()
    );
    let server = Server::start(&config, ports.http);
    server.wait_ok("/auth-check/tracks-v1a1/mono.m3u8?token=test1");
    (server, ports, cert)
}

/// curl over HTTPS, verifying the server with `ca`: (status, body).
fn curl(ca: &Path, url: &str) -> (String, String) {
    curl_with(ca, url, &[])
}

fn curl_with(ca: &Path, url: &str, options: &[&str]) -> (String, String) {
    let out = run_bounded(
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "20",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(ca)
            .args(options)
            .arg(url),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", ""));
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (status.to_owned(), body.to_owned())
}

#[test]
fn https_rtmps_and_rtsps_play_with_the_token_and_refuse_without() {
    let (server, ports, ca) = start();
    let base = format!("https://localhost:{}", ports.https);
    // The HLS chain over HTTPS: master, media playlist, a segment, token on every URI.
    let (status, master) = curl(&ca, &format!("{base}/auth-check/index.m3u8?token=test1"));
    assert_eq!(status, "200", "{master}");
    let variant = master
        .lines()
        .find(|l| l.ends_with("token=test1"))
        .expect("variant");
    let (status, media) = curl(&ca, &format!("{base}/auth-check/{variant}"));
    assert_eq!(status, "200", "{media}");
    let segment = media
        .lines()
        .find(|l| l.contains(".ts?token="))
        .expect("segment");
    let (status, _) = curl(&ca, &format!("{base}/auth-check/tracks-v1a1/{segment}"));
    assert_eq!(status, "200");
    let (status, body) = curl(&ca, &format!("{base}/auth-check/index.m3u8"));
    assert_eq!(
        (status.as_str(), body.trim()),
        ("403", "403 Forbidden: backend_denied")
    );

    let ca_file = ca.display().to_string();
    let https = format!("{base}/auth-check/index.m3u8?token=test1");
    assert_probe_shows_fake_source(&["-tls_verify", "1", "-ca_file", &ca_file], &https);
    let rtmps = format!("rtmps://localhost:{}/static/auth-check", ports.rtmps);
    assert_probe_shows_fake_source(&[], &format!("{rtmps}?token=test1"));
    let rtsps = format!("rtsps://localhost:{}/auth-check", ports.rtsps);
    assert_probe_shows_fake_source(&[], &format!("{rtsps}?token=test1"));
    for refused in [rtmps, rtsps] {
        let out = run_bounded(tool("ffprobe").arg(&refused), Duration::from_secs(60));
        assert!(!out.status.success(), "{refused} played without a token");
    }
    let log = server.log_text();
    assert!(!log.contains("test1"), "a token reached the log");
}

#[test]
fn garbage_on_a_tls_port_closes_that_connection_only() {
    let (_server, ports, ca) = start();
    for port in [ports.https, ports.rtmps, ports.rtsps] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut buf = [0u8; 256];
        // rustls answers a non-TLS client with an alert at most, then the server closes.
        let mut total = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("port {port} kept a garbage connection open: {e}"),
            }
        }
        assert!(
            total < 64,
            "port {port} answered garbage with {total} bytes"
        );
    }
    // Silent clients are closed after `handshake_timeout` (5 s by default), long before
    // this read's 9 s.
    let silent: Vec<TcpStream> = [ports.https, ports.rtmps, ports.rtsps]
        .iter()
        .map(|&port| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(9))).unwrap();
        let mut buf = [0u8; 16];
        assert!(
            matches!(s.read(&mut buf), Ok(0)),
            "a silent TLS connection was kept past handshake_timeout"
        );
    }
    let url = format!(
        "https://localhost:{}/auth-check/index.m3u8?token=test1",
        ports.https
    );
    assert_eq!(curl(&ca, &url).0, "200");
    // Counted: the garbage as failed handshakes, the silent ones as timed out, curl's as
    // done.
    let metrics = api_call(ports.http, API_KEY, "GET", "/metrics").text();
    let count = |outcome: &str| {
        let line = format!("tessera_tls_handshakes_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        count("failed") >= 3 && count("timed_out") >= 3 && count("done") >= 1,
        "{metrics}"
    );
}

/// `tessera --check` on `config` plus a stream at its end (a config without one is refused
/// before its certificates are read; the lines the test names stay where they are).
fn check(config: &str, dir: &Path) -> (i32, String) {
    let path = dir.join("tessera.conf");
    std::fs::write(
        &path,
        format!("{config}stream a {{ input fake://fake; }}\n"),
    )
    .expect("config");
    let out = Command::new(BIN)
        .arg("--check")
        .arg(&path)
        .output()
        .expect("run tessera");
    let err = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn certificate_files_are_checked_with_the_config() {
    let dir = temp_dir();
    // Flussonic's file names beside the config are the default.
    let listener = "https 127.0.0.1:8443;\n";
    let (code, err) = check(listener, &dir);
    assert_eq!(code, 1);
    assert!(
        err.contains("FILE:1:1:") && err.contains("streamer.crt"),
        "{err}"
    );
    localhost_certificate(&dir, "streamer");
    assert_eq!(check(listener, &dir), (0, String::new()));
    // A key that is not the certificate's.
    let (_, other_key) = localhost_certificate(&dir, "other");
    let mismatched = format!("{listener}ssl_certificate_key {};\n", other_key.display());
    let (code, err) = check(&mismatched, &dir);
    assert_eq!(code, 1);
    assert!(
        err.contains("FILE:2:21:") && err.contains("do not make a TLS identity"),
        "{err}"
    );
    let missing = format!("{listener}ssl_certificate nope.crt;\n");
    let (code, err) = check(&missing, &dir);
    assert_eq!(code, 1);
    assert!(
        err.contains("FILE:2:17:") && err.contains("nope.crt"),
        "{err}"
    );
}

#[test]
fn sni_picks_the_certificate_of_the_name_asked_for() {
    let dir = temp_dir();
    let (default_cert, default_key) = localhost_certificate(&dir, "default");
    let (a_cert, a_key) = make_certificate(&dir, "a", "a.example");
    let (b_cert, b_key) = make_certificate(&dir, "b", "b.example");
    let (http, https) = (free_port(), free_port());
    let config = format!(
        "http 127.0.0.1:{http};\nhttps 127.0.0.1:{https};\n\
         ssl_certificate {};\nssl_certificate_key {};\n\
         server_name a.example {{\n    ssl_certificate {};\n    ssl_certificate_key {};\n}}\n\
         server_name B.example {{\n    ssl_certificate {};\n    ssl_certificate_key {};\n}}\n\
         stream open {{\n    input fake://fake;\n}}\n",
        default_cert.display(),
        default_key.display(),
        a_cert.display(),
        a_key.display(),
        b_cert.display(),
        b_key.display()
    );
    let server = Server::start(&config, http);
    server.wait_ok("/open/index.m3u8");
    let url = |host: &str| format!("https://{host}:{https}/open/index.m3u8");
    let resolve = |host: &str| format!("{host}:{https}:127.0.0.1");
    for (host, ca) in [("a.example", &a_cert), ("b.example", &b_cert)] {
        let (status, _) = curl_with(ca, &url(host), &["--resolve", &resolve(host)]);
        assert_eq!(status, "200", "{host}");
    }
    assert_eq!(curl(&default_cert, &url("localhost")).0, "200");
    // a.example's certificate is not the one for b.example: verification fails.
    let out = run_bounded(
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&a_cert)
            .args(["--resolve", &resolve("b.example"), &url("b.example")]),
        Duration::from_secs(30),
    );
    assert!(
        !out.status.success(),
        "b.example verified with a.example's certificate"
    );
}

#[test]
fn the_api_answers_only_on_its_admin_listener_and_allowed_addresses() {
    let key = "admin-listener-api-key";
    let (http, admin, closed_admin) = (free_port(), free_port(), free_port());
    let config = format!(
        "http 127.0.0.1:{http};\nadmin_http 127.0.0.1:{admin};\napi_key {key};\n\
         api_allowed_from 127.0.0.0/8 ::1;\nstream open {{\n    input fake://fake;\n}}\n"
    );
    let _server = Server::start(&config, http);
    let sessions = "/streamer/api/v3/sessions";
    // The public port does not know the API; the admin port answers it.
    assert_eq!(api_call(http, key, "GET", sessions).status, 404);
    assert_eq!(api_call(http, key, "GET", "/metrics").status, 404);
    assert_eq!(api_call(admin, key, "GET", sessions).status, 200);
    assert_eq!(api_call(admin, key, "GET", "/metrics").status, 200);
    assert_eq!(
        api_call(admin, "wrong-key-wrong-key", "GET", sessions).status,
        401
    );
    // Playback stays on the public port.
    assert_eq!(get(http, "/open/index.m3u8").status, 200);

    // An address outside `api_allowed_from` is refused before the key is looked at.
    let http2 = free_port();
    let config = format!(
        "http 127.0.0.1:{http2};\nadmin_http 127.0.0.1:{closed_admin};\napi_key {key};\n\
         api_allowed_from 10.0.0.0/8;\nstream open {{\n    input fake://fake;\n}}\n"
    );
    let _closed = Server::start(&config, http2);
    let refused = api_call(closed_admin, key, "GET", sessions);
    assert_eq!(refused.status, 403, "{}", refused.text());
}
