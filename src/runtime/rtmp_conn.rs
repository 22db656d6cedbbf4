//! RTMP on the connection driver: the glue between the sans-IO `RtmpConnection` (handshake,
//! commands) and `RtmpViewer` (FLV tags to chunks), and, for publishers, the stream's
//! ingest. Play and publish both ask the shard's one `Authorizer` through the same
//! lifecycle (`on_play` / `on_publish`).
//!
//! Play: a viewer of a `publish://` stream that has no publisher waits for one (as
//! nginx-rtmp does). When the publisher leaves, the viewer gets the rest of the ring, then
//! `NetStream.Play.UnpublishNotify`, and the connection closes.
//!
//! Publish (`publish://` streams): after the authorizer allows, the stream's `PublishSlot`
//! is claimed (a second publisher is refused with `NetStream.Publish.BadName`); the
//! publisher's frames go through a `LiveInput` on this shard and fan out to every shard;
//! when it leaves (FCUnpublish, deleteStream, EOF, error, idle timeout) the partial segment
//! is flushed, every shard is told (`InputEnded`), and the slot is released with the
//! timeline the next publisher continues.

use crate::auth::play::{Access, PlayLifecycle};
use crate::auth::verdict::Proto;
use crate::media::frame::MediaInfo;
use crate::rtmp::flv::MediaFrame;
use crate::rtmp::session::{
    Action, AuthAnswer, ConnectionConfig, DenyLevel, Output, PlayStart, RtmpConnection,
};
use crate::rtmp::viewer::RtmpViewer;
use crate::runtime::admission::Arrival;
use crate::runtime::driver::{
    Conn, Flow, Glue, Io, Playback, Profile, Viewing, drive_stream, prepare_stream,
};
use crate::runtime::fanout::Fanout;
use crate::runtime::play_auth::{authorize, open_session};
use crate::runtime::publish::{self, Claimed, Publisher, Refusal, lifecycle};
use crate::runtime::templates;
use crate::runtime::tls::Wire;
use crate::shard::ShardState;
use crate::stream::viewer::Outbox;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// Input buffer of a connection at first: a player's handshake and commands fit; a
/// publisher's grows (doubling) as its chunks need, up to `MAX_INPUT_BUFFER`.
const INPUT_BUFFER: usize = 4 * 1024;
/// Input buffered at most: one whole chunk of the largest message the chunk decoder takes
/// (a publisher may announce any chunk size up to 2^31, and the decoder consumes whole
/// chunks only), plus its header.
const MAX_INPUT_BUFFER: usize = (8 << 20) + 64;
const _: () = assert!(
    MAX_INPUT_BUFFER > crate::rtmp::chunk::ChunkLimits::DEFAULT_MAX_MESSAGE_SIZE,
    "a whole chunk of the largest message must fit"
);

/// Serves one RTMP connection until the peer leaves, a refusal, or a protocol error; a
/// publish it carried ends cleanly whatever ended the connection.
pub async fn serve<S: Wire>(
    mut socket: S,
    state: Rc<RefCell<ShardState>>,
    fanout: Rc<Fanout>,
    seed: u64,
    arrival: Arrival,
) {
    let Some(peer) = prepare_stream(&socket, &state) else {
        return;
    };
    let mut cfg = ConnectionConfig::new(seed);
    cfg.token_param = state.borrow().catalog().token_param.to_string();
    // ffmpeg then reports a refused play as "Input/output error", as the spec's scenario
    // has it; the onStatus still carries NetStream.Play.Failed and the reason.
    cfg.deny_level = DenyLevel::Warning;
    cfg.handshake_timeout = state.borrow().limits().first_request_timeout;
    let machine = RtmpConnection::new(cfg, Instant::now());
    let mut glue = RtmpGlue {
        fanout,
        play_version: None,
        claimed: None,
        publisher: None,
    };
    drive_stream(&mut glue, machine, &mut socket, &state, peer, None, arrival).await;
}

/// What RTMP keeps beside its machine: the play's media version, and a publish.
struct RtmpGlue {
    fanout: Rc<Fanout>,
    /// The `media_version` of the media the play's answer carried.
    play_version: Option<u64>,
    /// A publish allowed and claimed, until the machine starts it.
    claimed: Option<Claimed>,
    /// Boxed: a viewer's connection (most of them) then carries a pointer, not a publisher.
    publisher: Option<Box<Publisher>>,
}

/// Whether `id` is pulled from an origin (maybe on demand, starting now).
fn is_pulled(io: &Io<'_>, id: crate::stream::StreamId) -> bool {
    let shard = io.state.borrow();
    let stream = shard.catalog().stream(id);
    stream.is_some_and(|s| matches!(s.input, crate::config::InputUrl::Pull(_)))
}

