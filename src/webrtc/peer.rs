//! One browser's peer connection, sans-IO: str0m's `Rtc` as an ICE-lite, send-only WHEP
//! server, with datagrams and the time passed in.
//!
//! str0m asks that every change (a datagram, a timeout, a media write) be followed by
//! draining its outputs up to the next timeout before the next change; `WebRtcPeer` does
//! that drain after each of its calls and keeps what it found in a queue, so its own
//! `poll_output` can be polled at any time, like every other protocol machine here.
//!
//! **Media clock.** Video units carry 90 kHz times, Opus units 48 kHz ones, both from the
//! stream's one timeline. Each unit's wallclock (what str0m's sender reports map RTP time
//! to, and what a browser lines its tracks up by) is one anchor plus its media time, the
//! same anchor for both tracks, so audio and video stay in sync however the ring batches
//! them. The anchor only moves back (a unit whose wallclock would be in the future, such
//! as the GOP cache's first frames, pulls it back): str0m wants wallclocks in the past.

use crate::media::frame::{TrackKind, VideoConfig};
use crate::webrtc::viewer::read_unit;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, KeyframeRequest, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Rtc, RtcConfig};

pub use str0m::IceCreds;
pub use str0m::config::DtlsCert;

/// What the peer connection wants done.
#[derive(Debug)]
pub enum Output {
    /// A datagram for the browser.
    Transmit(Vec<u8>),
    /// Call `handle_timeout` at this instant.
    Timeout(Instant),
    /// ICE and DTLS are up: media may flow.
    Connected,
    /// The browser asked for a keyframe (PLI or FIR).
    KeyframeRequest,
    /// Once a second: bytes sent since the last report, and the round-trip time the
    /// browser's last receiver report gave (RTCP RR), if any.
    Stats { sent: u64, rtt: Option<Duration> },
    /// The connection is over (ICE lost, DTLS closed, or an error).
    Closed(&'static str),
}

/// Why an offer is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum OfferError {
    /// Not SDP str0m can read.
    Sdp(String),
    /// The offer cannot receive H.264 in packetization mode 1.
    NoH264,
    /// The offer receives H.264, but no profile that decodes the stream's (named).
    Profile(String),
    /// An address str0m cannot use as a candidate.
    Candidate,
}

impl std::fmt::Display for OfferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfferError::Sdp(e) => write!(f, "invalid offer: {e}"),
            OfferError::NoH264 => f.write_str("the offer does not receive H.264 (mode 1)"),
            OfferError::Profile(codec) => write!(
                f,
                "the stream's H.264 ({codec}) is of a profile the offer does not receive"
            ),
            OfferError::Candidate => f.write_str("no usable candidate address"),
        }
    }
}

/// A datagram the connection could not take.
#[derive(Debug)]
pub struct PeerError(String);

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far a peer connection got: where it ended tells an ICE failure from a DTLS one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Answered; no ICE check succeeded yet.
    Offered,
    /// ICE is up; DTLS is not.
    IceUp,
    /// ICE and DTLS are up: media flows.
    Connected,
}

/// The mid of the answer's first `kind` ("video", "audio") section that is not rejected
/// (port 0).
fn section_mid(answer: &str, kind: &str) -> Option<Mid> {
    let mut inside = false;
    for line in answer.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            let port = media.strip_prefix(kind).and_then(|m| m.strip_prefix(' '));
            inside = port.is_some_and(|p| !p.starts_with("0 "));
        } else if let Some(mid) = line.strip_prefix("a=mid:").filter(|_| inside) {
            return Some(Mid::from(mid.trim()));
        }
    }
    None
}

/// One peer connection.
pub struct WebRtcPeer {
    rtc: Rtc,
    /// The candidate the browser sends to (the shard's UDP port).
    local: SocketAddr,
    /// The browser's address, once its first datagram came.
    remote: Option<SocketAddr>,
    video: Option<(Mid, Pt)>,
    /// Opus on the answer's audio section, when the offer had one.
    audio: Option<(Mid, Pt)>,
    /// The wallclock of media time 0 (see the module's comment), from the first unit.
    anchor: Option<Instant>,
    phase: Phase,
    /// Bytes handed out in `Transmit`s since the last `Stats`.
    unreported: u64,
    outputs: VecDeque<Output>,
    closed: bool,
}

