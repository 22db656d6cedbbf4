//! One RTMP connection (play or publish) as a sans-IO state machine: the handshake
//! (Adobe RTMP spec 1.0 §5.2), protocol control messages (§5.4), user control messages
//! (§6.2, §7.1.7), and the NetConnection/NetStream commands of §7.2.1 and §7.2.2 that
//! ffmpeg, OBS and Flash-era players send.
//!
//! Owns: the phase of the connection, the chunk decoder and encoder, acknowledgements
//! (§5.4.3, §5.4.4), the explicit authorization round trip ([`Output::Authorize`] →
//! [`RtmpConnection::authorized`]), the stream name and token of a play/publish request,
//! the onStatus answers (including the deny of spec playback-auth §5: `NetStream.Play.Failed`
//! with the reason, then close), the per-viewer media timestamps, and turning a publisher's
//! tags into frames (via `flv.rs`).
//!
//! Never does: sockets, clocks (time is passed in), the authorization decision, GOP caching
//! or fan-out (the shell's stream does that and hands each viewer shared [`FlvTag`]s).
//! Input is pushed with [`RtmpConnection::handle_input`]; outputs are pulled with
//! [`RtmpConnection::poll_output`], in the str0m style.
//!
//! # What the shell does
//!
//! 1. Read bytes; call `handle_input(&buf, now)`; drop the consumed prefix, keep the rest.
//! 2. Drain `poll_output()` after every call into the machine:
//!    * `Transmit(bytes)`: write them, in order, before anything that a later output starts.
//!    * `Authorize { .. }`: ask the authorizer; input is not consumed until
//!      `authorized(answer, now)` is called, after which call `handle_input` again with the
//!      kept bytes (even if no new bytes came) and drain outputs again.
//!    * `StartPlay(p)`: start an `rtmp::viewer::RtmpViewer` (sequence headers, then frames
//!      from a keyframe on, re-sent configuration, audio gating, chunking); or write single
//!      messages through [`RtmpConnection::media_message`], writing the returned [`Chunks`]
//!      parts in order.
//!    * `PausePlay { paused }` / `StopPlay`: stop or resume media (`RtmpViewer::resume` after
//!      a pause); `media_message` returns `None` meanwhile.
//!    * `PublishStarted`, `Published(MediaFrame)`, `Unpublished`: feed the stream source.
//!    * `Close(reason)`: write every earlier `Transmit`, then close the socket.
//!    * `Timeout(at)`: call `handle_timeout(now)` at `at` (replaces any earlier timer).
//! 3. When the publisher of a played stream goes away call `unpublish_notify()`; on socket
//!    EOF or error call `peer_closed()` (it reports `Unpublished` for a publisher).

use super::amf0::{self, Amf0Value};
use super::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkError, ChunkErrorKind, ChunkLimits, Chunks, Message,
    MessageHeader,
};
use super::flv::{self, FlvDemuxer, FlvError, FlvTag, MediaFrame};
use super::handshake::{HandshakeError, ServerHandshake};
use crate::media::frame::MediaInfo;
use crate::uri::Target;
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

// Message types (§5.4, §7.1).
const SET_CHUNK_SIZE: u8 = 1;
const ABORT: u8 = 2;
const ACKNOWLEDGEMENT: u8 = 3;
const USER_CONTROL: u8 = 4;
const WINDOW_ACK_SIZE: u8 = 5;
const SET_PEER_BANDWIDTH: u8 = 6;
const DATA_AMF3: u8 = 15;
const COMMAND_AMF3: u8 = 17;
const DATA_AMF0: u8 = 18;
const COMMAND_AMF0: u8 = 20;
const AGGREGATE: u8 = 22;

// User control events (§7.1.7).
const STREAM_BEGIN: u16 = 0;
const STREAM_EOF: u16 = 1;
const PING_REQUEST: u16 = 6;
const PING_RESPONSE: u16 = 7;

// Chunk streams we send on. 2 is reserved for protocol control (§5.4).
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
pub(crate) const CSID_DATA: u32 = 4;
const CSID_STATUS: u32 = 5;
pub(crate) const CSID_AUDIO: u32 = 6;
pub(crate) const CSID_VIDEO: u32 = 7;

/// Streams one connection may create (real clients create one).
const MAX_STREAMS: u32 = 8;

/// Per-connection configuration, built by the shell.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Query parameter that carries the token (`auth_token NAME;`, default `token`).
    pub token_param: String,
    /// Our outgoing chunk size, announced with Set Chunk Size right after `connect`.
    pub chunk_size: u32,
    /// Window Acknowledgement Size we announce (§5.4.4).
    pub window_ack_size: u32,
    /// Set Peer Bandwidth we announce (§5.4.5), limit type dynamic.
    pub peer_bandwidth: u32,
    pub limits: ChunkLimits,
    /// Whole handshake must arrive within this.
    pub handshake_timeout: Duration,
    /// Close when nothing arrives for this long before play/publish starts or while
    /// publishing. Players send nothing but acknowledgements, so playing has no timeout.
    pub idle_timeout: Duration,
    /// `fmsVer` of the connect reply.
    pub fms_version: &'static str,
    /// Level of the onStatus that refuses a play (see [`DenyLevel`]); a refused publish
    /// is always level `error`.
    pub deny_level: DenyLevel,
    /// Seeds the handshake's random fields; vary per connection.
    pub seed: u64,
}

/// The `level` of a denial's onStatus. Both carry the same code and description; they
/// differ in what ffmpeg prints, since ffmpeg fails at once on a level `error` status and
/// ignores other levels until the connection closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyLevel {
    /// `error` (playback-auth §5, Adobe's level for `NetStream.Play.Failed`). ffmpeg 5.1:
    /// `Server error: Playback of NAME denied: REASON`, then `Operation not permitted`.
    Error,
    /// `warning`: ffmpeg 5.1 ignores it, sees the close and prints `Input/output error`
    /// (playback-auth §1's wording); Flash-style players still get the code and reason.
    Warning,
}

impl ConnectionConfig {
    pub fn new(seed: u64) -> Self {
        ConnectionConfig {
            token_param: "token".to_string(),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            limits: ChunkLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            fms_version: "FMS/3,0,1,123",
            deny_level: DenyLevel::Error,
            seed,
        }
    }
}

/// What a request wants to do with a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Play,
    Publish,
}

/// The shard authorizer's answer to [`Output::Authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthAnswer {
    /// Allowed. For play, `media` describes the stream (for `onMetaData`); ignored for
    /// publish.
    Allowed { media: MediaInfo },
    /// Refused: onStatus `NetStream.Play.Failed` / `NetStream.Publish.Failed`, level
    /// `error`, the reason in the description; then close (playback-auth §5).
    Denied { reason: &'static str },
    /// No such stream (play: `NetStream.Play.StreamNotFound`; publish:
    /// `NetStream.Publish.BadName`); then close.
    NotFound,
    /// Publish only: another publisher holds the stream (`NetStream.Publish.BadName`,
    /// "already publishing", as nginx-rtmp answers); then close.
    InUse,
}

/// A protocol failure, with context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtmpError {
    Handshake(HandshakeError),
    Chunk(ChunkError),
    /// A message we could not accept (message type, what was wrong, connection offset).
    Protocol {
        type_id: u8,
        what: String,
        offset: u64,
    },
    /// A publisher sent media we cannot carry.
    Media(FlvError),
}

impl fmt::Display for RtmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtmpError::Handshake(e) => e.fmt(f),
            RtmpError::Chunk(e) => e.fmt(f),
            RtmpError::Protocol {
                type_id,
                what,
                offset,
            } => write!(
                f,
                "rtmp: message type {type_id} ending at byte {offset}: {what}"
            ),
            RtmpError::Media(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RtmpError {}

/// Why the shell should close the connection once earlier output is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Denied {
        reason: &'static str,
    },
    NotFound,
    Error(RtmpError),
    /// No input within the handshake or idle timeout.
    Timeout,
    /// The shell reported EOF or a socket error.
    PeerClosed,
}

