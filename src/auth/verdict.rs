//! The vocabulary of authorization: who asks (`PlayRequest`), by which protocol (`Proto`),
//! and what the answer is (`Verdict`, `DenyReason`).

use std::fmt;
use std::net::IpAddr;

pub use crate::stream::StreamId;

/// Playback protocols, with the names the spec's backend protocol uses for `proto=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Hls,
    LlHls,
    Dash,
    Mss,
    WebRtc,
    Rtmp,
    Rtsp,
    Srt,
    TsHttp,
}

impl Proto {
    pub const ALL: [Proto; 9] = [
        Proto::Hls,
        Proto::LlHls,
        Proto::Dash,
        Proto::Mss,
        Proto::WebRtc,
        Proto::Rtmp,
        Proto::Rtsp,
        Proto::Srt,
        Proto::TsHttp,
    ];

    /// The protocol named `text` (`proto=` values), if any.
    pub fn parse(text: &str) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Hls => "hls",
            Proto::LlHls => "llhls",
            Proto::Dash => "dash",
            Proto::Mss => "mss",
            Proto::WebRtc => "webrtc",
            Proto::Rtmp => "rtmp",
            Proto::Rtsp => "rtsp",
            Proto::Srt => "srt",
            Proto::TsHttp => "tshttp",
        }
    }
}

/// Why a play request was refused; sent as `x-deny-reason` and in protocol refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// The rules (or a portal backend) said no.
    BackendDenied,
    BackendUnavailable,
    SessionLimit,
    SessionRevoked,
    TokenExpired,
    BadSignature,
}

/// How many `DenyReason`s there are (metrics arrays are indexed by `reason as usize`).
pub const DENY_REASONS: usize = 6;

impl DenyReason {
    pub const ALL: [DenyReason; DENY_REASONS] = [
        DenyReason::BackendDenied,
        DenyReason::BackendUnavailable,
        DenyReason::SessionLimit,
        DenyReason::SessionRevoked,
        DenyReason::TokenExpired,
        DenyReason::BadSignature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::BackendDenied => "backend_denied",
            DenyReason::BackendUnavailable => "backend_unavailable",
            DenyReason::SessionLimit => "session_limit",
            DenyReason::SessionRevoked => "session_revoked",
            DenyReason::TokenExpired => "token_expired",
            DenyReason::BadSignature => "bad_signature",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny(DenyReason),
}

/// What a request asks for: to watch a stream (`on_play`), or to push one into a
/// `publish://` stream (`on_publish`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Play,
    Publish,
}

/// One play request, as every protocol describes it to the authorizer.
#[derive(Clone, Copy, Debug)]
pub struct PlayRequest<'a> {
    pub stream: StreamId,
    pub proto: Proto,
    /// The decoded token, if the client sent the token parameter.
    pub token: Option<&'a [u8]>,
    pub ip: IpAddr,
    pub user_agent: Option<&'a [u8]>,
    /// `Referer`, for the portal (HTTP protocols).
    pub referer: Option<&'a [u8]>,
    /// The client's query string as it arrived, without `?` (the portal's `qs`).
    pub qs: &'a [u8],
}

/// The client address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) folded to IPv4, so rules,
/// cache keys and sessions see one address per client whatever the listener family.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}
