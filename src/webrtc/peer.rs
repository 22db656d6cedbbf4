//! One browser's peer connection, sans-IO: str0m's `Rtc` as an ICE-lite, send-only WHEP
//! server, with datagrams and the time passed in.
//!
//! str0m asks that every change (a datagram, a timeout, a media write) be followed by
//! draining its outputs up to the next timeout before the next change; `WebRtcPeer` does
//! that drain after each of its calls and keeps what it found in a queue, so its own
//! `poll_output` can be polled at any time, like every other protocol machine here.

use crate::media::frame::TrackKind;
use crate::webrtc::viewer::read_unit;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;
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
    /// An address str0m cannot use as a candidate.
    Candidate,
}

impl std::fmt::Display for OfferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfferError::Sdp(e) => write!(f, "invalid offer: {e}"),
            OfferError::NoH264 => f.write_str("the offer does not receive H.264 (mode 1)"),
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

/// The mid of the answer's first video section that is not rejected (port 0).
fn video_mid(answer: &str) -> Option<Mid> {
    let mut in_video = false;
    for line in answer.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            in_video = media.starts_with("video ") && !media.starts_with("video 0 ");
        } else if let Some(mid) = line.strip_prefix("a=mid:").filter(|_| in_video) {
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
    outputs: VecDeque<Output>,
    closed: bool,
}

/// The ICE-lite, send-only configuration: H.264 and Opus, our own ICE credentials (the
/// endpoint routes a browser's first datagram by its username fragment).
fn config(creds: IceCreds, cert: Option<DtlsCert>) -> RtcConfig {
    let config = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
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
            outputs: VecDeque::new(),
            closed: false,
        };
        peer.drain();
        let answer = answer.to_sdp_string();
        // str0m tells of the media only once SRTP is up: read the video's mid here.
        let mid = video_mid(&answer).ok_or(OfferError::NoH264)?;
        let pt = peer.h264_pt(mid).ok_or(OfferError::NoH264)?;
        peer.video = Some((mid, pt));
        Ok((peer, answer))
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
        let (mid, pt) = match unit.track {
            TrackKind::Video => self.video.ok_or("no video track")?,
            TrackKind::Audio => return Ok(()),
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return Err("the video track is gone");
        };
        let time = MediaTime::new(unit.pts, Frequency::NINETY_KHZ);
        let written = writer.write(pt, now, time, unit.payload);
        self.drain();
        written.map_err(|_| "the peer connection refused a frame")
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
            Event::Connected => self.outputs.push_back(Output::Connected),
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

    /// The payload type for H.264 in packetization mode 1, Constrained Baseline first.
    fn h264_pt(&mut self, mid: Mid) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let mode1 = writer.payload_params().filter(|p| {
            let spec = p.spec();
            spec.codec == Codec::H264 && spec.format.packetization_mode == Some(1)
        });
        let rank = |profile: Option<u32>| match profile.map(|p| p >> 8) {
            Some(0x42e0) => 0,
            Some(0x4200) => 1,
            _ => 2,
        };
        mode1
            .min_by_key(|p| rank(p.spec().format.profile_level_id))
            .map(|p| p.pt())
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
