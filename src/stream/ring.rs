//! `FrameRing`: the recent frames of one stream on one shard, for connection protocols
//! (RTSP, RTMP) that send frames rather than segments.
//!
//! One ring per stream and shard, however many viewers: a viewer is only a cursor (a frame
//! index). Frames are `Bytes` shared with every other viewer and shard; nothing is copied
//! per viewer. New viewers start at the latest keyframe (the GOP cache), so the first picture
//! arrives at once. A viewer that falls so far behind that its next frame has left the ring
//! skips to the latest keyframe; the caller counts those skips to disconnect one that stays
//! behind. Tasks waiting for the next frame register a `Waker`; `push` wakes them all, so no
//! one polls. A frame may wait up to [`WAKE_EVERY`] of media time for the frames after it
//! (a video keyframe wakes at once): a viewer then takes the audio and video frames of that
//! time in one wake and one send. `Patience::Buffered` viewers (RTMP, HTTP MPEG-TS: their
//! players buffer seconds) wait up to [`BUFFERED_WAKE_EVERY`]: fewer, larger sends.

use crate::media::frame::{Frame, TIMESCALE, TrackKind};
use crate::mux::flv::FlvTag;
use bytes::Bytes;
use std::collections::VecDeque;
use std::task::Waker;

/// Frames kept per stream and shard at most: about 25 s of 25 fps video plus AAC, enough
/// for the GOP cache of long-GOP publishers.
pub const RING_FRAMES: usize = 1800;
/// Frames older than this (decode time, behind the newest frame) leave the ring once a
/// newer keyframe is in it: a viewer may fall this far behind before it skips, and the
/// newest GOP is always whole however long. Each frame is kept three times (its data, TS
/// chunk and FLV tag), so 1800 frames of the fake source held 18 MB per stream; 8 s hold 6.
pub const RING_SECONDS: i64 = 8;

/// Media time (90 kHz) a pushed frame may wait for company before the waiting viewers are
/// woken: a 25 fps + AAC stream pushes ~72 frames a second, and each wake costs every
/// viewer a task poll and a send; this way they wake about 24 times a second. The push of
/// a frame this much younger than the oldest waiting one wakes them (so a frame waits at
/// most this plus one frame interval while the input sends), as does the input's end.
pub const WAKE_EVERY: i64 = 90 * 20;
/// The same for `Patience::Buffered` viewers: each wake and send costs a viewer a task poll
/// and a `sendmsg` whatever it carries, and at 100 ms instead of 20 the server's CPU for
/// 1,000 RTMP viewers fell by 27-31% (`tools/ab-rtmp.sh`: 19.1-19.5% of a core to
/// 13.9-14.2%), for at most 100 ms more in a player that buffers seconds.
pub const BUFFERED_WAKE_EVERY: i64 = 90 * 100;

/// How long a viewer's frames may wait to be woken for in company.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// [`WAKE_EVERY`]: latency matters (RTSP, SRT, WebRTC).
    Prompt,
    /// [`BUFFERED_WAKE_EVERY`]: the player buffers (RTMP, HTTP MPEG-TS).
    Buffered,
}
/// A timestamp this far behind the oldest waiting frame is a new timeline (a restarted
/// publisher), not a late track: it wakes.
const TIMELINE_JUMP: i64 = 90_000;

/// A frame as the ring keeps it: the frame, its MPEG-TS packets from the stream's `TsFeed`
/// (HTTP MPEG-TS viewers), its FLV tag (RTMP viewers) and, for an AAC frame while WebRTC
/// viewers want it, the Opus packets it completes (`media::opus::packets`; empty
/// otherwise), each built once by the owner shard.
#[derive(Clone, Debug)]
pub struct FeedFrame {
    pub frame: Frame,
    pub ts: Bytes,
    pub flv: FlvTag,
    pub opus: Bytes,
}

/// What a cursor finds.
#[derive(Debug)]
pub enum Lookup<'a> {
    Frame(&'a FeedFrame),
    /// Not produced yet: wait.
    NotYet,
    /// Already dropped: the viewer fell behind.
    Gone,
}

