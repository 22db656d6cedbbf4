//! rtmp-load: N concurrent RTMP players of one live stream, for load tests of tessera or of
//! any RTMP server (nginx-rtmp is the peer in `tools/compare.sh`).
//!
//!   rtmp-load rtmp://HOST[:PORT]/APP/NAME[?QUERY] --players N --seconds S [--ramp-ms M]
//!             [--threads T] [--connectors C] [--verbose]
//!
//! Each player connects over TCP, does the simple handshake (Adobe RTMP spec 1.0 §5.2.3),
//! sends `connect` (the URL's application), `createStream` and `play` (the rest of the path
//! with its query: the token rides there), then reads every message until the run ends. It
//! records the bytes received, the media messages, the largest wall-clock gap between two
//! consecutive media messages (the time from the last one to the end of the run counts too),
//! and the span of the media timestamps. A player *kept up* when it connected, got media
//! within [`FIRST_MEDIA_WITHIN`], never waited more than [`MAX_GAP`] for the next media
//! message, and its media timestamps span at least its time on the air minus
//! [`SPAN_SLACK`]. Players start [`--ramp-ms`] apart; all stop together `S` seconds after the
//! last one started, so every player is on the air at the same time for at least `S` seconds.
//!
//! Shape: the player protocol is a sans-IO value ([`Player`]: bytes in, bytes out, the time
//! passed in) on tessera's own chunk codec and AMF0 (`tessera::rtmp`), unit-tested against
//! tessera's server state machine. Connector threads make the blocking TCP connects at the
//! ramp's pace and hand each socket to one of a few reader threads, which sweep their
//! nonblocking sockets every few milliseconds (std has no poll; a sweep costs one read per
//! socket) and feed the players.
//!
//! Output: one line per run on stdout, `key=value` pairs separated by spaces (see
//! [`Summary`]); with `--verbose`, one line per player that did not keep up on stderr. The
//! exit status is 0 whenever the run completed, 2 on a usage error.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use tessera::rtmp::amf0::{self, Amf0Value};
use tessera::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, Message, MessageHeader};
use tessera::rtmp::flv::{TYPE_AUDIO, TYPE_VIDEO};
use tessera::rtmp::handshake::{HANDSHAKE_SIZE, RTMP_VERSION};

/// A media message later than this after the previous one is a stall.
const MAX_GAP: Duration = Duration::from_secs(1);
/// The first media message must arrive this soon after the TCP connect started.
const FIRST_MEDIA_WITHIN: Duration = Duration::from_secs(5);
/// Media timestamps may span this much less than the player's time on the air (start-up,
/// and a server that starts at the next keyframe rather than the last one).
const SPAN_SLACK: Duration = Duration::from_secs(2);
/// A TCP connect gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader threads pause this long between sweeps over their sockets.
const SWEEP_PAUSE: Duration = Duration::from_millis(5);
/// Reads per socket per sweep, so that one busy socket cannot starve the others.
const READS_PER_SWEEP: usize = 4;
/// One read takes at most this much.
const READ_BUFFER: usize = 64 * 1024;
/// Unparsed input a player may hold: a whole chunk of the largest message the decoder takes.
const MAX_PENDING_INPUT: usize = 9 << 20;
/// Largest `--players` (each is a socket and a few kilobytes).
const MAX_PLAYERS: usize = 20_000;
/// Buffer length announced after `play` (user control Set Buffer Length, as ffmpeg does).
const BUFFER_LENGTH_MS: u32 = 3000;

// Message types (§5.4, §6.2, §7.1).
const SET_CHUNK_SIZE: u8 = 1;
const ABORT: u8 = 2;
const ACKNOWLEDGEMENT: u8 = 3;
const USER_CONTROL: u8 = 4;
const WINDOW_ACK_SIZE: u8 = 5;
const COMMAND_AMF3: u8 = 17;
const COMMAND_AMF0: u8 = 20;
const AGGREGATE: u8 = 22;
// User control events (§7.1.7).
const SET_BUFFER_LENGTH: u16 = 3;
const PING_REQUEST: u16 = 6;
const PING_RESPONSE: u16 = 7;
// Chunk streams we send on (ffmpeg's choice: 2 control, 3 commands, 8 play).
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_PLAY: u32 = 8;
// Transaction ids of our two calls.
const TXN_CONNECT: f64 = 1.0;
const TXN_CREATE_STREAM: f64 = 2.0;

/// What a player asks for: where, which application, which stream.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PlayTarget {
    /// `host:port`.
    addr: String,
    /// First path segment of the URL.
    app: String,
    /// `rtmp://host:port/app`, sent as `tcUrl`.
    tc_url: String,
    /// The rest of the path, with the query (the token).
    name: String,
}

