//! `LiveInput`: what every live input does with its frames, as a sans-IO value. The fake
//! source and an RTMP publisher both feed it; it cuts segments (`Segmenter`), muxes the
//! continuous TS feed (`TsFeed`), builds each frame's FLV tag once, and returns the
//! `StreamEvent`s the shell fans out to every shard.
//!
//! It also keeps the stream's timeline whole across inputs: a new input's timestamps are
//! shifted so its first frame lands at the later of where the previous input ended and
//! where the wall clock is since the stream's first frame (DTS never goes back, and
//! media time keeps tracking wall-clock time, so segment names and DASH's
//! `availabilityStartTime` stay consistent), and segment numbers continue.
//!
//! Never does: I/O, clocks (the wall-clock time is passed in), fan-out, claims.

use crate::media::frame::{Frame, MediaInfo, TIMESCALE, TrackKind};
use crate::mux::flv::frame_tag;
use crate::stream::StreamId;
use crate::stream::ring::FeedFrame;
use crate::stream::segmenter::Segmenter;
use crate::stream::ts_feed::TsFeed;
use crate::stream::view::StreamEvent;
use bytes::Bytes;

/// Where a stream's timeline stands between inputs: what the next input continues from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// 90 kHz decode time the next input starts at or after (the end of the last frame).
    pub next_dts: i64,
    /// Sequence number of the next segment.
    pub next_sequence: u64,
    /// Wall-clock ms of decode time 0, once the stream has had media.
    pub utc_base_ms: Option<i64>,
}

struct Running {
    info: MediaInfo,
    segmenter: Segmenter,
    feed: TsFeed,
}

pub struct LiveInput {
    stream: StreamId,
    /// Publish generation (0 for inputs that run for the process's life).
    generation: u64,
    segment_ms: u32,
    timeline: Timeline,
    /// Frames that would land before the previous input's end are dropped.
    floor_dts: i64,
    /// The source's latest decoder configuration.
    config: Option<MediaInfo>,
    running: Option<Running>,
    /// Added to every source timestamp; fixed at the first frame.
    offset: Option<i64>,
    /// `InputStarted` was sent (with the first frame).
    announced: bool,
    last_video_dts: Option<i64>,
    video_step: i64,
}

impl LiveInput {
    pub fn new(stream: StreamId, generation: u64, segment_ms: u32, timeline: Timeline) -> Self {
        LiveInput {
            stream,
            generation,
            segment_ms,
            timeline,
            floor_dts: timeline.next_dts,
            config: None,
            running: None,
            offset: None,
            announced: false,
            last_video_dts: None,
            video_step: 0,
        }
    }

    /// An input that takes over from one that handed over (`hand_over`) without ending
    /// the stream: a failover or a reconnect to the origin. Its first frame starts a new
    /// segment and announces its media, but no `InputStarted`: frame viewers keep playing.
    pub fn continuing(
        stream: StreamId,
        generation: u64,
        segment_ms: u32,
        timeline: Timeline,
    ) -> Self {
        let mut input = LiveInput::new(stream, generation, segment_ms, timeline);
        input.announced = true;
        input
    }

    /// This input's source goes away but the stream goes on (see `continuing`): the open
    /// segment is cut where the last frame ends. Returns the timeline to continue from and
    /// whether the stream had been announced (else the next input starts it afresh).
    pub fn hand_over(&mut self, out: &mut Vec<StreamEvent>) -> (Timeline, bool) {
        self.close_open(self.timeline.next_dts, out);
        (self.timeline, std::mem::take(&mut self.announced))
    }

    /// The source's decoder configuration (again whenever it changes). Segmenting restarts
    /// with the next frame when it differs from the running one.
    pub fn configure(&mut self, info: MediaInfo) {
        self.config = Some(info);
    }

    /// Where the timeline stands now (what a next input would continue from).
    pub fn timeline(&self) -> Timeline {
        self.timeline
    }

