//! `Segmenter`: cuts a stream's frames into segments at keyframes, in two containers at
//! once: MPEG-TS and an fMP4 fragment of the same frames.
//!
//! A segment closes at the first video keyframe at or after `target_ms` of media, so every
//! segment starts with a keyframe (and PAT/PMT) and plays on its own. A stream without video
//! cuts on duration alone. Each segment is muxed once per container and frozen into
//! `Bytes`; nothing downstream copies it. The open segment's frames are held as `Bytes`
//! references until the fMP4 fragment is written at the cut.
//!
//! Smooth Streaming fragments are written one segment late: each announces the next
//! fragment's time and duration (`tfrf`), so segment k's are written when k+1 is cut, from
//! k's frames (kept until then) and published with segment k+1 (`Segment::mss`).

use crate::media::frame::{Frame, MediaInfo, TIMESCALE, TrackKind};
use crate::mux::fmp4::{Fmp4Muxer, Tracks};
use crate::mux::ts::{TsError, TsMuxer};
use crate::stream::segment::{DashFragments, MssFragment, MssFragments, Segment};
use bytes::BytesMut;

pub struct Segmenter {
    muxer: TsMuxer,
    /// `None` when the stream's tracks cannot be carried in fMP4 (then only TS is served).
    fmp4: Option<Fmp4Muxer>,
    /// Single-track muxers for DASH.
    dash_video: Option<Fmp4Muxer>,
    dash_audio: Option<Fmp4Muxer>,
    /// Frames of the open segment, for the fMP4 fragments.
    open_frames: Vec<Frame>,
    /// Frames of the last closed segment, for its MSS fragments (written at the next cut).
    previous_frames: Vec<Frame>,
    /// Sequence number and end decode time of the last closed segment, once there is one.
    previous: Option<(u64, i64)>,
    has_video: bool,
    target_ticks: i64,
    /// Wall-clock time (ms) of timestamp 0.
    utc_base_ms: i64,
    buffer: BytesMut,
    /// DTS of the open segment's first frame, when a segment is open.
    open_since: Option<i64>,
    next_sequence: u64,
    last_size: usize,
}

impl Segmenter {
    pub fn new(info: &MediaInfo, target_ms: u32, utc_base_ms: i64) -> Self {
        let fmp4 = match Fmp4Muxer::new(info) {
            Ok(m) => Some(m),
            Err(e) => {
                log::warn!("no fMP4 output for this stream: {e}");
                None
            }
        };
        let single = |tracks| Fmp4Muxer::for_tracks(info, tracks).ok();
        Segmenter {
            muxer: TsMuxer::new(info),
            dash_video: info.video.as_ref().and_then(|_| single(Tracks::Video)),
            dash_audio: info.audio.as_ref().and_then(|_| single(Tracks::Audio)),
            fmp4,
            open_frames: Vec::with_capacity(256),
            previous_frames: Vec::with_capacity(256),
            previous: None,
            has_video: info.video.is_some(),
            target_ticks: i64::from(target_ms) * TIMESCALE / 1000,
            utc_base_ms,
            buffer: BytesMut::new(),
            open_since: None,
            next_sequence: 0,
            last_size: 256 * 1024,
        }
    }

    /// Numbers segments from `sequence` on (an input that continues a stream's timeline).
    pub fn starting_at(mut self, sequence: u64) -> Self {
        self.next_sequence = sequence;
        self
    }

    /// The sequence number the next segment gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Closes the open segment early (the input stopped), ending it at `end_dts`; `None`
    /// when no segment is open or it would be empty.
    pub fn finish(&mut self, end_dts: i64) -> Option<Segment> {
        let since = self.open_since?;
        if end_dts <= since || self.open_frames.is_empty() && self.buffer.is_empty() {
            self.open_since = None;
            self.buffer.clear();
            self.open_frames.clear();
            return None;
        }
        Some(self.close(end_dts))
    }

    /// Feeds one frame; returns the segment it closed, if any.
    pub fn push(&mut self, frame: &Frame) -> Result<Option<Segment>, TsError> {
        let starts_segment = match frame.track {
            TrackKind::Video => frame.keyframe,
            TrackKind::Audio => !self.has_video,
        };
        let mut finished = None;
        if starts_segment {
            if let Some(since) = self.open_since {
                if frame.dts - since >= self.target_ticks {
                    finished = Some(self.close(frame.dts));
                }
            }
            if self.open_since.is_none() {
                self.open(frame.dts);
            }
        }
        if self.open_since.is_some() {
            self.muxer.write_frame(frame, &mut self.buffer)?;
            if self.fmp4.is_some() || self.dash_video.is_some() || self.dash_audio.is_some() {
                self.open_frames.push(frame.clone());
            }
        }
        Ok(finished)
    }

    fn open(&mut self, dts: i64) {
        // Reserve about one segment so muxing rarely reallocates.
        self.buffer.reserve(self.last_size + self.last_size / 4);
        self.muxer.write_tables(&mut self.buffer);
        self.open_since = Some(dts);
    }

