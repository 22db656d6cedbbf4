//! Named limits of the HTTP server. Every number that bounds what a client can make a shard
//! hold or wait for lives here, so an operator (and a reviewer) finds them in one place.
//! `http` enforces them; every shard holds a copy (`ShardState::limits`).

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Longest request target accepted; longer gets `414 URI Too Long`.
    pub max_uri_bytes: usize,
    /// Largest request head (request line + headers); larger gets `431`.
    pub max_head_bytes: usize,
    /// Most header fields in one request; more gets `431`.
    pub max_headers: usize,
    /// Largest request body a client may send with a GET/HEAD (it is read and discarded);
    /// larger gets `413` and the connection is closed.
    pub max_body_bytes: usize,
    /// How long a client may take to send a whole request head, and how long a keep-alive
    /// connection may sit idle between requests.
    pub read_timeout: Duration,
    /// How long a write may stall (a viewer that stops reading) before the connection is
    /// dropped.
    pub write_timeout: Duration,
    /// Open HTTP connections per shard; past it new connections get `503` and are closed.
    /// The runtime sets it from the file limit (`ConnectionCaps`).
    pub max_connections_per_shard: usize,
    /// How long a new connection may take to send its first whole request head
    /// (`handshake_timeout`); later heads get `read_timeout`.
    pub first_request_timeout: Duration,
}

/// The httparse header array size; `max_headers` cannot exceed it.
pub const HEADER_SLOTS: usize = 64;

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_uri_bytes: 4096,
            max_head_bytes: 16 * 1024,
            max_headers: HEADER_SLOTS,
            max_body_bytes: 64 * 1024,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(20),
            max_connections_per_shard: 10_000,
            first_request_timeout: Duration::from_secs(5),
        }
    }
}
