//! The Flussonic-compatible HTTP portal backend protocol (spec §3), as pure functions.
//!
//! Owns: writing the complete HTTP/1.1 `GET` a portal expects (`write_backend_request`, to
//! a `config::BackendUrl`), and reading a portal's response head into a decision
//! (`parse_backend_response`, `parse_response_head`) together with the framing needed to
//! skip its body (`ResponseFraming`).
//!
//! Never does: I/O, clocks, caching, or choosing between several backends. The connection
//! state machine that carries these bytes is `auth::backend_client`; the shard decides what
//! to do with the answer (cache it for `duration`, apply `max_sessions`, ...).
//!
//! Compatibility notes (spec §3): `200` allows, `403` denies, `302` + `Location` redirects
//! HTTP clients, every other status is a backend error. `X-AuthDuration` (seconds, default
//! 30) is clamped to `MIN_AUTH_DURATION..=MAX_AUTH_DURATION`; `X-UserId`, `X-Max-Sessions`
//! and `X-Unique: true` (= at most one session) feed session limits (spec §4). Header values
//! a portal gets wrong never fail the decision: they fall back to defaults and are reported
//! in `HeaderNotes`, so the shell can log them.

use crate::auth::verdict::{DenyReason, Proto};
use crate::config::BackendUrl;
use crate::uri::percent_encode_into;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// `User-Agent` tessera sends to portals.
pub const BACKEND_USER_AGENT: &str = concat!("tessera/", env!("CARGO_PKG_VERSION"));
/// How long a decision holds when the portal sends no (usable) `X-AuthDuration`.
pub const DEFAULT_AUTH_DURATION: Duration = Duration::from_secs(30);
/// Shortest decision duration we accept: a portal answering `0` must not turn every HLS
/// request of every viewer into a backend round trip.
pub const MIN_AUTH_DURATION: Duration = Duration::from_secs(5);
/// Longest decision duration we accept (one day): a typo must not pin a decision forever.
pub const MAX_AUTH_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Largest `X-Max-Sessions` taken literally; larger values are clamped to it.
pub const MAX_SESSIONS_LIMIT: u32 = 100_000;
/// Longest `X-UserId` kept (bytes); longer ones are dropped (and noted).
pub const MAX_USER_ID_LEN: usize = 256;
/// Longest `Location` accepted from a `302`.
pub const MAX_LOCATION_LEN: usize = 4096;
/// Headers parsed in one response head; more is an error.
pub const MAX_RESPONSE_HEADERS: usize = 64;

/// Everything that can go wrong talking to a portal, with enough context for a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortalError {
    /// The response head is not valid HTTP/1.x.
    MalformedResponse { problem: &'static str },
    /// The response head grew past the limit before it was complete.
    HeadTooLarge { limit: usize },
    /// A well-formed response whose status is not 200, 403 or 302 (spec §3: backend error).
    UnexpectedStatus { status: u16 },
    /// `302` without a usable `Location`.
    BadRedirect { problem: &'static str },
    /// The body cannot be delimited (conflicting lengths, unknown transfer coding, ...).
    BadFraming { problem: &'static str },
    /// A chunked body is malformed.
    BadChunk { problem: &'static str, offset: u64 },
    /// The body is longer than we are willing to skip.
    BodyTooLarge { limit: u64 },
    /// No complete response before the deadline.
    Timeout { waited: Duration, received: usize },
    /// The portal closed the connection before a complete response. `reused` says whether
    /// the connection had served a request before (a stale keep-alive connection: retry
    /// once on a fresh one) and `received` how many response bytes had arrived.
    ClosedEarly { reused: bool, received: usize },
    /// Bytes arrived while no request was outstanding.
    UnsolicitedData { len: usize },
    /// `start` while a request is in flight, or on a closed connection.
    NotReady { state: &'static str },
}

impl PortalError {
    /// Whether the same request may be sent again at once on a fresh connection: only when
    /// a reused keep-alive connection was closed before any response byte arrived.
    pub fn is_stale_connection(&self) -> bool {
        matches!(
            self,
            PortalError::ClosedEarly {
                reused: true,
                received: 0
            }
        )
    }
}

impl fmt::Display for PortalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortalError::MalformedResponse { problem } => {
                write!(f, "malformed backend response: {problem}")
            }
            PortalError::HeadTooLarge { limit } => {
                write!(f, "backend response head larger than {limit} bytes")
            }
            PortalError::UnexpectedStatus { status } => {
                write!(
                    f,
                    "backend answered status {status} (expected 200, 403 or 302)"
                )
            }
            PortalError::BadRedirect { problem } => write!(f, "backend redirect: {problem}"),
            PortalError::BadFraming { problem } => {
                write!(f, "backend response body framing: {problem}")
            }
            PortalError::BadChunk { problem, offset } => {
                write!(f, "backend chunked body at byte {offset}: {problem}")
            }
            PortalError::BodyTooLarge { limit } => {
                write!(f, "backend response body larger than {limit} bytes")
            }
            PortalError::Timeout { waited, received } => write!(
                f,
                "backend did not answer within {} ms ({received} response bytes received)",
                waited.as_millis()
            ),
            PortalError::ClosedEarly { reused, received } => write!(
                f,
                "backend closed the connection after {received} response bytes{}",
                if *reused {
                    " (reused keep-alive connection)"
                } else {
                    ""
                }
            ),
            PortalError::UnsolicitedData { len } => {
                write!(f, "backend sent {len} bytes with no request outstanding")
            }
            PortalError::NotReady { state } => {
                write!(f, "backend connection cannot send a request while {state}")
            }
        }
    }
}

impl std::error::Error for PortalError {}

/// `request_type`, with what an update reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    NewSession,
    /// Re-authorization of a running session (spec §4): how long it has played and how many
    /// bytes it was sent.
    UpdateSession {
        duration: Duration,
        bytes: u64,
    },
}

