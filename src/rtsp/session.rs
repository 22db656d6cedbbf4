//! One RTSP/1.0 playback connection as a sans-IO state machine (RFC 2326 §A.1 server state
//! machine; methods §10; headers §12).
//!
//! Owns: what each request means (OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN,
//! GET_PARAMETER/SET_PARAMETER as keep-alive), the explicit authorization round trip
//! ([`Output::Authorize`] → [`RtspConnection::authorized`]), the RTSP session (id, timeout,
//! tracks set up, Init → Ready → Playing), transport negotiation (§12.39: interleaved TCP or
//! UDP unicast), and the per-track RTP starting values (SSRC, seq, rtptime) that `RTP-Info`
//! (§12.33) announces and the shell's packetizers start from.
//!
//! Never does: sockets, clocks (time is passed in), OS randomness (ids come from a seeded
//! generator in the config), media sending, or the authorization decision itself. Input is
//! pushed in with [`RtspConnection::handle_input`], outputs are pulled with
//! [`RtspConnection::poll_output`], in the str0m style.
//!
//! Authorization is per connection and per stream path: once DESCRIBE (or a first SETUP) of a
//! stream is allowed, SETUP/PLAY URLs of that stream are accepted with or without the token,
//! with or without a track suffix, since clients derive them from `Content-Base`, which
//! carries no token.

use super::message::{
    self, MessageErrorKind, Method, Parsed, Request, RequestUrl, RtspLimits, Status,
};
use super::sdp;
use crate::media::frame::{MediaInfo, TrackKind};
use crate::rtp::{self, RtpParams};
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Methods we implement, for `Public` (§12.28) and `Allow` (§12.4).
pub const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// A pair of UDP ports (RTP, RTCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortPair {
    pub rtp: u16,
    pub rtcp: u16,
}

/// Per-connection configuration, built by the shell.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Query parameter that carries the token (`auth_token NAME;`, default `token`).
    pub token_param: String,
    /// `Server` header value.
    pub server: &'static str,
    /// Session timeout (§12.37 `timeout=`): the connection closes after this long without a
    /// request, an interleaved frame from the client, or a [`RtspConnection::keepalive`].
    pub session_timeout: Duration,
    /// How long a new connection may take to send its first request; silence (or a request
    /// never finished) past it closes the connection, so idle connections cannot pile up.
    /// After the first request, `session_timeout` applies.
    pub first_request_timeout: Duration,
    /// The server's UDP ports per track id (`[video, audio]`), which the shell has bound and
    /// sends from. `None` refuses UDP transport with 461, leaving interleaved TCP.
    pub udp_server_ports: Option<[PortPair; 2]>,
    pub limits: RtspLimits,
    /// Seed for session ids, SSRCs, initial sequence numbers and RTP timestamps. Must differ
    /// per connection (e.g. a shard-local counter mixed with the accept time).
    pub seed: u64,
}

impl ConnectionConfig {
    /// Defaults: token parameter `token`, server `tessera`, 60 s timeout, 10 s for the first
    /// request, no UDP.
    pub fn new(seed: u64) -> Self {
        ConnectionConfig {
            token_param: "token".to_string(),
            server: "tessera",
            session_timeout: Duration::from_secs(60),
            first_request_timeout: Duration::from_secs(10),
            udp_server_ports: None,
            limits: RtspLimits::default(),
            seed,
        }
    }
}

/// The shard authorizer's answer to [`Output::Authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthAnswer {
    /// Play allowed; `media` describes the stream's tracks (must have at least one).
    Allowed { media: MediaInfo },
    /// Refused: answered `403 Forbidden` with `x-deny-reason: REASON`, then the connection
    /// closes (spec §5).
    Denied { reason: &'static str },
    /// No such stream: `404 Not Found`; the connection stays open.
    NotFound,
}

/// Why the shell should close the connection once pending output is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Teardown,
    Denied {
        reason: &'static str,
    },
    /// Unframeable input; the status was sent.
    ProtocolError(Status),
    SessionTimeout,
}

/// How one track's packets reach the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackTransport {
    /// Interleaved in the RTSP TCP connection (§10.12): RTP on `rtp_channel`, RTCP on
    /// `rtcp_channel`.
    Interleaved { rtp_channel: u8, rtcp_channel: u8 },
    /// UDP to the client's address (the TCP peer's IP: a `destination=` parameter is never
    /// honoured) at `client`, sent from `server`.
    Udp { client: PortPair, server: PortPair },
}

/// One track to send after PLAY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayTrack {
    pub kind: TrackKind,
    /// `trackID=N` of the SDP.
    pub track_id: u32,
    pub transport: TrackTransport,
    /// Where the packetizer starts: announced in `RTP-Info`.
    pub rtp: RtpParams,
}

/// PLAY was accepted: start (or resume) sending media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayStart {
    pub session_id: String,
    pub stream: String,
    /// The decoder configurations the packetizers need (H.264 SPS/PPS).
    pub media: MediaInfo,
    /// Tracks in track-id order. The shell builds one packetizer per track from its `rtp` and
    /// gives them all the same origin (`RtpSender::set_origin_pts` with the pts of the first
    /// frame it will send, of any track), so the rtptimes announced in `RTP-Info` name one
    /// media instant.
    pub tracks: Vec<PlayTrack>,
    /// PLAY after PAUSE: keep the existing packetizers (sequence numbers and timestamps
    /// continue); `rtp` is the initial value, not the current one. No `RTP-Info` was sent.
    pub resumed: bool,
}

/// What the state machine asks of the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Bytes to write on the TCP connection (responses), in order, before any media that a
    /// later output starts.
    Transmit(Vec<u8>),
    /// A request needs a decision for `stream` (percent-decoded path without leading `/`,
    /// track suffix removed) with the token from the URL query (decoded). Answer with
    /// [`RtspConnection::authorized`]; no further input is consumed until then.
    Authorize {
        stream: String,
        token: Option<Vec<u8>>,
        user_agent: Option<String>,
    },
    /// PLAY accepted (its response precedes this output): start sending media.
    Play(PlayStart),
    /// PAUSE accepted: stop sending media, keep the packetizers.
    Pause,
    /// Close the connection after writing every earlier `Transmit`.
    Close(CloseReason),
    /// Call [`RtspConnection::handle_timeout`] at this instant.
    Timeout(Instant),
}

/// A framing error that ended the connection, with its position in the connection's byte
/// stream. The error response and [`Output::Close`] are queued as well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtspError {
    pub kind: MessageErrorKind,
    /// Offset from the first byte the connection received.
    pub offset: u64,
}

impl fmt::Display for RtspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtsp: {} at connection byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for RtspError {}

/// The per-connection RTSP state machine.
#[derive(Debug)]
pub struct RtspConnection {
    cfg: ConnectionConfig,
    rng: SplitMix64,
    outputs: VecDeque<Output>,
    deadline: Instant,
    /// The current deadline has been reported by `poll_output`.
    timeout_reported: bool,
    closed: bool,
    /// Bytes consumed so far (error offsets).
    consumed: u64,
    /// The request waiting for `authorized()`.
    pending: Option<PendingRequest>,
    authorized: Option<Authorized>,
    session: Option<Session>,
}

#[derive(Debug)]
struct Authorized {
    stream: String,
    media: MediaInfo,
}