impl PlayTarget {
    fn parse(url: &str) -> Result<PlayTarget, String> {
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| format!("{url}: not an rtmp:// URL"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url}: no application and stream name"))?;
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let addr = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:1935")
        };
        let (app, name) = path
            .split_once('/')
            .filter(|(app, name)| !app.is_empty() && !name.is_empty())
            .ok_or_else(|| format!("{url}: want rtmp://host[:port]/APP/NAME"))?;
        Ok(PlayTarget {
            tc_url: format!("rtmp://{addr}/{app}"),
            addr,
            app: app.to_string(),
            name: name.to_string(),
        })
    }
}

/// How a player's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    KeptUp,
    /// TCP connect, handshake or the commands before `play` failed.
    ConnectFailed,
    /// The server answered `play` (or a call) with an error status.
    Refused,
    /// No media message within [`FIRST_MEDIA_WITHIN`].
    NoMedia,
    /// A gap longer than [`MAX_GAP`] between media messages.
    Stalled,
    /// Media timestamps fell behind wall time by more than [`SPAN_SLACK`].
    Short,
    /// The server closed the connection (or broke the protocol) while playing.
    Dropped,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::KeptUp,
        Outcome::ConnectFailed,
        Outcome::Refused,
        Outcome::NoMedia,
        Outcome::Stalled,
        Outcome::Short,
        Outcome::Dropped,
    ];

    fn key(self) -> &'static str {
        match self {
            Outcome::KeptUp => "kept_up",
            Outcome::ConnectFailed => "connect_failures",
            Outcome::Refused => "refused",
            Outcome::NoMedia => "no_media",
            Outcome::Stalled => "stalled",
            Outcome::Short => "short",
            Outcome::Dropped => "dropped",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// C0+C1 sent, waiting for S0+S1+S2.
    Handshake,
    /// `connect` sent.
    Connecting,
    /// `createStream` sent.
    CreatingStream,
    /// `play` sent: reading media.
    Playing,
    /// Failed or closed: nothing more is consumed.
    Done,
}

/// What one player saw.
#[derive(Clone, Debug)]
struct PlayerStats {
    /// When the TCP connect started.
    started: Instant,
    bytes: u64,
    media_messages: u64,
    first_media: Option<Instant>,
    last_media: Option<Instant>,
    worst_gap: Duration,
    /// Timestamp of the first media message; the span is measured from it, wrap-aware.
    first_ts: Option<u32>,
    ts_min: i64,
    ts_max: i64,
}

/// One player's verdict at the end of the run.
#[derive(Clone, Debug)]
struct Report {
    outcome: Outcome,
    /// Why, for `--verbose`.
    detail: String,
    bytes: u64,
    media_messages: u64,
    /// Largest gap including the one from the last media message to the end (when media came).
    worst_gap: Option<Duration>,
    first_media_after: Option<Duration>,
    span_ms: i64,
}

impl Report {
    fn failed(outcome: Outcome, detail: String) -> Report {
        Report {
            outcome,
            detail,
            bytes: 0,
            media_messages: 0,
            worst_gap: None,
            first_media_after: None,
            span_ms: 0,
        }
    }
}

/// The client side of one RTMP play, sans-IO: [`Player::handle_input`] takes received
/// bytes and returns how many it consumed (only whole packets and chunks); what it wants
/// sent accumulates in [`Player::out`].
struct Player {
    target: PlayTarget,
    phase: Phase,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    /// Bytes to send, in order.
    out: Vec<u8>,
    /// Bytes consumed after the handshake (acknowledgement sequence numbers).
    received: u64,
    last_ack: u64,
    /// The server's Window Acknowledgement Size (§5.4.4).
    ack_window: Option<u32>,
    stats: PlayerStats,
    /// Set when the play failed or the connection closed, with the reason.
    failure: Option<(Outcome, String)>,
}

