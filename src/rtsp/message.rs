//! RTSP/1.0 message framing: check-then-parse requests, skip interleaved binary frames, write
//! responses, and normalize request-URIs (RFC 2326 §4, §6, §7, §10.12, §12; RFC 3986 §3).
//!
//! Owns: finding where one request ends (head terminated by an empty line, then
//! `Content-Length` bytes of body), the limits that protect a connection (head size, URI
//! length, body size, header count), the request line and header syntax, the status codes
//! and reason phrases we answer with (§7.1.1), and the request-URI normalization that routing
//! and authorization see ([`RequestUrl`]).
//!
//! Never does: decide what a method means (that is [`super::session`]), allocate while framing
//! (a [`Request`] borrows the input; only its header list is a `Vec`), or accept anything it
//! is unsure about: ambiguous framing (duplicate conflicting `Content-Length`, folded headers,
//! non-UTF-8 heads) is an error, because a proxy in front of us might frame it differently.

use crate::uri::{Target, TargetError};
use std::fmt;

/// Named limits of one RTSP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtspLimits {
    /// Longest request head (request line + headers + empty line).
    pub max_head: usize,
    /// Longest request-URI.
    pub max_uri: usize,
    /// Longest request body (`Content-Length`).
    pub max_body: usize,
    /// Most header lines in one request.
    pub max_headers: usize,
}

impl Default for RtspLimits {
    fn default() -> Self {
        RtspLimits {
            max_head: 16 * 1024,
            max_uri: 4 * 1024,
            max_body: 64 * 1024,
            max_headers: 64,
        }
    }
}

/// An RTSP status code (RFC 2326 §7.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    pub const OK: Status = Status(200);
    pub const BAD_REQUEST: Status = Status(400);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const NOT_ACCEPTABLE: Status = Status(406);
    pub const REQUEST_ENTITY_TOO_LARGE: Status = Status(413);
    pub const REQUEST_URI_TOO_LARGE: Status = Status(414);
    pub const PARAMETER_NOT_UNDERSTOOD: Status = Status(451);
    pub const SESSION_NOT_FOUND: Status = Status(454);
    pub const METHOD_NOT_VALID_IN_THIS_STATE: Status = Status(455);
    pub const AGGREGATE_OPERATION_NOT_ALLOWED: Status = Status(459);
    pub const UNSUPPORTED_TRANSPORT: Status = Status(461);
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    pub const NOT_IMPLEMENTED: Status = Status(501);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);

    /// The reason phrase of RFC 2326 §7.1.1.
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Large",
            451 => "Parameter Not Understood",
            454 => "Session Not Found",
            455 => "Method Not Valid in This State",
            459 => "Aggregate Operation Not Allowed",
            461 => "Unsupported Transport",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "RTSP Version not supported",
            _ => "Unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

/// Request methods (RFC 2326 §10). Method names are case-sensitive (§6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Options,
    Describe,
    Setup,
    Play,
    Pause,
    Teardown,
    GetParameter,
    SetParameter,
    Announce,
    Record,
    Redirect,
    /// Any other token.
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "ANNOUNCE" => Method::Announce,
            "RECORD" => Method::Record,
            "REDIRECT" => Method::Redirect,
            _ => Method::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Announce => "ANNOUNCE",
            Method::Record => "RECORD",
            Method::Redirect => "REDIRECT",
            Method::Other => "OTHER",
        }
    }
}

/// One framed request, borrowing the input buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The method token as sent.
    pub method_name: &'a str,
    pub uri: &'a str,
    /// Header lines in order, names as sent, values trimmed.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The first header called `name` (case-insensitive, §4.2 via RFC 2616 §4.2).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        find_header(&self.headers, name)
    }

    /// The CSeq (§12.17): required, one decimal number. `None` when missing, repeated with
    /// another value, or not a number.
    pub fn cseq(&self) -> Option<u32> {
        let mut found = None;
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case("CSeq") {
                let value = parse_decimal(v)?;
                if found.is_some_and(|f| f != value) {
                    return None;
                }
                found = Some(value);
            }
        }
        found
    }
}

