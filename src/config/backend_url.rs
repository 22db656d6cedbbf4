//! `BackendUrl`: a `backend http://HOST[:PORT]/PATH[?QUERY];` URL (spec §2, §3), checked
//! when the config is read and taken apart once for the portal client (`auth::portal`
//! writes its requests from the parts, `auth::catalog` resolves its host).
//!
//! Never does: name lookups or any I/O.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Longest configured backend URL.
pub const MAX_BACKEND_URL_LEN: usize = 2048;

/// Why a backend URL is not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendUrlError {
    /// Not a URL we can send requests to; `problem` says why.
    Bad { problem: &'static str },
    /// `https://` backends: TLS is not implemented yet.
    HttpsUnsupported,
}

impl fmt::Display for BackendUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendUrlError::Bad { problem } => write!(f, "bad backend URL: {problem}"),
            BackendUrlError::HttpsUnsupported => {
                f.write_str("https backends are not supported yet")
            }
        }
    }
}

impl std::error::Error for BackendUrlError {}

/// A parsed `backend http://host[:port]/path[?query];` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendUrl {
    /// Host to connect to: a name or an IP literal, IPv6 without brackets.
    host: Box<str>,
    port: u16,
    /// The `Host` header value: the host (IPv6 in brackets) and `:port` unless it is 80.
    authority: Box<str>,
    /// Path (at least `/`), then `?query` when the URL has one.
    target: Box<str>,
}

impl BackendUrl {
    /// Parses `http://host[:port][/path][?query]`. Only plain HTTP (`https` is refused with
    /// a clear error); IPv6 hosts in brackets; port 80 by default. Userinfo (`user:pw@`),
    /// fragments, spaces and control characters are refused, since the path and query are
    /// sent as they are.
    pub fn parse(url: &str) -> Result<BackendUrl, BackendUrlError> {
        let bad = |problem| Err(BackendUrlError::Bad { problem });
        if url.len() > MAX_BACKEND_URL_LEN {
            return bad("longer than 2048 bytes");
        }
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("spaces, control or non-ASCII characters (percent-encode them)");
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return bad("expected http://host[:port]/path");
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err(BackendUrlError::HttpsUnsupported);
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return bad("only http:// backends are supported");
        }
        if rest.contains('#') {
            return bad("fragments (#...) are not allowed");
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return bad("credentials in the URL (user:password@) are not allowed");
        }
        let (host, port_text) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((addr, after)) = v6.split_once(']') else {
                return bad("IPv6 host without a closing ]");
            };
            if addr.parse::<Ipv6Addr>().is_err() {
                return bad("not an IPv6 address between [ ]");
            }
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return bad("unexpected characters after ]"),
                },
            };
            (addr, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return bad("no host");
        }
        if !authority.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return bad("host name has characters other than letters, digits, '.', '-', '_'");
        }
        let port = match port_text {
            None => 80,
            Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => return bad("port out of range (1-65535)"),
                    Ok(n) => n,
                }
            }
            Some(_) => return bad("port is not a number"),
        };
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let authority = if port == 80 {
            bracketed
        } else {
            format!("{bracketed}:{port}")
        };
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        Ok(BackendUrl {
            host: host.into(),
            port,
            authority: authority.into(),
            target: target.into(),
        })
    }

    /// The host to resolve or connect to (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host as an IP address, when the URL names one (no DNS needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The `Host` header value.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Path and the URL's own query, as sent in the request line.
    pub fn target(&self) -> &str {
        &self.target
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> BackendUrl {
        BackendUrl::parse(s).expect("test URL parses")
    }

    #[test]
    fn url_forms() {
        let u = url("http://portal.example:8081/auth?key=abc");
        assert_eq!(
            (u.host(), u.port(), u.authority(), u.target()),
            (
                "portal.example",
                8081,
                "portal.example:8081",
                "/auth?key=abc"
            )
        );
        let u = url("http://10.0.0.1");
        assert_eq!((u.port(), u.authority(), u.target()), (80, "10.0.0.1", "/"));
        assert_eq!(u.ip(), Some("10.0.0.1".parse().unwrap()));
        let u = url("HTTP://[::1]:9000?x=1");
        assert_eq!(
            (u.host(), u.port(), u.authority(), u.target()),
            ("::1", 9000, "[::1]:9000", "/?x=1")
        );
        assert_eq!(url("http://[2001:db8::1]/a").authority(), "[2001:db8::1]");
        assert_eq!(u.to_string(), "http://[::1]:9000/?x=1");
    }

    #[test]
    fn url_refusals() {
        assert_eq!(
            BackendUrl::parse("https://portal/auth"),
            Err(BackendUrlError::HttpsUnsupported)
        );
        assert_eq!(
            BackendUrlError::HttpsUnsupported.to_string(),
            "https backends are not supported yet"
        );
        for bad in [
            "ftp://x/",
            "portal/auth",
            "http://user:pw@portal/auth",
            "http://portal/auth#frag",
            "http://portal:0/",
            "http://portal:65536/",
            "http://portal:/",
            "http://portal:8a/",
            "http:///auth",
            "http://[::1/",
            "http://[zz::1]/",
            "http://[::1]x/",
            "http://por tal/",
            "http://portal/a b",
            "http://portal/\u{e9}",
            "http://por%74al/",
        ] {
            assert!(
                matches!(BackendUrl::parse(bad), Err(BackendUrlError::Bad { .. })),
                "{bad}"
            );
        }
        assert!(BackendUrl::parse(&format!("http://h/{}", "a".repeat(3000))).is_err());
    }
}
