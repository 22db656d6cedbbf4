//! One SRT peer's connection after its conclusion handshake (draft-sharabayko-srt §4), as a
//! sans-IO value: datagrams and time in ([`SrtConnection::handle_input`],
//! [`SrtConnection::handle_timeout`]), datagrams, timers and events out
//! ([`SrtConnection::poll_output`]), like `RtspConnection` and `RtmpConnection`.
//!
//! ```text
//!  new(hello) ─► Authorize { stream_id } ─► authorized(Accept | Reject(code))
//!                                             │            └─► rejection handshake, Closed
//!                                             └─► HSRSP (+KMRSP), Connected
//!  established: send(payload)  → data packets (encrypted when keyed), kept in the send buffer
//!               ACK            → buffer released, ACKACK back, RTT from the ACK
//!               NAK            → retransmission (R flag) from the buffer, DROPREQ for gone ones
//!               data (publish) → receive buffer; NAK gaps at once and periodically, ACK
//!                                every 10 ms, payloads out in order at their TSBPD time
//!               timers         → keepalive after 1 s of silence, too-late drop of packets
//!                                older than latency + margin (with DROPREQ), idle timeout 5 s
//!               shutdown       ← either side
//! ```
//!
//! A malformed or stray datagram is reported as an error and otherwise ignored: on UDP a
//! bad packet is not the peer closing. Owns one connection's protocol state; which socket,
//! which shard and who may watch are the runtime's.

mod receive_buffer;
mod rtt;
mod send_buffer;
mod tsbpd;

pub use receive_buffer::{Arrival, ReceiveBuffer};
pub use rtt::Rtt;
pub use send_buffer::{BufferFull, InFlight, SendBuffer, SendLimits};
pub use tsbpd::TsbpdClock;

use super::RejectReason;
use super::crypto::{CryptoError, Kek, StreamKeys};
use super::handshake::{self, Acceptance, CallerHello};
use super::packet::{
    self, Ack, Control, ControlPacket, DataHeader, KeyIndex, LossList, MSG_NO_MAX, Packet,
    PacketError, Position,
};
use super::seq::SeqNo;
use super::streamid::{self, Mode, StreamIdError, StreamRequest};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// libsrt's `SRT_TLPKTDROP_MINTHRESHOLD_MS`: the sender never drops younger packets.
const MIN_SEND_DROP: Duration = Duration::from_millis(1000);
/// Two ACK periods (libsrt's `2 * COMM_SYN_INTERVAL`) added to the sender's drop threshold.
const SEND_DROP_SLACK: Duration = Duration::from_millis(20);
/// Bytes of IP and UDP headers in an MTU.
const IP_UDP_OVERHEAD: usize = 28;
/// A key refresh with a salt other than the handshake's runs PBKDF2 (2048 rounds, ~1 ms)
/// at most this often; others are answered BADSECRET. libsrt keeps its salt for the
/// session, so only a hostile peer meets this.
const KEK_DERIVATION_GAP: Duration = Duration::from_secs(1);
/// ACKs remembered for their ACKACK (RTT samples).
const ACKS_REMEMBERED: usize = 16;

/// A connection's settings (named limits; the runtime fills them from the config).
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// This side's socket id (the peer addresses its packets to it).
    pub local_socket_id: u32,
    /// The token key of the stream id (`auth_token`, default `token`).
    pub token_key: String,
    pub send_limits: SendLimits,
    /// Receive buffer, in packets (publishers).
    pub receive_packets: usize,
    /// Send a keepalive after this long without sending anything.
    pub keepalive_interval: Duration,
    /// Close when nothing arrived for this long.
    pub peer_idle_timeout: Duration,
    /// Full ACK period when receiving.
    pub ack_interval: Duration,
    /// Added to the peer's latency before the sender drops a packet (`SRTO_SNDDROPDELAY`).
    pub send_drop_delay: Duration,
}

impl ConnectionConfig {
    pub fn new(local_socket_id: u32) -> ConnectionConfig {
        ConnectionConfig {
            local_socket_id,
            token_key: "token".to_owned(),
            send_limits: SendLimits::default(),
            receive_packets: 8192,
            keepalive_interval: Duration::from_secs(1),
            peer_idle_timeout: Duration::from_secs(5),
            ack_interval: Duration::from_millis(10),
            send_drop_delay: Duration::ZERO,
        }
    }
}

