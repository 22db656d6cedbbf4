//! Writing response heads: the status line and the headers every response carries
//! (`server`, `date`, CORS, `x-run-time`, `connection`), into a reused buffer.
//!
//! `x-run-time` is the time the server spent on the request, in microseconds, from the
//! moment its head was parsed to the moment the response head is written.

use crate::http::status::Status;
use crate::utc::write_decimal;
use std::time::Instant;

pub const SERVER: &str = concat!("tessera/", env!("CARGO_PKG_VERSION"));

/// Headers a browser player may read from a cross-origin response. Player requests carry
/// no credentials, so the Fetch standard's wildcards apply: `*` allows any request header
/// but `Authorization`, which is named, and exposes every response header. Kept short:
/// these lines go out with every answer, the 403s of a flood included.
const CORS_ORIGIN: &str = "access-control-allow-origin: *\r\naccess-control-allow-methods: ";
const CORS_HEADERS: &str = "\r\naccess-control-allow-headers: *, Authorization\r\n\
access-control-expose-headers: *\r\n";

/// The methods CORS allows unless a response says otherwise (`Head::cors_methods`).
pub const CORS_METHODS: &str = "GET, HEAD, OPTIONS";

/// How a response may be cached by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachePolicy {
    /// Live playlists change every segment.
    NoCache,
    /// Segments never change under their URL. `private` because the URL carries a viewer's
    /// token: a shared cache must not serve it to anyone else.
    Immutable,
}

/// The parts of a response head that differ between responses.
pub struct Head<'a> {
    pub status: Status,
    pub content_type: &'a str,
    pub content_length: usize,
    pub cache: CachePolicy,
    pub close: bool,
    pub deny_reason: Option<&'a str>,
    pub session_id: Option<&'a str>,
    /// `allow:` for 405 answers.
    pub allow: Option<&'a str>,
    /// `www-authenticate: Bearer` (401 answers of the operator API).
    pub bearer_challenge: bool,
    /// `location:` (a portal's redirect).
    pub location: Option<&'a str>,
    /// The shard that answered (`x-shard`), for operators tracing a viewer's requests.
    pub shard: usize,
    /// A live body of unknown length: no `content-length`, ended by closing the connection.
    pub streaming: bool,
    /// More header lines, each ending in CRLF (fixed text, never request data).
    pub extra: &'static str,
    /// `access-control-allow-methods` (WHEP resources take POST and DELETE too).
    pub cors_methods: &'static str,
}

impl<'a> Head<'a> {
    pub fn new(status: Status, content_type: &'a str, content_length: usize) -> Self {
        Head {
            status,
            content_type,
            content_length,
            cache: CachePolicy::NoCache,
            close: false,
            deny_reason: None,
            session_id: None,
            allow: None,
            bearer_challenge: false,
            location: None,
            shard: 0,
            streaming: false,
            extra: "",
            cors_methods: CORS_METHODS,
        }
    }
}

/// Appends the response head to `out`: copied constant lines and integers written without
/// `core::fmt`.
pub fn write_head(out: &mut Vec<u8>, head: &Head<'_>, date: &[u8], started: Instant) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(head.status.line().as_bytes());
    out.extend_from_slice(b"\r\nserver: ");
    out.extend_from_slice(SERVER.as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    if head.status != Status::NoContent {
        out.extend_from_slice(b"content-type: ");
        out.extend_from_slice(head.content_type.as_bytes());
        if head.streaming {
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(b"\r\ncontent-length: ");
            write_decimal(out, head.content_length as u64);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(match head.cache {
        CachePolicy::NoCache => b"cache-control: no-cache\r\n".as_slice(),
        CachePolicy::Immutable => b"cache-control: private, max-age=3600, immutable\r\n".as_slice(),
    });
    out.extend_from_slice(CORS_ORIGIN.as_bytes());
    out.extend_from_slice(head.cors_methods.as_bytes());
    out.extend_from_slice(CORS_HEADERS.as_bytes());
    if let Some(reason) = head.deny_reason {
        out.extend_from_slice(b"x-deny-reason: ");
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(id) = head.session_id {
        out.extend_from_slice(b"x-session-id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(location) = head.location {
        out.extend_from_slice(b"location: ");
        out.extend_from_slice(location.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if head.bearer_challenge {
        out.extend_from_slice(b"www-authenticate: Bearer realm=\"tessera\"\r\n");
    }
    if let Some(allow) = head.allow {
        out.extend_from_slice(b"allow: ");
        out.extend_from_slice(allow.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(head.extra.as_bytes());
    out.extend_from_slice(b"x-shard: ");
    write_decimal(out, head.shard as u64);
    out.extend_from_slice(b"\r\nx-run-time: ");
    write_decimal(out, started.elapsed().as_micros() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(if head.close || head.streaming {
        b"connection: close\r\n\r\n".as_slice()
    } else {
        b"connection: keep-alive\r\n\r\n".as_slice()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_head_has_every_header() {
        let mut out = Vec::new();
        let mut head = Head::new(Status::Forbidden, "text/plain", 12);
        head.deny_reason = Some("backend_denied");
        write_head(
            &mut out,
            &head,
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            Instant::now(),
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\nserver: tessera/"));
        for needle in [
            "date: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
            "content-length: 12\r\n",
            "x-deny-reason: backend_denied\r\n",
            "access-control-allow-origin: *\r\n",
            "access-control-allow-methods:",
            "access-control-allow-headers:",
            "access-control-expose-headers:",
            "x-run-time: ",
            "connection: keep-alive\r\n\r\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
    }
}
