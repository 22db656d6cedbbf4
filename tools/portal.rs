//! `tessera-portal`: an example portal auth backend (spec §3), small enough to read in one go.
//!
//! What it is for: showing how a portal answers tessera's backend protocol, and being the real
//! backend process the integration tests (`tests/portal_backend.rs`) start and count requests
//! against. It issues tokens, answers `GET /auth` with `X-AuthDuration`, `X-UserId`,
//! `X-Max-Sessions` (and `X-Unique: true` with `--unique`), can be told to revoke a token or a
//! user (and then pushes the revocation to tessera's operator API), can be made slow on purpose,
//! and counts every question it is asked (`GET /stats`).
//!
//! Owns: its command line, its token list (known, revoked), its counters and delays, and one
//! HTTP/1.1 keep-alive server (thread per connection, state behind one `Mutex`: fine for a test
//! tool, not a pattern for tessera itself). Never does: TLS, chunked request bodies, persistence,
//! or anything from the tessera library crate (it is a separate program on purpose).
//!
//! End to end (tessera on 8080 with its operator API key; the portal on 8081):
//!
//! ```text
//! # tessera.conf
//! http 8080;
//! api_key 0123456789abcdef0123;
//! auth_backend portal {
//!     backend http://127.0.0.1:8081/auth;
//! }
//! stream live {
//!     input fake://fake;
//!     on_play auth://portal;
//! }
//!
//! $ tessera-portal --listen 127.0.0.1:8081 --token demo:alice:2 \
//!       --tessera http://127.0.0.1:8080 --api-key 0123456789abcdef0123 &
//! listening on 127.0.0.1:8081
//! $ curl -s -o /dev/null -w '%{http_code}\n' 'http://127.0.0.1:8080/live/index.m3u8?token=demo'
//! 200                                   # the portal said yes (X-UserId: alice, X-Max-Sessions: 2)
//! $ curl -s -X POST 'http://127.0.0.1:8081/tokens?user=bob'
//! 5f0c0d6e3a9b41c28e7f1a2b3c4d5e6f      # a new token for bob
//! $ curl -s http://127.0.0.1:8081/stats
//! requests 1
//! new_session 1
//! update_session 0
//! allowed 1
//! denied 0
//! by_token demo 1
//! $ curl -s -X POST 'http://127.0.0.1:8081/revoke?token=demo'
//! {"sessions_closed":1,"shards":2}      # tessera's answer: alice's session was cut
//! $ curl -s -o /dev/null -w '%{http_code}\n' 'http://127.0.0.1:8080/live/index.m3u8?token=demo'
//! 403                                   # x-deny-reason: session_revoked
//! ```
//!
//! Endpoints:
//! - `GET /auth?name=..&proto=..&token=..&request_type=new_session|update_session&...`:
//!   a known, non-revoked token gets `200`, anything else `403`; both carry `X-AuthDuration`.
//! - `GET /stats`: `requests`, `new_session`, `update_session`, `allowed`, `denied` (all `/auth`
//!   questions so far) and `by_token TOKEN N` per token asked about (percent-encoded when it
//!   holds anything but `A-Z a-z 0-9 - . _ ~`). The portal shows tokens to its own operator; its
//!   stderr log shows only a tag.
//! - `POST /tokens?user=U[&max_sessions=N]`: a new random token (32 hex digits), body `TOKEN\n`.
//! - `POST /revoke?token=T` or `?user=U`: `/auth` answers `403` for it from then on; with
//!   `--tessera`, also `POST {tessera}/streamer/api/v3/revoke?token=T` (or `?user_id=U`) with
//!   `Authorization: Bearer KEY`, answering with tessera's status and body (`502` when tessera
//!   cannot be reached). A revoked user stays revoked, also for tokens issued to it later.
//! - `POST /control?delay_ms=N`: delay every `/auth` answer by N ms;
//!   `POST /control?token=T&delay_ms=N`: delay only T's answers (overrides the global delay).
//! - Anything else `404`; a request that cannot be parsed `400` and the connection is closed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const USAGE: &str = "\
usage: tessera-portal --listen ADDR:PORT
                      [--token TOKEN[:USER[:MAX_SESSIONS]]]...   tokens known at start (allowed)
                      [--duration SECS]          X-AuthDuration (default 30)
                      [--delay-ms MS]            delay every /auth answer (slow backend)
                      [--tessera http://HOST:PORT] [--api-key KEY]   where revokes are pushed
                      [--unique]                 send X-Unique: true for every user
                      [--redirect TOKEN=URL]...  answer TOKEN with 302 Location: URL";

/// `X-AuthDuration` when `--duration` is not given (the spec's default).
const DEFAULT_DURATION_SECS: u64 = 30;
/// Longest request head (request line + headers) accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most request headers accepted.
const MAX_HEADERS: usize = 64;
/// Longest request body accepted (bodies are read and ignored).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest delay `--delay-ms` or `/control` may set (ten minutes).
const MAX_DELAY_MS: u64 = 600_000;
/// Most distinct tokens counted in `by_token` lines; later ones count only in the totals.
const MAX_COUNTED_TOKENS: usize = 100_000;
/// Random bytes in an issued token (printed as twice as many hex digits).
const TOKEN_BYTES: usize = 16;
/// How long pushing a revocation may wait for tessera to accept the connection.
const TESSERA_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long pushing a revocation may wait for each read or write.
const TESSERA_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer from tessera's operator API passed back.
const MAX_TESSERA_ANSWER_BYTES: usize = 1024 * 1024;
/// Read buffer size per connection.
const READ_CHUNK: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Command line

/// A token known at start: `TOKEN[:USER[:MAX_SESSIONS]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TokenGrant {
    token: String,
    user: Option<String>,
    max_sessions: Option<u32>,
}

