//! The I/O shell of an HTTP MPEG-TS viewer (`/NAME/mpegts`): after the response head, writes
//! the stream's TS chunks from the shard's `FrameRing`, starting at the newest keyframe (whose
//! chunk carries PAT/PMT), until the viewer leaves. Chunks are the shared `Bytes` the owner
//! shard muxed once; nothing is copied per viewer. A viewer that falls out of the ring skips
//! to the newest keyframe; one that keeps falling behind is disconnected, like an RTSP one.

use crate::auth::verdict::{Proto, StreamId};
use crate::runtime::play_auth::ConnectionPlay;
use crate::runtime::ring_wait::RingReady;
use crate::shard::ShardState;
use crate::stream::ring::{Step, ViewerCursor};
use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// Chunks written per wake-up before other tasks get the shard back.
const CHUNKS_PER_BATCH: usize = 64;

/// Streams until the viewer goes away or falls behind for good.
pub async fn stream_live_ts(
    stream: &mut TcpStream,
    state: &Rc<RefCell<ShardState>>,
    id: StreamId,
    token: Option<Vec<u8>>,
    peer: IpAddr,
) {
    // The service authorized the request; this is the connection's session, re-checked
    // while it plays so a revocation ends it.
    let mut play = ConnectionPlay::new(state, id, Proto::TsHttp, token.as_deref(), peer, None);
    if play.authorize().await.is_err() {
        return;
    }
    play.open_session();
    let mut cursor = ViewerCursor::new();
    let mut batch: Vec<Bytes> = Vec::with_capacity(CHUNKS_PER_BATCH);
    loop {
        let ready = RingReady {
            state,
            stream: id,
            cursor: cursor.position(),
        };
        let until = play.next_check().saturating_duration_since(Instant::now());
        let frame = futures_lite::future::or(
            async {
                ready.await;
                true
            },
            async {
                glommio::timer::sleep(until).await;
                false
            },
        )
        .await;
        if !frame {
            if let Err(reason) = play.recheck() {
                log::info!("mpegts {peer}: play ended: {reason}");
                return;
            }
            continue;
        }
        batch.clear();
        let mut ended = false;
        {
            let shard = state.borrow();
            let Some(view) = shard.streams.get(id as usize) else {
                return;
            };
            while batch.len() < CHUNKS_PER_BATCH {
                match cursor.step(&view.ring) {
                    Step::Frame(f) => batch.push(f.ts.clone()),
                    Step::Wait => break,
                    Step::Ended => {
                        ended = true;
                        break;
                    }
                    Step::TooSlow => {
                        log::info!(
                            "mpegts {peer}: disconnecting: viewer stays behind the live edge"
                        );
                        return;
                    }
                }
            }
        }
        let mut sent = 0u64;
        for chunk in &batch {
            if stream.write_all(chunk).await.is_err() {
                return;
            }
            sent += chunk.len() as u64;
        }
        play.sent(sent);
        state.borrow_mut().http.bytes_sent += sent;
        if ended {
            log::info!("mpegts {peer}: play ended: the publisher left");
            return;
        }
        if Instant::now() >= play.next_check()
            && let Err(reason) = play.recheck()
        {
            log::info!("mpegts {peer}: play ended: {reason}");
            return;
        }
    }
}