/// What the portal is told about one play request (spec §3).
#[derive(Clone, Copy, Debug)]
pub struct BackendQuery<'a> {
    /// The stream name.
    pub name: &'a str,
    pub proto: Proto,
    pub ip: IpAddr,
    /// The decoded token; `None` is sent as an empty `token=`.
    pub token: Option<&'a [u8]>,
    pub session_id: &'a str,
    pub request_type: RequestType,
    /// 1 for the first request of a session, then counting up.
    pub request_number: u64,
    /// Sessions open on this stream.
    pub stream_clients: u64,
    /// Sessions open on the server.
    pub total_clients: u64,
    /// The client's query string as it arrived (without `?`).
    pub qs: &'a [u8],
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
}

/// Appends a complete HTTP/1.1 `GET` for `q` to `out`: the backend's path and its own query,
/// then every spec parameter percent-encoded, `Host`, `User-Agent: tessera/VERSION`,
/// `Connection: keep-alive`.
pub fn write_backend_request(url: &BackendUrl, q: &BackendQuery<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(url.target().as_bytes());
    if !url.target().contains('?') {
        out.push(b'?');
    } else if !url.target().ends_with(['?', '&']) {
        // `/auth?` and `/auth?a=b&` already end where a parameter can start.
        out.push(b'&');
    }
    out.extend_from_slice(b"name=");
    percent_encode_into(q.name.as_bytes(), out);
    write_params_and_headers(url, q, out);
}