impl TokenGrant {
    fn parse(spec: &str) -> Result<TokenGrant, String> {
        let mut parts = spec.splitn(3, ':');
        let token = parts.next().unwrap_or_default();
        if token.is_empty() {
            return Err(format!("--token {spec:?}: the token is empty"));
        }
        let user = parts.next().filter(|u| !u.is_empty()).map(str::to_owned);
        let max_sessions = match parts.next() {
            None => None,
            Some(n) => Some(
                n.parse()
                    .map_err(|_| format!("--token {spec:?}: MAX_SESSIONS {n:?} is not a number"))?,
            ),
        };
        Ok(TokenGrant {
            token: token.to_owned(),
            user,
            max_sessions,
        })
    }
}

/// Where revocations are pushed: tessera's HTTP listener (`--tessera http://HOST:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TesseraApi {
    /// `HOST[:PORT]` as given: the `Host` header.
    authority: String,
    /// `HOST:PORT` to connect to (port 80 when none was given).
    connect_to: String,
    /// Any path after the authority, without a trailing `/` (usually empty).
    base_path: String,
}

impl TesseraApi {
    fn parse(url: &str) -> Result<TesseraApi, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--tessera {url:?}: must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("--tessera {url:?}: no host"));
        }
        let has_port = match authority.rfind(']') {
            Some(close) => authority[close..].contains(':'),
            None => authority.contains(':'),
        };
        let connect_to = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(TesseraApi {
            authority: authority.to_owned(),
            connect_to,
            base_path: path.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    listen: String,
    tokens: Vec<TokenGrant>,
    duration_secs: u64,
    delay_ms: u64,
    tessera: Option<TesseraApi>,
    api_key: Option<String>,
    unique: bool,
    /// `--redirect TOKEN=URL`: tokens answered with `302 Location: URL`.
    redirects: Vec<(String, String)>,
}

enum Command {
    Run(Options),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let mut listen = None;
    let mut opts = Options {
        listen: String::new(),
        tokens: Vec::new(),
        duration_secs: DEFAULT_DURATION_SECS,
        delay_ms: 0,
        tessera: None,
        api_key: None,
        unique: false,
        redirects: Vec::new(),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(value()?),
            "--token" => opts.tokens.push(TokenGrant::parse(&value()?)?),
            "--duration" => {
                let v = value()?;
                opts.duration_secs = v
                    .parse()
                    .map_err(|_| format!("--duration {v:?}: not a number of seconds"))?;
            }
            "--delay-ms" => opts.delay_ms = parse_delay(&value()?)?,
            "--tessera" => opts.tessera = Some(TesseraApi::parse(&value()?)?),
            "--api-key" => opts.api_key = Some(value()?),
            "--unique" => opts.unique = true,
            "--redirect" => {
                let v = value()?;
                let (token, url) = v
                    .split_once('=')
                    .filter(|(t, u)| !t.is_empty() && u.starts_with("http"))
                    .ok_or_else(|| format!("--redirect {v:?}: expected TOKEN=http://..."))?;
                opts.redirects.push((token.to_owned(), url.to_owned()));
            }
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    opts.listen = listen.ok_or("--listen ADDR:PORT is required")?;
    Ok(Command::Run(opts))
}

fn parse_delay(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => Ok(ms),
        _ => Err(format!(
            "delay {v:?}: not a number of milliseconds up to {MAX_DELAY_MS}"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Query strings

/// Decodes `%XX` escapes (and nothing else: tessera sends spaces as `%20`, so `+` stays `+`).
/// `None` for a broken escape. Bytes that are not UTF-8 after decoding become U+FFFD.
fn percent_decode(s: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Encodes everything but `A-Z a-z 0-9 - . _ ~` as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A decoded query string, in order; the first of repeated keys wins.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params(Vec<(String, String)>);

impl Params {
    /// `None` when a key or value has a broken `%` escape.
    fn parse(query: &str) -> Option<Params> {
        let mut pairs = Vec::new();
        for piece in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            pairs.push((percent_decode(k)?, percent_decode(v)?));
        }
        Some(Params(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

/// One HTTP answer, written by `Reply::write_to`.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Close the connection after this answer.
    close: bool,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8".to_owned(),
            headers: Vec::new(),
            body: body.into().into_bytes(),
            close: false,
        }
    }

    /// `400`, and the connection closes.
    fn bad_request(why: &str) -> Reply {
        let mut r = Reply::text(400, format!("bad request: {why}\n"));
        r.close = true;
        r
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        let _ = write!(
            VecWriter(out),
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            let _ = write!(VecWriter(out), "{name}: {value}\r\n");
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    }
}

/// A short tag for a token in the log: FNV-1a of its bytes (the whole token never goes there).
fn token_tag(token: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in token.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("#{h:08x}")
}

// ---------------------------------------------------------------------------------------------
// The portal's state and decisions (no I/O)

#[derive(Debug, Clone, Default)]
struct Grant {
    user: Option<String>,
    max_sessions: Option<u32>,
}

#[derive(Debug, Default)]
struct Stats {
    requests: u64,
    new_session: u64,
    update_session: u64,
    allowed: u64,
    denied: u64,
    by_token: BTreeMap<String, u64>,
}

/// What a revocation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RevokeTarget {
    Token(String),
    User(String),
}

impl RevokeTarget {
    fn from_params(p: &Params) -> Result<RevokeTarget, &'static str> {
        match (p.get("token"), p.get("user")) {
            (Some(t), None) if !t.is_empty() => Ok(RevokeTarget::Token(t.to_owned())),
            (None, Some(u)) if !u.is_empty() => Ok(RevokeTarget::User(u.to_owned())),
            _ => Err("revoke takes exactly one of token=T or user=U"),
        }
    }

    /// The query of tessera's `POST /streamer/api/v3/revoke`.
    fn tessera_query(&self) -> String {
        match self {
            RevokeTarget::Token(t) => format!("token={}", percent_encode(t)),
            RevokeTarget::User(u) => format!("user_id={}", percent_encode(u)),
        }
    }
}

/// Everything the portal knows and counts; the decisions are methods on it.
#[derive(Debug)]
struct Portal {
    grants: HashMap<String, Grant>,
    revoked_tokens: HashSet<String>,
    revoked_users: HashSet<String>,
    duration_secs: u64,
    unique: bool,
    delay_ms: u64,
    token_delay_ms: HashMap<String, u64>,
    redirects: HashMap<String, String>,
    stats: Stats,
}

impl Portal {
    fn new(opts: &Options) -> Portal {
        let mut portal = Portal {
            grants: HashMap::new(),
            revoked_tokens: HashSet::new(),
            revoked_users: HashSet::new(),
            duration_secs: opts.duration_secs,
            unique: opts.unique,
            delay_ms: opts.delay_ms,
            token_delay_ms: HashMap::new(),
            redirects: opts.redirects.iter().cloned().collect(),
            stats: Stats::default(),
        };
        for g in &opts.tokens {
            portal.grant(g.token.clone(), g.user.clone(), g.max_sessions);
        }
        portal
    }

    fn grant(&mut self, token: String, user: Option<String>, max_sessions: Option<u32>) {
        self.grants.insert(token, Grant { user, max_sessions });
    }

    /// Counts an `/auth` question as it arrives; how long to wait before answering it.
    fn note_auth(&mut self, p: &Params) -> Duration {
        self.stats.requests += 1;
        match p.get("request_type") {
            Some("new_session") => self.stats.new_session += 1,
            Some("update_session") => self.stats.update_session += 1,
            _ => {}
        }
        let token = p.get("token").filter(|t| !t.is_empty());
        if let Some(t) = token {
            if let Some(n) = self.stats.by_token.get_mut(t) {
                *n += 1;
            } else if self.stats.by_token.len() < MAX_COUNTED_TOKENS {
                self.stats.by_token.insert(t.to_owned(), 1);
            }
        }
        let ms = token
            .and_then(|t| self.token_delay_ms.get(t))
            .copied()
            .unwrap_or(self.delay_ms);
        Duration::from_millis(ms)
    }

    /// The answer to an `/auth` question (after its delay): 200 with the grant's headers, or 403.
    fn decide(&mut self, p: &Params) -> Reply {
        let token = p.get("token").unwrap_or_default();
        let grant = self.grants.get(token).filter(|g| {
            !self.revoked_tokens.contains(token)
                && !g
                    .user
                    .as_ref()
                    .is_some_and(|u| self.revoked_users.contains(u))
        });
        if let Some(url) = self.redirects.get(token) {
            let mut r = Reply::text(302, "elsewhere\n");
            r.headers.push(("Location", url.clone()));
            return r;
        }
        let mut reply = match grant {
            Some(g) => {
                self.stats.allowed += 1;
                let mut r = Reply::text(200, "allowed\n");
                if let Some(u) = &g.user {
                    r.headers.push(("X-UserId", u.clone()));
                }
                if let Some(n) = g.max_sessions {
                    r.headers.push(("X-Max-Sessions", n.to_string()));
                }
                if self.unique {
                    r.headers.push(("X-Unique", "true".to_owned()));
                }
                r
            }
            None => {
                self.stats.denied += 1;
                Reply::text(403, "denied\n")
            }
        };
        reply
            .headers
            .insert(0, ("X-AuthDuration", self.duration_secs.to_string()));
        reply
    }

    fn revoke(&mut self, target: &RevokeTarget) {
        match target {
            RevokeTarget::Token(t) => self.revoked_tokens.insert(t.clone()),
            RevokeTarget::User(u) => self.revoked_users.insert(u.clone()),
        };
    }

    /// `POST /control`: the global delay, or one token's.
    fn control(&mut self, p: &Params) -> Reply {
        let Some(ms) = p.get("delay_ms") else {
            return Reply::bad_request("control takes delay_ms=N [and token=T]");
        };
        let ms = match parse_delay(ms) {
            Ok(ms) => ms,
            Err(e) => return Reply::bad_request(&e),
        };
        match p.get("token").filter(|t| !t.is_empty()) {
            Some(t) => {
                self.token_delay_ms.insert(t.to_owned(), ms);
                Reply::text(200, format!("delay_ms {ms} for token {}\n", token_tag(t)))
            }
            None => {
                self.delay_ms = ms;
                Reply::text(200, format!("delay_ms {ms}\n"))
            }
        }
    }

    fn stats_text(&self) -> String {
        let s = &self.stats;
        let mut out = format!(
            "requests {}\nnew_session {}\nupdate_session {}\nallowed {}\ndenied {}\n",
            s.requests, s.new_session, s.update_session, s.allowed, s.denied
        );
        for (token, n) in &s.by_token {
            let _ = writeln!(out, "by_token {} {n}", percent_encode(token));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The I/O shell: routing, the server, pushing revocations

struct Shared {
    portal: Mutex<Portal>,
    tessera: Option<TesseraApi>,
    api_key: Option<String>,
}

impl Shared {
    fn new(opts: &Options) -> Shared {
        Shared {
            portal: Mutex::new(Portal::new(opts)),
            tessera: opts.tessera.clone(),
            api_key: opts.api_key.clone(),
        }
    }

    /// The portal's state; a thread that panicked while holding it does not stop the others.
    fn portal(&self) -> MutexGuard<'_, Portal> {
        self.portal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The parts of a request the routes look at.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    query: String,
    /// The client asked to close after this answer (or spoke HTTP/1.0 without keep-alive).
    close: bool,
}

/// A complete request head at the start of `buf`: the request and the bytes it and its body
/// take. `Ok(None)`: not complete yet. `Err`: answer 400 and close.
fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("unparsable request head: {e}")),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err("incomplete request line".to_owned());
    };
    let mut body_len = 0usize;
    let mut close = version == 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|&n| n <= MAX_BODY_BYTES)
                .ok_or("bad or too large Content-Length")?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("Transfer-Encoding is not supported".to_owned());
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in String::from_utf8_lossy(h.value).split(',') {
                match token.trim().to_ascii_lowercase().as_str() {
                    "close" => close = true,
                    "keep-alive" if version == 0 => close = false,
                    _ => {}
                }
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !path.starts_with('/') {
        return Err("the request target is not a path".to_owned());
    }
    let request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        close,
    };
    Ok(Some((request, head_len + body_len)))
}

fn log(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Answers one request; may sleep (`/auth` delays) or call tessera (`/revoke`).
fn route(shared: &Shared, req: &Request) -> Reply {
    let Some(params) = Params::parse(&req.query) else {
        log(format_args!(
            "{} {} broken %-escape -> 400",
            req.method, req.path
        ));
        return Reply::bad_request("broken %-escape in the query");
    };
    let reply = match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/auth") => {
            let delay = shared.portal().note_auth(&params);
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let reply = shared.portal().decide(&params);
            let token = params.get("token").map(token_tag);
            log(format_args!(
                "GET /auth name={} proto={} request_type={} token={} -> {}",
                params.get("name").unwrap_or("-"),
                params.get("proto").unwrap_or("-"),
                params.get("request_type").unwrap_or("-"),
                token.as_deref().unwrap_or("-"),
                reply.status
            ));
            return reply;
        }
        ("GET", "/stats") => Reply::text(200, shared.portal().stats_text()),
        ("POST", "/tokens") => issue_token(shared, &params),
        ("POST", "/revoke") => revoke(shared, &params),
        ("POST", "/control") => shared.portal().control(&params),
        _ => Reply::text(404, "not found\n"),
    };
    log(format_args!(
        "{} {} -> {}",
        req.method, req.path, reply.status
    ));
    reply
}

fn issue_token(shared: &Shared, p: &Params) -> Reply {
    let user = p.get("user").filter(|u| !u.is_empty()).map(str::to_owned);
    let max_sessions = match p.get("max_sessions").map(str::parse::<u32>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return Reply::bad_request("max_sessions is not a number"),
    };
    let token = match random_token() {
        Ok(t) => t,
        Err(e) => return Reply::text(500, format!("no randomness: /dev/urandom: {e}\n")),
    };
    shared.portal().grant(token.clone(), user, max_sessions);
    Reply::text(200, format!("{token}\n"))
}

fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let mut token = String::with_capacity(2 * TOKEN_BYTES);
    for b in bytes {
        let _ = write!(token, "{b:02x}");
    }
    Ok(token)
}

fn revoke(shared: &Shared, p: &Params) -> Reply {
    let target = match RevokeTarget::from_params(p) {
        Ok(t) => t,
        Err(e) => return Reply::bad_request(e),
    };
    shared.portal().revoke(&target);
    let Some(api) = &shared.tessera else {
        return Reply::text(200, "revoked locally\n");
    };
    match push_revoke(api, shared.api_key.as_deref(), &target) {
        Ok(reply) => reply,
        Err(e) => Reply::text(
            502,
            format!(
                "revoked locally; tessera at {} unreachable: {e}\n",
                api.authority
            ),
        ),
    }
}

/// `POST {tessera}/streamer/api/v3/revoke?...`; tessera's answer as ours.
fn push_revoke(api: &TesseraApi, key: Option<&str>, target: &RevokeTarget) -> io::Result<Reply> {
    let mut last_err = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for addr in api.connect_to.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, TESSERA_CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = e,
        }
    }
    let mut stream = stream.ok_or(last_err)?;
    stream.set_read_timeout(Some(TESSERA_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(TESSERA_IO_TIMEOUT))?;
    let mut req = format!(
        "POST {}/streamer/api/v3/revoke?{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\
         Connection: close\r\n",
        api.base_path,
        target.tessera_query(),
        api.authority
    );
    if let Some(key) = key {
        let _ = write!(req, "Authorization: Bearer {key}\r\n");
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    read_tessera_answer(&mut stream)
}

/// Reads one response (until its `Content-Length`, or the end of the stream without one).
fn read_tessera_answer(stream: &mut impl Read) -> io::Result<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let n = stream.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let parsed = resp
            .parse(&buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad answer: {e}")))?;
        if let httparse::Status::Complete(head_len) = parsed {
            let content_length = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                });
            let have = buf.len() - head_len;
            let done = match content_length {
                Some(len) => have >= len,
                None => n == 0,
            };
            if done || buf.len() > MAX_TESSERA_ANSWER_BYTES {
                let body_len = content_length.map_or(have, |len| len.min(have));
                let content_type = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-type"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                return Ok(Reply {
                    status: resp.code.unwrap_or(502),
                    content_type: content_type
                        .unwrap_or_else(|| "text/plain; charset=utf-8".to_owned()),
                    headers: Vec::new(),
                    body: buf[head_len..head_len + body_len].to_vec(),
                    close: false,
                });
            }
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tessera closed before a whole answer",
            ));
        }
        if buf.len() > MAX_TESSERA_ANSWER_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer head too large",
            ));
        }
    }
}

