//! The async driver of a `fake://` input: wakes when the next frame is due (a timer, not a
//! polling loop), pulls the frames from the sans-IO `FakeSource`, feeds them to the
//! stream's `LiveInput` (segments, TS feed, FLV tags) and fans the events out to every
//! shard.

use crate::media::frame::TIMESCALE;
use crate::runtime::fanout::Fanout;
use crate::runtime::inputs::Resume;
use crate::runtime::stop_signal::StopSignal;
use crate::source::fake::FakeSource;
use crate::stream::StreamId;
use crate::stream::live_input::{LiveInput, Timeline};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Keyframe interval of the fake source: one second at 25 fps.
const KEYFRAME_INTERVAL_FRAMES: u32 = 25;

/// What a fake input starts from.
pub struct Start {
    pub stream: StreamId,
    pub name: Box<str>,
    pub segment_ms: u32,
    /// Its publish generation: one past the input it follows (a restart), so every shard's
    /// view switches to it.
    pub generation: u64,
    /// Where the input it follows left the stream.
    pub timeline: Timeline,
}

/// Runs the input until `stop` fires; then ends it (the partial segment, `InputEnded`) and
/// returns where it left the stream.
pub async fn run(start: Start, fanout: Rc<Fanout>, stop: StopSignal) -> Resume {
    let started = Instant::now();
    let utc_base_ms = crate::utc::now_ms();
    let mut source = FakeSource::new(utc_base_ms, KEYFRAME_INTERVAL_FRAMES);
    let (generation, name) = (start.generation, start.name);
    let mut input = LiveInput::new(start.stream, generation, start.segment_ms, start.timeline);
    input.configure(source.media_info());
    log::info!("stream {name}: fake input started");
    let mut frames = Vec::with_capacity(8);
    let mut events = Vec::with_capacity(16);
    while !stop.is_fired() {
        let due = Duration::from_micros((source.next_due().max(0) * 1_000_000 / TIMESCALE) as u64);
        let wait = (started + due).saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            futures_lite::future::or(glommio::timer::sleep(wait), stop.fired()).await;
            continue;
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
    Resume {
        generation,
        timeline,
    }
}