fn write_params_and_headers(url: &BackendUrl, q: &BackendQuery<'_>, out: &mut Vec<u8>) {
    let param = |key: &str, value: &[u8], out: &mut Vec<u8>| {
        out.push(b'&');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        percent_encode_into(value, out);
    };
    let ip = q.ip.to_string();
    param("proto", q.proto.as_str().as_bytes(), out);
    param("ip", ip.as_bytes(), out);
    param("token", q.token.unwrap_or_default(), out);
    param("session_id", q.session_id.as_bytes(), out);
    let request_type: &[u8] = match q.request_type {
        RequestType::NewSession => b"new_session",
        RequestType::UpdateSession { .. } => b"update_session",
    };
    param("request_type", request_type, out);
    param(
        "request_number",
        q.request_number.to_string().as_bytes(),
        out,
    );
    param(
        "stream_clients",
        q.stream_clients.to_string().as_bytes(),
        out,
    );
    param("total_clients", q.total_clients.to_string().as_bytes(), out);
    param("qs", q.qs, out);
    param("user_agent", q.user_agent.unwrap_or_default(), out);
    param("referer", q.referer.unwrap_or_default(), out);
    if let RequestType::UpdateSession { duration, bytes } = q.request_type {
        param("duration", duration.as_secs().to_string().as_bytes(), out);
        param("bytes", bytes.to_string().as_bytes(), out);
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(url.authority().as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: ");
    out.extend_from_slice(BACKEND_USER_AGENT.as_bytes());
    out.extend_from_slice(b"\r\nConnection: keep-alive\r\n\r\n");
}

/// What the portal decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendDecision {
    Allow,
    Deny(DenyReason),
    /// `302 Location`: HTTP clients are sent there; other protocols are denied
    /// (see `for_proto`).
    Redirect(Box<str>),
}

impl BackendDecision {
    /// The decision as it applies to `proto`: a redirect only means something to a client
    /// that fetches over HTTP; everyone else is denied.
    pub fn for_proto(&self, proto: Proto) -> BackendDecision {
        match self {
            BackendDecision::Redirect(_) if !is_http_proto(proto) => {
                BackendDecision::Deny(DenyReason::BackendDenied)
            }
            other => other.clone(),
        }
    }
}

/// Protocols whose clients follow an HTTP redirect for a play request.
pub fn is_http_proto(proto: Proto) -> bool {
    matches!(
        proto,
        Proto::Hls | Proto::LlHls | Proto::Dash | Proto::Mss | Proto::TsHttp
    )
}

/// A portal's answer with the headers that qualify it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendAnswer {
    pub decision: BackendDecision,
    /// How long the decision holds (`X-AuthDuration`, clamped), allow and deny alike.
    pub duration: Duration,
    /// `X-UserId`, when present and usable.
    pub user_id: Option<Box<str>>,
    /// `X-Max-Sessions`, or 1 for `X-Unique: true` (the smaller when both are sent).
    pub max_sessions: Option<NonZeroU32>,
    /// Header values that were ignored or adjusted; log them when not empty.
    pub notes: HeaderNotes,
}

/// Portal header values that were not taken as sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderNotes {
    /// `X-AuthDuration` was not a non-negative integer: the default was used.
    pub auth_duration_unparsable: bool,
    /// `X-AuthDuration` was outside `MIN_AUTH_DURATION..=MAX_AUTH_DURATION`: clamped.
    pub auth_duration_clamped: bool,
    /// `X-UserId` was empty, too long or not printable UTF-8: ignored.
    pub user_id_ignored: bool,
    /// `X-Max-Sessions` was not a positive integer: ignored.
    pub max_sessions_unparsable: bool,
    /// `X-Max-Sessions` was above `MAX_SESSIONS_LIMIT`: clamped.
    pub max_sessions_clamped: bool,
    /// A session limit without `X-UserId` has nothing to count sessions by.
    pub max_sessions_without_user: bool,
}

impl HeaderNotes {
    pub fn is_empty(&self) -> bool {
        *self == HeaderNotes::default()
    }
}

impl fmt::Display for HeaderNotes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = [
            (
                self.auth_duration_unparsable,
                "X-AuthDuration unparsable, default 30 s used",
            ),
            (
                self.auth_duration_clamped,
                "X-AuthDuration out of range 5..=86400 s, clamped",
            ),
            (self.user_id_ignored, "X-UserId unusable, ignored"),
            (
                self.max_sessions_unparsable,
                "X-Max-Sessions unparsable, ignored",
            ),
            (
                self.max_sessions_clamped,
                "X-Max-Sessions too large, clamped",
            ),
            (
                self.max_sessions_without_user,
                "session limit without X-UserId has no effect",
            ),
        ];
        let mut first = true;
        for (_, text) in all.iter().filter(|(set, _)| *set) {
            if !first {
                f.write_str("; ")?;
            }
            f.write_str(text)?;
            first = false;
        }
        Ok(())
    }
}

/// How the body after a response head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// `Content-Length` bytes (0 for 204/304 and for `Content-Length: 0`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither header: the body runs until the portal closes the connection. The decision
    /// is complete with the head; the connection cannot be reused.
    UntilClose,
}

/// Everything a complete response head says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Length of the head in bytes (through the blank line).
    pub head_len: usize,
    pub framing: ResponseFraming,
    /// Whether the connection may carry another request after this response's body.
    pub keep_alive: bool,
    /// The decision, or why this status is a backend error. The framing above is valid
    /// either way, so a `500` with a body does not cost the connection.
    pub answer: Result<BackendAnswer, PortalError>,
}

/// Parses a complete response head into the portal's decision (spec §3).
pub fn parse_backend_response(head: &[u8]) -> Result<BackendAnswer, PortalError> {
    parse_response_head(head)?.answer
}