/// How often str0m reports its statistics (`Output::Stats`).
const STATS_EVERY: Duration = Duration::from_secs(1);

/// The ICE-lite, send-only configuration: H.264 and Opus, our own ICE credentials (the
/// endpoint routes a browser's first datagram by its username fragment).
fn config(creds: IceCreds, cert: Option<DtlsCert>) -> RtcConfig {
    let config = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .set_stats_interval(Some(STATS_EVERY))
        .set_local_ice_credentials(creds);
    match cert {
        Some(cert) => config.set_dtls_cert(cert),
        None => config,
    }
}

impl WebRtcPeer {
    /// Answers a browser's offer: the peer connection and the answer's SDP. `local`: the
    /// host candidate (address and port the browser sends to); `cert`: the shard's DTLS
    /// certificate (made once; a new one per peer costs a key generation).
    pub fn answer(
        offer: &str,
        local: SocketAddr,
        creds: IceCreds,
        cert: Option<DtlsCert>,
        now: Instant,
    ) -> Result<(WebRtcPeer, String), OfferError> {
        Self::answer_for(offer, local, creds, cert, None, now)
    }

    /// `answer` for a stream whose H.264 is `video` (when known): the video goes out on a
    /// payload type whose profile decodes it, the stream's own profile first; an offer
    /// with none is refused (`OfferError::Profile`).
    pub fn answer_for(
        offer: &str,
        local: SocketAddr,
        creds: IceCreds,
        cert: Option<DtlsCert>,
        video: Option<&VideoConfig>,
        now: Instant,
    ) -> Result<(WebRtcPeer, String), OfferError> {
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| OfferError::Sdp(e.to_string()))?;
        let mut rtc = config(creds, cert).build(now);
        let candidate = Candidate::host(local, "udp").map_err(|_| OfferError::Candidate)?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::Sdp(e.to_string()))?;
        let mut peer = WebRtcPeer {
            rtc,
            local,
            remote: None,
            video: None,
            audio: None,
            anchor: None,
            phase: Phase::Offered,
            unreported: 0,
            outputs: VecDeque::new(),
            closed: false,
        };
        peer.drain();
        let answer = answer.to_sdp_string();
        // str0m tells of the media only once SRTP is up: read the mids here.
        let mid = section_mid(&answer, "video").ok_or(OfferError::NoH264)?;
        peer.h264_pt(mid, None).ok_or(OfferError::NoH264)?;
        let stream = video.map(|v| (v.profile_idc, v.constraint_flags));
        let pt = peer.h264_pt(mid, stream).ok_or_else(|| {
            OfferError::Profile(video.map(|v| v.codec_string()).unwrap_or_default())
        })?;
        peer.video = Some((mid, pt));
        let audio = section_mid(&answer, "audio").and_then(|mid| Some((mid, peer.opus_pt(mid)?)));
        peer.audio = audio;
        Ok((peer, answer))
    }

    /// How far the connection got.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the answer sends Opus (the offer had an audio section with it).
    pub fn sends_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Bytes sent since the last `Stats` (what is left to count when the session ends).
    pub fn take_unreported(&mut self) -> u64 {
        std::mem::take(&mut self.unreported)
    }

    /// The browser's address: where its datagrams come from.
    pub fn set_remote(&mut self, remote: SocketAddr) {
        self.remote = Some(remote);
    }

    /// Takes one datagram from the browser (STUN, DTLS, SRTCP); it is used whole.
    pub fn handle_input(&mut self, datagram: &[u8], now: Instant) -> Result<usize, PeerError> {
        let Some(source) = self.remote else {
            return Err(PeerError("no remote address yet".into()));
        };
        let contents = datagram
            .try_into()
            .map_err(|e| PeerError(format!("unrecognised datagram: {e:?}")))?;
        let receive = Receive {
            proto: Protocol::Udp,
            source,
            destination: self.local,
            contents,
        };
        let result = self.rtc.handle_input(Input::Receive(now, receive));
        self.drain();
        result
            .map(|()| datagram.len())
            .map_err(|e| PeerError(e.to_string()))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            log::debug!("webrtc: timeout: {e}");
        }
        self.drain();
    }

    /// Sends one media unit the viewer wrote (`viewer::read_unit`). Units written before
    /// the connection is up are dropped by str0m.
    pub fn send(&mut self, unit: &[u8], now: Instant) -> Result<(), &'static str> {
        let Some(unit) = read_unit(unit) else {
            return Ok(());
        };
        let (track, rate) = match unit.track {
            TrackKind::Video => (self.video, Frequency::NINETY_KHZ),
            TrackKind::Audio => (self.audio, Frequency::FORTY_EIGHT_KHZ),
        };
        // No audio section in the offer: its units are dropped.
        let Some((mid, pt)) = track else {
            return match unit.track {
                TrackKind::Video => Err("no video track"),
                TrackKind::Audio => Ok(()),
            };
        };
        let time = MediaTime::new(unit.pts, rate);
        let wallclock = self.wallclock(time, now);
        let Some(writer) = self.rtc.writer(mid) else {
            return Err("the media track is gone");
        };
        let written = writer.write(pt, wallclock, time, unit.payload);
        self.drain();
        written.map_err(|_| "the peer connection refused a frame")
    }

    /// The wallclock of media time `time`: the anchor plus the time, the anchor moved
    /// back when that would be later than `now` (see the module's comment).
    fn wallclock(&mut self, time: MediaTime, now: Instant) -> Instant {
        let offset = Duration::from(time);
        let anchor = match self.anchor {
            Some(anchor) if anchor + offset <= now => anchor,
            _ => now.checked_sub(offset).unwrap_or(now),
        };
        self.anchor = Some(anchor);
        anchor + offset
    }

    /// Ends the connection (a DTLS close alert goes out).
    pub fn close(&mut self) {
        self.rtc.disconnect();
        self.drain();
    }

    pub fn awaiting_authorization(&self) -> bool {
        false
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Drains str0m's outputs up to its next timeout into the queue.
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(str0m::Output::Timeout(at)) => {
                    self.outputs.push_back(Output::Timeout(at));
                    return;
                }
                Ok(str0m::Output::Transmit(t)) => {
                    self.unreported += t.contents.len() as u64;
                    self.outputs
                        .push_back(Output::Transmit(t.contents.to_vec()));
                }
                Ok(str0m::Output::Event(event)) => self.event(event),
                Err(e) => {
                    log::debug!("webrtc: {e}");
                    self.close_with("peer connection error");
                    return;
                }
            }
        }
    }

    fn close_with(&mut self, why: &'static str) {
        if !self.closed {
            self.closed = true;
            self.outputs.push_back(Output::Closed(why));
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.phase = Phase::Connected;
                self.outputs.push_back(Output::Connected);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if self.phase == Phase::Offered => self.phase = Phase::IceUp,
            // One report a second: the video's (every offer has it).
            Event::MediaEgressStats(stats) if self.video.is_some_and(|(v, _)| v == stats.mid) => {
                let sent = self.take_unreported();
                self.outputs.push_back(Output::Stats {
                    sent,
                    rtt: stats.rtt,
                });
            }
            Event::KeyframeRequest(KeyframeRequest { mid, .. })
                if self.video.is_some_and(|(v, _)| v == mid) =>
            {
                self.outputs.push_back(Output::KeyframeRequest);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.close_with("ICE disconnected");
            }
            _ => {}
        }
    }

    /// The payload type for Opus on the audio section.
    fn opus_pt(&mut self, mid: Mid) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let mut opus = writer
            .payload_params()
            .filter(|p| p.spec().codec == Codec::Opus);
        opus.next().map(|p| p.pt())
    }

    /// The payload type for H.264 in packetization mode 1 that decodes `stream` (profile_idc
    /// and constraint flags; any when unknown): the stream's own profile first, then
    /// Constrained Baseline, Baseline, the others.
    fn h264_pt(&mut self, mid: Mid, stream: Option<(u8, u8)>) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let mode1 = writer.payload_params().filter(|p| {
            let spec = p.spec();
            spec.codec == Codec::H264 && spec.format.packetization_mode == Some(1)
        });
        let offered = |p: &str0m::format::PayloadParams| {
            let id = p.spec().format.profile_level_id.unwrap_or(0x42e01f);
            ((id >> 16) as u8, (id >> 8) as u8)
        };
        let rank = |(idc, iop): (u8, u8)| {
            let own = stream.is_some_and(|(s, _)| s == idc);
            let base = match (idc, iop & 0x40 != 0) {
                (66, true) => 0,
                (66, false) => 1,
                _ => 2,
            };
            (!own, base)
        };
        mode1
            .filter(|p| stream.is_none_or(|s| decodes(offered(p), s)))
            .min_by_key(|p| rank(offered(p)))
            .map(|p| p.pt())
    }
}

