//! Reload while viewers watch (SIGHUP and `POST /streamer/api/v3/config/reload`): a broken
//! config is refused with its file:line:col and the running one kept; a listener change is
//! refused by name; a valid config adds, removes and keeps streams, applies new rules to
//! running connections and cached decisions, and serves renewed certificates, all without
//! dropping the viewers of streams that did not change. Real players: ffmpeg over RTMP,
//! curl over HTTP(S).

mod common;
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const API_KEY: &str = "reload-test-api-key-01";

fn base(ports: &Listeners, tokens: &str, streams: &str) -> String {
    format!(
        "{}api_key {API_KEY};\n\
         auth_backend viewers {{\n{tokens}}}\n\
         stream keep {{\n    input fake://fake;\n    on_play auth://viewers;\n    segment_duration 1;\n}}\n\
         {streams}",
        ports.config()
    )
}

const TWO_TOKENS: &str = "    allow token one;\n    allow token two;\n";
const GONE: &str = "stream gone {\n    input fake://fake;\n    segment_duration 1;\n}\n";
const NEW: &str = "stream new {\n    input fake://fake;\n    segment_duration 1;\n}\n";

/// Starts the server on `config`, written where the test can rewrite it.
fn start(config: &str, http: u16) -> (Server, std::path::PathBuf) {
    let path = write_config(config);
    let mut cmd = Command::new(BIN);
    cmd.args(["--shards", "2"]).arg(&path);
    (Server::spawn(cmd, http), path)
}

fn reload_by_api(http: u16) -> Response {
    api_call(http, API_KEY, "POST", "/streamer/api/v3/config/reload")
}