/// What [`parse`] (requests) or [`parse_response`] (responses) found at the start of the
/// buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<'a, M = Request<'a>> {
    /// A complete request or response of `len` bytes (head and body).
    Message { message: M, len: usize },
    /// A complete interleaved binary frame (`$`, channel, u16 length, data; §10.12) of
    /// `len` bytes: RTCP receiver reports a client sends over TCP, or a track's RTP.
    Interleaved {
        channel: u8,
        payload: &'a [u8],
        len: usize,
    },
    /// `len` bytes of empty lines between messages, to be skipped.
    Blank { len: usize },
}

/// Why the input cannot be framed. Framing errors are fatal for the connection: after one we
/// no longer know where the next request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageError {
    pub kind: MessageErrorKind,
    /// Byte offset of the problem, relative to the buffer given to [`parse`].
    pub offset: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageErrorKind {
    HeadTooLarge,
    UriTooLong,
    BodyTooLarge,
    TooManyHeaders,
    BadRequestLine,
    BadVersion,
    BadHeader,
    NotUtf8,
    BadContentLength,
    BadStatusLine,
}

impl MessageError {
    /// The status this error is answered with before the connection closes.
    pub fn status(&self) -> Status {
        match self.kind {
            MessageErrorKind::UriTooLong => Status::REQUEST_URI_TOO_LARGE,
            MessageErrorKind::BodyTooLarge => Status::REQUEST_ENTITY_TOO_LARGE,
            MessageErrorKind::BadVersion => Status::VERSION_NOT_SUPPORTED,
            _ => Status::BAD_REQUEST,
        }
    }
}

impl fmt::Display for MessageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageErrorKind::HeadTooLarge => "request head too large",
            MessageErrorKind::UriTooLong => "request-URI too long",
            MessageErrorKind::BodyTooLarge => "request body too large",
            MessageErrorKind::TooManyHeaders => "too many header lines",
            MessageErrorKind::BadRequestLine => "malformed request line",
            MessageErrorKind::BadVersion => "unsupported RTSP version",
            MessageErrorKind::BadHeader => "malformed header line",
            MessageErrorKind::NotUtf8 => "request head is not UTF-8",
            MessageErrorKind::BadContentLength => "invalid Content-Length",
            MessageErrorKind::BadStatusLine => "malformed status line",
        })
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for MessageError {}

/// Frames the message at the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse<'a>(buf: &'a [u8], limits: &RtspLimits) -> Result<Option<Parsed<'a>>, MessageError> {
    let err = |kind, offset| Err(MessageError { kind, offset });
    if let Some(between) = between_messages(buf) {
        return Ok(between);
    }
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if !is_token_byte(first) {
        return err(MessageErrorKind::BadRequestLine, 0);
    }

    // Check: is a whole head buffered? Bounded by max_head, so a slow sender cannot make us
    // rescan an ever-growing buffer.
    let window = &buf[..buf.len().min(limits.max_head)];
    let Some(head_len) = find_head_end(window) else {
        if memchr::memchr(b'\n', window).is_none() && window.len() > limits.max_uri + 64 {
            return err(MessageErrorKind::UriTooLong, 0);
        }
        if buf.len() >= limits.max_head {
            return err(MessageErrorKind::HeadTooLarge, limits.max_head);
        }
        return Ok(None);
    };

    // Parse.
    let mut lines = head_lines(&buf[..head_len])?;
    let (line_offset, request_line) = lines.next().unwrap_or((0, ""));
    let (method_name, uri) =
        parse_request_line(request_line, limits).map_err(|kind| MessageError {
            kind,
            offset: line_offset,
        })?;
    let (headers, content_length) = parse_headers(lines, limits)?;
    let body_len = content_length;
    let Some(body) = buf.get(head_len..head_len + body_len) else {
        return Ok(None);
    };
    Ok(Some(Parsed::Message {
        message: Request {
            method: Method::parse(method_name),
            method_name,
            uri,
            headers,
            body,
        },
        len: head_len + body_len,
    }))
}

/// The first header called `name` (case-insensitive, §4.2 via RFC 2616 §4.2).
fn find_header<'a>(headers: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