/// What [`SrtConnection::called`] needs of a completed caller handshake.
#[derive(Debug)]
pub struct Called {
    pub peer: SocketAddr,
    pub peer_hello: CallerHello,
    /// When the caller started: its header timestamps count from here.
    pub start: Instant,
    pub receive_latency: Duration,
    pub keys: Option<StreamKeys>,
    pub passphrase: Option<Vec<u8>>,
}

/// The runtime's answer to [`Output::Authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthAnswer {
    /// Serve it: `latency` is tessera's own (the larger of it and the caller's is used);
    /// `passphrase` when the stream is encrypted.
    Accept {
        latency: Duration,
        passphrase: Option<Vec<u8>>,
    },
    /// Refuse with this reason (1401, 1403, 1404, 1503, ...).
    Reject(RejectReason),
}

/// Why the connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The handshake was refused with this reason (sent to the caller).
    Rejected(RejectReason),
    /// The peer sent a shutdown.
    PeerShutdown,
    /// Nothing arrived for the idle timeout.
    PeerIdle,
    /// [`SrtConnection::close`] was called.
    Local,
}

/// What the connection asks of the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A datagram for the peer (a data packet shares its bytes with the send buffer).
    Transmit(Bytes),
    /// Decide on this stream id; answer with [`SrtConnection::authorized`].
    Authorize {
        stream_id: String,
        request: StreamRequest,
    },
    /// The handshake completed; media may flow.
    Connected {
        mode: Mode,
        /// The latency the peer applies to what tessera sends.
        send_latency: Duration,
        /// The latency tessera applies to what it receives.
        receive_latency: Duration,
        encrypted: bool,
    },
    /// A publisher's payload, in order, at its delivery time.
    Payload(Vec<u8>),
    /// The connection is over (its last datagrams are queued before this).
    Closed(CloseReason),
    /// Call [`SrtConnection::handle_timeout`] at this instant.
    Timeout(Instant),
}

/// A datagram the connection could not use; the connection goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionError {
    Packet(PacketError),
    Crypto(CryptoError),
    /// Addressed to another socket id.
    WrongSocket(u32),
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Packet(e) => e.fmt(f),
            ConnectionError::Crypto(e) => e.fmt(f),
            ConnectionError::WrongSocket(id) => write!(f, "srt: packet for socket {id:#x}"),
        }
    }
}

impl std::error::Error for ConnectionError {}

/// Why [`SrtConnection::send`] did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Not established (authorizing, or closed).
    NotConnected,
    /// The send buffer is at its bound: the peer is behind.
    BufferFull,
    /// The payload does not fit in one packet.
    TooLarge { len: usize, max: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Authorizing,
    Established,
    Closed,
}

/// Timers and counters of an established connection.
#[derive(Clone, Debug)]
struct Timers {
    last_sent: Instant,
    last_received: Instant,
    next_ack: Instant,
    next_nak: Instant,
}

/// One SRT connection, listener side. `Clone` copies the whole state (the fuzz target
/// starts every run from one accepted connection instead of deriving keys each time).
#[derive(Clone, Debug)]
pub struct SrtConnection {
    cfg: ConnectionConfig,
    peer: SocketAddr,
    hello: CallerHello,
    request: StreamRequest,
    state: State,
    /// Header timestamps count from here (the conclusion's arrival).
    start: Instant,
    /// The answer to the conclusion, re-sent when the caller repeats it.
    handshake_reply: Option<Vec<u8>>,
    keys: Option<StreamKeys>,
    /// Kept while encrypted, to unwrap the sender's refreshed keys.
    passphrase: Option<Vec<u8>>,
    /// The key-encrypting key of the handshake, reused for refreshes with the same salt.
    kek: Option<Kek>,
    /// When a refresh last ran PBKDF2 (at most one per `KEK_DERIVATION_GAP`).
    last_derivation: Option<Instant>,
    send_latency: Duration,
    next_seq: SeqNo,
    next_msg: u32,
    send_buf: SendBuffer,
    recv: Option<ReceiveBuffer>,
    rtt: Rtt,
    ack_no: u32,
    last_ack_point: Option<SeqNo>,
    acks_sent: VecDeque<(u32, Instant)>,
    rate: timers::RateMeter,
    timers: Timers,
    outputs: VecDeque<Output>,
    timeout_reported: bool,
    /// Packets (re)sent, retransmitted, dropped too late (sender).
    pub stats: Stats,
}