#[derive(Debug)]
struct Session {
    id: String,
    stream: String,
    media: MediaInfo,
    /// Sorted by track id.
    tracks: Vec<SetupTrack>,
    state: SessionState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionState {
    /// Tracks set up, never played.
    Ready,
    Playing,
    Paused,
}

#[derive(Debug)]
struct SetupTrack {
    track_id: u32,
    kind: TrackKind,
    /// The SETUP request-URI as sent: echoed in `RTP-Info` so the client can match it.
    url: String,
    transport: TrackTransport,
    rtp: RtpParams,
}

/// The parts of a request the machine keeps across the authorization round trip.
#[derive(Debug)]
struct PendingRequest {
    method: Method,
    cseq: u32,
    uri: String,
    url: RequestUrl,
    transport: Option<String>,
    session: Option<String>,
    range: Option<String>,
}

impl RtspConnection {
    pub fn new(cfg: ConnectionConfig, now: Instant) -> Self {
        let rng = SplitMix64(cfg.seed);
        let deadline = now + cfg.first_request_timeout.min(cfg.session_timeout);
        RtspConnection {
            cfg,
            rng,
            outputs: VecDeque::new(),
            deadline,
            timeout_reported: false,
            closed: false,
            consumed: 0,
            pending: None,
            authorized: None,
            session: None,
        }
    }

    /// Feeds received bytes; returns how many were consumed. The shell keeps the rest and
    /// offers it again with more bytes, and also (possibly with no new bytes) after
    /// answering an [`Output::Authorize`], since input stops being consumed while a decision
    /// is pending. After a `Close`, everything is consumed and ignored.
    pub fn handle_input(&mut self, buf: &[u8], now: Instant) -> Result<usize, RtspError> {
        self.timeout_reported = false;
        if self.closed {
            return Ok(buf.len());
        }
        let mut used = 0;
        while !self.closed && self.pending.is_none() && used < buf.len() {
            match message::parse(&buf[used..], &self.cfg.limits) {
                Ok(None) => break,
                Ok(Some(Parsed::Blank { len })) => used += len,
                Ok(Some(Parsed::Interleaved { len, .. })) => {
                    // RTCP receiver reports over TCP: a sign of life, otherwise ignored.
                    used += len;
                    self.keepalive(now);
                }
                Ok(Some(Parsed::Message {
                    message: request,
                    len,
                })) => {
                    used += len;
                    self.on_request(&request, now);
                }
                Err(e) => {
                    let offset = self.consumed + (used + e.offset) as u64;
                    self.consumed += buf.len() as u64;
                    let status = e.status();
                    self.respond(status, None, &[], None);
                    self.close(CloseReason::ProtocolError(status));
                    return Err(RtspError {
                        kind: e.kind,
                        offset,
                    });
                }
            }
        }
        self.consumed += used as u64;
        Ok(used)
    }

    /// Fires the session timeout when `now` has reached it.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.timeout_reported = false;
        if !self.closed && now >= self.deadline {
            self.close(CloseReason::SessionTimeout);
        }
    }

    /// Refreshes the session timeout; the shell calls it when RTCP arrives from the client
    /// over UDP.
    pub fn keepalive(&mut self, now: Instant) {
        self.timeout_reported = false;
        self.deadline = now + self.cfg.session_timeout;
    }

