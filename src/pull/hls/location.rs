//! Where an HLS pull's requests go: the playlist's origin, and every URI in a playlist
//! resolved against the playlist's own location (RFC 3986 §5.2, the cases playlists use:
//! absolute `http(s)://`, scheme-relative `//host/...`, absolute path, relative path).

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Location {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// From the first `/`, query included.
    pub path: String,
}

/// Paths and queries may carry an origin's token: shown without the query.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let path = self.path.split('?').next().unwrap_or("");
        let query = if self.path.contains('?') { "?..." } else { "" };
        write!(f, "{scheme}://{}:{}{path}{query}", self.host, self.port)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Location {
    /// Whether `other` is served by the same origin (scheme, host, port).
    pub fn same_origin(&self, other: &Location) -> bool {
        self.tls == other.tls && self.host == other.host && self.port == other.port
    }

    /// `uri` (from a playlist, or a `Location` header) resolved against this location.
    pub fn resolve(&self, uri: &str) -> Result<Location, String> {
        if uri.len() > super::playlist::MAX_URI_LEN || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("a URI too long or with spaces or control characters".into());
        }
        let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
        if lower.starts_with("http://") {
            return absolute(false, &uri[7..]);
        }
        if lower.starts_with("https://") {
            return absolute(true, &uri[8..]);
        }
        if let Some(rest) = uri.strip_prefix("//") {
            return absolute(self.tls, rest);
        }
        if uri.contains("://") && uri.find("://") < uri.find('/') {
            return Err(format!(
                "a URI of another scheme than http(s): `{}`",
                uri.split("://").next().unwrap_or("")
            ));
        }
        let path = if uri.starts_with('/') {
            uri.to_owned()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{}{uri}", if dir.is_empty() { "/" } else { dir })
        };
        Ok(Location {
            path,
            ..self.clone()
        })
    }
}

/// `host[:port]/path` after `http(s)://`; credentials in it are refused (they would be
/// sent to whatever host a playlist names).
fn absolute(tls: bool, rest: &str) -> Result<Location, String> {
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    if authority.contains('@') {
        return Err("a playlist URI with credentials".into());
    }
    let default_port = if tls { 443 } else { 80 };
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, rest) = v6.split_once(']').ok_or("a URI with an unclosed `[`")?;
            (host, rest.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or("a URI with an invalid port")?,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("a URI without a host".into());
    }
    Ok(Location {
        tls,
        host: host.to_owned(),
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Location {
        Location {
            tls: false,
            host: "o".into(),
            port: 8080,
            path: "/live/s/index.m3u8?token=t".into(),
        }
    }

    #[test]
    fn uris_resolve_against_the_playlist() {
        let b = base();
        assert_eq!(b.resolve("seg1.ts").unwrap().path, "/live/s/seg1.ts");
        assert_eq!(b.resolve("a/b.ts?x=1").unwrap().path, "/live/s/a/b.ts?x=1");
        assert_eq!(b.resolve("/other/x.ts").unwrap().path, "/other/x.ts");
        let abs = b.resolve("https://cdn:9443/x/y.ts").unwrap();
        assert!(abs.tls && !abs.same_origin(&b));
        assert_eq!(
            (abs.host.as_str(), abs.port, abs.path.as_str()),
            ("cdn", 9443, "/x/y.ts")
        );
        let rel = b.resolve("//cdn/x.ts").unwrap();
        assert_eq!((rel.tls, rel.port), (false, 80));
        assert_eq!(b.resolve("http://[::1]/a").unwrap().host, "::1");
        assert!(b.resolve("http://u:p@h/a").is_err());
        assert!(b.resolve("ftp://h/a").is_err());
        assert!(b.resolve("http://:80/a").is_err());
        assert!(b.resolve("a b").is_err());
        assert_eq!(b.to_string(), "http://o:8080/live/s/index.m3u8?...");
    }
}
