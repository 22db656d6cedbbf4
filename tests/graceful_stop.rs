//! Stopping and upgrading as an operator does: SIGTERM lets a request in flight finish,
//! ends every viewer with its protocol's goodbye (players exit cleanly instead of seeing a
//! broken connection), closes every session and exits 0; a second signal exits at once; a
//! new process started beside the old one takes over with no refused request.

mod common;
use common::portal::Portal;
use common::*;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn config(ports: &Listeners, extra: &str) -> String {
    format!(
        "{}{extra}auth_backend viewers {{\n    allow token one;\n}}\n\
         stream live {{\n    input fake://fake;\n    on_play auth://viewers;\n    segment_duration 1;\n}}\n",
        ports.config()
    )
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` holds a listening TCP socket on `port`. Asked of the process
/// itself (its fds against /proc/net/tcp), not by connecting: once it lets the port go,
/// a test running beside this one may bind the same port.
fn listens(pid: u32, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let local = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // local_address, st (0A = LISTEN), inode.
        cols.len() > 9
            && cols[1].ends_with(&local)
            && cols[3] == "0A"
            && inodes.iter().any(|i| i == cols[9])
    })
}

fn spawn_quiet(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn output_of(mut child: Child) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (out, err)
}

/// The newest segment's path in `live`'s media playlist (with the token).
fn newest_segment(http: u16) -> String {
    let playlist = get(http, "/live/mono.m3u8?token=one").text();
    let name = playlist
        .lines()
        .rfind(|l| !l.starts_with('#') && !l.is_empty())
        .expect("a segment")
        .to_owned();
    format!("/live/{name}")
}

#[test]
fn sigterm_finishes_what_is_in_flight_says_goodbye_and_exits_zero() {
    let ports = Listeners::free();
    // A stream whose portal takes 8 s to answer (tessera waits 15): a request for it is in
    // flight for that long.
    let portal = Portal::start(&["--token", "slow", "--delay-ms", "8000"]);
    let held_stream = format!(
        "shutdown_timeout 30;\nbackend_timeout 15;\nstream held {{\n    input fake://fake;\n    on_play http://127.0.0.1:{}/auth;\n}}\n",
        portal.port
    );
    let mut server = Server::start(&config(&ports, &held_stream), ports.http);
    server.wait_ok("/live/mono.m3u8?token=one");
    let segment = newest_segment(ports.http);

    // A slow segment download (its body may be all in the kernel's buffers when the process
    // exits: it still arrives whole), live MPEG-TS, and an RTMP player.
    let slow = spawn_quiet(
        Command::new("curl")
            .args(["-s", "--limit-rate", "100k", "-o", "/dev/null"])
            .args(["-w", "%{http_code} %{size_download} %{content_type}"])
            .arg(server.url(&segment)),
    );
    let mut live_ts = spawn_quiet(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(server.url("/live/mpegts?token=one")),
    );
    let mut rtmp = spawn_quiet(
        tool("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(format!(
                "rtmp://127.0.0.1:{}/live/live?token=one",
                ports.rtmp
            ))
            .args(["-t", "60", "-f", "null", "-"]),
    );
    let playing = |s: &Server| {
        let log = s.log_text();
        ["rtmp play started", "proto=tshttp", "proto=hls"]
            .iter()
            .all(|n| log.contains(n))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !playing(&server) {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // ffmpeg has its stream parameters (it needs a keyframe a second apart at most).
    std::thread::sleep(Duration::from_secs(2));
    let expected_size = get(ports.http, &segment).body.len();
    // And a playlist request waiting for the portal's answer when SIGTERM comes.
    let mut held = spawn_quiet(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(server.url("/held/index.m3u8?token=slow")),
    );
    wait_for(
        "the portal asked",
        || portal.stat("by_token slow") == 1,
        &[&server],
    );

    assert!(listens(server.pid(), ports.http));
    signal(server.pid(), "-TERM");
    // The listeners close at once (new connections are refused) while the request runs
    // (within 4 s: a loaded machine can starve the process for a while).
    let deadline = Instant::now() + Duration::from_secs(4);
    while listens(server.pid(), ports.http) || listens(server.pid(), ports.rtmp) {
        assert!(
            Instant::now() < deadline,
            "still listening after SIGTERM\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.child().try_wait().unwrap().is_none(),
        "still draining"
    );
    // What runs, ends: the held request is answered once the portal has answered.
    assert!(wait_exit(&mut held, Duration::from_secs(20)).success());
    let (status, _) = output_of(held);
    assert_eq!(status, "200", "{}", server.log_text());
    assert_eq!(
        wait_exit(&mut rtmp, Duration::from_secs(20)).code(),
        Some(0)
    );
    let (_, err) = output_of(rtmp);
    assert!(err.trim().is_empty(), "ffmpeg saw an error:\n{err}");
    assert!(
        wait_exit(&mut live_ts, Duration::from_secs(20)).success(),
        "curl saw the live MPEG-TS end uncleanly"
    );
    let mut slow = slow;
    let status = wait_exit(&mut slow, Duration::from_secs(30));
    let (written, _) = output_of(slow);
    assert!(
        status.success(),
        "curl: {status} {written}\n{}",
        server.log_text()
    );
    assert_eq!(
        written,
        format!("200 {expected_size} video/mp2t"),
        "the download finished whole"
    );
    let status = wait_exit(server.child(), Duration::from_secs(40));
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    let log = server.log_text();
    assert_eq!(
        log.matches("session opened").count(),
        log.matches("session closed").count(),
        "every session closed:\n{log}"
    );
    assert!(log.contains("stopped on signal 15"), "{log}");
}

#[test]
fn a_second_signal_exits_at_once() {
    let ports = Listeners::free();
    let mut server = Server::start(&config(&ports, "shutdown_timeout 300;\n"), ports.http);
    server.wait_ok("/live/index.m3u8?token=one");
    // A request begun (its head half sent) holds the graceful stop open: it is answered.
    let mut begun = std::net::TcpStream::connect(("127.0.0.1", ports.http)).unwrap();
    std::io::Write::write_all(&mut begun, b"GET /live/index.m3u8?token=one HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(server.pid(), "-TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.child().try_wait().unwrap().is_none(),
        "still draining"
    );
    signal(server.pid(), "-INT");
    let status = wait_exit(server.child(), Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", server.log_text());
    assert!(server.log_text().contains("exiting at once"));
}

/// One request on a new connection: its status, or what went wrong, and where.
fn fetch_once(port: u16, path: &str) -> Result<u16, String> {
    use std::io::Write;
    let mut s =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .map_err(|e| format!("read: {e} after {} bytes", out.len()))?;
    parse_responses(&out, false)
        .first()
        .map(|r| r.status)
        .ok_or_else(|| format!("closed after {} bytes", out.len()))
}

#[test]
fn a_new_process_takes_over_without_a_refused_request() {
    let migrate = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req");
    assert_eq!(
        migrate.as_deref().map(str::trim).ok(),
        Some("1"),
        "net.ipv4.tcp_migrate_req must be 1 for a swap without resets (tools/test.sh sets it)"
    );
    let ports = Listeners::free();
    let text = config(&ports, "");
    let mut old = Server::start(&text, ports.http);
    old.wait_ok("/live/index.m3u8?token=one");

    // Three clients that open a new connection for every request, a request every 2 ms
    // each, all through two swaps (the second from a process that itself took over).
    // Unpaced, the kernel's own race between a handshake's last ACK and the closing
    // listener resets about one connection in a hundred swaps (tools/upgrade-swaps.py).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            let port = ports.http;
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match fetch_once(port, "/live/index.m3u8?token=one") {
                        Ok(200) => ok += 1,
                        Ok(status) => failed.push(format!("status {status}")),
                        Err(e) => failed.push(e),
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut logs = Vec::new();
    for _ in 0..2 {
        let new = Server::start(&text, ports.http);
        // The new process's stream has its first segments before the old one goes.
        std::thread::sleep(Duration::from_secs(3));
        signal(old.pid(), "-TERM");
        assert_eq!(
            wait_exit(old.child(), Duration::from_secs(30)).code(),
            Some(0)
        );
        logs.push(old.log_text());
        old = new;
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0u32, Vec::new());
    for client in clients {
        let (n, mut errors) = client.join().expect("client");
        ok += n;
        failed.append(&mut errors);
    }
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across the swaps: {failed:?}\nstopped:\n{}\nlast:\n{}",
        failed.len(),
        ok as usize + failed.len(),
        logs.join("\n"),
        old.log_text()
    );
    assert!(ok > 100, "{ok} requests");
}