impl Player {
    /// A player whose TCP connect started at `started`; C0+C1 are queued in `out`.
    fn new(target: PlayTarget, started: Instant, seed: u64) -> Player {
        let mut out = Vec::with_capacity(1 + HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        // C1 (§5.2.3): time 0, zero (the simple scheme), random bytes.
        out.extend_from_slice(&[0; 8]);
        let mut rng = seed | 1;
        while out.len() < 1 + HANDSHAKE_SIZE {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            let v = rng.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            let room = 1 + HANDSHAKE_SIZE - out.len();
            out.extend_from_slice(&v[..room.min(8)]);
        }
        Player {
            target,
            phase: Phase::Handshake,
            decoder: ChunkDecoder::new(ChunkLimits::default()),
            encoder: ChunkEncoder::new(),
            out,
            received: 0,
            last_ack: 0,
            ack_window: None,
            stats: PlayerStats {
                started,
                bytes: 0,
                media_messages: 0,
                first_media: None,
                last_media: None,
                worst_gap: Duration::ZERO,
                first_ts: None,
                ts_min: 0,
                ts_max: 0,
            },
            failure: None,
        }
    }

    fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Consumes what it can of `buf` (received at `now`); returns the bytes consumed.
    fn handle_input(&mut self, buf: &[u8], now: Instant) -> usize {
        let mut used = 0;
        while self.phase != Phase::Done && used < buf.len() {
            if self.phase == Phase::Handshake {
                // S0+S1+S2 (§5.2.2-§5.2.4); C2 echoes S1. S2 is not checked.
                let Some(s) = buf.get(used..used + 1 + 2 * HANDSHAKE_SIZE) else {
                    break;
                };
                if s[0] != RTMP_VERSION {
                    self.fail(Outcome::ConnectFailed, format!("S0 version {}", s[0]));
                    break;
                }
                used += s.len();
                self.out.extend_from_slice(&s[1..1 + HANDSHAKE_SIZE]);
                self.send_connect();
                self.phase = Phase::Connecting;
                continue;
            }
            match self.decoder.decode(&buf[used..]) {
                Ok((0, _)) => break,
                Ok((n, message)) => {
                    used += n;
                    self.received += n as u64;
                    self.maybe_acknowledge();
                    if let Some(m) = message {
                        self.on_message(m, now);
                    }
                }
                Err(e) => {
                    let outcome = self.failure_outcome();
                    self.fail(outcome, e.to_string());
                }
            }
        }
        used
    }

    /// The socket reached EOF or failed.
    fn closed(&mut self, why: &str) {
        if self.phase != Phase::Done {
            let outcome = self.failure_outcome();
            self.fail(outcome, why.to_string());
        }
    }

    /// A failure before `play` is a failed connect; after it, a dropped player.
    fn failure_outcome(&self) -> Outcome {
        if self.phase == Phase::Playing {
            Outcome::Dropped
        } else {
            Outcome::ConnectFailed
        }
    }

    fn fail(&mut self, outcome: Outcome, detail: String) {
        self.failure.get_or_insert((outcome, detail));
        self.phase = Phase::Done;
    }

    fn on_message(&mut self, m: Message, now: Instant) {
        let p = &m.payload[..];
        let be32 = |p: &[u8]| {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match m.type_id {
            SET_CHUNK_SIZE => {
                let size = be32(p).unwrap_or(0) & 0x7FFF_FFFF;
                if let Err(e) = self.decoder.set_chunk_size(size) {
                    let outcome = self.failure_outcome();
                    self.fail(outcome, e.to_string());
                }
            }
            ABORT => {
                if let Some(csid) = be32(p) {
                    self.decoder.abort(csid);
                }
            }
            WINDOW_ACK_SIZE => self.ack_window = be32(p).filter(|&w| w > 0),
            USER_CONTROL if p.len() >= 6 && u16::from_be_bytes([p[0], p[1]]) == PING_REQUEST => {
                let mut r = [0u8; 6];
                r[..2].copy_from_slice(&PING_RESPONSE.to_be_bytes());
                r[2..].copy_from_slice(&p[2..6]);
                self.send(CSID_CONTROL, USER_CONTROL, 0, &r);
            }
            TYPE_AUDIO | TYPE_VIDEO | AGGREGATE if self.phase == Phase::Playing => {
                let config = is_sequence_header(m.type_id, p);
                self.on_media(m.timestamp, config, now)
            }
            COMMAND_AMF0 => self.on_command(p),
            // An AMF3 command is a format byte (0), then AMF0 values.
            COMMAND_AMF3 if !p.is_empty() => self.on_command(&p[1..]),
            _ => {}
        }
    }

    /// A media message arrived at `now`; `config` when it is a sequence header, whose
    /// timestamp says nothing about media time (tessera sends them at 0, then frames at the
    /// source's clock) and is left out of the span.
    fn on_media(&mut self, timestamp: u32, config: bool, now: Instant) {
        let s = &mut self.stats;
        s.media_messages += 1;
        match s.last_media {
            Some(last) => s.worst_gap = s.worst_gap.max(now.saturating_duration_since(last)),
            None => s.first_media = Some(now),
        }
        s.last_media = Some(now);
        if config {
            return;
        }
        let first = *s.first_ts.get_or_insert(timestamp);
        // RTMP timestamps wrap at 2^32 ms: measure from the first one, signed.
        let rel = i64::from(timestamp.wrapping_sub(first) as i32);
        s.ts_min = s.ts_min.min(rel);
        s.ts_max = s.ts_max.max(rel);
    }

    fn on_command(&mut self, body: &[u8]) {
        // Lenient, like the server: what decodes before an error is the command.
        let mut values = Vec::new();
        let mut rest = body;
        while let Ok((v, n)) = amf0::decode(rest) {
            values.push(v);
            rest = &rest[n..];
            if rest.is_empty() {
                break;
            }
        }
        let name = values.first().and_then(Amf0Value::as_str).unwrap_or("");
        let txn = values.get(1).and_then(Amf0Value::as_number).unwrap_or(0.0);
        let info = |k: &str| {
            values
                .get(3)
                .and_then(|o| o.get(k))
                .and_then(Amf0Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match name {
            "_result" if self.phase == Phase::Connecting && txn == TXN_CONNECT => {
                self.command(
                    CSID_COMMAND,
                    0,
                    &[
                        "createStream".into(),
                        TXN_CREATE_STREAM.into(),
                        Amf0Value::Null,
                    ],
                );
                self.phase = Phase::CreatingStream;
            }
            "_result" if self.phase == Phase::CreatingStream && txn == TXN_CREATE_STREAM => {
                let Some(id) = values.get(3).and_then(Amf0Value::as_number) else {
                    self.fail(Outcome::ConnectFailed, "createStream without an id".into());
                    return;
                };
                let stream_id = id as u32;
                let name = self.target.name.clone();
                self.command(
                    CSID_PLAY,
                    stream_id,
                    &[
                        "play".into(),
                        0.0.into(),
                        Amf0Value::Null,
                        name.into(),
                        (-2000.0).into(),
                    ],
                );
                let mut b = [0u8; 10];
                b[..2].copy_from_slice(&SET_BUFFER_LENGTH.to_be_bytes());
                b[2..6].copy_from_slice(&stream_id.to_be_bytes());
                b[6..].copy_from_slice(&BUFFER_LENGTH_MS.to_be_bytes());
                self.send(CSID_CONTROL, USER_CONTROL, 0, &b);
                self.phase = Phase::Playing;
            }
            "_error" => {
                self.fail(
                    Outcome::Refused,
                    format!("_error {}: {}", info("code"), info("description")),
                );
            }
            "onStatus" => {
                let code = info("code");
                // tessera refuses with level `warning` (ffmpeg's wording), others with `error`.
                if info("level") == "error"
                    || matches!(
                        code.as_str(),
                        "NetStream.Play.Failed" | "NetStream.Play.StreamNotFound"
                    )
                {
                    self.fail(Outcome::Refused, format!("{code}: {}", info("description")));
                }
            }
            "close" => {
                let outcome = self.failure_outcome();
                self.fail(outcome, "the server sent close".into());
            }
            _ => {}
        }
    }

    fn send_connect(&mut self) {
        let app = self.target.app.as_str();
        let tc_url = self.target.tc_url.as_str();
        let object = Amf0Value::object([
            ("app", app.into()),
            ("flashVer", "LNX 9,0,124,2".into()),
            ("tcUrl", tc_url.into()),
            ("fpad", false.into()),
            ("capabilities", 15.0.into()),
            ("audioCodecs", 4071.0.into()),
            ("videoCodecs", 252.0.into()),
            ("videoFunction", 1.0.into()),
        ]);
        self.command(
            CSID_COMMAND,
            0,
            &["connect".into(), TXN_CONNECT.into(), object],
        );
    }

    fn command(&mut self, csid: u32, stream_id: u32, values: &[Amf0Value]) {
        let body = amf0::encode_all(values);
        self.send(csid, COMMAND_AMF0, stream_id, &body);
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) {
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
        };
        // Our messages are far below the 16 MiB length limit.
        let _ = self.encoder.write(&header, payload, &mut self.out);
    }

    /// Acknowledgement (§5.4.3) each time a window's worth of bytes has arrived.
    fn maybe_acknowledge(&mut self) {
        let Some(window) = self.ack_window else {
            return;
        };
        if self.received - self.last_ack >= u64::from(window) {
            self.last_ack = self.received;
            // The sequence number wraps at 2^32 (§5.4.3).
            let seq = (self.received as u32).to_be_bytes();
            self.send(CSID_CONTROL, ACKNOWLEDGEMENT, 0, &seq);
        }
    }

    /// The verdict for a run that ended at `end`.
    fn report(&self, end: Instant) -> Report {
        let s = &self.stats;
        let worst_gap = s
            .last_media
            .map(|last| s.worst_gap.max(end.saturating_duration_since(last)));
        let first_media_after = s
            .first_media
            .map(|f| f.saturating_duration_since(s.started));
        let span_ms = s.ts_max - s.ts_min;
        let on_air = end.saturating_duration_since(s.started);
        let want_span = on_air.saturating_sub(SPAN_SLACK);
        let (outcome, detail) = if let Some((outcome, why)) = &self.failure {
            (*outcome, why.clone())
        } else if first_media_after.is_none_or(|d| d > FIRST_MEDIA_WITHIN) {
            (
                Outcome::NoMedia,
                format!("first media after {first_media_after:?}"),
            )
        } else if worst_gap.is_some_and(|g| g > MAX_GAP) {
            (
                Outcome::Stalled,
                format!("gap of {} ms", worst_gap.unwrap_or_default().as_millis()),
            )
        } else if span_ms < want_span.as_millis() as i64 {
            (
                Outcome::Short,
                format!(
                    "media span {span_ms} ms after {} ms on the air",
                    on_air.as_millis()
                ),
            )
        } else {
            (Outcome::KeptUp, String::new())
        };
        Report {
            outcome,
            detail,
            bytes: s.bytes,
            media_messages: s.media_messages,
            worst_gap,
            first_media_after,
            span_ms,
        }
    }
}

/// An AVC or AAC sequence header (FLV spec §E.4.2.1 `AVCPacketType` 0, §E.4.3.1
/// `AACPacketType` 0): decoder configuration, not a frame.
fn is_sequence_header(type_id: u8, body: &[u8]) -> bool {
    match (type_id, body) {
        (TYPE_VIDEO, [first, 0, ..]) => first & 0x0F == 7,
        (TYPE_AUDIO, [first, 0, ..]) => first >> 4 == 10,
        _ => false,
    }
}

/// A player and its socket, driven by a reader thread.
struct Slot {
    index: usize,
    player: Player,
    socket: Option<TcpStream>,
    /// Received bytes not consumed yet (a partial chunk).
    pending: Vec<u8>,
}

impl Slot {
    /// Writes what the player queued; reads and feeds what arrived. Returns true when
    /// anything was read.
    fn sweep(&mut self, scratch: &mut [u8]) -> bool {
        let Some(socket) = self.socket.as_mut() else {
            return false;
        };
        let mut got = false;
        for _ in 0..READS_PER_SWEEP {
            if let Err(e) = write_some(socket, &mut self.player.out) {
                self.player.closed(&format!("write: {e}"));
                break;
            }
            match socket.read(scratch) {
                Ok(0) => {
                    self.player.closed("the server closed the connection");
                    break;
                }
                Ok(n) => {
                    got = true;
                    let now = Instant::now();
                    self.player.stats.bytes += n as u64;
                    if self.pending.is_empty() {
                        let used = self.player.handle_input(&scratch[..n], now);
                        self.pending.extend_from_slice(&scratch[used..n]);
                    } else {
                        self.pending.extend_from_slice(&scratch[..n]);
                        let used = self.player.handle_input(&self.pending, now);
                        self.pending.drain(..used);
                    }
                    if self.pending.len() > MAX_PENDING_INPUT {
                        self.player.closed("a chunk larger than the input limit");
                    }
                    if n < scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.player.closed(&format!("read: {e}"));
                    break;
                }
            }
            if self.player.is_done() {
                break;
            }
        }
        if !self.player.is_done()
            && let Err(e) = write_some(socket, &mut self.player.out)
        {
            self.player.closed(&format!("write: {e}"));
        }
        if self.player.is_done() {
            self.socket = None;
        }
        got
    }
}

/// Writes as much of `out` as the socket takes now.
fn write_some(socket: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    while !out.is_empty() {
        match socket.write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A connector's hand-over to a reader: the player's index, when its connect started, and
/// the connected nonblocking socket or why there is none.
type Connected = (usize, Instant, Result<TcpStream, String>);

/// Sweeps its players until `end`, then returns their reports.
fn reader(
    target: PlayTarget,
    incoming: mpsc::Receiver<Connected>,
    end: Instant,
) -> Vec<(usize, Report)> {
    let mut slots: Vec<Slot> = Vec::new();
    let mut failed: Vec<(usize, Report)> = Vec::new();
    let mut scratch = vec![0u8; READ_BUFFER];
    loop {
        while let Ok((index, started, socket)) = incoming.try_recv() {
            match socket {
                Ok(socket) => slots.push(Slot {
                    index,
                    player: Player::new(target.clone(), started, index as u64 + 1),
                    socket: Some(socket),
                    pending: Vec::new(),
                }),
                Err(why) => failed.push((index, Report::failed(Outcome::ConnectFailed, why))),
            }
        }
        if Instant::now() >= end {
            break;
        }
        for slot in &mut slots {
            slot.sweep(&mut scratch);
        }
        thread::sleep(SWEEP_PAUSE);
    }
    // Connectors still waiting on a connect send after the end: those never played.
    while let Ok((index, _, socket)) = incoming.recv() {
        let why = match socket {
            Ok(_) => "connected after the end of the run".to_string(),
            Err(why) => why,
        };
        failed.push((index, Report::failed(Outcome::ConnectFailed, why)));
    }
    slots
        .iter()
        .map(|s| (s.index, s.player.report(end)))
        .chain(failed)
        .collect()
}

/// Connects players `first, first + step, ...` at their start times.
fn connector(
    addr: SocketAddr,
    first: usize,
    step: usize,
    players: usize,
    starts: (Instant, Duration),
    end: Instant,
    readers: Vec<mpsc::Sender<Connected>>,
) {
    let (t0, ramp) = starts;
    for index in (first..players).step_by(step) {
        let at = t0 + ramp * index as u32;
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        }
        let started = Instant::now();
        let socket = if started >= end {
            Err("not started before the end of the run".to_string())
        } else {
            TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
                .and_then(|s| {
                    s.set_nodelay(true)?;
                    s.set_nonblocking(true)?;
                    Ok(s)
                })
                .map_err(|e| format!("connect {addr}: {e}"))
        };
        // A reader that has gone away has finished the run: nothing to report to.
        let _ = readers[index % readers.len()].send((index, started, socket));
    }
}

/// Options of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Options {
    url: String,
    players: usize,
    seconds: u64,
    ramp_ms: u64,
    threads: usize,
    connectors: usize,
    verbose: bool,
}

const USAGE: &str = "usage: rtmp-load rtmp://HOST[:PORT]/APP/NAME[?QUERY] [--players N (10)] \
[--seconds S (10)] [--ramp-ms M (10)] [--threads T (2)] [--connectors C (4)] [--verbose]";

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        url: String::new(),
        players: 10,
        seconds: 10,
        ramp_ms: 10,
        threads: 2,
        connectors: 4,
        verbose: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} wants a number"))
        };
        match arg.as_str() {
            "--players" => o.players = number(arg)? as usize,
            "--seconds" => o.seconds = number(arg)?,
            "--ramp-ms" => o.ramp_ms = number(arg)?,
            "--threads" => o.threads = number(arg)? as usize,
            "--connectors" => o.connectors = number(arg)? as usize,
            "--verbose" => o.verbose = true,
            "-h" | "--help" => return Err(String::new()),
            url if !url.starts_with("--") && o.url.is_empty() => o.url = url.to_string(),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if o.url.is_empty() {
        return Err("no URL".into());
    }
    if !(1..=MAX_PLAYERS).contains(&o.players) {
        return Err(format!("--players must be 1..={MAX_PLAYERS}"));
    }
    if o.seconds == 0 || o.threads == 0 || o.connectors == 0 {
        return Err("--seconds, --threads and --connectors must be at least 1".into());
    }
    Ok(o)
}

/// The run's figures, printed as one `key=value` line.
struct Summary {
    players: usize,
    counts: Vec<(Outcome, usize)>,
    bytes: u64,
    media_messages: u64,
    mbit_s: f64,
    worst_gap_ms: u128,
    worst_first_media_ms: u128,
    min_span_ms: i64,
    seconds: u64,
    ramp_ms: u64,
    wall_ms: u128,
}

impl Summary {
    fn new(o: &Options, reports: &[(usize, Report)], wall: Duration) -> Summary {
        let counts = Outcome::ALL
            .iter()
            .map(|&k| (k, reports.iter().filter(|(_, r)| r.outcome == k).count()))
            .collect();
        let bytes: u64 = reports.iter().map(|(_, r)| r.bytes).sum();
        let played = reports.iter().filter(|(_, r)| r.media_messages > 0);
        Summary {
            players: o.players,
            counts,
            bytes,
            media_messages: reports.iter().map(|(_, r)| r.media_messages).sum(),
            mbit_s: bytes as f64 * 8.0 / wall.as_secs_f64().max(1e-3) / 1e6,
            worst_gap_ms: played
                .clone()
                .filter_map(|(_, r)| r.worst_gap)
                .max()
                .map_or(0, |g| g.as_millis()),
            worst_first_media_ms: played
                .clone()
                .filter_map(|(_, r)| r.first_media_after)
                .max()
                .map_or(0, |d| d.as_millis()),
            min_span_ms: played.map(|(_, r)| r.span_ms).min().unwrap_or(0),
            seconds: o.seconds,
            ramp_ms: o.ramp_ms,
            wall_ms: wall.as_millis(),
        }
    }

