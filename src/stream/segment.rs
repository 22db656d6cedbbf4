//! A finished media segment: built once by the segmenter, then shared (`Bytes` clones) by
//! every shard and every viewer.

use bytes::Bytes;

#[derive(Clone, Debug)]
pub struct Segment {
    /// Media sequence number, counting from 0 for the stream's first segment.
    pub sequence: u64,
    /// Wall-clock time of the segment's first frame, ms since the epoch (UTC).
    pub start_utc_ms: i64,
    /// Duration in milliseconds.
    pub duration_ms: u32,
    /// The MPEG-TS bytes, PAT/PMT first, starting with a keyframe.
    pub ts: Bytes,
    /// The same frames as one fMP4 fragment (moof + mdat), when the stream has fMP4 output.
    pub fmp4: Option<Bytes>,
}

impl Segment {
    /// The start second that names the segment in URLs.
    pub fn start_second(&self) -> i64 {
        self.start_utc_ms.div_euclid(1000)
    }
}
