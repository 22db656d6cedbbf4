//! A finished media segment and the LL-HLS parts it is made of: built once by the
//! segmenter, then shared (`Bytes` clones) by every shard and every viewer.

use bytes::Bytes;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Segment {
    /// Media sequence number, counting from 0 for the stream's first segment.
    pub sequence: u64,
    /// Wall-clock time of the segment's first frame, ms since the epoch (UTC).
    pub start_utc_ms: i64,
    /// Decode time of the first frame, 90 kHz (the fMP4 fragment's video `tfdt`; DASH
    /// `$Time$`).
    pub start_dts: i64,
    /// Decode time where the next segment starts, 90 kHz (exact, unlike `duration_ms`).
    pub end_dts: i64,
    /// Duration in milliseconds.
    pub duration_ms: u32,
    /// The MPEG-TS bytes, PAT/PMT first, starting with a keyframe.
    pub ts: Bytes,
    /// The same frames in fMP4 (its parts' moof + mdat pairs, back to back), when the stream
    /// has fMP4 output. fMP4 HLS and LL-HLS serve these bytes as the segment.
    pub fmp4: Option<Bytes>,
    /// The LL-HLS parts of the segment, in order; each part's bytes are a slice of `fmp4`.
    pub parts: Arc<[Part]>,
    /// The same frames as one single-track fragment per track, for DASH (one adaptation set
    /// per track, which every DASH client handles).
    pub dash: DashFragments,
    /// The Smooth Streaming fragments of the segment *before* this one (see [`MssFragments`]).
    pub mss: MssFragments,
}

/// A segment's single-track fMP4 fragments. Both are addressed by the segment's
/// `start_dts`: the audio fragment's own first sample may sit up to one AAC frame away,
/// which players absorb, while one timeline for both tracks keeps `t + d` of every entry
/// equal to the next entry's `t`, the address a player computes.
#[derive(Clone, Debug, Default)]
pub struct DashFragments {
    pub video: Option<Bytes>,
    pub audio: Option<Bytes>,
}

/// Smooth Streaming fragments, one per track, of the segment before the one that carries them.
/// They come one segment late because a live MSS fragment announces the next fragment's time
/// and duration (`tfrf`, which clients use instead of reloading the manifest), and the next
/// fragment's duration is known only once it is cut.
#[derive(Clone, Debug, Default)]
pub struct MssFragments {
    pub video: Option<MssFragment>,
    pub audio: Option<MssFragment>,
}

/// One track's MSS fragment and its place on the track's timeline (the track's timescale:
/// 90 kHz video, the sample rate for audio), which the manifest lists as `<c t= d=>` and
/// the fragment URL names.
#[derive(Clone, Debug)]
pub struct MssFragment {
    pub time: u64,
    pub duration: u64,
    pub bytes: Bytes,
}

/// One LL-HLS partial segment (RFC 8216bis §4.4.4.9): a run of the open segment's frames
/// as one fMP4 fragment (moof + mdat) against the same init segment as fMP4 HLS.
#[derive(Clone, Debug)]
pub struct Part {
    /// Media sequence number of the segment it belongs to.
    pub segment: u64,
    /// Position in that segment, from 0.
    pub index: u32,
    /// Decode time of its first frame and of the next part's first frame, 90 kHz.
    pub start_dts: i64,
    pub end_dts: i64,
    /// Wall-clock time of its first frame, ms since the epoch (UTC).
    pub start_utc_ms: i64,
    /// Starts with a video keyframe (or the stream has no video): `INDEPENDENT=YES`.
    pub independent: bool,
    pub fmp4: Bytes,
}

impl Part {
    /// Duration in milliseconds, rounded down (so it never exceeds the part target).
    pub fn duration_ms(&self) -> u32 {
        ((self.end_dts - self.start_dts).max(0) * 1000 / crate::media::frame::TIMESCALE)
            .min(i64::from(u32::MAX)) as u32
    }

    /// Wall-clock time where the part ends, ms since the epoch.
    pub fn end_utc_ms(&self) -> i64 {
        self.start_utc_ms + i64::from(self.duration_ms())
    }
}

impl Segment {
    /// Wall-clock ms of media time 0 (what DASH calls availabilityStartTime).
    pub fn utc_of_zero_ms(&self) -> i64 {
        self.start_utc_ms - self.start_dts * 1000 / crate::media::frame::TIMESCALE
    }

    /// The start second that names the segment in URLs.
    pub fn start_second(&self) -> i64 {
        self.start_utc_ms.div_euclid(1000)
    }
}
