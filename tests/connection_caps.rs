//! Connection floods against the real binary, under a lowered file limit (`ulimit -n 256`,
//! two shards: each shard takes 30 connections per protocol, see `ConnectionCaps`): the caps
//! answer before the file limit, so the server's descriptors stay below it, the flood's
//! excess gets `503` (HTTP) or is closed at once (RTMP, RTSP), and normal viewers are served.
//! And a connection that stays silent is closed after `handshake_timeout`, on every protocol.
//!
//! The flood comes from 127.0.0.2 (its sockets are bound there before connecting); the normal
//! viewers (curl, ffprobe) from 127.0.0.1.

mod common;
use common::*;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

const FD_LIMIT: usize = 256;
/// Per shard and protocol under `FD_LIMIT` with two shards and three protocols.
const PROTOCOL_CAP: usize = 2 * 30;
/// `max_connections_per_ip` in these configs.
const PER_IP: usize = 40;

/// The server on `config` with two shards, started through
/// `sh -c 'ulimit -n N; exec tessera ...'`.
fn start_limited(config: &str, http: u16, fd_limit: usize) -> Server {
    let path = write_config(config);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -n {fd_limit} && exec \"$0\" --shards 2 \"$1\""
        ))
        .arg(BIN)
        .arg(&path);
    Server::spawn(cmd, http)
}

/// Waits (bounded) until the server answers a playlist request.
fn wait_ready(server: &Server, http: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    // Every shard's listeners are bound (the main thread says so once all are): a playlist
    // served by the first shard up says nothing of the other's, and the caps tests count
    // on both.
    while !server.log_text().contains("serving with") || !curl_ok(http) {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The server's open file descriptors.
fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `n` idle connections to `port`, each from `from`.
fn flood(from: Ipv4Addr, port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            socket
                .bind(&SockAddr::from(SocketAddr::from((from, 0))))
                .expect("bind the flood's address");
            let to = SocketAddr::from(([127, 0, 0, 1], port));
            socket
                .connect_timeout(&SockAddr::from(to), Duration::from_secs(10))
                .expect("connect");
            let stream: TcpStream = socket.into();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect()
}

/// How a flood connection stands.
#[derive(Default, Debug)]
struct Tally {
    /// Still open, nothing received: admitted, waiting for a request.
    open: usize,
    /// Closed by the server (after a `503`, for HTTP).
    closed: usize,
    /// Answered `503 Service Unavailable` (HTTP).
    unavailable: usize,
}

/// Reads what each connection got, until at most `admit` are still open (or 20 s pass).
fn tally(conns: &mut [TcpStream], admit: usize) -> Tally {
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); conns.len()];
    let mut ended = vec![false; conns.len()];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, c) in conns.iter_mut().enumerate() {
            let mut buf = [0u8; 512];
            while !ended[i] {
                match c.read(&mut buf) {
                    Ok(0) => ended[i] = true,
                    Ok(n) => got[i].extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => ended[i] = true,
                }
            }
        }
        let open = ended.iter().filter(|e| !**e).count();
        if open <= admit || Instant::now() > deadline {
            return Tally {
                open,
                closed: conns.len() - open,
                unavailable: got
                    .iter()
                    .filter(|g| g.starts_with(b"HTTP/1.1 503"))
                    .count(),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(l: &Listeners, extra: &str) -> String {
    format!(
        "{}api_key caps-metrics-key-0123;\n{extra}stream cam {{ input fake://fake; segment_duration 1; }}\n",
        l.config()
    )
}

fn curl_ok(http: u16) -> bool {
    let url = format!("http://127.0.0.1:{http}/cam/index.m3u8");
    let out = run_bounded(
        Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url]),
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&out.stdout) == "200"
}

