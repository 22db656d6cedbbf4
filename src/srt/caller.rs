//! The HSv5 handshake, caller side (draft-sharabayko-srt §4.3.1), for the edge's `srt://`
//! pull:
//!
//! ```text
//!   tessera (caller)                                  listener
//!   INDUCTION v4, type 2 (DGRAM), cookie 0   ──►
//!                                            ◄──      INDUCTION v5, 0x4A17, cookie
//!   CONCLUSION v5 + HSREQ, SID (+ KMREQ)     ──►
//!                                            ◄──      CONCLUSION + HSRSP (+ KMRSP) → SrtConnection
//!                                                     or 1000 + reason → Rejected
//! ```
//!
//! The current handshake is sent again every `RESEND_EVERY` until answered (UDP loses
//! packets). With a passphrase, tessera makes the stream key (random, AES-128) and sends it
//! wrapped in KMREQ; the listener must answer the same material. Sans-IO: datagrams and
//! time in, datagrams out; the established connection is `connection`'s.

use super::RejectReason;
use super::connection::{Called, ConnectionConfig, SrtConnection};
use super::crypto::{self, KeyMaterial, SALT_LEN, StreamKeys};
use super::handshake::{
    self, CallerHello, FLOW_WINDOW, HandshakeError, MAX_MTU, SRT_MAGIC, SRT_VERSION, VERSION_5,
    cmd, ext_flag, srt_flag,
};
use super::packet::{
    Control, ControlPacket, Extensions, HANDSHAKE_CIF_LEN, HEADER_LEN, Handshake, HandshakeType,
};
use super::seq::SeqNo;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often an unanswered handshake is sent again (libsrt: 250 ms).
pub const RESEND_EVERY: Duration = Duration::from_millis(250);
/// The UDT socket type of an induction request (`UDT_DGRAM`).
const UDT_DGRAM: u16 = 2;
/// The stream key tessera makes for an encrypted pull (AES-128, libsrt's default).
const KEY_LEN: usize = 16;

/// What the caller asks for.
#[derive(Clone)]
pub struct CallerConfig {
    pub local_socket_id: u32,
    pub isn: SeqNo,
    pub stream_id: String,
    pub passphrase: Option<Vec<u8>>,
    /// tessera's receive latency; the larger of it and the listener's is used.
    pub latency: Duration,
    /// Random bytes for the salt and the stream key (used only with a passphrase).
    pub key_seed: [u8; SALT_LEN + KEY_LEN],
}

impl fmt::Debug for CallerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerConfig")
            .field("stream_id", &self.stream_id)
            .field("encrypted", &self.passphrase.is_some())
            .finish_non_exhaustive()
    }
}

/// Why the handshake did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerError {
    /// The listener refused, with libsrt's reason (1403 forbidden, 1404 not found, ...).
    Rejected(RejectReason),
    /// The listener's answer cannot be used (it is not an HSv5 listener, or it answered
    /// without HSRSP, or with other key material).
    Refused(&'static str),
    /// A datagram that is not a handshake answer; ignored.
    Stray(HandshakeError),
}

impl fmt::Display for CallerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerError::Rejected(reason) => write!(f, "the listener refused ({})", reason.0),
            CallerError::Refused(why) => write!(f, "srt handshake: {why}"),
            CallerError::Stray(e) => e.fmt(f),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Induction,
    Conclusion,
}

/// One call, from the first induction to the established connection.
pub struct SrtCaller {
    cfg: CallerConfig,
    peer: SocketAddr,
    start: Instant,
    phase: Phase,
    /// The handshake to (re)send.
    datagram: Vec<u8>,
    next_send: Instant,
    key_material: Option<KeyMaterial>,
    keys: Option<StreamKeys>,
}

