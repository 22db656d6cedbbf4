//! The player page in a real browser: headless Chromium (Debian's `chromium`, or
//! `$TESSERA_CHROMIUM`) driven by playwright-core (tools/player/install.sh) through
//! tests/browser/play.mjs opens `/NAME/embed.html?token=T&format=F` and checks that the
//! video's `currentTime` advances; without the token the server answers 403 and the player
//! reports the error. tools/test.sh installs Chromium and the npm packages; when they are
//! missing these tests fail and say what to install, they never pass silently.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Longest one browser run may take (launch, page, a few seconds of playback).
const BROWSER_RUN_LIMIT: Duration = Duration::from_secs(120);
/// Seconds of playback that prove the stream plays.
const PLAY_SECONDS: &str = "3";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn node_modules() -> PathBuf {
    repo().join("tools/player/node_modules")
}

/// Asserts the browser test can run here, naming what is missing.
fn assert_browser_installed() {
    let chromium = std::env::var("TESSERA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: run tools/test.sh as root (it runs apt-get install chromium), \
         or set TESSERA_CHROMIUM"
    );
    assert!(
        node_modules().join("playwright-core/package.json").exists()
            && node_modules().join("hls.js/dist/hls.min.js").exists(),
        "tools/player/node_modules is not installed: run tools/player/install.sh (npm ci)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not installed: run tools/test.sh as root (it installs nodejs and npm)"
    );
}

/// The demo config with the player scripts served from tools/player/node_modules.
fn config(port: u16) -> String {
    format!(
        "{}player_assets \"{}\";\n",
        demo_config(port),
        node_modules().display()
    )
}

/// A path that answers 200 once the format has something to play.
fn ready_path(format: &str) -> &'static str {
    match format {
        "dash" => "/auth-check/index.mpd?token=test1",
        "mss" => "/auth-check.isml/manifest?token=test1",
        "llhls" => "/auth-check/index.ll.m3u8?token=test1",
        _ => "/auth-check/tracks-v1a1/mono.m3u8?token=test1",
    }
}

/// Runs play.mjs on the player page; returns what it printed, asserting it succeeded.
fn browse(server: &Server, query: &str, expect: &str) -> String {
    let url = server.url(&format!("/auth-check/embed.html?{query}"));
    browse_url(server, &url, expect)
}