#[derive(Debug)]
pub struct FrameRing {
    frames: VecDeque<FeedFrame>,
    /// Index of `frames[0]`.
    first: u64,
    capacity: usize,
    /// Index of the newest video keyframe still in the ring.
    last_keyframe: Option<u64>,
    has_video: bool,
    /// The input ended: no frame follows the last one until a new input resets the ring.
    closed: bool,
    prompt: Waiters,
    buffered: Waiters,
}

/// The viewers of one `Patience` waiting for a frame.
#[derive(Debug)]
struct Waiters {
    wakers: Vec<Waker>,
    /// The decode time of the oldest frame pushed since they were last woken.
    held_since: Option<i64>,
    /// Media time a frame may wait for company.
    every: i64,
}

impl Waiters {
    fn new(every: i64) -> Waiters {
        Waiters {
            wakers: Vec::new(),
            held_since: None,
            every,
        }
    }

    fn wait(&mut self, waker: &Waker) {
        // Only the last entry is compared: scanning all would make a frame with n waiting
        // viewers cost n² comparisons; a task polled twice between pushes leaves at most a
        // stray duplicate, cleared by the next push.
        if !self.wakers.last().is_some_and(|w| w.will_wake(waker)) {
            self.wakers.push(waker.clone());
        }
    }

    /// Whether a push of a frame decoded at `dts` wakes them: a video keyframe (viewers
    /// waiting to start), one `every` younger than the oldest frame not yet woken for, or a
    /// new timeline.
    fn due(&mut self, dts: i64, video_keyframe: bool) -> bool {
        let oldest = *self.held_since.get_or_insert(dts);
        let due = video_keyframe
            || dts >= oldest.saturating_add(self.every)
            || dts < oldest.saturating_sub(TIMELINE_JUMP);
        if due {
            self.held_since = None;
        }
        due
    }

    fn wake(&mut self) {
        self.held_since = None;
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
    }
}

impl Default for FrameRing {
    fn default() -> Self {
        FrameRing::new(RING_FRAMES)
    }
}

impl FrameRing {
    pub fn new(capacity: usize) -> Self {
        FrameRing {
            frames: VecDeque::with_capacity(capacity.min(256)),
            first: 0,
            capacity: capacity.max(2),
            last_keyframe: None,
            has_video: false,
            closed: false,
            prompt: Waiters::new(WAKE_EVERY),
            buffered: Waiters::new(BUFFERED_WAKE_EVERY),
        }
    }

    /// Index the next pushed frame will get.
    pub fn end(&self) -> u64 {
        self.first + self.frames.len() as u64
    }

    /// Appends a frame and, when a wake is due, wakes every waiting viewer.
    pub fn push(&mut self, entry: FeedFrame) {
        let index = self.end();
        let frame = &entry.frame;
        let is_video = frame.track == TrackKind::Video;
        self.has_video |= is_video;
        // In a stream with video, only video keyframes are places to start; audio-only
        // streams can start anywhere.
        if frame.keyframe && (is_video || !self.has_video) {
            self.last_keyframe = Some(index);
        }
        let video_keyframe = frame.keyframe && is_video;
        let wake_prompt = self.prompt.due(frame.dts, video_keyframe);
        let wake_buffered = self.buffered.due(frame.dts, video_keyframe);
        self.frames.push_back(entry);
        self.drop_old();
        if self.last_keyframe.is_some_and(|k| k < self.first) {
            self.last_keyframe = None;
        }
        if wake_prompt {
            self.prompt.wake();
        }
        if wake_buffered {
            self.buffered.wake();
        }
    }

    fn wake_all(&mut self) {
        self.prompt.wake();
        self.buffered.wake();
    }

