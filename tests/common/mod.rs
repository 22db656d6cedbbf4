//! Test harness: starts the real `tessera` binary on free ports with a temporary config,
//! talks to it over plain TCP, and runs real ffmpeg/ffprobe against it.
#![allow(dead_code)]

pub mod portal;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique temporary directory for this test process.
pub fn temp_dir() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tessera-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn write_config(text: &str) -> PathBuf {
    let path = temp_dir().join("tessera.conf");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub http: u16,
    pub log: PathBuf,
}

/// The spec's demo config with the HTTP listener on `http` (other listeners omitted).
pub fn demo_config(http: u16) -> String {
    format!(
        "http 127.0.0.1:{http};\n\
         auth_backend play-auth {{\n    allow token test1;\n}}\n\
         stream auth-check {{\n    input fake://fake;\n    on_play auth://play-auth;\n}}\n"
    )
}

impl Server {
    /// Starts the binary on `config` with two shards and waits until HTTP accepts.
    pub fn start(config: &str, http: u16) -> Server {
        Self::start_with_args(config, http, &["--shards", "2"])
    }

    pub fn start_with_args(config: &str, http: u16, args: &[&str]) -> Server {
        let path = write_config(config);
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg(&path);
        Self::spawn(cmd, http)
    }

    /// Starts `cmd` (the binary, on the config `write_config` wrote, however it is run)
    /// with debug logs into `server.log`, and waits until HTTP accepts.
    pub fn spawn(mut cmd: Command, http: u16) -> Server {
        let log = temp_dir().join("server.log");
        let child = cmd
            .env("TESSERA_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start tessera");
        let server = Server { child, http, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server did not listen; log:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// Waits until `path` answers 200 (the first segment exists).
    pub fn wait_ok(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if get(self.http, path).status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never became ready; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of a header (case-insensitive name), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes on a new connection and reads until the server closes it.
pub fn raw(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Splits the responses of one connection (heads with content-length bodies).
pub fn parse_responses(mut data: &[u8], head_only: bool) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut r = Response {
            status,
            head,
            body: Vec::new(),
        };
        let len: usize = r
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let len = if head_only { 0 } else { len };
        let body_end = (end + 4 + len).min(data.len());
        r.body = data[end + 4..body_end].to_vec();
        data = &data[body_end..];
        out.push(r);
    }
    out
}

/// `GET path` on a new connection.
pub fn get(port: u16, path: &str) -> Response {
    request(port, "GET", path, "")
}

pub fn request(port: u16, method: &str, path: &str, extra_headers: &str) -> Response {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}Connection: close\r\n\r\n"
    );
    let data = raw(port, req.as_bytes());
    parse_responses(&data, method == "HEAD")
        .into_iter()
        .next()
        .unwrap_or(Response {
            status: 0,
            head: String::new(),
            body: Vec::new(),
        })
}

/// Runs a command with a hard time limit; kills it past the limit. Output goes through
/// files, so a chatty command can never block on a full pipe.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let dir = temp_dir();
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = cmd
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} ran past {limit:?}\nstderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// ffmpeg/ffprobe must be installed (tools/test.sh installs them).
pub fn tool(name: &str) -> Command {
    let found = Command::new(name)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "{name} is not installed: run tools/test.sh, which installs it"
    );
    let mut c = Command::new(name);
    c.arg("-hide_banner").stdin(Stdio::null());
    c
}

/// What ffprobe must show for the built-in fake source.
pub const FAKE_SOURCE_STREAMS: [&str; 5] = [
    "Video: h264 (Constrained Baseline)",
    "320x240",
    "25 fps",
    "Audio: aac (LC)",
    "48000 Hz, stereo",
];