fn ffprobe_ok(url: &str) -> Result<(), String> {
    let mut cmd = tool("ffprobe");
    if url.starts_with("rtsp") {
        cmd.args(["-rtsp_transport", "tcp"]);
    }
    let out = run_bounded(cmd.arg(url), Duration::from_secs(60));
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// Waits until the server holds at most `fds` descriptors (a closed flood was let go).
fn settle(server: &Server, fds: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_fds(server) > fds && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks a flood of `proto` connections (kept open by the caller while its viewers play):
/// at most `admit` are still open, the rest were refused (with a `503` for HTTP), and the
/// server holds fewer descriptors than its limit; returns how many it holds.
fn check_flood(server: &Server, proto: &str, conns: &mut [TcpStream], admit: usize) -> usize {
    let t = tally(conns, admit);
    assert!(t.open <= admit && t.open > 0, "{proto}: {t:?}");
    if proto == "http" {
        assert_eq!(
            t.unavailable, t.closed,
            "{proto}: every refusal is a 503: {t:?}"
        );
    }
    let fds = open_fds(server);
    assert!(fds < FD_LIMIT, "{proto}: {fds} descriptors");
    eprintln!("{proto}: {t:?}");
    fds
}

#[test]
fn floods_hit_the_caps_before_the_file_limit_and_viewers_are_served() {
    let l = Listeners::free();
    let server = start_limited(
        &config(
            &l,
            &format!("max_connections_per_ip {PER_IP};\nhandshake_timeout 60;\n"),
        ),
        l.http,
        FD_LIMIT,
    );
    wait_ready(&server, l.http);
    let idle = open_fds(&server);
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live/cam", l.rtmp);
    let rtsp_url = format!("rtsp://127.0.0.1:{}/cam", l.rtsp);

    // One address floods each protocol in turn: its per-IP cap answers, and viewers from
    // elsewhere are served on the very protocol being flooded.
    for (proto, port) in [("http", l.http), ("rtmp", l.rtmp), ("rtsp", l.rtsp)] {
        let mut conns = flood(Ipv4Addr::new(127, 0, 0, 2), port, 120);
        let fds = check_flood(&server, proto, &mut conns, PER_IP);
        match proto {
            "http" => assert!(curl_ok(l.http), "{proto} flood: curl refused"),
            "rtmp" => ffprobe_ok(&rtmp_url).unwrap_or_else(|e| panic!("{proto} flood: {e}")),
            _ => ffprobe_ok(&rtsp_url).unwrap_or_else(|e| panic!("{proto} flood: {e}")),
        }
        eprintln!("{proto} flood from one address: {fds} descriptors (idle {idle})");
        drop(conns);
        settle(&server, idle + 4);
    }

    // Many addresses flood each protocol in turn, past its cap. The cap is full of idle
    // connections, so each new one takes the place of the oldest that has not asked for
    // anything: no flood connection is refused (no 503), at most the cap's worth stay
    // open, and a viewer of the very protocol being flooded is served.
    for (proto, port) in [("http", l.http), ("rtmp", l.rtmp), ("rtsp", l.rtsp)] {
        // 14 from each of 10 addresses: within the per-IP share on either shard.
        let mut conns: Vec<TcpStream> = (10..20)
            .flat_map(|host| flood(Ipv4Addr::new(127, 0, 0, host), port, 14))
            .collect();
        let t = tally(&mut conns, PROTOCOL_CAP);
        assert!(t.open <= PROTOCOL_CAP && t.open > 0, "{proto}: {t:?}");
        assert_eq!(t.unavailable, 0, "{proto}: displaced, not refused: {t:?}");
        let fds = open_fds(&server);
        assert!(fds < FD_LIMIT, "{proto}: {fds} descriptors");
        match proto {
            "http" => assert!(curl_ok(l.http), "{proto} flood: curl refused"),
            "rtmp" => ffprobe_ok(&rtmp_url).unwrap_or_else(|e| panic!("{proto} flood: {e}")),
            _ => ffprobe_ok(&rtsp_url).unwrap_or_else(|e| panic!("{proto} flood: {e}")),
        }
        eprintln!("{proto} flood from four addresses: {t:?}, {fds} descriptors (idle {idle})");
        drop(conns);
        settle(&server, idle + 4);
    }
    let evicted = metric(l.http, "tessera_connections_evicted_total");
    assert!(evicted >= 3 * 80, "{evicted} evicted");

    // Every protocol flooded past its cap at once: every cap together still stays below
    // the file limit.
    let mut all: Vec<TcpStream> = [l.http, l.rtmp, l.rtsp]
        .into_iter()
        .flat_map(|port| {
            (10..14).flat_map(move |host| flood(Ipv4Addr::new(127, 0, 0, host), port, 35))
        })
        .collect();
    let t = tally(&mut all, 3 * PROTOCOL_CAP);
    let fds = open_fds(&server);
    assert!(t.open <= 3 * PROTOCOL_CAP, "{t:?}");
    assert!(fds < FD_LIMIT, "{fds} descriptors");
    eprintln!("all three flooded from four addresses: {t:?}, {fds} descriptors (idle {idle})");
    let log = server.log_text();
    assert!(!log.contains("accept failed"), "{log}");
}

/// The value of an unlabelled metric in `/metrics`.
fn metric(http: u16, name: &str) -> u64 {
    let out = run_bounded(
        Command::new("curl").args([
            "-s",
            "-H",
            "Authorization: Bearer caps-metrics-key-0123",
            &format!("http://127.0.0.1:{http}/metrics"),
        ]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// Connections that asked for something keep their place: when a cap is full of them
/// (each sent a request and was answered), a new connection is refused with `503`, and
/// none of them is displaced.
#[test]
fn connections_that_asked_keep_their_place_in_a_full_cap() {
    let l = Listeners::free();
    let server = start_limited(
        &config(&l, "max_connections_per_ip 1000;\n"),
        l.http,
        FD_LIMIT,
    );
    wait_ready(&server, l.http);
    // Twice the cap: whatever the kernel's spread over the two shards, both fill up. Each
    // connection asks (and is answered) before the next one comes.
    let mut conns = Vec::new();
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for host in 10..14 {
        for _ in 0..30 {
            let mut c = flood(Ipv4Addr::new(127, 0, 0, host), l.http, 1).remove(0);
            c.set_nonblocking(false).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let _ = c.write_all(b"GET /cam/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut head = [0u8; 12];
            let status = match c.read_exact(&mut head) {
                Ok(()) => String::from_utf8_lossy(&head).into_owned(),
                Err(e) => format!("{:?}", e.kind()),
            };
            *answers.entry(status).or_default() += 1;
            conns.push(c);
        }
    }
    assert_eq!(
        answers.get("HTTP/1.1 200"),
        Some(&PROTOCOL_CAP),
        "{answers:?}"
    );
    assert_eq!(
        answers.get("HTTP/1.1 503"),
        Some(&PROTOCOL_CAP),
        "{answers:?}"
    );
    // The caps are full of connections that asked: nobody is displaced for a new one.
    for _ in 0..8 {
        assert!(!curl_ok(l.http), "a new connection was let in");
    }
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !curl_ok(l.http) {
        assert!(Instant::now() < deadline, "no room again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(l.http, "tessera_connections_evicted_total"), 0);
}

#[test]
fn a_silent_connection_is_closed_after_the_handshake_timeout_on_every_protocol() {
    let l = Listeners::free();
    let server = start_limited(&config(&l, "handshake_timeout 1;\n"), l.http, 1024);
    for (proto, port) in [("http", l.http), ("rtmp", l.rtmp), ("rtsp", l.rtsp)] {
        let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Half a request counts as silence too.
        let mut partial = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let half: &[u8] = match proto {
            "http" => b"GET /cam/index.m3u8 HTTP/1.1\r\n",
            "rtmp" => &[3, 0, 0, 0, 0],
            _ => b"OPTIONS * RTSP/1.0\r\n",
        };
        partial.write_all(half).unwrap();
        for c in [&mut silent, &mut partial] {
            // Generous: the deadline is 1 s; the bound only keeps a broken build from hanging.
            c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            let mut buf = Vec::new();
            let end = c.read_to_end(&mut buf);
            assert!(
                end.is_ok()
                    || end
                        .as_ref()
                        .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
                "{proto}: still open: {end:?}\n{}",
                server.log_text()
            );
            assert!(
                buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"),
                "{proto}: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
    }
    // A viewer that speaks in time is served.
    assert!(curl_ok(l.http));
}