    /// The next output; `None` when there is nothing to do until the next input or timeout.
    /// The last output of each round is `Timeout` (none after `Close`).
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        if self.closed || self.timeout_reported {
            return None;
        }
        self.timeout_reported = true;
        Some(Output::Timeout(self.deadline))
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
        // Time spent waiting for the authorizer does not count against the client.
        self.keepalive(now);
        match answer {
            AuthAnswer::Allowed { media } => {
                self.authorized = Some(Authorized {
                    stream: req.url.stream.clone(),
                    media,
                });
                match req.method {
                    Method::Describe => self.describe(req),
                    _ => self.setup(req),
                }
            }
            AuthAnswer::Denied { reason } => {
                self.respond(
                    Status::FORBIDDEN,
                    Some(req.cseq),
                    &[("x-deny-reason", reason)],
                    None,
                );
                self.close(CloseReason::Denied { reason });
            }
            AuthAnswer::NotFound => self.respond(Status::NOT_FOUND, Some(req.cseq), &[], None),
        }
    }

    /// True once `Close` has been queued.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True while an `Authorize` waits for its answer.
    pub fn awaiting_authorization(&self) -> bool {
        self.pending.is_some()
    }

    /// The RTSP session id, once a SETUP succeeded.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.id.as_str())
    }

    fn close(&mut self, reason: CloseReason) {
        self.outputs.push_back(Output::Close(reason));
        self.closed = true;
        self.pending = None;
    }

    fn respond(
        &mut self,
        status: Status,
        cseq: Option<u32>,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) {
        let mut out = Vec::with_capacity(256);
        message::write_response(&mut out, status, cseq, self.cfg.server, headers, body);
        self.outputs.push_back(Output::Transmit(out));
    }

    fn session_header(&self, session: &Session) -> String {
        format!(
            "{};timeout={}",
            session.id,
            self.cfg.session_timeout.as_secs()
        )
    }

    fn on_request(&mut self, req: &Request<'_>, now: Instant) {
        self.keepalive(now);
        let Some(cseq) = req.cseq() else {
            // §12.17: CSeq is required; without one the client cannot match our answer.
            self.respond(Status::BAD_REQUEST, None, &[], None);
            return;
        };
        match req.method {
            Method::Options => self.respond(Status::OK, Some(cseq), &[("Public", PUBLIC)], None),
            Method::Announce | Method::Record | Method::Redirect => self.respond(
                Status::METHOD_NOT_ALLOWED,
                Some(cseq),
                &[("Allow", PUBLIC), ("Public", PUBLIC)],
                None,
            ),
            Method::Other => self.respond(
                Status::NOT_IMPLEMENTED,
                Some(cseq),
                &[("Public", PUBLIC)],
                None,
            ),
            Method::GetParameter | Method::SetParameter if req.uri == "*" => self.parameter(
                cseq,
                req.header("Session"),
                !req.body.is_empty(),
                req.method,
            ),
            method => {
                let url = match RequestUrl::parse(req.uri, &self.cfg.token_param) {
                    Ok(url) => url,
                    Err(_) => return self.respond(Status::BAD_REQUEST, Some(cseq), &[], None),
                };
                let pending = PendingRequest {
                    method,
                    cseq,
                    uri: req.uri.to_string(),
                    url,
                    transport: req.header("Transport").map(str::to_string),
                    session: req.header("Session").map(str::to_string),
                    range: req.header("Range").map(str::to_string),
                };
                match method {
                    Method::Describe => self.on_describe(pending, req),
                    Method::Setup => self.on_setup(pending, req),
                    Method::GetParameter | Method::SetParameter => {
                        self.parameter(cseq, req.header("Session"), !req.body.is_empty(), method)
                    }
                    Method::Play => self.play(pending),
                    Method::Pause => self.pause(pending),
                    _ => self.teardown(pending),
                }
            }
        }
    }

    /// Checks a request's `Session` header against ours (§12.37): `Err(())` means 454 was
    /// sent. `Ok(true)` when the header named our session, `Ok(false)` when there was none.
    fn check_session(&mut self, cseq: u32, header: Option<&str>) -> Result<bool, ()> {
        let Some(header) = header else {
            return Ok(false);
        };
        let id = header.split(';').next().unwrap_or("").trim();
        if self.session.as_ref().is_some_and(|s| s.id == id) {
            Ok(true)
        } else {
            self.respond(Status::SESSION_NOT_FOUND, Some(cseq), &[], None);
            Err(())
        }
    }

    fn ask(&mut self, req: PendingRequest, user_agent: Option<&str>) {
        self.outputs.push_back(Output::Authorize {
            stream: req.url.stream.clone(),
            token: req.url.token.clone(),
            user_agent: user_agent.map(str::to_string),
        });
        self.pending = Some(req);
    }

    fn on_describe(&mut self, req: PendingRequest, raw: &Request<'_>) {
        if let Some(accept) = raw.header("Accept") {
            let acceptable = accept.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or("").trim();
                ["application/sdp", "application/*", "*/*"]
                    .iter()
                    .any(|a| t.eq_ignore_ascii_case(a))
            });
            if !acceptable {
                return self.respond(Status::NOT_ACCEPTABLE, Some(req.cseq), &[], None);
            }
        }
        if req.url.stream.is_empty() {
            return self.respond(Status::NOT_FOUND, Some(req.cseq), &[], None);
        }
        // DESCRIBE always asks: it is where a token is presented.
        self.ask(req, raw.header("User-Agent"));
    }

    fn describe(&mut self, req: PendingRequest) {
        let Some(auth) = &self.authorized else { return };
        if auth.media.video.is_none() && auth.media.audio.is_none() {
            // The stream exists but has not produced a configuration yet.
            return self.respond(Status::SERVICE_UNAVAILABLE, Some(req.cseq), &[], None);
        }
        let mut sdp = String::with_capacity(512);
        let sdp_id = self.rng.next() >> 1;
        sdp::write_sdp(&auth.media, &auth.stream, sdp_id, &mut sdp);
        let content_base = (!req.url.base.is_empty()).then(|| req.url.content_base());
        let headers: Vec<(&str, &str)> = content_base
            .iter()
            .map(|b| ("Content-Base", b.as_str()))
            .collect();
        self.respond(
            Status::OK,
            Some(req.cseq),
            &headers,
            Some(("application/sdp", sdp.as_bytes())),
        );
    }

    fn on_setup(&mut self, req: PendingRequest, raw: &Request<'_>) {
        if self
            .check_session(req.cseq, req.session.as_deref())
            .is_err()
        {
            return;
        }
        if req.url.stream.is_empty() {
            return self.respond(Status::NOT_FOUND, Some(req.cseq), &[], None);
        }
        let authorized = self
            .authorized
            .as_ref()
            .is_some_and(|a| a.stream == req.url.stream);
        if authorized {
            self.setup(req);
        } else if self.session.is_some() {
            // One session per connection, for one stream.
            self.respond(
                Status::METHOD_NOT_VALID_IN_THIS_STATE,
                Some(req.cseq),
                &[],
                None,
            );
        } else {
            self.ask(req, raw.header("User-Agent"));
        }
    }

    fn setup(&mut self, req: PendingRequest) {
        let cseq = Some(req.cseq);
        let Some(auth) = &self.authorized else { return };
        let track_id = match req.url.track {
            Some(id) => id,
            // An aggregate URL names the only track of a single-track stream.
            None => match (&auth.media.video, &auth.media.audio) {
                (Some(_), None) => sdp::VIDEO_TRACK_ID,
                (None, Some(_)) => sdp::AUDIO_TRACK_ID,
                _ => return self.respond(Status::AGGREGATE_OPERATION_NOT_ALLOWED, cseq, &[], None),
            },
        };
        let Some(kind) = sdp::track_kind(&auth.media, track_id) else {
            return self.respond(Status::NOT_FOUND, cseq, &[], None);
        };
        if let Some(session) = &self.session
            && (session.stream != auth.stream || session.state == SessionState::Playing)
        {
            return self.respond(Status::METHOD_NOT_VALID_IN_THIS_STATE, cseq, &[], None);
        }
        let other_channels: Vec<u8> = self
            .session
            .iter()
            .flat_map(|s| &s.tracks)
            .filter(|t| t.track_id != track_id)
            .filter_map(|t| match t.transport {
                TrackTransport::Interleaved {
                    rtp_channel,
                    rtcp_channel,
                } => Some([rtp_channel, rtcp_channel]),
                TrackTransport::Udp { .. } => None,
            })
            .flatten()
            .collect();
        let udp_ports = self
            .cfg
            .udp_server_ports
            .map(|p| p[(track_id & 1) as usize]);
        let Some(transport) = req
            .transport
            .as_deref()
            .and_then(|t| choose_transport(t, track_id, udp_ports, &other_channels))
        else {
            return self.respond(Status::UNSUPPORTED_TRANSPORT, cseq, &[], None);
        };

        if self.session.is_none() {
            let id = format!("{:016x}", self.rng.next());
            let media = auth.media.clone();
            self.session = Some(Session {
                id,
                stream: auth.stream.clone(),
                media,
                tracks: Vec::with_capacity(2),
                state: SessionState::Ready,
            });
        }
        let existing = self
            .session
            .as_ref()
            .and_then(|s| s.tracks.iter().find(|t| t.track_id == track_id))
            .map(|t| t.rtp);
        let rtp = match existing {
            Some(rtp) => rtp,
            None => self.new_rtp_params(kind),
        };
        let Some(session) = self.session.as_mut() else {
            return;
        };
        session.tracks.retain(|t| t.track_id != track_id);
        session.tracks.push(SetupTrack {
            track_id,
            kind,
            url: req.uri,
            transport,
            rtp,
        });
        session.tracks.sort_by_key(|t| t.track_id);
        let transport_header = transport_response(&transport, rtp.ssrc);
        let session_header = format!(
            "{};timeout={}",
            session.id,
            self.cfg.session_timeout.as_secs()
        );
        self.respond(
            Status::OK,
            cseq,
            &[
                ("Transport", &transport_header),
                ("Session", &session_header),
            ],
            None,
        );
    }

    fn new_rtp_params(&mut self, kind: TrackKind) -> RtpParams {
        let taken: Vec<u32> = self
            .session
            .iter()
            .flat_map(|s| &s.tracks)
            .map(|t| t.rtp.ssrc)
            .collect();
        let mut ssrc = self.rng.next() as u32;
        while taken.contains(&ssrc) {
            ssrc = self.rng.next() as u32;
        }
        let r = self.rng.next();
        let (payload_type, clock_rate) = match kind {
            TrackKind::Video => (rtp::h264::PAYLOAD_TYPE, rtp::h264::CLOCK_RATE),
            TrackKind::Audio => {
                let rate = self
                    .authorized
                    .as_ref()
                    .and_then(|a| a.media.audio.as_ref())
                    .map_or(48_000, |a| a.sample_rate);
                (rtp::aac::PAYLOAD_TYPE, rate)
            }
        };
        RtpParams {
            ssrc,
            // Below 0x8000 so the first packets do not wrap; plenty of randomness left.
            seq: (r as u16) & 0x7fff,
            // Never 0: some clients treat rtptime=0 as "absent".
            rtptime: ((r >> 32) as u32).max(1),
            payload_type,
            clock_rate,
        }
    }

    fn play(&mut self, req: PendingRequest) {
        let cseq = Some(req.cseq);
        let Ok(named) = self.check_session(req.cseq, req.session.as_deref()) else {
            return;
        };
        let Some(session) = &self.session else {
            return self.respond(Status::METHOD_NOT_VALID_IN_THIS_STATE, cseq, &[], None);
        };
        if !named {
            return self.respond(Status::SESSION_NOT_FOUND, cseq, &[], None);
        }
        if session.stream != req.url.stream {
            return self.respond(Status::NOT_FOUND, cseq, &[], None);
        }
        // §12.29: echo the range we play from; a live stream always plays from now.
        let range = req
            .range
            .as_deref()
            .filter(|r| {
                r.strip_prefix("npt=").is_some_and(|v| {
                    !v.is_empty()
                        && v.bytes()
                            .all(|b| b.is_ascii_digit() || b".:-now".contains(&b))
                })
            })
            .unwrap_or("npt=now-")
            .to_string();
        let session_header = self.session_header(session);
        let state = session.state;
        let mut headers = vec![
            ("Session", session_header.as_str()),
            ("Range", range.as_str()),
        ];
        let rtp_info: String = session
            .tracks
            .iter()
            .map(|t| format!("url={};seq={};rtptime={}", t.url, t.rtp.seq, t.rtp.rtptime))
            .collect::<Vec<_>>()
            .join(",");
        if state == SessionState::Ready {
            headers.push(("RTP-Info", &rtp_info));
        }
        let start = (state != SessionState::Playing).then(|| PlayStart {
            session_id: session.id.clone(),
            stream: session.stream.clone(),
            media: session.media.clone(),
            tracks: session
                .tracks
                .iter()
                .map(|t| PlayTrack {
                    kind: t.kind,
                    track_id: t.track_id,
                    transport: t.transport,
                    rtp: t.rtp,
                })
                .collect(),
            resumed: state == SessionState::Paused,
        });
        self.respond(Status::OK, cseq, &headers, None);
        if let Some(session) = self.session.as_mut() {
            session.state = SessionState::Playing;
        }
        if let Some(start) = start {
            self.outputs.push_back(Output::Play(start));
        }
    }

    fn pause(&mut self, req: PendingRequest) {
        let cseq = Some(req.cseq);
        let Ok(named) = self.check_session(req.cseq, req.session.as_deref()) else {
            return;
        };
        let Some(session) = &self.session else {
            return self.respond(Status::METHOD_NOT_VALID_IN_THIS_STATE, cseq, &[], None);
        };
        if !named {
            return self.respond(Status::SESSION_NOT_FOUND, cseq, &[], None);
        }
        let session_header = self.session_header(session);
        let was_playing = session.state == SessionState::Playing;
        self.respond(Status::OK, cseq, &[("Session", &session_header)], None);
        if was_playing {
            if let Some(session) = self.session.as_mut() {
                session.state = SessionState::Paused;
            }
            self.outputs.push_back(Output::Pause);
        }
    }

    fn teardown(&mut self, req: PendingRequest) {
        if self
            .check_session(req.cseq, req.session.as_deref())
            .is_err()
        {
            return;
        }
        self.respond(Status::OK, Some(req.cseq), &[], None);
        self.close(CloseReason::Teardown);
    }

    /// GET_PARAMETER / SET_PARAMETER: keep-alive (§10.8, §10.9). We expose no parameters,
    /// so setting one is 451.
    fn parameter(&mut self, cseq: u32, session: Option<&str>, has_body: bool, method: Method) {
        let Ok(named) = self.check_session(cseq, session) else {
            return;
        };
        if method == Method::SetParameter && has_body {
            return self.respond(Status::PARAMETER_NOT_UNDERSTOOD, Some(cseq), &[], None);
        }
        let session_header = match (&self.session, named) {
            (Some(s), true) => Some(self.session_header(s)),
            _ => None,
        };
        let headers: Vec<(&str, &str)> = session_header
            .iter()
            .map(|s| ("Session", s.as_str()))
            .collect();
        self.respond(Status::OK, Some(cseq), &headers, None);
    }
}