/// Runs ffprobe on `url` (after `options`), asserts it succeeds and shows the fake source's
/// streams, and returns what it printed.
pub fn assert_probe_shows_fake_source(options: &[&str], url: &str) -> String {
    let out = run_bounded(
        tool("ffprobe").args(options).arg(url),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffprobe {url} failed:\n{err}");
    for needle in FAKE_SOURCE_STREAMS {
        assert!(
            err.contains(needle),
            "ffprobe {url} lacks {needle:?}:\n{err}"
        );
    }
    err
}

/// Decodes `seconds` of `url` with `ffmpeg -v warning -xerror` and asserts it printed
/// nothing, apart from lines containing one of `client_notes` (messages about the client
/// itself, documented where they are allowed).
pub fn assert_decodes_cleanly(options: &[&str], url: &str, seconds: u32, client_notes: &[&str]) {
    let secs = seconds.to_string();
    let mut cmd = tool("ffmpeg");
    cmd.args(["-v", "warning", "-xerror"])
        .args(options)
        .args(["-i", url, "-t", &secs, "-f", "null", "-"]);
    let out = run_bounded(&mut cmd, Duration::from_secs(u64::from(seconds) * 6 + 30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg {url} failed:\n{err}");
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !client_notes.iter().any(|n| l.contains(n)))
        .collect();
    assert!(ours.is_empty(), "ffmpeg {url} warned:\n{err}");
}

/// Free ports for the three TCP listeners a test server takes.
pub struct Listeners {
    pub http: u16,
    pub rtmp: u16,
    pub rtsp: u16,
}

impl Listeners {
    pub fn free() -> Listeners {
        Listeners {
            http: free_port(),
            rtmp: free_port(),
            rtsp: free_port(),
        }
    }

    /// The config lines that open them on 127.0.0.1.
    pub fn config(&self) -> String {
        format!(
            "http 127.0.0.1:{};\nrtmp 127.0.0.1:{};\nrtsp 127.0.0.1:{};\n",
            self.http, self.rtmp, self.rtsp
        )
    }
}

/// An operator API call with the Bearer `key`.
pub fn api_call(port: u16, key: &str, method: &str, path: &str) -> Response {
    request(
        port,
        method,
        path,
        &format!("Authorization: Bearer {key}\r\n"),
    )
}

/// The publisher of the issue: x264 (ultrafast, zerolatency, a keyframe a second) and AAC,
/// in real time, for `seconds`.
pub fn publish_cmd(rtmp: u16, path: &str, seconds: u32) -> Command {
    publish_to(&format!("rtmp://127.0.0.1:{rtmp}{path}"), "flv", seconds)
}

/// The same publisher, muxed as `format` (`flv`, `mpegts`) to `url`.
pub fn publish_to(url: &str, format: &str, seconds: u32) -> Command {
    let mut cmd = publisher(seconds);
    cmd.args(["-f", format]).arg(url);
    cmd
}

/// The publisher's ffmpeg up to its output options: `-f`, muxer options and URL follow.
pub fn publisher(seconds: u32) -> Command {
    let secs = seconds.to_string();
    let mut cmd = tool("ffmpeg");
    cmd.args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x240:rate=25:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={secs}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "25",
            "-c:a",
            "aac",
        ]);
    cmd
}

/// A self-signed ECDSA P-256 certificate for the DNS name `host` and 127.0.0.1, made with
/// openssl in `dir` as `NAME.crt` and `NAME.key`; returns their paths.
pub fn make_certificate(dir: &std::path::Path, name: &str, host: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={host}")])
        .args([
            "-addext",
            &format!("subjectAltName=DNS:{host},IP:127.0.0.1"),
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (tools/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A child process killed when dropped, with its output in files.
pub struct Background {
    pub child: Child,
    stderr: std::path::PathBuf,
}

impl Background {
    pub fn spawn(cmd: &mut Command) -> Background {
        let stderr = temp_dir().join("stderr");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn");
        Background { child, stderr }
    }

    /// Waits (bounded) for the process to end; its success and stderr.
    pub fn wait(&mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                return (status.success(), err);
            }
            assert!(
                Instant::now() < deadline,
                "process ran past {limit:?}:\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many times `needle` is in the server's log (e.g. an origin's upstream sessions).
pub fn count(server: &Server, needle: &str) -> usize {
    server.log_text().matches(needle).count()
}

/// Kills an origin and waits (bounded) until the edge pulling from it logs that every
/// source failed.
pub fn kill_origin_until_the_edge_notices(origin: &mut Server, edge: &Server) {
    let _ = origin.child().kill();
    let _ = origin.child().wait();
    wait_for(
        "the edge noticing the origin is gone",
        || edge.log_text().contains("every source failed"),
        &[edge],
    );
}

/// Waits (bounded, generously: 60 s) until `cond` holds; panics with `what` and the logs.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool, logs: &[&Server]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs.iter().map(|s| s.log_text()).collect();
            panic!("{what} never happened; logs:\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) until the server log contains `needle`.
pub fn wait_log(server: &Server, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log_text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "log never showed {needle:?}:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What ffprobe must show for `publish_to`'s publisher (lavfi's sine is mono).
pub const PUBLISHED_STREAMS: [&str; 4] = ["Video: h264", "320x240", "Audio: aac (LC)", "48000 Hz"];

pub fn assert_probe_shows_publisher(options: &[&str], url: &str) {
    let out = run_bounded(
        tool("ffprobe").args(options).arg(url),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe {url} failed:\n{err}");
    for needle in PUBLISHED_STREAMS {
        assert!(
            err.contains(needle),
            "ffprobe {url} lacks {needle:?}:\n{err}"
        );
    }
}

/// A long-running ffmpeg player; its exit is what the revocation tests watch.
pub fn player(url: &str, options: &[&str]) -> Child {
    tool("ffmpeg")
        .args(["-v", "error"])
        .args(options)
        .args(["-i", url, "-t", "60", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

/// Waits (bounded) for `child` to exit; how long it took.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().expect("wait").is_some() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