    fn close(&mut self, end_dts: i64) -> Segment {
        let start = self.open_since.take().unwrap_or(end_dts);
        let ts = self.buffer.split().freeze();
        self.last_size = ts.len();
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let fmp4 = self.fmp4.as_mut().and_then(|m| {
            // mfhd sequence numbers start at 1 and are 32-bit.
            let fragment_sequence = (sequence as u32).wrapping_add(1);
            match m.fragment(fragment_sequence, &self.open_frames, end_dts) {
                Ok(f) => Some(f),
                Err(e) => {
                    log::warn!("segment {sequence}: no fMP4 fragment: {e}");
                    None
                }
            }
        });
        let dash = self.dash_fragments(sequence, end_dts);
        let mss = self.mss_fragments(end_dts);
        // The closed segment's frames wait for the next cut, for its own MSS fragments.
        std::mem::swap(&mut self.previous_frames, &mut self.open_frames);
        self.open_frames.clear();
        self.previous = Some((sequence, end_dts));
        Segment {
            dash,
            mss,
            fmp4,
            sequence,
            start_dts: start,
            end_dts,
            start_utc_ms: self.utc_base_ms + start * 1000 / TIMESCALE,
            duration_ms: ((end_dts - start) * 1000 / TIMESCALE).clamp(0, i64::from(u32::MAX))
                as u32,
            ts,
        }
    }

    fn dash_fragments(&mut self, sequence: u64, end_dts: i64) -> DashFragments {
        let fragment_sequence = (sequence as u32).wrapping_add(1);
        let frames = &self.open_frames;
        let make = |muxer: &mut Option<Fmp4Muxer>| {
            muxer
                .as_mut()
                .and_then(|m| match m.fragment(fragment_sequence, frames, end_dts) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        log::warn!("segment {sequence}: no DASH fragment: {e}");
                        None
                    }
                })
        };
        DashFragments {
            video: make(&mut self.dash_video),
            audio: make(&mut self.dash_audio),
        }
    }

    /// The MSS fragments of the previous segment, each announcing the fragment of the segment
    /// being closed (its frames are `open_frames`, ending at `end_dts`). The single-track
    /// DASH muxers write them: same tracks, same timescales, two more boxes.
    fn mss_fragments(&mut self, end_dts: i64) -> MssFragments {
        let Some((sequence, previous_end)) = self.previous else {
            return MssFragments::default();
        };
        let fragment_sequence = (sequence as u32).wrapping_add(1);
        let (previous, closing) = (&self.previous_frames, &self.open_frames);
        let make = |muxer: &mut Option<Fmp4Muxer>| {
            let muxer = muxer.as_mut()?;
            // A track with no sample in the closing segment has nothing to announce.
            let next = muxer.fragment_time(closing, end_dts).ok();
            match muxer.mss_fragment(fragment_sequence, previous, previous_end, next) {
                Ok((bytes, at)) => Some(MssFragment {
                    time: at.time,
                    duration: at.duration,
                    bytes,
                }),
                Err(e) => {
                    log::warn!("segment {sequence}: no MSS fragment: {e}");
                    None
                }
            }
        };
        MssFragments {
            video: make(&mut self.dash_video),
            audio: make(&mut self.dash_audio),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fake::FakeSource;

    #[test]
    fn mss_fragments_arrive_one_segment_late_and_chain() {
        let mut source = FakeSource::new(1_700_000_000_000, 25);
        let info = source.media_info();
        let mut segmenter = Segmenter::new(&info, 1000, 1_700_000_000_000);
        let mut frames = Vec::new();
        source.poll(5 * 90_000, &mut frames);
        let segments: Vec<Segment> = frames
            .iter()
            .filter_map(|f| segmenter.push(f).unwrap())
            .collect();
        assert!(segments.len() >= 3, "{}", segments.len());
        assert!(segments[0].mss.video.is_none() && segments[0].mss.audio.is_none());
        for pair in segments.windows(2) {
            let (previous, this) = (&pair[0], &pair[1]);
            let video = this.mss.video.as_ref().expect("video MSS fragment");
            assert_eq!(video.time, previous.start_dts as u64);
            assert_eq!(
                video.duration,
                (previous.end_dts - previous.start_dts) as u64
            );
            assert_eq!(&video.bytes[4..8], b"moof");
            let audio = this.mss.audio.as_ref().expect("audio MSS fragment");
            assert!(audio.duration > 0);
        }
        // Each fragment's timeline entry ends where the next one starts.
        for pair in segments[1..].windows(2) {
            for (a, b) in [
                (&pair[0].mss.video, &pair[1].mss.video),
                (&pair[0].mss.audio, &pair[1].mss.audio),
            ] {
                let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
                assert_eq!(a.time + a.duration, b.time);
            }
        }
    }
}
