//! `TsFeed`: a stream's frames as a continuous MPEG-TS, one chunk per frame, for HTTP
//! MPEG-TS viewers (`/NAME/mpegts`).
//!
//! The owner shard muxes each frame once here (separately from the segmenter, whose
//! segments must each start with their own PAT/PMT and whose buffer is frozen whole); the
//! chunk travels with the frame to every shard's `FrameRing`, and every viewer writes the
//! same chunks. PAT and PMT lead every random access point, so a viewer that joins (or skips
//! ahead) at a keyframe chunk gets a self-describing stream. Continuity counters run on
//! across the whole feed; a joining viewer's first packets simply start its count.

use crate::media::frame::{Frame, MediaInfo, TrackKind};
use crate::mux::ts::{TsError, TsMuxer};
use bytes::{Bytes, BytesMut};

/// Buffer reserved at a time; chunks are split off it, so most frames allocate nothing.
const RESERVE: usize = 256 * 1024;

pub struct TsFeed {
    muxer: TsMuxer,
    has_video: bool,
    buffer: BytesMut,
}

impl TsFeed {
    pub fn new(info: &MediaInfo) -> Self {
        TsFeed {
            muxer: TsMuxer::new(info),
            has_video: info.video.is_some(),
            buffer: BytesMut::new(),
        }
    }

    /// The frame's TS packets (preceded by PAT/PMT at random access points).
    pub fn chunk(&mut self, frame: &Frame) -> Result<Bytes, TsError> {
        if self.buffer.capacity() < frame.data.len() + 4096 {
            self.buffer.reserve(RESERVE.max(frame.data.len() * 2));
        }
        let random_access = match frame.track {
            TrackKind::Video => frame.keyframe,
            TrackKind::Audio => !self.has_video,
        };
        if random_access {
            self.muxer.write_tables(&mut self.buffer);
        }
        if let Err(e) = self.muxer.write_frame(frame, &mut self.buffer) {
            self.buffer.clear();
            return Err(e);
        }
        Ok(self.buffer.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fake::FakeSource;

    #[test]
    fn keyframe_chunks_start_with_tables_and_every_chunk_is_whole_packets() {
        let mut source = FakeSource::new(0, 25);
        let mut feed = TsFeed::new(&source.media_info());
        let mut frames = Vec::new();
        source.poll(90_000 * 2, &mut frames);
        let mut keyframes = 0;
        for f in &frames {
            let chunk = feed.chunk(f).unwrap();
            assert_eq!(chunk.len() % 188, 0);
            assert!(chunk.chunks(188).all(|p| p[0] == 0x47));
            let pid = |p: &[u8]| (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            if f.track == TrackKind::Video && f.keyframe {
                keyframes += 1;
                assert_eq!(pid(&chunk[..188]), 0, "PAT first");
                assert_eq!(pid(&chunk[188..376]), 0x1000, "PMT second");
            } else {
                assert_ne!(pid(&chunk[..188]), 0);
            }
        }
        assert!(keyframes >= 2);
    }
}
