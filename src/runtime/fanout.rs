//! `Fanout`: how an input on its owner shard reaches every shard. The event is applied to
//! the local `ShardState` directly and sent to every other shard over the channel mesh.
//! Events carry `Bytes`, so each extra shard costs a reference count, not a copy.
//!
//! Every input of the shard publishes here, so this is where a stream's AAC frames get
//! their Opus packets for WebRTC viewers (`WebRtcAudio`), once, before any shard sees
//! them, while the catalog's `opus_demand` says some shard has a WebRTC viewer.

use crate::shard::ShardState;
use crate::stream::StreamId;
use crate::stream::view::StreamEvent;
use crate::stream::webrtc_audio::WebRtcAudio;
use glommio::channels::channel_mesh::Senders;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub struct Fanout {
    senders: Senders<StreamEvent>,
    state: Rc<RefCell<ShardState>>,
    /// The transcoders of the streams whose input runs on this shard.
    audio: RefCell<HashMap<StreamId, WebRtcAudio>>,
}

impl Fanout {
    pub fn new(senders: Senders<StreamEvent>, state: Rc<RefCell<ShardState>>) -> Self {
        Fanout {
            senders,
            state,
            audio: RefCell::default(),
        }
    }

    /// The shard's state (an input reports its status there).
    pub fn state(&self) -> &Rc<RefCell<ShardState>> {
        &self.state
    }

    /// Delivers `event` to every shard. Waits only if a peer's queue is full (a peer that
    /// is minutes behind), which throttles the input instead of growing memory.
    pub async fn publish(&self, mut event: StreamEvent) {
        self.transcode_audio(&mut event);
        let me = self.senders.peer_id();
        for peer in 0..self.senders.nr_consumers() {
            if peer != me && self.senders.send_to(peer, event.clone()).await.is_err() {
                log::warn!("shard {me}: shard {peer} no longer takes stream events");
            }
        }
        self.state.borrow_mut().apply(event);
    }

    /// Gives an AAC frame its Opus packets while WebRTC viewers want them (see the
    /// module's comment); a stream's transcoder goes with its input's end.
    fn transcode_audio(&self, event: &mut StreamEvent) {
        let stream = event.stream();
        let mut audio = self.audio.borrow_mut();
        match event {
            StreamEvent::Media { info, .. } if info.audio.is_some() => {
                audio.entry(stream).or_default();
            }
            StreamEvent::InputEnded { .. } => {
                audio.remove(&stream);
                return;
            }
            _ => {}
        }
        if let Some(transcoder) = audio.get_mut(&stream) {
            let wanted = self.state.borrow().catalog().opus_demand.wanted(stream);
            transcoder.on_event(event, wanted);
        }
    }
}
