//! `Segmenter`: cuts a stream's frames into segments at keyframes, in several containers at
//! once: MPEG-TS, muxed fMP4 (as LL-HLS parts while the segment is open) and single-track
//! fMP4 for DASH.
//!
//! A segment closes at the first video keyframe at or after `target_ms` of media, so every
//! segment starts with a keyframe (and PAT/PMT) and plays on its own. A stream without video
//! cuts on duration alone. Each segment is muxed once per container and frozen into
//! `Bytes`; nothing downstream copies it. The open segment's frames are held as `Bytes`
//! references until the DASH fragments are written at the cut.
//!
//! Smooth Streaming fragments are written one segment late: each announces the next
//! fragment's time and duration (`tfrf`), so segment k's are written when k+1 is cut, from
//! k's frames (kept until then) and published with segment k+1 (`Segment::mss`).
//!
//! LL-HLS parts: while a segment is open, its frames are also cut into parts of at most
//! [`PART_TARGET_MS`] (a part closes when its next lead-track frame would overrun the
//! target, and always at a segment cut), each muxed once as an fMP4 fragment and handed out
//! by [`Segmenter::take_part`] as soon as it closes. At the cut, the segment's fMP4 is its
//! parts back to back (one copy, here, once), and the parts it lists are slices of it.

use crate::media::frame::{Frame, MediaInfo, TIMESCALE, TrackKind};
use crate::mux::fmp4::{Fmp4Muxer, Tracks};
use crate::mux::ts::{TsError, TsMuxer};
use crate::stream::segment::{DashFragments, MssFragment, MssFragments, Part, Segment};
use bytes::BytesMut;

