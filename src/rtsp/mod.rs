//! RTSP/1.0 playback (RFC 2326), sans-IO.
//!
//! Owns: request framing and response writing ([`message`]), the SDP a DESCRIBE returns
//! ([`sdp`]), and the per-connection state machine ([`session::RtspConnection`]) that walks
//! OPTIONS → DESCRIBE → SETUP → PLAY → TEARDOWN, asks the shard's authorizer through an explicit
//! round trip, and hands the shell the transport and RTP starting values of each track.
//!
//! Never does: sockets, timers, clocks, random numbers from the OS, or authorization itself.
//! Media goes out through [`crate::rtp`]'s packetizers, driven by the shell with the values in
//! [`session::PlayStart`].

pub mod message;
pub mod sdp;
pub mod session;
pub mod viewer;

pub use message::{Method, RtspLimits, Status};
pub use session::{
    AuthAnswer, CloseReason, ConnectionConfig, Output, PlayStart, PlayTrack, PortPair,
    RtspConnection, RtspError, TrackTransport,
};
