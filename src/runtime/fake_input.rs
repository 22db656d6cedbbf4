//! The async driver of a `fake://` input: wakes when the next frame is due (a timer, not a
//! polling loop), pulls the frames from the sans-IO `FakeSource`, feeds them to the
//! stream's `LiveInput` (segments, TS feed, FLV tags) and fans the events out to every
//! shard, until its `OwnedInputs` tells it to stop.

use crate::media::frame::TIMESCALE;
use crate::runtime::inputs::InputStart;
use crate::source::fake::FakeSource;
use crate::stream::live_input::{LiveInput, Timeline};
use std::time::{Duration, Instant};

/// Keyframe interval of the fake source: one second at 25 fps.
const KEYFRAME_INTERVAL_FRAMES: u32 = 25;

/// Runs until stopped; returns the timeline the stream's next input continues from.
pub async fn run(start: InputStart) -> Timeline {
    let (name, fanout, stop) = (&start.name, &start.fanout, &start.stop);
    let started = Instant::now();
    let utc_base_ms = crate::utc::now_ms();
    let mut source = FakeSource::new(utc_base_ms, KEYFRAME_INTERVAL_FRAMES);
    let mut input = LiveInput::new(
        start.stream,
        start.generation,
        start.segment_ms,
        start.timeline,
    );
    input.configure(source.media_info());
    log::info!("stream {name}: fake input started");
    let mut frames = Vec::with_capacity(8);
    let mut events = Vec::with_capacity(16);
    loop {
        let due = Duration::from_micros((source.next_due().max(0) * 1_000_000 / TIMESCALE) as u64);
        let wait = (started + due).saturating_duration_since(Instant::now());
        if stop
            .unless_fired(glommio::timer::sleep(wait))
            .await
            .is_none()
        {
            break;
        }
        let elapsed = (started.elapsed().as_micros() as i64) * TIMESCALE / 1_000_000;
        source.poll(elapsed, &mut frames);
        if frames.is_empty() {
            // The source had nothing due (timer fired early): never spin on the shard.
            glommio::timer::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let now_ms = crate::utc::now_ms();
        for frame in frames.drain(..) {
            input.push(frame, now_ms, &mut events);
        }
        for event in events.drain(..) {
            fanout.publish(event).await;
        }
    }
    let timeline = input.finish(&mut events);
    for event in events.drain(..) {
        fanout.publish(event).await;
    }
    log::info!("stream {name}: fake input stopped");
    timeline
}
