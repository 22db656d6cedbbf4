//! On-demand pulls (`static false;`): a stream's pull runs on its owner shard while someone
//! watches it on any shard, and stops `clients_timeout` after the last viewer left.
//!
//! Every shard looks at its on-demand streams four times a second: a stream is watched
//! there when it has an open session (a playing RTMP/RTSP/SRT/TS connection, or an HTTP
//! session not yet idled out) or a request parked for its first segment. A watched stream
//! is demanded from its owner — directly on the owner, else over a small channel mesh of
//! stream ids, at most once a second per stream. The owner starts the pull on the first
//! demand (`OwnedInputs::demand`) and stops it once no demand came for `clients_timeout`.
//! A stream a template made (`StreamKind::Made`) counts as demanded when made, and is
//! forgotten (the main thread drops it from the catalog) when its pull stops.

use crate::catalog::{Catalog, StreamKind, StreamSpec};
use crate::runtime::inputs::OwnedInputs;
use crate::shard::ShardState;
use crate::stream::StreamId;
use ahash::AHashMap;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often each shard looks for watched on-demand streams.
const TICK: Duration = Duration::from_millis(250);
/// A watched stream is demanded from another shard at most this often.
const RESEND: Duration = Duration::from_secs(1);
/// Demands queued per peer.
pub const DEMAND_QUEUE: usize = 256;

/// The mesh every shard joins for demands.
pub type DemandMesh = MeshBuilder<StreamId, Full>;

pub fn mesh(shards: usize) -> DemandMesh {
    MeshBuilder::full(shards, DEMAND_QUEUE)
}

pub struct OnDemand {
    state: Rc<RefCell<ShardState>>,
    inputs: Rc<RefCell<OwnedInputs>>,
    senders: Senders<StreamId>,
    /// Owner side: the last demand of each on-demand pull this shard runs.
    last_demand: RefCell<AHashMap<StreamId, Instant>>,
    /// Asking side: when each stream was last demanded from its owner.
    last_sent: RefCell<AHashMap<StreamId, Instant>>,
}

impl OnDemand {
    /// Runs this shard's part, on the joined demand mesh.
    pub fn start(
        (senders, receivers): (Senders<StreamId>, Receivers<StreamId>),
        state: Rc<RefCell<ShardState>>,
        inputs: Rc<RefCell<OwnedInputs>>,
    ) {
        let this = Rc::new(OnDemand {
            state,
            inputs,
            senders,
            last_demand: RefCell::default(),
            last_sent: RefCell::default(),
        });
        this.receive(receivers);
        let ticking = this.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(TICK).await;
                ticking.tick(Instant::now()).await;
            }
        })
        .detach();
    }

    fn receive(self: &Rc<Self>, mut receivers: Receivers<StreamId>) {
        for (_, receiver) in receivers.streams() {
            let this = self.clone();
            glommio::spawn_local(async move {
                while let Some(stream) = receiver.recv().await {
                    this.demanded(stream, Instant::now());
                }
            })
            .detach();
        }
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.state.borrow().catalog().clone()
    }

    async fn tick(&self, now: Instant) {
        let catalog = self.catalog();
        let me = self.senders.peer_id();
        let shards = self.senders.nr_consumers();
        for spec in catalog.streams.iter().filter(|s| s.pull.on_demand) {
            if spec.kind == StreamKind::Made && catalog.owner_shard(spec.id, shards) == me {
                // A made stream nobody demands is forgotten like one whose viewers left.
                self.last_demand.borrow_mut().entry(spec.id).or_insert(now);
            }
            if !self.watched_here(spec.id) {
                continue;
            }
            let owner = catalog.owner_shard(spec.id, shards);
            if owner == me {
                self.demanded(spec.id, now);
            } else {
                self.send_demand(owner, spec.id, now).await;
            }
        }
        self.stop_idle(&catalog, now);
    }

    fn watched_here(&self, stream: StreamId) -> bool {
        let state = self.state.borrow();
        state.authorizer().sessions().on_stream(stream) > 0
            || state.view(stream).is_some_and(|v| v.window.has_waiters())
    }

    async fn send_demand(&self, owner: usize, stream: StreamId, now: Instant) {
        if self
            .last_sent
            .borrow()
            .get(&stream)
            .is_some_and(|&at| now < at + RESEND)
        {
            return;
        }
        self.last_sent.borrow_mut().insert(stream, now);
        // (`try_send_to` would not wake the owner's receiver; this waits only while the
        // owner's queue is full.)
        if self.senders.send_to(owner, stream).await.is_err() {
            log::warn!("shard {owner} no longer takes on-demand requests");
        }
    }

    /// Owner side: a viewer somewhere watches `stream`.
    fn demanded(&self, stream: StreamId, now: Instant) {
        let catalog = self.catalog();
        let pulled = |s: &&StreamSpec| s.pull.on_demand && s.kind != StreamKind::Gate;
        let Some(spec) = catalog.stream(stream).filter(pulled) else {
            return;
        };
        self.last_demand.borrow_mut().insert(stream, now);
        let mut inputs = self.inputs.borrow_mut();
        if !inputs.is_running(stream) {
            log::info!(
                "stream {}: on-demand pull starting: a viewer came",
                spec.name
            );
            inputs.demand(spec);
        }
    }

    /// Owner side: stops the pulls nobody demanded for their `clients_timeout`.
    fn stop_idle(&self, catalog: &Catalog, now: Instant) {
        let mut last = self.last_demand.borrow_mut();
        last.retain(|&stream, &mut at| {
            let Some(spec) = catalog.stream(stream) else {
                return false;
            };
            if now < at + idle_limit(spec) {
                return true;
            }
            if self.inputs.borrow_mut().stop(stream) {
                log::info!(
                    "stream {}: on-demand pull stopping: no viewer for {} s",
                    spec.name,
                    spec.pull.clients_timeout_ms / 1000
                );
            }
            if spec.kind == StreamKind::Made {
                crate::runtime::control::forget_stream(&spec.name);
            }
            false
        });
    }
}

fn idle_limit(spec: &StreamSpec) -> Duration {
    Duration::from_millis(spec.pull.clients_timeout_ms.into())
}
