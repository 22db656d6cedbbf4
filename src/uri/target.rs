//! Normalizing a request-target into the one path and the one token that routing and
//! authorization see (RFC 3986 §2.1, §3.3, §3.4, §5.2.4).
//!
//! Every request is normalized once, before routing and auth, so that no spelling of a URL
//! (`..`, `//`, percent-encoding, a repeated token parameter, a fragment) can make a denied
//! request look like an allowed one. The rules:
//!
//! * the target must be origin-form (`/...`) or absolute-form with an `http`/`https` scheme
//!   (`http://host/...`, RFC 9112 §3.2.2, which a server must accept); the authority
//!   (userinfo, host, port) is dropped unread, so routing and the token see only the path and
//!   query after it, exactly as in origin-form; an empty host, another scheme (`*`,
//!   `ftp://`) or anything else is 400;
//! * the path is percent-decoded once; an encoded `/`, `\` or control byte, invalid UTF-8, or
//!   a `..` segment is 400; empty and `.` segments are dropped (so `//a/./b` is `/a/b`);
//! * the query is split on `&`; keys and values are percent-decoded; the token is the value of
//!   the key that equals the configured name exactly (case-sensitive); a second occurrence is
//!   400, so the server and a portal backend can never disagree about which token was meant;
//! * a `#` anywhere is 400: clients never send fragments, so one is a smuggling attempt;
//! * the LL-HLS delivery directives `_HLS_msn` and `_HLS_part` (RFC 8216bis §6.2.5.2) are
//!   read beside the token: decimal integers, at most once each; anything else marks them
//!   malformed (the LL-HLS playlist answers 400; other resources ignore them).
//!
//! Owns reusable buffers so that the steady state allocates nothing per request.

use super::percent_decode_into;
use std::fmt;

/// Why a target was refused (always answered with 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    NotOriginForm,
    Fragment,
    BadPercentEncoding,
    ForbiddenByte,
    NotUtf8,
    DotDotSegment,
    DuplicateToken,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetError::NotOriginForm => "request target must be /path or http://host/path",
            TargetError::Fragment => "request target contains a fragment",
            TargetError::BadPercentEncoding => "bad percent-encoding",
            TargetError::ForbiddenByte => {
                "path contains an encoded slash, backslash or control byte"
            }
            TargetError::NotUtf8 => "path is not UTF-8",
            TargetError::DotDotSegment => "path contains a .. segment",
            TargetError::DuplicateToken => "token parameter given more than once",
        })
    }
}

/// The normalized form of one request-target. Reused across requests of a connection.
#[derive(Default, Debug)]
pub struct Target {
    path: String,
    token: Vec<u8>,
    has_token: bool,
    hls_msn: Option<u64>,
    hls_part: Option<u64>,
    hls_malformed: bool,
    decode_scratch: Vec<u8>,
}

/// The LL-HLS delivery directives of a request (`_HLS_msn`, `_HLS_part`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HlsDirectives {
    pub msn: Option<u64>,
    pub part: Option<u64>,
}

impl Target {
    pub fn new() -> Self {
        Target {
            path: String::with_capacity(256),
            token: Vec::with_capacity(128),
            has_token: false,
            hls_msn: None,
            hls_part: None,
            hls_malformed: false,
            decode_scratch: Vec::with_capacity(256),
        }
    }

    /// The normalized path: starts with `/`, no empty, `.` or `..` segments, no trailing `/`
    /// (the root is `/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The decoded token, when the query carried the token parameter (possibly empty).
    pub fn token(&self) -> Option<&[u8]> {
        self.has_token.then_some(&self.token[..])
    }

    /// The LL-HLS delivery directives; `None` when one is malformed or repeated.
    pub fn hls_directives(&self) -> Option<HlsDirectives> {
        (!self.hls_malformed).then_some(HlsDirectives {
            msn: self.hls_msn,
            part: self.hls_part,
        })
    }

