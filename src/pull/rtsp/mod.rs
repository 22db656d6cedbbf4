//! `rtsp://[user:pass@]HOST[:PORT]/PATH`: the RTSP client of the edge (RFC 2326), sans-IO,
//! always over TCP interleaved (§10.12: RTP in the control connection, which crosses NAT
//! and firewalls and needs no UDP ports):
//!
//! ```text
//!  OPTIONS ─► DESCRIBE (SDP: tracks, sprop-parameter-sets, AAC config)
//!          ─► SETUP each track (RTP/AVP/TCP;interleaved=2i-2i+1; Session id and timeout)
//!          ─► PLAY (RTP-Info: each track's rtptime at the start, which aligns them)
//!          ─► $-frames: RTP → rtp::depacketize → access units → MediaFrame
//!             GET_PARAMETER (or OPTIONS) every half session timeout, as keep-alive
//! ```
//!
//! A 401 is answered once per request from the URL's credentials (`digest`: Digest MD5
//! with or without `qop=auth`, or Basic); a second 401, a 401 without credentials, any
//! other refusal, a malformed message or an SDP without H.264 or AAC fails the source.
//! RTP timestamps become one 90 kHz timeline per stream (32-bit wrap unrolled).
//! Credentials never appear in an error.

pub mod digest;
pub mod sdp;

use crate::media::frame::{Frame, MediaInfo, TIMESCALE, TrackKind};
use crate::rtmp::flv::MediaFrame;
use crate::rtp::depacketize::{
    AacDepacketizer, DepacketizeError, H264Depacketizer, H264Output, parse_rtp,
};
use crate::rtsp::message::{Parsed, Response, RtspLimits, parse_response};
use bytes::Bytes;
use digest::{Answer, Challenge};
use sdp::{SdpTrack, TrackCodec};
use std::collections::VecDeque;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// Decoded frames not yet taken; more means the shell stopped reading.
const MAX_QUEUED: usize = 1024;
/// Unusable RTP packets in a row that fail the source (a few are loss or a stray packet).
const MAX_BAD_PACKETS_IN_A_ROW: u32 = 64;
/// The session timeout when the origin names none (RFC 2326 §12.37).
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Keep-alives go out at this fraction of the session timeout, and at least this often.
const MAX_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// Where the exchange stands: the request it waits an answer for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Options,
    Describe,
    /// SETUP of the track at this index.
    Setup(usize),
    Play,
    Playing,
}