/// Picks the first acceptable transport of a `Transport` header (§12.39): unicast RTP/AVP
/// over TCP (interleaved) or UDP (client_port). Multicast, other profiles, `mode` other than
/// PLAY, UDP without client ports or without server ports, and interleaved channels already
/// used by another track are refused.
fn choose_transport(
    header: &str,
    track_id: u32,
    udp_server: Option<PortPair>,
    taken_channels: &[u8],
) -> Option<TrackTransport> {
    'specs: for spec in header.split(',') {
        let mut params = spec.split(';').map(str::trim);
        let protocol = params.next().unwrap_or("");
        let tcp = if protocol.eq_ignore_ascii_case("RTP/AVP/TCP") {
            true
        } else if protocol.eq_ignore_ascii_case("RTP/AVP")
            || protocol.eq_ignore_ascii_case("RTP/AVP/UDP")
        {
            false
        } else {
            continue;
        };
        let mut interleaved = None;
        let mut client_port = None;
        for param in params {
            let (key, value) = match param.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (param, None),
            };
            if key.eq_ignore_ascii_case("multicast") {
                continue 'specs;
            } else if key.eq_ignore_ascii_case("interleaved") {
                match value.and_then(|v| parse_pair(v, 255)) {
                    Some(p) => interleaved = Some(p),
                    None => continue 'specs,
                }
            } else if key.eq_ignore_ascii_case("client_port") {
                match value.and_then(|v| parse_pair(v, 65_535)) {
                    Some(p) if p.0 != 0 && p.1 != 0 => client_port = Some(p),
                    _ => continue 'specs,
                }
            } else if key.eq_ignore_ascii_case("mode")
                && !value.is_some_and(|v| v.eq_ignore_ascii_case("play"))
            {
                continue 'specs;
            }
        }
        if tcp {
            let (rtp, rtcp) =
                interleaved.unwrap_or((2 * (track_id & 0x7f), 2 * (track_id & 0x7f) + 1));
            let (rtp, rtcp) = (rtp as u8, rtcp as u8);
            if taken_channels.contains(&rtp) || taken_channels.contains(&rtcp) {
                continue;
            }
            return Some(TrackTransport::Interleaved {
                rtp_channel: rtp,
                rtcp_channel: rtcp,
            });
        }
        let (Some(server), Some((rtp, rtcp))) = (udp_server, client_port) else {
            continue;
        };
        return Some(TrackTransport::Udp {
            client: PortPair {
                rtp: rtp as u16,
                rtcp: rtcp as u16,
            },
            server,
        });
    }
    None
}

/// `a-b` or `a` (then `b = a + 1`), both at most `max`.
fn parse_pair(v: &str, max: u32) -> Option<(u32, u32)> {
    let (a, b) = match v.split_once('-') {
        Some((a, b)) => (message::parse_decimal(a)?, message::parse_decimal(b)?),
        None => {
            let a = message::parse_decimal(v)?;
            (a, a.checked_add(1)?)
        }
    };
    (a <= max && b <= max).then_some((a, b))
}

