//! HLS pulls against real processes: a tessera origin (`fake://`, behind its own token)
//! pulled by a tessera edge over `hls://` (TS and fMP4 playlists) and `hlss://` (a test CA
//! the edge trusts through `SSL_CERT_FILE`); ffmpeg's own HLS muxer writing TS and fMP4
//! segments into a directory that `python3 -m http.server` serves (HTTP/1.0: a new
//! connection per request). ffprobe plays each from the edge with the edge's token.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MEDIA: &str = "/s/tracks-v1a1/mono.m3u8?token=edge1";

/// An origin serving stream `s` (fake) to token `origin1` only, with `extra` config lines.
fn origin(ports: &Listeners, extra: &str) -> Server {
    let config = format!(
        "{}{extra}auth_backend o {{ allow token origin1; }}\n\
         stream s {{ input fake://fake; on_play auth://o; }}\n",
        ports.config()
    );
    Server::start(&config, ports.http)
}

fn edge_config(ports: &Listeners, inputs: &[String], extra: &str) -> String {
    let inputs: String = inputs.iter().map(|i| format!("input {i}; ")).collect();
    format!(
        "{}auth_backend e {{ allow token edge1; }}\n\
         stream s {{ {inputs}{extra} on_play auth://e; }}\n",
        ports.config()
    )
}

fn edge(ports: &Listeners, inputs: &[String], extra: &str) -> Server {
    Server::start(&edge_config(ports, inputs, extra), ports.http)
}

fn probe_shows(url: &str, needles: &[&str]) {
    let out = run_bounded(tool("ffprobe").arg(url), Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe {url} failed:\n{err}");
    for needle in needles {
        assert!(err.contains(needle), "ffprobe {url} lacks {needle}:\n{err}");
    }
}

#[test]
fn an_edge_pulls_a_tessera_origin_over_hls_once_for_every_viewer() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let origin = origin(&o, "");
    // The master playlist: the edge picks its variant and keeps its token.
    let input = format!("hls://127.0.0.1:{}/s/index.m3u8?token=origin1", o.http);
    let edge = edge(&e, &[input], "");
    edge.wait_ok(MEDIA);
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
    let rtmp = format!("rtmp://127.0.0.1:{}/live/s?token=edge1", e.rtmp);
    assert_probe_shows_fake_source(&[], &rtmp);
    assert_decodes_cleanly(&[], &edge.url("/s/mpegts?token=edge1"), 4, &[]);
    for _ in 0..3 {
        assert_eq!(get(edge.http, MEDIA).status, 200);
    }
    // One upstream session (the edge's token) whatever the number of edge viewers.
    assert_eq!(count(&origin, "session opened"), 1, "{}", origin.log_text());
    assert_eq!(get(edge.http, "/s/index.m3u8?token=origin1").status, 403);
    assert!(
        !edge.log_text().contains("origin1"),
        "the origin's token is never logged"
    );
    assert!(edge.log_text().contains("pulling the variant of"));
}

#[test]
fn an_edge_pulls_fmp4_hls_from_a_tessera_origin() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let _origin = origin(&o, "");
    let input = format!(
        "http://127.0.0.1:{}/s/index.fmp4.m3u8?token=origin1",
        o.http
    );
    let edge = edge(&e, &[input], "");
    edge.wait_ok(MEDIA);
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
    assert_decodes_cleanly(&[], &edge.url("/s/mpegts?token=edge1"), 4, &[]);
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost, in `dir`: (ca, cert, key).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=tessera test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    run(&ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "leaf.key", "-out", "leaf.csr"]);
    run(&csr);
    std::fs::write(
        p("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.crt",
    ]);
    (p("ca.crt"), p("leaf.crt"), p("leaf.key"))
}