/// Whether a decoder of the offered profile (profile_idc, profile-iop) decodes a stream of
/// `stream`'s (profile_idc, constraint flags): each profile's decoders take the profiles it
/// contains (Constrained Baseline ⊂ Main ⊂ High ⊂ High 10/4:2:2/4:4:4); a Baseline stream
/// without constraint_set1 (it may use Baseline-only tools) only Baseline decoders.
fn decodes((offered, iop): (u8, u8), (profile, flags): (u8, u8)) -> bool {
    const HIGH_AND_UP: [u8; 4] = [100, 110, 122, 244];
    let constrained = flags & 0x40 != 0;
    match profile {
        66 if constrained => offered == 66 || offered == 77 || HIGH_AND_UP.contains(&offered),
        66 => offered == 66 && iop & 0x40 == 0,
        77 => offered == 77 || HIGH_AND_UP.contains(&offered),
        100 => HIGH_AND_UP.contains(&offered),
        110 | 122 => HIGH_AND_UP[1..].contains(&offered) && offered >= profile,
        other => offered == other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = include_str!("../../tests/data/chromium_whep_offer.sdp");

    fn creds() -> IceCreds {
        IceCreds {
            ufrag: "abcdefgh".into(),
            pass: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    #[test]
    fn a_recorded_chromium_offer_is_answered_with_h264_and_the_host_candidate() {
        let local = "127.0.0.1:18090".parse().unwrap();
        let (peer, answer) =
            WebRtcPeer::answer(OFFER, local, creds(), None, Instant::now()).expect("answered");
        assert!(peer.video.is_some());
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains("a=ice-ufrag:abcdefgh"), "{answer}");
        assert!(answer.contains("127.0.0.1 18090 typ host"), "{answer}");
        assert!(answer.contains("H264/90000"), "{answer}");
        assert!(answer.contains("packetization-mode=1"), "{answer}");
        assert!(answer.contains("a=sendonly"), "{answer}");
        assert!(peer.sends_audio(), "{answer}");
        assert!(answer.contains("opus/48000/2"), "{answer}");
        assert_eq!(peer.phase(), Phase::Offered);
    }

    fn video(profile_idc: u8, constraint_flags: u8) -> VideoConfig {
        VideoConfig {
            sps: bytes::Bytes::new(),
            pps: bytes::Bytes::new(),
            width: 320,
            height: 240,
            profile_idc,
            constraint_flags,
            level_idc: 31,
            frame_rate: None,
        }
    }

    /// The recorded offer receives Baseline (42001f), Constrained Baseline (42e01f), Main
    /// (4d001f) and High 4:4:4 (f4001f), in mode 1 as pt 102, 108, 116 and 41.
    #[test]
    fn the_stream_profile_picks_the_payload_type_or_refuses_the_offer() {
        let local = "127.0.0.1:18090".parse().unwrap();
        let now = Instant::now();
        let pt_for = |v: &VideoConfig| {
            WebRtcPeer::answer_for(OFFER, local, creds(), None, Some(v), now)
                .map(|(peer, _)| *peer.video.unwrap().1)
        };
        assert_eq!(pt_for(&video(66, 0xc0)), Ok(108), "Constrained Baseline");
        assert_eq!(pt_for(&video(66, 0x80)), Ok(102), "Baseline");
        assert_eq!(pt_for(&video(77, 0x40)), Ok(116), "Main");
        // str0m answers High (64001f) but not High 4:4:4 (f4001f): this Chromium offer
        // cannot take a High stream, the same offer receiving High can.
        match WebRtcPeer::answer_for(OFFER, local, creds(), None, Some(&video(100, 0)), now) {
            Err(OfferError::Profile(codec)) => assert_eq!(codec, "avc1.64001f"),
            other => panic!("{:?}", other.map(|(_, a)| a)),
        }
        let with_high = OFFER.replace("profile-level-id=f4001f", "profile-level-id=64001f");
        let high =
            WebRtcPeer::answer_for(&with_high, local, creds(), None, Some(&video(100, 0)), now);
        assert_eq!(high.map(|(peer, _)| *peer.video.unwrap().1), Ok(41));
        assert!(!decodes((66, 0xe0), (66, 0x80)));
        assert!(decodes((100, 0), (66, 0xc0)));
    }

    #[test]
    fn an_offer_without_audio_is_answered_for_video_alone() {
        let local = "127.0.0.1:18090".parse().unwrap();
        let video_only = match OFFER.find("m=audio") {
            Some(at) => {
                let rest = &OFFER[at..];
                let end = rest.find("\r\nm=").map_or(OFFER.len(), |e| at + e + 2);
                format!("{}{}", &OFFER[..at], &OFFER[end..])
            }
            None => OFFER.to_owned(),
        };
        let video_only = video_only.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
        let (peer, answer) = WebRtcPeer::answer(&video_only, local, creds(), None, Instant::now())
            .expect("answered");
        assert!(!peer.sends_audio(), "{answer}");
        assert!(!answer.contains("opus"), "{answer}");
    }

    #[test]
    fn wallclocks_share_one_anchor_that_never_runs_ahead_of_now() {
        let local = "127.0.0.1:18090".parse().unwrap();
        let now = Instant::now();
        let (mut peer, _) = WebRtcPeer::answer(OFFER, local, creds(), None, now).unwrap();
        let later = now + Duration::from_secs(100);
        // Video at 10 s, then audio at 10.5 s: half a second apart on the wallclock too.
        let video = peer.wallclock(MediaTime::new(900_000, Frequency::NINETY_KHZ), later);
        let audio = peer.wallclock(MediaTime::new(504_000, Frequency::FORTY_EIGHT_KHZ), later);
        assert_eq!(video, later);
        assert_eq!(
            audio, later,
            "pulled back: it would have been in the future"
        );
        let after = peer.wallclock(
            MediaTime::new(480_000, Frequency::FORTY_EIGHT_KHZ),
            later + Duration::from_secs(1),
        );
        assert_eq!(audio - after, Duration::from_millis(500));
    }

    #[test]
    fn garbage_and_offers_without_h264_are_refused() {
        let local = "127.0.0.1:18090".parse().unwrap();
        let now = Instant::now();
        let garbage = WebRtcPeer::answer("v=0\r\n", local, creds(), None, now);
        assert!(matches!(garbage, Err(OfferError::Sdp(_))));
        // The same offer with its H.264 formats renamed to one tessera does not send.
        let vp8_only = OFFER.replace("H264/90000", "H265/90000");
        let refused = WebRtcPeer::answer(&vp8_only, local, creds(), None, now);
        assert!(
            matches!(refused, Err(OfferError::NoH264)),
            "{:?}",
            refused.err()
        );
    }
}
