//! WebRTC (WHEP) on the connection driver: the shard's UDP endpoint, the offer that
//! starts a session, and the glue between `WebRtcPeer` and `WebRtcViewer`.
//!
//! **One UDP port per shard.** `webrtc PORT;` makes shard `i` bind `PORT + i`. A WHEP
//! offer is answered by the shard that took the POST, and its answer's only (host)
//! candidate names that shard's own port, so every datagram of the browser's session
//! reaches the shard that holds its `WebRtcPeer`: nothing crosses shards, and no hash of
//! addresses has to agree with anything. The candidate's address is `webrtc_candidate`
//! when set (the address viewers reach behind NAT), else the listener's address, else the
//! address the POST came in on.
//!
//! **Routing.** Each session has its own ICE username fragment (`IceCreds`, made here):
//! a datagram from an unknown address is taken only when it is a STUN binding request
//! addressed to the fragment of a session that has no peer address yet; that address is
//! the session's from then on and its datagrams go into the session's bounded queue (full:
//! dropped, as a full socket buffer would). Anything else from an unknown address is
//! dropped unread.
//!
//! **The session.** The offer is authorized first (a `PlayLifecycle`, proto `webrtc`,
//! before any ICE or DTLS work); allowed, the peer connection answers it and its task
//! waits (`ICE_WAIT`) for the browser's first datagram, then runs on the driver
//! (`Link::Datagrams`). `Connected` (ICE and DTLS up) opens the session and starts a
//! `WebRtcViewer` at the ring's newest keyframe; a PLI/FIR makes it wait for the next
//! one. The driver re-checks the play every 250 ms (revocation, session limits, a
//! portal's deny end it) and skips or drops a viewer left behind. `DELETE` on the session
//! resource, ICE lost, or a refusal ends it: the queue closes, the driver's one exit
//! closes the session, and `finish` sends a DTLS close.
//!
//! **Audio.** From its offer to its end a session holds a `DemandHold` on its stream: the
//! input's shard, wherever it is, transcodes the stream's AAC to Opus while any shard holds
//! one (`stream::webrtc_audio`), so the transcoder is warm by the time DTLS is up.
//!
//! **Counters** (`WebRtcStats`, `/metrics`): peers connecting and connected; a session
//! that ends before ICE is up is an ICE failure, one that ends with ICE up and DTLS not an
//! DTLS failure (a DELETE first is neither); bytes sent and the receiver reports' RTT come
//! with the peer's `Stats` output once a second, and the rest of the bytes at the end.

use crate::auth::play::{Access, PlayLifecycle};
use crate::auth::verdict::{DenyReason, Proto, StreamId, canonical_ip};
use crate::config::{Config, ListenerProto};
use crate::media::frame::VideoConfig;
use crate::runtime::admission::Arrival;
use crate::runtime::driver::{
    Conn, Flow, Glue, Io, Link, Machine, PeerLink, Playback, Profile, drive,
};
use crate::runtime::play_auth::authorize;
use crate::shard::ShardState;
use crate::stream::webrtc_audio::DemandHold;
use crate::webrtc::peer::{DtlsCert, OfferError, Output, PeerError, Phase, WebRtcPeer};
use crate::webrtc::viewer::WebRtcViewer;
use crate::webrtc::whep::{resource_id, stun_local_ufrag};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::UdpSocket;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};
use str0m::IceCreds;

/// Datagrams queued for one session before the endpoint drops its next ones (a viewer
/// sends STUN checks, DTLS and RTCP only).
pub const PEER_QUEUE: usize = 64;
/// WebRTC sessions one shard holds at once; offers past it get 503.
pub const MAX_SESSIONS: usize = 4096;
/// How long an answered offer waits for the browser's first datagram.
pub const ICE_WAIT: Duration = Duration::from_secs(10);
/// The largest datagram read.
const DATAGRAM_BUFFER: usize = 2048;

/// A session as the endpoint routes to it.
struct Route {
    queue: LocalSender<Vec<u8>>,
    remote: Option<SocketAddr>,
    resource: String,
}

