//! Codec-level media: frames and decoder configurations, bit-level helpers, H.264 and AAC,
//! and the AAC → Opus transcoder for WebRTC viewers (`opus`).

pub mod aac;
pub mod bits;
pub mod frame;
pub mod h264;
pub mod opus;
