//! Fuzzes the edge's RTSP client (`pull::rtsp::RtspPull`): response framing, the 401 and
//! Digest challenge parsing, SDP, `Session`/`Transport`/`RTP-Info`, and the interleaved RTP
//! that follows PLAY through both depacketizers. The first byte picks the read size; the
//! second, whether a well-formed OPTIONS/DESCRIBE/SETUP/PLAY exchange comes first, so the
//! fuzzer reaches the media path. Any panic is a bug; so is a frame with an empty payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use tessera::pull::rtsp::RtspPull;
use tessera::rtmp::flv::MediaFrame;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=s\r\nt=0 0\r\n\
    m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
    a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LADdkBQfsBEAAAAwAQAAADAyDxQqSA,aMuDyyA=\r\n\
    a=control:trackID=0\r\n\
    m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
    a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;\
    indexdeltalength=3;config=1190\r\na=control:trackID=1\r\n";

fn preamble() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: GET_PARAMETER\r\n\r\n");
    out.extend_from_slice(
        format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://h/s/\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1;timeout=4\r\n\r\n");
    out.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 1\r\n\r\n");
    out.extend_from_slice(
        b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nRTP-Info: url=rtsp://h/s/trackID=0;rtptime=7\r\n\r\n",
    );
    out
}

fuzz_target!(|data: &[u8]| {
    let [chunk, mode, data @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk).max(1);
    let mut pull = RtspPull::new("h", 554, "/s", Some("u:p"), 1);
    let mut input = if mode & 1 == 1 { preamble() } else { Vec::new() };
    input.extend_from_slice(data);
    let mut pending: Vec<u8> = Vec::new();
    let mut now = Instant::now();
    for piece in input.chunks(chunk) {
        pending.extend_from_slice(piece);
        let Ok(used) = pull.handle_input(&pending) else {
            return;
        };
        assert!(used <= pending.len());
        pending.drain(..used);
        now += Duration::from_secs(1);
        pull.tick(now);
        let _ = pull.take_output();
        while let Some(media) = pull.poll_media() {
            if let MediaFrame::Frame(f) = media {
                assert!(!f.data.is_empty());
            }
        }
    }
});