fn transport_response(transport: &TrackTransport, ssrc: u32) -> String {
    match *transport {
        TrackTransport::Interleaved {
            rtp_channel,
            rtcp_channel,
        } => {
            format!("RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={ssrc:08X}")
        }
        TrackTransport::Udp { client, server } => format!(
            "RTP/AVP;unicast;client_port={}-{};server_port={}-{};ssrc={ssrc:08X}",
            client.rtp, client.rtcp, server.rtp, server.rtcp
        ),
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, seedable generator for ids that must be
/// unpredictable enough not to collide, not secret (sessions are bound to their connection).
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::VideoConfig;
    use bytes::Bytes;

    const UA: &str = "User-Agent: Lavf59.27.100\r\n";

    fn media() -> MediaInfo {
        MediaInfo {
            video: Some(VideoConfig {
                sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb]),
                pps: Bytes::from_static(&[0x68, 0xcb, 0x83, 0xcb, 0x20]),
                width: 320,
                height: 240,
                profile_idc: 0x42,
                constraint_flags: 0xc0,
                level_idc: 0x0d,
                frame_rate: Some((25, 1)),
            }),
            audio: crate::media::aac::audio_config(2, 48_000, 2),
        }
    }

    fn config() -> ConnectionConfig {
        let mut cfg = ConnectionConfig::new(42);
        cfg.udp_server_ports = Some([
            PortPair {
                rtp: 6970,
                rtcp: 6971,
            },
            PortPair {
                rtp: 6972,
                rtcp: 6973,
            },
        ]);
        cfg
    }

    struct Harness {
        conn: RtspConnection,
        now: Instant,
    }

    impl Harness {
        fn new(cfg: ConnectionConfig) -> Self {
            let now = Instant::now();
            Harness {
                conn: RtspConnection::new(cfg, now),
                now,
            }
        }

        /// Feeds `input` (all of it must be consumed) and returns the outputs, without
        /// the trailing Timeout.
        fn send(&mut self, input: &str) -> Vec<Output> {
            let used = self.conn.handle_input(input.as_bytes(), self.now).unwrap();
            assert_eq!(used, input.len(), "not all input consumed");
            self.drain()
        }

        fn drain(&mut self) -> Vec<Output> {
            let mut out = Vec::new();
            while let Some(o) = self.conn.poll_output() {
                if !matches!(o, Output::Timeout(_)) {
                    out.push(o);
                }
                assert!(out.len() < 100);
            }
            out
        }

        fn answer(&mut self, answer: AuthAnswer) -> Vec<Output> {
            self.conn.authorized(answer, self.now);
            self.drain()
        }

        /// Sends one request and returns the only response's text.
        fn response(&mut self, input: &str) -> String {
            let out = self.send(input);
            assert_eq!(out.len(), 1, "{out:?}");
            transmitted(&out[0])
        }
    }

    fn transmitted(o: &Output) -> String {
        match o {
            Output::Transmit(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("not a Transmit: {other:?}"),
        }
    }

    const BASE: &str = "rtsp://127.0.0.1:1554/auth-check";
    const SDP: &str = "v=0\r\n\
        o=- 6839728766377637706 1 IN IP4 0.0.0.0\r\n\
        s=auth-check\r\n\
        c=IN IP4 0.0.0.0\r\n\
        t=0 0\r\n\
        a=control:*\r\n\
        a=range:npt=now-\r\n\
        m=video 0 RTP/AVP 96\r\n\
        a=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 packetization-mode=1;profile-level-id=42C00D;sprop-parameter-sets=Z0LADdkBQfs=,aMuDyyA=\r\n\
        a=framerate:25\r\n\
        a=control:trackID=0\r\n\
        m=audio 0 RTP/AVP 97\r\n\
        a=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
        a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n\
        a=control:trackID=1\r\n";
    const SESSION: &str = "28efe333b266f103";
    const VIDEO_RTP: RtpParams = RtpParams {
        ssrc: 0x130F_9F52,
        seq: 25492,
        rtptime: 1_478_287_871,
        payload_type: 96,
        clock_rate: 90_000,
    };
    const AUDIO_RTP: RtpParams = RtpParams {
        ssrc: 0x2448_23F2,
        seq: 23302,
        rtptime: 3_729_011_194,
        payload_type: 97,
        clock_rate: 48_000,
    };

    /// OPTIONS and DESCRIBE (allowed) exactly as ffmpeg 5.1 sends them.
    fn describe_allowed(h: &mut Harness) {
        assert_eq!(
            h.response(&format!(
                "OPTIONS {BASE}?token=test1 RTSP/1.0\r\nCSeq: 1\r\n{UA}\r\n"
            )),
            "RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: tessera\r\n\
             Public: OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER\r\n\r\n"
        );
        let out = h.send(&format!(
            "DESCRIBE {BASE}?token=test1 RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\n{UA}\r\n"
        ));
        assert_eq!(
            out,
            [Output::Authorize {
                stream: "auth-check".into(),
                token: Some(b"test1".to_vec()),
                user_agent: Some("Lavf59.27.100".into()),
            }]
        );
        assert!(h.conn.awaiting_authorization());
        let out = h.answer(AuthAnswer::Allowed { media: media() });
        assert_eq!(out.len(), 1);
        assert_eq!(
            transmitted(&out[0]),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 2\r\nServer: tessera\r\n\
                 Content-Base: {BASE}/\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
                SDP.len()
            )
        );
    }

    fn play_request(cseq: u32) -> String {
        format!(
            "PLAY {BASE}/ RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: {cseq}\r\n{UA}Session: {SESSION}\r\n\r\n"
        )
    }

    fn play_response(cseq: u32) -> String {
        format!(
            "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nServer: tessera\r\nSession: {SESSION};timeout=60\r\n\
             Range: npt=0.000-\r\n\
             RTP-Info: url={BASE}/trackID=0;seq=25492;rtptime=1478287871,\
             url={BASE}/trackID=1;seq=23302;rtptime=3729011194\r\n\r\n"
        )
    }

    fn play_start(transports: [TrackTransport; 2], resumed: bool) -> Output {
        Output::Play(PlayStart {
            session_id: SESSION.into(),
            stream: "auth-check".into(),
            media: media(),
            tracks: vec![
                PlayTrack {
                    kind: TrackKind::Video,
                    track_id: 0,
                    transport: transports[0],
                    rtp: VIDEO_RTP,
                },
                PlayTrack {
                    kind: TrackKind::Audio,
                    track_id: 1,
                    transport: transports[1],
                    rtp: AUDIO_RTP,
                },
            ],
            resumed,
        })
    }

    /// GET_PARAMETER keep-alive and TEARDOWN, as ffmpeg sends them.
    fn keepalive_and_teardown(h: &mut Harness) {
        assert_eq!(
            h.response(&format!(
                "GET_PARAMETER {BASE}/ RTSP/1.0\r\nCSeq: 6\r\n{UA}Session: {SESSION}\r\n\r\n"
            )),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 6\r\nServer: tessera\r\nSession: {SESSION};timeout=60\r\n\r\n"
            )
        );
        let out = h.send(&format!(
            "TEARDOWN {BASE}/ RTSP/1.0\r\nCSeq: 7\r\n{UA}Session: {SESSION}\r\n\r\n"
        ));
        assert_eq!(out.len(), 2);
        assert_eq!(
            transmitted(&out[0]),
            "RTSP/1.0 200 OK\r\nCSeq: 7\r\nServer: tessera\r\n\r\n"
        );
        assert_eq!(out[1], Output::Close(CloseReason::Teardown));
        assert!(h.conn.is_closed());
        // Anything after Close is swallowed; no further output, not even a Timeout.
        assert_eq!(h.conn.handle_input(b"garbage", h.now), Ok(7));
        assert_eq!(h.conn.poll_output(), None);
    }

    #[test]
    fn ffmpeg_tcp_exchange_byte_exact() {
        let mut h = Harness::new(config());
        describe_allowed(&mut h);
        assert_eq!(
            h.response(&format!(
                "SETUP {BASE}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 3\r\n{UA}\r\n"
            )),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 3\r\nServer: tessera\r\n\
                 Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=130F9F52\r\n\
                 Session: {SESSION};timeout=60\r\n\r\n"
            )
        );
        assert_eq!(h.conn.session_id(), Some(SESSION));
        assert_eq!(
            h.response(&format!(
                "SETUP {BASE}/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\nCSeq: 4\r\n{UA}\
                 Session: {SESSION}\r\n\r\n"
            )),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 4\r\nServer: tessera\r\n\
                 Transport: RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=244823F2\r\n\
                 Session: {SESSION};timeout=60\r\n\r\n"
            )
        );
        let out = h.send(&play_request(5));
        assert_eq!(out.len(), 2);
        assert_eq!(transmitted(&out[0]), play_response(5));
        let tcp = |c| TrackTransport::Interleaved {
            rtp_channel: c,
            rtcp_channel: c + 1,
        };
        assert_eq!(out[1], play_start([tcp(0), tcp(2)], false));
        keepalive_and_teardown(&mut h);
    }

    #[test]
    fn ffmpeg_udp_exchange_byte_exact() {
        let mut h = Harness::new(config());
        describe_allowed(&mut h);
        assert_eq!(
            h.response(&format!(
                "SETUP {BASE}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/UDP;unicast;client_port=32234-32235\r\n\
                 CSeq: 3\r\n{UA}\r\n"
            )),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 3\r\nServer: tessera\r\n\
                 Transport: RTP/AVP;unicast;client_port=32234-32235;server_port=6970-6971;ssrc=130F9F52\r\n\
                 Session: {SESSION};timeout=60\r\n\r\n"
            )
        );
        assert_eq!(
            h.response(&format!(
                "SETUP {BASE}/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/UDP;unicast;client_port=32236-32237\r\n\
                 CSeq: 4\r\n{UA}Session: {SESSION}\r\n\r\n"
            )),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 4\r\nServer: tessera\r\n\
                 Transport: RTP/AVP;unicast;client_port=32236-32237;server_port=6972-6973;ssrc=244823F2\r\n\
                 Session: {SESSION};timeout=60\r\n\r\n"
            )
        );
        let out = h.send(&play_request(5));
        assert_eq!(transmitted(&out[0]), play_response(5));
        let udp = |client: u16, server: u16| TrackTransport::Udp {
            client: PortPair {
                rtp: client,
                rtcp: client + 1,
            },
            server: PortPair {
                rtp: server,
                rtcp: server + 1,
            },
        };
        assert_eq!(
            out[1],
            play_start([udp(32234, 6970), udp(32236, 6972)], false)
        );
        keepalive_and_teardown(&mut h);
    }

    fn setup_tcp(h: &mut Harness) {
        for (track, cseq, session) in [
            (0, 3, String::new()),
            (1, 4, format!("Session: {SESSION}\r\n")),
        ] {
            let resp = h.response(&format!(
                "SETUP {BASE}/trackID={track} RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n\
                 CSeq: {cseq}\r\n{session}\r\n",
                2 * track,
                2 * track + 1
            ));
            assert!(resp.starts_with("RTSP/1.0 200 OK\r\n"), "{resp}");
        }
    }

    #[test]
    fn denial_is_403_with_reason_then_close() {
        let mut h = Harness::new(config());
        let out = h.send(&format!("DESCRIBE {BASE} RTSP/1.0\r\nCSeq: 2\r\n\r\n"));
        assert!(matches!(&out[..], [Output::Authorize { token: None, .. }]));
        let out = h.answer(AuthAnswer::Denied {
            reason: "backend_denied",
        });
        assert_eq!(out.len(), 2);
        assert_eq!(
            transmitted(&out[0]),
            "RTSP/1.0 403 Forbidden\r\nCSeq: 2\r\nServer: tessera\r\nx-deny-reason: backend_denied\r\n\r\n"
        );
        assert_eq!(
            out[1],
            Output::Close(CloseReason::Denied {
                reason: "backend_denied"
            })
        );
        // A second answer is ignored.
        assert!(h.answer(AuthAnswer::Allowed { media: media() }).is_empty());
    }

    #[test]
    fn not_found_keeps_the_connection() {
        let mut h = Harness::new(config());
        h.send("DESCRIBE rtsp://h/nope?token=test1 RTSP/1.0\r\nCSeq: 2\r\n\r\n");
        let out = h.answer(AuthAnswer::NotFound);
        assert_eq!(
            transmitted(&out[0]),
            "RTSP/1.0 404 Not Found\r\nCSeq: 2\r\nServer: tessera\r\n\r\n"
        );
        assert!(!h.conn.is_closed());
        // A stream with no tracks yet is 503.
        h.send(&format!("DESCRIBE {BASE} RTSP/1.0\r\nCSeq: 3\r\n\r\n"));
        let out = h.answer(AuthAnswer::Allowed {
            media: MediaInfo::default(),
        });
        assert!(
            transmitted(&out[0]).starts_with("RTSP/1.0 503 Service Unavailable\r\nCSeq: 3\r\n")
        );
    }

    #[test]
    fn input_waits_while_authorization_is_pending() {
        let mut h = Harness::new(config());
        let describe = format!("DESCRIBE {BASE}?token=test1 RTSP/1.0\r\nCSeq: 2\r\n\r\n");
        let setup = format!(
            "SETUP {BASE}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\nCSeq: 3\r\n\r\n"
        );
        let both = format!("{describe}{setup}");
        assert_eq!(
            h.conn.handle_input(both.as_bytes(), h.now),
            Ok(describe.len())
        );
        assert_eq!(h.conn.handle_input(setup.as_bytes(), h.now), Ok(0));
        h.drain();
        h.answer(AuthAnswer::Allowed { media: media() });
        let resp = h.response(&setup);
        assert!(resp.starts_with("RTSP/1.0 200 OK\r\nCSeq: 3\r\n"), "{resp}");
    }

    #[test]
    fn setup_without_describe_asks_with_the_setup_token() {
        let mut h = Harness::new(config());
        let out = h.send(&format!(
            "SETUP {BASE}?token=t%20x/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast\r\nCSeq: 1\r\n\r\n"
        ));
        assert_eq!(
            out,
            [Output::Authorize {
                stream: "auth-check".into(),
                token: Some(b"t x".to_vec()),
                user_agent: None,
            }]
        );
        let out = h.answer(AuthAnswer::Allowed { media: media() });
        let resp = transmitted(&out[0]);
        // No interleaved= given: channels 2*trackID, 2*trackID+1.
        assert!(
            resp.contains("Transport: RTP/AVP/TCP;unicast;interleaved=2-3;ssrc="),
            "{resp}"
        );
        // Same stream, other spellings: no new authorization.
        let resp = h.response("SETUP rtsp://other-host/auth-check/./trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP\r\nCSeq: 2\r\n\r\n");
        assert!(resp.starts_with("RTSP/1.0 200 OK\r\n"), "{resp}");
    }

    /// Sends each request in turn; each must get the status (the first 12 bytes).
    fn expect_statuses(h: &mut Harness, cases: &[(String, &str)]) {
        for (request, status) in cases {
            let response = h.response(request);
            assert_eq!(&response[..12], *status, "{request}");
        }
    }

    #[test]
    fn cseq_and_method_errors() {
        let mut h = Harness::new(config());
        // Missing or invalid CSeq: 400 without CSeq, connection stays.
        assert_eq!(
            h.response("OPTIONS * RTSP/1.0\r\n\r\n"),
            "RTSP/1.0 400 Bad Request\r\nServer: tessera\r\n\r\n"
        );
        assert_eq!(
            h.response("OPTIONS * RTSP/1.0\r\nCSeq: one\r\n\r\n"),
            "RTSP/1.0 400 Bad Request\r\nServer: tessera\r\n\r\n"
        );
        assert_eq!(
            h.response("ANNOUNCE rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            format!(
                "RTSP/1.0 405 Method Not Allowed\r\nCSeq: 1\r\nServer: tessera\r\nAllow: {PUBLIC}\r\nPublic: {PUBLIC}\r\n\r\n"
            )
        );
        assert_eq!(
            h.response("FROB rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\n\r\n"),
            format!(
                "RTSP/1.0 501 Not Implemented\r\nCSeq: 2\r\nServer: tessera\r\nPublic: {PUBLIC}\r\n\r\n"
            )
        );
    }

    #[test]
    fn error_statuses() {
        let mut h = Harness::new(config());
        let describe = |extra: &str| format!("DESCRIBE {BASE}{extra}\r\nCSeq: 3\r\n\r\n");
        expect_statuses(
            &mut h,
            &[
                (describe("/../x RTSP/1.0"), "RTSP/1.0 400"),
                (describe("?token=a&token=b RTSP/1.0"), "RTSP/1.0 400"),
                (
                    "DESCRIBE rtsp://h/ RTSP/1.0\r\nCSeq: 3\r\n\r\n".into(),
                    "RTSP/1.0 404",
                ),
                (describe(" RTSP/1.0\r\nAccept: text/html"), "RTSP/1.0 406"),
                (play_request(4), "RTSP/1.0 454"),
                (
                    format!("PLAY {BASE}/ RTSP/1.0\r\nCSeq: 4\r\n\r\n"),
                    "RTSP/1.0 455",
                ),
                (
                    format!("SETUP {BASE}/trackID=0 RTSP/1.0\r\nSession: 1234\r\nCSeq: 5\r\n\r\n"),
                    "RTSP/1.0 454",
                ),
            ],
        );

        describe_allowed(&mut h);
        let setup = |track: &str, transport: &str| {
            format!("SETUP {BASE}/{track} RTSP/1.0\r\nTransport: {transport}\r\nCSeq: 9\r\n\r\n")
        };
        let refused = "RTSP/1.0 461";
        expect_statuses(
            &mut h,
            &[
                (setup("trackID=5", "RTP/AVP/TCP;unicast"), "RTSP/1.0 404"),
                (setup("", "RTP/AVP/TCP;unicast"), "RTSP/1.0 459"),
                (
                    setup("trackID=0", "RTP/AVP;multicast;port=5000-5001"),
                    refused,
                ),
                (
                    setup("trackID=0", "RTP/SAVP;unicast;client_port=5000-5001"),
                    refused,
                ),
                (setup("trackID=0", "RTP/AVP;unicast"), refused),
                (
                    setup("trackID=0", "RTP/AVP;unicast;client_port=0-1"),
                    refused,
                ),
                (
                    setup("trackID=0", "RTP/AVP/TCP;interleaved=300-301"),
                    refused,
                ),
                (setup("trackID=0", "RTP/AVP/TCP;mode=record"), refused),
                (
                    format!("SETUP {BASE}/trackID=0 RTSP/1.0\r\nCSeq: 9\r\n\r\n"),
                    refused,
                ),
            ],
        );
        // The first acceptable alternative wins.
        let resp = h.response(&setup(
            "trackID=0",
            "RTP/AVP;multicast, RTP/AVP/TCP;unicast;interleaved=4-5;mode=\"PLAY\"",
        ));
        assert!(resp.contains("interleaved=4-5"), "{resp}");
        expect_statuses(
            &mut h,
            &[
                // Another track may not reuse those channels.
                (
                    format!(
                        "SETUP {BASE}/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/TCP;interleaved=5-6\r\nSession: {SESSION}\r\nCSeq: 10\r\n\r\n"
                    ),
                    refused,
                ),
                (
                    format!(
                        "SETUP {BASE}/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/TCP\r\nSession: nope\r\nCSeq: 10\r\n\r\n"
                    ),
                    "RTSP/1.0 454",
                ),
                (
                    format!("GET_PARAMETER {BASE} RTSP/1.0\r\nSession: x\r\nCSeq: 11\r\n\r\n"),
                    "RTSP/1.0 454",
                ),
                (
                    format!("PLAY rtsp://h/other/ RTSP/1.0\r\nSession: {SESSION}\r\nCSeq: 12\r\n\r\n"),
                    "RTSP/1.0 404",
                ),
                (
                    format!(
                        "SET_PARAMETER {BASE} RTSP/1.0\r\nContent-Length: 5\r\nCSeq: 13\r\n\r\na: b\n"
                    ),
                    "RTSP/1.0 451",
                ),
                // A SETUP for another stream once a session exists.
                (
                    "SETUP rtsp://h/other/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP\r\nCSeq: 14\r\n\r\n".into(),
                    "RTSP/1.0 455",
                ),
            ],
        );
    }

    #[test]
    fn udp_is_refused_without_server_ports() {
        // UDP refused when the shell offers no UDP ports.
        let mut h = Harness::new(ConnectionConfig::new(1));
        describe_allowed_quiet(&mut h);
        let setup = format!(
            "SETUP {BASE}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\nCSeq: 9\r\n\r\n"
        );
        expect_statuses(&mut h, &[(setup, "RTSP/1.0 461")]);
    }

    #[test]
    fn framing_errors_close_with_a_status() {
        let mut h = Harness::new(config());
        let ok = "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n";
        let input = format!("{ok}GET / HTTP/1.1\r\n\r\n");
        let e = h.conn.handle_input(input.as_bytes(), h.now).unwrap_err();
        assert_eq!(e.kind, MessageErrorKind::BadRequestLine);
        assert_eq!(e.offset, ok.len() as u64);
        let out = h.drain();
        assert_eq!(out.len(), 3);
        assert_eq!(
            transmitted(&out[1]),
            "RTSP/1.0 400 Bad Request\r\nServer: tessera\r\n\r\n"
        );
        assert_eq!(
            out[2],
            Output::Close(CloseReason::ProtocolError(Status::BAD_REQUEST))
        );

        let mut h = Harness::new(config());
        let long = format!(
            "DESCRIBE rtsp://h/{} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            "a".repeat(5000)
        );
        assert!(h.conn.handle_input(long.as_bytes(), h.now).is_err());
        assert!(transmitted(&h.drain()[0]).starts_with("RTSP/1.0 414 Request-URI Too Large\r\n"));
    }

    #[test]
    fn interleaved_frames_from_the_client_are_skipped() {
        let mut h = Harness::new(config());
        let mut input = vec![b'$', 1, 0, 4, 0x81, 0xc9, 0, 0];
        input.extend_from_slice(b"\r\nOPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n$\x03\x00");
        let used = h.conn.handle_input(&input, h.now).unwrap();
        assert_eq!(used, input.len() - 3);
        let out = h.drain();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn pause_and_resume() {
        let mut h = Harness::new(config());
        describe_allowed(&mut h);
        setup_tcp(&mut h);
        let out = h.send(&play_request(5));
        assert!(matches!(&out[1], Output::Play(p) if !p.resumed));
        // PLAY while playing: 200, nothing new to start.
        assert_eq!(h.send(&play_request(6)).len(), 1);
        // SETUP while playing is refused.
        let resp = h.response(&format!(
            "SETUP {BASE}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP\r\nSession: {SESSION}\r\nCSeq: 7\r\n\r\n"
        ));
        assert!(resp.starts_with("RTSP/1.0 455"), "{resp}");
        let out = h.send(&format!(
            "PAUSE {BASE}/ RTSP/1.0\r\nCSeq: 8\r\nSession: {SESSION}\r\n\r\n"
        ));
        assert_eq!(
            transmitted(&out[0]),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 8\r\nServer: tessera\r\nSession: {SESSION};timeout=60\r\n\r\n"
            )
        );
        assert_eq!(out[1], Output::Pause);
        let out = h.send(&format!(
            "PLAY {BASE}/ RTSP/1.0\r\nCSeq: 9\r\nSession: {SESSION}\r\n\r\n"
        ));
        assert_eq!(
            transmitted(&out[0]),
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: 9\r\nServer: tessera\r\nSession: {SESSION};timeout=60\r\nRange: npt=now-\r\n\r\n"
            )
        );
        assert!(matches!(&out[1], Output::Play(p) if p.resumed && p.tracks.len() == 2));
    }

    #[test]
    fn the_first_request_has_a_short_deadline() {
        let mut h = Harness::new(config());
        let t0 = h.now;
        let first = t0 + Duration::from_secs(10);
        assert_eq!(h.conn.poll_output(), Some(Output::Timeout(first)));
        // Half a request is not a request.
        h.conn
            .handle_input(
                b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n",
                t0 + Duration::from_secs(1),
            )
            .unwrap();
        assert_eq!(h.conn.poll_output(), Some(Output::Timeout(first)));
        h.conn.handle_timeout(first);
        assert!(matches!(
            h.conn.poll_output(),
            Some(Output::Close(CloseReason::SessionTimeout))
        ));
        // A first request in time moves to the session timeout.
        let mut h = Harness::new(config());
        h.now += Duration::from_secs(9);
        h.send("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        h.conn.handle_timeout(h.now);
        assert_eq!(
            h.conn.poll_output(),
            Some(Output::Timeout(h.now + Duration::from_secs(60)))
        );
    }

    #[test]
    fn session_timeout_and_keepalives() {
        let mut cfg = config();
        // The first request's own deadline: `the_first_request_has_a_short_deadline`.
        cfg.first_request_timeout = Duration::from_secs(60);
        let mut h = Harness::new(cfg);
        let t0 = h.now;
        let timeout = Duration::from_secs(60);
        assert_eq!(h.conn.poll_output(), Some(Output::Timeout(t0 + timeout)));
        assert_eq!(h.conn.poll_output(), None);
        h.conn.handle_timeout(t0 + Duration::from_secs(59));
        assert_eq!(h.conn.poll_output(), Some(Output::Timeout(t0 + timeout)));
        // A request refreshes the deadline.
        h.now = t0 + Duration::from_secs(30);
        h.send("GET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        h.conn.handle_timeout(t0 + Duration::from_secs(61));
        assert_eq!(
            h.conn.poll_output(),
            Some(Output::Timeout(t0 + Duration::from_secs(90)))
        );
        // So does an interleaved frame, and the shell's keepalive (UDP RTCP).
        h.now = t0 + Duration::from_secs(80);
        h.conn.handle_input(&[b'$', 1, 0, 0], h.now).unwrap();
        assert_eq!(
            h.conn.poll_output(),
            Some(Output::Timeout(t0 + Duration::from_secs(140)))
        );
        h.conn.keepalive(t0 + Duration::from_secs(100));
        assert_eq!(
            h.conn.poll_output(),
            Some(Output::Timeout(t0 + Duration::from_secs(160)))
        );
        h.conn.handle_timeout(t0 + Duration::from_secs(160));
        assert_eq!(
            h.conn.poll_output(),
            Some(Output::Close(CloseReason::SessionTimeout))
        );
        assert_eq!(h.conn.poll_output(), None);
    }

    #[test]
    fn seeds_give_distinct_sessions_and_ssrcs() {
        let mut ids = Vec::new();
        for seed in 0..50 {
            let mut cfg = config();
            cfg.seed = seed;
            let mut h = Harness::new(cfg);
            describe_allowed_quiet(&mut h);
            for track in [0, 1] {
                h.send(&format!(
                    "SETUP {BASE}/trackID={track} RTSP/1.0\r\nTransport: RTP/AVP/TCP\r\nCSeq: 3\r\n\r\n"
                ));
            }
            let out = h.send(&format!(
                "PLAY {BASE} RTSP/1.0\r\nCSeq: 4\r\nSession: {}\r\n\r\n",
                h.conn.session_id().unwrap()
            ));
            let Output::Play(start) = &out[1] else {
                panic!("{out:?}")
            };
            assert_ne!(start.tracks[0].rtp.ssrc, start.tracks[1].rtp.ssrc);
            assert!(
                start
                    .tracks
                    .iter()
                    .all(|t| t.rtp.rtptime != 0 && t.rtp.seq < 0x8000)
            );
            ids.push(start.session_id.clone());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 50);
    }

    fn describe_allowed_quiet(h: &mut Harness) {
        h.send(&format!(
            "DESCRIBE {BASE}?token=test1 RTSP/1.0\r\nCSeq: 2\r\n\r\n"
        ));
        h.answer(AuthAnswer::Allowed { media: media() });
    }

    /// Deterministic garbage: random bytes, mutated and spliced valid requests, random chunk
    /// boundaries, random authorization answers. Nothing may panic, consume more than it was
    /// given, or loop forever.
    #[test]
    fn garbage_never_panics() {
        let valid: Vec<String> = vec![
            format!("OPTIONS {BASE}?token=test1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            format!(
                "DESCRIBE {BASE}?token=test1 RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\n\r\n"
            ),
            format!(
                "SETUP {BASE}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 3\r\n\r\n"
            ),
            format!(
                "SETUP {BASE}/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\nCSeq: 4\r\n\r\n"
            ),
            format!("PLAY {BASE}/ RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 5\r\n\r\n"),
            format!("PAUSE {BASE}/ RTSP/1.0\r\nCSeq: 6\r\n\r\n"),
            format!("SET_PARAMETER {BASE} RTSP/1.0\r\nContent-Length: 4\r\nCSeq: 7\r\n\r\nx: y"),
            format!("TEARDOWN {BASE}/ RTSP/1.0\r\nCSeq: 8\r\n\r\n"),
            "$\x01\x00\x04\x01\x49\x00\x00".to_string(),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut authorizations, mut responses, mut closes) = (0, 0, 0);
        for _ in 0..4000 {
            let mut input = Vec::new();
            for _ in 0..rand() % 6 {
                match rand() % 4 {
                    0 => input.extend((0..rand() % 64).map(|_| rand() as u8)),
                    1 => {
                        let mut v = valid[(rand() % valid.len() as u64) as usize]
                            .clone()
                            .into_bytes();
                        for _ in 0..rand() % 4 {
                            let i = (rand() % v.len() as u64) as usize;
                            v[i] = rand() as u8;
                        }
                        input.extend(v);
                    }
                    2 => {
                        let v = valid[(rand() % valid.len() as u64) as usize].as_bytes();
                        let cut = (rand() % v.len() as u64) as usize;
                        input.extend_from_slice(&v[..cut]);
                    }
                    _ => input.extend_from_slice(
                        valid[(rand() % valid.len() as u64) as usize].as_bytes(),
                    ),
                }
            }
            let mut cfg = config();
            cfg.seed = rand();
            let mut conn = RtspConnection::new(cfg, Instant::now());
            let now = Instant::now();
            let mut kept: Vec<u8> = Vec::new();
            let mut pos = 0;
            for _round in 0..64 {
                if pos < input.len() {
                    let n = 1 + (rand() % 200) as usize;
                    let end = (pos + n).min(input.len());
                    kept.extend_from_slice(&input[pos..end]);
                    pos = end;
                }
                match conn.handle_input(&kept, now) {
                    Ok(used) => {
                        assert!(used <= kept.len());
                        kept.drain(..used);
                    }
                    Err(_) => kept.clear(),
                }
                let mut polled = 0;
                while let Some(o) = conn.poll_output() {
                    polled += 1;
                    assert!(polled < 1000);
                    match &o {
                        Output::Transmit(_) => responses += 1,
                        Output::Close(_) => closes += 1,
                        _ => {}
                    }
                    if let Output::Authorize { .. } = o {
                        authorizations += 1;
                        let answer = match rand() % 4 {
                            0 => AuthAnswer::Denied {
                                reason: "backend_denied",
                            },
                            1 => AuthAnswer::NotFound,
                            _ => AuthAnswer::Allowed { media: media() },
                        };
                        conn.authorized(answer, now);
                    }
                }
                if pos >= input.len() && !conn.awaiting_authorization() {
                    break;
                }
            }
            conn.handle_timeout(now + Duration::from_secs(3600));
            while conn.poll_output().is_some() {}
        }
        // The corpus reaches deep states, not only the first parse error.
        assert!(
            authorizations > 300 && responses > 2000 && closes > 1000,
            "{authorizations} {responses} {closes}"
        );
    }
}
