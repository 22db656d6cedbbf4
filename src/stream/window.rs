//! `SegmentWindow`: the recent segments of one stream on one shard.
//!
//! Playlists list the newest `playlist_len` segments; the window keeps a few more so a
//! player that fetched the previous playlist can still get what it listed. Older segments
//! are dropped, and their bytes are freed when the last viewer finishes writing them.
//!
//! It also holds the LL-HLS parts of the segment being cut (at most [`MAX_OPEN_PARTS`]);
//! when that segment arrives they are dropped, and its own parts (slices of its fMP4) take
//! over. Requests parked for a segment or a part ([`Awaited`]) are woken by either push.

use crate::stream::segment::{Part, Segment};
use std::collections::VecDeque;
use std::task::Waker;

#[derive(Debug)]
pub struct SegmentWindow {
    segments: VecDeque<Segment>,
    /// Parts of the segment being cut, in order.
    open_parts: Vec<Part>,
    /// Requests waiting for a segment or part that is being cut right now.
    waiters: Vec<Waker>,
    playlist_len: usize,
    keep: usize,
    /// Segments taken, and changes to the open parts (taken or dropped): what a document
    /// rendered from the window is keyed by.
    segments_taken: u64,
    part_changes: u64,
}

/// Segments listed in a live playlist.
pub const PLAYLIST_SEGMENTS: usize = 5;
/// Segments kept beyond the playlist for players a reload behind.
pub const EXTRA_SEGMENTS: usize = 3;
/// Parts of the open segment kept at most (a source that never sends a keyframe cannot
/// grow the list): 30 s segments at the 0.32 s part target need 94.
pub const MAX_OPEN_PARTS: usize = 128;
/// How far past the newest part a request may wait for one (RFC 8216bis §6.2.5.2's Advance
/// Part Limit): further is a client bug, refused at once instead of held.
pub const ADVANCE_PART_LIMIT: u32 = 3;

/// What a parked request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Awaited {
    /// A segment newer than this sequence number.
    SegmentAfter(u64),
    /// Part `part` of segment `segment`, or that segment finished (whichever comes first:
    /// a finished segment has all the parts it will ever have).
    Part { segment: u64, part: u32 },
    /// Any segment: the stream's first (a stream just started, or pulled on demand).
    FirstSegment,
}

/// Where a part stands.
#[derive(Debug)]
pub enum PartLookup<'a> {
    Found(&'a Part),
    /// It may still come: it belongs to the segment being cut (or the one after).
    NotYet,
    /// It is gone, or never existed.
    Missing,
}

impl Default for SegmentWindow {
    fn default() -> Self {
        SegmentWindow::new(PLAYLIST_SEGMENTS, EXTRA_SEGMENTS)
    }
}

impl SegmentWindow {
    pub fn new(playlist_len: usize, extra: usize) -> Self {
        let playlist_len = playlist_len.max(1);
        SegmentWindow {
            segments: VecDeque::with_capacity(playlist_len + extra + 1),
            open_parts: Vec::with_capacity(MAX_OPEN_PARTS),
            waiters: Vec::new(),
            playlist_len,
            keep: playlist_len + extra,
            segments_taken: 0,
            part_changes: 0,
        }
    }

    /// Adds the newest segment. A segment whose sequence is not newer than the last one
    /// (a replayed message) is ignored.
    pub fn push(&mut self, segment: Segment) {
        if self
            .segments
            .back()
            .is_some_and(|last| segment.sequence <= last.sequence)
        {
            return;
        }
        if self
            .open_parts
            .first()
            .is_some_and(|p| p.segment <= segment.sequence)
        {
            self.open_parts.clear();
        }
        self.segments.push_back(segment);
        self.segments_taken += 1;
        while self.segments.len() > self.keep {
            self.segments.pop_front();
        }
        self.wake_all();
    }

    /// Adds a part of the segment being cut. Parts out of order, of a finished segment, or
    /// past [`MAX_OPEN_PARTS`] are ignored.
    pub fn push_part(&mut self, part: Part) {
        if self
            .segments
            .back()
            .is_some_and(|last| part.segment <= last.sequence)
        {
            return;
        }
        if self
            .open_parts
            .first()
            .is_some_and(|p| p.segment != part.segment)
        {
            // A new segment began while the previous one's end was lost.
            self.open_parts.clear();
            self.part_changes += 1;
        }
        if part.index as usize != self.open_parts.len() || self.open_parts.len() >= MAX_OPEN_PARTS {
            return;
        }
        self.open_parts.push(part);
        self.part_changes += 1;
        self.wake_all();
    }

