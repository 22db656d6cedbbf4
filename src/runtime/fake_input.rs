//! The async driver of a `fake://` input: wakes when the next frame is due (a timer, not a
//! polling loop), pulls the frames from the sans-IO `FakeSource`, cuts segments, and fans
//! them out to every shard.

use crate::auth::verdict::StreamId;
use crate::media::frame::TIMESCALE;
use crate::rtmp::flv::frame_tag;
use crate::runtime::fanout::Fanout;
use crate::source::fake::FakeSource;
use crate::stream::ring::FeedFrame;
use crate::stream::segmenter::Segmenter;
use crate::stream::ts_feed::TsFeed;
use crate::stream::view::StreamEvent;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Keyframe interval of the fake source: one second at 25 fps.
const KEYFRAME_INTERVAL_FRAMES: u32 = 25;

pub async fn run(stream: StreamId, name: Box<str>, segment_ms: u32, fanout: Rc<Fanout>) {
    let started = Instant::now();
    let utc_base_ms = crate::utc::now_ms();
    let mut source = FakeSource::new(utc_base_ms, KEYFRAME_INTERVAL_FRAMES);
    let info = source.media_info();
    let mut segmenter = Segmenter::new(&info, segment_ms, utc_base_ms);
    let mut feed = TsFeed::new(&info);
    fanout.publish(StreamEvent::Media { stream, info }).await;
    log::info!("stream {name}: fake input started");
    let mut frames = Vec::with_capacity(8);
    loop {
        let due = Duration::from_micros((source.next_due().max(0) * 1_000_000 / TIMESCALE) as u64);
        let wait = (started + due).saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            glommio::timer::sleep(wait).await;
        }
        let elapsed = (started.elapsed().as_micros() as i64) * TIMESCALE / 1_000_000;
        source.poll(elapsed, &mut frames);
        if frames.is_empty() {
            // The source had nothing due (timer fired early): never spin on the shard.
            glommio::timer::sleep(Duration::from_millis(1)).await;
            continue;
        }
        for frame in frames.drain(..) {
            let finished = segmenter.push(&frame);
            if let Some(part) = segmenter.take_part() {
                fanout.publish(StreamEvent::Part { stream, part }).await;
            }
            match finished {
                Ok(Some(segment)) => {
                    fanout
                        .publish(StreamEvent::Segment { stream, segment })
                        .await
                }
                Ok(None) => {}
                Err(e) => log::warn!("stream {name}: dropped a frame: {e}"),
            }
            let ts = match feed.chunk(&frame) {
                Ok(ts) => ts,
                Err(e) => {
                    log::warn!("stream {name}: no TS for a frame: {e}");
                    continue;
                }
            };
            let flv = frame_tag(&frame);
            let frame = FeedFrame { frame, ts, flv };
            fanout.publish(StreamEvent::Frame { stream, frame }).await;
        }
    }
}