/// Counters for the sessions API and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: u64,
    pub retransmitted: u64,
    pub send_dropped: u64,
    pub received: u64,
    pub receive_skipped: u64,
}

impl SrtConnection {
    /// A connection for a caller whose conclusion the listener accepted. Its first output is
    /// [`Output::Authorize`] (or, for a stream id tessera cannot serve, a rejection).
    pub fn new(hello: CallerHello, peer: SocketAddr, cfg: ConnectionConfig, now: Instant) -> Self {
        let mut conn = Self::fresh(hello, peer, cfg, now);
        conn.ask_authorization();
        conn
    }

    /// A connection this side called (the edge's `srt://` pull, `super::caller`), which the
    /// listener accepted: `peer` describes the listener as a `CallerHello` would (its socket
    /// id, the ISN both directions share, its HSRSP flags and latencies). Established at
    /// once; it receives what the listener sends, delivered at `receive_latency`.
    pub fn called(called: Called, cfg: ConnectionConfig, now: Instant) -> Self {
        let receive_packets = cfg.receive_packets;
        let mut conn = Self::fresh(called.peer_hello, called.peer, cfg, now);
        conn.start = called.start;
        conn.state = State::Established;
        conn.timers.next_ack = now + conn.cfg.ack_interval;
        conn.recv = Some(ReceiveBuffer::new(
            conn.hello.isn,
            receive_packets,
            TsbpdClock::new(called.receive_latency),
        ));
        conn.keys = called.keys;
        conn.passphrase = called.passphrase;
        conn
    }

    fn fresh(hello: CallerHello, peer: SocketAddr, cfg: ConnectionConfig, now: Instant) -> Self {
        let isn = hello.isn;
        SrtConnection {
            send_buf: SendBuffer::new(cfg.send_limits),
            cfg,
            peer,
            request: StreamRequest::default(),
            state: State::Authorizing,
            start: now,
            handshake_reply: None,
            keys: None,
            passphrase: None,
            kek: None,
            last_derivation: None,
            send_latency: Duration::ZERO,
            next_seq: isn,
            next_msg: 1,
            recv: None,
            rtt: Rtt::default(),
            ack_no: 0,
            last_ack_point: None,
            acks_sent: VecDeque::new(),
            rate: timers::RateMeter::new(now),
            timers: Timers {
                last_sent: now,
                last_received: now,
                next_ack: now,
                next_nak: now,
            },
            outputs: VecDeque::new(),
            timeout_reported: false,
            stats: Stats::default(),
            hello,
        }
    }

    fn ask_authorization(&mut self) {
        let stream_id = self.hello.stream_id.clone().unwrap_or_default();
        match streamid::parse(&stream_id, &self.cfg.token_key) {
            Ok(request) => {
                self.request = request.clone();
                self.outputs
                    .push_back(Output::Authorize { stream_id, request });
            }
            Err(StreamIdError::UnsupportedMode(_)) => self.reject(RejectReason::BAD_MODE),
            Err(StreamIdError::NotUtf8) => self.reject(RejectReason::BAD_REQUEST),
        }
    }

    /// The caller's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The caller's socket id.
    pub fn peer_socket_id(&self) -> u32 {
        self.hello.socket_id
    }

    /// What the stream id asked for.
    pub fn request(&self) -> &StreamRequest {
        &self.request
    }

    pub fn awaiting_authorization(&self) -> bool {
        self.state == State::Authorizing
    }

    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Packets waiting for the peer's ACK.
    pub fn send_buffer_len(&self) -> usize {
        self.send_buf.len()
    }

    pub fn rtt(&self) -> Rtt {
        self.rtt
    }

    fn timestamp(&self, now: Instant) -> u32 {
        handshake::micros_since(self.start, now)
    }

    /// The runtime's decision. Ignored unless one is pending.
    pub fn authorized(&mut self, answer: AuthAnswer, now: Instant) {
        self.timeout_reported = false;
        if self.state != State::Authorizing {
            return;
        }
        match answer {
            AuthAnswer::Reject(reason) => self.reject(reason),
            AuthAnswer::Accept {
                latency,
                passphrase,
            } => match self.unlock(passphrase.as_deref()) {
                Ok(keys) => {
                    self.passphrase = passphrase.filter(|_| keys.is_some());
                    self.accept(latency, keys, now);
                }
                Err(reason) => self.reject(reason),
            },
        }
    }