/// Parses a complete response head (through `\r\n\r\n`): status, decision headers, body
/// framing and keep-alive. An `Err` here means the head itself is unusable and the
/// connection must be closed.
pub fn parse_response_head(head: &[u8]) -> Result<ResponseHead, PortalError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(head) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(PortalError::MalformedResponse {
                problem: "incomplete head",
            });
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(PortalError::MalformedResponse {
                problem: "too many headers",
            });
        }
        Err(_) => {
            return Err(PortalError::MalformedResponse {
                problem: "not an HTTP/1.x response head",
            });
        }
    };
    // Both are set by a complete parse; the fallbacks are never used.
    let status = resp.code.unwrap_or(0);
    let version = resp.version.unwrap_or(0);
    if (100..200).contains(&status) {
        return Err(PortalError::MalformedResponse {
            problem: "interim (1xx) response to a GET without Expect",
        });
    }
    let framing = framing(status, resp.headers)?;
    let mut keep_alive = version == 1 && framing != ResponseFraming::UntilClose;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection")
            && h.value
                .split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"close"))
        {
            keep_alive = false;
        }
    }
    let answer = decision(status, resp.headers).map(|decision| {
        let mut answer = BackendAnswer {
            decision,
            duration: DEFAULT_AUTH_DURATION,
            user_id: None,
            max_sessions: None,
            notes: HeaderNotes::default(),
        };
        read_decision_headers(resp.headers, &mut answer);
        answer
    });
    Ok(ResponseHead {
        status,
        head_len,
        framing,
        keep_alive,
        answer,
    })
}

fn decision(status: u16, headers: &[httparse::Header<'_>]) -> Result<BackendDecision, PortalError> {
    match status {
        200 => Ok(BackendDecision::Allow),
        403 => Ok(BackendDecision::Deny(DenyReason::BackendDenied)),
        302 => {
            let Some(h) = headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("location"))
            else {
                return Err(PortalError::BadRedirect {
                    problem: "302 without Location",
                });
            };
            let value = trim(h.value);
            if value.is_empty() || value.len() > MAX_LOCATION_LEN {
                return Err(PortalError::BadRedirect {
                    problem: "Location empty or longer than 4096 bytes",
                });
            }
            if !value.iter().all(u8::is_ascii_graphic) {
                return Err(PortalError::BadRedirect {
                    problem: "Location has spaces, control or non-ASCII bytes",
                });
            }
            // All bytes are ASCII, so this is valid UTF-8.
            match std::str::from_utf8(value) {
                Ok(s) => Ok(BackendDecision::Redirect(s.into())),
                Err(_) => Err(PortalError::BadRedirect {
                    problem: "Location is not ASCII",
                }),
            }
        }
        status => Err(PortalError::UnexpectedStatus { status }),
    }
}