/// The request in flight, kept to send again with credentials after a 401.
struct Pending {
    method: &'static str,
    uri: String,
    headers: Vec<(&'static str, String)>,
}

/// A track being received.
struct Track {
    sdp: SdpTrack,
    /// The SETUP request-URI (matched against `RTP-Info`).
    url: String,
    /// The RTP channel (RTCP is the next one, ignored).
    channel: u8,
    depacketizer: Depacketizer,
    clock: RtpClock,
}

enum Depacketizer {
    H264(H264Depacketizer),
    Aac(AacDepacketizer),
}

/// One track's RTP timestamps on the stream's 90 kHz timeline.
#[derive(Default)]
struct RtpClock {
    /// The RTP timestamp of time 0 (`RTP-Info`'s rtptime, or the first packet's).
    origin: Option<u32>,
    /// The last timestamp seen, once a packet came.
    last: Option<u32>,
    /// RTP ticks since `origin`, unwrapped.
    ticks: i64,
}

impl RtpClock {
    fn pts(&mut self, timestamp: u32, clock_rate: u32) -> i64 {
        let since = |from: u32| i64::from(timestamp.wrapping_sub(from) as i32);
        self.ticks = match (self.last, self.origin) {
            (Some(last), _) => self.ticks + since(last),
            (None, Some(origin)) => since(origin),
            (None, None) => {
                self.origin = Some(timestamp);
                0
            }
        };
        self.last = Some(timestamp);
        self.ticks * TIMESCALE / i64::from(clock_rate.max(1))
    }
}

pub struct RtspPull {
    /// `rtsp://host:port/path?query`, without credentials.
    url: String,
    credentials: Option<(String, String)>,
    limits: RtspLimits,
    tx: Vec<u8>,
    cseq: u32,
    step: Step,
    pending: Option<Pending>,
    challenge: Option<Challenge>,
    /// Requests answered under the current challenge (Digest's `nc`).
    auth_count: u32,
    /// The pending request was already sent with credentials.
    auth_retried: bool,
    cnonce: String,
    session: Option<String>,
    keepalive_every: Duration,
    next_keepalive: Option<Instant>,
    /// The origin lists GET_PARAMETER in `Public` (else OPTIONS keeps the session alive).
    get_parameter: bool,
    /// The URL of aggregate requests (PLAY, keep-alive).
    control: String,
    tracks: Vec<Track>,
    info: MediaInfo,
    announced: bool,
    bad_packets: u32,
    media: VecDeque<MediaFrame>,
    units: Vec<H264Output>,
    audio_units: Vec<crate::rtp::depacketize::AacAccessUnit>,
}

impl RtspPull {
    /// A pull of `path` (with its query) from `host:port`; `userinfo` is the URL's
    /// `user[:pass]`, percent-encoded; `seed` makes the Digest client nonce. OPTIONS is
    /// queued at once.
    pub fn new(host: &str, port: u16, path: &str, userinfo: Option<&str>, seed: u64) -> Self {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let url = format!("rtsp://{host}:{port}{path}");
        let mut pull = RtspPull {
            control: url.clone(),
            url,
            credentials: userinfo.map(split_userinfo),
            limits: RtspLimits::default(),
            tx: Vec::new(),
            cseq: 0,
            step: Step::Options,
            pending: None,
            challenge: None,
            auth_count: 0,
            auth_retried: false,
            cnonce: format!("{seed:016x}"),
            session: None,
            keepalive_every: (DEFAULT_SESSION_TIMEOUT / 2).min(MAX_KEEPALIVE_INTERVAL),
            next_keepalive: None,
            get_parameter: false,
            tracks: Vec::new(),
            info: MediaInfo::default(),
            announced: false,
            bad_packets: 0,
            media: VecDeque::new(),
            units: Vec::new(),
            audio_units: Vec::new(),
        };
        let url = pull.url.clone();
        pull.request("OPTIONS", url, Vec::new());
        pull
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tx)
    }

    pub fn poll_media(&mut self) -> Option<MediaFrame> {
        self.media.pop_front()
    }

    /// The clock: sends a keep-alive when one is due.
    pub fn tick(&mut self, now: Instant) {
        if self.step != Step::Playing {
            return;
        }
        let due = *self
            .next_keepalive
            .get_or_insert(now + self.keepalive_every);
        if now < due {
            return;
        }
        self.next_keepalive = Some(now + self.keepalive_every);
        let method = if self.get_parameter {
            "GET_PARAMETER"
        } else {
            "OPTIONS"
        };
        let uri = self.control.clone();
        self.request(method, uri, Vec::new());
    }

    /// Consumes what it can of `buf`; returns the bytes consumed. Errors fail the source.
    pub fn handle_input(&mut self, buf: &[u8]) -> Result<usize, String> {
        let mut pos = 0;
        while self.media.len() < MAX_QUEUED {
            let parsed = parse_response(&buf[pos..], &self.limits)
                .map_err(|e| format!("malformed RTSP from the origin: {e}"))?;
            match parsed {
                None => break,
                Some(Parsed::Blank { len }) => pos += len,
                Some(Parsed::Interleaved {
                    channel,
                    payload,
                    len,
                }) => {
                    self.interleaved(channel, payload)?;
                    pos += len;
                }
                Some(Parsed::Message {
                    message: response,
                    len,
                }) => {
                    self.response(&response)?;
                    pos += len;
                }
            }
        }
        Ok(pos)
    }

