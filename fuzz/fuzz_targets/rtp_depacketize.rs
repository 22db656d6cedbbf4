//! Fuzzes the RTP receiving side (`rtp::depacketize`): the fixed header, RFC 6184 (single
//! NAL, STAP-A, FU-A reassembly) and RFC 3640 AAC-hbr (AU headers, fragments). The input is
//! split into packets (a length byte, then that many bytes); each goes to both
//! depacketizers. Any panic is a bug; so is an access unit over the bound, or an H.264
//! unit whose 4-byte lengths do not tile it exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::rtp::depacketize::{
    AacDepacketizer, H264Depacketizer, H264Output, MAX_ACCESS_UNIT, parse_rtp,
};

fn tiles(avcc: &[u8]) -> bool {
    let mut rest = avcc;
    while !rest.is_empty() {
        let Some(len) = rest.get(..4) else {
            return false;
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(next) = rest.get(4 + len..) else {
            return false;
        };
        rest = next;
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let mut h264 = H264Depacketizer::new();
    let mut aac = AacDepacketizer::new(13, 3).expect("AAC-hbr lengths");
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        let Ok((header, payload)) = parse_rtp(packet) else {
            continue;
        };
        let _ = h264.push(&header, payload, &mut video);
        let _ = aac.push(&header, payload, &mut audio);
        for out in video.drain(..) {
            if let H264Output::Unit(unit) = out {
                assert!(unit.data.len() <= MAX_ACCESS_UNIT);
                assert!(tiles(&unit.data));
            }
        }
        for unit in audio.drain(..) {
            assert!(unit.data.len() <= MAX_ACCESS_UNIT);
        }
    }
});
