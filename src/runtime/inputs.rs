//! `OwnedInputs`: the inputs a shard runs (the `fake://` streams it owns), started at
//! start-up and by a reload, stopped by a reload or the shard's stop. A stopped input ends
//! like a publisher that leaves: its partial segment and `InputEnded` go out through the
//! fanout, in order with its other events, so every shard's view ends alike; a restarted
//! input continues the stream's timeline under the next generation.

use crate::catalog::{Catalog, StreamSpec};
use crate::config::InputUrl;
use crate::runtime::fake_input;
use crate::runtime::fanout::Fanout;
use crate::runtime::stop_signal::StopSignal;
use crate::stream::StreamId;
use crate::stream::live_input::Timeline;
use ahash::AHashMap;
use glommio::task::JoinHandle;
use std::rc::Rc;

/// Where a stopped input left its stream, for the input that follows it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resume {
    pub generation: u64,
    pub timeline: Timeline,
}

struct Running {
    stop: StopSignal,
    task: JoinHandle<Resume>,
}

pub struct OwnedInputs {
    shard: usize,
    shards: usize,
    fanout: Rc<Fanout>,
    running: AHashMap<StreamId, Running>,
}

impl OwnedInputs {
    pub fn new(shard: usize, shards: usize, fanout: Rc<Fanout>) -> OwnedInputs {
        OwnedInputs {
            shard,
            shards,
            fanout,
            running: AHashMap::new(),
        }
    }

    /// Starts the input of every stream of `catalog` this shard owns.
    pub fn start_owned(&mut self, catalog: &Catalog) {
        for stream in &catalog.streams {
            self.start(catalog, stream, Resume::default());
        }
    }

    /// Starts `stream`'s input if this shard owns it and it is one a shard runs (a
    /// `publish://` stream's input runs on the shard its publisher connects to).
    pub fn start(&mut self, catalog: &Catalog, stream: &StreamSpec, from: Resume) {
        if catalog.owner_shard(stream.id, self.shards) != self.shard {
            return;
        }
        match stream.input {
            InputUrl::Fake => {
                let stop = StopSignal::new();
                let run = fake_input::run(
                    fake_input::Start {
                        stream: stream.id,
                        name: stream.name.clone(),
                        segment_ms: stream.segment_duration_ms,
                        generation: from.generation + 1,
                        timeline: from.timeline,
                    },
                    self.fanout.clone(),
                    stop.clone(),
                );
                let task = glommio::spawn_local(run).detach();
                self.running.insert(stream.id, Running { stop, task });
            }
            InputUrl::Publish => {}
        }
    }

    /// Stops `stream`'s input, if this shard runs it; where it left the stream.
    pub async fn stop(&mut self, stream: StreamId) -> Option<Resume> {
        let running = self.running.remove(&stream)?;
        running.stop.fire();
        running.task.await
    }

    /// Stops every input this shard runs.
    pub async fn stop_all(&mut self) {
        let ids: Vec<StreamId> = self.running.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}
