//! Containers: how frames are laid out for a protocol (MPEG-TS for HLS).

pub mod ts;
