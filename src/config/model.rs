//! The typed configuration model: what a parsed `tessera.conf` means, every value already
//! validated (ports, names, references, ranges). Also owns `Cidr` and its matching rule.
//! It never reads config text (that is `lexer` and `parser`) and never does I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The query-string key that carries a viewer's token unless `auth_token NAME;` says otherwise.
pub const DEFAULT_AUTH_TOKEN_PARAM: &str = "token";
/// Segment duration of a stream without `segment_duration`.
pub const DEFAULT_SEGMENT_DURATION_MS: u32 = 2000;
/// Shortest `segment_duration` accepted (0.5 s).
pub const MIN_SEGMENT_DURATION_MS: u32 = 500;
/// Longest `segment_duration` accepted (30 s).
pub const MAX_SEGMENT_DURATION_MS: u32 = 30_000;
/// How long a portal backend may take to answer unless `backend_timeout` says otherwise
/// (spec §3: 3 s).
pub const DEFAULT_BACKEND_TIMEOUT_MS: u32 = 3_000;
/// `backend_timeout` accepted range.
pub const MIN_BACKEND_TIMEOUT_MS: u32 = 100;
pub const MAX_BACKEND_TIMEOUT_MS: u32 = 60_000;
/// The SRT latency tessera asks of its viewers unless `srt_latency` says otherwise (ms,
/// libsrt's own default).
pub const DEFAULT_SRT_LATENCY_MS: u16 = 120;
/// `srt_latency` accepted range (ms).
pub const MIN_SRT_LATENCY_MS: u16 = 20;
pub const MAX_SRT_LATENCY_MS: u16 = 10_000;

/// Path prefix of the operator API (`http::api`); no stream name may start with
/// `streamer/api`.
pub const API_PREFIX: &str = "/streamer/api/v3/";
/// First path segment of the player's scripts (`/_player/NAME`, `player`); no stream name
/// may start with it.
pub const PLAYER_SEGMENT: &str = "_player";

/// A whole validated config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// In file order; no two share an address (per transport).
    pub listeners: Vec<Listener>,
    /// Query key for tokens (`auth_token NAME;`, default `token`).
    pub auth_token_param: String,
    /// `player_assets DIR;`: the npm `node_modules` directory holding the browser player's
    /// scripts (tools/player/install.sh makes one).
    pub player_assets: Option<String>,
    /// In file order; names are unique.
    pub auth_backends: Vec<AuthBackend>,
    /// In file order; names are unique and every `on_play auth://X` names a backend here.
    pub streams: Vec<StreamConfig>,
    /// `template NAME { prefix P; ... }`: streams made on request (`config::template`);
    /// no two share a prefix.
    pub templates: Vec<super::template::TemplateConfig>,
    /// `api_key KEY;`: the Bearer key of the operator API. `None`: the API answers 401 to
    /// everyone (there is no unauthenticated API).
    pub api_key: Option<String>,
    /// `backend_timeout SECONDS;` at top level: the default for every portal backend.
    pub backend_timeout_ms: u32,
    /// `srt_latency MS;`: the TSBPD latency tessera asks of SRT viewers (the larger of it
    /// and the caller's applies).
    pub srt_latency_ms: u16,
    /// `srt_passphrase PASS;` at top level: every stream's SRT passphrase unless the stream
    /// sets its own.
    pub srt_passphrase: Option<String>,
    /// `max_connections_per_ip N;`: open connections one client IP may hold, every
    /// protocol together; 0 is no limit.
    pub max_connections_per_ip: u32,
    /// `handshake_timeout SECONDS;`: how long a new connection may take to send its first
    /// request (HTTP head, RTSP request) or finish its handshake (RTMP).
    pub handshake_timeout_ms: u32,
    /// `shutdown_timeout SECONDS;`: how long a graceful stop (SIGTERM) lets connections
    /// finish before the process exits anyway.
    pub shutdown_timeout_ms: u32,
    /// `ssl_certificate PATH;` and `ssl_certificate_key PATH;` (PEM), as written, with
    /// where; the runtime reads them (relative paths from the config file's directory).
    pub ssl_certificate: Option<(String, Span)>,
    pub ssl_certificate_key: Option<(String, Span)>,
    /// `api_allowed_from CIDR...;`: the addresses the operator API answers (all when empty).
    pub api_allowed_from: Vec<Cidr>,
    /// `server_name NAME... { ssl_certificate PATH; ssl_certificate_key PATH; }`: the
    /// certificate TLS clients asking for these names (SNI) get; others get the default.
    pub server_names: Vec<ServerNameConfig>,
    /// `cluster { ... }`: the fleet this node belongs to; `None`: a node on its own.
    pub cluster: Option<crate::config::ClusterConfig>,
    /// `cluster_key KEY;`: the fleet's shared secret (keyed hashes agree across nodes).
    pub cluster_key: Option<String>,
    /// `webrtc_candidate IP;`: the address WHEP answers give browsers for the `webrtc`
    /// ports (the public one behind NAT). Unset: the listener's address, or the one the
    /// offer came in on.
    pub webrtc_candidate: Option<std::net::IpAddr>,
}

