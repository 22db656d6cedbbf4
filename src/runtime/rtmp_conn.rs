//! The I/O shell of one RTMP connection: feeds bytes to the sans-IO `RtmpConnection`,
//! answers its Authorize with the shard's `Authorizer` (proto `rtmp`, the same entry point
//! as every other protocol; `authorize_publish` for a publisher), and then either plays or
//! publishes.
//!
//! Play: sends the decoder configuration and then the stream's FLV tags from the shard's
//! `FrameRing`, from the newest keyframe on. Tags are built once per frame by the input's
//! shard and shared as `Bytes`. A viewer of a `publish://` stream that has no publisher
//! waits for one (as nginx-rtmp does); the configuration (and `onMetaData`) goes out again
//! whenever the stream's media changes. When the publisher leaves, the viewer gets the rest
//! of the ring, then `NetStream.Play.UnpublishNotify`, and the connection closes. A viewer
//! that falls out of the ring skips to the newest keyframe and is disconnected after a few
//! skips, like RTSP.
//!
//! Publish (`publish://` streams): after the authorizer allows, the stream's `PublishSlot`
//! is claimed (a second publisher is refused with `NetStream.Publish.BadName`); the
//! publisher's frames go through a `LiveInput` on this shard and fan out to every shard;
//! when it leaves (FCUnpublish, deleteStream, EOF, error, idle timeout) the partial segment
//! is flushed, every shard is told (`InputEnded`), and the slot is released with the
//! timeline the next publisher continues.

use crate::auth::verdict::{Proto, StreamId, canonical_ip};
use crate::catalog::PublishClaim;
use crate::media::frame::{MediaInfo, TrackKind};
use crate::rtmp::flv::{FlvTag, MediaFrame, audio_config_tag, metadata_tag, video_config_tag};
use crate::rtmp::session::{
    Action, AuthAnswer, ConnectionConfig, DenyLevel, Output, RtmpConnection,
};
use crate::runtime::fanout::Fanout;
use crate::runtime::play_auth::{ConnectionPlay, authorize_publish};
use crate::runtime::ring_wait::RingReady;
use crate::runtime::{flush, sleep_until};
use crate::shard::ShardState;
use crate::stream::live_input::LiveInput;
use crate::stream::ring::{Step, ViewerCursor};
use crate::stream::view::StreamEvent;
use bytes::Bytes;
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::net::IpAddr;
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
/// Frames sent per wake-up before other tasks get the shard back.
const FRAMES_PER_BATCH: usize = 64;
/// Output is written once it reaches this, also in the middle of a message: a viewer's
/// output buffer stays this small (plus one chunk) whatever the size of a keyframe or of
/// the start-up burst. Memory per viewer is this buffer, not the GOP.
const FLUSH_AT: usize = 32 * 1024;
/// Room for one chunk (payload and header) past `FLUSH_AT`, so the buffer never grows.
const OUTPUT_CAPACITY: usize = FLUSH_AT + 8 * 1024;

struct Player {
    stream: StreamId,
    cursor: ViewerCursor,
    paused: bool,
    /// Audio before the first keyframe is dropped (players expect video first).
    started: bool,
    /// The stream's `media_version` whose configuration the viewer has.
    sent_version: Option<u64>,
}

/// A publish in progress: the claim on the stream and the pipeline its frames go through.
struct Publisher {
    name: String,
    claim: PublishClaim,
    input: LiveInput,
    frames: u64,
}

