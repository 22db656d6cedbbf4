//! Publishing into a `publish://` stream, whatever the protocol (RTMP, SRT): the one path
//! from a publisher's request to frames on every shard.
//!
//! `claim` decides a publish: the stream must exist and take publishers, the shard's
//! `Authorizer` must allow (`on_publish`, through the same lifecycle as plays), and the
//! stream's `PublishSlot` must be free: one publisher per stream across shards *and*
//! protocols, so an RTMP and an SRT publisher compete for the same slot. A `Publisher` then
//! carries the frames through a `LiveInput` on this shard into `Fanout`; `end` (on any end:
//! the protocol's unpublish, EOF, error, idle timeout, a refused stream) flushes the partial
//! segment, tells every shard (`InputEnded`) and releases the slot with the timeline the
//! next publisher continues from.

use crate::auth::play::{Access, PlayLifecycle};
use crate::auth::verdict::{DenyReason, Proto, StreamId};
use crate::catalog::PublishClaim;
use crate::media::frame::{Frame, MediaInfo};
use crate::mux::ts_demux::{DemuxError, DemuxEvent, TsDemuxer};
use crate::runtime::driver::Io;
use crate::runtime::fanout::Fanout;
use crate::runtime::play_auth::authorize;
use crate::stream::live_input::LiveInput;
use crate::stream::view::StreamEvent;
use std::time::Instant;

/// Why a publish was refused (each protocol says it its own way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    /// The stream's input is not `publish://`.
    NotAPublishStream,
    Denied(DenyReason),
    /// Another publisher holds the stream (on any shard, over any protocol).
    InUse,
}

/// A stream's id and whether it takes publishers, by name.
pub fn stream_by_name(io: &Io<'_>, name: &str) -> Option<(StreamId, bool)> {
    let shard = io.state.borrow();
    let stream = shard.catalog().stream_by_name(name)?;
    Some((stream.id, stream.publish.is_some()))
}

/// The lifecycle of a play or publish of `id` by this connection's peer over `proto`.
pub fn lifecycle(
    io: &Io<'_>,
    proto: Proto,
    access: Access,
    id: StreamId,
    token: Option<&[u8]>,
) -> PlayLifecycle {
    let token_param = io.state.borrow().catalog().token_param.clone();
    let now = Instant::now();
    PlayLifecycle::new(access, id, proto, token, io.peer, None, &token_param, now)
}

/// A publish allowed and claimed, not started yet.
pub struct Claimed {
    pub stream: StreamId,
    pub name: String,
    claim: PublishClaim,
}

/// Decides a publish of `name` over `proto` and claims the stream's slot (logged either
/// way, the token as its tag).
pub async fn claim(
    io: &Io<'_>,
    proto: Proto,
    name: &str,
    token: Option<&[u8]>,
) -> Result<Claimed, Refusal> {
    let (peer, label) = (io.peer, proto.as_str());
    let tag = io.state.borrow().token_tag(token);
    let refused = |why: &dyn std::fmt::Display| {
        log::info!("{label} publish refused stream={name} ip={peer} token={tag}: {why}");
    };
    let id = match stream_by_name(io, name) {
        None => {
            refused(&"no such stream");
            return Err(Refusal::NotFound);
        }
        Some((_, false)) => {
            refused(&"input is not publish://");
            return Err(Refusal::NotAPublishStream);
        }
        Some((id, true)) => id,
    };
    let mut publish = lifecycle(io, proto, Access::Publish, id, token);
    if let Err(reason) = authorize(io.state, &mut publish).await {
        refused(&reason);
        return Err(Refusal::Denied(reason));
    }
    let catalog = io.state.borrow().catalog().clone();
    let Some(claim) = PublishClaim::take(&catalog, id) else {
        refused(&"already published");
        return Err(Refusal::InUse);
    };
    log::info!("{label} publish allowed stream={name} ip={peer} token={tag}");
    Ok(Claimed {
        stream: id,
        name: name.to_owned(),
        claim,
    })
}

/// A publish in progress: the claim on the stream and the pipeline its frames go through.
pub struct Publisher {
    name: String,
    proto: Proto,
    claim: PublishClaim,
    input: LiveInput,
    frames: u64,
    events: Vec<StreamEvent>,
}

