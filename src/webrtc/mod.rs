//! WebRTC playback over WHEP (draft-ietf-wish-whep), sans-IO.
//!
//! * `whep`: the signalling vocabulary: which paths are WHEP resources, the bounded offer,
//!   the session resource's unguessable id, the token from `Authorization: Bearer`, and the
//!   STUN username that names a session (how the shard's UDP endpoint finds a peer's
//!   session from its first datagram).
//! * `peer`: `WebRtcPeer`, one browser's peer connection: str0m's `Rtc` (ICE-lite,
//!   DTLS-SRTP, RTP/RTCP, SDP offer/answer) with datagrams and the time passed in, its
//!   outputs drained into a queue after every change, as str0m asks.
//! * `viewer`: `WebRtcViewer`, the ring's frames as media units the peer sends: H.264
//!   access units in Annex B (SPS and PPS before every keyframe), starting at a keyframe
//!   and again at the next one after a PLI/FIR, and the Opus packets the input's shard
//!   made from the stream's AAC (`stream::webrtc_audio`).
//!
//! Sockets, tasks and the HTTP exchange are `runtime::webrtc_conn`'s.

pub mod peer;
pub mod viewer;
pub mod whep;

/// One shard's WebRTC counters, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebRtcStats {
    /// Peers answered whose ICE and DTLS are not up yet.
    pub connecting: u64,
    /// Peers with media flowing.
    pub connected: u64,
    /// Sessions that ended before ICE came up (no STUN check in time, or none that
    /// succeeded); a session DELETEd first is not counted.
    pub ice_failures: u64,
    /// Sessions whose ICE came up and DTLS did not.
    pub dtls_failures: u64,
    /// UDP payload bytes sent to peers (SRTP, SRTCP, DTLS, STUN).
    pub bytes_sent: u64,
    /// Round-trip times the browsers' receiver reports gave: how many, and their sum.
    pub rtt_reports: u64,
    pub rtt_sum_us: u64,
}
