//! HLS: playlist rendering and segment naming.

pub mod names;
pub mod playlist;