/// One framed response (the edge's RTSP client reads these), borrowing the input buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub status: u16,
    /// Header lines in order, names as sent, values trimmed.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        find_header(&self.headers, name)
    }

    /// Every header called `name`, in order (a 401 may offer several challenges).
    pub fn headers_named<'b>(&'b self, name: &'b str) -> impl Iterator<Item = &'a str> + 'b {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }
}

/// Frames the response (or interleaved frame) at the start of `buf`, with the same limits
/// and strictness as requests: `Ok(None)` when more bytes are needed.
pub fn parse_response<'a>(
    buf: &'a [u8],
    limits: &RtspLimits,
) -> Result<Option<Parsed<'a, Response<'a>>>, MessageError> {
    let err = |kind, offset| Err(MessageError { kind, offset });
    if let Some(between) = between_messages(buf) {
        return Ok(between);
    }
    match buf.first() {
        None => return Ok(None),
        Some(b'R') => {}
        Some(_) => return err(MessageErrorKind::BadStatusLine, 0),
    }
    let window = &buf[..buf.len().min(limits.max_head)];
    let Some(head_len) = find_head_end(window) else {
        if buf.len() >= limits.max_head {
            return err(MessageErrorKind::HeadTooLarge, limits.max_head);
        }
        if !b"RTSP/".starts_with(&buf[..buf.len().min(5)]) {
            return err(MessageErrorKind::BadStatusLine, 0);
        }
        return Ok(None);
    };
    let mut lines = head_lines(&buf[..head_len])?;
    let (_, status_line) = lines.next().unwrap_or((0, ""));
    let status = parse_status_line(status_line).ok_or(MessageError {
        kind: MessageErrorKind::BadStatusLine,
        offset: 0,
    })?;
    let (headers, body_len) = parse_headers(lines, limits)?;
    let Some(body) = buf.get(head_len..head_len + body_len) else {
        return Ok(None);
    };
    Ok(Some(Parsed::Message {
        message: Response {
            status,
            headers,
            body,
        },
        len: head_len + body_len,
    }))
}

/// `RTSP/1.0 SP 3DIGIT SP reason` (§7.1) → the status code.
fn parse_status_line(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("RTSP/1.0 ")?;
    let code = rest.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit())
        || !matches!(rest.as_bytes().get(3), None | Some(b' '))
    {
        return None;
    }
    code.parse().ok().filter(|&c| (100..600).contains(&c))
}

/// What comes between messages: an interleaved frame (`None` inside while incomplete) or
/// blank lines; `None` when `buf` starts with neither.
fn between_messages<'a, M>(buf: &'a [u8]) -> Option<Option<Parsed<'a, M>>> {
    match buf.first()? {
        b'$' => Some(
            interleaved(buf).map(|(channel, payload, len)| Parsed::Interleaved {
                channel,
                payload,
                len,
            }),
        ),
        b'\r' | b'\n' => {
            let len = buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            Some(Some(Parsed::Blank { len }))
        }
        _ => None,
    }
}

/// An interleaved binary frame at the start of `buf` (§10.12: '$', 1-byte channel, 2-byte
/// length, data): its channel, data and length, or `None` while incomplete.
fn interleaved(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let h = buf.get(..4)?;
    let len = 4 + usize::from(u16::from_be_bytes([h[2], h[3]]));
    buf.get(4..len).map(|payload| (h[1], payload, len))
}

/// Header lines in order: names as sent, values trimmed.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// The header lines after the first line of a head, and the body length they announce.
fn parse_headers<'a>(
    lines: Lines<'a>,
    limits: &RtspLimits,
) -> Result<(Headers<'a>, usize), MessageError> {
    let err = |kind, offset| Err(MessageError { kind, offset });
    let mut headers = Vec::with_capacity(12);
    let mut content_length: Option<usize> = None;
    for (offset, line) in lines {
        if line.is_empty() {
            break;
        }
        if headers.len() == limits.max_headers {
            return err(MessageErrorKind::TooManyHeaders, offset);
        }
        let Some((name, value)) = line.split_once(':') else {
            return err(MessageErrorKind::BadHeader, offset);
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return err(MessageErrorKind::BadHeader, offset);
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return err(MessageErrorKind::BadHeader, offset);
        }
        if name.eq_ignore_ascii_case("Content-Length") {
            let Some(n) = parse_decimal(value) else {
                return err(MessageErrorKind::BadContentLength, offset);
            };
            let n = n as usize;
            if content_length.is_some_and(|c| c != n) {
                return err(MessageErrorKind::BadContentLength, offset);
            }
            if n > limits.max_body {
                return err(MessageErrorKind::BodyTooLarge, offset);
            }
            content_length = Some(n);
        }
        headers.push((name, value));
    }
    Ok((headers, content_length.unwrap_or(0)))
}