    /// Queues a request (and keeps it, to repeat it with credentials).
    fn request(&mut self, method: &'static str, uri: String, headers: Vec<(&'static str, String)>) {
        self.pending = Some(Pending {
            method,
            uri,
            headers,
        });
        self.send_pending();
    }

    fn send_pending(&mut self) {
        let Some(p) = &self.pending else { return };
        self.cseq += 1;
        let out = &mut self.tx;
        let _ = write!(
            out_string(out),
            "{} {} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: tessera-edge\r\n",
            p.method,
            p.uri,
            self.cseq
        );
        for (name, value) in &p.headers {
            let _ = write!(out_string(out), "{name}: {value}\r\n");
        }
        if let Some(session) = &self.session {
            let _ = write!(out_string(out), "Session: {session}\r\n");
        }
        if let (Some(challenge), Some((user, password))) = (&self.challenge, &self.credentials) {
            self.auth_count += 1;
            let header = digest::authorization(
                challenge,
                &Answer {
                    user,
                    password,
                    method: p.method,
                    uri: &p.uri,
                    count: self.auth_count,
                    cnonce: &self.cnonce,
                },
            );
            let _ = write!(out_string(out), "Authorization: {header}\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    fn response(&mut self, r: &Response<'_>) -> Result<(), String> {
        let method = self.pending.as_ref().map_or("keep-alive", |p| p.method);
        if self.step == Step::Playing {
            // Keep-alive answers: only a lost session matters.
            return match r.status {
                454 => Err("the origin lost the RTSP session".into()),
                _ => Ok(()),
            };
        }
        if r.status == 401 {
            return self.unauthorized(r, method);
        }
        if !(200..300).contains(&r.status) {
            return Err(format!("origin answered {} to {method}", r.status));
        }
        self.auth_retried = false;
        if let Some(session) = r.header("Session") {
            self.session_header(session);
        }
        match self.step {
            Step::Options => self.after_options(r),
            Step::Describe => self.after_describe(r),
            Step::Setup(i) => self.after_setup(i, r),
            Step::Play => self.after_play(r),
            Step::Playing => Ok(()),
        }
    }

    fn unauthorized(&mut self, r: &Response<'_>, method: &str) -> Result<(), String> {
        if self.credentials.is_none() {
            return Err(format!(
                "origin asks for credentials ({method}: 401) and the input URL has none"
            ));
        }
        if self.auth_retried {
            return Err(format!("origin refused the credentials ({method}: 401)"));
        }
        let challenge = digest::pick_challenge(r.headers_named("WWW-Authenticate"))
            .ok_or_else(|| format!("origin asks for an authentication scheme tessera does not speak ({method}: 401)"))?;
        self.challenge = Some(challenge);
        self.auth_count = 0;
        self.auth_retried = true;
        self.send_pending();
        Ok(())
    }

    /// `Session: ID[;timeout=SECONDS]` (§12.37).
    fn session_header(&mut self, value: &str) {
        let mut parts = value.split(';');
        let id = parts.next().unwrap_or("").trim();
        if id.is_empty() || id.len() > 256 {
            return;
        }
        self.session = Some(id.to_owned());
        // Later answers may repeat the id without the timeout: the first one named stays.
        if let Some(timeout) = parts
            .filter_map(|p| p.trim().strip_prefix("timeout="))
            .find_map(|t| t.trim().parse::<u64>().ok())
            .filter(|&t| t > 0)
        {
            self.keepalive_every = (Duration::from_secs(timeout) / 2).min(MAX_KEEPALIVE_INTERVAL);
        }
    }

    fn after_options(&mut self, r: &Response<'_>) -> Result<(), String> {
        self.get_parameter = r
            .header("Public")
            .is_some_and(|p| p.split(',').any(|m| m.trim() == "GET_PARAMETER"));
        self.step = Step::Describe;
        let url = self.url.clone();
        self.request("DESCRIBE", url, vec![("Accept", "application/sdp".into())]);
        Ok(())
    }

    fn after_describe(&mut self, r: &Response<'_>) -> Result<(), String> {
        let text = std::str::from_utf8(r.body).map_err(|_| "the origin's SDP is not UTF-8")?;
        let description = sdp::parse(text)?;
        let base = r
            .header("Content-Base")
            .or_else(|| r.header("Content-Location"))
            .unwrap_or(&self.url)
            .to_owned();
        self.control = match description.control.as_deref() {
            Some(control) => sdp::track_url(&base, control),
            None => base.clone(),
        };
        for (i, track) in description.tracks.into_iter().enumerate() {
            let depacketizer = match &track.codec {
                TrackCodec::H264 { .. } => Depacketizer::H264(H264Depacketizer::new()),
                TrackCodec::Aac {
                    size_bits,
                    index_bits,
                    ..
                } => Depacketizer::Aac(
                    AacDepacketizer::new(*size_bits, *index_bits)
                        .ok_or("the origin's AAC track has AU headers tessera cannot read")?,
                ),
            };
            self.tracks.push(Track {
                url: sdp::track_url(&base, &track.control),
                channel: (2 * i) as u8,
                sdp: track,
                depacketizer,
                clock: RtpClock::default(),
            });
        }
        self.setup(0);
        Ok(())
    }

    fn setup(&mut self, i: usize) {
        self.step = Step::Setup(i);
        let track = &self.tracks[i];
        let transport = format!(
            "RTP/AVP/TCP;unicast;interleaved={}-{}",
            track.channel,
            track.channel + 1
        );
        let url = track.url.clone();
        self.request("SETUP", url, vec![("Transport", transport)]);
    }

    fn after_setup(&mut self, i: usize, r: &Response<'_>) -> Result<(), String> {
        if self.session.is_none() {
            return Err("the origin's SETUP answer has no Session".into());
        }
        // The origin may choose other channels (§12.39).
        if let Some(channel) = r
            .header("Transport")
            .and_then(|t| {
                t.split(';')
                    .find_map(|p| p.trim().strip_prefix("interleaved="))
            })
            .and_then(|c| c.split('-').next()?.parse::<u8>().ok())
        {
            self.tracks[i].channel = channel;
        }
        if i + 1 < self.tracks.len() {
            self.setup(i + 1);
        } else {
            self.step = Step::Play;
            let url = self.control.clone();
            self.request("PLAY", url, vec![("Range", "npt=0.000-".into())]);
        }
        Ok(())
    }

    fn after_play(&mut self, r: &Response<'_>) -> Result<(), String> {
        if let Some(info) = r.header("RTP-Info") {
            self.rtp_info(info);
        }
        self.step = Step::Playing;
        self.pending = None;
        for i in 0..self.tracks.len() {
            if let TrackCodec::H264 { sps, pps } = &self.tracks[i].sdp.codec {
                let (sps, pps) = (sps.clone(), pps.clone());
                self.parameter_sets(i, sps, pps);
            }
            if let TrackCodec::Aac { config, .. } = &self.tracks[i].sdp.codec {
                self.info.audio = Some(config.clone());
            }
        }
        self.announce();
        Ok(())
    }

    /// `RTP-Info: url=U;seq=N;rtptime=T, ...` (§12.33): each track's time 0.
    fn rtp_info(&mut self, value: &str) {
        for entry in value.split(',') {
            let mut url = None;
            let mut rtptime = None;
            for field in entry.split(';') {
                let field = field.trim();
                if let Some(u) = field.strip_prefix("url=") {
                    url = Some(u);
                } else if let Some(t) = field.strip_prefix("rtptime=") {
                    rtptime = t.parse::<u32>().ok();
                }
            }
            let (Some(url), Some(rtptime)) = (url, rtptime) else {
                continue;
            };
            let matching = self.tracks.iter_mut().find(|t| {
                t.url == url || t.url.ends_with(url) || url.ends_with(&t.url) || {
                    !t.sdp.control.is_empty() && url.ends_with(&t.sdp.control)
                }
            });
            if let Some(track) = matching {
                track.clock.origin = Some(rtptime);
            }
        }
    }

    /// A track's SPS and PPS (from the SDP or in band): the video configuration.
    fn parameter_sets(&mut self, i: usize, sps: Option<Bytes>, pps: Option<Bytes>) {
        let TrackCodec::H264 {
            sps: known_sps,
            pps: known_pps,
        } = &mut self.tracks[i].sdp.codec
        else {
            return;
        };
        if let Some(sps) = sps {
            *known_sps = Some(sps);
        }
        if let Some(pps) = pps {
            *known_pps = Some(pps);
        }
        let (Some(sps), Some(pps)) = (known_sps.clone(), known_pps.clone()) else {
            return;
        };
        match crate::media::h264::video_config(sps, pps) {
            Ok(config) if self.info.video.as_ref() != Some(&config) => {
                self.info.video = Some(config);
                if self.announced {
                    self.media.push_back(MediaFrame::Config(self.info.clone()));
                }
            }
            Ok(_) => {}
            Err(e) => log::debug!("rtsp pull: unusable SPS/PPS: {e}"),
        }
    }

    /// Announces the configuration once every track has one.
    fn announce(&mut self) {
        let complete = self.tracks.iter().all(|t| match t.sdp.kind() {
            TrackKind::Video => self.info.video.is_some(),
            TrackKind::Audio => self.info.audio.is_some(),
        });
        if complete && !self.announced {
            self.announced = true;
            self.media.push_back(MediaFrame::Config(self.info.clone()));
        }
    }

    fn interleaved(&mut self, channel: u8, packet: &[u8]) -> Result<(), String> {
        let Some(i) = self.tracks.iter().position(|t| t.channel == channel) else {
            return Ok(()); // RTCP, or a channel we did not set up
        };
        match self.rtp(i, packet) {
            Ok(()) => self.bad_packets = 0,
            Err(DepacketizeError::TooLarge) => {
                return Err(DepacketizeError::TooLarge.to_string());
            }
            Err(e) => {
                self.bad_packets += 1;
                log::debug!("rtsp pull: {e}");
                if self.bad_packets >= MAX_BAD_PACKETS_IN_A_ROW {
                    return Err(format!(
                        "{MAX_BAD_PACKETS_IN_A_ROW} bad RTP packets in a row: {e}"
                    ));
                }
            }
        }
        Ok(())
    }

    fn rtp(&mut self, i: usize, packet: &[u8]) -> Result<(), DepacketizeError> {
        let (header, payload) = parse_rtp(packet)?;
        if header.payload_type != self.tracks[i].sdp.payload_type {
            return Ok(());
        }
        let track = &mut self.tracks[i];
        match &mut track.depacketizer {
            Depacketizer::H264(d) => {
                let mut units = std::mem::take(&mut self.units);
                let result = d.push(&header, payload, &mut units);
                for unit in units.drain(..) {
                    self.video_output(i, unit);
                }
                self.units = units;
                result
            }
            Depacketizer::Aac(d) => {
                let result = d.push(&header, payload, &mut self.audio_units);
                let clock_rate = track.sdp.clock_rate;
                for unit in self.audio_units.drain(..) {
                    let pts = track.clock.pts(unit.timestamp, clock_rate);
                    if self.announced {
                        self.media.push_back(MediaFrame::Frame(Frame {
                            track: TrackKind::Audio,
                            pts,
                            dts: pts,
                            keyframe: true,
                            data: unit.data,
                        }));
                    }
                }
                result
            }
        }
    }

    fn video_output(&mut self, i: usize, output: H264Output) {
        match output {
            H264Output::Sps(sps) => self.parameter_sets(i, Some(sps), None),
            H264Output::Pps(pps) => {
                self.parameter_sets(i, None, Some(pps));
                self.announce();
            }
            H264Output::Unit(unit) => {
                let track = &mut self.tracks[i];
                let pts = track.clock.pts(unit.timestamp, track.sdp.clock_rate);
                if self.announced {
                    // RTP carries presentation times only: without B-frames (what live
                    // origins send) decode time is presentation time.
                    self.media.push_back(MediaFrame::Frame(Frame {
                        track: TrackKind::Video,
                        pts,
                        dts: pts,
                        keyframe: unit.keyframe,
                        data: unit.data,
                    }));
                }
            }
        }
    }
}

/// `user[:pass]`, percent-decoded.
fn split_userinfo(userinfo: &str) -> (String, String) {
    let decode = |s: &str| {
        let mut out = Vec::new();
        match crate::uri::percent_decode_into(s.as_bytes(), &mut out) {
            Ok(()) => String::from_utf8_lossy(&out).into_owned(),
            Err(_) => s.to_owned(),
        }
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    (decode(user), decode(password))
}

/// Appends text to a byte buffer through `fmt::Write`.
fn out_string(out: &mut Vec<u8>) -> ByteWriter<'_> {
    ByteWriter(out)
}

struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