#[test]
fn an_edge_pulls_hlss_trusting_the_ca_of_ssl_cert_file_only() {
    let dir = temp_dir();
    let (ca, cert, key) = test_ca(&dir);
    let (o, e) = (Listeners::free(), Listeners::free());
    let https = free_port();
    let tls = format!(
        "https 127.0.0.1:{https};\nssl_certificate {};\nssl_certificate_key {};\n",
        cert.display(),
        key.display()
    );
    let _origin = origin(&o, &tls);
    // By name: looked up off the shard, each address tried (the certificate names
    // localhost too).
    let input = format!("hlss://localhost:{https}/s/index.m3u8?token=origin1");
    let mut cmd = Command::new(BIN);
    cmd.args(["--shards", "2"])
        .arg(write_config(&edge_config(
            &e,
            std::slice::from_ref(&input),
            "",
        )))
        .env("SSL_CERT_FILE", &ca);
    let edge = Server::spawn(cmd, e.http);
    edge.wait_ok(MEDIA);
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
    // Without the test CA the origin is not trusted: a failed source, said why.
    let e2 = Listeners::free();
    let mut cmd = Command::new(BIN);
    cmd.args(["--shards", "2"])
        .arg(write_config(&edge_config(&e2, &[input], "")))
        .env("SSL_CERT_FILE", &cert);
    let untrusting = Server::spawn(cmd, e2.http);
    wait_for(
        "the untrusted origin failing the source",
        || untrusting.log_text().contains("TLS with localhost"),
        &[&untrusting],
    );
    assert_ne!(get(untrusting.http, MEDIA).status, 200);
}

/// ffmpeg's HLS muxer writing `seconds` of the test publisher into `dir` (1 s segments,
/// 5 in the playlist, old ones deleted); TS, or fMP4 when `fmp4`.
fn ffmpeg_hls(dir: &Path, fmp4: bool, seconds: u32) -> Child {
    let mut cmd = publisher(seconds);
    cmd.args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "5"])
        .args(["-hls_flags", "delete_segments"]);
    if fmp4 {
        cmd.args(["-hls_segment_type", "fmp4"]);
    }
    let child = cmd
        .arg(dir.join("live.m3u8"))
        .stdout(Stdio::null())
        .spawn()
        .expect("ffmpeg HLS muxer");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("live.m3u8").exists() {
        assert!(Instant::now() < deadline, "ffmpeg wrote no playlist");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// `python3 -m http.server` serving `dir` on `port`; killed when dropped.
struct StaticServer(Child);

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn static_server(dir: &Path, port: u16) -> StaticServer {
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "http.server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    StaticServer(child)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pulls_from_ffmpeg(fmp4: bool) {
    let dir = temp_dir();
    let _muxer = Killed(ffmpeg_hls(&dir, fmp4, 120));
    let port = free_port();
    let _files = static_server(&dir, port);
    let e = Listeners::free();
    let edge = edge(&e, &[format!("hls://127.0.0.1:{port}/live.m3u8")], "");
    edge.wait_ok(MEDIA);
    let needles = ["Video: h264", "320x240", "Audio: aac", "48000 Hz"];
    probe_shows(&edge.url("/s/index.m3u8?token=edge1"), &needles);
    assert_decodes_cleanly(&[], &edge.url("/s/mpegts?token=edge1"), 4, &[]);
}

#[test]
fn an_edge_pulls_ts_segments_written_by_ffmpeg() {
    pulls_from_ffmpeg(false);
}

#[test]
fn an_edge_pulls_fmp4_segments_written_by_ffmpeg() {
    pulls_from_ffmpeg(true);
}

/// The ffmpeg origin's muxer is killed: its playlist stops moving, the edge counts the
/// source as failed and fails over to the backup (a tessera origin) without ending the
/// stream; segments keep coming at the edge.
#[test]
fn a_playlist_that_stops_moving_fails_over_to_the_backup() {
    let dir = temp_dir();
    let mut muxer = Killed(ffmpeg_hls(&dir, false, 120));
    let port = free_port();
    let _files = static_server(&dir, port);
    let b = Listeners::free();
    let backup = origin(&b, "");
    let e = Listeners::free();
    let inputs = [
        format!("hls://127.0.0.1:{port}/live.m3u8"),
        format!("hls://127.0.0.1:{}/s/index.m3u8?token=origin1", b.http),
    ];
    let edge = edge(&e, &inputs, "source_timeout 5;");
    edge.wait_ok(MEDIA);
    assert_eq!(count(&backup, "session opened"), 0, "{}", edge.log_text());
    let _ = muxer.0.kill();
    let _ = muxer.0.wait();
    wait_for(
        "the stalled playlist failing the source",
        || edge.log_text().contains("the playlist stopped moving"),
        &[&edge],
    );
    wait_for(
        "the failover to the backup",
        || count(&backup, "session opened") == 1,
        &[&edge, &backup],
    );
    assert!(
        !edge.log_text().contains("every source failed"),
        "the stream never ended"
    );
    // The edge's window still holds ffmpeg's segments before the backup's: the stream's
    // tracks, not the fake source's profile.
    let needles = ["Video: h264", "320x240", "Audio: aac", "48000 Hz"];
    probe_shows(&edge.url("/s/index.m3u8?token=edge1"), &needles);
}

/// An on-demand HLS pull: nothing is fetched before a viewer; the first playlist request
/// waits for the pull and plays.
#[test]
fn an_on_demand_hls_pull_starts_with_the_first_viewer() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let origin = origin(&o, "");
    let input = format!("hls://127.0.0.1:{}/s/index.m3u8?token=origin1", o.http);
    let edge = edge(&e, &[input], "static false;");
    assert_eq!(get(edge.http, "/s/index.m3u8?token=nope").status, 403);
    assert_eq!(count(&origin, "session opened"), 0);
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
    assert_eq!(count(&origin, "session opened"), 1);
}