    /// Path segments after the leading `/`.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
        self.path[1..].split('/').filter(|s| !s.is_empty())
    }

    /// Normalizes `raw` (the request-target as sent), looking for `token_param` in the query.
    pub fn parse(&mut self, raw: &[u8], token_param: &[u8]) -> Result<(), TargetError> {
        self.path.clear();
        self.token.clear();
        self.has_token = false;
        self.hls_msn = None;
        self.hls_part = None;
        self.hls_malformed = false;
        if memchr::memchr(b'#', raw).is_some() {
            return Err(TargetError::Fragment);
        }
        let raw = path_and_query(raw)?;
        let (raw_path, raw_query) = match memchr::memchr(b'?', raw) {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (raw, &[][..]),
        };
        self.normalize_path(raw_path)?;
        self.find_token(raw_query, token_param)
    }

    fn normalize_path(&mut self, raw_path: &[u8]) -> Result<(), TargetError> {
        let scratch = &mut self.decode_scratch;
        for raw_segment in raw_path.split(|&b| b == b'/') {
            scratch.clear();
            percent_decode_into(raw_segment, scratch)?;
            if scratch
                .iter()
                .any(|&b| b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f)
            {
                return Err(TargetError::ForbiddenByte);
            }
            match &scratch[..] {
                b"" | b"." => continue,
                b".." => return Err(TargetError::DotDotSegment),
                _ => {}
            }
            let segment = std::str::from_utf8(scratch).map_err(|_| TargetError::NotUtf8)?;
            self.path.push('/');
            self.path.push_str(segment);
        }
        if self.path.is_empty() {
            self.path.push('/');
        }
        Ok(())
    }

    fn find_token(&mut self, raw_query: &[u8], token_param: &[u8]) -> Result<(), TargetError> {
        for pair in raw_query.split(|&b| b == b'&') {
            let (raw_key, raw_value) = match memchr::memchr(b'=', pair) {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            self.decode_scratch.clear();
            percent_decode_into(raw_key, &mut self.decode_scratch)?;
            if self.decode_scratch != token_param {
                let slot = match &self.decode_scratch[..] {
                    b"_HLS_msn" => &mut self.hls_msn,
                    b"_HLS_part" => &mut self.hls_part,
                    _ => continue,
                };
                let value = parse_directive(raw_value);
                self.hls_malformed |= slot.is_some() || value.is_none();
                *slot = value;
                continue;
            }
            if self.has_token {
                return Err(TargetError::DuplicateToken);
            }
            self.has_token = true;
            percent_decode_into(raw_value, &mut self.token)?;
        }
        Ok(())
    }
}

