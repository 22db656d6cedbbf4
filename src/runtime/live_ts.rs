//! The I/O shell of an HTTP MPEG-TS viewer (`/NAME/mpegts`): after the response head, writes
//! the stream's TS chunks from the shard's `FrameRing`, starting at the newest keyframe (whose
//! chunk carries PAT/PMT), until the viewer leaves. Chunks are the shared `Bytes` the owner
//! shard muxed once; nothing is copied per viewer. A viewer that falls out of the ring skips
//! to the newest keyframe; one that keeps falling behind is disconnected, like an RTSP one.

use crate::auth::verdict::{PlayRequest, Proto, StreamId};
use crate::runtime::ring_wait::RingReady;
use crate::shard::ShardState;
use crate::stream::ring::{Step, ViewerCursor};
use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Chunks written per wake-up before other tasks get the shard back.
const CHUNKS_PER_BATCH: usize = 64;
/// How often the viewer's session is told it is still alive (and how many bytes went out).
const SESSION_TOUCH: Duration = Duration::from_secs(5);

/// Streams until the viewer goes away or falls behind for good.
pub async fn stream_live_ts(
    stream: &mut TcpStream,
    state: &Rc<RefCell<ShardState>>,
    id: StreamId,
    token: Option<Vec<u8>>,
    peer: IpAddr,
) {
    let mut cursor = ViewerCursor::new();
    let mut batch: Vec<Bytes> = Vec::with_capacity(CHUNKS_PER_BATCH);
    let mut unreported = 0u64;
    let mut last_touch = Instant::now();
    loop {
        RingReady {
            state,
            stream: id,
            cursor: cursor.position(),
        }
        .await;
        batch.clear();
        {
            let shard = state.borrow();
            let Some(view) = shard.streams.get(id as usize) else {
                return;
            };
            while batch.len() < CHUNKS_PER_BATCH {
                match cursor.step(&view.ring) {
                    Step::Frame(f) => batch.push(f.ts.clone()),
                    Step::Wait => break,
                    Step::TooSlow => {
                        log::info!(
                            "mpegts {peer}: disconnecting: viewer stays behind the live edge"
                        );
                        return;
                    }
                }
            }
        }
        for chunk in &batch {
            if stream.write_all(chunk).await.is_err() {
                return;
            }
            unreported += chunk.len() as u64;
        }
        if last_touch.elapsed() >= SESSION_TOUCH {
            last_touch = Instant::now();
            let mut shard = state.borrow_mut();
            let shard = &mut *shard;
            shard.http.bytes_sent += unreported;
            let catalog = shard.catalog.clone();
            let request = PlayRequest {
                stream: id,
                proto: Proto::TsHttp,
                token: token.as_deref(),
                ip: peer,
                user_agent: None,
            };
            shard
                .auth
                .track_session(&catalog, &request, last_touch, unreported);
            unreported = 0;
        }
    }
}
