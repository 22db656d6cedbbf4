//! Codec-level media: frames and decoder configurations, bit-level helpers, H.264 and AAC.

pub mod aac;
pub mod bits;
pub mod frame;
pub mod h264;
