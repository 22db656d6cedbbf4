//! The edge role's protocol clients, sans-IO: each takes the bytes an origin sends, says
//! what to write back, and hands decoded media (`rtmp::flv::MediaFrame`: configurations and
//! frames) to the runtime's pull driver, which feeds the stream's `LiveInput`. Time is
//! passed in; nothing here opens a socket.
//!
//! `rtmp` (the RTMP client: handshake, connect, createStream, play), `rtsp` (the RTSP client
//! over TCP interleaved: Digest/Basic auth, SDP, RFC 6184/3640 depacketizing), `srt` (the
//! SRT caller: `srt::caller`'s handshake, then MPEG-TS payloads through `mux::ts_demux`;
//! datagrams, so not a `PullClient`), `tshttp` (a continuous
//! HTTP MPEG-TS response through `mux::ts_demux`), `http` (the small HTTP/1.1 client
//! response framing both HTTP pulls share), `backoff` (reconnect delays with jitter, and
//! the failover order of a stream's sources). `hls` (HLS: playlists, the fetch schedule, TS
//! and fMP4 segments) says what to fetch and when instead of speaking over one socket.

pub mod backoff;
pub mod hls;
pub mod http;
pub mod rtmp;
pub mod rtsp;
pub mod srt;
pub mod tshttp;

use crate::rtmp::flv::MediaFrame;

/// What the runtime's pull driver needs of a protocol client.
pub trait PullClient {
    /// Bytes to write to the origin now (empty when none).
    fn take_output(&mut self) -> Vec<u8>;
    /// Consumes what it can of `buf`; returns the bytes consumed. An error fails the
    /// source (the message says why, without credentials).
    fn handle_input(&mut self, buf: &[u8]) -> Result<usize, String>;
    /// The next decoded configuration or frame.
    fn poll_media(&mut self) -> Option<MediaFrame>;
    /// The clock, for clients with timers of their own (RTSP's keep-alive).
    fn tick(&mut self, _now: std::time::Instant) {}
}

impl PullClient for rtmp::RtmpPull {
    fn take_output(&mut self) -> Vec<u8> {
        rtmp::RtmpPull::take_output(self)
    }
    fn handle_input(&mut self, buf: &[u8]) -> Result<usize, String> {
        rtmp::RtmpPull::handle_input(self, buf).map_err(|e| e.to_string())
    }
    fn poll_media(&mut self) -> Option<MediaFrame> {
        rtmp::RtmpPull::poll_media(self)
    }
}

impl PullClient for tshttp::TsHttpPull {
    fn take_output(&mut self) -> Vec<u8> {
        tshttp::TsHttpPull::take_output(self)
    }
    fn handle_input(&mut self, buf: &[u8]) -> Result<usize, String> {
        tshttp::TsHttpPull::handle_input(self, buf)
    }
    fn poll_media(&mut self) -> Option<MediaFrame> {
        tshttp::TsHttpPull::poll_media(self)
    }
}

impl PullClient for rtsp::RtspPull {
    fn take_output(&mut self) -> Vec<u8> {
        rtsp::RtspPull::take_output(self)
    }
    fn handle_input(&mut self, buf: &[u8]) -> Result<usize, String> {
        rtsp::RtspPull::handle_input(self, buf)
    }
    fn poll_media(&mut self) -> Option<MediaFrame> {
        rtsp::RtspPull::poll_media(self)
    }
    fn tick(&mut self, now: std::time::Instant) {
        rtsp::RtspPull::tick(self, now)
    }
}
