//! The RTMP client side of a pull (Adobe RTMP 1.0), sans-IO: simple handshake (§5.2),
//! `connect`, `createStream`, `play` (§7.2), then the origin's FLV tags back to frames
//! through the same `rtmp::flv::FlvDemuxer` publishers go through.
//!
//! The shell writes [`RtmpPull::take_output`], feeds what it reads to
//! [`RtmpPull::handle_input`] and takes [`RtmpPull::poll_media`]. Anything the origin
//! says that ends the play (`NetStream.Play.StreamNotFound`, `_error`, `StreamEOF`,
//! `UnpublishNotify`), a malformed chunk or an oversized message is an error: the source
//! failed. Never does: sockets, clocks.

use crate::rtmp::amf0::{self, Amf0Value};
use crate::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, Message};
use crate::rtmp::flv::{self, FlvDemuxer, MediaFrame};
use crate::rtmp::handshake::{HANDSHAKE_SIZE, RTMP_VERSION};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;

const SET_CHUNK_SIZE: u8 = 1;
const ACKNOWLEDGEMENT: u8 = 3;
const USER_CONTROL: u8 = 4;
const WINDOW_ACK_SIZE: u8 = 5;
const COMMAND_AMF0: u8 = 20;
const COMMAND_AMF3: u8 = 17;
const AGGREGATE: u8 = 22;
const STREAM_EOF: u16 = 1;
const SET_BUFFER_LENGTH: u16 = 3;
const PING_REQUEST: u16 = 6;
const PING_RESPONSE: u16 = 7;
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
/// Our outgoing chunk size (commands only: small).
const OUR_CHUNK_SIZE: u32 = 4096;
/// Media frames decoded but not yet taken; more is a shell that stopped reading.
const MAX_QUEUED: usize = 1024;
const TXN_CONNECT: f64 = 1.0;
const TXN_CREATE_STREAM: f64 = 2.0;

/// Why a pull over RTMP failed.
#[derive(Debug, Clone, PartialEq)]
pub enum RtmpPullError {
    Handshake(String),
    Chunk(String),
    /// The origin refused or ended the play (its status code or command).
    Refused(String),
    Media(String),
    Protocol(&'static str),
}

impl fmt::Display for RtmpPullError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtmpPullError::Handshake(s) => write!(f, "handshake: {s}"),
            RtmpPullError::Chunk(s) => write!(f, "chunk stream: {s}"),
            RtmpPullError::Refused(s) => write!(f, "origin refused or ended the play: {s}"),
            RtmpPullError::Media(s) => write!(f, "media: {s}"),
            RtmpPullError::Protocol(s) => write!(f, "protocol: {s}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// C0+C1 sent; waiting for S0+S1+S2.
    Handshake,
    Connecting,
    CreatingStream,
    /// `play` sent on this message stream.
    Playing(u32),
}

pub struct RtmpPull {
    state: State,
    tx: Vec<u8>,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    demux: FlvDemuxer,
    app: String,
    tc_url: String,
    name: String,
    media: VecDeque<MediaFrame>,
    last_ack: u64,
    peer_window: Option<u32>,
    started: bool,
}

impl RtmpPull {
    /// A client that will play `name` from application `app` of `tc_url`
    /// (`rtmp://host:port/app`); C0+C1 are queued at once. `epoch_ms` is C1's time field,
    /// `seed` fills its random part.
    pub fn new(tc_url: &str, app: &str, name: &str, epoch_ms: u32, seed: u64) -> Self {
        let mut tx = Vec::with_capacity(1 + HANDSHAKE_SIZE);
        tx.push(RTMP_VERSION);
        tx.extend_from_slice(&epoch_ms.to_be_bytes());
        tx.extend_from_slice(&[0; 4]);
        let mut rng = seed | 1;
        while tx.len() < 1 + HANDSHAKE_SIZE {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            tx.push(rng as u8);
        }
        RtmpPull {
            state: State::Handshake,
            tx,
            decoder: ChunkDecoder::new(ChunkLimits::default()),
            encoder: ChunkEncoder::new(),
            demux: FlvDemuxer::new(),
            app: app.to_owned(),
            tc_url: tc_url.to_owned(),
            name: name.to_owned(),
            media: VecDeque::new(),
            last_ack: 0,
            peer_window: None,
            started: false,
        }
    }

