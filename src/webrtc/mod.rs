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
//!   and again at the next one after a PLI/FIR.
//!
//! Sockets, tasks and the HTTP exchange are `runtime::webrtc_conn`'s.

pub mod peer;
pub mod viewer;
pub mod whep;
