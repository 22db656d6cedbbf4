//! SRT on the connection driver: the shard's UDP endpoint, and the glue between the sans-IO
//! `SrtConnection` and `SrtViewer`.
//!
//! **The endpoint.** Every shard binds the `srt PORT;` address itself with SO_REUSEPORT.
//! For UDP the kernel picks the socket of a reuseport group by a hash of the datagram's
//! 4-tuple (source and destination address and port), so every datagram of one caller
//! reaches the same shard for as long as the group's sockets stay bound: the shard that
//! made a caller's connection receives all of its packets, and nothing crosses shards.
//! The endpoint task reads datagrams and routes them by the peer's address: inductions
//! and conclusions of a caller starting over from a known address (another socket id),
//! and datagrams of unknown peers, to the shard's stateless handshake `Listener`; everything else into the peer's bounded queue (full: dropped,
//! as a full socket buffer would). A conclusion the listener accepts starts the peer's
//! connection task, which runs on the driver (`Link::Datagrams`) and leaves the map when
//! it ends (a caller starting over replaces it: the old queue closes, and so does the old
//! connection).
//!
//! **The glue.** `Output::Authorize` (the stream id parsed) → for a player, the stream's
//! `PlayLifecycle` (`Proto::Srt`); for a publisher (`m=publish`), `publish::claim`
//! (`on_publish`, then the stream's one publisher slot, shared with RTMP) → accept, or
//! reject with the code that says why: 1401 no token, 1403 denied, 1404 unknown stream,
//! 1405 publishing into a stream that is not `publish://`, 1409 already published, 1503
//! backend unavailable. A player's `Connected` opens the session and starts an `SrtViewer`
//! (the driver re-checks the play every 250 ms); a publisher's starts a `TsPublisher`, fed
//! each payload at its TSBPD time (TS → `ts_demux` → `LiveInput` → every shard), ended by a
//! TS tessera cannot carry. Whatever ends the connection, `finish` ends a publish (partial
//! segment, `InputEnded`, slot released) and sends a shutdown.

use crate::auth::play::Access;
use crate::auth::verdict::{DenyReason, Proto, canonical_ip};
use crate::config::{Config, ListenerProto};
use crate::runtime::admission::Arrival;
use crate::runtime::driver::{
    Conn, Flow, Glue, Io, Link, Machine, PeerLink, Playback, Profile, drive,
};
use crate::runtime::fanout::Fanout;
use crate::runtime::play_auth::authorize;
use crate::runtime::publish::{self, Claimed, Publisher, Refusal, TsPublisher};
use crate::shard::ShardState;
use crate::srt::RejectReason;
use crate::srt::connection::{
    AuthAnswer, CloseReason, ConnectionConfig, ConnectionError, Output, SendError, SrtConnection,
};
use crate::srt::handshake::{self, CallerHello, Listener, ListenerReply};
use crate::srt::packet::HandshakeType;
use crate::srt::streamid::{Mode, StreamRequest};
use crate::srt::viewer::SrtViewer;
use crate::stream::ring::MAX_SKIPS;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::UdpSocket;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Datagrams queued for one peer before the endpoint drops its next ones. A viewer sends
/// ACKs, NAKs and keepalives only; kept small, since queues fill before any token is
/// checked (MAX_PEERS of them per shard).
pub const PEER_QUEUE: usize = 64;
/// SRT connections one shard serves at once; callers past it are refused (1402).
pub const MAX_PEERS: usize = 4096;
/// The largest datagram read (a 1500-byte MTU's packet fits).
const DATAGRAM_BUFFER: usize = 2048;

/// A peer's connection as the endpoint knows it: the caller's socket id, and its queue.
struct Peer {
    caller: u32,
    queue: LocalSender<Vec<u8>>,
}

/// Is this datagram the conclusion of a caller other than `caller` (one that started over
/// from the same address and port)?
fn is_new_conclusion(datagram: &[u8], caller: u32) -> bool {
    matches!(
        handshake::handshake_of(datagram),
        Ok((_, hs)) if hs.kind == HandshakeType::Conclusion && hs.socket_id != caller
    )
}