/// The path and query of a request-target: origin-form as is; absolute-form
/// (`http[s]://authority[/path][?query]`, RFC 9112 §3.2.2, RFC 3986 §3.2) without its
/// scheme and authority. The authority ends at the first `/` or `?` (a `#` was refused
/// before), so nothing in it (userinfo, an encoded slash, a `token=`) reaches the path or
/// the query. An empty path is the root (the caller's normalization makes it `/`).
pub fn path_and_query(raw: &[u8]) -> Result<&[u8], TargetError> {
    if raw.first() == Some(&b'/') {
        return Ok(raw);
    }
    let rest = ["http://", "https://"]
        .iter()
        .find(|scheme| {
            raw.len() >= scheme.len() && raw[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
        })
        .map(|scheme| &raw[scheme.len()..])
        .ok_or(TargetError::NotOriginForm)?;
    let end = memchr::memchr2(b'/', b'?', rest).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = match memchr::memrchr(b'@', authority) {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    if host.is_empty() || host[0] == b':' {
        return Err(TargetError::NotOriginForm);
    }
    Ok(&rest[end..])
}

/// A delivery directive's value: 1 to 19 ASCII digits (never percent-encoded by clients).
fn parse_directive(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 19 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    raw.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<(String, Option<Vec<u8>>), TargetError> {
        let mut t = Target::new();
        t.parse(raw.as_bytes(), b"token")?;
        Ok((t.path().to_string(), t.token().map(<[u8]>::to_vec)))
    }

    #[test]
    fn plain_paths_and_tokens() {
        assert_eq!(
            parse("/a/index.m3u8?token=t1").unwrap(),
            ("/a/index.m3u8".into(), Some(b"t1".to_vec()))
        );
        assert_eq!(
            parse("/a/index.m3u8").unwrap(),
            ("/a/index.m3u8".into(), None)
        );
        assert_eq!(parse("/").unwrap(), ("/".into(), None));
        assert_eq!(parse("/a?x=1&token=&y").unwrap().1, Some(vec![]));
    }

    #[test]
    fn collapses_slashes_and_dots() {
        assert_eq!(parse("//a//./b/").unwrap().0, "/a/b");
        assert_eq!(parse("/a/%2e/b").unwrap().0, "/a/b");
    }

    #[test]
    fn decodes_once() {
        assert_eq!(
            parse("/auth%2dcheck/index.m3u8").unwrap().0,
            "/auth-check/index.m3u8"
        );
        // %25 decodes to a literal '%', it is not decoded a second time.
        assert_eq!(parse("/a%252e").unwrap().0, "/a%2e");
        assert_eq!(parse("/a?to%6Ben=t%31").unwrap().1, Some(b"t1".to_vec()));
        assert_eq!(parse("/a?token=a+b%2B").unwrap().1, Some(b"a+b+".to_vec()));
    }

    #[test]
    fn refuses_tricks() {
        assert_eq!(parse("/a/../b"), Err(TargetError::DotDotSegment));
        assert_eq!(parse("/a/%2e%2E/b"), Err(TargetError::DotDotSegment));
        assert_eq!(parse("/a%2fb"), Err(TargetError::ForbiddenByte));
        assert_eq!(parse("/a%5cb"), Err(TargetError::ForbiddenByte));
        assert_eq!(parse("/a%00b"), Err(TargetError::ForbiddenByte));
        assert_eq!(parse("/a%zz"), Err(TargetError::BadPercentEncoding));
        assert_eq!(parse("/a%2"), Err(TargetError::BadPercentEncoding));
        assert_eq!(parse("/a%ff"), Err(TargetError::NotUtf8));
        assert_eq!(
            parse("/a?token=x&token=y"),
            Err(TargetError::DuplicateToken)
        );
        assert_eq!(
            parse("/a?token=x&%74oken=y"),
            Err(TargetError::DuplicateToken)
        );
        assert_eq!(parse("/a#token=x"), Err(TargetError::Fragment));
        assert_eq!(parse("*"), Err(TargetError::NotOriginForm));
        assert_eq!(parse("a/b"), Err(TargetError::NotOriginForm));
    }

    #[test]
    fn absolute_form_is_its_path_and_query() {
        let origin = |raw: &str| parse(raw).unwrap();
        assert_eq!(
            origin("http://host/auth-check/index.m3u8?token=t1"),
            ("/auth-check/index.m3u8".into(), Some(b"t1".to_vec()))
        );
        assert_eq!(
            origin("HTTPS://host:8080/a/index.m3u8"),
            ("/a/index.m3u8".into(), None)
        );
        assert_eq!(origin("http://host"), ("/".into(), None));
        assert_eq!(
            origin("http://host?token=t"),
            ("/".into(), Some(b"t".to_vec()))
        );
        assert_eq!(origin("http://[::1]:80//a/./b"), ("/a/b".into(), None));
        // The path and query rules apply after the authority, unchanged.
        assert_eq!(parse("http://h/a/../b"), Err(TargetError::DotDotSegment));
        assert_eq!(parse("http://h/a%2fb"), Err(TargetError::ForbiddenByte));
        assert_eq!(
            parse("http://h/a?token=x&token=y"),
            Err(TargetError::DuplicateToken)
        );
        assert_eq!(parse("http://h/a#token=x"), Err(TargetError::Fragment));
        assert_eq!(parse("http://h#/a?token=x"), Err(TargetError::Fragment));
    }

    #[test]
    fn nothing_in_the_authority_counts() {
        let origin = |raw: &str| parse(raw).unwrap();
        // Userinfo, a token-looking host, encoded separators: all dropped unread.
        assert_eq!(origin("http://token=t1@h/a"), ("/a".into(), None));
        assert_eq!(origin("http://u:t1@h/a?x=1"), ("/a".into(), None));
        assert_eq!(origin("http://h;token=t1/a"), ("/a".into(), None));
        assert_eq!(origin("http://h%3Ftoken=t1/a"), ("/a".into(), None));
        assert_eq!(origin("http://h%2Fauth-check/a"), ("/a".into(), None));
        assert_eq!(origin("http://a@b@h/a"), ("/a".into(), None));
        // The first `/` or `?` ends the authority: what follows is the path or query.
        assert_eq!(
            origin("http://h?token=t1/auth-check/index.m3u8"),
            ("/".into(), Some(b"t1/auth-check/index.m3u8".to_vec()))
        );
        // No host, another scheme, or scheme tricks.
        for bad in [
            "http:///a",
            "http://u@/a",
            "http://:80/a",
            "http:/a",
            "http:a",
            "ftp://h/a",
            "rtsp://h/a",
            "xhttp://h/a",
            "http//h/a",
            "%68ttp://h/a",
            " http://h/a",
        ] {
            assert_eq!(parse(bad), Err(TargetError::NotOriginForm), "{bad}");
        }
    }

    #[test]
    fn other_keys_are_not_the_token() {
        assert_eq!(parse("/a?TOKEN=x&tokens=y&xtoken=z").unwrap().1, None);
    }

    #[test]
    fn hls_delivery_directives_beside_the_token() {
        let mut t = Target::new();
        t.parse(
            b"/a/index.ll.m3u8?token=t1&_HLS_msn=12&_HLS_part=3",
            b"token",
        )
        .unwrap();
        assert_eq!(t.token(), Some(&b"t1"[..]));
        let d = |msn, part| Some(HlsDirectives { msn, part });
        assert_eq!(t.hls_directives(), d(Some(12), Some(3)));
        t.parse(b"/a/index.ll.m3u8?_HLS_msn=7&token=t1", b"token")
            .unwrap();
        assert_eq!(t.hls_directives(), d(Some(7), None));
        for bad in [
            "/a?_HLS_msn=",
            "/a?_HLS_msn=-1",
            "/a?_HLS_msn=1x",
            "/a?_HLS_msn=1&_HLS_msn=2",
            "/a?_HLS_part=99999999999999999999",
        ] {
            t.parse(bad.as_bytes(), b"token").unwrap();
            assert_eq!(t.hls_directives(), None, "{bad}");
        }
    }

    #[test]
    fn reused_buffers_do_not_leak_state() {
        let mut t = Target::new();
        t.parse(b"/a?token=secret&_HLS_msn=3", b"token").unwrap();
        t.parse(b"/b", b"token").unwrap();
        assert_eq!(t.hls_directives().and_then(|d| d.msn), None);
        assert_eq!(t.token(), None);
        assert_eq!(t.path(), "/b");
    }
}
