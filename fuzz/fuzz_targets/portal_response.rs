//! Fuzzes what a portal backend sends back: the keep-alive client state machine fed in
//! arbitrary splits (head parsing, decision headers, body framing incl. chunked). A portal
//! is trusted to decide, never to crash a shard: any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Instant;
use tessera::auth::backend_client::{BackendConnection, ConnectionLimits};
use tessera::auth::portal::parse_response_head;

const REQUEST: &[u8] = b"GET /auth?name=s HTTP/1.1\r\nHost: p\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let _ = parse_response_head(data);
    let now = Instant::now();
    let mut conn = BackendConnection::new(ConnectionLimits::default(), now);
    if conn.start(REQUEST, now).is_err() {
        return;
    }
    let sent = conn.poll_transmit().len();
    conn.transmitted(sent);
    // The first byte picks the read size, so the fuzzer explores every split.
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for chunk in data.chunks(step) {
        match conn.handle_input(chunk, now) {
            Ok(Some(_)) => {
                if conn.is_idle() {
                    let _ = conn.start(REQUEST, now);
                }
            }
            Ok(None) => {}
            Err(_) if conn.is_closed() => return,
            Err(_) => {}
        }
    }
    let _ = conn.handle_eof();
});