    /// The stream keys, when both sides agree on encryption (libsrt's enforced encryption:
    /// one side without a passphrase is `SRT_REJ_UNSECURE`).
    fn unlock(&mut self, passphrase: Option<&[u8]>) -> Result<Option<StreamKeys>, RejectReason> {
        let refused = |e| match e {
            CryptoError::BadSecret => RejectReason::BADSECRET,
            _ => RejectReason::UNSECURE,
        };
        match (&self.hello.key_material, passphrase) {
            (None, None) => Ok(None),
            (Some(km), Some(pass)) => {
                let kek = km.kek(pass, None).map_err(refused)?;
                let keys = km.unwrap_with(&kek).map_err(refused)?;
                self.kek = Some(kek);
                Ok(Some(keys))
            }
            _ => Err(RejectReason::UNSECURE),
        }
    }

    fn accept(&mut self, latency: Duration, keys: Option<StreamKeys>, now: Instant) {
        let ours = u16::try_from(latency.as_millis()).unwrap_or(u16::MAX);
        let (rcv, snd) = handshake::negotiate(&self.hello, ours);
        let acceptance = Acceptance {
            local_socket_id: self.cfg.local_socket_id,
            receiver_latency_ms: rcv,
            sender_latency_ms: snd,
            key_material: keys.as_ref().and(self.hello.key_material.clone()),
        };
        let ts = self.timestamp(now);
        let reply = handshake::conclusion_response(&self.hello, &acceptance, self.peer.ip(), ts);
        self.send_latency = Duration::from_millis(u64::from(snd));
        let receive_latency = Duration::from_millis(u64::from(rcv));
        let mode = self.request.mode();
        if mode == Mode::Publish {
            let clock = TsbpdClock::new(receive_latency);
            self.recv = Some(ReceiveBuffer::new(
                self.hello.isn,
                self.cfg.receive_packets,
                clock,
            ));
        }
        self.outputs.push_back(Output::Connected {
            mode,
            send_latency: self.send_latency,
            receive_latency,
            encrypted: keys.is_some(),
        });
        self.keys = keys;
        self.state = State::Established;
        self.timers.next_ack = now + self.cfg.ack_interval;
        self.transmit_handshake(reply, now);
    }

    fn reject(&mut self, reason: RejectReason) {
        let ts = self.timestamp(self.start);
        let local = self.cfg.local_socket_id;
        let reply = handshake::rejection(&self.hello, local, reason, self.peer.ip(), ts);
        self.outputs
            .push_back(Output::Transmit(reply.clone().into()));
        self.handshake_reply = Some(reply);
        self.finish(CloseReason::Rejected(reason));
    }

    fn transmit_handshake(&mut self, reply: Vec<u8>, now: Instant) {
        self.handshake_reply = Some(reply.clone());
        self.transmit(reply, now);
    }

    fn transmit(&mut self, datagram: impl Into<Bytes>, now: Instant) {
        self.timers.last_sent = now;
        self.outputs.push_back(Output::Transmit(datagram.into()));
    }

    fn control(&mut self, control: Control<'_>, now: Instant) {
        let mut out = Vec::with_capacity(packet::HEADER_LEN + 28);
        ControlPacket {
            timestamp: self.timestamp(now),
            dest_socket: self.hello.socket_id,
            control,
        }
        .write(&mut out);
        self.transmit(out, now);
    }

    fn finish(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.outputs.push_back(Output::Closed(reason));
        }
    }

    /// Ends the connection from this side: a shutdown to the peer, then `Closed(Local)`.
    pub fn close(&mut self, now: Instant) {
        self.timeout_reported = false;
        if self.state == State::Established {
            self.control(Control::Shutdown, now);
        }
        self.finish(CloseReason::Local);
    }

    /// The next output; `None` when there is nothing to do until the next input or timer.
    /// The last output of each round is `Timeout` (none once closed).
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        if self.state == State::Closed || self.timeout_reported {
            return None;
        }
        self.timeout_reported = true;
        Some(Output::Timeout(self.next_timeout()))
    }
}

mod input;
mod sending;
mod timers;

pub use sending::MAX_PAYLOAD;

#[cfg(test)]
mod tests;
