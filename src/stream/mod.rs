//! Streams: the catalog of configured streams, and per stream the segmenter (owner shard)
//! and the window of recent segments (every shard).

pub mod input_status;
pub mod live_input;
pub mod publish_slot;
pub mod ring;
pub mod segment;
pub mod segmenter;
pub mod ts_feed;
pub mod view;
pub mod viewer;
pub mod webrtc_audio;
pub mod window;

/// Index of a stream in the catalog.
pub type StreamId = u32;
