//! Pulled inputs, in Flussonic's syntax: `input rtmp://HOST[:PORT]/APP/NAME;`,
//! `input tshttp://HOST[:PORT]/PATH;` (a continuous HTTP MPEG-TS response),
//! `input hls://HOST[:PORT]/PATH.m3u8;` and `hlss://` (HLS over HTTPS). Flussonic refuses a
//! bare `http://` input; tessera takes `http://...m3u8` and `https://...m3u8` (the path
//! before the query ends in `.m3u8`) as `hls://` and `hlss://`, and refuses other ones.
//! `input rtsp://[USER:PASS@]HOST[:PORT]/PATH;` (always over TCP interleaved),
//! `input "srt://HOST:PORT?streamid=...&passphrase=...";` (quoted when the stream id has
//! `#`, which starts a comment).
//! Several `input` lines are failover sources in priority order. `static false;` makes the
//! stream on-demand (pulled while someone watches); `clients_timeout SECONDS;` is how long
//! it keeps pulling after the last viewer left; `source_timeout SECONDS;` how long a source
//! may send no frame before it counts as failed.
//!
//! Credentials in the URL (`rtmp://user:pass@host/...`, or a token in its query) are never
//! shown: `Display` writes the URL without the user part and the query, so logs and errors
//! cannot leak them.

use std::fmt;

/// The protocols an edge pulls with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullScheme {
    Rtmp,
    /// `tshttp://`: one long HTTP response of MPEG-TS.
    TsHttp,
    /// `hls://`, or `http://` ending in `.m3u8`.
    Hls,
    /// `hlss://`, or `https://` ending in `.m3u8`: HLS over TLS.
    Hlss,
    /// `rtsp://[user:pass@]host[:port]/path`: RTSP over TCP interleaved.
    Rtsp,
    /// `srt://host:port?streamid=...&passphrase=...`: an SRT caller.
    Srt,
}

impl PullScheme {
    fn default_port(self) -> u16 {
        match self {
            PullScheme::Rtmp => 1935,
            PullScheme::TsHttp | PullScheme::Hls => 80,
            PullScheme::Hlss => 443,
            PullScheme::Rtsp => 554,
            PullScheme::Srt => 0, // no default: the port is required
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            PullScheme::Rtmp => "rtmp",
            PullScheme::TsHttp => "tshttp",
            PullScheme::Hls => "hls",
            PullScheme::Hlss => "hlss",
            PullScheme::Rtsp => "rtsp",
            PullScheme::Srt => "srt",
        }
    }
}

/// A source an edge pulls from.
#[derive(Clone, PartialEq, Eq)]
pub struct PullUrl {
    pub scheme: PullScheme,
    pub host: String,
    pub port: u16,
    /// From the first `/` after the authority, query included; at least `/`.
    pub path: String,
    /// `user:pass` from the URL, for the origin only; never displayed.
    pub userinfo: Option<String>,
}

impl fmt::Display for PullUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.userinfo.is_some() { "***@" } else { "" };
        let scheme = self.scheme.as_str();
        // A query may carry the origin's token: shown as `?...`.
        let (path, query) = match self.path.split_once('?') {
            Some((path, _)) => (path, "?..."),
            None => (self.path.as_str(), ""),
        };
        write!(
            f,
            "{scheme}://{auth}{}:{}{path}{query}",
            self.host, self.port
        )
    }
}

/// Debug is Display: the credentials stay out of `{:?}` too.
impl fmt::Debug for PullUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Longest pull URL accepted.
const MAX_URL_LEN: usize = 2048;

impl PullUrl {
    /// Parses `scheme://[user[:pass]@]host[:port]/path`; `None` when `scheme` is not one
    /// this edge pulls with (the caller says what it is).
    pub fn parse(scheme: &str, rest: &str) -> Option<Result<PullUrl, String>> {
        let scheme = match scheme {
            "rtmp" => PullScheme::Rtmp,
            "tshttp" => PullScheme::TsHttp,
            "hls" => PullScheme::Hls,
            "hlss" => PullScheme::Hlss,
            "http" if is_m3u8(rest) => PullScheme::Hls,
            "https" if is_m3u8(rest) => PullScheme::Hlss,
            "rtsp" => PullScheme::Rtsp,
            "srt" => PullScheme::Srt,
            _ => return None,
        };
        Some(parse_authority(scheme, rest))
    }

