//! Check-then-parse framing of HTTP/1.1 request heads (RFC 9112), on httparse.
//!
//! Owns: deciding whether a buffer holds a whole request head, extracting the few fields the
//! server acts on, and mapping every malformed or oversized head to the status it deserves.
//! Never does I/O, never allocates: the result borrows the caller's buffer.

use crate::http::limits::{HEADER_SLOTS, HttpLimits};
use crate::http::status::Status;

/// Request methods the server distinguishes; everything else is `Other` (answered 405).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Options,
    /// Only the operator API takes these.
    Post,
    Delete,
    Other,
}

/// The parts of a request head the service reads. Borrowed from the read buffer.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub method: Method,
    /// The raw request-target, exactly as sent.
    pub target: &'a [u8],
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
    /// `Authorization` (the operator API's Bearer key).
    pub authorization: Option<&'a [u8]>,
    /// The client wants (or HTTP/1.0 implies) the connection closed after the response.
    pub close: bool,
    /// Bytes of body that follow the head (Content-Length).
    pub body_len: usize,
    /// Bytes the head occupies in the buffer.
    pub head_len: usize,
}

/// What a buffer holds.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A whole head; the body (if any) follows it.
    Complete(RequestHead<'a>),
    /// Not a whole head yet, and within limits: read more.
    Partial,
    /// The head is malformed or too large: answer `status` and close the connection.
    Invalid(Status),
}

/// Tries to parse one request head at the start of `buf`.
pub fn parse_head<'a>(buf: &'a [u8], limits: &HttpLimits) -> Parsed<'a> {
    let mut slots = [httparse::EMPTY_HEADER; HEADER_SLOTS];
    let max_headers = limits.max_headers.min(HEADER_SLOTS);
    let mut req = httparse::Request::new(&mut slots[..max_headers]);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return partial_verdict(buf, limits),
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Invalid(Status::HeaderFieldsTooLarge);
        }
        Err(_) => return Parsed::Invalid(Status::BadRequest),
    };
    if head_len > limits.max_head_bytes {
        return Parsed::Invalid(Status::HeaderFieldsTooLarge);
    }
    // httparse has validated these are present on Complete; the fallbacks are unreachable.
    let target = req.path.unwrap_or("").as_bytes();
    if target.len() > limits.max_uri_bytes {
        return Parsed::Invalid(Status::UriTooLong);
    }
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        _ => Method::Other,
    };
    let http10 = req.version == Some(0);
    let mut head = RequestHead {
        method,
        target,
        user_agent: None,
        referer: None,
        authorization: None,
        close: http10,
        body_len: 0,
        head_len,
    };
    let mut saw_length = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"user-agent") {
            head.user_agent = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"referer") {
            head.referer = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"authorization") {
            head.authorization = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            if contains_token(h.value, b"close") {
                head.close = true;
            } else if http10 && contains_token(h.value, b"keep-alive") {
                head.close = false;
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // Two lengths, or one that is not a plain number, make the framing ambiguous
            // (request smuggling, RFC 9112 §6.3): refuse.
            let Some(n) = parse_decimal(h.value) else {
                return Parsed::Invalid(Status::BadRequest);
            };
            if saw_length && n != head.body_len {
                return Parsed::Invalid(Status::BadRequest);
            }
            saw_length = true;
            head.body_len = n;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // No endpoint takes a chunked body; without decoding it we cannot find the next
            // request, so refuse rather than guess.
            return Parsed::Invalid(Status::BadRequest);
        }
    }
    if head.body_len > limits.max_body_bytes {
        return Parsed::Invalid(Status::PayloadTooLarge);
    }
    Parsed::Complete(head)
}

/// An incomplete head is fine until it outgrows the limits: a request line longer than the
/// URI limit is 414, a head longer than the head limit is 431.
fn partial_verdict<'a>(buf: &'a [u8], limits: &HttpLimits) -> Parsed<'a> {
    let line_end = memchr::memchr(b'\n', buf);
    // Method, spaces and "HTTP/1.1" add a little to the target itself.
    let line_limit = limits.max_uri_bytes + 32;
    match line_end {
        None if buf.len() > line_limit => Parsed::Invalid(Status::UriTooLong),
        Some(n) if n > line_limit => Parsed::Invalid(Status::UriTooLong),
        _ if buf.len() > limits.max_head_bytes => Parsed::Invalid(Status::HeaderFieldsTooLarge),
        _ => Parsed::Partial,
    }
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

fn parse_decimal(value: &[u8]) -> Option<usize> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        v.iter()
            .fold(0usize, |acc, &d| acc * 10 + usize::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits::default()
    }

    fn complete(buf: &[u8]) -> RequestHead<'_> {
        match parse_head(buf, &limits()) {
            Parsed::Complete(h) => h,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    fn invalid(buf: &[u8]) -> Status {
        match parse_head(buf, &limits()) {
            Parsed::Invalid(s) => s,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_get_with_fields() {
        let h = complete(b"GET /a/index.m3u8?token=x HTTP/1.1\r\nHost: h\r\nUser-Agent: ffmpeg\r\nReferer: r\r\n\r\nrest");
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.target, b"/a/index.m3u8?token=x");
        assert_eq!(h.user_agent, Some(&b"ffmpeg"[..]));
        assert_eq!(h.referer, Some(&b"r"[..]));
        assert!(!h.close);
        assert_eq!(h.head_len, 79);
    }

    #[test]
    fn connection_semantics_by_version() {
        assert!(complete(b"GET / HTTP/1.0\r\n\r\n").close);
        assert!(!complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").close);
        assert!(complete(b"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").close);
    }

    #[test]
    fn partial_until_blank_line() {
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n", &limits()),
            Parsed::Partial
        ));
        assert!(matches!(parse_head(b"GE", &limits()), Parsed::Partial));
    }

    #[test]
    fn malformed_and_oversized_heads() {
        assert_eq!(invalid(b"GET /\x01 HTTP/1.1\r\n\r\n"), Status::BadRequest);
        assert_eq!(invalid(b"\x00\x01garbage\r\n\r\n"), Status::BadRequest);
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(5000));
        assert_eq!(invalid(long.as_bytes()), Status::UriTooLong);
        let long_partial = format!("GET /{}", "a".repeat(5000));
        assert_eq!(invalid(long_partial.as_bytes()), Status::UriTooLong);
        let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            invalid(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Status::HeaderFieldsTooLarge
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "v".repeat(17000));
        assert_eq!(invalid(big.as_bytes()), Status::HeaderFieldsTooLarge);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            invalid(b"GET / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"),
            Status::PayloadTooLarge
        );
        assert_eq!(
            complete(b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").body_len,
            3
        );
    }

    #[test]
    fn other_methods_are_distinguished() {
        assert_eq!(complete(b"POST / HTTP/1.1\r\n\r\n").method, Method::Post);
        assert_eq!(
            complete(b"DELETE / HTTP/1.1\r\n\r\n").method,
            Method::Delete
        );
        assert_eq!(complete(b"PUT / HTTP/1.1\r\n\r\n").method, Method::Other);
        assert_eq!(complete(b"get / HTTP/1.1\r\n\r\n").method, Method::Other);
        assert_eq!(
            complete(b"OPTIONS * HTTP/1.1\r\n\r\n").method,
            Method::Options
        );
    }
}