    /// Bytes to write to the origin (moved out; empty when there are none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tx)
    }

    /// The origin said `NetStream.Play.Start` (or media arrived).
    pub fn is_playing(&self) -> bool {
        self.started
    }

    /// The next decoded configuration or frame.
    pub fn poll_media(&mut self) -> Option<MediaFrame> {
        self.media.pop_front()
    }

    /// Consumes what it can of `buf` (whole handshake packets and chunks only); returns the
    /// bytes consumed.
    pub fn handle_input(&mut self, buf: &[u8]) -> Result<usize, RtmpPullError> {
        let mut pos = 0;
        if self.state == State::Handshake {
            const S012: usize = 1 + 2 * HANDSHAKE_SIZE;
            let Some(s) = buf.get(..S012) else {
                return Ok(0);
            };
            if s[0] != RTMP_VERSION {
                return Err(RtmpPullError::Handshake(format!("version {}", s[0])));
            }
            // C2 echoes S1 (§5.2.4).
            self.tx.extend_from_slice(&s[1..1 + HANDSHAKE_SIZE]);
            self.send_connect();
            self.state = State::Connecting;
            pos = S012;
        }
        while self.media.len() < MAX_QUEUED {
            let (used, message) = self
                .decoder
                .decode(&buf[pos..])
                .map_err(|e| RtmpPullError::Chunk(e.to_string()))?;
            if used == 0 {
                break;
            }
            pos += used;
            if let Some(m) = message {
                self.on_message(m)?;
            }
        }
        self.maybe_acknowledge();
        Ok(pos)
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) {
        let message = (csid, type_id, stream_id);
        self.encoder.write_unstamped(message, payload, &mut self.tx);
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let body = amf0::encode_all(values);
        self.send(CSID_COMMAND, COMMAND_AMF0, stream_id, &body);
    }

    fn user_control(&mut self, event: u16, args: &[u32]) {
        let mut p = Vec::with_capacity(10);
        p.extend_from_slice(&event.to_be_bytes());
        for a in args {
            p.extend_from_slice(&a.to_be_bytes());
        }
        self.send(CSID_CONTROL, USER_CONTROL, 0, &p);
    }

    fn send_connect(&mut self) {
        self.send(
            CSID_CONTROL,
            SET_CHUNK_SIZE,
            0,
            &OUR_CHUNK_SIZE.to_be_bytes(),
        );
        // Valid: below the 31-bit maximum.
        let _ = self.encoder.set_chunk_size(OUR_CHUNK_SIZE);
        let object = Amf0Value::object([
            ("app", self.app.as_str().into()),
            ("flashVer", "LNX 9,0,124,2".into()),
            ("tcUrl", self.tc_url.as_str().into()),
            ("fpad", false.into()),
            ("capabilities", 15.0.into()),
            ("audioCodecs", 4071.0.into()),
            ("videoCodecs", 252.0.into()),
            ("videoFunction", 1.0.into()),
        ]);
        self.command(0, &["connect".into(), TXN_CONNECT.into(), object]);
    }

