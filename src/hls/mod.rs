//! HLS: playlist rendering, segment naming and LL-HLS blocking reload.

pub mod ll;
pub mod names;
pub mod playlist;