/// Play accepted: start sending media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayStart {
    /// Message stream id media goes on (`media_message` uses it).
    pub stream_id: u32,
    /// The stream name (application dropped, query removed).
    pub stream: String,
    pub media: MediaInfo,
}

/// What the state machine asks of the shell.
#[derive(Clone, Debug)]
pub enum Output {
    /// Bytes to write, in order.
    Transmit(Bytes),
    /// A play or publish request needs a decision; answer with
    /// [`RtmpConnection::authorized`]. No input is consumed until then.
    Authorize {
        action: Action,
        /// Play/publish name joined to any application path after its first segment
        /// (`rtmp://h/a/b/c` → `b/c`), without the query.
        stream: String,
        /// The token query parameter of the name, else of the tcUrl, percent-decoded.
        token: Option<Vec<u8>>,
        /// The application (first path segment of the URL), without query.
        app: String,
        tc_url: Option<String>,
    },
    StartPlay(PlayStart),
    /// `pause` from the player: stop (`true`) or resume (`false`) sending media.
    PausePlay {
        paused: bool,
    },
    /// The player closed or deleted its stream: stop sending media.
    StopPlay,
    /// Publish accepted; `Published` outputs follow.
    PublishStarted {
        stream_id: u32,
        stream: String,
    },
    /// Publisher media: a configuration change or a frame (90 kHz timestamps).
    Published(MediaFrame),
    /// The publisher stopped (FCUnpublish, deleteStream, closeStream, EOF, error).
    Unpublished,
    Close(CloseReason),
    /// Call [`RtmpConnection::handle_timeout`] at this instant.
    Timeout(Instant),
}

#[derive(Debug)]
struct PendingAuth {
    action: Action,
    stream_id: u32,
    stream: String,
    reset: bool,
}

#[derive(Debug)]
struct Playing {
    stream_id: u32,
    paused: bool,
    /// Source timestamp (ms) of the first media message: viewer time 0.
    base_ms: Option<i64>,
}

#[derive(Debug)]
struct Publishing {
    stream_id: u32,
    demux: FlvDemuxer,
}

/// The per-connection RTMP state machine.
#[derive(Debug)]
pub struct RtmpConnection {
    cfg: ConnectionConfig,
    handshake: ServerHandshake,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    outputs: VecDeque<Output>,
    /// Control bytes not yet turned into a `Transmit`.
    tx: Vec<u8>,
    deadline: Option<Instant>,
    timeout_reported: bool,
    closed: bool,
    /// Bytes received so far (acknowledgement sequence numbers, error offsets).
    received: u64,
    last_ack: u64,
    /// The peer's Window Acknowledgement Size: none announced, no acknowledgements.
    peer_window: Option<u32>,
    connected: bool,
    app: String,
    tc_url: Option<String>,
    streams_created: u32,
    pending: Option<PendingAuth>,
    playing: Option<Playing>,
    publishing: Option<Publishing>,
}

impl RtmpConnection {
    pub fn new(cfg: ConnectionConfig, now: Instant) -> Self {
        let handshake = ServerHandshake::new(cfg.seed, 0);
        let decoder = ChunkDecoder::new(cfg.limits);
        let deadline = Some(now + cfg.handshake_timeout);
        RtmpConnection {
            cfg,
            handshake,
            decoder,
            encoder: ChunkEncoder::new(),
            outputs: VecDeque::new(),
            tx: Vec::new(),
            deadline,
            timeout_reported: false,
            closed: false,
            received: 0,
            last_ack: 0,
            peer_window: None,
            connected: false,
            app: String::new(),
            tc_url: None,
            streams_created: 0,
            pending: None,
            playing: None,
            publishing: None,
        }
    }

    /// Feeds received bytes; returns how many were consumed (the shell keeps the rest).
    /// After a `Close` everything is consumed and ignored. An error also queues `Close`.
    pub fn handle_input(&mut self, buf: &[u8], now: Instant) -> Result<usize, RtmpError> {
        self.timeout_reported = false;
        if self.closed {
            return Ok(buf.len());
        }
        let mut used = 0;
        let mut result = Ok(());
        while !self.closed && self.pending.is_none() && used < buf.len() {
            if !self.handshake.is_done() {
                let mut out = Vec::new();
                match self.handshake.handle(&buf[used..], &mut out) {
                    Ok(0) => break,
                    Ok(n) => {
                        used += n;
                        self.received += n as u64;
                        self.tx.extend_from_slice(&out);
                        if self.handshake.is_done() {
                            self.deadline = Some(now + self.cfg.idle_timeout);
                        }
                    }
                    Err(e) => {
                        result = Err(RtmpError::Handshake(e));
                        break;
                    }
                }
                continue;
            }
            match self.decoder.decode(&buf[used..]) {
                Ok((0, _)) => break,
                Ok((n, message)) => {
                    used += n;
                    self.received += n as u64;
                    self.maybe_acknowledge();
                    if let Some(m) = message
                        && let Err(e) = self.on_message(m)
                    {
                        result = Err(e);
                        break;
                    }
                }
                Err(e) => {
                    result = Err(RtmpError::Chunk(e));
                    break;
                }
            }
        }
        if used > 0 && self.handshake.is_done() && self.deadline.is_some() {
            self.deadline = Some(now + self.cfg.idle_timeout);
        }
        if self.pending.is_some() || self.playing.is_some() {
            self.deadline = None;
        }
        if let Err(e) = &result {
            if self.publishing.take().is_some() {
                self.push(Output::Unpublished);
            }
            self.close(CloseReason::Error(e.clone()));
            return Err(e.clone());
        }
        self.flush();
        Ok(used)
    }