    /// Feeds one frame (source timestamps) at wall-clock `now_utc_ms`; appends the events
    /// to announce. Frames of a track the configuration lacks are dropped.
    pub fn push(&mut self, mut frame: Frame, now_utc_ms: i64, out: &mut Vec<StreamEvent>) {
        let Some(config) = &self.config else { return };
        let known = match frame.track {
            TrackKind::Video => config.video.is_some(),
            TrackKind::Audio => config.audio.is_some(),
        };
        if !known {
            return;
        }
        let offset = match self.offset {
            Some(o) => o,
            None => {
                let target = match self.timeline.utc_base_ms {
                    None => self.timeline.next_dts,
                    Some(base) => self
                        .timeline
                        .next_dts
                        .max((now_utc_ms - base).saturating_mul(TIMESCALE / 1000)),
                };
                let o = target - frame.dts;
                self.offset = Some(o);
                if self.timeline.utc_base_ms.is_none() {
                    self.timeline.utc_base_ms = Some(now_utc_ms - target * 1000 / TIMESCALE);
                }
                o
            }
        };
        frame.dts += offset;
        frame.pts += offset;
        if frame.dts < self.floor_dts {
            return;
        }
        if self.running.as_ref().is_none_or(|r| r.info != *config) {
            let info = config.clone();
            self.restart(info, frame.dts, out);
        }
        let Some(running) = self.running.as_mut() else {
            return;
        };
        let finished = running.segmenter.push(&frame);
        // An LL-HLS part goes out before the segment it ends (spec order for players).
        if let Some(part) = running.segmenter.take_part() {
            out.push(StreamEvent::Part {
                stream: self.stream,
                part,
            });
        }
        match finished {
            Ok(Some(segment)) => {
                self.timeline.next_sequence = segment.sequence + 1;
                out.push(StreamEvent::Segment {
                    stream: self.stream,
                    segment,
                });
            }
            Ok(None) => {}
            Err(e) => log::warn!("stream {}: dropped a frame: {e}", self.stream),
        }
        let step = match frame.track {
            TrackKind::Audio => running
                .info
                .audio
                .as_ref()
                .filter(|a| a.sample_rate > 0)
                .map_or(0, |a| 1024 * TIMESCALE / i64::from(a.sample_rate)),
            TrackKind::Video => {
                if let Some(last) = self.last_video_dts
                    && frame.dts > last
                {
                    self.video_step = frame.dts - last;
                }
                self.last_video_dts = Some(frame.dts);
                self.video_step
            }
        };
        self.timeline.next_dts = self.timeline.next_dts.max(frame.dts + step.max(1));
        let ts = match running.feed.chunk(&frame) {
            Ok(ts) => ts,
            Err(e) => {
                log::warn!("stream {}: no TS for a frame: {e}", self.stream);
                return;
            }
        };
        let flv = frame_tag(&frame);
        out.push(StreamEvent::Frame {
            stream: self.stream,
            frame: FeedFrame {
                frame,
                ts,
                flv,
                opus: Bytes::new(),
            },
        });
    }

    /// (Re)starts segmenting with `info`: the open segment of the old configuration
    /// closes at `at_dts`, the new configuration is announced.
    fn restart(&mut self, info: MediaInfo, at_dts: i64, out: &mut Vec<StreamEvent>) {
        self.close_open(at_dts, out);
        if !self.announced {
            self.announced = true;
            out.push(StreamEvent::InputStarted {
                stream: self.stream,
                generation: self.generation,
            });
        }
        out.push(StreamEvent::Media {
            stream: self.stream,
            info: info.clone(),
        });
        let utc_base = self.timeline.utc_base_ms.unwrap_or(0);
        let segmenter = Segmenter::new(&info, self.segment_ms, utc_base)
            .starting_at(self.timeline.next_sequence);
        let feed = TsFeed::new(&info);
        self.running = Some(Running {
            info,
            segmenter,
            feed,
        });
    }

    fn close_open(&mut self, end_dts: i64, out: &mut Vec<StreamEvent>) {
        if let Some(mut r) = self.running.take()
            && let Some(segment) = r.segmenter.finish(end_dts)
        {
            if let Some(part) = r.segmenter.take_part() {
                out.push(StreamEvent::Part {
                    stream: self.stream,
                    part,
                });
            }
            self.timeline.next_sequence = segment.sequence + 1;
            out.push(StreamEvent::Segment {
                stream: self.stream,
                segment,
            });
        }
    }

    /// The input stopped: the open segment is cut where the last frame ends, and every
    /// shard is told (`InputEnded`). Returns the timeline for the next input.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Timeline {
        self.close_open(self.timeline.next_dts, out);
        if self.announced {
            self.announced = false;
            out.push(StreamEvent::InputEnded {
                stream: self.stream,
                generation: self.generation,
            });
        }
        self.timeline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fake::FakeSource;

    fn frames(seconds: i64) -> (MediaInfo, Vec<Frame>) {
        let mut source = FakeSource::new(0, 25);
        let mut frames = Vec::new();
        source.poll(90_000 * seconds, &mut frames);
        (source.media_info(), frames)
    }