    fn on_message(&mut self, m: Message) -> Result<(), RtmpPullError> {
        let p = &m.payload;
        let decoder_control = self.decoder.apply_control(m.type_id, p);
        if decoder_control.map_err(|k| RtmpPullError::Chunk(k.to_string()))? {
            return Ok(());
        }
        let be32 = |p: &[u8]| {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match m.type_id {
            WINDOW_ACK_SIZE => self.peer_window = be32(p).filter(|&w| w > 0),
            USER_CONTROL if p.len() >= 6 => {
                let event = u16::from_be_bytes([p[0], p[1]]);
                let value = be32(&p[2..]).unwrap_or(0);
                match event {
                    PING_REQUEST => self.user_control(PING_RESPONSE, &[value]),
                    STREAM_EOF if self.state == State::Playing(value) && self.started => {
                        return Err(RtmpPullError::Refused("StreamEOF".into()));
                    }
                    _ => {}
                }
            }
            flv::TYPE_AUDIO | flv::TYPE_VIDEO => self.on_media(&m, m.type_id, m.timestamp, p)?,
            AGGREGATE => {
                // A damaged aggregate loses only itself.
                for part in flv::split_aggregate(m.timestamp, p).unwrap_or_default() {
                    if matches!(part.type_id, flv::TYPE_AUDIO | flv::TYPE_VIDEO) {
                        self.on_media(&m, part.type_id, part.timestamp_ms, &part.body)?;
                    }
                }
            }
            COMMAND_AMF0 => self.on_command(p)?,
            COMMAND_AMF3 if p.len() > 1 => self.on_command(&p[1..])?,
            _ => {}
        }
        Ok(())
    }

    fn on_media(
        &mut self,
        m: &Message,
        type_id: u8,
        timestamp: u32,
        body: &Bytes,
    ) -> Result<(), RtmpPullError> {
        if self.state != State::Playing(m.stream_id) {
            return Ok(());
        }
        self.started = true;
        let parsed = if type_id == flv::TYPE_VIDEO {
            self.demux.video(timestamp, body)
        } else {
            self.demux.audio(timestamp, body)
        };
        match parsed {
            Ok(Some(frame)) => self.media.push_back(frame),
            Ok(None) => {}
            Err(e) if e.is_fatal() => return Err(RtmpPullError::Media(e.to_string())),
            // A damaged tag loses only itself.
            Err(_) => {}
        }
        Ok(())
    }

    fn on_command(&mut self, body: &[u8]) -> Result<(), RtmpPullError> {
        let values = amf0::decode_all(body)
            .map_err(|_| RtmpPullError::Protocol("undecodable AMF0 command"))?;
        let name = values.first().and_then(Amf0Value::as_str).unwrap_or("");
        let txn = values.get(1).and_then(Amf0Value::as_number).unwrap_or(0.0);
        match (name, self.state) {
            ("_result", State::Connecting) if txn == TXN_CONNECT => {
                self.command(
                    0,
                    &[
                        "createStream".into(),
                        TXN_CREATE_STREAM.into(),
                        Amf0Value::Null,
                    ],
                );
                self.state = State::CreatingStream;
            }
            ("_result", State::CreatingStream) if txn == TXN_CREATE_STREAM => {
                let id = values
                    .get(3)
                    .and_then(Amf0Value::as_number)
                    .filter(|n| (1.0..=f64::from(u32::MAX)).contains(n))
                    .ok_or(RtmpPullError::Protocol("createStream without a stream id"))?
                    as u32;
                let name = self.name.clone();
                self.user_control(SET_BUFFER_LENGTH, &[id, 3000]);
                self.command(
                    id,
                    &[
                        "play".into(),
                        0.0.into(),
                        Amf0Value::Null,
                        name.into(),
                        (-2000.0).into(),
                    ],
                );
                self.state = State::Playing(id);
            }
            ("_error", _) => {
                let why = status_code(&values).unwrap_or("_error").to_owned();
                return Err(RtmpPullError::Refused(why));
            }
            ("onStatus", State::Playing(_)) => self.on_status(&values)?,
            _ => {}
        }
        Ok(())
    }

    fn on_status(&mut self, values: &[Amf0Value]) -> Result<(), RtmpPullError> {
        let code = status_code(values).unwrap_or("");
        match code {
            "NetStream.Play.Start" => self.started = true,
            "NetStream.Play.StreamNotFound"
            | "NetStream.Play.Failed"
            | "NetStream.Play.Stop"
            | "NetStream.Play.UnpublishNotify"
            | "NetStream.Failed" => return Err(RtmpPullError::Refused(code.to_owned())),
            _ => {}
        }
        Ok(())
    }

    /// Acknowledgement (§5.4.3) each time the origin's window of bytes has arrived.
    fn maybe_acknowledge(&mut self) {
        let due = self
            .decoder
            .acknowledgement_due(self.peer_window, &mut self.last_ack);
        if let Some(seq) = due {
            self.send(CSID_CONTROL, ACKNOWLEDGEMENT, 0, &seq.to_be_bytes());
        }
    }
}

/// The `code` of a status object (the fourth value of `onStatus` / `_error`).
fn status_code(values: &[Amf0Value]) -> Option<&str> {
    values.get(3)?.get("code")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::MediaInfo;
    use crate::rtmp::session::{AuthAnswer, ConnectionConfig, Output, RtmpConnection};
    use std::time::Instant;

    /// Runs the client against tessera's own RTMP server core, byte for byte: what one
    /// writes the other reads. Returns the client and the server's outputs.
    fn converse(client: &mut RtmpPull, server: &mut RtmpConnection, now: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        let mut to_server = Vec::new();
        let mut to_client = Vec::new();
        for _ in 0..50 {
            to_server.extend(client.take_output());
            let used = server
                .handle_input(&to_server, now)
                .expect("server takes it");
            to_server.drain(..used);
            while let Some(o) = server.poll_output() {
                match o {
                    Output::Transmit(b) => to_client.extend_from_slice(&b),
                    Output::Authorize { .. } => {
                        server.authorized(
                            AuthAnswer::Allowed {
                                media: MediaInfo::default(),
                            },
                            now,
                        );
                    }
                    other => outputs.push(other),
                }
            }
            let used = client.handle_input(&to_client).expect("client takes it");
            to_client.drain(..used);
        }
        outputs
    }

    #[test]
    fn handshakes_connects_and_plays_against_the_server_core() {
        let now = Instant::now();
        let mut server = RtmpConnection::new(ConnectionConfig::new(7), now);
        let mut client = RtmpPull::new("rtmp://127.0.0.1:1935/live", "live", "cam?token=t", 0, 3);
        let outputs = converse(&mut client, &mut server, now);
        assert!(server.is_playing(), "the server plays: {outputs:?}");
        assert!(client.is_playing(), "the client saw NetStream.Play.Start");
    }

    #[test]
    fn media_tags_become_frames_and_configs() {
        let now = Instant::now();
        let mut server = RtmpConnection::new(ConnectionConfig::new(7), now);
        let mut client = RtmpPull::new("rtmp://h/live", "live", "cam", 0, 3);
        converse(&mut client, &mut server, now);
        let mut source = crate::source::fake::FakeSource::new(0, 25);
        let mut frames = Vec::new();
        source.poll(90_000, &mut frames);
        let info = source.media_info();
        let mut wire = Vec::new();
        let mut tags = vec![
            crate::mux::flv::video_config_tag(info.video.as_ref().unwrap(), 0),
            crate::mux::flv::audio_config_tag(info.audio.as_ref().unwrap(), 0),
        ];
        tags.extend(frames.iter().map(crate::mux::flv::frame_tag));
        for tag in &tags {
            let chunks = server.media_message(tag).expect("playing");
            wire.extend(chunks.to_vec());
        }
        // Fed in awkward pieces: whole chunks only are consumed.
        let mut buf = Vec::new();
        for piece in wire.chunks(333) {
            buf.extend_from_slice(piece);
            let used = client.handle_input(&buf).unwrap();
            buf.drain(..used);
        }
        let mut configs = 0;
        let mut got = Vec::new();
        while let Some(m) = client.poll_media() {
            match m {
                MediaFrame::Config(_) => configs += 1,
                MediaFrame::Frame(f) => got.push(f),
            }
        }
        assert_eq!(configs, 2);
        assert_eq!(got.len(), frames.len());
        assert_eq!(got[0].data, frames[0].data);
        assert!(got[0].keyframe);
    }

    #[test]
    fn refusals_and_garbage_are_errors() {
        let now = Instant::now();
        let mut server = RtmpConnection::new(ConnectionConfig::new(7), now);
        let mut client = RtmpPull::new("rtmp://h/live", "live", "", 0, 3);
        let mut to_client = Vec::new();
        let mut result = Ok(0);
        for _ in 0..20 {
            let bytes = client.take_output();
            let _ = server.handle_input(&bytes, now);
            while let Some(o) = server.poll_output() {
                if let Output::Transmit(b) = o {
                    to_client.extend_from_slice(&b);
                }
            }
            result = client.handle_input(&to_client);
            if let Ok(n) = result {
                to_client.drain(..n);
            } else {
                break;
            }
        }
        assert_eq!(
            result,
            Err(RtmpPullError::Refused(
                "NetStream.Play.StreamNotFound".into()
            ))
        );
        let mut client = RtmpPull::new("rtmp://h/live", "live", "x", 0, 3);
        let garbage = vec![9u8; 4000];
        assert!(matches!(
            client.handle_input(&garbage),
            Err(RtmpPullError::Handshake(_))
        ));
    }
}