/// One client connection: requests in order, answers in order, until either side closes.
fn serve_connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = [0u8; READ_CHUNK];
    let mut out = Vec::with_capacity(READ_CHUNK);
    loop {
        let (request, len) = loop {
            match parse_head(&buf) {
                Ok(Some((request, len))) if buf.len() >= len => break (request, len),
                Ok(Some(_)) => {}
                Ok(None) if buf.len() >= MAX_HEAD_BYTES => {
                    return refuse(&mut stream, "request head too large");
                }
                Ok(None) => {}
                Err(e) => return refuse(&mut stream, &e),
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..len);
        let mut reply = route(shared, &request);
        reply.close |= request.close;
        out.clear();
        reply.write_to(&mut out);
        stream.write_all(&out)?;
        if reply.close {
            return Ok(());
        }
    }
}

/// Answers 400 to a request that cannot be parsed, and ends the connection.
fn refuse(stream: &mut TcpStream, why: &str) -> io::Result<()> {
    log(format_args!("bad request: {why} -> 400"));
    let mut out = Vec::new();
    Reply::bad_request(why).write_to(&mut out);
    stream.write_all(&out)
}

/// Accepts connections forever, one thread each.
fn serve(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log(format_args!("accept: {e}"));
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".to_owned(), |a: SocketAddr| a.to_string());
        let spawned = std::thread::Builder::new()
            .name("portal-conn".to_owned())
            .spawn(move || {
                if let Err(e) = serve_connection(stream, &shared) {
                    log(format_args!("connection from {peer}: {e}"));
                }
            });
        if let Err(e) = spawned {
            log(format_args!("no thread for a connection: {e}"));
        }
    }
}

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("tessera-portal: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(&opts.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tessera-portal: cannot listen on {}: {e}", opts.listen);
            std::process::exit(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tessera-portal: no local address for {}: {e}", opts.listen);
            std::process::exit(1);
        }
    };
    if opts.tessera.is_some() && opts.api_key.is_none() {
        log(format_args!(
            "tessera-portal: --tessera without --api-key: tessera will answer revokes with 401"
        ));
    }
    {
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "listening on {addr}");
        let _ = stdout.flush();
    }
    serve(listener, Arc::new(Shared::new(&opts)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(q).expect("valid query")
    }

    fn options(args: &[&str]) -> Options {
        let mut all = vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        match parse_args(all) {
            Ok(Command::Run(o)) => o,
            Ok(Command::Help) => panic!("help"),
            Err(e) => panic!("{e}"),
        }
    }

    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn percent_decoding_decodes_escapes_only() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b+c"));
        assert_eq!(percent_decode("%2Flive%2f").as_deref(), Some("/live/"));
        assert_eq!(
            percent_decode("Mozilla%2F5.0%20(X11)").as_deref(),
            Some("Mozilla/5.0 (X11)")
        );
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%FF").as_deref(), Some("\u{FFFD}"));
        assert_eq!(percent_decode(""), Some(String::new()));
        for broken in ["%", "%4", "%zz", "a%g0", "%%"] {
            assert_eq!(percent_decode(broken), None, "{broken}");
        }
    }

    #[test]
    fn percent_encoding_round_trips() {
        let s = "a b/c?d=e&f+g~h_i.j-k%é";
        assert_eq!(percent_encode("viewer-1"), "viewer-1");
        assert_eq!(percent_encode("a b"), "a%20b");
        assert_eq!(percent_decode(&percent_encode(s)).as_deref(), Some(s));
    }

    #[test]
    fn query_parsing() {
        let p = params("name=live&proto=hls&token=a%26b&&empty=&flag&name=second");
        assert_eq!(p.get("name"), Some("live"), "the first of repeated keys");
        assert_eq!(p.get("token"), Some("a&b"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(p.get("flag"), Some(""));
        assert_eq!(p.get("missing"), None);
        assert_eq!(Params::parse("token=%zz"), None);
        assert_eq!(params(""), Params::default());
    }

    #[test]
    fn command_line() {
        let o = options(&[
            "--token",
            "a",
            "--token",
            "b:bob",
            "--token",
            "c:carol:2",
            "--token",
            "d::3",
            "--duration",
            "5",
            "--delay-ms",
            "300",
            "--tessera",
            "http://127.0.0.1:8080",
            "--api-key",
            "k",
            "--unique",
        ]);
        assert_eq!(o.listen, "127.0.0.1:0");
        assert_eq!(o.tokens.len(), 4);
        assert_eq!(o.tokens[1].user.as_deref(), Some("bob"));
        assert_eq!(o.tokens[2].max_sessions, Some(2));
        assert_eq!(o.tokens[3].user, None);
        assert_eq!(o.tokens[3].max_sessions, Some(3));
        assert_eq!((o.duration_secs, o.delay_ms, o.unique), (5, 300, true));
        assert_eq!(o.api_key.as_deref(), Some("k"));
        assert_eq!(options(&[]).duration_secs, DEFAULT_DURATION_SECS);
        for bad in [
            &["--token", ""][..],
            &["--token", "a:b:many"],
            &["--duration", "x"],
            &["--delay-ms", "99999999"],
            &["--tessera", "https://x"],
            &["--what"],
            &["--token"],
        ] {
            let mut all = vec!["--listen".to_owned(), "x:1".to_owned()];
            all.extend(bad.iter().map(|a| (*a).to_owned()));
            assert!(parse_args(all).is_err(), "{bad:?}");
        }
        assert!(parse_args(Vec::new()).is_err(), "--listen is required");
    }

    #[test]
    fn tessera_urls() {
        let t = TesseraApi::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            (
                t.authority.as_str(),
                t.connect_to.as_str(),
                t.base_path.as_str()
            ),
            ("127.0.0.1:8080", "127.0.0.1:8080", "")
        );
        let t = TesseraApi::parse("http://[::1]/edge/").unwrap();
        assert_eq!(
            (t.connect_to.as_str(), t.base_path.as_str()),
            ("[::1]:80", "/edge")
        );
        let t = TesseraApi::parse("http://[::1]:9000").unwrap();
        assert_eq!(t.connect_to, "[::1]:9000");
        assert!(TesseraApi::parse("http:///x").is_err());
    }

    #[test]
    fn known_tokens_are_allowed_with_their_headers() {
        let mut portal = Portal::new(&options(&[
            "--token",
            "plain",
            "--token",
            "v1:alice:3",
            "--duration",
            "60",
        ]));
        let q = params("name=live&proto=hls&token=v1&request_type=new_session");
        assert_eq!(portal.note_auth(&q), Duration::ZERO);
        let r = portal.decide(&q);
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "X-AuthDuration"), Some("60"));
        assert_eq!(header(&r, "X-UserId"), Some("alice"));
        assert_eq!(header(&r, "X-Max-Sessions"), Some("3"));
        assert_eq!(header(&r, "X-Unique"), None);
        let r = portal.decide(&params("token=plain"));
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "X-UserId"), None);
        assert_eq!(header(&r, "X-Max-Sessions"), None);
        for unknown in ["token=stranger", "token=", "name=live"] {
            let r = portal.decide(&params(unknown));
            assert_eq!(r.status, 403, "{unknown}");
            assert_eq!(header(&r, "X-AuthDuration"), Some("60"));
            assert_eq!(header(&r, "X-UserId"), None);
        }
        let mut unique = Portal::new(&options(&["--token", "u:bob", "--unique"]));
        assert_eq!(
            header(&unique.decide(&params("token=u")), "X-Unique"),
            Some("true")
        );
    }

    #[test]
    fn revoked_tokens_and_users_are_denied() {
        let mut portal = Portal::new(&options(&[
            "--token", "t1:alice", "--token", "t2:alice", "--token", "t3:bob", "--token", "t4",
        ]));
        portal.revoke(&RevokeTarget::Token("t4".into()));
        portal.revoke(&RevokeTarget::User("alice".into()));
        for (token, status) in [("t1", 403), ("t2", 403), ("t3", 200), ("t4", 403)] {
            let r = portal.decide(&params(&format!("token={token}")));
            assert_eq!(r.status, status, "{token}");
        }
        portal.grant("t5".into(), Some("alice".into()), None);
        assert_eq!(
            portal.decide(&params("token=t5")).status,
            403,
            "alice stays revoked"
        );
        assert_eq!(
            RevokeTarget::from_params(&params("user=a%20b")).map(|t| t.tessera_query()),
            Ok("user_id=a%20b".to_owned())
        );
        assert_eq!(
            RevokeTarget::from_params(&params("token=x")).map(|t| t.tessera_query()),
            Ok("token=x".to_owned())
        );
        assert!(RevokeTarget::from_params(&params("token=x&user=y")).is_err());
        assert!(RevokeTarget::from_params(&params("")).is_err());
    }

    #[test]
    fn stats_count_every_question() {
        let mut portal = Portal::new(&options(&["--token", "a", "--token", "b c"]));
        for q in [
            "token=a&request_type=new_session",
            "token=a&request_type=update_session",
            "token=b%20c&request_type=new_session",
            "token=zz&request_type=new_session",
            "request_type=other",
        ] {
            let q = params(q);
            portal.note_auth(&q);
            portal.decide(&q);
        }
        assert_eq!(
            portal.stats_text(),
            "requests 5\nnew_session 3\nupdate_session 1\nallowed 3\ndenied 2\n\
             by_token a 2\nby_token b%20c 1\nby_token zz 1\n"
        );
    }

    #[test]
    fn delays_global_and_per_token() {
        let mut portal = Portal::new(&options(&["--delay-ms", "100"]));
        assert_eq!(
            portal.note_auth(&params("token=x")),
            Duration::from_millis(100)
        );
        assert_eq!(
            portal.control(&params("token=slow&delay_ms=1500")).status,
            200
        );
        assert_eq!(portal.control(&params("delay_ms=0")).status, 200);
        assert_eq!(
            portal.note_auth(&params("token=slow")),
            Duration::from_millis(1500)
        );
        assert_eq!(portal.note_auth(&params("token=x")), Duration::ZERO);
        for bad in ["", "token=slow", "delay_ms=x", "delay_ms=99999999"] {
            let r = portal.control(&params(bad));
            assert_eq!((r.status, r.close), (400, true), "{bad}");
        }
    }

    #[test]
    fn request_heads() {
        let raw = b"GET /auth?token=a HTTP/1.1\r\nHost: p\r\n\r\nGET /x";
        let (req, len) = parse_head(raw).unwrap().unwrap();
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/auth"));
        assert_eq!((req.query.as_str(), req.close), ("token=a", false));
        assert_eq!(len, raw.len() - "GET /x".len());
        let raw = b"POST /revoke?user=u HTTP/1.1\r\nContent-Length: 3\r\nConnection: Close\r\n\r\n";
        let (req, len) = parse_head(raw).unwrap().unwrap();
        assert!(req.close);
        assert_eq!(len, raw.len() + 3, "the body belongs to the request");
        let (req, _) = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(req.close, "HTTP/1.0 closes by default");
        let (req, _) = parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!req.close);
        assert!(
            parse_head(b"GET /auth HTTP/1.1\r\nHost:")
                .unwrap()
                .is_none()
        );
        for bad in [
            &b"GET\x01 / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
            b"GET * HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn replies_always_carry_content_length() {
        let mut out = Vec::new();
        let mut r = Reply::text(403, "denied\n");
        r.headers.push(("X-AuthDuration", "30".into()));
        r.write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 7\r\nX-AuthDuration: 30\r\n\r\ndenied\n"
        );
    }

    #[test]
    fn tessera_answers_are_passed_back() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{}\n\n\nextra";
        let r = read_tessera_answer(&mut &raw[..]).unwrap();
        assert_eq!(
            (r.status, r.content_type.as_str()),
            (200, "application/json")
        );
        assert_eq!(r.body, b"{}\n\n\n");
        let r =
            read_tessera_answer(&mut &b"HTTP/1.1 401 Unauthorized\r\n\r\nno key\n"[..]).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (401, &b"no key\n"[..]));
        assert!(read_tessera_answer(&mut &b"HTTP/1.1 200 OK\r\n"[..]).is_err());
        assert!(read_tessera_answer(&mut &b"garbage\r\n\r\n"[..]).is_err());
    }

    /// Reads one response with a `Content-Length` body: (status, head, body).
    fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String, String) {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(buf[..end].to_vec()).unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .expect("Content-Length")
                    .parse()
                    .unwrap();
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8(buf[end + 4..end + 4 + len].to_vec()).unwrap();
                    buf.drain(..end + 4 + len);
                    let status = head[9..12].parse().unwrap();
                    return (status, head, body);
                }
            }
            let n = s.read(&mut chunk).expect("read");
            assert!(n > 0, "closed early");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn start(args: &[&str]) -> SocketAddr {
        let opts = options(args);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::new(&opts));
        std::thread::spawn(move || serve(listener, shared));
        addr
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    #[test]
    fn keep_alive_two_requests_on_one_connection() {
        let addr = start(&["--token", "viewer-1:alice:2"]);
        let mut s = connect(addr);
        let mut buf = Vec::new();
        s.write_all(
            b"GET /auth?name=live&proto=hls&token=viewer-1&request_type=new_session&\
              user_agent=Lavf%2F59.27.100 HTTP/1.1\r\nHost: p\r\n\r\n",
        )
        .unwrap();
        let (status, head, body) = read_response(&mut s, &mut buf);
        assert_eq!((status, body.as_str()), (200, "allowed\n"));
        assert!(head.contains("\r\nX-AuthDuration: 30"), "{head}");
        assert!(head.contains("\r\nX-UserId: alice"), "{head}");
        assert!(head.contains("\r\nX-Max-Sessions: 2"), "{head}");
        // The same connection again; the client asks to close after this one.
        s.write_all(b"GET /stats HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (status, head, body) = read_response(&mut s, &mut buf);
        assert_eq!(status, 200);
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(body.starts_with("requests 1\nnew_session 1\n"), "{body}");
        assert!(body.contains("\nby_token viewer-1 1\n"), "{body}");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty() && buf.is_empty(),
            "the server closed after the answer"
        );
    }

    #[test]
    fn tokens_revoke_control_and_errors_over_http() {
        let addr = start(&[]);
        let mut s = connect(addr);
        let mut buf = Vec::new();
        s.write_all(b"POST /tokens?user=bob&max_sessions=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let (status, _, body) = read_response(&mut s, &mut buf);
        let token = body.trim_end().to_owned();
        assert_eq!(status, 200);
        assert!(
            token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
            "{token}"
        );
        // Pipelined: allowed, revoked (locally: no --tessera), denied, 404.
        let req = format!(
            "GET /auth?token={token} HTTP/1.1\r\n\r\n\
             POST /revoke?user=bob HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi\
             GET /auth?token={token} HTTP/1.1\r\n\r\n\
             GET /nope HTTP/1.1\r\n\r\n\
             POST /control?delay_ms=0 HTTP/1.1\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let (status, head, _) = read_response(&mut s, &mut buf);
        assert_eq!(status, 200);
        assert!(head.contains("X-UserId: bob") && head.contains("X-Max-Sessions: 1"));
        let (status, _, body) = read_response(&mut s, &mut buf);
        assert_eq!((status, body.as_str()), (200, "revoked locally\n"));
        assert_eq!(read_response(&mut s, &mut buf).0, 403);
        assert_eq!(read_response(&mut s, &mut buf).0, 404);
        assert_eq!(read_response(&mut s, &mut buf).0, 200);
        // A malformed request: 400, then the connection closes.
        s.write_all(b"GET /auth?token=%zz HTTP/1.1\r\n\r\n")
            .unwrap();
        let (status, head, _) = read_response(&mut s, &mut buf);
        assert_eq!(status, 400);
        assert!(head.contains("Connection: close"));
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        let mut s = connect(addr);
        s.write_all(b"\x01\x02 nonsense\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, &mut Vec::new()).0, 400);
    }

    #[test]
    fn revokes_are_pushed_to_tessera_with_the_key() {
        // A stand-in for tessera's operator API that records the request it gets.
        let fake = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake_addr = fake.local_addr().unwrap();
        let seen = std::thread::spawn(move || {
            let (mut c, _) = fake.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 1024];
            while !got.ends_with(b"\r\n\r\n") {
                let n = c.read(&mut chunk).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
            }
            c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 33\r\n\r\n\
                  {\"sessions_closed\":3,\"shards\":2}\n",
            )
            .unwrap();
            String::from_utf8(got).unwrap()
        });
        let tessera = format!("http://{fake_addr}");
        let addr = start(&[
            "--token",
            "doomed",
            "--tessera",
            &tessera,
            "--api-key",
            "KEY",
        ]);
        let mut s = connect(addr);
        let mut buf = Vec::new();
        s.write_all(
            b"POST /revoke?token=doomed HTTP/1.1\r\n\r\nGET /auth?token=doomed HTTP/1.1\r\n\r\n",
        )
        .unwrap();
        let (status, head, body) = read_response(&mut s, &mut buf);
        assert_eq!(
            (status, body.as_str()),
            (200, "{\"sessions_closed\":3,\"shards\":2}\n")
        );
        assert!(head.contains("Content-Type: application/json"), "{head}");
        assert_eq!(read_response(&mut s, &mut buf).0, 403);
        let got = seen.join().unwrap();
        assert!(
            got.starts_with("POST /streamer/api/v3/revoke?token=doomed HTTP/1.1\r\n"),
            "{got}"
        );
        assert!(got.contains("\r\nAuthorization: Bearer KEY\r\n"), "{got}");
        // tessera gone: 502, and the token stays revoked locally.
        let addr = start(&["--token", "t", "--tessera", &tessera]);
        let mut s = connect(addr);
        s.write_all(b"POST /revoke?token=t HTTP/1.1\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, &mut buf).0, 502);
    }
}