/// One `server_name` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNameConfig {
    /// Lower-case DNS names.
    pub names: Vec<String>,
    pub certificate: (String, Span),
    pub key: (String, Span),
}

/// Open connections one client IP may hold unless `max_connections_per_ip` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 1000;
/// Highest `max_connections_per_ip`.
pub const MAX_CONNECTIONS_PER_IP: u32 = 1_000_000;
/// `handshake_timeout` unless set, and its bounds.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u32 = 5_000;
pub const MIN_HANDSHAKE_TIMEOUT_MS: u32 = 500;
pub const MAX_HANDSHAKE_TIMEOUT_MS: u32 = 60_000;
/// `shutdown_timeout` unless set, and its bound.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u32 = 10_000;
pub const MAX_SHUTDOWN_TIMEOUT_MS: u32 = 300_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Vec::new(),
            auth_token_param: DEFAULT_AUTH_TOKEN_PARAM.to_owned(),
            player_assets: None,
            auth_backends: Vec::new(),
            streams: Vec::new(),
            templates: Vec::new(),
            api_key: None,
            backend_timeout_ms: DEFAULT_BACKEND_TIMEOUT_MS,
            srt_latency_ms: DEFAULT_SRT_LATENCY_MS,
            srt_passphrase: None,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            shutdown_timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
            ssl_certificate: None,
            ssl_certificate_key: None,
            server_names: Vec::new(),
            api_allowed_from: Vec::new(),
            cluster: None,
            cluster_key: None,
            webrtc_candidate: None,
        }
    }
}

impl Config {
    /// The stream configured under exactly this name.
    pub fn stream(&self, name: &str) -> Option<&StreamConfig> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The `auth_backend` configured under exactly this name.
    pub fn auth_backend(&self, name: &str) -> Option<&AuthBackend> {
        self.auth_backends.iter().find(|b| b.name == name)
    }
}

/// `http|rtmp|rtsp|srt ADDRESS;`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub proto: ListenerProto,
    /// A bare port means `0.0.0.0:PORT`. The port is never 0.
    pub addr: SocketAddr,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerProto {
    Http,
    Rtmp,
    Rtsp,
    Srt,
    /// `webrtc PORT;`: WebRTC's UDP ports, `PORT + i` on shard `i` (a WHEP answer names
    /// its shard's port, so a browser's datagrams reach the shard holding its session).
    Webrtc,
    /// HTTP, RTMP and RTSP inside TLS (Flussonic's `https`, `rtmps`, `rtsps`).
    Https,
    Rtmps,
    Rtsps,
    /// HTTP(S) listeners of the operator API (Flussonic's `admin_http`, `admin_https`):
    /// once one exists, the API answers only there.
    AdminHttp,
    AdminHttps,
}

