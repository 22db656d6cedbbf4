//! Fuzzes the sans-IO RTSP connection: framing, request-URI normalization, transport
//! negotiation and the session state machine. Arbitrary bytes are fed the way a shell feeds a
//! socket (in chunks, keeping what was not consumed), and every authorization request is
//! allowed with a fixed stream description, so the fuzzer can reach SETUP and PLAY.
//! Any panic is a bug: untrusted bytes must only ever produce a status or a close.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use tessera::media::frame::{AudioConfig, MediaInfo, VideoConfig};
use tessera::rtsp::session::{AuthAnswer, ConnectionConfig, Output, PortPair, RtspConnection};

/// Built without naming the `bytes` crate, which the fuzz crate does not depend on.
fn media() -> MediaInfo {
    MediaInfo {
        video: Some(VideoConfig {
            sps: (&[0x67u8, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb][..]).into(),
            pps: (&[0x68u8, 0xcb, 0x83, 0xcb, 0x20][..]).into(),
            width: 320,
            height: 240,
            profile_idc: 0x42,
            constraint_flags: 0xc0,
            level_idc: 0x0d,
            frame_rate: Some((25, 1)),
        }),
        audio: Some(AudioConfig {
            asc: (&[0x11u8, 0x90][..]).into(),
            object_type: 2,
            sample_rate: 48_000,
            channels: 2,
        }),
    }
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut cfg = ConnectionConfig::new(0x5eed);
    cfg.udp_server_ports = Some([
        PortPair {
            rtp: 6970,
            rtcp: 6971,
        },
        PortPair {
            rtp: 6972,
            rtcp: 6973,
        },
    ]);
    let mut conn = RtspConnection::new(cfg, now);
    // The first byte picks the chunk size, so the fuzzer explores split reads too.
    let (chunk, data) = match data.split_first() {
        Some((&c, rest)) => (usize::from(c).max(1), rest),
        None => (1, data),
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut pos = 0;
    loop {
        let end = (pos + chunk).min(data.len());
        kept.extend_from_slice(&data[pos..end]);
        pos = end;
        match conn.handle_input(&kept, now) {
            Ok(used) => {
                assert!(used <= kept.len());
                kept.drain(..used);
            }
            Err(_) => kept.clear(),
        }
        let mut answered = false;
        while let Some(output) = conn.poll_output() {
            if let Output::Authorize { .. } = output {
                conn.authorized(AuthAnswer::Allowed { media: media() }, now);
                answered = true;
            }
        }
        if conn.is_closed() || (pos == data.len() && !answered) {
            break;
        }
    }
    conn.handle_timeout(now + Duration::from_secs(3600));
    while conn.poll_output().is_some() {}
});