    fn run(
        input: &mut LiveInput,
        info: &MediaInfo,
        frames: &[Frame],
        now: i64,
    ) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        input.configure(info.clone());
        for f in frames {
            input.push(f.clone(), now, &mut out);
        }
        out
    }

    fn segments(events: &[StreamEvent]) -> Vec<(u64, i64, i64)> {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Segment { segment, .. } => {
                    Some((segment.sequence, segment.start_dts, segment.end_dts))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn announces_cuts_and_flushes_the_partial_segment() {
        let (info, frames) = frames(5);
        let mut input = LiveInput::new(3, 1, 2000, Timeline::default());
        let mut out = Vec::new();
        input.push(frames[0].clone(), 0, &mut out);
        assert!(out.is_empty(), "nothing before a configuration");
        let mut out = run(&mut input, &info, &frames, 1_000_000);
        assert!(matches!(
            &out[..2],
            [
                StreamEvent::InputStarted {
                    stream: 3,
                    generation: 1
                },
                StreamEvent::Media { .. }
            ]
        ));
        assert_eq!(segments(&out), [(0, 0, 180_000), (1, 180_000, 360_000)]);
        let frames_out = out
            .iter()
            .filter(|e| matches!(e, StreamEvent::Frame { .. }))
            .count();
        assert_eq!(frames_out, frames.len());
        out.clear();
        let timeline = input.finish(&mut out);
        assert_eq!(segments(&out)[0].0, 2, "the partial segment");
        assert_eq!(segments(&out)[0].1, 360_000);
        assert!(matches!(
            out.last(),
            Some(StreamEvent::InputEnded { generation: 1, .. })
        ));
        assert_eq!(timeline.next_sequence, 3);
        assert!(timeline.next_dts >= 5 * 90_000 - 3600);
        assert_eq!(timeline.utc_base_ms, Some(1_000_000));
    }

    #[test]
    fn a_configuration_change_cuts_the_segment_and_announces_the_new_media() {
        let (info, frames) = frames(4);
        let mut input = LiveInput::new(0, 1, 1000, Timeline::default());
        let (first, second) = frames.split_at(frames.len() / 2);
        let out = run(&mut input, &info, first, 0);
        let before = segments(&out);
        let mut changed = info.clone();
        changed.audio = None;
        let out = run(&mut input, &changed, second, 0);
        // (The segment's last LL-HLS part goes out just before it.)
        let no_parts: Vec<&StreamEvent> = out
            .iter()
            .filter(|e| !matches!(e, StreamEvent::Part { .. }))
            .collect();
        assert!(
            matches!(&no_parts[..2], [StreamEvent::Segment { .. }, StreamEvent::Media { info, .. }] if info.audio.is_none()),
            "the old configuration's open segment first, then the new media: {:?}",
            &no_parts[..2]
        );
        assert!(
            !out.iter()
                .any(|e| matches!(e, StreamEvent::InputStarted { .. })),
            "the same input"
        );
        let after = segments(&out);
        assert_eq!(
            after[0].0,
            before.last().unwrap().0 + 1,
            "numbering continues"
        );
        assert!(out.iter().all(|e| match e {
            StreamEvent::Frame { frame, .. } => frame.frame.track == TrackKind::Video,
            _ => true,
        }));
    }

    #[test]
    fn a_second_input_continues_the_timeline() {
        let (info, frames) = frames(3);
        let mut first = LiveInput::new(0, 1, 1000, Timeline::default());
        run(&mut first, &info, &frames, 1_000_000);
        let timeline = first.finish(&mut Vec::new());
        // Reconnects 100 ms of wall clock after it ended: the gap shows in media time.
        let now = 1_000_000 + timeline.next_dts / 90 + 100;
        let mut second = LiveInput::new(0, 2, 1000, timeline);
        let out = run(&mut second, &info, &frames, now);
        let first_dts = out
            .iter()
            .find_map(|e| match e {
                StreamEvent::Frame { frame, .. } => Some(frame.frame.dts),
                _ => None,
            })
            .unwrap();
        // 100 ms is 9000 ticks; the wall clock has whole milliseconds.
        assert!(
            (timeline.next_dts + 8900..=timeline.next_dts + 9000).contains(&first_dts),
            "{first_dts} after {}",
            timeline.next_dts
        );
        let segs = segments(&out);
        assert_eq!(segs[0].0, timeline.next_sequence, "numbering continues");
        assert!(segs[0].1 >= timeline.next_dts);
        // A reconnect without any wall-clock gap still never goes back.
        let t2 = second.finish(&mut Vec::new());
        let mut third = LiveInput::new(0, 3, 1000, t2);
        let out = run(&mut third, &info, &frames, 0);
        assert!(out.iter().all(|e| match e {
            StreamEvent::Frame { frame, .. } => frame.frame.dts >= t2.next_dts,
            _ => true,
        }));
    }
}
