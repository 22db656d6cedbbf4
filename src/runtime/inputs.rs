//! `OwnedInputs`: the inputs a shard runs for the streams it owns (`fake://` sources, and
//! pulls from an origin), started and stopped by stream id.
//!
//! The API is what config reload and on-demand pulls use: `start(&StreamSpec)` runs the
//! stream's input (a no-op when it runs already, or when the stream's input is not one a
//! shard owns: `publish://` runs on the publisher's shard; an on-demand pull waits for
//! `demand(&StreamSpec)`, which `runtime::on_demand` calls); `stop(id)` tells the input to
//! end cleanly (its partial segment and `InputEnded` go through the fanout, its upstream
//! connection is closed); `is_running(id)`. A stream stopped and started again (a reload
//! that changed its input) continues its timeline: segment numbers and timestamps go on
//! from where the stopped input left them, under a newer generation, so every shard's view
//! switches to the new input.

use crate::catalog::StreamSpec;
use crate::config::InputUrl;
use crate::config::pull::PullOptions;
use crate::runtime::fanout::Fanout;
use crate::runtime::stop_signal::StopSignal;
use crate::stream::StreamId;
use crate::stream::live_input::Timeline;
use glommio::task::JoinHandle;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// What an input task is started with.
pub struct InputStart {
    pub stream: StreamId,
    pub name: Box<str>,
    pub segment_ms: u32,
    /// Counts the stream's inputs on this shard: each start is newer than the last.
    pub generation: u64,
    /// Where the previous input left the stream.
    pub timeline: Timeline,
    pub fanout: Rc<Fanout>,
    pub stop: StopSignal,
}

/// A stream's input on this shard: running (with its stop signal) or stopped, and what the
/// next start continues from.
struct Slot {
    stop: Option<StopSignal>,
    /// The last task started; a new start waits for it to have finished.
    task: Option<JoinHandle<Timeline>>,
    generation: u64,
}

pub struct OwnedInputs {
    fanout: Rc<Fanout>,
    slots: HashMap<StreamId, Slot>,
}

type InputTask = Pin<Box<dyn Future<Output = Timeline>>>;

impl OwnedInputs {
    pub fn new(fanout: Rc<Fanout>) -> Self {
        OwnedInputs {
            fanout,
            slots: HashMap::new(),
        }
    }

    /// Starts `spec`'s input on this shard. Returns whether one runs now: false for
    /// `publish://` (its input runs on the shard its publisher connects to) and for an
    /// on-demand pull (`static false;`), which `demand` starts when a viewer comes.
    pub fn start(&mut self, spec: &StreamSpec) -> bool {
        if spec.pull.on_demand {
            return self.is_running(spec.id);
        }
        self.demand(spec)
    }

    /// Starts `spec`'s input now, on demand or not (a viewer asked for an on-demand pull).
    pub fn demand(&mut self, spec: &StreamSpec) -> bool {
        if matches!(spec.input, InputUrl::Publish) {
            return false;
        }
        let slot = self.slots.entry(spec.id).or_insert(Slot {
            stop: None,
            task: None,
            generation: 0,
        });
        if slot.stop.is_some() {
            return true;
        }
        slot.generation += 1;
        let stop = StopSignal::new();
        slot.stop = Some(stop.clone());
        let previous = slot.task.take();
        let fanout = self.fanout.clone();
        let (stream, generation, name) = (spec.id, slot.generation, spec.name.clone());
        let (segment_ms, input) = (spec.segment_duration_ms, spec.input.clone());
        let pull = spec.pull.clone();
        let task = glommio::spawn_local(async move {
            // The previous input of this stream must have flushed before this one starts,
            // and its timeline is where this one continues.
            let timeline = match previous {
                Some(p) => p.await.unwrap_or_default(),
                None => Timeline::default(),
            };
            let start = InputStart {
                stream,
                name,
                segment_ms,
                generation,
                timeline,
                fanout,
                stop,
            };
            input_task(input, pull, start).await
        })
        .detach();
        slot.task = Some(task);
        true
    }

    /// Tells `stream`'s input to end (it flushes its partial segment, sends `InputEnded`
    /// and closes its upstream connection on its own). Returns whether one was running.
    pub fn stop(&mut self, stream: StreamId) -> bool {
        let Some(stop) = self.slots.get_mut(&stream).and_then(|s| s.stop.take()) else {
            return false;
        };
        stop.fire();
        true
    }

    /// Tells every input of this shard to end (the shard stops).
    pub fn stop_all(&mut self) {
        for slot in self.slots.values_mut() {
            if let Some(stop) = slot.stop.take() {
                stop.fire();
            }
        }
    }

    pub fn is_running(&self, stream: StreamId) -> bool {
        self.slots.get(&stream).is_some_and(|s| s.stop.is_some())
    }
}

/// The task that runs one input kind to its end; returns the timeline it reached.
fn input_task(input: InputUrl, pull: PullOptions, start: InputStart) -> InputTask {
    match input {
        InputUrl::Fake => Box::pin(crate::runtime::fake_input::run(start)),
        InputUrl::Publish => Box::pin(async move { start.timeline }),
        InputUrl::Pull(primary) => Box::pin(crate::runtime::pull::run(primary, pull, start)),
    }
}