/// Index just past the empty line that ends a head (`\r\n\r\n` or bare `\n\n`).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let nl = from + i;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
        from = nl + 1;
    }
    None
}

/// The lines of a complete head, which must be UTF-8.
fn head_lines(head: &[u8]) -> Result<Lines<'_>, MessageError> {
    let rest = std::str::from_utf8(head).map_err(|e| MessageError {
        kind: MessageErrorKind::NotUtf8,
        offset: e.valid_up_to(),
    })?;
    Ok(Lines { rest, offset: 0 })
}

/// Lines of a head with their byte offsets; accepts CRLF and bare LF.
struct Lines<'a> {
    rest: &'a str,
    offset: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        if self.rest.is_empty() {
            return None;
        }
        let offset = self.offset;
        let (line, rest) = match self.rest.find('\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, ""),
        };
        self.offset += self.rest.len() - rest.len();
        self.rest = rest;
        Some((offset, line.strip_suffix('\r').unwrap_or(line)))
    }
}

fn parse_request_line<'a>(
    line: &'a str,
    limits: &RtspLimits,
) -> Result<(&'a str, &'a str), MessageErrorKind> {
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(if line.len() > limits.max_uri {
            MessageErrorKind::UriTooLong
        } else {
            MessageErrorKind::BadRequestLine
        });
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(MessageErrorKind::BadRequestLine);
    }
    if uri.len() > limits.max_uri {
        return Err(MessageErrorKind::UriTooLong);
    }
    if uri.is_empty() || uri.bytes().any(|b| b <= 0x20 || b == 0x7f) {
        return Err(MessageErrorKind::BadRequestLine);
    }
    match version {
        "RTSP/1.0" => Ok((method, uri)),
        v if v.starts_with("RTSP/") => Err(MessageErrorKind::BadVersion),
        _ => Err(MessageErrorKind::BadRequestLine),
    }
}

/// RFC 2616 §2.2 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A non-empty run of ASCII digits that fits in u32.
pub fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Appends a response head (and body) to `out` (RFC 2326 §7): status line, CSeq when known,
/// Server, the given headers in order, then Content-Type/Content-Length when there is a body.
/// Header values must come from us or from single request header lines (which cannot hold
/// CR or LF), so nothing here can split a response.
pub fn write_response(
    out: &mut Vec<u8>,
    status: Status,
    cseq: Option<u32>,
    server: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "RTSP/1.0 {} {}\r\n", status.0, status.reason());
    if let Some(cseq) = cseq {
        let _ = write!(out, "CSeq: {cseq}\r\n");
    }
    let _ = write!(out, "Server: {server}\r\n");
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if let Some((content_type, body)) = body {
        let _ = write!(
            out,
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// Why a request-URI was refused (always 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// Neither `rtsp://authority/...`, `rtsps://...`, nor `/...`.
    NotRtspUrl,
    Fragment,
    BadPercentEncoding,
    ForbiddenByte,
    NotUtf8,
    DotDotSegment,
    DuplicateToken,
}

impl From<TargetError> for UrlError {
    fn from(e: TargetError) -> Self {
        match e {
            // `parse` always hands over origin-form.
            TargetError::NotOriginForm => UrlError::NotRtspUrl,
            TargetError::Fragment => UrlError::Fragment,
            TargetError::BadPercentEncoding => UrlError::BadPercentEncoding,
            TargetError::ForbiddenByte => UrlError::ForbiddenByte,
            TargetError::NotUtf8 => UrlError::NotUtf8,
            TargetError::DotDotSegment => UrlError::DotDotSegment,
            TargetError::DuplicateToken => UrlError::DuplicateToken,
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::NotRtspUrl => "request-URI is not an rtsp URL",
            UrlError::Fragment => "request-URI contains a fragment",
            UrlError::BadPercentEncoding => "bad percent-encoding",
            UrlError::ForbiddenByte => "path contains an encoded slash, backslash or control byte",
            UrlError::NotUtf8 => "path is not UTF-8",
            UrlError::DotDotSegment => "path contains a .. segment",
            UrlError::DuplicateToken => "token parameter given more than once",
        })
    }
}

