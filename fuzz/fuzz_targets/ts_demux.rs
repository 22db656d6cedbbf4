//! Fuzzes the sans-IO MPEG-TS demuxer: arbitrary bytes pushed in pieces of every size, the
//! way SRT datagrams and HTTP reads arrive, optionally after a valid PAT and PMT (H.264 on
//! PID 0x100, AAC on PID 0x101) so the fuzzer reaches PES reassembly, H.264 and ADTS at
//! once. Any panic is a bug; so is a frame that breaks tessera's `Frame` layout (a video
//! frame that is not clean 4-byte AVCC, or holds AUD/SPS/PPS; a frame of a track that has
//! no configuration; an empty payload).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::media::frame::{MediaInfo, TrackKind};
use tessera::media::h264;
use tessera::mux::ts::crc32_mpeg2;
use tessera::mux::ts_demux::{DemuxEvent, TsDemuxer};

/// A long-form PSI section (§2.4.4) with its CRC_32, in one packet on `pid`.
fn section_packet(pid: u16, table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let len = 5 + body.len() + 4;
    let mut s = vec![table_id, 0xB0 | (len >> 8) as u8, len as u8];
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&[0xC1, 0x00, 0x00]);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    let mut p = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0x00];
    p.extend_from_slice(&s);
    p.resize(188, 0xFF);
    p
}

/// PAT (program 1 on PID 0x1000) and PMT (H.264 on 0x100, AAC ADTS on 0x101).
fn tables() -> Vec<u8> {
    let mut ts = section_packet(0, 0x00, 1, &[0x00, 0x01, 0xF0, 0x00]);
    let pmt = [
        0xE1, 0x00, 0xF0, 0x00, // PCR_PID 0x100, no program descriptors
        0x1B, 0xE1, 0x00, 0xF0, 0x00, // H.264 on 0x100
        0x0F, 0xE1, 0x01, 0xF0, 0x00, // AAC ADTS on 0x101
    ];
    ts.extend(section_packet(0x1000, 0x02, 1, &pmt));
    ts
}

fn check(events: &mut Vec<DemuxEvent>, media: &mut MediaInfo) {
    for event in events.drain(..) {
        match event {
            DemuxEvent::Media(m) => *media = m,
            DemuxEvent::Error(e) => {
                let _ = e.to_string();
            }
            DemuxEvent::Frame(f) => {
                assert!(!f.data.is_empty(), "empty frame");
                match f.track {
                    TrackKind::Audio => assert!(media.audio.is_some(), "audio before config"),
                    TrackKind::Video => {
                        assert!(media.video.is_some(), "video before config");
                        for nal in h264::avcc_nal_units(&f.data) {
                            let nal = nal.expect("frame is clean AVCC");
                            let kind = h264::nal_unit_type(nal);
                            assert!(!matches!(kind, Some(7..=9)), "NAL type {kind:?} in frame");
                        }
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let mut input = if control & 0x80 != 0 {
        tables()
    } else {
        Vec::new()
    };
    input.extend_from_slice(data);
    let n = usize::from(control & 0x7F);
    let step = if n == 0 { input.len().max(1) } else { n * n };

    let mut demuxer = TsDemuxer::new();
    let mut events = Vec::new();
    let mut media = MediaInfo::default();
    for chunk in input.chunks(step) {
        demuxer.push(chunk, &mut events);
        check(&mut events, &mut media);
    }
    demuxer.finish(&mut events);
    check(&mut events, &mut media);
});