/// Which streams an SRT port serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SrtScope {
    /// `srt PORT;` at top level: every stream, named by the caller's stream id (`r=`).
    Every,
    /// A stream's own port (Flussonic's per-stream forms): `srt_play { port N; }` plays it
    /// (`publish: false`), `srt N;` inside the stream also takes its publishers (`m=`
    /// picks). The stream id needs no `r=`; one naming another stream is not asked about.
    Stream { name: Box<str>, publish: bool },
}

impl SrtScope {
    /// The stream id's request as this port reads it: the port's own stream, and a
    /// publisher refused (1405) on a play-only port.
    fn apply(&self, request: &StreamRequest) -> Result<StreamRequest, RejectReason> {
        let SrtScope::Stream { name, publish } = self else {
            return Ok(request.clone());
        };
        if request.mode() == Mode::Publish && !publish {
            return Err(RejectReason::BAD_MODE);
        }
        let mut request = request.clone();
        request.resource = Some(name.to_string());
        Ok(request)
    }
}

/// Every SRT port of the config and what it serves: the top-level `srt` listeners, and
/// each stream's `srt_play { port N; }` and `srt N;`.
pub fn ports(config: &Config) -> Vec<(SocketAddr, SrtScope)> {
    let every = config
        .listeners
        .iter()
        .filter(|l| l.proto == ListenerProto::Srt)
        .map(|l| (l.addr, SrtScope::Every));
    let own = config.streams.iter().flat_map(|s| {
        let scope = |publish| SrtScope::Stream {
            name: s.name.as_str().into(),
            publish,
        };
        let play = s.srt.play.map(|addr| (addr, scope(false)));
        let both = s.srt.play_publish.map(|addr| (addr, scope(true)));
        play.into_iter().chain(both)
    });
    every.chain(own).collect()
}

/// The shard's SRT port: its socket, its handshake listener, and its peers' queues.
pub struct SrtEndpoint {
    socket: Rc<UdpSocket>,
    scope: SrtScope,
    listener: Listener,
    peers: RefCell<HashMap<SocketAddr, Peer>>,
    seed: u64,
    connections: std::cell::Cell<u64>,
    /// Keys the socket ids (`next_socket_id`).
    ids: ahash::RandomState,
    /// Connection tasks running (a replaced connection's task counts until it ends, so a
    /// caller restarting over and over cannot pile up tasks past `MAX_PEERS`).
    live: std::cell::Cell<usize>,
    /// The latency tessera asks of its viewers (`srt_latency`; the larger of it and the
    /// caller's applies).
    latency: Duration,
}

impl SrtEndpoint {
    /// Binds `addr` (SO_REUSEPORT: every shard binds it).
    pub fn bind(
        addr: SocketAddr,
        scope: SrtScope,
        seed: u64,
        latency: Duration,
    ) -> std::io::Result<SrtEndpoint> {
        let socket = UdpSocket::bind(addr)?;
        let mut secret = [0u8; 32];
        for part in secret.chunks_mut(8) {
            part.copy_from_slice(&crate::auth::os_seed().to_le_bytes());
        }
        Ok(SrtEndpoint {
            socket: Rc::new(socket),
            scope,
            listener: Listener::new(secret, Instant::now()),
            peers: RefCell::new(HashMap::new()),
            seed,
            connections: std::cell::Cell::new(0),
            ids: ahash::RandomState::with_seeds(
                crate::auth::os_seed(),
                crate::auth::os_seed(),
                crate::auth::os_seed(),
                crate::auth::os_seed(),
            ),
            live: std::cell::Cell::new(0),
            latency,
        })
    }

    /// A socket id for the next connection: nonzero, 31 bits, distinct per connection.
    /// A keyed hash of the connection's number, so one id a caller sees tells nothing of
    /// the others (the id is what, beside the address, a datagram must match).
    fn next_socket_id(&self) -> u32 {
        let n = self.connections.get() + 1;
        self.connections.set(n);
        let mixed = self.ids.hash_one((self.seed, n));
        ((mixed as u32) & 0x7fff_ffff).max(1)
    }
}