/// Runs play.mjs on `url`.
fn browse_url(server: &Server, url: &str, expect: &str) -> String {
    let script = repo().join("tests/browser/play.mjs");
    let out = run_bounded(
        Command::new("node")
            .arg(&script)
            .arg(url)
            .arg(expect)
            .arg(PLAY_SECONDS),
        BROWSER_RUN_LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{url} ({expect}) failed:\n{stdout}\n{stderr}\nserver log tail:\n{}",
        tail(&server.log_text(), 40)
    );
    stdout
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Video fragments an MSS manifest must list before dash.js can start: it never reloads an
/// MSS manifest and derives its live delay and buffer from that window (a window under about
/// 8 s gives it a negative buffer target, and it stalls). A stream has them ~8 s after start.
const MSS_FRAGMENTS_FOR_DASH_JS: usize = 4;

/// Waits until the MSS manifest lists enough fragments for dash.js.
fn wait_for_mss_window(server: &Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let manifest = get(server.http, ready_path("mss")).text();
        let video = manifest.split("Type=\"audio\"").next().unwrap_or_default();
        if video.matches("<c t=").count() >= MSS_FRAGMENTS_FOR_DASH_JS {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "MSS window never grew:\n{manifest}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The page plays `format` with the token.
fn plays(format: &str) {
    assert_browser_installed();
    let port = free_port();
    let server = Server::start(&config(port), port);
    server.wait_ok(ready_path(format));
    if format == "mss" {
        wait_for_mss_window(&server);
    }
    let seen = browse(&server, &format!("token=test1&format={format}"), "play");
    assert!(seen.contains("\"ok\":true"), "{seen}");
    // What the player ended with, latency behind live included (for the notes).
    if let Some(i) = seen.find("\"last\"") {
        eprintln!("{format}: {}", &seen[i..(i + 240).min(seen.len())]);
    }
}

#[test]
fn hls_plays_in_chromium() {
    plays("hls");
}

/// The page and every manifest and segment over HTTPS (a portal on an https page must not
/// load `http://` media: mixed content). The test's own certificate: Chromium is told to
/// accept it in play.mjs.
#[test]
fn hls_plays_over_https_in_chromium() {
    assert_browser_installed();
    let dir = temp_dir();
    let (cert, key) = make_certificate(&dir, "edge", "localhost");
    let (port, https) = (free_port(), free_port());
    let tls = format!(
        "https 127.0.0.1:{https};\nssl_certificate {};\nssl_certificate_key {};\n",
        cert.display(),
        key.display()
    );
    let server = Server::start(&format!("{}{tls}", config(port)), port);
    server.wait_ok(ready_path("hls"));
    let url = format!("https://localhost:{https}/auth-check/embed.html?token=test1&format=hls");
    let seen = browse_url(&server, &url, "play");
    assert!(seen.contains("\"ok\":true"), "{seen}");
    assert!(!seen.contains("http://"), "a request left HTTPS: {seen}");
}

/// hls.js in low-latency mode: blocking playlist reloads with `_HLS_msn`/`_HLS_part` after
/// the token, parts and preload hints, the real-client proof of LL-HLS.
#[test]
fn llhls_plays_in_chromium() {
    plays("llhls");
}

#[test]
fn dash_plays_in_chromium() {
    plays("dash");
}

/// dash.js plays MSS with its MSS module (dash.mss.min.js): the real-client proof of the
/// manifest and of the fragments' tfxd/tfrf boxes.
#[test]
fn mss_plays_in_chromium() {
    plays("mss");
}

#[test]
fn without_the_token_the_player_reports_the_refusal() {
    assert_browser_installed();
    let port = free_port();
    let server = Server::start(&config(port), port);
    for format in ["hls", "llhls", "dash", "mss"] {
        server.wait_ok(ready_path(format));
        let seen = browse(&server, &format!("format={format}"), "refused");
        assert!(seen.contains("\"ok\":true"), "{format}: {seen}");
    }
}

/// Without the browser: the page and the scripts as any HTTP client sees them.
#[test]
fn the_page_escapes_its_input_and_missing_scripts_are_a_clear_404() {
    let port = free_port();
    // No player_assets: the scripts are not installed on this server.
    let server = Server::start(&demo_config(port), port);
    let page = get(
        server.http,
        "/auth-check/embed.html?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E&format=dash",
    );
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text();
    assert!(!html.contains("alert(1)</script>"), "{html}");
    assert!(
        html.contains("data-src=\"index.mpd?token=%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E\""),
        "{html}"
    );
    assert_eq!(
        get(server.http, "/auth-check/embed.html?format=flv").status,
        400
    );
    assert_eq!(get(server.http, "/nope/embed.html").status, 404);

    let embed = get(server.http, "/_player/embed.js");
    assert_eq!(embed.status, 200);
    assert!(embed.text().contains("tesseraPlayer"));
    let missing = get(server.http, "/_player/hls.min.js");
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("tools/player/install.sh"),
        "{}",
        missing.text()
    );
    assert_eq!(get(server.http, "/_player/../Cargo.toml").status, 400);
    assert_eq!(get(server.http, "/_player/Cargo.toml").status, 404);
}

/// The API key of the WebRTC revocation test.
const API_KEY: &str = "webrtc-test-api-key-0001";

/// The demo config with a `webrtc` port range (one port per shard) and the API.
fn webrtc_config(port: u16) -> String {
    format!(
        "{}webrtc 127.0.0.1:{};\napi_key {API_KEY};\n",
        config(port),
        free_port()
    )
}

/// A server with WebRTC whose stream is playing, once the browser test can run.
fn webrtc_server() -> Server {
    assert_browser_installed();
    let port = free_port();
    let server = Server::start(&webrtc_config(port), port);
    server.wait_ok(ready_path("hls"));
    server
}

/// Runs play.mjs's WebRTC check on the page: `revoke`, an API path posted once frames flow.
fn browse_webrtc(server: &Server, query: &str, seconds: &str, revoke: Option<&str>) -> String {
    let url = server.url(&format!("/auth-check/embed.html?{query}"));
    let script = repo().join("tests/browser/play.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(&script).arg(&url).arg("webrtc").arg(seconds);
    if let Some(path) = revoke {
        cmd.arg(server.url(path)).env("TESSERA_API_KEY", API_KEY);
    }
    let out = run_bounded(&mut cmd, BROWSER_RUN_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{url} (webrtc) failed:\n{stdout}\n{}\nserver log tail:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&server.log_text(), 40)
    );
    stdout
}

/// WHEP in Chromium: the page's WHEP client posts its offer with the token, ICE and DTLS
/// come up against the shard's port, the video frames decoded (getStats) rise over 10 s,
/// and the fake source's audio, transcoded to Opus, is received and decoded. Prints what
/// the browser measured (time from POST to the first decoded frame, its jitter buffer
/// delay and RTT) for the notes. `/metrics` then shows the bytes sent and the RTTs the
/// browser's receiver reports gave.
#[test]
fn webrtc_plays_in_chromium() {
    let server = webrtc_server();
    let seen = browse_webrtc(&server, "token=test1&format=webrtc", "10", None);
    assert!(seen.contains("\"ok\":true"), "{seen}");
    assert!(seen.contains("\"connection\":\"connected\""), "{seen}");
    eprintln!("webrtc: {seen}");
    assert!(
        server.log_text().contains("proto=webrtc"),
        "no webrtc session opened"
    );
    let metrics = api_call(server.http, API_KEY, "GET", "/metrics").text();
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} ")));
        let line = line.unwrap_or_else(|| panic!("no {name}:\n{metrics}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    assert!(
        value("tessera_webrtc_sent_bytes_total") > 100_000.0,
        "{metrics}"
    );
    assert!(value("tessera_webrtc_rtt_seconds_count") > 0.0, "{metrics}");
    assert!(value("tessera_webrtc_rtt_seconds_sum") >= 0.0, "{metrics}");
}

#[test]
fn webrtc_without_the_token_the_page_reports_403() {
    let server = webrtc_server();
    let seen = browse(&server, "format=webrtc", "refused");
    assert!(seen.contains("\"ok\":true"), "{seen}");
    assert!(seen.contains("403 /auth-check/whep"), "{seen}");
}

/// Revoking the viewer's token (the operator API) ends its WebRTC session at the driver's
/// next re-check: the browser's decoded frames stop (play.mjs prints after how long).
#[test]
fn a_revoked_webrtc_viewer_stops() {
    let server = webrtc_server();
    let revoke = "/streamer/api/v3/revoke?token=test1";
    let seen = browse_webrtc(&server, "token=test1&format=webrtc", "2", Some(revoke));
    assert!(seen.contains("\"ok\":true"), "{seen}");
    eprintln!("webrtc revoked: {seen}");
    wait_log(&server, "webrtc play ended");
}