impl Publisher {
    /// Starts the claimed publish: its frames go through a `LiveInput` from now on, on the
    /// stream's timeline where the previous publisher left it.
    pub fn start(io: &Io<'_>, proto: Proto, claimed: Claimed) -> Publisher {
        let Claimed {
            stream,
            name,
            claim,
        } = claimed;
        let segment_ms = io
            .state
            .borrow()
            .catalog()
            .stream(stream)
            .map_or(2000, |s| s.segment_duration_ms);
        let input = LiveInput::new(stream, claim.generation(), segment_ms, claim.timeline());
        log::info!(
            "{} publish started stream={name} ip={} generation={}",
            proto.as_str(),
            io.peer,
            claim.generation()
        );
        Publisher {
            name,
            proto,
            claim,
            input,
            frames: 0,
            events: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The publisher's decoder configuration (again whenever it changes).
    pub fn configure(&mut self, info: MediaInfo) {
        self.input.configure(info);
    }

    /// One frame (the publisher's timestamps), out to every shard.
    pub async fn push(&mut self, frame: Frame, fanout: &Fanout) {
        self.frames += 1;
        self.input
            .push(frame, crate::utc::now_ms(), &mut self.events);
        self.fan_out(fanout).await;
    }

    async fn fan_out(&mut self, fanout: &Fanout) {
        for event in self.events.drain(..) {
            fanout.publish(event).await;
        }
    }

    /// Ends the publish: flushes the partial segment, tells every shard the input ended,
    /// and releases the stream's slot (when `self` drops) with the timeline the next
    /// publisher continues from.
    pub async fn end(mut self, fanout: &Fanout) {
        let timeline = self.input.finish(&mut self.events);
        self.fan_out(fanout).await;
        self.claim.record(timeline);
        log::info!(
            "{} publish ended stream={} frames={} next_dts={} next_sequence={}",
            self.proto.as_str(),
            self.name,
            self.frames,
            timeline.next_dts,
            timeline.next_sequence
        );
    }
}

/// A publisher whose bytes are an MPEG-TS (SRT today): the demuxer in front of a
/// `Publisher`. Damage the stream survives (a lost packet, a continuity jump) is logged
/// once with the stream's name and then counted; what it cannot survive (a codec tessera
/// does not carry, no PAT/PMT) ends the publish with one log line saying why.
pub struct TsPublisher {
    publisher: Publisher,
    demux: TsDemuxer,
    demuxed: Vec<DemuxEvent>,
    /// Damage seen and survived.
    damaged: u64,
    /// Bytes taken before the stream's first configuration (until then; see `NO_MEDIA_BYTES`).
    before_media: Option<u64>,
}

/// Bytes a TS publisher may send before its stream has a configuration (PAT, PMT, SPS/PPS
/// and the audio header): a publisher sending bytes that are not TS at all never gets a
/// packet framed (so never "no PAT"), and would hold the stream's slot forever. Generous:
/// an encoder joined mid-GOP waits for its next keyframe.
pub const NO_MEDIA_BYTES: u64 = 8 << 20;

/// Why a TS publish cannot go on.
#[derive(Debug)]
pub enum Unusable {
    /// A codec tessera does not carry, or no PAT/PMT.
    Ts(DemuxError),
    /// `NO_MEDIA_BYTES` and still nothing to play.
    NoMedia,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Ts(e) => e.fmt(f),
            Unusable::NoMedia => write!(
                f,
                "no MPEG-TS media (PAT, PMT, H.264/AAC configuration) in the first {NO_MEDIA_BYTES} bytes"
            ),
        }
    }
}

impl TsPublisher {
    pub fn new(publisher: Publisher) -> TsPublisher {
        TsPublisher {
            publisher,
            demux: TsDemuxer::new(),
            demuxed: Vec::new(),
            damaged: 0,
            before_media: Some(0),
        }
    }

    pub fn name(&self) -> &str {
        self.publisher.name()
    }

    /// Demuxes `bytes` (any cut of the stream) and publishes the frames they complete.
    pub async fn push(&mut self, bytes: &[u8], fanout: &Fanout) -> Result<(), Unusable> {
        self.demux.push(bytes, &mut self.demuxed);
        self.publish_demuxed(fanout).await?;
        if let Some(n) = self.before_media.as_mut() {
            *n += bytes.len() as u64;
            if *n > NO_MEDIA_BYTES {
                return Err(Unusable::NoMedia);
            }
        }
        Ok(())
    }

    async fn publish_demuxed(&mut self, fanout: &Fanout) -> Result<(), Unusable> {
        let mut demuxed = std::mem::take(&mut self.demuxed);
        let mut result = Ok(());
        for event in demuxed.drain(..) {
            match event {
                DemuxEvent::Media(info) => {
                    self.before_media = None;
                    self.publisher.configure(info);
                }
                DemuxEvent::Frame(frame) => self.publisher.push(frame, fanout).await,
                DemuxEvent::Error(e) if ends_the_publish(&e) => {
                    result = Err(Unusable::Ts(e));
                    break;
                }
                DemuxEvent::Error(e) => self.damage(&e),
            }
        }
        demuxed.clear();
        self.demuxed = demuxed;
        result
    }

    fn damage(&mut self, e: &DemuxError) {
        self.damaged += 1;
        let name = self.publisher.name();
        if self.damaged == 1 {
            log::info!("publish stream={name}: damaged input (counted from now on): {e}");
        } else {
            log::debug!("publish stream={name}: {e}");
        }
    }

    /// The publisher left (or was ended): the last frames out, then `Publisher::end`.
    pub async fn end(mut self, fanout: &Fanout) {
        self.demux.finish(&mut self.demuxed);
        // A publisher cut off mid-PES is how streams end, not damage.
        self.demuxed.retain(|e| !matches!(e, DemuxEvent::Error(_)));
        let _ = self.publish_demuxed(fanout).await;
        if self.damaged > 0 {
            let name = self.publisher.name();
            log::info!(
                "publish stream={name}: {} damaged spots in its TS",
                self.damaged
            );
        }
        self.publisher.end(fanout).await;
    }
}

/// A codec tessera does not carry, or no tables to demux by: nothing of the stream can be
/// served.
fn ends_the_publish(e: &DemuxError) -> bool {
    e.is_fatal() || matches!(e, DemuxError::MissingTables { .. })
}
