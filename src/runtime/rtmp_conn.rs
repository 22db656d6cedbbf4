//! The I/O shell of one RTMP connection: feeds bytes to the sans-IO `RtmpConnection`,
//! answers its Authorize with the shard's `Authorizer` (proto `rtmp`, the same entry point
//! as every other protocol), and once a play starts, sends the decoder configuration and
//! then the stream's FLV tags from the shard's `FrameRing`, from the newest keyframe on.
//! Tags are built once per frame by the owner shard and shared as `Bytes`.
//!
//! Publishing is refused until `publish://` inputs exist. A viewer that falls out of the
//! ring skips to the newest keyframe and is disconnected after a few skips, like RTSP.

use crate::auth::verdict::{Proto, StreamId, canonical_ip};
use crate::media::frame::TrackKind;
use crate::rtmp::flv::{audio_config_tag, video_config_tag};
use crate::rtmp::session::{
    Action, AuthAnswer, ConnectionConfig, DenyLevel, Output, RtmpConnection,
};
use crate::runtime::flush;
use crate::runtime::play_auth::ConnectionPlay;
use crate::runtime::ring_wait::RingReady;
use crate::shard::ShardState;
use crate::stream::ring::{Step, ViewerCursor};
use bytes::Bytes;
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// Input buffered at most (the chunk decoder bounds messages well below this per read).
const INPUT_BUFFER: usize = 64 * 1024;
/// Frames sent per wake-up before other tasks get the shard back.
const FRAMES_PER_BATCH: usize = 64;
/// Output flushed once it grows past this within a batch.
const FLUSH_AT: usize = 256 * 1024;

struct Player {
    stream: StreamId,
    cursor: ViewerCursor,
    paused: bool,
    /// Audio before the first keyframe is dropped (players expect video first).
    started: bool,
}

/// Serves one RTMP connection until the peer leaves, a refusal, or a protocol error.
pub async fn serve(mut stream: TcpStream, state: Rc<RefCell<ShardState>>, seed: u64) {
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
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut deadline: Option<Instant> = None;
    let mut player: Option<Player> = None;
    let mut authorized: Option<ConnectionPlay> = None;

    loop {
        loop {
            if start < end {
                match conn.handle_input(&inbuf[start..end], Instant::now()) {
                    Ok(n) => start += n,
                    Err(e) => {
                        log::debug!("rtmp {peer}: {e}");
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
                            Action::Publish => AuthAnswer::Denied {
                                reason: "publish_not_supported",
                            },
                            Action::Play => {
                                let (answer, play) =
                                    authorize(&state, &name, token.as_deref(), peer).await;
                                authorized = play;
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
                        });
                    }
                    Output::PausePlay { paused } => {
                        if let Some(p) = &mut player {
                            p.paused = paused;
                        }
                    }
                    Output::StopPlay => player = None,
                    Output::PublishStarted { .. } | Output::Published(_) | Output::Unpublished => {}
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
            return;
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
                match deadline {
                    Some(at) => {
                        glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await
                    }
                    None => futures_lite::future::pending::<()>().await,
                }
                Wake::Deadline
            };
            let recheck_at = authorized
                .as_ref()
                .filter(|_| player.is_some())
                .map(ConnectionPlay::next_check);
            let recheck = async {
                match recheck_at {
                    Some(at) => {
                        glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await
                    }
                    None => futures_lite::future::pending::<()>().await,
                }
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
                    Ok(sent) => {
                        if let Some(a) = &mut authorized {
                            a.sent(sent);
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
/// machine's answer and, when allowed, the play with its session open.
async fn authorize(
    state: &Rc<RefCell<ShardState>>,
    name: &str,
    token: Option<&[u8]>,
    peer: IpAddr,
) -> (AuthAnswer, Option<ConnectionPlay>) {
    let spec = state.borrow().catalog.stream_by_name(name).map(|s| s.id);
    let Some(id) = spec else {
        return (AuthAnswer::NotFound, None);
    };
    let mut play = ConnectionPlay::new(state, id, Proto::Rtmp, token, peer, None);
    match play.authorize().await {
        Ok(()) => {}
        Err(reason) => {
            let reason = reason.as_str();
            return (AuthAnswer::Denied { reason }, None);
        }
    };
    let media = state
        .borrow()
        .streams
        .get(id as usize)
        .and_then(|v| v.media.clone());
    match media {
        Some(media) => {
            let session = play.open_session();
            let tag = state.borrow().auth.token_tag(token);
            log::info!(
                "rtmp play allowed stream={name} ip={peer} token={tag} session={}",
                session.map_or_else(|| "-".to_owned(), |s| s.to_string())
            );
            (AuthAnswer::Allowed { media }, Some(play))
        }
        None => (AuthAnswer::NotFound, None),
    }
}

/// Sends every tag the ring has for this viewer (up to a batch).
async fn send_ready_frames(
    p: &mut Player,
    state: &Rc<RefCell<ShardState>>,
    conn: &mut RtmpConnection,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Result<u64, &'static str> {
    let mut sent = 0u64;
    for _ in 0..FRAMES_PER_BATCH {
        let tag = {
            let shard = state.borrow();
            let Some(view) = shard.streams.get(p.stream as usize) else {
                return Err("stream gone");
            };
            match p.cursor.step(&view.ring) {
                Step::Frame(f) => {
                    p.started |= f.frame.track == TrackKind::Video && f.frame.keyframe;
                    if !p.started {
                        continue;
                    }
                    f.flv.clone()
                }
                Step::Wait => break,
                Step::TooSlow => return Err("viewer stays behind the live edge"),
            }
        };
        if let Some(chunks) = conn.media_message(&tag) {
            append_parts(out, chunks.parts());
        }
        sent += tag.body.len() as u64;
        if out.len() > FLUSH_AT && !flush(stream, out).await {
            return Err("write failed");
        }
    }
    if flush(stream, out).await {
        Ok(sent)
    } else {
        Err("write failed")
    }
}

/// Chunk headers and payload slices go out in one write per batch (glommio 0.9 has no
/// vectored send).
fn append_parts(out: &mut Vec<u8>, parts: &[Bytes]) {
    for part in parts {
        out.extend_from_slice(part);
    }
}