/// Reads the shard's SRT datagrams forever, routing each by its peer's address.
pub async fn run_endpoint(
    endpoint: Rc<SrtEndpoint>,
    state: Rc<RefCell<ShardState>>,
    fanout: Rc<Fanout>,
) {
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    loop {
        let (n, peer) = match endpoint.socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                log::warn!("srt: receive failed: {e}");
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let datagram = &buf[..n];
        if n == 0 {
            continue;
        }
        if !handshake::is_induction(datagram) {
            let peers = endpoint.peers.borrow();
            match peers.get(&peer) {
                Some(known) if !is_new_conclusion(datagram, known.caller) => {
                    // Full: dropped, like a datagram the socket buffer had no room for.
                    let _ = known.queue.try_send(datagram.to_vec());
                    continue;
                }
                // A caller starting over replaces the connection (the listener checks
                // its cookie first); unknown peers go to the listener.
                _ => {}
            }
        }
        match endpoint.listener.handle(datagram, peer, Instant::now()) {
            Ok(ListenerReply::Induction(reply)) => {
                let _ = endpoint.socket.send_to(&reply, peer).await;
            }
            Ok(ListenerReply::Conclusion(hello)) => {
                admit(&endpoint, &state, &fanout, hello, peer).await;
            }
            Err(e) => log::debug!("srt {peer}: {e}"),
        }
    }
}

/// Starts the connection task of a caller whose conclusion the listener accepted (or
/// refuses it when the shard has too many).
async fn admit(
    endpoint: &Rc<SrtEndpoint>,
    state: &Rc<RefCell<ShardState>>,
    fanout: &Rc<Fanout>,
    hello: CallerHello,
    peer: SocketAddr,
) {
    let local = endpoint.next_socket_id();
    if endpoint.live.get() >= MAX_PEERS {
        log::warn!("srt {peer}: refused: {MAX_PEERS} connections on this shard");
        let reject = RejectReason::OVERLOAD;
        let reply = handshake::rejection(&hello, local, reject, peer.ip(), 0);
        let _ = endpoint.socket.send_to(&reply, peer).await;
        return;
    }
    let (queue, rx) = local_channel::new_bounded(PEER_QUEUE);
    let caller = hello.socket_id;
    // A connection this replaces sees its queue close and ends.
    let known = Peer { caller, queue };
    endpoint.peers.borrow_mut().insert(peer, known);
    let link = PeerLink {
        inbox: rx,
        socket: endpoint.socket.clone(),
        peer,
    };
    endpoint.live.set(endpoint.live.get() + 1);
    let glue = SrtGlue {
        latency: endpoint.latency,
        scope: endpoint.scope.clone(),
        fanout: fanout.clone(),
        claimed: None,
        ingest: None,
    };
    let task = serve(hello, link, local, state.clone(), endpoint.clone(), glue);
    glommio::spawn_local(task).detach();
}

/// Serves one caller until it leaves, is refused, times out, or its play ends.
async fn serve(
    hello: CallerHello,
    link: PeerLink,
    local_socket_id: u32,
    state: Rc<RefCell<ShardState>>,
    endpoint: Rc<SrtEndpoint>,
    mut glue: SrtGlue,
) {
    let (peer, caller) = (link.peer, hello.socket_id);
    let mut cfg = ConnectionConfig::new(local_socket_id);
    cfg.token_key = state.borrow().catalog().token_param.to_string();
    let machine = SrtMachine {
        conn: SrtConnection::new(hello, peer, cfg, Instant::now()),
        behind: false,
    };
    let ip = canonical_ip(peer.ip());
    let conn = Conn::boxed(machine, Playback::default());
    // SRT peers have caps of their own (`MAX_PEERS`), not the TCP admission.
    let link = (Link::Datagrams(link), Arrival::default());
    drive(&mut glue, conn, link, &state, ip, None).await;
    endpoint.live.set(endpoint.live.get().saturating_sub(1));
    let mut peers = endpoint.peers.borrow_mut();
    if peers.get(&peer).is_some_and(|known| known.caller == caller) {
        peers.remove(&peer);
    }
}