impl ListenerProto {
    /// The directive name, as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProto::Http => "http",
            ListenerProto::Rtmp => "rtmp",
            ListenerProto::Rtsp => "rtsp",
            ListenerProto::Srt => "srt",
            ListenerProto::Webrtc => "webrtc",
            ListenerProto::Https => "https",
            ListenerProto::Rtmps => "rtmps",
            ListenerProto::Rtsps => "rtsps",
            ListenerProto::AdminHttp => "admin_http",
            ListenerProto::AdminHttps => "admin_https",
        }
    }

    /// Whether connections start with a TLS handshake.
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            ListenerProto::Https
                | ListenerProto::Rtmps
                | ListenerProto::Rtsps
                | ListenerProto::AdminHttps
        )
    }

    /// Whether the operator API answers here when admin listeners exist.
    pub fn is_admin(self) -> bool {
        matches!(self, ListenerProto::AdminHttp | ListenerProto::AdminHttps)
    }

    /// The protocol spoken (inside TLS for the TLS listeners).
    pub fn inner(self) -> ListenerProto {
        match self {
            ListenerProto::Https | ListenerProto::AdminHttp | ListenerProto::AdminHttps => {
                ListenerProto::Http
            }
            ListenerProto::Rtmps => ListenerProto::Rtmp,
            ListenerProto::Rtsps => ListenerProto::Rtsp,
            other => other,
        }
    }

    /// The socket kind the protocol binds. Two listeners conflict only on the same transport.
    pub fn transport(self) -> Transport {
        match self {
            ListenerProto::Srt | ListenerProto::Webrtc => Transport::Udp,
            _ => Transport::Tcp,
        }
    }
}

impl fmt::Display for ListenerProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

/// `auth_backend NAME { ... }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthBackend {
    pub name: String,
    pub rules: Rules,
    pub span: Span,
}

/// The local rules of an `auth_backend`, each list in file order. Evaluation order (spec §2,
/// §7.1): signed tokens, allow token, deny token, allow ip, deny ip, allow ua, deny ua, then
/// `allow_default`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Never contains an empty string.
    pub allow_tokens: Vec<String>,
    /// Never contains an empty string.
    pub deny_tokens: Vec<String>,
    pub allow_ips: Vec<Cidr>,
    pub deny_ips: Vec<Cidr>,
    /// User-agent substrings; never empty strings.
    pub allow_uas: Vec<String>,
    /// User-agent substrings; never empty strings.
    pub deny_uas: Vec<String>,
    /// `allow default;`: allow when no rule matched.
    pub allow_default: bool,
    /// `signed_key ID SECRET;`: keys that sign `v1` tokens, checked before every other rule.
    pub signed_keys: Vec<SignedKeyConfig>,
    /// `securetoken SECRET [no_check_ip];`: Flussonic securetoken, checked with signed keys.
    pub securetoken: Option<SecureTokenConfig>,
    /// `backend http://...;`: portal backends (spec §3), asked in parallel after every local
    /// rule; validated by `BackendUrl::parse`.
    pub backends: Vec<String>,
    /// `backend_timeout SECONDS;` inside the block; the top-level default otherwise.
    pub backend_timeout_ms: Option<u32>,
    /// `max_sessions_policy refuse_new;`: a user over `X-Max-Sessions` is refused the new
    /// session instead of losing the oldest (`close_oldest`, the default).
    pub refuse_new_sessions: bool,
}

/// `securetoken SECRET [no_check_ip];`
#[derive(Clone, PartialEq, Eq)]
pub struct SecureTokenConfig {
    pub secret: String,
    /// `false` with `no_check_ip`: tokens are not bound to the client address.
    pub check_ip: bool,
}

impl fmt::Debug for SecureTokenConfig {
    /// The secret never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureTokenConfig")
            .field("check_ip", &self.check_ip)
            .finish_non_exhaustive()
    }
}

/// One `signed_key ID SECRET;` (the id and secret already validated).
#[derive(Clone, PartialEq, Eq)]
pub struct SignedKeyConfig {
    pub id: String,
    pub secret: String,
    pub span: Span,
}

impl fmt::Debug for SignedKeyConfig {
    /// The secret never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedKeyConfig")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An IP network: `10.0.0.0/8`, `2001:db8::/32`, or a bare address (`/32`, `/128`).
///
/// Parsing clears the host bits (`10.1.2.3/8` becomes `10.0.0.0/8`); `contains` ignores them
/// anyway, so a hand-built value behaves the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network. IPv4-mapped IPv6 (`::ffff:a.b.c.d`) counts as the
    /// IPv4 address it carries, on both sides: `10.0.0.0/8` contains `::ffff:10.1.2.3`, and
    /// `::ffff:10.0.0.0/104` is `10.0.0.0/8`. An IPv4 network never contains a native IPv6
    /// address and the other way round (so `::/0` does not match IPv4 clients).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, len) = self.canonical();
        match (net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(net, len) == mask_v4(ip, len),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(net, len) == mask_v6(ip, len),
            _ => false,
        }
    }

    /// The network with an IPv4-mapped IPv6 prefix rewritten as IPv4.
    fn canonical(&self) -> (IpAddr, u8) {
        match self.addr {
            IpAddr::V6(v6) if self.prefix_len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), self.prefix_len - 96),
                None => (self.addr, self.prefix_len),
            },
            _ => (self.addr, self.prefix_len),
        }
    }
}