/// A request-URI normalized the way routing and auth see it (the same rules as the HTTP
/// front: decode once, refuse `..`, encoded `/`, control bytes, fragments and a repeated
/// token parameter; drop empty and `.` segments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestUrl {
    /// `rtsp://host:port` as the client wrote it, userinfo removed; empty for `/path` URIs.
    pub base: String,
    /// The stream path: decoded, without leading `/`, segments joined by `/`, track suffix
    /// removed. Empty for `rtsp://host/`.
    pub stream: String,
    /// The `N` of a trailing `trackID=N` segment.
    pub track: Option<u32>,
    /// The decoded token, when the query carried the token parameter.
    pub token: Option<Vec<u8>>,
}

impl RequestUrl {
    /// Normalizes `uri`, looking for `token_param` in the query.
    ///
    /// A trailing `/trackID=N` is recognised after the path (`.../stream/trackID=0`) and also
    /// after the query (`.../stream?token=t/trackID=0`, what a client builds when it appends a
    /// relative control URL to a request-URI that had a query).
    pub fn parse(uri: &str, token_param: &str) -> Result<RequestUrl, UrlError> {
        if uri.contains('#') {
            return Err(UrlError::Fragment);
        }
        let mut url = RequestUrl::default();
        let path_and_query = if uri.starts_with('/') {
            uri
        } else {
            let (scheme, rest) = uri.split_once("://").ok_or(UrlError::NotRtspUrl)?;
            if !["rtsp", "rtsps", "rtspu"]
                .iter()
                .any(|s| scheme.eq_ignore_ascii_case(s))
            {
                return Err(UrlError::NotRtspUrl);
            }
            let (authority, path) = match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if host.is_empty() {
                return Err(UrlError::NotRtspUrl);
            }
            url.base = format!("{}://{host}", scheme.to_ascii_lowercase());
            path
        };
        let mut rest = path_and_query;
        if let Some((before, last)) = rest.rsplit_once('/')
            && let Some(n) = last.strip_prefix("trackID=").and_then(parse_decimal)
        {
            url.track = Some(n);
            rest = before;
        }
        // The path and token rules are the HTTP front's, applied by the same code.
        let mut target = Target::new();
        let slash = if rest.starts_with('/') { "" } else { "/" };
        let mut origin_form = String::with_capacity(rest.len() + 1);
        origin_form.push_str(slash);
        origin_form.push_str(rest);
        target.parse(origin_form.as_bytes(), token_param.as_bytes())?;
        url.stream = target.path().trim_start_matches('/').to_string();
        url.token = target.token().map(<[u8]>::to_vec);
        Ok(url)
    }

    /// The aggregate control URL of the stream, `rtsp://host:port/stream/` (the DESCRIBE
    /// Content-Base, §12.11). The stream is percent-encoded back segment by segment.
    pub fn content_base(&self) -> String {
        let mut out = String::with_capacity(self.base.len() + self.stream.len() + 2);
        out.push_str(&self.base);
        out.push('/');
        for (i, segment) in self.stream.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            percent_encode_segment(segment, &mut out);
        }
        if !self.stream.is_empty() {
            out.push('/');
        }
        out
    }
}