    fn wake_all(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }

    /// Changes whenever the segments change (not with parts): a playlist of segments
    /// rendered at one value is current while the window has it.
    pub fn segments_revision(&self) -> u64 {
        self.segments_taken
    }

    /// Changes whenever the segments or the open parts change (an LL-HLS playlist's key):
    /// both counts only grow, so their sum never repeats.
    pub fn revision(&self) -> u64 {
        self.segments_taken + self.part_changes
    }

    /// The parts of the segment being cut, oldest first.
    pub fn open_parts(&self) -> &[Part] {
        &self.open_parts
    }

    /// The sequence number of the segment being cut (the one after the newest).
    pub fn open_sequence(&self) -> Option<u64> {
        self.open_parts
            .first()
            .map(|p| p.segment)
            .or_else(|| self.newest().map(|s| s.sequence + 1))
    }

    /// The segment with this media sequence number.
    pub fn find_by_sequence(&self, sequence: u64) -> Option<&Segment> {
        let first = self.segments.front()?.sequence;
        let at = usize::try_from(sequence.checked_sub(first)?).ok()?;
        self.segments.get(at).filter(|s| s.sequence == sequence)
    }

    /// Part `index` of segment `segment`.
    pub fn part(&self, segment: u64, index: u32) -> PartLookup<'_> {
        if let Some(s) = self.find_by_sequence(segment) {
            return match s.parts.get(index as usize) {
                Some(p) => PartLookup::Found(p),
                None => PartLookup::Missing,
            };
        }
        let Some(open) = self.open_sequence() else {
            return PartLookup::Missing;
        };
        if segment == open {
            let listed = self.open_parts.len() as u32;
            match self.open_parts.get(index as usize) {
                Some(p) if p.segment == segment => PartLookup::Found(p),
                _ if index <= listed + ADVANCE_PART_LIMIT && (index as usize) < MAX_OPEN_PARTS => {
                    PartLookup::NotYet
                }
                _ => PartLookup::Missing,
            }
        } else if segment == open + 1 && index <= ADVANCE_PART_LIMIT {
            PartLookup::NotYet
        } else {
            PartLookup::Missing
        }
    }

    /// Whether what a parked request waits for is here.
    pub fn has(&self, awaited: Awaited) -> bool {
        let newest = self.newest().map(|s| s.sequence);
        match awaited {
            Awaited::SegmentAfter(after) => newest.is_some_and(|n| n > after),
            Awaited::FirstSegment => newest.is_some(),
            Awaited::Part { segment, part } => {
                newest.is_some_and(|n| n >= segment)
                    || self
                        .open_parts
                        .get(part as usize)
                        .is_some_and(|p| p.segment == segment)
                    || self.open_parts.first().is_some_and(|p| p.segment > segment)
            }
        }
    }

    /// The newest segment.
    pub fn newest(&self) -> Option<&Segment> {
        self.segments.back()
    }

    /// Registers a task to wake when the next segment arrives.
    pub fn wait(&mut self, waker: &Waker) {
        // Only the last entry is compared: scanning all would make a frame with n waiting
        // viewers cost n² comparisons; a task polled twice between pushes leaves at most a
        // stray duplicate, cleared by the next push.
        if !self.waiters.last().is_some_and(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    /// Some request waits for this window (an on-demand pull counts it as a viewer).
    pub fn has_waiters(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// The segments a playlist lists, oldest first.
    pub fn playlist(&self) -> impl Iterator<Item = &Segment> + Clone {
        let skip = self.segments.len().saturating_sub(self.playlist_len);
        self.segments.iter().skip(skip)
    }

    /// Every kept segment, oldest first (the playlist's and the few kept beyond it).
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &Segment> + Clone {
        self.segments.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The segment a URL names by start second and duration.
    pub fn find(&self, start_second: i64, duration_ms: u32) -> Option<&Segment> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.start_second() == start_second && s.duration_ms == duration_ms)
    }

    /// The segment whose first frame has this decode time (DASH `$Time$`).
    pub fn find_by_dts(&self, start_dts: i64) -> Option<&Segment> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.start_dts == start_dts)
    }

    /// Peak bitrate over the window, bits per second (for the master playlist's BANDWIDTH).
    pub fn peak_bitrate(&self) -> Option<u64> {
        self.segments
            .iter()
            .filter(|s| s.duration_ms > 0)
            .map(|s| s.ts.len() as u64 * 8 * 1000 / u64::from(s.duration_ms))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn seg(sequence: u64) -> Segment {
        Segment {
            sequence,
            start_utc_ms: 1_000_000 + sequence as i64 * 2000,
            duration_ms: 2000,
            ts: Bytes::from(vec![0u8; 1000]),
            fmp4: None,
            parts: Default::default(),
            dash: Default::default(),
            mss: Default::default(),
            start_dts: 0,
            end_dts: 180_000,
        }
    }

    #[test]
    fn keeps_a_bounded_window() {
        let mut w = SegmentWindow::new(3, 2);
        for i in 0..10 {
            w.push(seg(i));
        }
        let listed: Vec<u64> = w.playlist().map(|s| s.sequence).collect();
        assert_eq!(listed, vec![7, 8, 9]);
        assert!(
            w.find(1_000 + 5 * 2, 2000).is_some(),
            "kept beyond the playlist"
        );
        assert!(w.find(1_000 + 4 * 2, 2000).is_none(), "dropped");
        assert!(w.find(1_000 + 9 * 2, 1999).is_none(), "duration must match");
    }

    fn part(segment: u64, index: u32) -> Part {
        Part {
            segment,
            index,
            start_dts: i64::from(index) * 28_800,
            end_dts: i64::from(index + 1) * 28_800,
            start_utc_ms: 0,
            independent: index == 0,
            fmp4: Bytes::from_static(b"part"),
        }
    }

    #[test]
    fn parts_of_the_open_segment_until_it_arrives() {
        let mut w = SegmentWindow::new(3, 2);
        w.push(seg(4));
        assert_eq!(w.open_sequence(), Some(5));
        assert!(matches!(w.part(5, 0), PartLookup::NotYet));
        assert!(matches!(w.part(6, 0), PartLookup::NotYet));
        assert!(matches!(w.part(6, 3), PartLookup::NotYet));
        assert!(matches!(w.part(6, 4), PartLookup::Missing));
        assert!(matches!(w.part(5, 4), PartLookup::Missing), "too far ahead");
        assert!(!w.has(Awaited::Part {
            segment: 5,
            part: 0
        }));
        w.push_part(part(5, 0));
        w.push_part(part(5, 2)); // out of order: ignored
        w.push_part(part(4, 0)); // of a finished segment: ignored
        assert_eq!(w.open_parts().len(), 1);
        assert!(matches!(w.part(5, 0), PartLookup::Found(_)));
        assert!(w.has(Awaited::Part {
            segment: 5,
            part: 0
        }));
        assert!(!w.has(Awaited::Part {
            segment: 5,
            part: 1
        }));
        let mut five = seg(5);
        five.parts = vec![part(5, 0), part(5, 1)].into();
        w.push(five);
        assert!(w.open_parts().is_empty());
        assert!(
            w.has(Awaited::Part {
                segment: 5,
                part: 7
            }),
            "segment done"
        );
        assert!(matches!(w.part(5, 1), PartLookup::Found(_)));
        assert!(matches!(w.part(5, 2), PartLookup::Missing));
        assert_eq!(w.find_by_sequence(5).map(|s| s.sequence), Some(5));
        assert!(w.find_by_sequence(3).is_none());
    }

    #[test]
    fn open_parts_are_bounded() {
        let mut w = SegmentWindow::new(3, 2);
        for i in 0..(MAX_OPEN_PARTS as u32 + 10) {
            w.push_part(part(0, i));
        }
        assert_eq!(w.open_parts().len(), MAX_OPEN_PARTS);
        assert!(matches!(
            w.part(0, MAX_OPEN_PARTS as u32),
            PartLookup::Missing
        ));
    }

    #[test]
    fn ignores_replays_and_reports_bitrate() {
        let mut w = SegmentWindow::new(3, 2);
        w.push(seg(5));
        w.push(seg(5));
        w.push(seg(4));
        assert_eq!(w.playlist().count(), 1);
        assert_eq!(w.peak_bitrate(), Some(4000));
    }
}
