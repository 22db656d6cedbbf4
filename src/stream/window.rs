//! `SegmentWindow`: the recent segments of one stream on one shard.
//!
//! Playlists list the newest `playlist_len` segments; the window keeps a few more so a
//! player that fetched the previous playlist can still get what it listed. Older segments
//! are dropped, and their bytes are freed when the last viewer finishes writing them.

use crate::stream::segment::Segment;
use std::collections::VecDeque;
use std::task::Waker;

#[derive(Debug)]
pub struct SegmentWindow {
    segments: VecDeque<Segment>,
    /// Requests waiting for a segment that is being cut right now.
    waiters: Vec<Waker>,
    playlist_len: usize,
    keep: usize,
}

/// Segments listed in a live playlist.
pub const PLAYLIST_SEGMENTS: usize = 5;
/// Segments kept beyond the playlist for players a reload behind.
pub const EXTRA_SEGMENTS: usize = 3;

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
            waiters: Vec::new(),
            playlist_len,
            keep: playlist_len + extra,
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
        self.segments.push_back(segment);
        while self.segments.len() > self.keep {
            self.segments.pop_front();
        }
        for waker in self.waiters.drain(..) {
            waker.wake();
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