fn hup(server: &Server) {
    let ok = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// Waits (bounded) until the server's log has `needle` `n` times.
fn wait_log(server: &Server, needle: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.log_text();
        if log.matches(needle).count() >= n {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "never logged {needle:?} {n} times:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rtmp_player(rtmp: u16, path: &str, seconds: u32) -> Child {
    tool("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(format!("rtmp://127.0.0.1:{rtmp}{path}"))
        .args(["-t", &seconds.to_string(), "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

/// Whether `child` exits within `limit` (then with its status).
fn exits_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits until `filter`'s sessions appear in the API (a player is playing).
fn wait_playing(http: u16, filter: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = api_call(
            http,
            API_KEY,
            "GET",
            &format!("/streamer/api/v3/sessions?{filter}"),
        )
        .text();
        if text.contains("\"id\":") {
            return;
        }
        assert!(Instant::now() < deadline, "no session for {filter}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_broken_config_or_a_listener_change_is_refused_and_the_running_one_kept() {
    let ports = Listeners::free();
    let good = base(&ports, TWO_TOKENS, "");
    let (mut server, path) = start(&good, ports.http);
    server.wait_ok("/keep/index.m3u8?token=one");

    // A typo on line 3: refused with the file, line and column; still serving.
    let broken = good.replacen("api_key", "api_kye", 1);
    std::fs::write(&path, &broken).unwrap();
    hup(&server);
    let log = wait_log(&server, "config reload refused", 1);
    let expected = format!("{}:4:1: error: unknown directive `api_kye`", path.display());
    assert!(log.contains(&expected), "{expected}:\n{log}");
    assert_eq!(get(ports.http, "/keep/index.m3u8?token=one").status, 200);

    // The API's reload answers the same errors, and 400.
    let answer = reload_by_api(ports.http);
    // The broken file has no api_key any more, but the running config's key still opens the API.
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.text().contains(":4:1: error: unknown directive"));

    // Another listener: refused by name, with what to do instead.
    let moved = good.replace(
        &format!("http 127.0.0.1:{};", ports.http),
        &format!(
            "http 127.0.0.1:{};\nhttp 127.0.0.1:{};",
            ports.http,
            free_port()
        ),
    );
    std::fs::write(&path, &moved).unwrap();
    let answer = reload_by_api(ports.http);
    assert_eq!(answer.status, 400);
    assert!(
        answer.text().contains("listeners added: http 127.0.0.1:")
            && answer.text().contains("the running configuration is kept"),
        "{}",
        answer.text()
    );
    assert_eq!(get(ports.http, "/keep/index.m3u8?token=two").status, 200);
    assert!(
        server.child().try_wait().unwrap().is_none(),
        "the server runs on"
    );
}

#[test]
fn a_reload_applies_streams_and_rules_without_dropping_unchanged_viewers() {
    let ports = Listeners::free();
    let (server, path) = start(&base(&ports, TWO_TOKENS, GONE), ports.http);
    server.wait_ok("/keep/index.m3u8?token=one");
    server.wait_ok("/gone/index.m3u8");
    assert_eq!(get(ports.http, "/keep/index.m3u8?token=two").status, 200);

    // Three RTMP players: one stays allowed, one loses its token, one loses its stream.
    let mut stays = rtmp_player(ports.rtmp, "/live/keep?token=one", 12);
    let mut revoked = rtmp_player(ports.rtmp, "/live/keep?token=two", 60);
    let mut orphan = rtmp_player(ports.rtmp, "/live/gone", 60);
    wait_playing(ports.http, "name=gone");
    wait_playing(ports.http, "proto=rtmp&name=keep");
    std::thread::sleep(Duration::from_secs(1));

    std::fs::write(&path, base(&ports, "    allow token one;\n", NEW)).unwrap();
    let answer = reload_by_api(ports.http);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let text = answer.text();
    for part in [
        "streams added [new]",
        "removed [gone]",
        "re-authorized [keep]",
        "auth backends changed [viewers]",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    let log = wait_log(&server, "config reloaded:", 1);
    assert!(
        log.contains("config reloaded: streams added [new]"),
        "{log}"
    );

    // The removed token: refused on HTTP at once, and its RTMP player cut at its next
    // re-check (long before its 60 s).
    assert_eq!(get(ports.http, "/keep/index.m3u8?token=two").status, 403);
    assert!(
        exits_within(&mut revoked, Duration::from_secs(10)).is_some(),
        "the player of a removed token plays on:\n{}",
        server.log_text()
    );
    // The removed stream: 404, and its player ended.
    assert_eq!(get(ports.http, "/gone/index.m3u8").status, 404);
    assert!(
        exits_within(&mut orphan, Duration::from_secs(10)).is_some(),
        "the player of a removed stream plays on"
    );
    // The new stream plays; the unchanged viewer played its 12 s through the reload.
    server.wait_ok("/new/index.m3u8");
    let status = exits_within(&mut stays, Duration::from_secs(40)).expect("ffmpeg ends");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stays.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        status.success() && err.trim().is_empty(),
        "the unchanged viewer was disturbed ({status}):\n{err}"
    );
    assert_eq!(get(ports.http, "/keep/index.m3u8?token=one").status, 200);
}

#[test]
fn a_reload_serves_renewed_certificates_to_new_handshakes() {
    let dir = temp_dir();
    let (http, https) = (free_port(), free_port());
    let (cert, key) = make_certificate(&dir, "live", "localhost");
    let config = format!(
        "http 127.0.0.1:{http};\nhttps 127.0.0.1:{https};\n\
         ssl_certificate {};\nssl_certificate_key {};\n\
         stream open {{\n    input fake://fake;\n    segment_duration 1;\n}}\n",
        cert.display(),
        key.display()
    );
    let (server, _path) = start(&config, http);
    server.wait_ok("/open/index.m3u8");
    let old = dir.join("old.crt");
    std::fs::copy(&cert, &old).unwrap();
    let fetch = |ca: &Path| {
        let out = run_bounded(
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                .arg(ca)
                .arg(format!("https://localhost:{https}/open/index.m3u8"))
                .args(["--resolve", &format!("localhost:{https}:127.0.0.1")]),
            Duration::from_secs(20),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(fetch(&old), "200");

    // The certificate is renewed in place (a new key too), then SIGHUP.
    let renewed = temp_dir();
    let (new_cert, new_key) = make_certificate(&renewed, "live", "localhost");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    hup(&server);
    wait_log(&server, "config reloaded", 1);
    assert_eq!(fetch(&new_cert), "200", "the renewed certificate is served");
    assert_ne!(fetch(&old), "200", "the old one is not");
}
