//! Fuzzes RTMP chunk reassembly and the connection state machine above it: arbitrary bytes
//! after a valid handshake, fed in pieces the way a shell feeds a socket, with every
//! authorization allowed so the fuzzer reaches play and publish. Also decodes the same bytes
//! with a bare `ChunkDecoder` under a small chunk size. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use tessera::media::frame::MediaInfo;
use tessera::rtmp::chunk::{ChunkDecoder, ChunkLimits};
use tessera::rtmp::handshake::HANDSHAKE_SIZE;
use tessera::rtmp::session::{AuthAnswer, ConnectionConfig, Output, RtmpConnection};

fuzz_target!(|data: &[u8]| {
    // Bare decoder.
    let mut dec = ChunkDecoder::new(ChunkLimits {
        max_message_size: 1 << 16,
        max_chunk_streams: 16,
    });
    let _ = dec.set_chunk_size(16);
    let mut rest = data;
    while let Ok((used, _)) = dec.decode(rest) {
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }

    // Whole connection.
    let now = Instant::now();
    let mut cfg = ConnectionConfig::new(1);
    cfg.limits.max_message_size = 1 << 16;
    let mut conn = RtmpConnection::new(cfg, now);
    let (step, data) = match data.split_first() {
        Some((&c, rest)) => (usize::from(c).max(1), rest),
        None => (1, data),
    };
    let mut input = vec![3u8];
    input.extend_from_slice(&[0u8; 2 * HANDSHAKE_SIZE]);
    input.extend_from_slice(data);
    let mut kept: Vec<u8> = Vec::new();
    let mut pos = 0;
    loop {
        let end = (pos + step).min(input.len());
        kept.extend_from_slice(&input[pos..end]);
        pos = end;
        let mut again = true;
        while again {
            again = false;
            match conn.handle_input(&kept, now) {
                Ok(used) => {
                    assert!(used <= kept.len());
                    kept.drain(..used);
                }
                Err(_) => kept.clear(),
            }
            while let Some(output) = conn.poll_output() {
                if let Output::Authorize { .. } = output {
                    conn.authorized(
                        AuthAnswer::Allowed {
                            media: MediaInfo::default(),
                        },
                        now,
                    );
                    again = true;
                }
            }
        }
        if conn.is_closed() || pos == input.len() {
            break;
        }
    }
    conn.unpublish_notify();
    conn.handle_timeout(now + Duration::from_secs(3600));
    conn.peer_closed();
    while conn.poll_output().is_some() {}
});