/// Keeps the first `len` bits (`len` above 32 keeps all of them).
fn mask_v4(ip: Ipv4Addr, len: u8) -> u32 {
    let bits = u32::from(ip);
    match len {
        0 => 0,
        1..=31 => bits & (u32::MAX << (32 - u32::from(len))),
        _ => bits,
    }
}

/// Keeps the first `len` bits (`len` above 128 keeps all of them).
fn mask_v6(ip: Ipv6Addr, len: u8) -> u128 {
    let bits = u128::from(ip);
    match len {
        0 => 0,
        1..=127 => bits & (u128::MAX << (128 - u32::from(len))),
        _ => bits,
    }
}

/// Why a string is not a `Cidr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    InvalidAddress,
    /// The part after `/` is not a decimal number.
    InvalidPrefix,
    /// The prefix is longer than the address (32 bits for IPv4, 128 for IPv6).
    PrefixOutOfRange { max: u8 },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::InvalidAddress => f.write_str("not an IP address"),
            CidrError::InvalidPrefix => f.write_str("the prefix length is not a number"),
            CidrError::PrefixOutOfRange { max } => {
                let family = if *max == 32 { "IPv4" } else { "IPv6" };
                write!(
                    f,
                    "the prefix length is out of range for {family} (0-{max})"
                )
            }
        }
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::InvalidAddress)?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CidrError::InvalidPrefix);
                }
                // Digits only, so a failed parse means too large for any prefix.
                match p.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(CidrError::PrefixOutOfRange { max }),
                }
            }
        };
        let addr = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask_v4(v4, prefix_len))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(v6, prefix_len))),
        };
        Ok(Cidr { addr, prefix_len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// `stream NAME { ... }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Validated: non-empty, `/`-separated segments, none empty, `.` or `..`; no `?`, `#`,
    /// `%`, `\`, whitespace or control characters.
    pub name: String,
    pub input: InputUrl,
    pub on_play: Option<OnPlay>,
    /// Who authorizes publishers (`on_publish`, same targets as `on_play`); only with
    /// `input publish://`. `None`: any publisher is accepted.
    pub on_publish: Option<OnPlay>,
    /// In 0.5..=30 s; `DEFAULT_SEGMENT_DURATION_MS` unless set.
    pub segment_duration_ms: u32,
    /// The stream's own SRT settings (Flussonic's per-stream forms).
    pub srt: StreamSrt,
    /// Failover sources, on-demand and timeouts of a pulled stream (`config::pull`).
    pub pull: super::pull::PullOptions,
    pub span: Span,
}

/// `srt_passphrase` accepted length (libsrt's `SRTO_PASSPHRASE`: 10 to 79 bytes).
pub const MIN_SRT_PASSPHRASE: usize = 10;
pub const MAX_SRT_PASSPHRASE: usize = 79;

/// A stream's own SRT settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamSrt {
    /// `srt_passphrase PASS;` in the stream (else the top-level one applies).
    pub passphrase: Option<String>,
    /// `srt_play { port N; }`: a UDP port that plays this stream only (no `r=` needed).
    pub play: Option<SocketAddr>,
    /// `srt N;` in the stream: a UDP port that plays this stream and takes its publishers
    /// (`m=` picks).
    pub play_publish: Option<SocketAddr>,
}

/// The inputs tessera serves today. Other schemes are recognised by the parser and refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputUrl {
    /// `fake://fake`: the built-in test source.
    Fake,
    /// `publish://`: an RTMP publisher pushes the stream (one at a time).
    Publish,
    /// `rtmp://`, `tshttp://`, `hls://`: pulled from an origin (`config::pull`).
    Pull(super::pull::PullUrl),
}

/// Who authorizes play requests of a stream (and, as `on_publish`, its publishers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnPlay {
    /// `on_play auth://NAME;`: the `auth_backend` called `backend` (always defined).
    Auth { backend: String },
}