/// What SRT keeps beside its machine: the latency it asks for, and a publish.
struct SrtGlue {
    latency: Duration,
    scope: SrtScope,
    fanout: Rc<Fanout>,
    /// A publish allowed and claimed, until the handshake completes.
    claimed: Option<Claimed>,
    /// Boxed: a viewer's connection task then carries a pointer, not a publisher.
    ingest: Option<Box<TsPublisher>>,
}

/// The reject code for a refused play: no token at all is 1401, an unreachable portal
/// 1503, anything else 1403.
fn reject_code(reason: DenyReason, token: Option<&[u8]>) -> RejectReason {
    match reason {
        DenyReason::BackendUnavailable => RejectReason::UNAVAILABLE,
        _ if token.is_none() => RejectReason::UNAUTHORIZED,
        _ => RejectReason::FORBIDDEN,
    }
}

/// Decides a player's stream id; an allowed play is kept for `Connected`.
async fn authorize_play(
    playback: &mut Playback<SrtViewer>,
    io: &Io<'_>,
    request: &StreamRequest,
) -> Result<(), RejectReason> {
    let peer = io.peer;
    let name = request.resource.as_deref().unwrap_or("");
    let token = request.token.as_deref();
    // A name under a template's prefix is authorized and made first.
    let id = match crate::runtime::templates::play_stream(io, Proto::Srt, name, token).await {
        Ok((id, _)) => id,
        Err(None) => {
            log::info!("srt {peer}: refused stream={name}: no such stream");
            return Err(RejectReason::NOT_FOUND);
        }
        Err(Some(reason)) => {
            log::info!("srt {peer}: refused stream={name}: the template's on_play: {reason}");
            return Err(reject_code(reason, token));
        }
    };
    let mut play = publish::lifecycle(io, Proto::Srt, Access::Play, id, token);
    if let Err(reason) = authorize(io.state, &mut play).await {
        let code = reject_code(reason, token);
        let tag = io.state.borrow().token_tag(token);
        log::info!(
            "srt {peer}: refused stream={name} token={tag}: {reason} ({})",
            code.0
        );
        return Err(code);
    }
    playback.play = Some(play);
    Ok(())
}

/// The stream's SRT passphrase (`srt_passphrase`), which the caller's key material must
/// unwrap with (a caller without one, or one on a stream without, is refused by the core).
fn passphrase(io: &Io<'_>, request: &StreamRequest) -> Option<Vec<u8>> {
    let name = request.resource.as_deref()?;
    let shard = io.state.borrow();
    let pass = shard
        .catalog()
        .stream_by_name(name)?
        .srt_passphrase
        .as_ref()?;
    Some(pass.to_vec())
}

/// Decides a publisher's stream id (`publish::claim`, which logs); the claim is kept for
/// `Connected`.
async fn authorize_publish(io: &Io<'_>, request: &StreamRequest) -> Result<Claimed, RejectReason> {
    let name = request.resource.as_deref().unwrap_or("");
    let token = request.token.as_deref();
    publish::claim(io, Proto::Srt, name, token)
        .await
        .map_err(|refusal| match refusal {
            Refusal::NotFound => RejectReason::NOT_FOUND,
            Refusal::NotAPublishStream => RejectReason::BAD_MODE,
            Refusal::Denied(reason) => reject_code(reason, token),
            Refusal::InUse => RejectReason::CONFLICT,
        })
}

impl SrtGlue {
    /// Decides the caller's stream id, play or publish.
    async fn authorize(
        &mut self,
        playback: &mut Playback<SrtViewer>,
        io: &Io<'_>,
        request: &StreamRequest,
    ) -> AuthAnswer {
        let request = match self.scope.apply(request) {
            Ok(request) => request,
            Err(code) => {
                log::info!("srt {}: refused: publishing on a play-only port", io.peer);
                return AuthAnswer::Reject(code);
            }
        };
        let decided = match request.mode() {
            Mode::Play => authorize_play(playback, io, &request).await,
            Mode::Publish => authorize_publish(io, &request)
                .await
                .map(|claimed| self.claimed = Some(claimed)),
        };
        match decided {
            Ok(()) => AuthAnswer::Accept {
                latency: self.latency,
                passphrase: passphrase(io, &request),
            },
            Err(code) => AuthAnswer::Reject(code),
        }
    }

