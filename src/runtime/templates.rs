//! Template streams for connection protocols (RTMP play, RTSP DESCRIBE, SRT play): a name no stream has
//! but a template covers is authorized against the template's gate with the viewer's
//! token, then made on every shard by the main thread (`control::request_stream`), and
//! played like any stream. HTTP does the same in its service phases (`Next::MakeStream`).
//! See ARCHITECTURE.md, "Templates".

use crate::auth::play::Access;
use crate::auth::verdict::{DenyReason, Proto};
use crate::runtime::driver::Io;
use crate::runtime::play_auth::authorize;
use crate::runtime::publish::{lifecycle, stream_by_name};
use crate::stream::StreamId;

/// The stream `name` plays, and whether it takes publishers: a configured or made one, or
/// one its template makes now, once `token` passes the template's `on_play`. `Err(None)`:
/// no stream and no template has the name (or it could not be made); `Err(Some(reason))`:
/// the template's `on_play` refused, and nothing was made.
pub async fn play_stream(
    io: &Io<'_>,
    proto: Proto,
    name: &str,
    token: Option<&[u8]>,
) -> Result<(StreamId, bool), Option<DenyReason>> {
    if let Some(found) = stream_by_name(io, name) {
        return Ok(found);
    }
    let gate = io
        .state
        .borrow()
        .catalog()
        .template_gate(name)
        .map(|g| g.id);
    let gate = gate.ok_or(None)?;
    let mut play = lifecycle(io, proto, Access::Play, gate, token);
    authorize(io.state, &mut play).await.map_err(Some)?;
    if let Err(why) = crate::runtime::control::request_stream(name).await {
        log::warn!("stream {name}: not made from its template: {why}");
    }
    stream_by_name(io, name).ok_or(None)
}