/// A position in the config source: 1-based line and column, the column counted in chars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_forms() {
        assert_eq!(
            cidr("10.0.0.0/8"),
            Cidr {
                addr: ip("10.0.0.0"),
                prefix_len: 8
            }
        );
        assert_eq!(
            cidr("::1"),
            Cidr {
                addr: ip("::1"),
                prefix_len: 128
            }
        );
        assert_eq!(
            cidr("2001:db8::/32"),
            Cidr {
                addr: ip("2001:db8::"),
                prefix_len: 32
            }
        );
        assert_eq!(
            cidr("192.0.2.7"),
            Cidr {
                addr: ip("192.0.2.7"),
                prefix_len: 32
            }
        );
        // Host bits are cleared.
        assert_eq!(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("::/0").to_string(), "::/0");
    }

    #[test]
    fn cidr_parse_errors() {
        let err = |s: &str| s.parse::<Cidr>().unwrap_err();
        assert_eq!(err("10.0.0.0/33"), CidrError::PrefixOutOfRange { max: 32 });
        assert_eq!(err("::/129"), CidrError::PrefixOutOfRange { max: 128 });
        assert_eq!(
            err("::/99999999999999999999"),
            CidrError::PrefixOutOfRange { max: 128 }
        );
        assert_eq!(err("10.0.0.0/"), CidrError::InvalidPrefix);
        assert_eq!(err("10.0.0.0/+8"), CidrError::InvalidPrefix);
        assert_eq!(err("10.0.0.0/8/8"), CidrError::InvalidPrefix);
        assert_eq!(err("10.0.0.300/8"), CidrError::InvalidAddress);
        assert_eq!(err("example.com"), CidrError::InvalidAddress);
        assert_eq!(err(""), CidrError::InvalidAddress);
        assert_eq!(
            err("1.2.3.4/40").to_string(),
            "the prefix length is out of range for IPv4 (0-32)"
        );
    }

    #[test]
    fn cidr_contains_v4() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.0.0.0")));
        assert!(net.contains(ip("10.255.255.255")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(!net.contains(ip("9.255.255.255")));
        assert!(
            !net.contains(ip("::a00:1")),
            "IPv4-compatible is not IPv4-mapped"
        );
        let host = cidr("192.0.2.7");
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
    }

    #[test]
    fn cidr_contains_ipv4_mapped() {
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("10.0.0.0/8").contains(ip("::ffff:11.1.2.3")));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("::ffff:10.9.9.9")));
        assert!(!cidr("::ffff:10.0.0.0/104").contains(ip("11.0.0.1")));
        assert!(cidr("::ffff:192.0.2.1").contains(ip("192.0.2.1")));
    }

    #[test]
    fn cidr_contains_v6_and_zero_prefix() {
        let net = cidr("2001:db8::/32");
        assert!(net.contains(ip("2001:db8::1")));
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
        assert!(!net.contains(ip("10.0.0.1")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(!cidr("::1").contains(ip("::2")));

        let all_v4 = cidr("0.0.0.0/0");
        assert!(all_v4.contains(ip("255.255.255.255")));
        assert!(all_v4.contains(ip("::ffff:1.2.3.4")));
        assert!(!all_v4.contains(ip("2001:db8::1")));
        let all_v6 = cidr("::/0");
        assert!(all_v6.contains(ip("2001:db8::1")));
        assert!(all_v6.contains(ip("::1")));
        assert!(!all_v6.contains(ip("1.2.3.4")));
        assert!(!all_v6.contains(ip("::ffff:1.2.3.4")));
    }

    #[test]
    fn cidr_hand_built_values_never_panic() {
        let odd = Cidr {
            addr: ip("10.1.2.3"),
            prefix_len: 200,
        };
        assert!(odd.contains(ip("10.1.2.3")));
        assert!(!odd.contains(ip("10.1.2.4")));
        let host_bits = Cidr {
            addr: ip("10.1.2.3"),
            prefix_len: 8,
        };
        assert!(host_bits.contains(ip("10.200.0.1")));
        let v6 = Cidr {
            addr: ip("::1"),
            prefix_len: 255,
        };
        assert!(v6.contains(ip("::1")));
    }
}