fn percent_encode_segment(segment: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RtspLimits {
        RtspLimits::default()
    }

    fn request(buf: &[u8]) -> (Request<'_>, usize) {
        match parse(buf, &limits()).unwrap().unwrap() {
            Parsed::Message { message, len } => (message, len),
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn frames_a_request_with_headers() {
        let buf = b"OPTIONS rtsp://h:554/a RTSP/1.0\r\nCSeq: 1\r\nUser-Agent:  Lavf59.27.100 \r\n\r\nNEXT";
        let (r, len) = request(buf);
        assert_eq!(len, buf.len() - 4);
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.uri, "rtsp://h:554/a");
        assert_eq!(r.cseq(), Some(1));
        assert_eq!(r.header("user-agent"), Some("Lavf59.27.100"));
        assert!(r.body.is_empty());
    }

    #[test]
    fn waits_for_head_and_body() {
        let full = b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 5\r\n\r\nab: c";
        for cut in 0..full.len() {
            assert_eq!(
                parse(&full[..cut], &limits()).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        let (r, len) = request(full);
        assert_eq!(len, full.len());
        assert_eq!(r.body, b"ab: c");
        // Bare LF line endings are accepted.
        let (r, _) = request(b"PLAY /a RTSP/1.0\nCSeq: 2\n\n");
        assert_eq!(r.method, Method::Play);
        assert_eq!(r.cseq(), Some(2));
    }

    #[test]
    fn interleaved_frames_and_blank_lines() {
        let buf = [b'$', 1, 0, 3, 0xaa, 0xbb, 0xcc, b'O'];
        assert_eq!(
            parse(&buf, &limits()).unwrap(),
            Some(Parsed::Interleaved {
                channel: 1,
                payload: &[0xaa, 0xbb, 0xcc],
                len: 7
            })
        );
        assert_eq!(parse(&buf[..6], &limits()).unwrap(), None);
        assert_eq!(parse(&buf[..2], &limits()).unwrap(), None);
        assert_eq!(
            parse(b"\r\n\r\nO", &limits()).unwrap(),
            Some(Parsed::Blank { len: 4 })
        );
    }

    #[test]
    fn limits_and_syntax_errors() {
        let kind = |buf: &[u8]| parse(buf, &limits()).unwrap_err().kind;
        let long_uri = format!(
            "DESCRIBE rtsp://h/{} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            "a".repeat(5000)
        );
        assert_eq!(kind(long_uri.as_bytes()), MessageErrorKind::UriTooLong);
        assert_eq!(
            parse(long_uri.as_bytes(), &limits()).unwrap_err().status(),
            Status(414)
        );
        let unterminated_line = format!("DESCRIBE rtsp://h/{}", "a".repeat(5000));
        assert_eq!(
            kind(unterminated_line.as_bytes()),
            MessageErrorKind::UriTooLong
        );
        let big_head = format!("OPTIONS * RTSP/1.0\r\n{}", "X-A: b\r\n".repeat(3000));
        assert_eq!(kind(big_head.as_bytes()), MessageErrorKind::HeadTooLarge);
        let many = format!("OPTIONS * RTSP/1.0\r\n{}\r\n", "X-A: b\r\n".repeat(65));
        assert_eq!(kind(many.as_bytes()), MessageErrorKind::TooManyHeaders);
        assert_eq!(
            kind(b"OPTIONS * RTSP/1.0\r\nContent-Length: 70000\r\n\r\n"),
            MessageErrorKind::BodyTooLarge
        );
        assert_eq!(
            kind(b"OPTIONS * RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            MessageErrorKind::BadContentLength
        );
        assert_eq!(
            kind(b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n"),
            MessageErrorKind::BadContentLength
        );
        assert_eq!(
            kind(b"OPTIONS * RTSP/2.0\r\n\r\n"),
            MessageErrorKind::BadVersion
        );
        assert_eq!(
            kind(b"GET / HTTP/1.1\r\n\r\n"),
            MessageErrorKind::BadRequestLine
        );
        assert_eq!(
            kind(b"OPTIONS  * RTSP/1.0\r\n\r\n"),
            MessageErrorKind::BadRequestLine
        );
        assert_eq!(
            kind(b"OPTIONS * RTSP/1.0\r\n folded\r\n\r\n"),
            MessageErrorKind::BadHeader
        );
        assert_eq!(
            kind(b"OPTIONS * RTSP/1.0\r\nNoColon\r\n\r\n"),
            MessageErrorKind::BadHeader
        );
        assert_eq!(
            kind(b"OPTIONS * RTSP/1.0\r\nA: \xff\r\n\r\n"),
            MessageErrorKind::NotUtf8
        );
        assert_eq!(kind(b"\x16\x03\x01"), MessageErrorKind::BadRequestLine);
        let e = parse(
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nBad Header: x\r\n\r\n",
            &limits(),
        )
        .unwrap_err();
        assert_eq!(e.offset, 29);
        assert!(e.to_string().contains("byte 29"));
    }

    #[test]
    fn cseq_rules() {
        let cseq = |h: &str| {
            let buf = format!("OPTIONS * RTSP/1.0\r\n{h}\r\n");
            request(buf.as_bytes()).0.cseq()
        };
        assert_eq!(cseq("CSeq: 42\r\n"), Some(42));
        assert_eq!(cseq("cseq: 42\r\nCSEQ: 42\r\n"), Some(42));
        assert_eq!(cseq(""), None);
        assert_eq!(cseq("CSeq: x\r\n"), None);
        assert_eq!(cseq("CSeq: 1\r\nCSeq: 2\r\n"), None);
        assert_eq!(cseq("CSeq: 99999999999\r\n"), None);
    }

    #[test]
    fn response_bytes() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            Status::OK,
            Some(3),
            "tessera",
            &[("Public", "OPTIONS")],
            None,
        );
        assert_eq!(
            out,
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nServer: tessera\r\nPublic: OPTIONS\r\n\r\n"
        );
        out.clear();
        write_response(
            &mut out,
            Status::NOT_FOUND,
            None,
            "t",
            &[],
            Some(("text/plain", b"no")),
        );
        assert_eq!(
            out,
            b"RTSP/1.0 404 Not Found\r\nServer: t\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nno"
        );
    }

    #[test]
    fn request_urls() {
        let p = |u: &str| RequestUrl::parse(u, "token");
        let u = p("rtsp://user:pw@127.0.0.1:1554/auth-check?token=test1").unwrap();
        assert_eq!(u.base, "rtsp://127.0.0.1:1554");
        assert_eq!(u.stream, "auth-check");
        assert_eq!(u.track, None);
        assert_eq!(u.token.as_deref(), Some(&b"test1"[..]));
        assert_eq!(u.content_base(), "rtsp://127.0.0.1:1554/auth-check/");

        let u = p("rtsp://h/auth-check/trackID=1").unwrap();
        assert_eq!(
            (u.stream.as_str(), u.track, u.token),
            ("auth-check", Some(1), None)
        );
        let u = p("rtsp://h/auth-check?token=t%31/trackID=0").unwrap();
        assert_eq!((u.stream.as_str(), u.track), ("auth-check", Some(0)));
        assert_eq!(u.token.as_deref(), Some(&b"t1"[..]));
        let u = p("RTSP://h//live/./cam%201/").unwrap();
        assert_eq!(u.stream, "live/cam 1");
        assert_eq!(u.content_base(), "rtsp://h/live/cam%201/");
        assert_eq!(p("/a/b?token=").unwrap().token, Some(vec![]));
        assert_eq!(p("rtsp://h").unwrap().stream, "");
        assert_eq!(p("rtsp://h").unwrap().content_base(), "rtsp://h/");
        assert_eq!(p("rtsp://h/a?x=trackID=1").unwrap().track, None);

        assert_eq!(p("rtsp://h/a/../b"), Err(UrlError::DotDotSegment));
        assert_eq!(p("rtsp://h/a/%2E%2e/b"), Err(UrlError::DotDotSegment));
        assert_eq!(p("rtsp://h/a%2fb"), Err(UrlError::ForbiddenByte));
        assert_eq!(
            p("rtsp://h/a?token=1&token=2"),
            Err(UrlError::DuplicateToken)
        );
        assert_eq!(p("rtsp://h/a#x"), Err(UrlError::Fragment));
        assert_eq!(p("http://h/a"), Err(UrlError::NotRtspUrl));
        assert_eq!(p("rtsp:///a"), Err(UrlError::NotRtspUrl));
        assert_eq!(p("*"), Err(UrlError::NotRtspUrl));
        assert_eq!(p("rtsp://h/%zz"), Err(UrlError::BadPercentEncoding));
        assert_eq!(p("rtsp://h/%ff"), Err(UrlError::NotUtf8));
    }
}
