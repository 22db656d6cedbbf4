//! RTSP on the connection driver: the glue between the sans-IO `RtspConnection` (requests
//! and responses) and `RtspViewer` (RTP/RTCP), plus the shard's UDP pair that RTP over UDP
//! leaves from. DESCRIBE asks the shard's one `Authorizer` (the same lifecycle every
//! protocol uses); PLAY opens the session and starts the viewer at the newest keyframe.

use crate::auth::play::{Access, PlayLifecycle};
use crate::auth::verdict::Proto;
use crate::config::InputUrl;
use crate::media::frame::MediaInfo;
use crate::rtsp::session::{
    AuthAnswer, ConnectionConfig, Output, PlayStart, PortPair, RtspConnection,
};
use crate::rtsp::viewer::RtspViewer;
use crate::runtime::admission::Arrival;
use crate::runtime::driver::{
    Conn, Flow, Glue, Io, Playback, Profile, drive_stream, prepare_stream,
};
use crate::runtime::play_auth::authorize;
use crate::runtime::ring_wait::SegmentReady;
use crate::runtime::templates;
use crate::runtime::tls::Wire;
use crate::shard::ShardState;
use crate::stream::StreamId;
use crate::stream::window::Awaited;
use glommio::net::UdpSocket;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Input buffer at first: requests and a viewer's interleaved RTCP fit; it grows (doubling)
/// for a larger request, up to `MAX_INPUT_BUFFER`.
const INPUT_BUFFER: usize = 4 * 1024;
/// Largest RTSP request buffered (the machine answers 400/413/414 before this fills).
const MAX_INPUT_BUFFER: usize = 80 * 1024;

/// The shard's UDP sockets for RTP and RTCP, shared by all its RTSP viewers.
pub struct UdpPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub ports: PortPair,
}

impl UdpPair {
    pub fn bind(ip: IpAddr) -> std::io::Result<UdpPair> {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let rtcp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let ports = PortPair {
            rtp: rtp.local_addr()?.port(),
            rtcp: rtcp.local_addr()?.port(),
        };
        Ok(UdpPair { rtp, rtcp, ports })
    }
}

/// Serves one RTSP connection until TEARDOWN, a refusal, a timeout, or the peer leaves.
pub async fn serve<S: Wire>(
    mut socket: S,
    state: Rc<RefCell<ShardState>>,
    udp: Option<Rc<UdpPair>>,
    seed: u64,
    arrival: Arrival,
) {
    let Some(peer) = prepare_stream(&socket, &state) else {
        return;
    };
    let mut cfg = ConnectionConfig::new(seed);
    cfg.token_param = state.borrow().catalog().token_param.to_string();
    cfg.server = crate::http::response::SERVER;
    cfg.udp_server_ports = udp.as_ref().map(|u| [u.ports, u.ports]);
    cfg.first_request_timeout = state.borrow().limits().first_request_timeout;
    let machine = RtspConnection::new(cfg, Instant::now());
    drive_stream(
        &mut RtspGlue,
        machine,
        &mut socket,
        &state,
        peer,
        udp,
        arrival,
    )
    .await;
}

/// RTSP keeps nothing beside its machine and its viewer.
struct RtspGlue;

/// DESCRIBE's decision: the machine's answer; an allowed play is kept for PLAY. A name
/// under a template's prefix is authorized against the template and made first; a pulled
/// stream without media yet (an on-demand pull starting) is waited for, bounded, since
/// DESCRIBE must answer with the stream's tracks.
async fn authorize_describe(
    playback: &mut Playback<RtspViewer>,
    io: &Io<'_>,
    name: &str,
    token: Option<&[u8]>,
    user_agent: Option<&str>,
) -> AuthAnswer {
    let state = io.state;
    let id = match templates::play_stream(io, Proto::Rtsp, name, token).await {
        Ok((id, _)) => id,
        Err(None) => return AuthAnswer::NotFound,
        Err(Some(reason)) => {
            let reason = reason.as_str();
            return AuthAnswer::Denied { reason };
        }
    };
    let token_param = state.borrow().catalog().token_param.clone();
    let ua = user_agent.map(str::as_bytes);
    let now = Instant::now();
    let mut play = PlayLifecycle::new(
        Access::Play,
        id,
        Proto::Rtsp,
        token,
        io.peer,
        ua,
        &token_param,
        now,
    );
    if let Err(reason) = authorize(state, &mut play).await {
        let reason = reason.as_str();
        return AuthAnswer::Denied { reason };
    }
    let Some(media) = media_of(io, id).await else {
        log::info!("rtsp {}: stream {name} has no media yet", io.peer);
        return AuthAnswer::NotFound;
    };
    playback.play = Some(play);
    AuthAnswer::Allowed { media }
}