impl RtmpGlue {
    /// Decides a play: the stream must exist and have media (or take publishers, and then
    /// the viewer waits), and the authorizer must allow; the session opens at once.
    async fn authorize_play(
        &mut self,
        playback: &mut Playback<RtmpViewer>,
        io: &Io<'_>,
        name: &str,
        token: Option<&[u8]>,
    ) -> AuthAnswer {
        // A name under a template's prefix is authorized and made first.
        let (id, published) = match templates::play_stream(io, Proto::Rtmp, name, token).await {
            Ok(found) => found,
            Err(None) => return AuthAnswer::NotFound,
            Err(Some(reason)) => {
                let reason = reason.as_str();
                return AuthAnswer::Denied { reason };
            }
        };
        let mut play = lifecycle(io, Proto::Rtmp, Access::Play, id, token);
        if let Err(reason) = authorize(io.state, &mut play).await {
            let reason = reason.as_str();
            return AuthAnswer::Denied { reason };
        }
        let (media, version) = {
            let shard = io.state.borrow();
            let view = shard.view(id);
            let media = view.and_then(|v| v.live_media().cloned());
            (media, view.map(|v| v.media_version))
        };
        // A published stream without a publisher, or a pull not started: the viewer waits.
        let (media, version) = match media {
            Some(media) => (media, version),
            None if published || is_pulled(io, id) => (MediaInfo::default(), None),
            None => return AuthAnswer::NotFound,
        };
        let session = open_session(io.state, &mut play);
        let tag = io.state.borrow().token_tag(token);
        log::info!(
            "rtmp play allowed stream={name} ip={} token={tag} session={}",
            io.peer,
            session.map_or_else(|| "-".to_owned(), |s| s.to_string())
        );
        playback.play = Some(play);
        self.play_version = version;
        AuthAnswer::Allowed { media }
    }

    /// Decides a publish (`publish::claim`): a `publish://` stream, `on_publish`, a free
    /// slot.
    async fn authorize_publish(
        &mut self,
        io: &Io<'_>,
        name: &str,
        token: Option<&[u8]>,
    ) -> AuthAnswer {
        match publish::claim(io, Proto::Rtmp, name, token).await {
            Ok(claimed) => {
                self.claimed = Some(claimed);
                AuthAnswer::Allowed {
                    media: MediaInfo::default(),
                }
            }
            Err(Refusal::NotFound) => AuthAnswer::NotFound,
            Err(Refusal::NotAPublishStream) => AuthAnswer::Denied {
                reason: "not_a_publish_stream",
            },
            Err(Refusal::Denied(reason)) => AuthAnswer::Denied {
                reason: reason.as_str(),
            },
            Err(Refusal::InUse) => AuthAnswer::InUse,
        }
    }

    /// The machine started the play: the viewer begins with the answer's configuration.
    fn start_play(&mut self, conn: &mut Conn<Self>, io: &Io<'_>, start: &PlayStart) {
        let Some(id) = conn.playback.play.as_ref().map(PlayLifecycle::stream) else {
            return;
        };
        let encoder = conn.machine.encoder().clone();
        let viewer = RtmpViewer::new(encoder, start.stream_id, &start.media, self.play_version);
        log::info!("rtmp play started stream={} ip={}", start.stream, io.peer);
        conn.playback.viewing = Some(Viewing::new(id, viewer));
    }

    /// The machine accepted the publish: its frames go through a `Publisher` from now on.
    fn start_publish(&mut self, io: &Io<'_>) {
        if let Some(claimed) = self.claimed.take() {
            self.publisher = Some(Box::new(Publisher::start(io, Proto::Rtmp, claimed)));
        }
    }

    async fn published(&mut self, media: MediaFrame) {
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        match media {
            MediaFrame::Config(info) => p.configure(info),
            // Boxed (one allocation per published frame): the push is the largest future
            // of `act`, which every viewer's connection task would otherwise carry.
            MediaFrame::Frame(frame) => Box::pin(p.push(frame, &self.fanout)).await,
        }
    }

    /// Ends a publish, whatever ended it (see `Publisher::end`).
    async fn end_publish(&mut self) {
        if let Some(p) = self.publisher.take() {
            // Boxed for the same reason, once per publish.
            Box::pin(p.end(&self.fanout)).await;
        }
    }
}

impl Glue for RtmpGlue {
    type Machine = RtmpConnection;
    type Viewer = RtmpViewer;
    const PROFILE: Profile = Profile::new("rtmp", INPUT_BUFFER, MAX_INPUT_BUFFER).buffered();

    fn input_ended(conn: &mut Conn<Self>, out: &mut Outbox) {
        conn.machine.unpublish_notify();
        while let Some(o) = conn.machine.poll_output() {
            if let Output::Transmit(b) = o {
                out.bytes_mut().extend_from_slice(&b);
            }
        }
    }

    async fn finish(&mut self, _conn: &mut Conn<Self>, _io: &mut Io<'_>) {
        self.end_publish().await;
    }

    async fn act(&mut self, output: Output, conn: &mut Conn<Self>, io: &mut Io<'_>) -> Flow {
        match output {
            Output::Authorize {
                action,
                stream,
                token,
                ..
            } => {
                let token = token.as_deref();
                let answer = match action {
                    Action::Publish => self.authorize_publish(io, &stream, token).await,
                    Action::Play => {
                        let playback = &mut conn.playback;
                        self.authorize_play(playback, io, &stream, token).await
                    }
                };
                conn.machine.authorized(answer, Instant::now());
                return Flow::Again;
            }
            Output::StartPlay(start) => self.start_play(conn, io, &start),
            Output::PausePlay { paused } => {
                if let Some(v) = &mut conn.playback.viewing {
                    v.paused = paused;
                    if !paused {
                        v.viewer.resume();
                    }
                }
            }
            Output::StopPlay => conn.playback.viewing = None,
            Output::PublishStarted { .. } => self.start_publish(io),
            Output::Published(media) => self.published(media).await,
            Output::Unpublished => self.end_publish().await,
            Output::Close(reason) => {
                log::debug!("rtmp {}: closing: {reason:?}", io.peer);
                return Flow::Close;
            }
            // The driver writes these and keeps the timer.
            Output::Transmit(_) | Output::Timeout(_) => {}
        }
        Flow::Idle
    }
}

crate::runtime::driver::machine_of!(
    RtmpConnection,
    Output,
    crate::rtmp::session::RtmpError,
    peer_closed
);