fn read_decision_headers(headers: &[httparse::Header<'_>], answer: &mut BackendAnswer) {
    let mut seen_duration = false;
    let mut seen_user = false;
    let mut max_sessions: Option<u32> = None;
    let tighten = |limit: u32, max: &mut Option<u32>| {
        *max = Some(max.map_or(limit, |m| m.min(limit)));
    };
    for h in headers {
        let value = trim(h.value);
        if h.name.eq_ignore_ascii_case("x-authduration") && !seen_duration {
            seen_duration = true;
            match parse_decimal(value) {
                None => answer.notes.auth_duration_unparsable = true,
                Some(secs) => {
                    let wanted = Duration::from_secs(secs);
                    answer.duration = wanted.clamp(MIN_AUTH_DURATION, MAX_AUTH_DURATION);
                    answer.notes.auth_duration_clamped = answer.duration != wanted;
                }
            }
        } else if h.name.eq_ignore_ascii_case("x-userid") && !seen_user {
            seen_user = true;
            let usable = !value.is_empty()
                && value.len() <= MAX_USER_ID_LEN
                && value.iter().all(|&b| b >= 0x20 && b != 0x7f);
            match std::str::from_utf8(value) {
                Ok(s) if usable => answer.user_id = Some(s.into()),
                _ => answer.notes.user_id_ignored = true,
            }
        } else if h.name.eq_ignore_ascii_case("x-max-sessions") {
            match parse_decimal(value) {
                Some(0) | None => answer.notes.max_sessions_unparsable = true,
                Some(n) => {
                    if n > u64::from(MAX_SESSIONS_LIMIT) {
                        answer.notes.max_sessions_clamped = true;
                    }
                    let n = u32::try_from(n.min(u64::from(MAX_SESSIONS_LIMIT)))
                        .unwrap_or(MAX_SESSIONS_LIMIT);
                    tighten(n, &mut max_sessions);
                }
            }
        } else if h.name.eq_ignore_ascii_case("x-unique") && value.eq_ignore_ascii_case(b"true") {
            tighten(1, &mut max_sessions);
        }
    }
    answer.max_sessions = max_sessions.and_then(NonZeroU32::new);
    if answer.max_sessions.is_some() && answer.user_id.is_none() {
        answer.notes.max_sessions_without_user = true;
    }
}

/// RFC 9112 §6.3, for a response to a GET: 204/304 have no body; chunked when that is the
/// transfer coding; else `Content-Length`; else until close. Anything ambiguous (both
/// headers, differing lengths, another transfer coding) is an error: a portal response we
/// cannot delimit could smuggle a second response into the next request's answer.
fn framing(status: u16, headers: &[httparse::Header<'_>]) -> Result<ResponseFraming, PortalError> {
    if status == 204 || status == 304 {
        return Ok(ResponseFraming::Length(0));
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                return Err(PortalError::BadFraming {
                    problem: "transfer coding other than a single chunked",
                });
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = parse_decimal(trim(h.value)) else {
                return Err(PortalError::BadFraming {
                    problem: "Content-Length is not a number",
                });
            };
            if length.is_some_and(|l| l != n) {
                return Err(PortalError::BadFraming {
                    problem: "differing Content-Length headers",
                });
            }
            length = Some(n);
        }
    }
    match (chunked, length) {
        (true, Some(_)) => Err(PortalError::BadFraming {
            problem: "both Content-Length and Transfer-Encoding",
        }),
        (true, None) => Ok(ResponseFraming::Chunked),
        (false, Some(n)) => Ok(ResponseFraming::Length(n)),
        (false, None) => Ok(ResponseFraming::UntilClose),
    }
}

/// A decimal integer of at most 18 digits (so it fits any u64 arithmetic we do), nothing
/// else: no sign, no spaces inside, no `+`.
fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> BackendUrl {
        BackendUrl::parse(s).expect("test URL parses")
    }

    fn query(request_type: RequestType) -> BackendQuery<'static> {
        BackendQuery {
            name: "news/hd 1",
            proto: Proto::Hls,
            ip: "192.0.2.7".parse().unwrap(),
            token: Some(b"t&k=1"),
            session_id: "3f2a5d7e-1c2b-4a5d-9e8f-0123456789ab",
            request_type,
            request_number: 1,
            stream_clients: 3,
            total_clients: 10,
            qs: b"token=t%26k%3D1&x=y",
            user_agent: Some(b"VLC/3.0 (Linux)"),
            referer: None,
        }
    }

    #[test]
    fn new_session_request_bytes() {
        let mut out = Vec::new();
        write_backend_request(
            &url("http://portal.example:8081/auth?key=abc"),
            &query(RequestType::NewSession),
            &mut out,
        );
        let expected = format!(
            "GET /auth?key=abc&name=news%2Fhd%201&proto=hls&ip=192.0.2.7&token=t%26k%3D1\
             &session_id=3f2a5d7e-1c2b-4a5d-9e8f-0123456789ab&request_type=new_session\
             &request_number=1&stream_clients=3&total_clients=10\
             &qs=token%3Dt%2526k%253D1%26x%3Dy&user_agent=VLC%2F3.0%20%28Linux%29&referer= HTTP/1.1\r\n\
             Host: portal.example:8081\r\n\
             User-Agent: tessera/{}\r\n\
             Connection: keep-alive\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn update_session_request_bytes() {
        let mut q = query(RequestType::UpdateSession {
            duration: Duration::from_millis(61_900),
            bytes: 123_456,
        });
        q.ip = "2001:db8::7".parse().unwrap();
        q.proto = Proto::Rtmp;
        q.token = None;
        q.request_number = 4;
        q.qs = b"";
        q.user_agent = None;
        q.referer = Some(b"http://site/p?a=1");
        let mut out = Vec::new();
        write_backend_request(&url("http://[::1]/"), &q, &mut out);
        let expected = format!(
            "GET /?name=news%2Fhd%201&proto=rtmp&ip=2001%3Adb8%3A%3A7&token=\
             &session_id=3f2a5d7e-1c2b-4a5d-9e8f-0123456789ab&request_type=update_session\
             &request_number=4&stream_clients=3&total_clients=10&qs=&user_agent=\
             &referer=http%3A%2F%2Fsite%2Fp%3Fa%3D1&duration=61&bytes=123456 HTTP/1.1\r\n\
             Host: [::1]\r\n\
             User-Agent: tessera/{}\r\n\
             Connection: keep-alive\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn backend_query_joins_existing_query() {
        for (u, start) in [
            ("http://p/auth?", "GET /auth?name=s&"),
            ("http://p/auth?a=1&", "GET /auth?a=1&name=s&"),
            ("http://p/auth", "GET /auth?name=s&"),
            ("http://p?k", "GET /?k&name=s&"),
        ] {
            let mut q = query(RequestType::NewSession);
            q.name = "s";
            let mut out = Vec::new();
            write_backend_request(&url(u), &q, &mut out);
            assert!(out.starts_with(start.as_bytes()), "{u}");
        }
    }

    fn answer(head: &str) -> Result<BackendAnswer, PortalError> {
        parse_backend_response(head.as_bytes())
    }

    #[test]
    fn allow_with_defaults() {
        let a = answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(a.decision, BackendDecision::Allow);
        assert_eq!(a.duration, DEFAULT_AUTH_DURATION);
        assert_eq!((a.user_id, a.max_sessions), (None, None));
        assert!(a.notes.is_empty());
    }

    #[test]
    fn deny_and_headers() {
        let a = answer(
            "HTTP/1.1 403 Forbidden\r\nx-authduration: 120\r\nX-UserId: user-42\r\n\
             X-Max-Sessions: 3\r\nContent-Length: 9\r\n\r\n",
        )
        .unwrap();
        assert_eq!(a.decision, BackendDecision::Deny(DenyReason::BackendDenied));
        assert_eq!(a.duration, Duration::from_secs(120));
        assert_eq!(a.user_id.as_deref(), Some("user-42"));
        assert_eq!(a.max_sessions, NonZeroU32::new(3));
        assert!(a.notes.is_empty(), "{}", a.notes);
    }

    #[test]
    fn unique_means_one_session() {
        let a =
            answer("HTTP/1.1 200 OK\r\nX-UserId: u\r\nX-Max-Sessions: 5\r\nX-Unique: TRUE\r\n\r\n")
                .unwrap();
        assert_eq!(a.max_sessions, NonZeroU32::new(1));
        let a = answer("HTTP/1.1 200 OK\r\nX-UserId: u\r\nX-Unique: false\r\n\r\n").unwrap();
        assert_eq!(a.max_sessions, None);
        let a = answer("HTTP/1.1 200 OK\r\nX-Unique: true\r\n\r\n").unwrap();
        assert!(a.notes.max_sessions_without_user);
    }

    #[test]
    fn redirect() {
        let a =
            answer("HTTP/1.1 302 Found\r\nLocation: http://other/s/index.m3u8\r\n\r\n").unwrap();
        assert_eq!(
            a.decision,
            BackendDecision::Redirect("http://other/s/index.m3u8".into())
        );
        assert_eq!(a.decision.for_proto(Proto::Hls), a.decision);
        assert_eq!(
            a.decision.for_proto(Proto::Rtmp),
            BackendDecision::Deny(DenyReason::BackendDenied)
        );
        assert_eq!(
            answer("HTTP/1.1 302 Found\r\n\r\n"),
            Err(PortalError::BadRedirect {
                problem: "302 without Location"
            })
        );
        assert!(answer("HTTP/1.1 302 Found\r\nLocation: \r\n\r\n").is_err());
    }

    #[test]
    fn other_statuses_are_backend_errors() {
        for status in [201, 204, 301, 304, 401, 404, 500, 502, 503] {
            let head = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(
                answer(&head),
                Err(PortalError::UnexpectedStatus { status }),
                "{status}"
            );
            // The head is fine: the connection survives.
            let h = parse_response_head(head.as_bytes()).unwrap();
            assert!(h.keep_alive);
            assert_eq!(h.framing, ResponseFraming::Length(0));
        }
        assert!(matches!(
            answer("HTTP/1.1 100 Continue\r\n\r\n"),
            Err(PortalError::MalformedResponse { .. })
        ));
    }

    #[test]
    fn auth_duration_clamped_and_defaults() {
        let d = |v: &str| {
            let a = answer(&format!("HTTP/1.1 200 OK\r\nX-AuthDuration: {v}\r\n\r\n")).unwrap();
            (a.duration.as_secs(), a.notes)
        };
        assert_eq!(d("60").0, 60);
        assert_eq!(d(" 45 ").0, 45);
        let (secs, notes) = d("0");
        assert_eq!(secs, 5);
        assert!(notes.auth_duration_clamped);
        let (secs, notes) = d("99999999");
        assert_eq!(secs, 86400);
        assert!(notes.auth_duration_clamped);
        assert!(notes.to_string().contains("clamped"));
        for bad in [
            "-5",
            "1e3",
            "+7",
            "",
            "30s",
            "3.5",
            "99999999999999999999999",
        ] {
            let (secs, notes) = d(bad);
            assert_eq!(secs, 30, "{bad:?}");
            assert!(notes.auth_duration_unparsable, "{bad:?}");
        }
    }

    #[test]
    fn hostile_header_values() {
        let long = "9".repeat(10_000);
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-AuthDuration: {long}\r\nX-UserId: {long}\r\n\
             X-Max-Sessions: -3\r\n\r\n"
        );
        let a = answer(&head).unwrap();
        assert_eq!(a.duration, DEFAULT_AUTH_DURATION);
        assert_eq!(a.user_id, None);
        assert_eq!(a.max_sessions, None);
        assert!(a.notes.user_id_ignored && a.notes.max_sessions_unparsable);

        let mut raw =
            b"HTTP/1.1 200 OK\r\nX-UserId: \xff\xfe\x80\r\nX-Max-Sessions: 0\r\n\r\n".to_vec();
        let a = parse_backend_response(&raw).unwrap();
        assert_eq!((a.user_id, a.max_sessions), (None, None));
        raw = b"HTTP/1.1 200 OK\r\nX-UserId: caf\xc3\xa9\r\nX-Max-Sessions: 10000000\r\n\r\n"
            .to_vec();
        let a = parse_backend_response(&raw).unwrap();
        assert_eq!(a.user_id.as_deref(), Some("caf\u{e9}"));
        assert_eq!(a.max_sessions, NonZeroU32::new(MAX_SESSIONS_LIMIT));
        assert!(a.notes.max_sessions_clamped);
        // Too many headers is an error, not a panic.
        let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
        assert!(answer(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).is_err());
    }

    #[test]
    fn framing_rules() {
        let f = |h: &str| parse_response_head(h.as_bytes()).map(|r| (r.framing, r.keep_alive));
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Ok((ResponseFraming::Length(12), true))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 12\r\ncontent-length: 12\r\n\r\n"),
            Ok((ResponseFraming::Length(12), true))
        );
        assert_eq!(
            f("HTTP/1.1 403 No\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok((ResponseFraming::Chunked, true))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\n\r\n"),
            Ok((ResponseFraming::UntilClose, false))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive, close\r\n\r\n"),
            Ok((ResponseFraming::Length(0), false))
        );
        assert_eq!(
            f("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Ok((ResponseFraming::Length(0), false))
        );
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(f(bad), Err(PortalError::BadFraming { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            f("HTTP/1.1 200 OK\r\n"),
            Err(PortalError::MalformedResponse { .. })
        ));
        assert!(matches!(
            f("HTTP/2 200\r\n\r\n"),
            Err(PortalError::MalformedResponse { .. })
        ));
    }

    /// Deterministic garbage (xorshift64) and mutated real heads never panic the parser.
    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seed = b"HTTP/1.1 302 Found\r\nLocation: /x\r\nX-AuthDuration: 10\r\nX-UserId: u\r\n\
                     X-Max-Sessions: 2\r\nX-Unique: true\r\nContent-Length: 3\r\n\r\n";
        for round in 0..20_000 {
            let mut buf = if round % 2 == 0 {
                seed.to_vec()
            } else {
                let len = (next() % 300) as usize;
                (0..len).map(|_| next() as u8).collect()
            };
            let flips = next() % 8;
            for _ in 0..flips {
                if buf.is_empty() {
                    break;
                }
                let i = (next() as usize) % buf.len();
                buf[i] = next() as u8;
            }
            let _ = parse_response_head(&buf);
            let _ = parse_backend_response(&buf);
            if let Ok(s) = std::str::from_utf8(&buf) {
                let _ = BackendUrl::parse(s);
            }
        }
    }
}
