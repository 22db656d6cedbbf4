//! Fuzzes the RTMP handshake from the first byte a client sends: the bare `ServerHandshake`
//! and a whole `RtmpConnection`, fed in pieces the way a shell feeds a socket. The first
//! input byte picks the piece size and whether the input starts with a valid digest C0+C1
//! (both layouts: the fuzzer cannot forge an HMAC), so the digest scheme, C2 and the chunk
//! stream right after it are reached too. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use tessera::rtmp::handshake::{DigestLayout, ServerHandshake, digest_c0c1};
use tessera::rtmp::session::{ConnectionConfig, RtmpConnection};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(mode & 0x3f).max(1) * 61;
    let mut input = match mode >> 6 {
        1 => digest_c0c1(DigestLayout::OffsetAt8, mode),
        2 => digest_c0c1(DigestLayout::OffsetAt772, mode),
        _ => Vec::new(),
    };
    input.extend_from_slice(data);

    let mut hs = ServerHandshake::new(u64::from(mode), 7);
    let mut out = Vec::new();
    let mut kept: Vec<u8> = Vec::new();
    for piece in input.chunks(step) {
        kept.extend_from_slice(piece);
        match hs.handle(&kept, &mut out) {
            Ok(used) => {
                assert!(used <= kept.len());
                kept.drain(..used);
            }
            Err(_) => break,
        }
        assert!(out.len() <= 1 + 2 * 1536);
        if hs.is_done() {
            break;
        }
    }

    let now = Instant::now();
    let mut conn = RtmpConnection::new(ConnectionConfig::new(1), now);
    let mut kept: Vec<u8> = Vec::new();
    for piece in input.chunks(step) {
        kept.extend_from_slice(piece);
        match conn.handle_input(&kept, now) {
            Ok(used) => {
                assert!(used <= kept.len());
                kept.drain(..used);
            }
            Err(_) => break,
        }
        while conn.poll_output().is_some() {}
        if conn.is_closed() {
            break;
        }
    }
    conn.handle_timeout(now + Duration::from_secs(3600));
    conn.peer_closed();
    while conn.poll_output().is_some() {}
});
