//! The edge role against real processes: a tessera origin (a `fake://` stream behind its
//! own token) and a tessera edge pulling it over RTMP or HTTP MPEG-TS, played by ffprobe
//! and ffmpeg from the edge with the edge's token. The origin's log counts its upstream
//! connections (one `rtmp play started` / one `/s/mpegts` request per pull).

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const MEDIA: &str = "/s/tracks-v1a1/mono.m3u8?token=edge1";

/// An origin serving stream `s` (fake) to token `origin1` only.
fn origin(ports: &Listeners) -> Server {
    let config = format!(
        "{}auth_backend o {{ allow token origin1; }}\n\
         stream s {{ input fake://fake; on_play auth://o; }}\n",
        ports.config()
    );
    Server::start(&config, ports.http)
}

/// An edge serving stream `s` from `inputs` to token `edge1` only, with `extra` options.
fn edge(ports: &Listeners, inputs: &[String], extra: &str) -> Server {
    let inputs: String = inputs.iter().map(|i| format!("input {i}; ")).collect();
    let config = format!(
        "{}auth_backend e {{ allow token edge1; }}\n\
         stream s {{ {inputs}{extra} on_play auth://e; }}\n",
        ports.config()
    );
    Server::start(&config, ports.http)
}

fn rtmp_input(origin: &Listeners) -> String {
    format!("rtmp://127.0.0.1:{}/live/s?token=origin1", origin.rtmp)
}

/// The edge's media playlist's last segment name (it moves while the pull runs).
fn last_segment(edge: &Server) -> Option<String> {
    let r = get(edge.http, MEDIA);
    (r.status == 200)
        .then(|| {
            r.text()
                .lines()
                .rev()
                .find(|l| l.contains(".ts"))
                .map(str::to_owned)
        })
        .flatten()
}

fn plays_on_every_output(edge: &Server, edge_ports: &Listeners) {
    edge.wait_ok(MEDIA);
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
    let rtmp = format!("rtmp://127.0.0.1:{}/live/s?token=edge1", edge_ports.rtmp);
    assert_probe_shows_fake_source(&[], &rtmp);
    assert_probe_shows_fake_source(&[], &edge.url("/s/mpegts?token=edge1"));
    assert_decodes_cleanly(&[], &edge.url("/s/mpegts?token=edge1"), 4, &[]);
}

#[test]
fn an_edge_pulls_over_rtmp_once_for_every_viewer_and_never_forwards_their_token() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let origin = origin(&o);
    let edge = edge(&e, &[rtmp_input(&o)], "");
    plays_on_every_output(&edge, &e);
    // Several viewers on both shards (HLS, RTMP, TS; the kernel spreads connections).
    for _ in 0..3 {
        assert_eq!(get(edge.http, MEDIA).status, 200);
    }
    assert_eq!(
        count(&origin, "rtmp play started stream=s"),
        1,
        "one upstream connection; origin log:\n{}",
        origin.log_text()
    );
    assert_eq!(get(edge.http, "/s/index.m3u8?token=origin1").status, 403);
    assert!(
        !edge.log_text().contains("origin1"),
        "the origin's token is never logged"
    );
}

#[test]
fn an_edge_pulls_http_mpegts() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let origin = origin(&o);
    let input = format!("tshttp://127.0.0.1:{}/s/mpegts?token=origin1", o.http);
    let edge = edge(&e, &[input], "");
    plays_on_every_output(&edge, &e);
    // The edge is the origin's only client: one session, one upstream request.
    assert_eq!(
        count(&origin, "session opened"),
        1,
        "origin log:\n{}",
        origin.log_text()
    );
}

#[test]
fn an_edge_survives_an_origin_restart() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let mut first = origin(&o);
    let edge = edge(&e, &[rtmp_input(&o)], "source_timeout 2;");
    edge.wait_ok(MEDIA);
    kill_origin_until_the_edge_notices(&mut first, &edge);
    let before = last_segment(&edge);
    let second = origin(&o);
    wait_for(
        "the edge reconnecting",
        || count(&second, "rtmp play started stream=s") == 1,
        &[&edge, &second],
    );
    wait_for(
        "new segments at the edge",
        || last_segment(&edge) != before,
        &[&edge],
    );
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
}

#[test]
fn an_edge_fails_over_to_the_backup_and_returns_to_the_primary() {
    let (a, b, e) = (Listeners::free(), Listeners::free(), Listeners::free());
    let mut primary = origin(&a);
    let backup = origin(&b);
    let edge = edge(&e, &[rtmp_input(&a), rtmp_input(&b)], "source_timeout 2;");
    edge.wait_ok(MEDIA);
    assert_eq!(count(&backup, "rtmp play started stream=s"), 0);
    let _ = primary.child().kill();
    let _ = primary.child().wait();
    wait_for(
        "the failover to the backup",
        || count(&backup, "rtmp play started stream=s") == 1,
        &[&edge, &backup],
    );
    let before = last_segment(&edge);
    wait_for(
        "segments from the backup",
        || last_segment(&edge) != before,
        &[&edge],
    );
    assert!(
        !edge.log_text().contains("every source failed"),
        "the stream never ended"
    );
    let back = origin(&a);
    wait_for(
        "the return to the primary",
        || edge.log_text().contains("is back, returning to it"),
        &[&edge, &back],
    );
    wait_for(
        "the primary playing the edge again",
        || count(&back, "rtmp play started stream=s") >= 1,
        &[&edge, &back],
    );
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
}