/// The shard's WebRTC port: its socket, its DTLS certificate, its sessions.
pub struct WebRtcEndpoint {
    socket: Rc<UdpSocket>,
    bound: SocketAddr,
    candidate: Option<IpAddr>,
    cert: Option<DtlsCert>,
    /// Sessions by their ICE username fragment.
    routes: RefCell<HashMap<String, Route>>,
    by_addr: RefCell<HashMap<SocketAddr, String>>,
    by_resource: RefCell<HashMap<String, String>>,
    /// Keys the unguessable names (fragments, passwords, resource ids).
    secret: [u8; 32],
    made: Cell<u64>,
}

/// The `webrtc` listener and `webrtc_candidate`, as every shard binds them.
#[derive(Clone, Debug)]
pub struct Listener {
    addr: SocketAddr,
    candidate: Option<IpAddr>,
}

/// The config's `webrtc` listener, if it has one.
pub fn listener(config: &Config) -> Option<Listener> {
    let l = config
        .listeners
        .iter()
        .find(|l| l.proto == ListenerProto::Webrtc)?;
    Some(Listener {
        addr: l.addr,
        candidate: config.webrtc_candidate,
    })
}

impl Listener {
    /// Binds shard `shard`'s endpoint (its port: `shard_address`).
    pub fn bind(&self, shard: usize) -> Result<WebRtcEndpoint, String> {
        let addr = shard_address(self.addr, shard)
            .ok_or_else(|| format!("no webrtc port for shard {shard} above {}", self.addr))?;
        WebRtcEndpoint::bind(addr, self.candidate)
            .map_err(|e| format!("cannot listen for webrtc on {addr}: {e}"))
    }
}

/// This shard's WebRTC address: the `webrtc` listener's, its port moved by the shard's
/// index.
pub fn shard_address(listener: SocketAddr, shard: usize) -> Option<SocketAddr> {
    let port = listener.port().checked_add(u16::try_from(shard).ok()?)?;
    Some(SocketAddr::new(listener.ip(), port))
}

impl WebRtcEndpoint {
    /// Binds this shard's port (`shard_address`).
    pub fn bind(addr: SocketAddr, candidate: Option<IpAddr>) -> std::io::Result<WebRtcEndpoint> {
        let socket = UdpSocket::bind(addr)?;
        let mut secret = [0u8; 32];
        for part in secret.chunks_mut(8) {
            part.copy_from_slice(&crate::auth::os_seed().to_le_bytes());
        }
        let provider = str0m::crypto::from_feature_flags();
        Ok(WebRtcEndpoint {
            socket: Rc::new(socket),
            bound: addr,
            candidate,
            cert: provider.dtls_provider.generate_certificate(),
            routes: RefCell::new(HashMap::new()),
            by_addr: RefCell::new(HashMap::new()),
            by_resource: RefCell::new(HashMap::new()),
            secret,
            made: Cell::new(0),
        })
    }

    /// 128 unguessable bits: HMAC-SHA256 of a counter under the endpoint's secret.
    fn unguessable(&self) -> u128 {
        let n = self.made.get() + 1;
        self.made.set(n);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(&n.to_le_bytes());
        let bytes = mac.finalize().into_bytes();
        u128::from_le_bytes(bytes[..16].try_into().expect("32 bytes"))
    }

    /// The host candidate a browser is told: where it sends its datagrams.
    fn candidate_for(&self, arrived_on: IpAddr) -> SocketAddr {
        let ip = match self.candidate {
            Some(ip) => ip,
            None if !self.bound.ip().is_unspecified() => self.bound.ip(),
            None => canonical_ip(arrived_on),
        };
        SocketAddr::new(ip, self.bound.port())
    }

    /// Ends the session of resource `id`: its queue closes, and with it the connection.
    /// `false` when this shard has no such session.
    pub fn end(&self, id: &str) -> bool {
        let Some(ufrag) = self.by_resource.borrow_mut().remove(id) else {
            return false;
        };
        self.forget(&ufrag);
        true
    }

