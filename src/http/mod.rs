//! HTTP/1.1: request framing, target normalization, routing, the playback service and
//! response heads. Sans-IO; `runtime::http_conn` does the socket work.

pub mod api;
pub mod input_stats;
pub mod limits;
pub mod request;
pub mod response;
pub mod route;
pub mod service;
pub mod status;
pub mod target;
pub mod ts_viewer;