    /// A publisher's handshake completed: its TS goes to a `TsPublisher` from now on.
    fn start_publish(&mut self, io: &Io<'_>) -> Flow {
        let Some(claimed) = self.claimed.take() else {
            return Flow::Close;
        };
        let publisher = Publisher::start(io, Proto::Srt, claimed);
        self.ingest = Some(Box::new(TsPublisher::new(publisher)));
        Flow::Idle
    }

    /// A publisher's payload, in order at its delivery time, into the stream.
    async fn published(&mut self, payload: &[u8], io: &Io<'_>) -> Flow {
        let Some(ingest) = self.ingest.as_mut() else {
            return Flow::Idle;
        };
        match ingest.push(payload, &self.fanout).await {
            Ok(()) => Flow::Idle,
            Err(e) => {
                let name = ingest.name();
                log::info!("srt publish ended stream={name} ip={}: {e}", io.peer);
                Flow::Close
            }
        }
    }

    /// The viewer's send buffer was full: what it wrote since is dropped, and it resumes at
    /// the next keyframe (PAT, PMT, IDR), as the ring's cursor skips a viewer it left
    /// behind; after `MAX_SKIPS` of these it is given up on.
    fn fell_behind(&mut self, conn: &mut Conn<Self>, io: &Io<'_>) -> Flow {
        let Some(viewing) = conn.playback.viewing.as_mut() else {
            return Flow::Idle;
        };
        viewing.viewer.resync();
        if viewing.viewer.resyncs() > MAX_SKIPS {
            log::info!(
                "srt {}: disconnecting: viewer stays behind (send buffer full)",
                io.peer
            );
            return Flow::Close;
        }
        log::debug!(
            "srt {}: send buffer full: skipping to the next keyframe",
            io.peer
        );
        Flow::Idle
    }

    /// The handshake completed: the session opens and the viewer starts.
    fn connected(&mut self, playback: &mut Playback<SrtViewer>, io: &Io<'_>) -> Flow {
        let Ok(session) = playback.start(io.state, SrtViewer::new()) else {
            return Flow::Close;
        };
        log::info!("srt play started session={session} ip={}", io.peer);
        Flow::Idle
    }
}

impl Glue for SrtGlue {
    type Machine = SrtMachine;
    type Viewer = SrtViewer;
    const PROFILE: Profile = Profile::new("srt", DATAGRAM_BUFFER, DATAGRAM_BUFFER);

    async fn act(&mut self, output: SrtOutput, conn: &mut Conn<Self>, io: &mut Io<'_>) -> Flow {
        let output = match output {
            SrtOutput::Core(output) => output,
            SrtOutput::Behind => return self.fell_behind(conn, io),
        };
        match output {
            Output::Authorize { request, .. } => {
                let answer = self.authorize(&mut conn.playback, io, &request).await;
                conn.machine.conn.authorized(answer, Instant::now());
                return Flow::Again;
            }
            Output::Connected {
                mode: Mode::Play, ..
            } => {
                return self.connected(&mut conn.playback, io);
            }
            Output::Connected {
                mode: Mode::Publish,
                ..
            } => return self.start_publish(io),
            Output::Payload(payload) => return self.published(&payload, io).await,
            Output::Closed(CloseReason::Rejected(code)) if code.0 < 1000 => {
                // The core's own refusals (passphrase mismatch: 10 BADSECRET, 11 UNSECURE).
                log::info!(
                    "srt {}: refused by the handshake: reject code {}",
                    io.peer,
                    code.0
                );
                return Flow::Close;
            }
            Output::Closed(reason) => {
                log::debug!("srt {}: closing: {reason:?}", io.peer);
                return Flow::Close;
            }
            // The driver sends these and keeps the timer.
            Output::Transmit(_) | Output::Timeout(_) => {}
        }
        Flow::Idle
    }