    fn line(&self) -> String {
        let mut s = format!("rtmp-load players={}", self.players);
        for (k, n) in &self.counts {
            s.push_str(&format!(" {}={n}", k.key()));
        }
        s.push_str(&format!(
            " bytes={} mbit_s={:.1} media_messages={} worst_gap_ms={} worst_first_media_ms={} \
             min_span_ms={} seconds={} ramp_ms={} wall_ms={}",
            self.bytes,
            self.mbit_s,
            self.media_messages,
            self.worst_gap_ms,
            self.worst_first_media_ms,
            self.min_span_ms,
            self.seconds,
            self.ramp_ms,
            self.wall_ms
        ));
        s
    }
}

fn run(o: &Options) -> Result<Summary, String> {
    let target = PlayTarget::parse(&o.url)?;
    let addr = target
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", target.addr))?
        .next()
        .ok_or_else(|| format!("{}: no address", target.addr))?;
    let ramp = Duration::from_millis(o.ramp_ms);
    let t0 = Instant::now() + Duration::from_millis(50);
    let end = t0 + ramp * (o.players as u32 - 1) + Duration::from_secs(o.seconds);

    let mut senders = Vec::new();
    let mut readers = Vec::new();
    for k in 0..o.threads.min(o.players) {
        let (tx, rx) = mpsc::channel();
        senders.push(tx);
        let target = target.clone();
        readers.push(
            thread::Builder::new()
                .name(format!("reader-{k}"))
                .spawn(move || reader(target, rx, end))
                .map_err(|e| format!("spawning a reader: {e}"))?,
        );
    }
    let step = o.connectors.min(o.players);
    let mut connectors = Vec::new();
    for first in 0..step {
        let senders = senders.clone();
        let players = o.players;
        connectors.push(
            thread::Builder::new()
                .name(format!("connector-{first}"))
                .stack_size(64 * 1024)
                .spawn(move || connector(addr, first, step, players, (t0, ramp), end, senders))
                .map_err(|e| format!("spawning a connector: {e}"))?,
        );
    }
    drop(senders);
    for c in connectors {
        c.join().map_err(|_| "a connector panicked")?;
    }
    let mut reports = Vec::with_capacity(o.players);
    for r in readers {
        reports.extend(r.join().map_err(|_| "a reader panicked")?);
    }
    reports.sort_by_key(|(i, _)| *i);
    if o.verbose {
        for (i, r) in reports.iter().filter(|(_, r)| r.outcome != Outcome::KeptUp) {
            eprintln!("player {i}: {}: {}", r.outcome.key(), r.detail);
        }
    }
    Ok(Summary::new(o, &reports, end.saturating_duration_since(t0)))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("rtmp-load: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&options) {
        Ok(summary) => println!("{}", summary.line()),
        Err(e) => {
            eprintln!("rtmp-load: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera::media::frame::Frame;
    use tessera::rtmp::flv::{FlvTag, audio_config_tag, frame_tag, video_config_tag};
    use tessera::rtmp::session::{AuthAnswer, ConnectionConfig, Output, RtmpConnection};
    use tessera::source::fake::FakeSource;

    fn target() -> PlayTarget {
        PlayTarget::parse("rtmp://127.0.0.1:1935/static/auth-check?token=test1").unwrap()
    }

    #[test]
    fn url_gives_application_and_play_name_with_the_token() {
        assert_eq!(
            target(),
            PlayTarget {
                addr: "127.0.0.1:1935".into(),
                app: "static".into(),
                tc_url: "rtmp://127.0.0.1:1935/static".into(),
                name: "auth-check?token=test1".into(),
            }
        );
        let t = PlayTarget::parse("rtmp://localhost/live/a/b").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.name.as_str()),
            ("localhost:1935", "a/b")
        );
        for bad in [
            "http://h/a/b",
            "rtmp://h/app",
            "rtmp://h//name",
            "rtmp:///a/b",
        ] {
            assert!(PlayTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_parse_and_limits() {
        let args: Vec<String> = ["rtmp://h/a/b", "--players", "50", "--seconds", "12"]
            .map(String::from)
            .to_vec();
        let o = parse_options(&args).unwrap();
        assert_eq!((o.players, o.seconds, o.ramp_ms), (50, 12, 10));
        for bad in [
            &["--players", "5"][..],
            &["rtmp://h/a/b", "--players", "0"],
            &["rtmp://h/a/b", "--players", "x"],
            &["rtmp://h/a/b", "--bogus"],
        ] {
            let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            assert!(parse_options(&args).is_err(), "{bad:?}");
        }
    }

    /// A player and tessera's own server state machine, wired back to back.
    struct Wire {
        player: Player,
        server: RtmpConnection,
        to_server: Vec<u8>,
        to_player: Vec<u8>,
        started: bool,
        server_closed: bool,
    }

    impl Wire {
        fn new(t0: Instant) -> Wire {
            Wire {
                player: Player::new(target(), t0, 7),
                server: RtmpConnection::new(ConnectionConfig::new(1), t0),
                to_server: Vec::new(),
                to_player: Vec::new(),
                started: false,
                server_closed: false,
            }
        }

        /// Moves bytes both ways until neither side has anything more to say.
        fn pump(&mut self, answer: &AuthAnswer, now: Instant) {
            loop {
                let mut moved = !self.player.out.is_empty();
                self.to_server.append(&mut self.player.out);
                if let Ok(n) = self.server.handle_input(&self.to_server, now) {
                    self.to_server.drain(..n);
                }
                while let Some(o) = self.server.poll_output() {
                    match o {
                        Output::Transmit(b) => {
                            self.to_player.extend_from_slice(&b);
                            moved = true;
                        }
                        Output::Authorize { stream, token, .. } => {
                            assert_eq!(stream, "auth-check");
                            assert_eq!(token.as_deref(), Some(&b"test1"[..]));
                            self.server.authorized(answer.clone(), now);
                            moved = true;
                        }
                        Output::StartPlay(_) => self.started = true,
                        Output::Close(_) => self.server_closed = true,
                        _ => {}
                    }
                }
                let n = self.player.handle_input(&self.to_player, now);
                self.to_player.drain(..n);
                if !moved {
                    return;
                }
            }
        }

        /// Sends one frame as the server's shell would, received at `now`.
        fn frame(&mut self, f: &Frame, now: Instant) {
            self.tag(&frame_tag(f), now);
        }

        fn tag(&mut self, tag: &FlvTag, now: Instant) {
            let wire = self.server.media_message(tag).unwrap().to_vec();
            // Delivered in reads of 700 bytes: chunks split anywhere.
            for piece in wire.chunks(700) {
                self.to_player.extend_from_slice(piece);
                let n = self.player.handle_input(&self.to_player, now);
                self.to_player.drain(..n);
            }
        }
    }

    fn allowed() -> AuthAnswer {
        AuthAnswer::Allowed {
            media: FakeSource::new(0, 25).media_info(),
        }
    }

    /// Plays `seconds` of the fake source through the server machine, leaving out the frames
    /// whose decode time falls in `hole` (milliseconds).
    fn play(seconds: i64, hole: std::ops::Range<i64>) -> Report {
        let t0 = Instant::now();
        let mut wire = Wire::new(t0);
        wire.pump(&allowed(), t0);
        assert!(wire.started, "the server started the play");
        assert_eq!(wire.player.phase, Phase::Playing);
        // As the server's shell does: sequence headers at timestamp 0, then the frames of a
        // source that has been running for a minute, from a keyframe on.
        let mut source = FakeSource::new(0, 25);
        let info = source.media_info();
        wire.tag(&video_config_tag(info.video.as_ref().unwrap(), 0), t0);
        wire.tag(&audio_config_tag(info.audio.as_ref().unwrap(), 0), t0);
        let mut frames = Vec::new();
        source.poll((60 + seconds) * 90_000, &mut frames);
        for f in frames.iter().filter(|f| f.dts >= 60 * 90_000) {
            let ms = f.dts / 90 - 60_000;
            if !hole.contains(&ms) {
                wire.frame(f, t0 + Duration::from_millis(ms as u64));
            }
        }
        wire.player.report(t0 + Duration::from_secs(seconds as u64))
    }

    #[test]
    fn a_timely_play_against_tessera_keeps_up() {
        let r = play(10, 0..0);
        assert_eq!(r.outcome, Outcome::KeptUp, "{}", r.detail);
        // 25 video + 46.875 audio frames a second.
        assert!(r.media_messages > 700, "{}", r.media_messages);
        // The sequence headers at 0 do not stretch the span to the source's clock.
        assert!((9900..=10_000).contains(&r.span_ms), "{}", r.span_ms);
        assert!(r.worst_gap.unwrap() < Duration::from_millis(100));
        assert_eq!(r.first_media_after, Some(Duration::ZERO));
    }

    #[test]
    fn a_hole_over_a_second_is_a_stall() {
        let r = play(10, 4000..5500);
        assert_eq!(r.outcome, Outcome::Stalled, "{}", r.detail);
        assert!(r.worst_gap.unwrap() >= Duration::from_millis(1500));
    }

    #[test]
    fn media_that_stops_early_is_a_stall_at_the_end() {
        let r = play(10, 8500..10_000);
        assert_eq!(r.outcome, Outcome::Stalled, "{}", r.detail);
    }

    #[test]
    fn a_refused_play_is_reported_as_refused() {
        let t0 = Instant::now();
        let mut wire = Wire::new(t0);
        wire.pump(
            &AuthAnswer::Denied {
                reason: "token_invalid",
            },
            t0,
        );
        assert!(wire.server_closed);
        let r = wire.player.report(t0 + Duration::from_secs(10));
        assert_eq!(r.outcome, Outcome::Refused);
        assert!(r.detail.contains("NetStream.Play.Failed"), "{}", r.detail);
    }

    #[test]
    fn nothing_but_a_handshake_is_a_failed_connect() {
        let t0 = Instant::now();
        let mut p = Player::new(target(), t0, 1);
        assert_eq!(p.out.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(
            p.handle_input(&[3; 100], t0),
            0,
            "waits for a whole S0+S1+S2"
        );
        p.closed("the server closed the connection");
        assert_eq!(p.report(t0).outcome, Outcome::ConnectFailed);
        let mut p = Player::new(target(), t0, 1);
        p.handle_input(&[6; 1 + 2 * HANDSHAKE_SIZE], t0);
        assert!(p.is_done());
        assert_eq!(p.report(t0).outcome, Outcome::ConnectFailed);
    }

    #[test]
    fn media_behind_wall_time_is_short() {
        let t0 = Instant::now();
        let mut wire = Wire::new(t0);
        wire.pump(&allowed(), t0);
        let mut source = FakeSource::new(0, 25);
        let mut frames = Vec::new();
        source.poll(5 * 90_000, &mut frames);
        // Five seconds of media delivered steadily over ten seconds: never a gap over 1 s,
        // but half speed.
        for f in &frames {
            wire.frame(f, t0 + Duration::from_millis((f.dts / 45) as u64));
        }
        let r = wire.player.report(t0 + Duration::from_secs(10));
        assert_eq!(r.outcome, Outcome::Short, "{}", r.detail);
    }
}
