//! HTTP MPEG-TS viewers (`/NAME/mpegts`) on the connection driver: after the response head
//! (written by the HTTP service), the connection is a `TsViewer` of the stream's ring until
//! the viewer leaves. The service authorized the request; the connection re-authorizes
//! through the play lifecycle for its own session, re-checked while it plays so that a
//! revocation ends it.

use crate::auth::play::{Access, PlayLifecycle};
use crate::auth::verdict::{Proto, StreamId};
use crate::http::ts_viewer::TsViewer;
use crate::runtime::admission::Arrival;
use crate::runtime::driver::{
    Conn, Flow, Glue, Io, Link, Machine, Playback, Profile, Viewing, drive,
};
use crate::runtime::play_auth::{authorize, open_session};
use crate::runtime::tls::Wire;
use crate::shard::ShardState;
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// What a viewer may send after its request is discarded into this buffer.
const INPUT_BUFFER: usize = 4 * 1024;

/// Streams until the viewer goes away, falls behind for good, or is refused on re-check.
pub async fn stream_live_ts(
    socket: &mut dyn Wire,
    state: &Rc<RefCell<ShardState>>,
    id: StreamId,
    token: Option<Vec<u8>>,
    peer: IpAddr,
) {
    let token_param = state.borrow().catalog().token_param.clone();
    let now = Instant::now();
    let token = token.as_deref();
    let access = Access::Play;
    let mut play = PlayLifecycle::new(
        access,
        id,
        Proto::TsHttp,
        token,
        peer,
        None,
        &token_param,
        now,
    );
    if authorize(state, &mut play).await.is_err() {
        return;
    }
    open_session(state, &mut play);
    // The response never ends on its own: no read deadline from the HTTP connection.
    let _ = socket.tcp().set_read_timeout(None);
    let playback = Playback {
        play: Some(play),
        viewing: Some(Viewing::new(id, TsViewer::default())),
    };
    drive(
        &mut TsGlue,
        Conn::boxed(Ignore, playback),
        // Its HTTP connection asked already (a request for the stream).
        (Link::Stream(socket), Arrival::default()),
        state,
        peer,
        None,
    )
    .await;
}

/// An MPEG-TS response has nothing beside its viewer.
struct TsGlue;

/// The connection's machine once the response streams: whatever the client sends is
/// read and dropped, and nothing is asked of the driver.
struct Ignore;

enum Never {}

impl Machine for Ignore {
    type Output = Never;
    type Error = std::convert::Infallible;

    fn handle_input(&mut self, input: &[u8], _now: Instant) -> Result<usize, Self::Error> {
        Ok(input.len())
    }

    fn poll_output(&mut self) -> Option<Never> {
        None
    }

    fn awaiting_authorization(&self) -> bool {
        false
    }

    fn transmit(output: &Never) -> Option<&[u8]> {
        match *output {}
    }

    fn timeout(output: &Never) -> Option<Instant> {
        match *output {}
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn peer_closed(&mut self) {}
}

impl Glue for TsGlue {
    type Machine = Ignore;
    type Viewer = TsViewer;
    const PROFILE: Profile = Profile::new("mpegts", INPUT_BUFFER, INPUT_BUFFER).buffered();

    fn count_sent(shard: &mut ShardState, bytes: u64) {
        shard.count_http_bytes(bytes);
    }

    async fn act(&mut self, output: Never, _conn: &mut Conn<Self>, _io: &mut Io<'_>) -> Flow {
        match output {}
    }
}