    /// Whatever ended it, the peer hears a shutdown (when the connection is still up).
    async fn finish(&mut self, conn: &mut Conn<Self>, io: &mut Io<'_>) {
        if let Some(ingest) = self.ingest.take() {
            // Boxed (once per publish): the largest future of the glue, which every
            // viewer's connection task would otherwise carry.
            Box::pin(ingest.end(&self.fanout)).await;
        }
        conn.machine.conn.close(Instant::now());
        while let Some(output) = conn.machine.conn.poll_output() {
            if let Output::Transmit(datagram) = output {
                io.transmit(&datagram);
            }
        }
        if let Some(v) = &conn.playback.viewing {
            log::info!(
                "srt play ended ip={} payloads={} seconds={}",
                io.peer,
                v.viewer.payloads(),
                v.started.elapsed().as_secs()
            );
        }
    }
}

/// The connection as the driver runs it: the core, and whether a viewer's payload found
/// its send buffer full since the glue last looked (`SrtOutput::Behind`).
pub(crate) struct SrtMachine {
    conn: SrtConnection,
    behind: bool,
}

/// The core's outputs, and one of the runtime's own: the viewer fell behind.
#[derive(Debug)]
pub(crate) enum SrtOutput {
    Core(Output),
    /// Payloads were dropped on a full send buffer: the viewer resumes at a keyframe.
    Behind,
}

impl Machine for SrtMachine {
    type Output = SrtOutput;
    type Error = ConnectionError;

    fn handle_input(&mut self, input: &[u8], now: Instant) -> Result<usize, ConnectionError> {
        self.conn.handle_input(input, now)
    }

    fn poll_output(&mut self) -> Option<SrtOutput> {
        if std::mem::take(&mut self.behind) {
            return Some(SrtOutput::Behind);
        }
        self.conn.poll_output().map(SrtOutput::Core)
    }

    fn awaiting_authorization(&self) -> bool {
        self.conn.awaiting_authorization()
    }

    fn transmit(output: &SrtOutput) -> Option<&[u8]> {
        match output {
            SrtOutput::Core(Output::Transmit(datagram)) => Some(datagram.as_ref()),
            _ => None,
        }
    }

    fn timeout(output: &SrtOutput) -> Option<Instant> {
        match output {
            SrtOutput::Core(Output::Timeout(at)) => Some(*at),
            _ => None,
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
    }

    /// UDP has no end of its own: the idle timeout or a shutdown ends the connection.
    fn peer_closed(&mut self) {}

    /// A full send buffer drops the payload (and the viewer skips to a keyframe, see
    /// `SrtGlue::fell_behind`) rather than ending the connection.
    fn carry(&mut self, payload: &[u8], now: Instant) -> Result<(), &'static str> {
        match self.conn.send(payload, now) {
            Ok(_) => Ok(()),
            Err(SendError::BufferFull) => {
                self.behind = true;
                Ok(())
            }
            Err(SendError::NotConnected) => Err("disconnecting: connection closed"),
            Err(SendError::TooLarge { .. }) => Err("disconnecting: payload over the peer's MTU"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_the_reject_codes_of_the_spec() {
        let token = Some(&b"t"[..]);
        let cases = [
            (DenyReason::BackendDenied, None, RejectReason::UNAUTHORIZED),
            (DenyReason::BackendDenied, token, RejectReason::FORBIDDEN),
            (DenyReason::SessionRevoked, token, RejectReason::FORBIDDEN),
            (
                DenyReason::BackendUnavailable,
                None,
                RejectReason::UNAVAILABLE,
            ),
            (
                DenyReason::BackendUnavailable,
                token,
                RejectReason::UNAVAILABLE,
            ),
        ];
        for (reason, token, code) in cases {
            assert_eq!(reject_code(reason, token), code, "{reason} {token:?}");
        }
    }
}