    /// Drops a session's routes (its queue's sender with them).
    fn forget(&self, ufrag: &str) {
        let Some(route) = self.routes.borrow_mut().remove(ufrag) else {
            return;
        };
        self.by_resource.borrow_mut().remove(&route.resource);
        if let Some(addr) = route.remote {
            self.by_addr.borrow_mut().remove(&addr);
        }
    }

    /// Routes one datagram from `from` (see the module's comment).
    fn route(&self, datagram: &[u8], from: SocketAddr) {
        let known = self.by_addr.borrow().get(&from).cloned();
        let ufrag = match known {
            Some(ufrag) => ufrag,
            None => match stun_local_ufrag(datagram) {
                Some(ufrag) => ufrag.to_owned(),
                None => return,
            },
        };
        let mut routes = self.routes.borrow_mut();
        let Some(route) = routes.get_mut(&ufrag) else {
            return;
        };
        match route.remote {
            Some(addr) if addr != from => return,
            Some(_) => {}
            None => {
                route.remote = Some(from);
                self.by_addr.borrow_mut().insert(from, ufrag);
            }
        }
        // Full: dropped, like a datagram the socket buffer had no room for.
        let _ = route.queue.try_send(datagram.to_vec());
    }
}

/// Reads the shard's WebRTC datagrams forever, routing each to its session.
pub async fn run_endpoint(endpoint: Rc<WebRtcEndpoint>) {
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    loop {
        match endpoint.socket.recv_from(&mut buf).await {
            Ok((0, _)) => {}
            Ok((n, from)) => endpoint.route(&buf[..n], from),
            Err(e) => {
                log::warn!("webrtc: receive failed: {e}");
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A WHEP offer as the HTTP connection read it.
pub struct Offer<'a> {
    pub stream: StreamId,
    pub token: Option<&'a [u8]>,
    pub peer: IpAddr,
    pub user_agent: Option<&'a [u8]>,
    /// The address the POST came in on (the candidate's, when nothing else says).
    pub arrived_on: IpAddr,
    pub sdp: &'a [u8],
}

/// How an offer ended.
#[derive(Debug)]
pub enum OfferOutcome {
    /// 201: the session resource's id and the answer.
    Created { resource: String, answer: String },
    /// 403 with the reason.
    Refused(DenyReason),
    /// 400: the offer cannot be answered.
    Invalid(String),
    /// 406: the offer receives no H.264 profile that decodes the stream's (said why).
    Unplayable(String),
    /// 503: the shard holds `MAX_SESSIONS`.
    Busy,
}

/// Authorizes an offer, answers it, and starts its session's task.
pub async fn offer(
    endpoint: &Rc<WebRtcEndpoint>,
    state: &Rc<RefCell<ShardState>>,
    offer: Offer<'_>,
) -> OfferOutcome {
    let token_param = state.borrow().catalog().token_param.clone();
    let now = Instant::now();
    let (stream, ip, ua) = (offer.stream, offer.peer, offer.user_agent);
    let mut play = PlayLifecycle::new(
        Access::Play,
        stream,
        Proto::WebRtc,
        offer.token,
        ip,
        ua,
        &token_param,
        now,
    );
    if let Err(reason) = authorize(state, &mut play).await {
        let tag = state.borrow().token_tag(offer.token);
        log::info!("webrtc {ip}: refused token={tag}: {reason}");
        return OfferOutcome::Refused(reason);
    }
    if endpoint.routes.borrow().len() >= MAX_SESSIONS {
        log::warn!("webrtc {ip}: refused: {MAX_SESSIONS} sessions on this shard");
        return OfferOutcome::Busy;
    }
    let Ok(sdp) = std::str::from_utf8(offer.sdp) else {
        return OfferOutcome::Invalid("the offer is not UTF-8".into());
    };
    let creds = IceCreds {
        ufrag: format!("{:016x}", endpoint.unguessable() as u64),
        pass: resource_id(endpoint.unguessable()),
    };
    let ufrag = creds.ufrag.clone();
    let local = endpoint.candidate_for(offer.arrived_on);
    let cert = endpoint.cert.clone();
    let video = playing_video(state, stream);
    let answered = WebRtcPeer::answer_for(sdp, local, creds, cert, video.as_ref(), now);
    let (peer, answer) = match answered {
        Ok(answered) => answered,
        Err(e) => {
            log::info!("webrtc {ip}: offer refused: {e}");
            return match e {
                OfferError::Profile(_) => OfferOutcome::Unplayable(e.to_string()),
                _ => OfferOutcome::Invalid(e.to_string()),
            };
        }
    };
    let resource = resource_id(endpoint.unguessable());
    let (queue, inbox) = local_channel::new_bounded(PEER_QUEUE);
    let route = Route {
        queue,
        remote: None,
        resource: resource.clone(),
    };
    endpoint.routes.borrow_mut().insert(ufrag.clone(), route);
    let by_resource = (resource.clone(), ufrag.clone());
    endpoint
        .by_resource
        .borrow_mut()
        .insert(by_resource.0, by_resource.1);
    let demand = state.borrow().catalog().opus_demand.hold(stream);
    state.borrow_mut().webrtc_stats_mut().connecting += 1;
    let session = Session {
        peer,
        play,
        inbox,
        ufrag,
        _demand: demand,
    };
    let task = serve(endpoint.clone(), state.clone(), session);
    glommio::spawn_local(task).detach();
    log::info!("webrtc {ip}: offer answered, candidate {local}");
    OfferOutcome::Created { resource, answer }
}

/// The H.264 configuration `stream` sends now, if it is live with video (a publisher's
/// may be any profile: the answer must pick one the browser decodes).
fn playing_video(state: &Rc<RefCell<ShardState>>, stream: StreamId) -> Option<VideoConfig> {
    let state = state.borrow();
    let view = state.view(stream).filter(|v| v.live)?;
    view.media.as_ref()?.video.clone()
}

/// An answered offer, until its session ends.
struct Session {
    peer: WebRtcPeer,
    play: PlayLifecycle,
    inbox: LocalReceiver<Vec<u8>>,
    ufrag: String,
    /// The stream's Opus is wanted while the session lives.
    _demand: DemandHold,
}

/// Serves one session: waits for the browser's first datagram, then runs the driver until
/// the session ends.
async fn serve(endpoint: Rc<WebRtcEndpoint>, state: Rc<RefCell<ShardState>>, session: Session) {
    let Session {
        peer,
        play,
        inbox,
        ufrag,
        _demand,
    } = session;
    let first = async { inbox.recv().await };
    let timeout = async {
        glommio::timer::sleep(ICE_WAIT).await;
        None
    };
    let first = futures_lite::future::or(first, timeout).await;
    let remote = endpoint.routes.borrow().get(&ufrag).and_then(|r| r.remote);
    let mut glue = WebRtcGlue::default();
    if let (Some(datagram), Some(remote)) = (first, remote) {
        let mut machine = WebRtcMachine { peer };
        machine.peer.set_remote(remote);
        if let Err(e) = machine.peer.handle_input(&datagram, Instant::now()) {
            log::debug!("webrtc {remote}: first datagram: {e}");
        }
        let link = PeerLink {
            inbox,
            socket: endpoint.socket.clone(),
            peer: remote,
        };
        let playback = Playback {
            play: Some(play),
            viewing: None,
        };
        let ip = canonical_ip(remote.ip());
        drive(
            &mut glue,
            Conn::boxed(machine, playback),
            // Authorized at the offer already: no connection cap's newcomer.
            (Link::Datagrams(link), Arrival::default()),
            &state,
            ip,
            None,
        )
        .await;
    } else if endpoint.routes.borrow().contains_key(&ufrag) {
        log::info!("webrtc: no ICE check within {ICE_WAIT:?}: session dropped");
    }
    let deleted = !endpoint.routes.borrow().contains_key(&ufrag);
    count_end(&mut state.borrow_mut(), &glue, deleted);
    endpoint.forget(&ufrag);
}

/// Counts a session's end: out of its gauge, and as a failure if it got no further than
/// ICE or DTLS and was not DELETEd.
fn count_end(state: &mut ShardState, glue: &WebRtcGlue, deleted: bool) {
    let stats = state.webrtc_stats_mut();
    if glue.counted_connected {
        stats.connected -= 1;
    } else {
        stats.connecting -= 1;
    }
    match glue.reached {
        Phase::Offered if !deleted => stats.ice_failures += 1,
        Phase::IceUp if !deleted => stats.dtls_failures += 1,
        _ => {}
    }
}

/// What the session's glue remembers: how far the peer connection got, and whether the
/// `connected` gauge counts it.
struct WebRtcGlue {
    reached: Phase,
    counted_connected: bool,
}

impl Default for WebRtcGlue {
    fn default() -> Self {
        WebRtcGlue {
            reached: Phase::Offered,
            counted_connected: false,
        }
    }
}

impl Glue for WebRtcGlue {
    type Machine = WebRtcMachine;
    type Viewer = WebRtcViewer;
    const PROFILE: Profile = Profile::new("webrtc", DATAGRAM_BUFFER, DATAGRAM_BUFFER);

    async fn act(&mut self, output: Output, conn: &mut Conn<Self>, io: &mut Io<'_>) -> Flow {
        match output {
            Output::Connected => {
                self.counted_connected = true;
                let mut state = io.state.borrow_mut();
                let stats = state.webrtc_stats_mut();
                stats.connecting -= 1;
                stats.connected += 1;
                drop(state);
                let Ok(session) = conn.playback.start(io.state, WebRtcViewer::new()) else {
                    return Flow::Close;
                };
                log::info!("webrtc play started session={session} ip={}", io.peer);
            }
            Output::KeyframeRequest => {
                if let Some(viewing) = conn.playback.viewing.as_mut() {
                    viewing.viewer.want_keyframe();
                }
            }
            Output::Stats { sent, rtt } => {
                let mut state = io.state.borrow_mut();
                let stats = state.webrtc_stats_mut();
                stats.bytes_sent += sent;
                if let Some(rtt) = rtt {
                    stats.rtt_reports += 1;
                    stats.rtt_sum_us += rtt.as_micros() as u64;
                }
            }
            Output::Closed(why) => {
                log::info!("webrtc {}: closing: {why}", io.peer);
                return Flow::Close;
            }
            Output::Transmit(_) | Output::Timeout(_) => {}
        }
        Flow::Idle
    }

    /// Whatever ended it, the browser hears a DTLS close.
    async fn finish(&mut self, conn: &mut Conn<Self>, io: &mut Io<'_>) {
        let peer = &mut conn.machine.peer;
        self.reached = peer.phase();
        peer.close();
        while let Some(output) = peer.poll_output() {
            if let Output::Transmit(datagram) = output {
                io.transmit(&datagram);
            }
        }
        let sent = peer.take_unreported();
        io.state.borrow_mut().webrtc_stats_mut().bytes_sent += sent;
        if let Some(v) = &conn.playback.viewing {
            log::info!(
                "webrtc play ended ip={} frames={} keyframe_requests={} seconds={}",
                io.peer,
                v.viewer.units(),
                v.viewer.keyframe_requests(),
                v.started.elapsed().as_secs()
            );
        }
    }
}

/// The peer connection as the driver runs it.
pub(crate) struct WebRtcMachine {
    peer: WebRtcPeer,
}

impl Machine for WebRtcMachine {
    type Output = Output;
    type Error = PeerError;

    fn handle_input(&mut self, input: &[u8], now: Instant) -> Result<usize, PeerError> {
        self.peer.handle_input(input, now)
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.peer.poll_output()
    }

    fn awaiting_authorization(&self) -> bool {
        false
    }

    fn transmit(output: &Output) -> Option<&[u8]> {
        match output {
            Output::Transmit(datagram) => Some(datagram),
            _ => None,
        }
    }

    fn timeout(output: &Output) -> Option<Instant> {
        match output {
            Output::Timeout(at) => Some(*at),
            _ => None,
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.peer.handle_timeout(now);
    }

    /// UDP has no end of its own: ICE's timeout, a DELETE or a refusal ends the session.
    fn peer_closed(&mut self) {}

    fn carry(&mut self, unit: &[u8], now: Instant) -> Result<(), &'static str> {
        self.peer.send(unit, now)
    }
}