    /// RTMP's application and stream name: the path's first segment, and the rest.
    pub fn rtmp_app_and_name(&self) -> (&str, &str) {
        let path = self.path.trim_start_matches('/');
        path.split_once('/').unwrap_or((path, ""))
    }
}

fn is_m3u8(rest: &str) -> bool {
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    path.split('?').next().unwrap_or("").ends_with(".m3u8")
}

fn parse_authority(scheme: PullScheme, rest: &str) -> Result<PullUrl, String> {
    if rest.len() > MAX_URL_LEN {
        return Err(format!("input URL longer than {MAX_URL_LEN} bytes"));
    }
    if rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("input URL has spaces or control characters".into());
    }
    // An SRT URL's query follows the port at once, and its stream id may hold `/`.
    let end = match scheme {
        PullScheme::Srt => rest.find(['/', '?']),
        _ => rest.find('/'),
    };
    let (authority, path) = match end {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_owned()), h),
        None => (None, authority),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("invalid port `{p}` in input URL"))?;
            (h, port)
        }
        _ => (hostport, scheme.default_port()),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("input URL `{}://` has no host", scheme.as_str()));
    }
    if scheme == PullScheme::Rtmp && path.trim_matches('/').split('/').count() < 2 {
        return Err("an RTMP input is `rtmp://HOST[:PORT]/APP/NAME`".into());
    }
    if scheme == PullScheme::Srt {
        check_srt_query(port, &path)?;
    }
    Ok(PullUrl {
        scheme,
        host: host.to_owned(),
        port,
        path,
        userinfo,
    })
}

/// An SRT input names its port, and its query only `streamid` and `passphrase` (10 to 79
/// characters, as libsrt wants; Flussonic's syntax).
fn check_srt_query(port: u16, path: &str) -> Result<(), String> {
    if port == 0 {
        return Err("an SRT input is `srt://HOST:PORT?streamid=...`: the port is required".into());
    }
    let query = path.split_once('?').map_or("", |(_, q)| q);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("streamid", _)) => {}
            Some(("passphrase", p)) if (10..=79).contains(&p.len()) || p.contains('%') => {}
            Some(("passphrase", _)) => {
                return Err("an SRT passphrase has 10 to 79 characters".into());
            }
            _ => {
                let key = pair.split('=').next().unwrap_or(pair);
                return Err(format!(
                    "unknown SRT input option `{key}`: expected `streamid` or `passphrase`"
                ));
            }
        }
    }
    Ok(())
}

/// How a pulled stream runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOptions {
    /// The second and later `input` lines: failover sources, in priority order.
    pub backups: Vec<PullUrl>,
    /// `static false;`: pulled only while someone watches.
    pub on_demand: bool,
    /// `clients_timeout`: how long an on-demand pull outlives its last viewer.
    pub clients_timeout_ms: u32,
    /// `source_timeout`: how long a source may send no frame before it counts as failed.
    pub source_timeout_ms: u32,
    /// `first_segment_timeout`: how long a first request (an HLS/DASH playlist, an RTSP
    /// DESCRIBE) waits for the stream's first segment (an on-demand pull starting, a stream
    /// just started) before it is answered `503` / `404`.
    pub first_segment_timeout_ms: u32,
}

pub const DEFAULT_CLIENTS_TIMEOUT_MS: u32 = 30_000;
pub const DEFAULT_SOURCE_TIMEOUT_MS: u32 = 10_000;
pub const DEFAULT_FIRST_SEGMENT_TIMEOUT_MS: u32 = 10_000;

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            backups: Vec::new(),
            on_demand: false,
            clients_timeout_ms: DEFAULT_CLIENTS_TIMEOUT_MS,
            source_timeout_ms: DEFAULT_SOURCE_TIMEOUT_MS,
            first_segment_timeout_ms: DEFAULT_FIRST_SEGMENT_TIMEOUT_MS,
        }
    }
}

