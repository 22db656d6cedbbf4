//! HLS: playlist rendering (and the rendered media playlists a shard keeps per stream),
//! segment naming and LL-HLS blocking reload.

pub mod kept;
pub mod ll;
pub mod names;
pub mod playlist;
