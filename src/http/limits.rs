//! The HTTP server's named limits live in [`crate::config`] (the shard holds them, and the
//! shard sits above `http`); this is their old path.

pub use crate::config::{HEADER_SLOTS, HttpLimits};
