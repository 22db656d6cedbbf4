//! The HSv5 caller-listener handshake, listener side (draft-sharabayko-srt §4.3; libsrt's
//! `handshake.md`):
//!
//! ```text
//!   caller                                   tessera (Listener)
//!   INDUCTION v4, cookie 0          ──►      (stateless) INDUCTION v5, 0x4A17, cookie
//!   CONCLUSION v5 + HSREQ, SID, KMREQ ──►    cookie checked → CallerHello (a connection is made,
//!                                            it asks to authorize the stream id)
//!                                   ◄──      CONCLUSION + HSRSP (+ KMRSP), or a rejection:
//!                                            handshake type 1000 + reason (1403, 1401, ...)
//! ```
//!
//! The cookie is a keyed hash (HMAC-SHA256 with the listener's secret) of the caller's
//! address and the minute, so the induction keeps no state per caller and a conclusion from
//! a spoofed address is ignored; the previous minute's cookie is still accepted. Owns the
//! handshake wire contents (HSREQ/HSRSP, SID, KMREQ/KMRSP, reject codes); the connection that
//! follows is `connection`'s.

use super::RejectReason;
use super::crypto::KeyMaterial;
use super::packet::{
    self, Control, ControlPacket, Extensions, HANDSHAKE_CIF_LEN, HEADER_LEN, Handshake,
    HandshakeType,
};
use super::seq::SeqNo;
use hmac::{Hmac, Mac};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The handshake version of SRT 1.3+.
pub const VERSION_5: u32 = 5;
/// `SRT_MAGIC_CODE`, the induction response's extension field.
pub const SRT_MAGIC: u16 = 0x4A17;
/// The SRT version tessera announces in HSRSP (1.5.1, the Debian libsrt).
pub const SRT_VERSION: u32 = 0x0001_0501;
/// The largest packet tessera sends or accepts (libsrt's default MSS).
pub const MAX_MTU: u32 = 1500;
/// Flow window announced (packets), libsrt's default.
pub const FLOW_WINDOW: u32 = 8192;
/// How long a cookie stays valid (one bucket, and the one before it).
const COOKIE_BUCKET: Duration = Duration::from_secs(60);

/// Handshake extension flags (conclusion's extension field).
pub mod ext_flag {
    pub const HSREQ: u16 = 1;
    pub const KMREQ: u16 = 2;
    pub const CONFIG: u16 = 4;
}

/// Handshake extension commands (`SRT_CMD_*`).
pub mod cmd {
    pub const HSREQ: u16 = 1;
    pub const HSRSP: u16 = 2;
    pub const KMREQ: u16 = 3;
    pub const KMRSP: u16 = 4;
    pub const SID: u16 = 5;
    pub const CONGESTION: u16 = 6;
    pub const FILTER: u16 = 7;
    pub const GROUP: u16 = 8;
}

/// SRT option flags in HSREQ/HSRSP (`SRT_OPT_*`).
pub mod srt_flag {
    pub const TSBPD_SND: u32 = 1 << 0;
    pub const TSBPD_RCV: u32 = 1 << 1;
    pub const HAICRYPT: u32 = 1 << 2;
    pub const TLPKTDROP: u32 = 1 << 3;
    pub const NAKREPORT: u32 = 1 << 4;
    pub const REXMITFLG: u32 = 1 << 5;
    pub const STREAM: u32 = 1 << 6;
}