    /// Drops frames past the capacity, and those older than [`RING_SECONDS`] behind the
    /// newest that come before the newest keyframe.
    fn drop_old(&mut self) {
        let newest = self.frames.back().map_or(0, |f| f.frame.dts);
        let oldest_kept = newest - RING_SECONDS * TIMESCALE;
        let keyframe = self.last_keyframe.unwrap_or(0);
        while let Some(front) = self.frames.front() {
            let too_many = self.frames.len() > self.capacity;
            let too_old = front.frame.dts < oldest_kept && self.first < keyframe;
            if !too_many && !too_old {
                break;
            }
            self.frames.pop_front();
            self.first += 1;
        }
    }

    /// Where a new viewer (or one that fell behind) starts: the newest keyframe, while
    /// the input is sending (a viewer that arrives after it ended waits for the next one).
    pub fn start(&self) -> Option<u64> {
        self.last_keyframe.filter(|_| !self.closed)
    }

    /// The input ended: viewers that reach the end are told so (`Step::Ended`).
    pub fn close(&mut self) {
        self.closed = true;
        self.wake_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn get(&self, index: u64) -> Lookup<'_> {
        if index < self.first {
            return Lookup::Gone;
        }
        match self.frames.get((index - self.first) as usize) {
            Some(f) => Lookup::Frame(f),
            None => Lookup::NotYet,
        }
    }

    /// Registers a task to wake on the next push that wakes viewers of its `patience`.
    pub fn wait(&mut self, waker: &Waker, patience: Patience) {
        match patience {
            Patience::Prompt => self.prompt.wait(waker),
            Patience::Buffered => self.buffered.wait(waker),
        }
    }

    /// Forgets all frames (the input restarted) and wakes viewers so they notice.
    pub fn reset(&mut self) {
        self.first = self.end();
        self.frames.clear();
        self.last_keyframe = None;
        self.closed = false;
        self.wake_all();
    }
}

/// Times a viewer may fall out of the ring before it is given up on.
pub const MAX_SKIPS: u32 = 3;

/// One viewer's place in a stream's ring, and the policy every frame-by-frame protocol
/// shares: start at the newest keyframe; when the next frame has already left the ring,
/// skip to the newest keyframe; after [`MAX_SKIPS`] skips, the viewer is too slow.
#[derive(Debug, Default)]
pub struct ViewerCursor {
    next: Option<u64>,
    skips: u32,
}

/// What a viewer does next.
#[derive(Debug)]
pub enum Step<'a> {
    /// Send this frame.
    Frame(&'a FeedFrame),
    /// Nothing to send yet: wait (on `RingReady` with [`ViewerCursor::position`]).
    Wait,
    /// The viewer keeps falling behind the live edge: disconnect it.
    TooSlow,
    /// The viewer has every frame of an input that ended (a publisher left).
    Ended,
}

impl ViewerCursor {
    pub fn new() -> Self {
        ViewerCursor::default()
    }

    /// The index of the next frame, once the viewer has started.
    pub fn position(&self) -> Option<u64> {
        self.next
    }