impl SrtCaller {
    /// A call to `peer`; the induction goes out with the first [`SrtCaller::poll_transmit`].
    pub fn new(cfg: CallerConfig, peer: SocketAddr, now: Instant) -> Result<Self, CallerError> {
        let (key_material, keys) = match &cfg.passphrase {
            None => (None, None),
            Some(pass) => {
                let (salt, key) = cfg.key_seed.split_at(SALT_LEN);
                let salt: [u8; SALT_LEN] = salt.try_into().unwrap_or_default();
                let km = crypto::wrap_keys(pass, salt, key, None)
                    .ok_or(CallerError::Refused("cannot wrap the stream key"))?;
                let keys = km
                    .unwrap_keys(pass)
                    .map_err(|_| CallerError::Refused("cannot unwrap our own stream key"))?;
                (Some(km), Some(keys))
            }
        };
        let mut caller = SrtCaller {
            cfg,
            peer,
            start: now,
            phase: Phase::Induction,
            datagram: Vec::new(),
            next_send: now,
            key_material,
            keys,
        };
        caller.datagram = caller.induction(now);
        Ok(caller)
    }

    /// The handshake datagram when one is due (at once, then every `RESEND_EVERY`).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.next_send {
            return None;
        }
        self.next_send = now + RESEND_EVERY;
        Some(self.datagram.clone())
    }

    /// When [`SrtCaller::poll_transmit`] has something next.
    pub fn next_timeout(&self) -> Instant {
        self.next_send
    }

    /// A datagram from the listener: `Some(connection)` once accepted.
    pub fn handle_input(
        &mut self,
        datagram: &[u8],
        now: Instant,
    ) -> Result<Option<SrtConnection>, CallerError> {
        let (header, hs) = handshake::handshake_of(datagram).map_err(CallerError::Stray)?;
        if let HandshakeType::Reject(code) = hs.kind {
            return Err(CallerError::Rejected(RejectReason(code)));
        }
        match (self.phase, hs.kind) {
            (Phase::Induction, HandshakeType::Induction) => {
                if hs.version != VERSION_5 || hs.extension != SRT_MAGIC {
                    return Err(CallerError::Refused("the listener does not speak HSv5"));
                }
                self.phase = Phase::Conclusion;
                self.datagram = self.conclusion(hs.cookie, now);
                self.next_send = now;
                Ok(None)
            }
            (Phase::Conclusion, HandshakeType::Conclusion) => {
                self.accepted(&hs, header.timestamp, now).map(Some)
            }
            _ => Err(CallerError::Stray(HandshakeError::Unexpected(
                "handshake answer out of order",
            ))),
        }
    }

    fn induction(&self, now: Instant) -> Vec<u8> {
        let hs = Handshake {
            version: 4,
            encryption: 0,
            extension: UDT_DGRAM,
            cookie: 0,
            kind: HandshakeType::Induction,
            ..self.request_cif(&[])
        };
        self.write(hs, now)
    }

    fn conclusion(&self, cookie: u32, now: Instant) -> Vec<u8> {
        let mut ext = Vec::with_capacity(128);
        let flags = srt_flag::TSBPD_SND
            | srt_flag::TSBPD_RCV
            | srt_flag::HAICRYPT
            | srt_flag::TLPKTDROP
            | srt_flag::NAKREPORT
            | srt_flag::REXMITFLG;
        let latency = u16::try_from(self.cfg.latency.as_millis()).unwrap_or(u16::MAX);
        let latencies = u32::from(latency) << 16 | u32::from(latency);
        push_block(
            &mut ext,
            cmd::HSREQ,
            &words(&[SRT_VERSION, flags, latencies]),
        );
        let mut ext_flags = ext_flag::HSREQ;
        if !self.cfg.stream_id.is_empty() {
            let mut sid = Vec::new();
            handshake::encode_stream_id(&self.cfg.stream_id, &mut sid);
            push_block(&mut ext, cmd::SID, &sid);
            ext_flags |= ext_flag::CONFIG;
        }
        let mut encryption = 0;
        if let Some(km) = &self.key_material {
            let mut body = Vec::new();
            km.write(&mut body);
            push_block(&mut ext, cmd::KMREQ, &body);
            ext_flags |= ext_flag::KMREQ;
            encryption = (km.key_len / 8) as u16;
        }
        let hs = Handshake {
            version: VERSION_5,
            encryption,
            extension: ext_flags,
            cookie,
            kind: HandshakeType::Conclusion,
            ..self.request_cif(&ext)
        };
        self.write(hs, now)
    }

    fn request_cif<'a>(&self, extensions: &'a [u8]) -> Handshake<'a> {
        Handshake {
            version: VERSION_5,
            encryption: 0,
            extension: 0,
            isn: self.cfg.isn,
            mtu: MAX_MTU,
            flow_window: FLOW_WINDOW,
            kind: HandshakeType::Induction,
            socket_id: self.cfg.local_socket_id,
            cookie: 0,
            peer_ip: handshake::peer_ip_field(self.peer.ip()),
            extensions,
        }
    }

    fn write(&self, hs: Handshake<'_>, now: Instant) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + HANDSHAKE_CIF_LEN + hs.extensions.len());
        ControlPacket {
            timestamp: handshake::micros_since(self.start, now),
            dest_socket: 0,
            control: Control::Handshake(hs),
        }
        .write(&mut out);
        out
    }

    /// The conclusion answer: HSRSP's latency, KMRSP's agreement, then the connection.
    fn accepted(
        &mut self,
        hs: &Handshake<'_>,
        timestamp: u32,
        now: Instant,
    ) -> Result<SrtConnection, CallerError> {
        let mut hsrsp = None;
        let mut kmrsp_matches = false;
        for ext in Extensions::new(hs.extensions, HEADER_LEN + HANDSHAKE_CIF_LEN) {
            let ext = ext.map_err(|e| CallerError::Stray(HandshakeError::Packet(e)))?;
            match ext.command {
                cmd::HSRSP => hsrsp = handshake::words::<3>(ext.contents),
                cmd::KMRSP => {
                    kmrsp_matches = KeyMaterial::parse(ext.contents).ok() == self.key_material;
                }
                _ => {}
            }
        }
        let [version, flags, latencies] =
            hsrsp.ok_or(CallerError::Refused("answer without HSRSP"))?;
        if self.key_material.is_some() && !kmrsp_matches {
            return Err(CallerError::Rejected(RejectReason::BADSECRET));
        }
        let ours = u16::try_from(self.cfg.latency.as_millis()).unwrap_or(u16::MAX);
        let peer_send_ms = (latencies & 0xFFFF) as u16;
        let peer_hello = CallerHello {
            socket_id: hs.socket_id,
            isn: self.cfg.isn,
            mtu: hs.mtu.min(MAX_MTU),
            flow_window: hs.flow_window,
            srt_version: version,
            srt_flags: flags,
            receiver_latency_ms: (latencies >> 16) as u16,
            sender_latency_ms: peer_send_ms,
            stream_id: Some(self.cfg.stream_id.clone()),
            key_material: self.key_material.clone(),
            timestamp,
        };
        let called = Called {
            peer: self.peer,
            peer_hello,
            start: self.start,
            receive_latency: Duration::from_millis(u64::from(ours.max(peer_send_ms))),
            keys: self.keys.take(),
            passphrase: self.cfg.passphrase.clone(),
        };
        let cfg = ConnectionConfig::new(self.cfg.local_socket_id);
        Ok(SrtConnection::called(called, cfg, now))
    }
}

fn words(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// An extension block: command, length in words, contents (a multiple of 4 bytes).
fn push_block(out: &mut Vec<u8>, command: u16, contents: &[u8]) {
    handshake::push_ext_header(out, command, (contents.len() / 4) as u16);
    out.extend_from_slice(contents);
}

#[cfg(test)]
mod tests;