/// A handshake datagram the listener could not use, with where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    Packet(packet::PacketError),
    /// Not a handshake, or not one a listener answers (rendezvous, HSv4 conclusion, ...).
    Unexpected(&'static str),
    /// The conclusion's cookie is not one this listener gave to this address.
    BadCookie,
    /// The conclusion is well-formed but asks for something tessera does not do; answer
    /// with a rejection carrying the reason.
    Refused {
        reason: RejectReason,
        what: &'static str,
    },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Packet(e) => write!(f, "srt handshake: {e}"),
            HandshakeError::Unexpected(what) => write!(f, "srt handshake: unexpected {what}"),
            HandshakeError::BadCookie => f.write_str("srt handshake: cookie mismatch"),
            HandshakeError::Refused { reason, what } => {
                write!(f, "srt handshake: refused ({}): {what}", reason.0)
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<packet::PacketError> for HandshakeError {
    fn from(e: packet::PacketError) -> Self {
        HandshakeError::Packet(e)
    }
}

/// What the caller asked for in its conclusion: everything the connection needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerHello {
    pub socket_id: u32,
    pub isn: SeqNo,
    pub mtu: u32,
    pub flow_window: u32,
    pub srt_version: u32,
    pub srt_flags: u32,
    /// The caller's receiver latency (ms): how long it buffers what tessera sends.
    pub receiver_latency_ms: u16,
    /// The caller's sender latency (ms).
    pub sender_latency_ms: u16,
    /// The stream id (SRT_CMD_SID), decoded.
    pub stream_id: Option<String>,
    pub key_material: Option<KeyMaterial>,
    /// The caller's header timestamp on the conclusion (µs on its clock).
    pub timestamp: u32,
}

/// What the listener does with a datagram from an address that has no connection.
#[derive(Debug, PartialEq, Eq)]
pub enum ListenerReply {
    /// Send this induction response.
    Induction(Vec<u8>),
    /// A valid conclusion: make a connection for this caller.
    Conclusion(CallerHello),
}

/// The stateless listener half of the handshake. One per shard.
#[derive(Clone)]
pub struct Listener {
    secret: [u8; 32],
    start: Instant,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// `secret` keys the cookies (random per process); `start` is the time origin of the
    /// listener's header timestamps and cookie buckets.
    pub fn new(secret: [u8; 32], start: Instant) -> Listener {
        Listener { secret, start }
    }

    /// Handles a datagram from `peer` that belongs to no connection.
    pub fn handle(
        &self,
        datagram: &[u8],
        peer: SocketAddr,
        now: Instant,
    ) -> Result<ListenerReply, HandshakeError> {
        let (header, hs) = handshake_of(datagram)?;
        match hs.kind {
            HandshakeType::Induction => {
                Ok(ListenerReply::Induction(self.induction(&hs, peer, now)))
            }
            HandshakeType::Conclusion => {
                if !self.cookie_valid(hs.cookie, peer, now) {
                    return Err(HandshakeError::BadCookie);
                }
                Ok(ListenerReply::Conclusion(parse_conclusion(
                    &hs,
                    header.timestamp,
                )?))
            }
            _ => Err(HandshakeError::Unexpected("handshake type for a listener")),
        }
    }

    fn induction(&self, hs: &Handshake<'_>, peer: SocketAddr, now: Instant) -> Vec<u8> {
        let reply = Handshake {
            version: VERSION_5,
            encryption: 0,
            extension: SRT_MAGIC,
            cookie: self.cookie(peer, self.bucket(now)),
            peer_ip: peer_ip_field(peer.ip()),
            extensions: &[],
            ..*hs
        };
        let mut out = Vec::with_capacity(HEADER_LEN + HANDSHAKE_CIF_LEN);
        ControlPacket {
            timestamp: micros_since(self.start, now),
            dest_socket: hs.socket_id,
            control: Control::Handshake(reply),
        }
        .write(&mut out);
        out
    }

    fn bucket(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs() / COOKIE_BUCKET.as_secs()
    }

    fn cookie(&self, peer: SocketAddr, bucket: u64) -> u32 {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC takes a key of any length");
        match peer.ip() {
            IpAddr::V4(ip) => mac.update(&ip.octets()),
            IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        mac.update(&peer.port().to_be_bytes());
        mac.update(&bucket.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        u32::from_be_bytes([tag[0], tag[1], tag[2], tag[3]])
    }

    fn cookie_valid(&self, cookie: u32, peer: SocketAddr, now: Instant) -> bool {
        let bucket = self.bucket(now);
        let current = self.cookie(peer, bucket) == cookie;
        current || (bucket > 0 && self.cookie(peer, bucket - 1) == cookie)
    }
}

/// Parses a datagram that must be a handshake control packet.
pub fn handshake_of(datagram: &[u8]) -> Result<(ControlPacket<'_>, Handshake<'_>), HandshakeError> {
    match packet::parse(datagram)? {
        packet::Packet::Control(c) => match c.control {
            Control::Handshake(hs) => Ok((c, hs)),
            _ => Err(HandshakeError::Unexpected(
                "control packet before the handshake",
            )),
        },
        packet::Packet::Data(..) => Err(HandshakeError::Unexpected("data before the handshake")),
    }
}

/// Is this datagram a caller starting over (an induction)? The runtime routes it to the
/// [`Listener`] even when a connection for the same address still exists (a caller that
/// restarted from the same port), since a connection ignores inductions.
pub fn is_induction(datagram: &[u8]) -> bool {
    matches!(
        handshake_of(datagram),
        Ok((
            _,
            Handshake {
                kind: HandshakeType::Induction,
                ..
            }
        ))
    )
}

fn refused(reason: RejectReason, what: &'static str) -> HandshakeError {
    HandshakeError::Refused { reason, what }
}

/// Reads a conclusion request's fields and extensions.
pub(crate) fn parse_conclusion(
    hs: &Handshake<'_>,
    timestamp: u32,
) -> Result<CallerHello, HandshakeError> {
    if hs.version != VERSION_5 {
        return Err(refused(
            RejectReason::VERSION,
            "handshake version other than 5",
        ));
    }
    if hs.extension & ext_flag::HSREQ == 0 {
        return Err(refused(RejectReason::ROGUE, "conclusion without HSREQ"));
    }
    let mut hello = CallerHello {
        socket_id: hs.socket_id,
        isn: hs.isn,
        mtu: hs.mtu.min(MAX_MTU),
        flow_window: hs.flow_window,
        srt_version: 0,
        srt_flags: 0,
        receiver_latency_ms: 0,
        sender_latency_ms: 0,
        stream_id: None,
        key_material: None,
        timestamp,
    };
    let mut saw_hsreq = false;
    for ext in Extensions::new(hs.extensions, HEADER_LEN + HANDSHAKE_CIF_LEN) {
        let ext = ext?;
        saw_hsreq |= apply_extension(&mut hello, ext.command, ext.contents)?;
    }
    if !saw_hsreq {
        return Err(refused(
            RejectReason::ROGUE,
            "conclusion without HSREQ block",
        ));
    }
    Ok(hello)
}

/// Applies one extension block; true for HSREQ.
fn apply_extension(
    hello: &mut CallerHello,
    command: u16,
    c: &[u8],
) -> Result<bool, HandshakeError> {
    match command {
        cmd::HSREQ => {
            let [v, f, l] = words::<3>(c).ok_or(refused(RejectReason::ROGUE, "short HSREQ"))?;
            hello.srt_version = v;
            hello.srt_flags = f;
            hello.receiver_latency_ms = (l >> 16) as u16;
            hello.sender_latency_ms = (l & 0xFFFF) as u16;
            return Ok(true);
        }
        cmd::SID => hello.stream_id = Some(decode_stream_id(c)),
        cmd::KMREQ => {
            let km =
                KeyMaterial::parse(c).map_err(|_| refused(RejectReason::BADSECRET, "KMREQ"))?;
            hello.key_material = Some(km);
        }
        cmd::CONGESTION if decode_stream_id(c) != "live" => {
            return Err(refused(
                RejectReason::CONGESTION,
                "congestion control other than live",
            ));
        }
        cmd::FILTER => return Err(refused(RejectReason::FILTER, "packet filter")),
        cmd::GROUP => return Err(refused(RejectReason::GROUP, "socket groups")),
        _ => {}
    }
    Ok(false)
}

pub(crate) fn words<const N: usize>(c: &[u8]) -> Option<[u32; N]> {
    let mut out = [0u32; N];
    for (i, w) in out.iter_mut().enumerate() {
        let b = c.get(i * 4..i * 4 + 4)?;
        *w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    Some(out)
}

/// libsrt sends strings (stream id, congestion name) as 32-bit words in host (little-endian)
/// order: each 4-byte group arrives reversed, padded with NULs.
pub fn decode_stream_id(contents: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(contents.len());
    for group in contents.chunks(4) {
        bytes.extend(group.iter().rev());
    }
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The inverse of [`decode_stream_id`], padded to whole words.
pub fn encode_stream_id(id: &str, out: &mut Vec<u8>) {
    for group in id.as_bytes().chunks(4) {
        let mut word = [0u8; 4];
        word[..group.len()].copy_from_slice(group);
        word.reverse();
        out.extend_from_slice(&word);
    }
}

/// The peer address field as libsrt writes it: each 32-bit word of the address in host
/// order (127.0.0.1 is `01 00 00 7f`).
pub fn peer_ip_field(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()),
    }
    for word in out.chunks_mut(4) {
        word.reverse();
    }
    out
}

/// Microseconds from `start` to `now` as a wrapping 32-bit header timestamp.
pub fn micros_since(start: Instant, now: Instant) -> u32 {
    now.saturating_duration_since(start).as_micros() as u32
}

/// What tessera answers to an accepted conclusion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptance {
    pub local_socket_id: u32,
    /// Latency applied to tessera's receiving (ms): max of ours and the caller's sender's.
    pub receiver_latency_ms: u16,
    /// Latency applied to what tessera sends (ms): max of ours and the caller's receiver's.
    pub sender_latency_ms: u16,
    /// The caller's key material, echoed as KMRSP when the connection is encrypted.
    pub key_material: Option<KeyMaterial>,
}

/// Negotiates the latencies: each direction uses the larger of both sides' values.
pub fn negotiate(hello: &CallerHello, ours_ms: u16) -> (u16, u16) {
    (
        ours_ms.max(hello.sender_latency_ms),
        ours_ms.max(hello.receiver_latency_ms),
    )
}

/// The conclusion response with HSRSP (and KMRSP).
pub fn conclusion_response(
    hello: &CallerHello,
    acc: &Acceptance,
    peer: IpAddr,
    ts: u32,
) -> Vec<u8> {
    let mut ext = Vec::with_capacity(64);
    let flags = srt_flag::TSBPD_SND
        | srt_flag::TSBPD_RCV
        | srt_flag::HAICRYPT
        | srt_flag::TLPKTDROP
        | srt_flag::NAKREPORT
        | (hello.srt_flags & srt_flag::REXMITFLG);
    let latency = u32::from(acc.receiver_latency_ms) << 16 | u32::from(acc.sender_latency_ms);
    push_ext_header(&mut ext, cmd::HSRSP, 3);
    for w in [SRT_VERSION, flags, latency] {
        ext.extend_from_slice(&w.to_be_bytes());
    }
    let mut ext_flags = ext_flag::HSREQ;
    let mut encryption = 0;
    if let Some(km) = &acc.key_material {
        let mut body = Vec::new();
        km.write(&mut body);
        push_ext_header(&mut ext, cmd::KMRSP, (body.len() / 4) as u16);
        ext.extend_from_slice(&body);
        ext_flags |= ext_flag::KMREQ;
        encryption = (km.key_len / 8) as u16;
    }
    let hs = response_cif(
        hello,
        acc.local_socket_id,
        peer,
        HandshakeType::Conclusion,
        &ext,
    );
    let hs = Handshake {
        encryption,
        extension: ext_flags,
        ..hs
    };
    write_handshake(hs, hello.socket_id, ts)
}

/// A conclusion response refusing the caller: handshake type 1000 + `reason`.
pub fn rejection(
    hello: &CallerHello,
    local_socket_id: u32,
    reason: RejectReason,
    peer: IpAddr,
    ts: u32,
) -> Vec<u8> {
    let kind = HandshakeType::Reject(reason.0);
    let hs = response_cif(hello, local_socket_id, peer, kind, &[]);
    write_handshake(hs, hello.socket_id, ts)
}

fn response_cif<'a>(
    hello: &CallerHello,
    local_socket_id: u32,
    peer: IpAddr,
    kind: HandshakeType,
    extensions: &'a [u8],
) -> Handshake<'a> {
    Handshake {
        version: VERSION_5,
        encryption: 0,
        extension: 0,
        isn: hello.isn,
        mtu: hello.mtu,
        flow_window: FLOW_WINDOW,
        kind,
        socket_id: local_socket_id,
        cookie: 0,
        peer_ip: peer_ip_field(peer),
        extensions,
    }
}

pub(crate) fn push_ext_header(out: &mut Vec<u8>, command: u16, words: u16) {
    out.extend_from_slice(&command.to_be_bytes());
    out.extend_from_slice(&words.to_be_bytes());
}

fn write_handshake(hs: Handshake<'_>, dest_socket: u32, timestamp: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + HANDSHAKE_CIF_LEN + hs.extensions.len());
    ControlPacket {
        timestamp,
        dest_socket,
        control: Control::Handshake(hs),
    }
    .write(&mut out);
    out
}

#[cfg(test)]
mod tests;