    /// The next step for this viewer in `ring`.
    pub fn step<'a>(&mut self, ring: &'a FrameRing) -> Step<'a> {
        loop {
            let Some(index) = self.next.or_else(|| ring.start()) else {
                return Step::Wait;
            };
            match ring.get(index) {
                Lookup::Frame(f) => {
                    self.next = Some(index + 1);
                    return Step::Frame(f);
                }
                Lookup::NotYet => {
                    self.next = Some(index);
                    if ring.is_closed() {
                        return Step::Ended;
                    }
                    return Step::Wait;
                }
                Lookup::Gone => {
                    self.skips += 1;
                    if self.skips > MAX_SKIPS {
                        return Step::TooSlow;
                    }
                    self.next = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn frame(track: TrackKind, keyframe: bool, pts: i64) -> FeedFrame {
        let data = Bytes::from_static(b"x");
        let frame = Frame {
            track,
            pts,
            dts: pts,
            keyframe,
            data,
        };
        let flv = crate::mux::flv::frame_tag(&frame);
        FeedFrame {
            frame,
            ts: Bytes::new(),
            flv,
            opus: Bytes::new(),
        }
    }

    #[test]
    fn frames_older_than_the_bound_leave_once_a_newer_keyframe_is_in() {
        let second = TIMESCALE;
        let mut r = FrameRing::new(RING_FRAMES);
        // A 20 s GOP: nothing of it may go while it is the newest.
        for t in 0..=20 {
            r.push(frame(TrackKind::Video, t == 0, t * second));
        }
        assert!(
            matches!(r.get(0), Lookup::Frame(_)),
            "the newest GOP stays whole"
        );
        // One-second GOPs after it: the long GOP leaves, RING_SECONDS of frames stay.
        for t in 21..=40 {
            r.push(frame(TrackKind::Video, true, t * second));
        }
        let kept = r.end() - r.first;
        assert_eq!(kept, RING_SECONDS as u64 + 1);
        assert!(
            matches!(r.get(r.first), Lookup::Frame(f) if f.frame.dts == (40 - RING_SECONDS) * second)
        );
        assert_eq!(r.start(), Some(r.end() - 1));
    }

    #[test]
    fn viewers_start_at_the_newest_keyframe() {
        let mut r = FrameRing::new(100);
        assert_eq!(r.start(), None);
        r.push(frame(TrackKind::Audio, true, 0));
        r.push(frame(TrackKind::Video, true, 0));
        r.push(frame(TrackKind::Video, false, 1));
        r.push(frame(TrackKind::Audio, true, 1));
        assert_eq!(
            r.start(),
            Some(1),
            "audio frames are not start points once video exists"
        );
        r.push(frame(TrackKind::Video, true, 2));
        assert_eq!(r.start(), Some(4));
        assert!(matches!(r.get(4), Lookup::Frame(f) if f.frame.keyframe));
        assert!(matches!(r.get(5), Lookup::NotYet));
    }

    #[test]
    fn bounded_and_reports_gone() {
        let mut r = FrameRing::new(3);
        r.push(frame(TrackKind::Video, true, 0));
        for i in 1..5 {
            r.push(frame(TrackKind::Video, false, i));
        }
        assert!(matches!(r.get(0), Lookup::Gone));
        assert!(matches!(r.get(2), Lookup::Frame(_)));
        assert_eq!(r.start(), None, "the keyframe left the ring");
        assert_eq!(r.end(), 5);
    }

    /// A waker that counts its wakes.
    fn counting_waker() -> (std::sync::Arc<Count>, Waker) {
        let count = std::sync::Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn buffered_viewers_wait_up_to_100_ms_while_prompt_ones_wake_every_20() {
        let (prompt_count, prompt) = counting_waker();
        let (buffered_count, buffered) = counting_waker();
        let woken = |c: &std::sync::Arc<Count>| c.0.load(Ordering::SeqCst);
        let mut r = FrameRing::new(100);
        let mut push = |track, keyframe, ms: i64| {
            r.wait(&prompt, Patience::Prompt);
            r.wait(&buffered, Patience::Buffered);
            r.push(frame(track, keyframe, ms * 90));
        };
        push(TrackKind::Video, true, 0);
        assert_eq!((woken(&prompt_count), woken(&buffered_count)), (1, 1));
        for ms in [23, 40, 46, 69, 80] {
            push(TrackKind::Audio, true, ms);
        }
        assert_eq!(
            woken(&buffered_count),
            1,
            "within 100 ms of the oldest waiting"
        );
        assert_eq!(
            woken(&prompt_count),
            2,
            "prompt ones woken meanwhile at 46 ms"
        );
        push(TrackKind::Video, false, 120);
        assert_eq!(
            woken(&buffered_count),
            1,
            "the oldest waiting came at 23 ms"
        );
        push(TrackKind::Audio, true, 123);
        assert_eq!(
            woken(&buffered_count),
            2,
            "100 ms after the oldest waiting frame"
        );
        push(TrackKind::Video, true, 130);
        assert_eq!(woken(&buffered_count), 3, "a video keyframe wakes at once");
        r.wait(&buffered, Patience::Buffered);
        r.close();
        assert_eq!(woken(&buffered_count), 4, "the end wakes whatever waits");
    }

    #[test]
    fn a_frame_waits_at_most_20_ms_of_media_time_for_company_and_keyframes_wake_at_once() {
        let (count, waker) = counting_waker();
        let woken = || count.0.load(Ordering::SeqCst);
        let mut r = FrameRing::new(100);
        let mut push = |track, keyframe, ms: i64| {
            r.wait(&waker, Patience::Prompt);
            r.push(frame(track, keyframe, ms * 90));
        };
        push(TrackKind::Video, true, 0);
        assert_eq!(woken(), 1, "a video keyframe wakes at once");
        push(TrackKind::Audio, true, 0);
        push(TrackKind::Audio, true, 19);
        assert_eq!(
            woken(),
            1,
            "frames within 20 ms of the oldest waiting one wait"
        );
        push(TrackKind::Video, false, 20);
        assert_eq!(woken(), 2, "20 ms after the oldest waiting frame");
        push(TrackKind::Audio, true, 21);
        push(TrackKind::Video, true, 22);
        assert_eq!(woken(), 3, "a video keyframe wakes at once");
        push(TrackKind::Audio, true, 30);
        push(TrackKind::Audio, true, 10);
        assert_eq!(woken(), 3, "a track a little behind waits");
        push(TrackKind::Video, false, -5000);
        assert_eq!(woken(), 4, "a new timeline wakes");
        push(TrackKind::Audio, true, -4990);
        r.wait(&waker, Patience::Prompt);
        r.close();
        assert_eq!(woken(), 5, "the end wakes whatever waits");
    }

    #[test]
    fn push_wakes_waiters() {
        let (count, waker) = counting_waker();
        let mut r = FrameRing::new(3);
        r.wait(&waker, Patience::Prompt);
        r.wait(&waker, Patience::Prompt);
        r.push(frame(TrackKind::Video, true, 0));
        r.push(frame(TrackKind::Video, true, 1));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "woken once, then forgotten"
        );
    }

    #[test]
    fn a_closed_ring_ends_its_viewers_and_a_reset_reopens_it() {
        let mut r = FrameRing::new(10);
        let mut c = ViewerCursor::new();
        r.push(frame(TrackKind::Video, true, 0));
        r.push(frame(TrackKind::Video, false, 1));
        assert!(matches!(c.step(&r), Step::Frame(_)));
        r.close();
        assert!(
            matches!(c.step(&r), Step::Frame(f) if f.frame.pts == 1),
            "drains first"
        );
        assert!(matches!(c.step(&r), Step::Ended));
        let mut late = ViewerCursor::new();
        assert!(matches!(late.step(&r), Step::Wait), "a new viewer waits");
        r.reset();
        assert!(!r.is_closed());
        r.push(frame(TrackKind::Video, true, 5));
        assert!(matches!(late.step(&r), Step::Frame(f) if f.frame.pts == 5));
    }

    #[test]
    fn a_cursor_starts_at_a_keyframe_skips_when_behind_and_gives_up() {
        let mut r = FrameRing::new(4);
        let mut c = ViewerCursor::new();
        assert!(matches!(c.step(&r), Step::Wait));
        r.push(frame(TrackKind::Video, false, 0));
        assert!(matches!(c.step(&r), Step::Wait), "no keyframe yet");
        r.push(frame(TrackKind::Video, true, 1));
        assert!(matches!(c.step(&r), Step::Frame(f) if f.frame.pts == 1));
        assert!(matches!(c.step(&r), Step::Wait));
        assert_eq!(c.position(), Some(2));
        for round in 0..4 {
            // The viewer stalls while a whole ring's worth of frames goes by.
            for i in 0..5 {
                r.push(frame(TrackKind::Video, i == 2, 10 * (round + 1) + i));
            }
            let step = c.step(&r);
            if round < 3 {
                assert!(
                    matches!(step, Step::Frame(f) if f.frame.keyframe),
                    "round {round}: {step:?}"
                );
            } else {
                assert!(matches!(step, Step::TooSlow), "round {round}: {step:?}");
            }
        }
    }
}
