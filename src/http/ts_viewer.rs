//! The media side of an HTTP MPEG-TS viewer (`/NAME/mpegts`), sans-IO: each ring frame's
//! TS packets (built once by the stream's `TsFeed`, PAT/PMT ahead of every keyframe) go
//! into the outbox as the shared `Bytes` they are: nothing is copied per viewer. The viewer
//! starts at the ring's newest keyframe, so its first bytes are PAT, PMT and an IDR.

use crate::stream::ring::FeedFrame;
use crate::stream::viewer::{FrameViewer, MediaNow, Outbox};
use bytes::Bytes;
use std::time::Instant;

/// One HTTP MPEG-TS viewer: the chunk of the frame being sent.
#[derive(Debug, Default)]
pub struct TsViewer {
    queued: Option<Bytes>,
}

impl FrameViewer for TsViewer {
    fn queue(&mut self, frame: &FeedFrame, _media: MediaNow<'_>, _now: Instant, _wall_ms: i64) {
        self.queued = Some(frame.ts.clone()).filter(|ts| !ts.is_empty());
    }

    fn write(&mut self, out: &mut Outbox, _mark: usize) -> bool {
        if let Some(ts) = self.queued.take() {
            out.push_shared(ts);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{Frame, TrackKind};
    use crate::stream::viewer::Piece;

    #[test]
    fn chunks_are_shared_not_copied() {
        let ts = Bytes::from(vec![0x47u8; 188 * 7]);
        let frame = Frame {
            track: TrackKind::Video,
            pts: 0,
            dts: 0,
            keyframe: true,
            data: Bytes::from_static(b"x"),
        };
        let flv = crate::mux::flv::frame_tag(&frame);
        let entry = FeedFrame {
            frame,
            ts: ts.clone(),
            flv,
            opus: Bytes::new(),
        };
        let mut v = TsViewer::default();
        let media = MediaNow {
            version: 0,
            info: None,
        };
        v.queue(&entry, media, Instant::now(), 0);
        let mut out = Outbox::default();
        assert!(v.write(&mut out, 0));
        let pieces: Vec<_> = out.pieces().collect();
        assert_eq!(pieces.len(), 1);
        let Piece::Shared(b) = pieces[0] else {
            panic!("copied")
        };
        assert_eq!(b.as_ptr(), ts.as_ptr());
        assert!(v.write(&mut out, 0), "nothing more queued");
        assert_eq!(out.stream_len(), 188 * 7);
    }
}