/// Serves one RTMP connection until the peer leaves, a refusal, or a protocol error; a
/// publish it carried ends cleanly whatever ended the connection.
pub async fn serve(
    stream: TcpStream,
    state: Rc<RefCell<ShardState>>,
    fanout: Rc<Fanout>,
    seed: u64,
) {
    let mut publisher = None;
    let mut events = Vec::new();
    serve_connection(stream, &state, &fanout, seed, &mut publisher, &mut events).await;
    if let Some(p) = publisher.take() {
        end_publish(p, &fanout, &mut events).await;
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    state: &Rc<RefCell<ShardState>>,
    fanout: &Rc<Fanout>,
    seed: u64,
    publisher: &mut Option<Publisher>,
    events: &mut Vec<StreamEvent>,
) {
    let state = state.clone();
    let peer = match stream.peer_addr() {
        Ok(a) => canonical_ip(a.ip()),
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(state.borrow().limits.write_timeout));
    let mut cfg = ConnectionConfig::new(seed);
    cfg.token_param = state.borrow().catalog.token_param.to_string();
    // ffmpeg then reports a refused play as "Input/output error", as the spec's scenario
    // has it; the onStatus still carries NetStream.Play.Failed and the reason.
    cfg.deny_level = DenyLevel::Warning;
    let mut conn = RtmpConnection::new(cfg, Instant::now());

    let mut inbuf = vec![0u8; INPUT_BUFFER];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out: Vec<u8> = Vec::with_capacity(OUTPUT_CAPACITY);
    let mut deadline: Option<Instant> = None;
    let mut player: Option<Player> = None;
    let mut authorized: Option<ConnectionPlay> = None;
    let mut authorized_version: Option<u64> = None;
    let mut claimed: Option<(StreamId, PublishClaim)> = None;

    loop {
        loop {
            if start < end {
                match conn.handle_input(&inbuf[start..end], Instant::now()) {
                    Ok(n) => start += n,
                    Err(e) => {
                        // The machine queued the close (and ends any publish first).
                        log::info!("rtmp {peer}: closing on a protocol error: {e}");
                        start = end;
                    }
                }
            }
            let mut answered = false;
            while let Some(output) = conn.poll_output() {
                match output {
                    Output::Transmit(bytes) => out.extend_from_slice(&bytes),
                    Output::Authorize {
                        action,
                        stream: name,
                        token,
                        ..
                    } => {
                        let answer = match action {
                            Action::Publish => {
                                let (answer, claim) =
                                    authorize_publisher(&state, &name, token.as_deref(), peer)
                                        .await;
                                claimed = claim;
                                answer
                            }
                            Action::Play => {
                                let (answer, play, version) =
                                    authorize(&state, &name, token.as_deref(), peer).await;
                                authorized = play;
                                authorized_version = version;
                                answer
                            }
                        };
                        conn.authorized(answer, Instant::now());
                        answered = true;
                    }
                    Output::StartPlay(play) => {
                        let Some(id) = authorized.as_ref().map(|a| a.stream) else {
                            continue;
                        };
                        for tag in [
                            play.media.video.as_ref().map(|v| video_config_tag(v, 0)),
                            play.media.audio.as_ref().map(|a| audio_config_tag(a, 0)),
                        ]
                        .into_iter()
                        .flatten()
                        {
                            if let Some(chunks) = conn.media_message(&tag) {
                                append_parts(&mut out, chunks.parts());
                            }
                        }
                        log::info!("rtmp play started stream={} ip={peer}", play.stream);
                        player = Some(Player {
                            stream: id,
                            cursor: ViewerCursor::new(),
                            paused: false,
                            started: false,
                            sent_version: authorized_version,
                        });
                    }
                    Output::PausePlay { paused } => {
                        if let Some(p) = &mut player {
                            p.paused = paused;
                        }
                    }
                    Output::StopPlay => player = None,
                    Output::PublishStarted { stream: name, .. } => {
                        let Some((id, claim)) = claimed.take() else {
                            continue;
                        };
                        let segment_ms = state
                            .borrow()
                            .catalog
                            .stream(id)
                            .map_or(2000, |s| s.segment_duration_ms);
                        let input =
                            LiveInput::new(id, claim.generation(), segment_ms, claim.timeline());
                        log::info!(
                            "rtmp publish started stream={name} ip={peer} generation={}",
                            claim.generation()
                        );
                        *publisher = Some(Publisher {
                            name,
                            claim,
                            input,
                            frames: 0,
                        });
                    }
                    Output::Published(media) => {
                        let Some(p) = publisher.as_mut() else {
                            continue;
                        };
                        match media {
                            MediaFrame::Config(info) => p.input.configure(info),
                            MediaFrame::Frame(frame) => {
                                p.frames += 1;
                                p.input.push(frame, crate::utc::now_ms(), events);
                            }
                        }
                        for event in events.drain(..) {
                            fanout.publish(event).await;
                        }
                    }
                    Output::Unpublished => {
                        if let Some(p) = publisher.take() {
                            end_publish(p, fanout, events).await;
                        }
                    }
                    Output::Close(reason) => {
                        let _ = flush(&mut stream, &mut out).await;
                        log::debug!("rtmp {peer}: closing: {reason:?}");
                        return;
                    }
                    Output::Timeout(at) => deadline = Some(at),
                }
            }
            if !answered {
                break;
            }
        }
        if !flush(&mut stream, &mut out).await {
            return;
        }
        if start > 0 {
            inbuf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == inbuf.len() {
            if inbuf.len() >= MAX_INPUT_BUFFER {
                log::info!("rtmp {peer}: closing: a chunk larger than {MAX_INPUT_BUFFER} bytes");
                return;
            }
            inbuf.resize((inbuf.len() * 2).min(MAX_INPUT_BUFFER), 0);
        }

        let sending = player
            .as_ref()
            .filter(|p| !p.paused)
            .map(|p| (p.stream, p.cursor.position()));
        let wake = {
            let read = async { Wake::Read(stream.read(&mut inbuf[end..]).await) };
            let frame = async {
                match sending {
                    Some((id, cursor)) => {
                        RingReady {
                            state: &state,
                            stream: id,
                            cursor,
                        }
                        .await;
                        Wake::Frame
                    }
                    None => futures_lite::future::pending().await,
                }
            };
            let timer = async {
                sleep_until(deadline).await;
                Wake::Deadline
            };
            let recheck_at = authorized
                .as_ref()
                .filter(|_| player.is_some())
                .map(ConnectionPlay::next_check);
            let recheck = async {
                sleep_until(recheck_at).await;
                Wake::Recheck
            };
            futures_lite::future::or(
                read,
                futures_lite::future::or(frame, futures_lite::future::or(timer, recheck)),
            )
            .await
        };
        match wake {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => {
                // A publish ends in `serve`.
                conn.peer_closed();
                return;
            }
            Wake::Read(Ok(n)) => end += n,
            Wake::Deadline => {
                deadline = None;
                conn.handle_timeout(Instant::now());
            }
            Wake::Frame => {
                let Some(p) = &mut player else { continue };
                match send_ready_frames(p, &state, &mut conn, &mut stream, &mut out).await {
                    Ok(Sent { bytes, ended }) => {
                        if let Some(a) = &mut authorized {
                            a.sent(bytes);
                        }
                        if ended {
                            conn.unpublish_notify();
                            while let Some(o) = conn.poll_output() {
                                if let Output::Transmit(b) = o {
                                    out.extend_from_slice(&b);
                                }
                            }
                            let _ = flush(&mut stream, &mut out).await;
                            log::info!("rtmp {peer}: play ended: the publisher left");
                            return;
                        }
                    }
                    Err(why) => {
                        log::info!("rtmp {peer}: disconnecting: {why}");
                        return;
                    }
                }
            }
            Wake::Recheck => {
                if let Some(a) = &mut authorized
                    && let Err(reason) = a.recheck()
                {
                    // Revoked, over a session limit, or refused by the portal on re-check.
                    log::info!("rtmp {peer}: play ended: {reason}");
                    return;
                }
            }
        }
    }
}

enum Wake {
    Read(std::io::Result<usize>),
    Frame,
    Deadline,
    Recheck,
}

/// Asks the shard's authorizer (waiting for a portal when one is asked); returns the
/// machine's answer and, when allowed, the play with its session open and the
/// `media_version` of the media the answer carries.
async fn authorize(
    state: &Rc<RefCell<ShardState>>,
    name: &str,
    token: Option<&[u8]>,
    peer: IpAddr,
) -> (AuthAnswer, Option<ConnectionPlay>, Option<u64>) {
    let spec = state
        .borrow()
        .catalog
        .stream_by_name(name)
        .map(|s| (s.id, s.publish.is_some()));
    let Some((id, published)) = spec else {
        return (AuthAnswer::NotFound, None, None);
    };
    let mut play = ConnectionPlay::new(state, id, Proto::Rtmp, token, peer, None);
    match play.authorize().await {
        Ok(()) => {}
        Err(reason) => {
            let reason = reason.as_str();
            return (AuthAnswer::Denied { reason }, None, None);
        }
    };
    let (media, version) = {
        let shard = state.borrow();
        let view = shard.streams.get(id as usize);
        (
            view.and_then(|v| v.live_media().cloned()),
            view.map(|v| v.media_version),
        )
    };
    // A published stream without a publisher: the viewer waits for one.
    let (media, version) = match media {
        Some(media) => (media, version),
        None if published => (MediaInfo::default(), None),
        None => return (AuthAnswer::NotFound, None, None),
    };
    let session = play.open_session();
    let tag = state.borrow().auth.token_tag(token);
    log::info!(
        "rtmp play allowed stream={name} ip={peer} token={tag} session={}",
        session.map_or_else(|| "-".to_owned(), |s| s.to_string())
    );
    (AuthAnswer::Allowed { media }, Some(play), version)
}

/// Decides a publish: the stream must be a `publish://` one, the authorizer must allow
/// (`on_publish`), and no other publisher may hold it. Returns the machine's answer and,
/// when allowed, the claim.
async fn authorize_publisher(
    state: &Rc<RefCell<ShardState>>,
    name: &str,
    token: Option<&[u8]>,
    peer: IpAddr,
) -> (AuthAnswer, Option<(StreamId, PublishClaim)>) {
    let spec = state
        .borrow()
        .catalog
        .stream_by_name(name)
        .map(|s| (s.id, s.publish.is_some()));
    let tag = state.borrow().auth.token_tag(token);
    let id = match spec {
        None => {
            log::info!("rtmp publish refused stream={name} ip={peer}: no such stream");
            return (AuthAnswer::NotFound, None);
        }
        Some((_, false)) => {
            log::info!("rtmp publish refused stream={name} ip={peer}: input is not publish://");
            let reason = "not_a_publish_stream";
            return (AuthAnswer::Denied { reason }, None);
        }
        Some((id, true)) => id,
    };
    if let Err(reason) = authorize_publish(state, id, token, peer).await {
        log::info!("rtmp publish refused stream={name} ip={peer} token={tag}: {reason}");
        let reason = reason.as_str();
        return (AuthAnswer::Denied { reason }, None);
    }
    let catalog = state.borrow().catalog.clone();
    match PublishClaim::take(&catalog, id) {
        Some(claim) => {
            log::info!("rtmp publish allowed stream={name} ip={peer} token={tag}");
            let media = MediaInfo::default();
            (AuthAnswer::Allowed { media }, Some((id, claim)))
        }
        None => {
            log::info!(
                "rtmp publish refused stream={name} ip={peer} token={tag}: already published"
            );
            (AuthAnswer::InUse, None)
        }
    }
}

/// Ends a publish: flushes the partial segment, tells every shard the input ended, and
/// releases the stream's slot with the timeline the next publisher continues from.
async fn end_publish(mut p: Publisher, fanout: &Fanout, events: &mut Vec<StreamEvent>) {
    let timeline = p.input.finish(events);
    for event in events.drain(..) {
        fanout.publish(event).await;
    }
    p.claim.record(timeline);
    log::info!(
        "rtmp publish ended stream={} frames={} next_dts={} next_sequence={}",
        p.name,
        p.frames,
        timeline.next_dts,
        timeline.next_sequence
    );
}

/// What one batch sent.
struct Sent {
    bytes: u64,
    /// The stream's input ended and the viewer has every frame it sent.
    ended: bool,
}

/// Sends every tag the ring has for this viewer (up to a batch), preceded by the decoder
/// configuration whenever the stream's media changed since the viewer last got it.
async fn send_ready_frames(
    p: &mut Player,
    state: &Rc<RefCell<ShardState>>,
    conn: &mut RtmpConnection,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Result<Sent, &'static str> {
    let mut sent = 0u64;
    let mut config: Vec<FlvTag> = Vec::new();
    for _ in 0..FRAMES_PER_BATCH {
        let step = {
            let shard = state.borrow();
            let Some(view) = shard.streams.get(p.stream as usize) else {
                return Err("stream gone");
            };
            match p.cursor.step(&view.ring) {
                Step::Frame(f) => {
                    if p.sent_version != Some(view.media_version)
                        && let Some(media) = &view.media
                    {
                        p.sent_version = Some(view.media_version);
                        let ms = f.flv.timestamp_ms;
                        config.push(metadata_tag(media, ms));
                        config.extend(media.video.as_ref().map(|v| video_config_tag(v, ms)));
                        config.extend(media.audio.as_ref().map(|a| audio_config_tag(a, ms)));
                        p.started = false;
                    }
                    p.started |= f.frame.track == TrackKind::Video && f.frame.keyframe;
                    Some(f.flv.clone())
                }
                Step::Wait => break,
                Step::Ended => None,
                Step::TooSlow => return Err("viewer stays behind the live edge"),
            }
        };
        let Some(tag) = step else {
            return if flush(stream, out).await {
                Ok(Sent {
                    bytes: sent,
                    ended: true,
                })
            } else {
                Err("write failed")
            };
        };
        for tag in config.drain(..).chain(p.started.then_some(tag)) {
            // Chunk by chunk into the connection's buffer: no allocation per message and
            // viewer, and a flush whenever the buffer passes its mark, even mid-keyframe.
            if let Some(header) = conn.media_header(&tag) {
                let mut at = 0;
                loop {
                    at = conn.encoder().write_chunk(&header, &tag.body, at, out);
                    if out.len() >= FLUSH_AT && !flush(stream, out).await {
                        return Err("write failed");
                    }
                    if at >= tag.body.len() {
                        break;
                    }
                }
            }
            sent += tag.body.len() as u64;
        }
    }
    if flush(stream, out).await {
        Ok(Sent {
            bytes: sent,
            ended: false,
        })
    } else {
        Err("write failed")
    }
}

/// Chunk headers and payload slices are copied into the connection's output buffer and go
/// out in one write per batch (glommio 0.9 has no vectored send).
fn append_parts(out: &mut Vec<u8>, parts: &[Bytes]) {
    for part in parts {
        out.extend_from_slice(part);
    }
}
