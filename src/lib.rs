//! tessera: an edge media server that authorizes every play request.
//!
//! The module tree follows the data path (see ARCHITECTURE.md):
//! `source` (inputs) → `stream` (segmenter, windows, catalog) → `mux` (containers) →
//! `hls` / `http` (protocols) → viewer, with `auth` beside the path, entered from one phase.
//! `runtime` is the only module that touches sockets, threads and timers.

pub mod auth;
pub mod catalog;
pub mod config;
pub mod constant_time;
pub mod dash;
pub mod hls;
pub mod http;
pub mod logging;
pub mod media;
pub mod mss;
pub mod mux;
pub mod player;
pub mod pull;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub mod runtime;
pub mod shard;
pub mod source;
pub mod srt;
pub mod stream;
pub mod uri;
pub mod utc;
pub mod webrtc;