/// LL-HLS part target (`EXT-X-PART-INF:PART-TARGET`): 8 frames at 25 fps.
pub const PART_TARGET_MS: u32 = 320;
const PART_TARGET_TICKS: i64 = PART_TARGET_MS as i64 * TIMESCALE / 1000;

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
    /// The open part: index in `open_frames` of its first frame, and that frame's DTS.
    part_from: usize,
    part_since: Option<i64>,
    /// DTS of the last lead-track frame (video, or audio without video), to estimate the
    /// next frame's duration.
    last_lead_dts: Option<i64>,
    /// The open segment's closed parts.
    open_parts: Vec<Part>,
    /// The part the last `push` closed, until `take_part`.
    closed_part: Option<Part>,
    /// `mfhd` sequence of the next fMP4 fragment (parts count, from 1).
    fragment_sequence: u32,
    /// A part failed to mux: the open segment gets no fMP4.
    parts_broken: bool,
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
            part_from: 0,
            part_since: None,
            last_lead_dts: None,
            open_parts: Vec::with_capacity(64),
            closed_part: None,
            fragment_sequence: 1,
            parts_broken: false,
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
            self.open_parts.clear();
            self.part_from = 0;
            self.part_since = None;
            return None;
        }
        // The last part closes with the segment (`take_part` has it).
        self.close_part(end_dts);
        Some(self.close(end_dts))
    }

    /// The LL-HLS part the last [`Segmenter::push`] closed, if any. Publish it before the
    /// segment that `push` returned (the segment's last part closes with it).
    pub fn take_part(&mut self) -> Option<Part> {
        self.closed_part.take()
    }

    /// Feeds one frame; returns the segment it closed, if any.
    pub fn push(&mut self, frame: &Frame) -> Result<Option<Segment>, TsError> {
        let starts_segment = match frame.track {
            TrackKind::Video => frame.keyframe,
            TrackKind::Audio => !self.has_video,
        };
        let leads = match frame.track {
            TrackKind::Video => true,
            TrackKind::Audio => !self.has_video,
        };
        let mut finished = None;
        if starts_segment {
            if let Some(since) = self.open_since {
                if frame.dts - since >= self.target_ticks {
                    self.close_part(frame.dts);
                    finished = Some(self.close(frame.dts));
                }
            }
            if self.open_since.is_none() {
                self.open(frame.dts);
            }
        }
        if leads && self.open_since.is_some() {
            match self.part_since {
                Some(since) => {
                    // Close the part when this frame's likely duration would overrun the
                    // target: every part stays within PART-TARGET.
                    let frame_ticks = self.last_lead_dts.map_or(0, |l| frame.dts - l).max(0);
                    if frame.dts - since + frame_ticks > PART_TARGET_TICKS {
                        self.close_part(frame.dts);
                        self.part_since = Some(frame.dts);
                    }
                }
                None => self.part_since = Some(frame.dts),
            }
            self.last_lead_dts = Some(frame.dts);
        }
        if self.open_since.is_some() {
            self.muxer.write_frame(frame, &mut self.buffer)?;
            if self.fmp4.is_some() || self.dash_video.is_some() || self.dash_audio.is_some() {
                self.open_frames.push(frame.clone());
            }
        }
        Ok(finished)
    }

    /// Muxes the open part's frames (up to `end_dts`) as one fMP4 fragment.
    fn close_part(&mut self, end_dts: i64) {
        let from = self.part_from;
        self.part_from = self.open_frames.len();
        let (Some(since), Some(muxer)) = (self.part_since.take(), self.fmp4.as_mut()) else {
            return;
        };
        let frames = &self.open_frames[from..];
        if frames.is_empty() || self.parts_broken {
            return;
        }
        let sequence = self.fragment_sequence;
        self.fragment_sequence = sequence.wrapping_add(1).max(1);
        let fmp4 = match muxer.fragment(sequence, frames, end_dts) {
            Ok(f) => f,
            Err(e) => {
                log::warn!("segment {}: no LL-HLS part: {e}", self.next_sequence);
                self.parts_broken = true;
                return;
            }
        };
        let independent = frames
            .iter()
            .find(|f| f.track == TrackKind::Video)
            .is_none_or(|f| f.keyframe);
        let part = Part {
            segment: self.next_sequence,
            index: self.open_parts.len() as u32,
            start_dts: since,
            end_dts,
            start_utc_ms: self.utc_base_ms + since * 1000 / TIMESCALE,
            independent,
            fmp4,
        };
        self.closed_part = Some(part.clone());
        self.open_parts.push(part);
    }

    /// The closed segment's fMP4: its parts back to back, and the parts as slices of it.
    fn join_parts(&mut self) -> (Option<bytes::Bytes>, Vec<Part>) {
        let parts = std::mem::take(&mut self.open_parts);
        if self.fmp4.is_none() || std::mem::take(&mut self.parts_broken) || parts.is_empty() {
            return (None, Vec::new());
        }
        let mut joined = BytesMut::with_capacity(parts.iter().map(|p| p.fmp4.len()).sum());
        for part in &parts {
            joined.extend_from_slice(&part.fmp4);
        }
        let joined = joined.freeze();
        let mut at = 0;
        let parts = parts
            .into_iter()
            .map(|p| {
                let len = p.fmp4.len();
                let part = Part {
                    fmp4: joined.slice(at..at + len),
                    ..p
                };
                at += len;
                part
            })
            .collect();
        (Some(joined), parts)
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
        let (fmp4, parts) = self.join_parts();
        let dash = self.dash_fragments(sequence, end_dts);
        let mss = self.mss_fragments(end_dts);
        // The closed segment's frames wait for the next cut, for its own MSS fragments.
        std::mem::swap(&mut self.previous_frames, &mut self.open_frames);
        self.open_frames.clear();
        self.previous = Some((sequence, end_dts));
        self.part_from = 0;
        Segment {
            dash,
            mss,
            fmp4,
            parts: parts.into(),
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

    /// Runs the fake source (25 fps, keyframe every second) for `seconds` through a
    /// segmenter with 2 s segments; returns the parts and the segments, in publish order.
    fn run(seconds: i64) -> (Vec<Part>, Vec<Segment>) {
        let mut source = FakeSource::new(1_700_000_000_000, 25);
        let mut segmenter = Segmenter::new(&source.media_info(), 2000, 1_700_000_000_000);
        let (mut parts, mut segments, mut frames) = (Vec::new(), Vec::new(), Vec::new());
        source.poll(seconds * TIMESCALE, &mut frames);
        for frame in &frames {
            let segment = segmenter.push(frame).unwrap();
            parts.extend(segmenter.take_part());
            segments.extend(segment);
        }
        (parts, segments)
    }

    #[test]
    fn parts_stay_within_the_target_and_make_up_the_segment() {
        let (parts, segments) = run(7);
        assert!(segments.len() >= 2, "{}", segments.len());
        for segment in &segments {
            let mine: Vec<&Part> = parts
                .iter()
                .filter(|p| p.segment == segment.sequence)
                .collect();
            assert_eq!(mine.len(), segment.parts.len());
            // 2 s of 25 fps in parts of 8 frames: 8+8+8+...+2.
            assert_eq!(mine.len(), 7, "segment {}", segment.sequence);
            let mut joined = Vec::new();
            for (i, (published, listed)) in mine.iter().zip(segment.parts.iter()).enumerate() {
                assert_eq!(published.index as usize, i);
                assert_eq!(published.fmp4, listed.fmp4);
                assert!(published.duration_ms() <= PART_TARGET_MS);
                assert_eq!(published.independent, i == 0, "keyframes open segments");
                joined.extend_from_slice(&listed.fmp4);
            }
            assert_eq!(mine[0].start_dts, segment.start_dts);
            assert_eq!(mine.last().unwrap().end_dts, segment.end_dts);
            assert_eq!(mine[0].start_utc_ms, segment.start_utc_ms);
            let fmp4 = segment.fmp4.as_ref().unwrap();
            assert_eq!(&joined[..], &fmp4[..]);
            // The listed parts are slices of the segment, not copies.
            let base = fmp4.as_ptr() as usize;
            let at = segment.parts[1].fmp4.as_ptr() as usize;
            assert!(at > base && at < base + fmp4.len());
        }
        // Parts of the open segment are published before it closes.
        let open = segments.last().unwrap().sequence + 1;
        assert!(parts.iter().any(|p| p.segment == open));
    }
}