#[test]
fn an_on_demand_pull_starts_with_the_first_viewer_and_stops_after_the_last() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let origin = origin(&o);
    let edge = edge(&e, &[rtmp_input(&o)], "static false; clients_timeout 2;");
    // Nothing is pulled before a viewer asks (the edge is up: it answers HTTP).
    assert_eq!(get(edge.http, "/s/index.m3u8?token=nope").status, 403);
    assert_eq!(count(&origin, "rtmp play started stream=s"), 0);
    // The first viewer, over RTMP: its play waits for the pull, then plays.
    let rtmp = format!("rtmp://127.0.0.1:{}/live/s?token=edge1", e.rtmp);
    assert_probe_shows_fake_source(&[], &rtmp);
    assert_eq!(count(&origin, "rtmp play started stream=s"), 1);
    // It left: the pull stops after clients_timeout, and the origin's session closes.
    wait_for(
        "the idle pull stopping",
        || edge.log_text().contains("on-demand pull stopping"),
        &[&edge],
    );
    wait_for(
        "the origin's session closing",
        || count(&origin, "session closed") >= 1,
        &[&origin],
    );
    // The next viewer starts it again.
    assert_probe_shows_fake_source(&[], &rtmp);
    wait_for(
        "a second pull",
        || count(&origin, "rtmp play started stream=s") == 2,
        &[&edge, &origin],
    );
}

#[test]
fn a_first_hls_request_waits_for_the_on_demand_pull_instead_of_503() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let origin = origin(&o);
    let edge = edge(&e, &[rtmp_input(&o)], "static false;");
    assert_eq!(get(edge.http, "/s/index.m3u8?token=nope").status, 403);
    assert_eq!(count(&origin, "rtmp play started stream=s"), 0);
    // ffmpeg gives up at once on a 503: the playlist request waits for the first segment.
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
    assert_eq!(get(edge.http, MEDIA).status, 200);
    assert_eq!(count(&origin, "rtmp play started stream=s"), 1);
}

/// `first_segment_timeout` bounds that wait: with an origin that never answers and a 1 s
/// bound, the first request gets its 503 well inside curl's 6 s (the default 10 s would
/// not).
#[test]
fn first_segment_timeout_bounds_the_first_request_s_wait() {
    let (dead, e) = (Listeners::free(), Listeners::free());
    let input = format!("rtmp://127.0.0.1:{}/live/s", dead.rtmp);
    let edge = edge(&e, &[input], "static false; first_segment_timeout 1;");
    let out = run_bounded(
        Command::new("curl").args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "6",
            &edge.url(MEDIA),
        ]),
        Duration::from_secs(20),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "503",
        "{}",
        edge.log_text()
    );
}

/// nginx with its RTMP module (Debian's libnginx-mod-rtmp), as a third-party RTMP origin
/// an ffmpeg publisher feeds; killed when dropped.
struct NginxRtmp {
    child: std::process::Child,
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_rtmp(port: u16) -> NginxRtmp {
    let dir = temp_dir();
    let conf = dir.join("nginx.conf");
    let text = format!(
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
         daemon off; master_process off; pid {dir}/nginx.pid; error_log {dir}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
        dir = dir.display()
    );
    std::fs::write(&conf, text).expect("nginx config");
    let child = std::process::Command::new("nginx")
        .args([
            "-p",
            &dir.display().to_string(),
            "-c",
            &conf.display().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx (tools/test.sh installs nginx and libnginx-mod-rtmp)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    NginxRtmp { child }
}

#[test]
fn an_edge_pulls_from_nginx_rtmp() {
    let nginx_port = free_port();
    let _nginx = nginx_rtmp(nginx_port);
    let mut publisher = publish_cmd(nginx_port, "/live/cam", 60)
        .spawn()
        .expect("ffmpeg publisher");
    let e = Listeners::free();
    let input = format!("rtmp://127.0.0.1:{nginx_port}/live/cam");
    let edge = edge(&e, &[input], "");
    edge.wait_ok(MEDIA);
    let out = run_bounded(
        tool("ffprobe").arg(edge.url("/s/index.m3u8?token=edge1")),
        Duration::from_secs(60),
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed:\n{err}");
    for needle in ["Video: h264", "320x240", "Audio: aac", "48000 Hz"] {
        assert!(err.contains(needle), "ffprobe lacks {needle}:\n{err}");
    }
}
