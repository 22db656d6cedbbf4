//! Fuzzes the SRT conclusion handshake past its cookie: a real libsrt caller's conclusion
//! head (ffmpeg's, with a passphrase) carries the cookie the listener handed out in its
//! induction reply, and the fuzzer writes everything after it: the handshake extensions
//! (HSREQ, stream id, KMREQ, congestion, any type and length). What the listener accepts
//! becomes a connection, whose stream id is parsed and which is accepted with and without a
//! passphrase (key unwrap of whatever KMREQ came) and refused, as the runtime would.
//! Any panic is a bug: a caller's handshake must only ever produce errors or outputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tessera::srt::RejectReason;
use tessera::srt::connection::{AuthAnswer, ConnectionConfig, SrtConnection};
use tessera::srt::handshake::{Listener, ListenerReply, rejection};
use tessera::srt::streamid;

/// ffmpeg 5.1 / libsrt 1.5.1: the induction, and the first 64 bytes of its conclusion (the
/// packet header and the handshake body up to the extensions).
const INDUCTION: &str = "8000000000000000000003d30000000000000004000000026ffe1f02000005dc\
                         00002000000000010a523a64000000000100007f000000000000000000000000";
const CONCLUSION_HEAD: &str = "8000000000000000000003d30000000000000005000200076ffe1f02000005dc\
                               00002000ffffffff0a523a6400c00c1e0100007f000000000000000000000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let listener = Listener::new([3; 32], now);
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let Ok(ListenerReply::Induction(reply)) = listener.handle(&hex(INDUCTION), peer, now) else {
        panic!("the captured induction is refused");
    };
    let mut conclusion = hex(CONCLUSION_HEAD);
    conclusion[44..48].copy_from_slice(&reply[44..48]);
    conclusion.extend_from_slice(data);
    let Ok(ListenerReply::Conclusion(hello)) = listener.handle(&conclusion, peer, now) else {
        return;
    };
    if let Some(id) = &hello.stream_id {
        let _ = streamid::parse(id, "token");
    }
    let _ = rejection(&hello, 7, RejectReason::FORBIDDEN, peer.ip(), 0);
    let answers = [
        AuthAnswer::Accept {
            latency: Duration::from_millis(120),
            passphrase: None,
        },
        AuthAnswer::Accept {
            latency: Duration::from_millis(120),
            passphrase: Some(b"secretpassphrase1".to_vec()),
        },
        AuthAnswer::Reject(RejectReason::FORBIDDEN),
    ];
    for answer in answers {
        let mut conn = SrtConnection::new(hello.clone(), peer, ConnectionConfig::new(7), now);
        while conn.poll_output().is_some() {}
        conn.authorized(answer, now);
        while conn.poll_output().is_some() {}
        let _ = conn.send(&[0x47; 1316], now);
        conn.handle_timeout(now + Duration::from_secs(1));
        while conn.poll_output().is_some() {}
    }
});