    /// Fires the handshake/idle timeout when `now` has reached it.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.timeout_reported = false;
        if !self.closed && self.deadline.is_some_and(|d| now >= d) {
            if self.publishing.take().is_some() {
                self.push(Output::Unpublished);
            }
            self.close(CloseReason::Timeout);
        }
    }

    /// The next output; `None` when there is nothing to do until the next input or timeout.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.flush();
        if let Some(o) = self.outputs.pop_front() {
            return Some(o);
        }
        if self.closed || self.timeout_reported {
            return None;
        }
        self.timeout_reported = true;
        self.deadline.map(Output::Timeout)
    }

    /// The shell's answer to the last [`Output::Authorize`]. Ignored when none is pending.
    pub fn authorized(&mut self, answer: AuthAnswer, now: Instant) {
        self.timeout_reported = false;
        let Some(req) = self.pending.take() else {
            return;
        };
        if self.closed {
            return;
        }
        let sid = req.stream_id;
        let name = req.stream.clone();
        match (req.action, answer) {
            (Action::Play, AuthAnswer::Allowed { media }) => {
                self.user_control(STREAM_BEGIN, sid);
                if req.reset {
                    self.on_status(
                        sid,
                        "status",
                        "NetStream.Play.Reset",
                        &format!("Playing and resetting {name}."),
                    );
                }
                self.on_status(
                    sid,
                    "status",
                    "NetStream.Play.Start",
                    &format!("Started playing {name}."),
                );
                self.data_message(sid, &["|RtmpSampleAccess".into(), true.into(), true.into()]);
                self.data_message(sid, &["onMetaData".into(), flv::metadata(&media)]);
                self.playing = Some(Playing {
                    stream_id: sid,
                    paused: false,
                    base_ms: None,
                });
                self.deadline = None;
                self.push(Output::StartPlay(PlayStart {
                    stream_id: sid,
                    stream: req.stream,
                    media,
                }));
            }
            (Action::Publish, AuthAnswer::Allowed { .. }) => {
                self.on_status(
                    sid,
                    "status",
                    "NetStream.Publish.Start",
                    &format!("{name} is now published."),
                );
                self.publishing = Some(Publishing {
                    stream_id: sid,
                    demux: FlvDemuxer::new(),
                });
                self.deadline = Some(now + self.cfg.idle_timeout);
                self.push(Output::PublishStarted {
                    stream_id: sid,
                    stream: req.stream,
                });
            }
            (action, AuthAnswer::Denied { reason }) => {
                let (code, verb) = match action {
                    Action::Play => ("NetStream.Play.Failed", "Playback"),
                    Action::Publish => ("NetStream.Publish.Failed", "Publishing"),
                };
                // A publisher is always told plainly (ffmpeg then prints the reason).
                let level = match (action, self.cfg.deny_level) {
                    (Action::Play, DenyLevel::Warning) => "warning",
                    _ => "error",
                };
                self.on_status(
                    sid,
                    level,
                    code,
                    &format!("{verb} of {name} denied: {reason}"),
                );
                self.close(CloseReason::Denied { reason });
            }
            (_, AuthAnswer::InUse) => {
                self.on_status(
                    sid,
                    "error",
                    "NetStream.Publish.BadName",
                    &format!("{name} is already being published"),
                );
                self.close(CloseReason::Denied {
                    reason: "already_publishing",
                });
            }
            (action, AuthAnswer::NotFound) => {
                let code = match action {
                    Action::Play => "NetStream.Play.StreamNotFound",
                    Action::Publish => "NetStream.Publish.BadName",
                };
                self.on_status(sid, "error", code, &format!("No such stream: {name}"));
                self.close(CloseReason::NotFound);
            }
        }
        self.flush();
    }

    /// Encodes one media tag for this viewer: on the play stream, on the audio or video chunk
    /// stream, timestamped relative to the first tag sent (never negative). `None` when not
    /// playing, paused, closed, or the tag is larger than 16 MiB.
    pub fn media_message(&mut self, tag: &FlvTag) -> Option<Chunks> {
        let header = self.media_header(tag)?;
        self.encoder.chunks(&header, &tag.body).ok()
    }

    /// The chunk header `tag` goes out with as the next media message of the play (`None`
    /// when not playing, paused, or the tag is longer than a message may be); write its
    /// chunks with `encoder().write_chunk`, flushing between them as the shell likes.
    pub fn media_header(&mut self, tag: &FlvTag) -> Option<MessageHeader> {
        if self.closed {
            return None;
        }
        let play = self.playing.as_mut().filter(|p| !p.paused)?;
        super::viewer::media_header(tag, &mut play.base_ms, play.stream_id)
    }

    /// The outgoing chunk encoder (its chunk size is the one announced to the peer).
    pub fn encoder(&self) -> &ChunkEncoder {
        &self.encoder
    }

    /// The played stream's publisher went away: onStatus `NetStream.Play.UnpublishNotify`
    /// and user control StreamEOF; media stops (ffmpeg ends its input there).
    pub fn unpublish_notify(&mut self) {
        let Some(play) = self.playing.take() else {
            return;
        };
        if self.closed {
            return;
        }
        self.on_status(
            play.stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            "The stream was unpublished.",
        );
        self.user_control(STREAM_EOF, play.stream_id);
        self.flush();
    }

    /// The socket hit EOF or an error.
    pub fn peer_closed(&mut self) {
        self.timeout_reported = false;
        if self.closed {
            return;
        }
        if self.publishing.take().is_some() {
            self.push(Output::Unpublished);
        }
        self.close(CloseReason::PeerClosed);
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn awaiting_authorization(&self) -> bool {
        self.pending.is_some()
    }

    pub fn is_playing(&self) -> bool {
        self.playing.is_some()
    }

    pub fn is_publishing(&self) -> bool {
        self.publishing.is_some()
    }

    /// The handshake scheme the client used (for logs).
    pub fn handshake_scheme(&self) -> Option<super::handshake::Scheme> {
        self.handshake.scheme()
    }

    // ---- output helpers ------------------------------------------------------------------

    fn flush(&mut self) {
        if !self.tx.is_empty() {
            let bytes = Bytes::from(std::mem::take(&mut self.tx));
            self.outputs.push_back(Output::Transmit(bytes));
        }
    }

    fn push(&mut self, output: Output) {
        self.flush();
        self.outputs.push_back(output);
    }

    fn close(&mut self, reason: CloseReason) {
        self.push(Output::Close(reason));
        self.closed = true;
        self.pending = None;
        self.playing = None;
        self.deadline = None;
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) {
        let message = (csid, type_id, stream_id);
        self.encoder.write_unstamped(message, payload, &mut self.tx);
    }

    fn user_control(&mut self, event: u16, value: u32) {
        let mut p = [0u8; 6];
        p[..2].copy_from_slice(&event.to_be_bytes());
        p[2..].copy_from_slice(&value.to_be_bytes());
        self.send(CSID_CONTROL, USER_CONTROL, 0, &p);
    }

    fn command(&mut self, csid: u32, stream_id: u32, values: &[Amf0Value]) {
        let body = amf0::encode_all(values);
        self.send(csid, COMMAND_AMF0, stream_id, &body);
    }

    fn data_message(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let body = amf0::encode_all(values);
        self.send(CSID_DATA, DATA_AMF0, stream_id, &body);
    }

    fn on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.command(
            CSID_STATUS,
            stream_id,
            &[
                "onStatus".into(),
                0.0.into(),
                Amf0Value::Null,
                Amf0Value::object([
                    ("level", level.into()),
                    ("code", code.into()),
                    ("description", description.into()),
                ]),
            ],
        );
    }

    fn result(&mut self, txn: f64, values: Vec<Amf0Value>) {
        let mut all = vec!["_result".into(), txn.into()];
        all.extend(values);
        self.command(CSID_COMMAND, 0, &all);
    }

    /// Acknowledgement (§5.4.3) each time a peer window's worth of bytes has arrived.
    fn maybe_acknowledge(&mut self) {
        let Some(window) = self.peer_window else {
            return;
        };
        if self.received - self.last_ack >= u64::from(window) {
            self.last_ack = self.received;
            // The sequence number wraps at 2^32 (§5.4.3).
            let seq = (self.received as u32).to_be_bytes();
            self.send(CSID_CONTROL, ACKNOWLEDGEMENT, 0, &seq);
        }
    }

    fn protocol_error(&self, type_id: u8, what: impl Into<String>) -> RtmpError {
        RtmpError::Protocol {
            type_id,
            what: what.into(),
            offset: self.received,
        }
    }

    // ---- input ---------------------------------------------------------------------------

    fn on_message(&mut self, m: Message) -> Result<(), RtmpError> {
        let p = &m.payload;
        let be32 = |p: &[u8]| {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match m.type_id {
            SET_CHUNK_SIZE => {
                let size = be32(p).ok_or_else(|| self.protocol_error(m.type_id, "short"))?;
                // §5.4.1: the first bit must be zero; some peers set it, so mask it.
                self.decoder
                    .set_chunk_size(size & 0x7FFF_FFFF)
                    .map_err(|k: ChunkErrorKind| self.protocol_error(m.type_id, k.to_string()))?;
            }
            ABORT => {
                if let Some(csid) = be32(p) {
                    self.decoder.abort(csid);
                }
            }
            ACKNOWLEDGEMENT | SET_PEER_BANDWIDTH => {}
            WINDOW_ACK_SIZE => {
                self.peer_window = be32(p).filter(|&w| w > 0);
            }
            USER_CONTROL if p.len() >= 6 && u16::from_be_bytes([p[0], p[1]]) == PING_REQUEST => {
                let mut r = [0u8; 6];
                r[..2].copy_from_slice(&PING_RESPONSE.to_be_bytes());
                r[2..].copy_from_slice(&p[2..6]);
                self.send(CSID_CONTROL, USER_CONTROL, 0, &r);
            }
            flv::TYPE_AUDIO | flv::TYPE_VIDEO => {
                self.on_media(m.type_id, m.timestamp, &m.stream_id, p.clone())?
            }
            AGGREGATE
                if self
                    .publishing
                    .as_ref()
                    .is_some_and(|pb| pb.stream_id == m.stream_id) =>
            {
                // A damaged aggregate loses only itself.
                let parts = flv::split_aggregate(m.timestamp, p).unwrap_or_default();
                for part in parts {
                    if matches!(part.type_id, flv::TYPE_AUDIO | flv::TYPE_VIDEO) {
                        self.on_media(part.type_id, part.timestamp_ms, &m.stream_id, part.body)?;
                    }
                }
            }
            COMMAND_AMF0 => self.on_command(&m, p)?,
            // An AMF3 command message is a format byte (0) then AMF0 values.
            COMMAND_AMF3 if p.len() > 1 => self.on_command(&m, &p[1..])?,
            DATA_AMF0 | DATA_AMF3 => {
                // `@setDataFrame onMetaData` from publishers: we derive metadata from the
                // sequence headers instead.
            }
            _ => {}
        }
        Ok(())
    }

    fn on_media(
        &mut self,
        type_id: u8,
        timestamp: u32,
        stream_id: &u32,
        body: Bytes,
    ) -> Result<(), RtmpError> {
        let Some(publishing) = self.publishing.as_mut() else {
            return Ok(());
        };
        if publishing.stream_id != *stream_id {
            return Ok(());
        }
        let parsed = if type_id == flv::TYPE_VIDEO {
            publishing.demux.video(timestamp, &body)
        } else {
            publishing.demux.audio(timestamp, &body)
        };
        match parsed {
            Ok(Some(frame)) => self.push(Output::Published(frame)),
            Ok(None) => {}
            Err(e) if e.is_fatal() => {
                let sid = publishing.stream_id;
                self.on_status(sid, "error", "NetStream.Publish.Failed", &e.to_string());
                return Err(RtmpError::Media(e));
            }
            // A damaged tag loses only itself.
            Err(_) => {}
        }
        Ok(())
    }

    fn on_command(&mut self, m: &Message, body: &[u8]) -> Result<(), RtmpError> {
        let values = self.decode_command(m, body)?;
        let Some(name) = values
            .first()
            .and_then(Amf0Value::as_str)
            .map(str::to_string)
        else {
            return Err(self.protocol_error(m.type_id, "a command without a name"));
        };
        let txn = values.get(1).and_then(Amf0Value::as_number).unwrap_or(0.0);
        let obj = values.get(2);
        let args = values.get(3..).unwrap_or(&[]);
        match name.as_str() {
            "connect" => self.on_connect(txn, obj),
            "createStream" => self.on_create_stream(txn),
            "releaseStream" | "FCPublish" | "FCSubscribe" => {
                if txn != 0.0 {
                    self.result(txn, vec![Amf0Value::Null, Amf0Value::Undefined]);
                }
            }
            "getStreamLength" => {
                // Live: length 0 (ffmpeg warns unless the answer is a number).
                self.result(txn, vec![Amf0Value::Null, 0.0.into()]);
            }
            "play" => self.on_play_or_publish(Action::Play, m.stream_id, args),
            "publish" => self.on_play_or_publish(Action::Publish, m.stream_id, args),
            "pause" => self.on_pause(args),
            "deleteStream" => {
                let sid = args
                    .first()
                    .and_then(Amf0Value::as_number)
                    .map_or(m.stream_id, |n| n as u32);
                self.on_stream_closed(sid, false);
            }
            "closeStream" => self.on_stream_closed(m.stream_id, false),
            "FCUnpublish" => self.on_stream_closed(m.stream_id, true),
            "receiveAudio" | "receiveVideo" | "_result" | "_error" | "onStatus" | "_checkbw"
            | "checkBandwidth" | "onBWDone" | "@setDataFrame" | "seek" => {}
            _ => return Err(self.on_unknown_command(m.type_id, txn, &name)),
        }
        Ok(())
    }

    /// Every AMF0 value of a command body. Every value must decode: a command with AMF
    /// garbage in it is not guessed at.
    fn decode_command(&self, m: &Message, body: &[u8]) -> Result<Vec<Amf0Value>, RtmpError> {
        let mut values = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            match amf0::decode(rest) {
                Ok((v, n)) => {
                    values.push(v);
                    rest = &rest[n..];
                }
                Err(e) => {
                    let at = body.len() - rest.len();
                    let what = format!("AMF0 garbage at byte {at} of a command: {e}");
                    return Err(self.protocol_error(m.type_id, what));
                }
            }
        }
        Ok(values)
    }

    /// `connect`: remembers the app and tcUrl, sends window, bandwidth and chunk size, and
    /// answers `NetConnection.Connect.Success`.
    fn on_connect(&mut self, txn: f64, obj: Option<&Amf0Value>) {
        let get = |k| obj.and_then(|o| o.get(k)).and_then(Amf0Value::as_str);
        self.app = get("app").unwrap_or("").to_string();
        self.tc_url = get("tcUrl").map(str::to_string);
        self.connected = true;
        let was = self.cfg.window_ack_size.to_be_bytes();
        self.send(CSID_CONTROL, WINDOW_ACK_SIZE, 0, &was);
        let mut bw = [0u8; 5];
        bw[..4].copy_from_slice(&self.cfg.peer_bandwidth.to_be_bytes());
        bw[4] = 2; // dynamic
        self.send(CSID_CONTROL, SET_PEER_BANDWIDTH, 0, &bw);
        let cs = self.cfg.chunk_size.clamp(1, 0x7FFF_FFFF);
        self.send(CSID_CONTROL, SET_CHUNK_SIZE, 0, &cs.to_be_bytes());
        // Valid by the clamp above.
        let _ = self.encoder.set_chunk_size(cs);
        let fms = self.cfg.fms_version;
        self.result(
            txn,
            vec![
                Amf0Value::object([("fmsVer", fms.into()), ("capabilities", 31.0.into())]),
                Amf0Value::object([
                    ("level", "status".into()),
                    ("code", "NetConnection.Connect.Success".into()),
                    ("description", "Connection succeeded.".into()),
                    ("objectEncoding", 0.0.into()),
                ]),
            ],
        );
    }

    /// `createStream`: the next message stream id, up to `MAX_STREAMS`.
    fn on_create_stream(&mut self, txn: f64) {
        if self.streams_created >= MAX_STREAMS {
            self.call_failed(txn, "too many streams");
        } else {
            self.streams_created += 1;
            let id = self.streams_created;
            self.result(txn, vec![Amf0Value::Null, f64::from(id).into()]);
        }
    }

    /// `play` or `publish`: refused at once without a stream name or with a stream already
    /// active; otherwise the connection asks for an authorization (`Output::Authorize`).
    fn on_play_or_publish(&mut self, action: Action, stream_id: u32, args: &[Amf0Value]) {
        let name = args.first().and_then(Amf0Value::as_str).unwrap_or("");
        let (stream, token) = self.stream_and_token(name);
        let reset =
            action == Action::Play && args.get(3).and_then(Amf0Value::as_bool).unwrap_or(true);
        if stream.is_empty() {
            let code = match action {
                Action::Play => "NetStream.Play.StreamNotFound",
                Action::Publish => "NetStream.Publish.BadName",
            };
            self.on_status(stream_id, "error", code, "Empty stream name");
            return;
        }
        if self.publishing.is_some() || self.playing.is_some() {
            self.on_status(
                stream_id,
                "error",
                "NetStream.Play.Failed",
                "A stream is already active on this connection",
            );
            return;
        }
        self.pending = Some(PendingAuth {
            action,
            stream_id,
            stream: stream.clone(),
            reset,
        });
        let app = self.app.split('?').next().unwrap_or("").to_string();
        let tc_url = self.tc_url.clone();
        self.push(Output::Authorize {
            action,
            stream,
            token,
            app,
            tc_url,
        });
    }

    /// `pause`: pauses or resumes the viewer, if one plays.
    fn on_pause(&mut self, args: &[Amf0Value]) {
        let paused = args.first().and_then(Amf0Value::as_bool).unwrap_or(true);
        let Some(play) = self.playing.as_mut() else {
            return;
        };
        let sid = play.stream_id;
        play.paused = paused;
        if !paused {
            // Resume at the live edge: restart viewer time at the next tag's.
            play.base_ms = None;
        }
        let (code, what) = if paused {
            ("NetStream.Pause.Notify", "Paused")
        } else {
            ("NetStream.Unpause.Notify", "Unpaused")
        };
        self.on_status(sid, "status", code, what);
        self.push(Output::PausePlay { paused });
    }

    /// `deleteStream`, `closeStream`, `FCUnpublish`: ends the publish or the play on
    /// message stream `sid` (`FCUnpublish` ends a publish on any stream).
    fn on_stream_closed(&mut self, sid: u32, any_publish: bool) {
        let is_publish = self
            .publishing
            .as_ref()
            .is_some_and(|p| p.stream_id == sid || any_publish);
        if is_publish {
            self.publishing = None;
            self.push(Output::Unpublished);
            self.deadline = None;
        } else if self.playing.as_ref().is_some_and(|p| p.stream_id == sid) {
            self.playing = None;
            self.push(Output::StopPlay);
        }
    }

    /// A command we do not know: answered (so the client can say why), then the connection
    /// closes: a client that speaks something else is not one we serve.
    fn on_unknown_command(&mut self, type_id: u8, txn: f64, name: &str) -> RtmpError {
        if txn != 0.0 {
            self.call_failed(txn, &format!("unknown command {name}"));
        }
        let what = format!("unknown command {:?}", name.escape_debug().to_string());
        self.protocol_error(type_id, what)
    }

    fn call_failed(&mut self, txn: f64, description: &str) {
        self.command(
            CSID_COMMAND,
            0,
            &[
                "_error".into(),
                txn.into(),
                Amf0Value::Null,
                Amf0Value::object([
                    ("level", "error".into()),
                    ("code", "NetConnection.Call.Failed".into()),
                    ("description", description.into()),
                ]),
            ],
        );
    }

    /// The stream name and token of a play/publish name (see [`Output::Authorize`]).
    ///
    /// Normalized by the HTTP front's `Target`, so RTMP follows the same path and token
    /// rules as every other protocol (decode once, no `..`, a repeated token parameter is
    /// refused). A name that breaks a rule yields an empty stream, which names no stream,
    /// so the request is refused rather than read some other way.
    fn stream_and_token(&self, name: &str) -> (String, Option<Vec<u8>>) {
        let (name_path, name_query) = split_query(name);
        let (app_path, app_query) = split_query(&self.app);
        let extra = app_path
            .trim_matches('/')
            .split_once('/')
            .map(|(_, rest)| rest);
        let name_path = name_path.trim_matches('/');
        let mut origin_form = String::with_capacity(name.len() + self.app.len() + 2);
        origin_form.push('/');
        if let Some(rest) = extra.filter(|r| !r.is_empty()) {
            origin_form.push_str(rest);
            origin_form.push('/');
        }
        origin_form.push_str(name_path);
        if let Some(q) = name_query {
            origin_form.push('?');
            origin_form.push_str(q);
        }
        let key = self.cfg.token_param.as_bytes();
        let mut target = Target::new();
        if target.parse(origin_form.as_bytes(), key).is_err() {
            return (String::new(), None);
        }
        let stream = target.path().trim_start_matches('/').to_string();
        let mut token = target.token().map(<[u8]>::to_vec);
        // Fall back to the tcUrl's query, then the application's.
        let tc_query = self.tc_url.as_deref().and_then(|t| split_query(t).1);
        for query in [tc_query, app_query].into_iter().flatten() {
            if token.is_some() {
                break;
            }
            if target.parse(format!("/?{query}").as_bytes(), key).is_err() {
                return (String::new(), None);
            }
            token = target.token().map(<[u8]>::to_vec);
        }
        (stream, token)
    }
}

fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac;
    use crate::media::frame::{Frame, TrackKind};
    use crate::media::h264;
    use crate::rtmp::chunk::MessageHeader;
    use crate::rtmp::handshake::{DigestLayout, HANDSHAKE_SIZE, Scheme, digest_c0c1};
    use crate::stream::live_input::{LiveInput, Timeline};

    /// What ffmpeg 5.1 sent after the handshake to play `rtmp://127.0.0.1:19350/static/live?token=test1`:
    /// connect (201 bytes in two chunks), Window Acknowledgement Size 2500000, createStream,
    /// getStreamLength and play on stream 1, Set Buffer Length 3000 ms.
    const FFMPEG_PLAY_IN: &str = concat!(
        "030000000000c91400000000020007636f6e6e656374003ff000000000000003000361707002000673746174",
        "69630008666c61736856657202000d4c4e5820392c302c3132342c320005746355726c02001d72746d703a2f",
        "2f3132372e302e302e313a31393335302f7374617469630004667061640100000c6361706162696c69746965",
        "7300402e00000000c30000000b617564696f436f646563730040afce0000000000000b766964656f436f6465",
        "637300406f800000000000000d766964656f46756e6374696f6e003ff0000000000000000009020000000000",
        "040500000000002625a0430000000000191402000c63726561746553747265616d0040000000000000000508",
        "00000000002f140000000002000f67657453747265616d4c656e677468004008000000000000050200106c69",
        "76653f746f6b656e3d74657374310800000000002d1401000000020004706c61790040100000000000000502",
        "00106c6976653f746f6b656e3d746573743100c09f4000000000004200000100000a0400030000000100000b",
        "b8",
    );

    /// Our answer, byte for byte (ffmpeg accepted it): Window Ack Size, Set Peer Bandwidth,
    /// Set Chunk Size 4096, connect _result; createStream _result 1; getStreamLength _result 0;
    /// StreamBegin 1, onStatus Play.Reset, onStatus Play.Start, |RtmpSampleAccess, onMetaData;
    /// after `unpublish_notify`: onStatus Play.UnpublishNotify, StreamEOF 1.
    const PLAY_OUT: &str = concat!(
        "020000000000040500000000002625a0020000000000050600000000002625a0020200000000000401000000",
        "0000001000030000000000be14000000000200075f726573756c74003ff0000000000000030006666d735665",
        "7202000d464d532f332c302c312c313233000c6361706162696c697469657300403f00000000000000000903",
        "00056c6576656c0200067374617475730004636f646502001d4e6574436f6e6e656374696f6e2e436f6e6e65",
        "63742e53756363657373000b6465736372697074696f6e020015436f6e6e656374696f6e2073756363656564",
        "65642e000e6f626a656374456e636f64696e670000000000000000000000090300000000001d140000000002",
        "00075f726573756c7400400000000000000005003ff00000000000000300000000001d14000000000200075f",
        "726573756c740040080000000000000500000000000000000002000000000006040000000000000000000105",
        "00000000007114010000000200086f6e537461747573000000000000000000050300056c6576656c02000673",
        "74617475730004636f64650200144e657453747265616d2e506c61792e5265736574000b6465736372697074",
        "696f6e02001b506c6179696e6720616e6420726573657474696e67206c6976652e0000090500000000006b14",
        "010000000200086f6e537461747573000000000000000000050300056c6576656c0200067374617475730004",
        "636f64650200144e657453747265616d2e506c61792e5374617274000b6465736372697074696f6e02001553",
        "74617274656420706c6179696e67206c6976652e0000090400000000001812010000000200117c52746d7053",
        "616d706c6541636365737301010101040000000000c7120100000002000a6f6e4d6574614461746108000000",
        "0900057769647468004074000000000000000668656967687400406e00000000000000096672616d65726174",
        "65004039000000000000000c766964656f636f646563696400401c000000000000000f617564696f73616d70",
        "6c65726174650040e7700000000000000d617564696f6368616e6e656c730040000000000000000006737465",
        "72656f0101000c617564696f636f64656369640040240000000000000007656e636f64657202000774657373",
        "6572610000090500000000007b14010000000200086f6e537461747573000000000000000000050300056c65",
        "76656c0200067374617475730004636f646502001e4e657453747265616d2e506c61792e556e7075626c6973",
        "684e6f74696679000b6465736372697074696f6e02001b5468652073747265616d2077617320756e7075626c",
        "69736865642e000009020000000000060400000000000100000001",
    );

    /// What ffmpeg 5.1 sent after the handshake to publish `.../static/live?token=test1`, up to
    /// its first audio frame: connect, Set Chunk Size 4096, releaseStream, FCPublish,
    /// createStream, publish, @setDataFrame, AVC sequence header, AAC sequence header, AAC frame.
    const FFMPEG_PUBLISH_IN: &str = concat!(
        "030000000000901400000000020007636f6e6e656374003ff000000000000003000361707002000673746174",
        "696300047479706502000a6e6f6e707269766174650008666c617368566572020024464d4c452f332e302028",
        "636f6d70617469626c653b204c61766635392e32372e313030290005746355726c02001d72746d703a2f2f31",
        "32372e302e302e31c33a31393335302f73746174696300000902000000000004010000000000001000430000",
        "0000002d1402000d72656c6561736553747265616d004000000000000000050200106c6976653f746f6b656e",
        "3d7465737431430000000000291402000946435075626c697368004008000000000000050200106c6976653f",
        "746f6b656e3d7465737431430000000000191402000c63726561746553747265616d00401000000000000005",
        "0800000000002e14010000000200077075626c697368004014000000000000050200106c6976653f746f6b65",
        "6e3d74657374310200046c69766504000000000135120100000002000d40736574446174614672616d650200",
        "0a6f6e4d65746144617461080000000d00086475726174696f6e004020000000000000000577696474680040",
        "74000000000000000668656967687400406e000000000000000d766964656f64617461726174650000000000",
        "0000000000096672616d6572617465004039000000000000000c766964656f636f646563696400401c000000",
        "000000000d617564696f646174617261746500405f400000000000000f617564696f73616d706c6572617465",
        "0040e7700000000000000f617564696f73616d706c6573697a65004030000000000000000673746572656f01",
        "01000c617564696f636f64656369640040240000000000000007656e636f64657202000d4c61766635392e32",
        "372e313030000866696c6573697a650000000000000000000000090600000000002d09010000001700000000",
        "0142c00dffe100186742c00dd90141fb011000000300100000030320f142a48001000568cb83cb2004000000",
        "0000070801000000af00119056e500040000000001220801000000af01de02004c61766335392e33372e3130",
        "300042551ffffffff00262d74c8410b52f6ef3e7db8e38719d65a48ab24548e4e748104dd30ff0acd06e2ec9",
        "d8df4998bfe12c93337f86d6ffd7069743d35c9398bf3be1de9bd65c4ef59ce55f53f95eb3e0b79ceb5dc571",
        "9d7b39d0b23a16271d8dc55c6cda0d9b1b62b0d6b1372b2dca76b5599ea59ea5927d6cd5f9abf48d3358e7d6",
        "cfad9f5b3eaa52fcd61aa6ba6ce9b3a2b515a9b3a6c69b1998ccce9b3a2b515a8b3a6c6663331998d15a8ad4",
        "56a2944944be494494494f14f144944944be4be494494f14f144944be4be4be494f14f14f14f144be4be17c9",
        "7de29e14514514514514514514514514c0fc3e1d4bdbbcf9f6e38e1c67596922ac91523939d2040000000000",
        "00000000000000001c",
    );

    /// Our answer: the connect reply, _result for releaseStream, FCPublish, createStream (1),
    /// onStatus NetStream.Publish.Start.
    const PUBLISH_OUT: &str = concat!(
        "020000000000040500000000002625a0020000000000050600000000002625a0020200000000000401000000",
        "0000001000030000000000be14000000000200075f726573756c74003ff0000000000000030006666d735665",
        "7202000d464d532f332c302c312c313233000c6361706162696c697469657300403f00000000000000000903",
        "00056c6576656c0200067374617475730004636f646502001d4e6574436f6e6e656374696f6e2e436f6e6e65",
        "63742e53756363657373000b6465736372697074696f6e020015436f6e6e656374696f6e2073756363656564",
        "65642e000e6f626a656374456e636f64696e6700000000000000000000000903000000000015140000000002",
        "00075f726573756c7400400000000000000005060300000000001514000000000200075f726573756c740040",
        "0800000000000005060300000000001d14000000000200075f726573756c7400401000000000000005003ff0",
        "0000000000000500000000006f14010000000200086f6e537461747573000000000000000000050300056c65",
        "76656c0200067374617475730004636f64650200174e657453747265616d2e5075626c6973682e5374617274",
        "000b6465736372697074696f6e0200166c697665206973206e6f77207075626c69736865642e000009",
    );

    /// onStatus NetStream.Play.Failed, level error, naming the reason.
    const DENIED_STATUS: &str = concat!(
        "0500000000007d14010000000200086f6e537461747573000000000000000000050300056c6576656c020005",
        "6572726f720004636f64650200154e657453747265616d2e506c61792e4661696c6564000b64657363726970",
        "74696f6e020027506c61796261636b206f66206c6976652064656e6965643a206261636b656e645f64656e69",
        "6564000009",
    );

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// x264's SPS/PPS for 320x240 Constrained Baseline at 25 fps (what the ffmpeg command of
    /// the module doc produces).
    const SPS: &[u8] = &[
        0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x42, 0xA4, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xCB, 0x83, 0xCB, 0x20];

    fn media() -> MediaInfo {
        MediaInfo {
            video: Some(
                h264::video_config(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap(),
            ),
            audio: aac::audio_config(2, 48_000, 2),
        }
    }

    /// Feeds `input` in pieces of `step` bytes the way a shell does, answering every
    /// `Authorize` with `answer`; returns the bytes transmitted after the handshake and the
    /// other outputs.
    fn run(
        conn: &mut RtmpConnection,
        input: &[u8],
        step: usize,
        answer: &dyn Fn(Action) -> AuthAnswer,
        now: Instant,
    ) -> (Vec<u8>, Vec<Output>) {
        let mut tx = Vec::new();
        let mut other = Vec::new();
        let mut kept = Vec::new();
        let mut pos = 0;
        loop {
            let end = (pos + step).min(input.len());
            kept.extend_from_slice(&input[pos..end]);
            pos = end;
            let mut again = true;
            while again {
                again = false;
                match conn.handle_input(&kept, now) {
                    Ok(used) => {
                        kept.drain(..used);
                    }
                    Err(_) => kept.clear(),
                }
                while let Some(o) = conn.poll_output() {
                    match o {
                        Output::Transmit(b) => tx.extend_from_slice(&b),
                        Output::Timeout(_) => {}
                        Output::Authorize { action, .. } => {
                            other.push(o);
                            conn.authorized(answer(action), now);
                            again = true;
                        }
                        o => other.push(o),
                    }
                }
            }
            if pos == input.len() || conn.is_closed() {
                return (tx, other);
            }
        }
    }

    /// Runs the digest handshake; returns the connection ready for chunks.
    fn handshaken(cfg: ConnectionConfig, now: Instant) -> RtmpConnection {
        let mut conn = RtmpConnection::new(cfg, now);
        let mut hs = digest_c0c1(DigestLayout::OffsetAt8, 0x33);
        hs.extend_from_slice(&[0u8; HANDSHAKE_SIZE]);
        let (tx, other) = run(&mut conn, &hs, 1000, &|_| unreachable!(), now);
        assert_eq!(tx.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert!(other.is_empty());
        assert_eq!(
            conn.handshake_scheme(),
            Some(Scheme::Digest(DigestLayout::OffsetAt8))
        );
        conn
    }

    fn allow(_: Action) -> AuthAnswer {
        AuthAnswer::Allowed { media: media() }
    }

    #[test]
    fn ffmpeg_play_session_byte_exact() {
        let now = Instant::now();
        let mut conn = handshaken(ConnectionConfig::new(1), now);
        let input = unhex(FFMPEG_PLAY_IN);
        // Odd piece sizes split chunks everywhere.
        let (tx, other) = run(&mut conn, &input, 7, &allow, now);
        let [
            Output::Authorize {
                action,
                stream,
                token,
                app,
                tc_url,
            },
            Output::StartPlay(start),
        ] = &other[..]
        else {
            panic!("unexpected outputs {other:?}");
        };
        assert_eq!(*action, Action::Play);
        assert_eq!(stream, "live");
        assert_eq!(token.as_deref(), Some(&b"test1"[..]));
        assert_eq!(app, "static");
        assert_eq!(tc_url.as_deref(), Some("rtmp://127.0.0.1:19350/static"));
        assert_eq!(start.stream_id, 1);
        assert_eq!(start.media, media());
        assert!(conn.is_playing());

        // Media: the sequence header first, then frames, relative to the first tag.
        let cfg = media().video.unwrap();
        let seq = flv::video_config_tag(&cfg, 5000);
        let chunks = conn.media_message(&seq).unwrap();
        let wire = chunks.to_vec();
        assert_eq!(
            &wire[..12],
            &[0x07, 0, 0, 0, 0, 0, seq.body.len() as u8, 9, 1, 0, 0, 0]
        );
        assert_eq!(&wire[12..], &seq.body[..]);
        let frame = flv::frame_tag(&Frame {
            track: TrackKind::Audio,
            pts: 5040 * 90,
            dts: 5040 * 90,
            keyframe: true,
            data: aac::silent_stereo_frame(),
        });
        let wire = conn.media_message(&frame).unwrap().to_vec();
        assert_eq!(&wire[..12], &[0x06, 0, 0, 40, 0, 0, 8, 8, 1, 0, 0, 0]);
        // The payload part is the shared tag body itself, not a copy.
        let parts = conn.media_message(&frame).unwrap().into_parts();
        assert_eq!(parts[1].as_ptr(), frame.body.as_ptr());

        conn.unpublish_notify();
        let mut tx = tx;
        while let Some(o) = conn.poll_output() {
            if let Output::Transmit(b) = o {
                tx.extend_from_slice(&b);
            }
        }
        assert_eq!(tx, unhex(PLAY_OUT));
        assert!(conn.media_message(&frame).is_none());
    }

    #[test]
    fn ffmpeg_publish_session_byte_exact() {
        let now = Instant::now();
        let mut conn = handshaken(ConnectionConfig::new(2), now);
        let input = unhex(FFMPEG_PUBLISH_IN);
        let (tx, other) = run(&mut conn, &input, 100, &allow, now);
        assert_eq!(tx, unhex(PUBLISH_OUT));
        let mut it = other.into_iter();
        let Some(Output::Authorize {
            action: Action::Publish,
            stream,
            token,
            ..
        }) = it.next()
        else {
            panic!("authorize expected");
        };
        assert_eq!(
            (stream.as_str(), token.as_deref()),
            ("live", Some(&b"test1"[..]))
        );
        assert!(matches!(
            it.next(),
            Some(Output::PublishStarted { stream_id: 1, .. })
        ));
        let Some(Output::Published(MediaFrame::Config(info))) = it.next() else {
            panic!("video config expected");
        };
        assert_eq!(info.video, media().video);
        let Some(Output::Published(MediaFrame::Config(info))) = it.next() else {
            panic!("audio config expected");
        };
        let audio = info.audio.unwrap();
        assert_eq!(
            (audio.sample_rate, audio.channels, audio.object_type),
            (48_000, 2, 2)
        );
        let Some(Output::Published(MediaFrame::Frame(f))) = it.next() else {
            panic!("audio frame expected");
        };
        assert_eq!((f.track, f.pts, f.data.len()), (TrackKind::Audio, 0, 288));
        assert!(it.next().is_none());

        // FCUnpublish ends the publish once; deleteStream after it changes nothing.
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(4096).unwrap();
        let mut more = Vec::new();
        for (name, sid) in [("FCUnpublish", 0), ("deleteStream", 0)] {
            let body = amf0::encode_all(&[
                name.into(),
                6.0.into(),
                Amf0Value::Null,
                if name == "deleteStream" {
                    1.0.into()
                } else {
                    "live?token=test1".into()
                },
            ]);
            let h = MessageHeader {
                csid: 3,
                timestamp: 0,
                type_id: 20,
                stream_id: sid,
            };
            enc.write(&h, &body, &mut more).unwrap();
        }
        let (_, other) = run(&mut conn, &more, 1000, &allow, now);
        assert!(matches!(&other[..], [Output::Unpublished]), "{other:?}");
        assert!(!conn.is_publishing());
    }

    #[test]
    fn denied_play_names_the_reason_then_closes() {
        let now = Instant::now();
        for (level, want) in [(DenyLevel::Error, "error"), (DenyLevel::Warning, "warning")] {
            let mut cfg = ConnectionConfig::new(3);
            cfg.deny_level = level;
            let mut conn = handshaken(cfg, now);
            let input = unhex(FFMPEG_PLAY_IN);
            let deny = |_| AuthAnswer::Denied {
                reason: "backend_denied",
            };
            let (tx, other) = run(&mut conn, &input, 50, &deny, now);
            assert!(matches!(
                other.last(),
                Some(Output::Close(CloseReason::Denied {
                    reason: "backend_denied"
                }))
            ));
            let mut status = unhex(DENIED_STATUS);
            if level == DenyLevel::Warning {
                // Same message with a 7-byte level: the length fields grow by 2.
                let at = status.windows(5).position(|w| w == b"error").unwrap();
                status.splice(at - 2..at + 5, [0, 7].into_iter().chain(*b"warning"));
                status[6] += 2;
            }
            assert!(tx.ends_with(&status), "{want}");
            assert!(conn.is_closed());
            assert_eq!(conn.handle_input(b"more", now), Ok(4));
        }
    }

    fn message(type_id: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let h = MessageHeader {
            csid: 3,
            timestamp: 0,
            type_id,
            stream_id,
        };
        ChunkEncoder::new().write(&h, payload, &mut out).unwrap();
        out
    }

    #[test]
    fn ping_acknowledgement_and_unknown_commands() {
        let now = Instant::now();
        let mut conn = handshaken(ConnectionConfig::new(4), now);
        let mut input = message(WINDOW_ACK_SIZE, 0, &100u32.to_be_bytes());
        input.extend(message(USER_CONTROL, 0, &[0, 6, 0, 0, 0x12, 0x34]));
        let (tx, _) = run(&mut conn, &input, 1000, &allow, now);
        // The handshake alone crossed the 100-byte window: Acknowledgement (type 3) of the
        // 3073 + 16 + 18 bytes received, then the ping response (event 7, same timestamp).
        let mut want = vec![2, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0];
        want.extend_from_slice(&3107u32.to_be_bytes());
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 7, 0, 0, 0x12, 0x34]);
        assert_eq!(tx, want);
        // 90 more bytes stay inside the window; 112 more cross it.
        let (tx, _) = run(
            &mut conn,
            &message(flv::TYPE_AUDIO, 1, &[0xAF; 78]),
            1000,
            &allow,
            now,
        );
        assert!(tx.is_empty());
        let (tx, _) = run(
            &mut conn,
            &message(flv::TYPE_AUDIO, 1, &[0xAF; 100]),
            1000,
            &allow,
            now,
        );
        let mut want = vec![2, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0];
        want.extend_from_slice(&(3107u32 + 90 + 112).to_be_bytes());
        assert_eq!(tx, want);
        // An unknown command with a transaction id gets _error, then the connection closes.
        let body = amf0::encode_all(&["frobnicate".into(), 9.0.into(), Amf0Value::Null]);
        let (tx, other) = run(
            &mut conn,
            &message(COMMAND_AMF0, 0, &body),
            1000,
            &allow,
            now,
        );
        let values = amf0::decode_all(&tx[12..]).unwrap();
        assert_eq!(values[0].as_str(), Some("_error"));
        assert_eq!(values[1].as_number(), Some(9.0));
        assert!(conn.is_closed());
        let Some(Output::Close(CloseReason::Error(e))) = other.last() else {
            panic!("close expected: {other:?}");
        };
        assert!(
            e.to_string().contains("unknown command \"frobnicate\""),
            "{e}"
        );
    }

    #[test]
    fn amf_garbage_and_nameless_commands_close_the_connection() {
        let now = Instant::now();
        let mut good = amf0::encode_all(&["createStream".into(), 2.0.into(), Amf0Value::Null]);
        good.push(0xFE); // no such AMF0 marker
        for body in [good, amf0::encode_all(&[1.0.into()]), vec![0x02, 0xFF]] {
            let mut conn = handshaken(ConnectionConfig::new(9), now);
            let (_, other) = run(
                &mut conn,
                &message(COMMAND_AMF0, 0, &body),
                1000,
                &allow,
                now,
            );
            assert!(conn.is_closed(), "{body:02x?}");
            assert!(
                matches!(
                    other.last(),
                    Some(Output::Close(CloseReason::Error(
                        RtmpError::Protocol { .. }
                    )))
                ),
                "{other:?}"
            );
        }
    }

    #[test]
    fn refused_publishes_are_level_error_and_in_use_is_bad_name() {
        let now = Instant::now();
        for (answer, code) in [
            (
                AuthAnswer::Denied {
                    reason: "backend_denied",
                },
                "NetStream.Publish.Failed",
            ),
            (AuthAnswer::InUse, "NetStream.Publish.BadName"),
        ] {
            let mut cfg = ConnectionConfig::new(10);
            // The play-only level must not soften a publish refusal.
            cfg.deny_level = DenyLevel::Warning;
            let mut conn = handshaken(cfg, now);
            let (tx, other) = run(
                &mut conn,
                &unhex(FFMPEG_PUBLISH_IN),
                4096,
                &|_| answer.clone(),
                now,
            );
            assert!(matches!(
                other.last(),
                Some(Output::Close(CloseReason::Denied { .. }))
            ));
            let text = String::from_utf8_lossy(&tx);
            assert!(text.contains(code), "{code}");
            assert!(text.contains("error") && !text.contains("warning"));
        }
    }

    #[test]
    fn stream_names_and_tokens() {
        let now = Instant::now();
        let conn_with = |app: &str, tc: Option<&str>| {
            let mut c = RtmpConnection::new(ConnectionConfig::new(5), now);
            c.app = app.to_string();
            c.tc_url = tc.map(str::to_string);
            c
        };
        let c = conn_with("a/b", Some("rtmp://h/a/b"));
        // `+` stays `+`, as on every protocol (RFC 3986 query, base64 tokens survive).
        assert_eq!(
            c.stream_and_token("c?x=1&token=t%41+b"),
            ("b/c".to_string(), Some(b"tA+b".to_vec()))
        );
        // The shared rules: a repeated token or a `..` names no stream (refused).
        assert_eq!(
            c.stream_and_token("c?token=a&token=b"),
            (String::new(), None)
        );
        assert_eq!(c.stream_and_token("../c?token=a"), (String::new(), None));
        assert_eq!(
            c.stream_and_token("auth%2Dcheck"),
            ("b/auth-check".to_string(), None)
        );
        let c = conn_with("static", Some("rtmp://h/static?token=fromtc"));
        assert_eq!(
            c.stream_and_token("auth-check"),
            ("auth-check".to_string(), Some(b"fromtc".to_vec()))
        );
        let c = conn_with("static?token=fromapp", None);
        assert_eq!(
            c.stream_and_token("x/y"),
            ("x/y".to_string(), Some(b"fromapp".to_vec()))
        );
        let c = conn_with("static", None);
        assert_eq!(c.stream_and_token("live"), ("live".to_string(), None));
    }

    #[test]
    fn timeouts() {
        let now = Instant::now();
        let mut conn = RtmpConnection::new(ConnectionConfig::new(6), now);
        let Some(Output::Timeout(at)) = conn.poll_output() else {
            panic!("timeout expected");
        };
        assert_eq!(at, now + Duration::from_secs(10));
        assert!(conn.poll_output().is_none());
        conn.handle_timeout(now + Duration::from_secs(5));
        assert!(!conn.is_closed());
        conn.handle_timeout(at);
        assert!(matches!(
            conn.poll_output(),
            Some(Output::Close(CloseReason::Timeout))
        ));
        // A player has no idle timeout.
        let mut conn = handshaken(ConnectionConfig::new(7), now);
        run(&mut conn, &unhex(FFMPEG_PLAY_IN), 1000, &allow, now);
        conn.handle_timeout(now + Duration::from_secs(3600));
        assert!(!conn.is_closed());
    }

    #[test]
    fn publisher_with_other_codec_is_refused() {
        let now = Instant::now();
        let mut conn = handshaken(ConnectionConfig::new(8), now);
        let input = unhex(FFMPEG_PUBLISH_IN);
        run(&mut conn, &input, 4096, &allow, now);
        let mut mp3 = message(flv::TYPE_AUDIO, 1, &[0x2F, 0xFF, 0xFB]);
        mp3[0] = 0x04; // any chunk stream
        let (tx, other) = run(&mut conn, &mp3, 100, &allow, now);
        assert!(String::from_utf8_lossy(&tx).contains("MP3"));
        assert!(matches!(
            &other[..],
            [
                Output::Unpublished,
                Output::Close(CloseReason::Error(RtmpError::Media(_)))
            ]
        ));
    }

    #[test]
    fn mutated_sessions_never_panic() {
        let now = Instant::now();
        let mut base = digest_c0c1(DigestLayout::OffsetAt8, 0x33);
        base.extend_from_slice(&[0u8; HANDSHAKE_SIZE]);
        let handshake_len = base.len();
        let play = {
            let mut v = base.clone();
            v.extend(unhex(FFMPEG_PLAY_IN));
            v
        };
        let publish = {
            let mut v = base.clone();
            v.extend(unhex(FFMPEG_PUBLISH_IN));
            v
        };
        let mut x: u64 = 0xDEAD_BEEF_CAFE_F00D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..3000 {
            let mut input = if i % 2 == 0 {
                play.clone()
            } else {
                publish.clone()
            };
            for _ in 0..1 + next() % 8 {
                let at = handshake_len + (next() as usize) % (input.len() - handshake_len);
                match next() % 4 {
                    0 => input[at] = next() as u8,
                    1 => input[at] ^= 1 << (next() % 8),
                    2 => {
                        input.insert(at, next() as u8);
                    }
                    _ if input.len() > handshake_len + 1 => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            if i % 10 == 0 {
                // Pure garbage after the handshake.
                input.truncate(handshake_len);
                input.extend((0..next() % 2000).map(|_| next() as u8));
            }
            let mut cfg = ConnectionConfig::new(i);
            cfg.limits.max_message_size = 1 << 16;
            let mut conn = RtmpConnection::new(cfg, now);
            let step = 1 + (next() as usize) % 300;
            let answer = |a: Action| match a {
                Action::Play => AuthAnswer::Allowed { media: media() },
                Action::Publish => AuthAnswer::Allowed {
                    media: MediaInfo::default(),
                },
            };
            let (_, outputs) = run(&mut conn, &input, step, &answer, now);
            // Whatever a mutated publisher gets through goes down the ingest pipeline too.
            let mut live = LiveInput::new(0, 1, 1000, Timeline::default());
            let mut events = Vec::new();
            for o in outputs {
                match o {
                    Output::Published(MediaFrame::Config(info)) => live.configure(info),
                    Output::Published(MediaFrame::Frame(f)) => live.push(f, 0, &mut events),
                    _ => {}
                }
            }
            live.finish(&mut events);
            let tag = flv::video_config_tag(&media().video.unwrap(), 0);
            let _ = conn.media_message(&tag);
            conn.unpublish_notify();
            conn.peer_closed();
            while conn.poll_output().is_some() {}
        }
    }
}
