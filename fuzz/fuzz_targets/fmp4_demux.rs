//! Fuzzes the HLS pull's fMP4 demuxer: the first byte says where the input splits into an
//! initialization section and a segment, and the size of the pieces the segment arrives in.
//! Any panic is a bug; so is a frame before `Media`, or of a track it does not configure.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::media::frame::TrackKind;
use tessera::mux::ts_demux::DemuxEvent;
use tessera::pull::hls::fmp4::Fmp4Demuxer;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let split = (usize::from(control) * 16).min(data.len());
    let (init, segment) = data.split_at(split);
    let mut demux = Fmp4Demuxer::new();
    // The pull never uses a demuxer whose initialization section failed.
    if demux.init(init).is_err() {
        return;
    }
    let step = usize::from(control % 17) * 61 + 1;
    let mut events = Vec::new();
    let mut info = None;
    for piece in segment.chunks(step) {
        if demux.push(piece, &mut events).is_err() {
            break;
        }
    }
    for event in events {
        match event {
            DemuxEvent::Media(m) => info = Some(m),
            DemuxEvent::Frame(f) => {
                let info = info.as_ref().expect("Media before frames");
                match f.track {
                    TrackKind::Video => assert!(info.video.is_some()),
                    TrackKind::Audio => assert!(info.audio.is_some()),
                }
            }
            DemuxEvent::Error(_) => {}
        }
    }
});
