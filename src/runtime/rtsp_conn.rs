//! RTSP on the connection driver: the glue between the sans-IO `RtspConnection` (requests
//! and responses) and `RtspViewer` (RTP/RTCP), plus the shard's UDP pair that RTP over UDP
//! leaves from. DESCRIBE asks the shard's one `Authorizer` (the same lifecycle every
//! protocol uses); PLAY opens the session and starts the viewer at the newest keyframe.

use crate::auth::play::{Access, PlayLifecycle};
use crate::auth::verdict::{Proto, canonical_ip};
use crate::rtsp::session::{
    AuthAnswer, ConnectionConfig, Output, PlayStart, PortPair, RtspConnection,
};
use crate::rtsp::viewer::RtspViewer;
use crate::runtime::driver::{Flow, Glue, Io, Playback, Viewing, drive};
use crate::runtime::play_auth::{authorize, open_session};
use crate::shard::ShardState;
use glommio::net::{TcpStream, UdpSocket};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Largest RTSP request buffered (the machine answers 400/413/414 before this fills).
const INPUT_BUFFER: usize = 80 * 1024;
/// A connection that says nothing is closed after this (the machine's own timers take over
/// once it speaks).
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

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
pub async fn serve(
    mut socket: TcpStream,
    state: Rc<RefCell<ShardState>>,
    udp: Option<Rc<UdpPair>>,
    seed: u64,
) {
    let Ok(peer) = socket.peer_addr().map(|a| canonical_ip(a.ip())) else {
        return;
    };
    let _ = socket.set_nodelay(true);
    let _ = socket.set_write_timeout(Some(state.borrow().limits.write_timeout));
    let mut cfg = ConnectionConfig::new(seed);
    cfg.token_param = state.borrow().catalog.token_param.to_string();
    cfg.server = crate::http::response::SERVER;
    cfg.udp_server_ports = udp.as_ref().map(|u| [u.ports, u.ports]);
    let mut glue = RtspGlue {
        conn: RtspConnection::new(cfg, Instant::now()),
        deadline: Instant::now() + FIRST_REQUEST_TIMEOUT,
        playback: Playback::default(),
        started: Instant::now(),
    };
    drive(&mut glue, &mut socket, &state, peer, udp).await;
}

struct RtspGlue {
    conn: RtspConnection,
    deadline: Instant,
    playback: Playback<RtspViewer>,
    started: Instant,
}

impl RtspGlue {
    /// DESCRIBE's decision: the machine's answer, keeping the allowed play for PLAY.
    async fn authorize(
        &mut self,
        io: &Io<'_>,
        name: &str,
        token: Option<&[u8]>,
        user_agent: Option<&str>,
    ) -> AuthAnswer {
        let state = io.state;
        let (id, token_param) = {
            let shard = state.borrow();
            let id = shard.catalog.stream_by_name(name).map(|s| s.id);
            (id, shard.catalog.token_param.clone())
        };
        let Some(id) = id else {
            return AuthAnswer::NotFound;
        };
        let ua = user_agent.map(str::as_bytes);
        let mut play = PlayLifecycle::new(
            Access::Play,
            id,
            Proto::Rtsp,
            token,
            io.peer,
            ua,
            &token_param,
            Instant::now(),
        );
        if let Err(reason) = authorize(state, &mut play).await {
            let reason = reason.as_str();
            return AuthAnswer::Denied { reason };
        }
        let media = state
            .borrow()
            .streams
            .get(id as usize)
            .and_then(|v| v.live_media().cloned());
        let Some(media) = media else {
            log::info!("rtsp {}: stream {name} has no media yet", io.peer);
            return AuthAnswer::NotFound;
        };
        self.playback.play = Some(play);
        AuthAnswer::Allowed { media }
    }

    /// PLAY: resumes a paused viewer, or opens the session and starts one.
    fn play(&mut self, io: &Io<'_>, start: &PlayStart) -> Flow {
        let playback = &mut self.playback;
        if let (Some(viewing), true) = (&mut playback.viewing, start.resumed) {
            viewing.paused = false;
            return Flow::Idle;
        }
        let Some(play) = &mut playback.play else {
            return Flow::Close;
        };
        let session = open_session(io.state, play);
        log::info!(
            "rtsp play started session={} rtsp_session={} stream={} ip={}",
            session.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            start.session_id,
            start.stream,
            io.peer,
        );
        let viewer = RtspViewer::new(start);
        playback.viewing = Some(Viewing::new(play.stream(), viewer));
        self.started = Instant::now();
        Flow::Idle
    }
}

impl Glue for RtspGlue {
    type Viewer = RtspViewer;
    const NAME: &'static str = "rtsp";
    const INPUT: (usize, usize) = (INPUT_BUFFER, INPUT_BUFFER);

    fn feed(&mut self, input: &[u8], now: Instant) -> usize {
        if input.is_empty() || self.conn.awaiting_authorization() {
            return 0;
        }
        match self.conn.handle_input(input, now) {
            Ok(n) => n,
            Err(e) => {
                // The machine queued the error response and the close.
                log::debug!("rtsp: {e}");
                input.len()
            }
        }
    }

    async fn act(&mut self, io: &mut Io<'_>) -> Flow {
        let mut flow = Flow::Idle;
        while let Some(output) = self.conn.poll_output() {
            match output {
                Output::Transmit(bytes) => io.out.bytes_mut().extend_from_slice(&bytes),
                Output::Authorize {
                    stream,
                    token,
                    user_agent,
                } => {
                    let (token, ua) = (token.as_deref(), user_agent.as_deref());
                    let answer = self.authorize(io, &stream, token, ua).await;
                    self.conn.authorized(answer, Instant::now());
                    flow = Flow::Again;
                }
                Output::Play(start) => {
                    // Responses go out before any media.
                    if !io.flush().await || self.play(io, &start) == Flow::Close {
                        return Flow::Close;
                    }
                }
                Output::Pause => {
                    if let Some(v) = &mut self.playback.viewing {
                        v.paused = true;
                    }
                }
                Output::Close(reason) => {
                    log::debug!("rtsp {}: closing: {reason:?}", io.peer);
                    return Flow::Close;
                }
                Output::Timeout(at) => self.deadline = at,
            }
        }
        flow
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.deadline)
    }

    fn on_deadline(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
    }

    fn peer_closed(&mut self) {}

    fn playback(&mut self) -> &mut Playback<RtspViewer> {
        &mut self.playback
    }

    async fn finish(&mut self, io: &mut Io<'_>) {
        if let (Some(id), Some(v)) = (self.conn.session_id(), &self.playback.viewing) {
            log::info!(
                "session closed id={id} proto=rtsp ip={} packets={} seconds={}",
                io.peer,
                v.viewer.packets(),
                self.started.elapsed().as_secs()
            );
        }
    }
}

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