/// A tiny origin on `port`: `/big.m3u8` lists one segment, `/big.ts`, announced as 1 GiB of
/// MPEG-TS null packets and written until the client goes away. Returns the bytes of
/// segment it managed to send so far (shared with its threads).
fn huge_segment_origin(port: u16) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::Ordering;
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut conn = conn;
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                if path == "/big.m3u8" {
                    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nbig.ts\n";
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(format!("{head}{body}").as_bytes());
                    return;
                }
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
                let mut null = [0xFFu8; 188];
                null[..4].copy_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
                let chunk: Vec<u8> = null.iter().copied().cycle().take(188 * 348).collect();
                while conn.write_all(&chunk).is_ok() {
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    sent
}

/// The edge's resident memory, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// A 1 GiB segment is cut off at the pull's bound: the source fails with a clear line,
/// the origin never gets to send it whole, and the edge's memory stays small.
#[test]
fn a_huge_segment_fails_the_source_with_memory_bounded() {
    let port = free_port();
    let sent = huge_segment_origin(port);
    let e = Listeners::free();
    let edge = edge(
        &e,
        &[format!("hls://127.0.0.1:{port}/big.m3u8")],
        "source_timeout 60;",
    );
    wait_for(
        "the huge segment failing the source",
        || edge.log_text().contains("a segment over 64 MiB"),
        &[&edge],
    );
    let rss = rss_mib(edge.pid());
    let sent_mib = sent.load(std::sync::atomic::Ordering::Relaxed) >> 20;
    println!("edge RSS after the huge segment: {rss} MiB; origin sent {sent_mib} MiB");
    assert!(rss < 200, "edge RSS {rss} MiB");
    assert!(sent_mib < 512, "the origin sent {sent_mib} MiB");
    assert_ne!(get(edge.http, MEDIA).status, 200);
}

/// A tessera origin's `publish://` stream fed by ffmpeg over RTMP, pulled over HLS; the
/// publisher killed ends the origin's stream, and the edge's only source fails: the edge's
/// stream ends too (and the pull retries with backoff), said once in its log.
#[test]
fn the_origin_publisher_killed_ends_the_edge_stream() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let config = format!(
        "{}auth_backend o {{ allow token origin1; }}\n\
         stream s {{ input publish://; on_play auth://o; }}\n",
        o.config()
    );
    let _origin = Server::start(&config, o.http);
    let mut publisher = Killed(publish_cmd(o.rtmp, "/live/s", 120).spawn().expect("ffmpeg"));
    let input = format!("hls://127.0.0.1:{}/s/index.m3u8?token=origin1", o.http);
    let edge = edge(&e, &[input], "source_timeout 5;");
    edge.wait_ok(MEDIA);
    let needles = ["Video: h264", "320x240", "Audio: aac", "48000 Hz"];
    probe_shows(&edge.url("/s/index.m3u8?token=edge1"), &needles);
    let _ = publisher.0.kill();
    let _ = publisher.0.wait();
    wait_for(
        "the edge's stream ending",
        || edge.log_text().contains("every source failed"),
        &[&edge],
    );
}