/// The stream's current media; for a pulled stream that has none yet, once its first
/// segment is cut (at most its `first_segment_timeout`). The parked wait is what makes an
/// on-demand pull start (`on_demand` counts a stream with waiters as watched).
async fn media_of(io: &Io<'_>, id: StreamId) -> Option<MediaInfo> {
    let media = |io: &Io<'_>| io.state.borrow().view(id)?.live_media().cloned();
    if let Some(found) = media(io) {
        return Some(found);
    }
    let pulled_wait = {
        let shard = io.state.borrow();
        let stream = shard.catalog().stream(id);
        stream
            .filter(|s| matches!(s.input, InputUrl::Pull(_)))
            .map(|s| Duration::from_millis(s.pull.first_segment_timeout_ms.into()))
    };
    let limit = pulled_wait?;
    let first = SegmentReady {
        state: io.state,
        stream: id,
        until: Awaited::FirstSegment,
    };
    futures_lite::future::or(first, glommio::timer::sleep(limit)).await;
    media(io)
}

impl RtspGlue {
    /// PLAY: resumes a paused viewer, or opens the session and starts one.
    fn play(
        &mut self,
        playback: &mut Playback<RtspViewer>,
        io: &Io<'_>,
        start: &PlayStart,
    ) -> Flow {
        if let (Some(viewing), true) = (&mut playback.viewing, start.resumed) {
            viewing.paused = false;
            return Flow::Idle;
        }
        let Ok(session) = playback.start(io.state, RtspViewer::new(start)) else {
            return Flow::Close;
        };
        log::info!(
            "rtsp play started session={session} rtsp_session={} stream={} ip={}",
            start.session_id,
            start.stream,
            io.peer,
        );
        Flow::Idle
    }
}

impl Glue for RtspGlue {
    type Machine = RtspConnection;
    type Viewer = RtspViewer;
    const PROFILE: Profile = Profile::new("rtsp", INPUT_BUFFER, MAX_INPUT_BUFFER);

    async fn finish(&mut self, conn: &mut Conn<Self>, io: &mut Io<'_>) {
        let viewing = &conn.playback.viewing;
        if let (Some(id), Some(v)) = (conn.machine.session_id(), viewing) {
            log::info!(
                "session closed id={id} proto=rtsp ip={} packets={} seconds={}",
                io.peer,
                v.viewer.packets(),
                v.started.elapsed().as_secs()
            );
        }
    }

    async fn act(&mut self, output: Output, conn: &mut Conn<Self>, io: &mut Io<'_>) -> Flow {
        match output {
            Output::Authorize {
                stream,
                token,
                user_agent,
            } => {
                let (token, ua) = (token.as_deref(), user_agent.as_deref());
                let answer = authorize_describe(&mut conn.playback, io, &stream, token, ua).await;
                conn.machine.authorized(answer, Instant::now());
                return Flow::Again;
            }
            Output::Play(start) => {
                // Responses go out before any media.
                if !io.flush().await || self.play(&mut conn.playback, io, &start) == Flow::Close {
                    return Flow::Close;
                }
            }
            Output::Pause => {
                if let Some(v) = &mut conn.playback.viewing {
                    v.paused = true;
                }
            }
            Output::Close(reason) => {
                log::debug!("rtsp {}: closing: {reason:?}", io.peer);
                return Flow::Close;
            }
            // The driver writes these and keeps the timer.
            Output::Transmit(_) | Output::Timeout(_) => {}
        }
        Flow::Idle
    }
}

crate::runtime::driver::machine_of!(RtspConnection, Output, crate::rtsp::session::RtspError);

/// Reads and discards what clients send to the shard's UDP ports (receiver reports), so
/// socket buffers never fill.
pub async fn drain_udp(socket: Rc<UdpPair>, rtcp: bool) {
    let mut buf = vec![0u8; 2048];
    loop {
        let sock = if rtcp { &socket.rtcp } else { &socket.rtp };
        if sock.recv_from(&mut buf).await.is_err() {
            glommio::timer::sleep(Duration::from_millis(100)).await;
        }
    }
}