/// `SECONDS` of `clients_timeout` / `source_timeout`: whole seconds in 1..=3600.
pub fn parse_timeout_seconds(directive: &str, text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(s) if (1..=3600).contains(&s) => Ok(s * 1000),
        _ => Err(format!(
            "invalid {directive} `{text}`: expected whole seconds from 1 to 3600"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(scheme: &str, rest: &str) -> PullUrl {
        PullUrl::parse(scheme, rest).unwrap().unwrap()
    }

    #[test]
    fn urls_parse_with_default_ports_and_hidden_credentials() {
        let u = ok("rtmp", "origin/live/cam1");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("origin", 1935, "/live/cam1")
        );
        assert_eq!(u.rtmp_app_and_name(), ("live", "cam1"));
        let u = ok("rtmp", "bob:secret@10.0.0.1:1940/app/a/b?x=1");
        assert_eq!(u.rtmp_app_and_name(), ("app", "a/b?x=1"));
        assert_eq!(u.userinfo.as_deref(), Some("bob:secret"));
        assert_eq!(u.to_string(), "rtmp://***@10.0.0.1:1940/app/a/b?...");
        assert!(!format!("{u:?}").contains("secret"));
        let u = ok("rtsp", "admin:p%40ss@cam.local/Streaming/Channels/101");
        assert_eq!((u.host.as_str(), u.port), ("cam.local", 554));
        assert_eq!(
            u.to_string(),
            "rtsp://***@cam.local:554/Streaming/Channels/101"
        );
        let u = ok(
            "srt",
            "10.0.0.2:9000?streamid=#!::r=live/s,m=request&passphrase=0987654321",
        );
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.2", 9000));
        assert_eq!(
            u.path,
            "/?streamid=#!::r=live/s,m=request&passphrase=0987654321"
        );
        assert_eq!(u.to_string(), "srt://10.0.0.2:9000/?...");
        assert!(PullUrl::parse("srt", "h?streamid=s").unwrap().is_err());
        assert!(
            PullUrl::parse("srt", "h:1?passphrase=short")
                .unwrap()
                .is_err()
        );
        assert!(PullUrl::parse("srt", "h:1?latency=5").unwrap().is_err());
        let u = ok("tshttp", "[::1]:8080/s/mpegts");
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        let u = ok("http", "h/a/index.m3u8?t=1");
        assert_eq!((u.scheme, u.port), (PullScheme::Hls, 80));
        let u = ok("https", "h/a/index.m3u8");
        assert_eq!((u.scheme, u.port), (PullScheme::Hlss, 443));
        assert_eq!(
            ok("hlss", "h:8443/a.m3u8").to_string(),
            "hlss://h:8443/a.m3u8"
        );
        assert_eq!(ok("hls", "h/live/s/index.m3u8").scheme, PullScheme::Hls);
        assert!(PullUrl::parse("http", "h/a/stream.ts").is_none());
        assert!(PullUrl::parse("https", "h/a.m3u8.ts").is_none());
        assert!(PullUrl::parse("rtmp", "h/app").unwrap().is_err());
        assert!(PullUrl::parse("rtmp", ":1935/a/b").unwrap().is_err());
        assert!(PullUrl::parse("rtmp", "h:0/a/b").unwrap().is_err());
        assert!(PullUrl::parse("tshttp", "h/a b").unwrap().is_err());
    }

    #[test]
    fn timeouts_are_whole_seconds() {
        assert_eq!(parse_timeout_seconds("source_timeout", "5"), Ok(5000));
        assert!(parse_timeout_seconds("source_timeout", "0").is_err());
        assert!(parse_timeout_seconds("source_timeout", "1.5").is_err());
    }
}
