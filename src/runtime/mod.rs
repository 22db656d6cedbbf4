//! The thread-per-core runtime: one glommio executor per shard, pinned to its core.
//!
//! Each shard binds its own listeners (SO_REUSEPORT, so the kernel spreads connections),
//! owns a `ShardState` (stream views, decision cache, sessions), runs the inputs of the
//! streams it owns, and receives the other shards' stream events over a channel mesh. The
//! main thread only starts the shards, waits for them to report ready, and stops the process
//! on SIGINT/SIGTERM.

pub mod admission;
pub mod auth_bus;
pub mod body_files;
pub mod cluster;
pub mod control;
pub mod driver;
pub mod fake_input;
pub mod fanout;
pub mod hls_pull;
pub mod http_conn;
pub mod inputs;
pub mod live_ts;
pub mod on_demand;
pub mod operator_api;
pub mod play_auth;
pub mod portal_client;
pub mod publish;
pub mod pull;
pub mod resolve;
pub mod ring_wait;
pub mod rtmp_conn;
pub mod rtsp_conn;
pub mod srt_conn;
pub mod srt_pull;
pub mod stop_signal;
pub mod templates;
pub mod tls;
pub mod webrtc_conn;

use crate::auth::claims::PortalClaims;
use crate::auth::verdict::canonical_ip;
use crate::catalog::Catalog;
use crate::config::{Config, ConnectionCaps, ListenerProto, Served};
use crate::http::limits::HttpLimits;
use crate::shard::{ConnKind, Now, ShardState};
use crate::stream::view::StreamEvent;
use admission::{Admission, Newcomers};
use auth_bus::{AuthBus, AuthMsg};
use control::{Board, ConfigSource, Event, ShardControl};
use fanout::Fanout;
use futures_rustls::TlsAcceptor;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use inputs::OwnedInputs;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::Duration;
use stop_signal::{ListenerOpen, shard_stop};
use tls::TlsSetup;

/// Stream events a shard may have queued from one peer before that peer's input waits.
const MESH_QUEUE: usize = 256;
/// How long shards may take to bind and report ready. Generous: on a loaded 2-core machine
/// (a test suite beside builds) joining the meshes and binding took over 10 s twice.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server stopped.
#[derive(Debug)]
pub enum Stop {
    /// Stopped gracefully on this signal.
    Signal(i32),
    /// A second signal came while stopping: ended at once.
    Forced(i32),
}

/// Starts the shards and serves until a signal (reloading `source` on SIGHUP and on the
/// API's request). Errors: a listener that cannot be bound, a shard that fails to start, or
/// a shard that dies.
pub fn run(
    config: Config,
    source: ConfigSource,
    tls: Option<TlsSetup>,
    shards: usize,
) -> Result<Stop, String> {
    let config = &config;
    let shards = shards.max(1);
    let mut catalog = Catalog::from_config(config);
    catalog.player = load_player_assets(config);
    let catalog = Arc::new(catalog);
    let listeners = listeners_of(config, tls)?;
    let caps = connection_caps(config, &listeners, shards);
    let limits = HttpLimits {
        first_request_timeout: Duration::from_millis(config.handshake_timeout_ms.into()),
        ..HttpLimits::default()
    };
    let seed = crate::auth::os_seed();
    let fleet = cluster::start(config, shards);
    let mesh: MeshBuilder<StreamEvent, _> = MeshBuilder::full(shards, MESH_QUEUE);
    let auth_mesh: MeshBuilder<AuthMsg, _> = MeshBuilder::full(shards, auth_bus::AUTH_MESH_QUEUE);
    let demand_mesh = on_demand::mesh(shards);
    let portal_claims = Arc::new(PortalClaims::new(std::time::Instant::now()));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();

    // Before any listener is bound: a signal that arrives while the shards start is kept
    // for the loop below instead of killing the process.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let (events_tx, events) = mpsc::channel::<Event>();
    let (acks_tx, acks) = mpsc::channel::<usize>();
    let board = Arc::new(Board::new(shards, acks_tx, events_tx.clone()));
    let running = Running {
        config: config.clone(),
        catalog: catalog.clone(),
        source,
        grace: Duration::from_millis(config.shutdown_timeout_ms.into()),
    };
    let shard_board = board.clone();
    let handles = LocalExecutorPoolBuilder::new(placement(shards))
        .name("tessera-shard")
        .on_all_shards(move || {
            let catalog = catalog.clone();
            let listeners = listeners.clone();
            let ready = ready_tx.clone();
            let meshes = Meshes {
                stream: mesh,
                auth: auth_mesh,
                demand: demand_mesh,
                claims: portal_claims,
            };
            let limits = limits.clone();
            let board = shard_board.clone();
            let fleet = fleet.clone();
            async move {
                shard_main(
                    catalog,
                    listeners,
                    meshes,
                    (limits, caps),
                    (seed, board, fleet),
                    ready,
                )
                .await
            }
        })
        .map_err(|e| format!("cannot start shards: {e}"))?;

    wait_until_ready(&ready_rx, shards)?;
    let on_signal = events_tx.clone();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if on_signal.send(Event::Signal(sig)).is_err() {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        let results = handles.join_all();
        let failed = results.iter().filter(|r| r.is_err()).count();
        let _ = events_tx.send(Event::ShardsEnded { failed });
    });
    log::info!("serving with {shards} shards");
    control::sd_notify("READY=1");
    running.serve(events, (&board, &acks), shards)
}

/// The addresses every shard binds; an error when there is none.
fn listeners_of(config: &Config, tls: Option<TlsSetup>) -> Result<Listeners, String> {
    let tcp: Vec<(ListenerProto, SocketAddr)> = config
        .listeners
        .iter()
        // SRT's are with the streams' own SRT ports, in `srt_conn::ports`.
        .filter(|l| l.proto.transport() == crate::config::Transport::Tcp)
        .map(|l| (l.proto, l.addr))
        .collect();
    let listeners = Listeners {
        tcp,
        srt: srt_conn::ports(config),
        srt_latency: Duration::from_millis(config.srt_latency_ms.into()),
        webrtc: webrtc_conn::listener(config),
        tls,
    };
    if listeners.tcp.is_empty() && listeners.srt.is_empty() {
        return Err(
            "no http, rtsp, rtmp or srt listener configured: nothing would be served".into(),
        );
    }
    Ok(listeners)
}

/// Raises the file limit and derives each shard's connection caps from it (logged).
fn connection_caps(config: &Config, listeners: &Listeners, shards: usize) -> ConnectionCaps {
    let fd_limit = raise_file_limit();
    let serves = |inner: ListenerProto| listeners.tcp.iter().any(|(p, _)| p.inner() == inner);
    let served = Served {
        http: serves(ListenerProto::Http),
        rtmp: serves(ListenerProto::Rtmp),
        rtsp: serves(ListenerProto::Rtsp),
    };
    let caps = ConnectionCaps::derive(fd_limit, shards, served, config.max_connections_per_ip);
    log::info!(
        "file limit {fd_limit}: each of {shards} shards takes at most {} http, {} rtmp and {} \
         rtsp connections, {} per client IP",
        caps.http,
        caps.rtmp,
        caps.rtsp,
        if caps.per_ip == usize::MAX {
            "no limit".to_string()
        } else {
            caps.per_ip.to_string()
        }
    );
    caps
}

/// One shard per core, pinned; unpinned when asked for more shards than cores.
fn placement(shards: usize) -> PoolPlacement {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if shards <= cores {
        PoolPlacement::MaxSpread(shards, None)
    } else {
        log::warn!("{shards} shards on {cores} cores: shards are not pinned");
        PoolPlacement::Unbound(shards)
    }
}

/// Waits until every shard has bound its listeners, or says why one could not.
fn wait_until_ready(
    ready: &mpsc::Receiver<Result<usize, String>>,
    shards: usize,
) -> Result<(), String> {
    for _ in 0..shards {
        match ready.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(_)) => {}
            Ok(Err(message)) => return Err(message),
            Err(_) => return Err("shards did not start in time".into()),
        }
    }
    Ok(())
}

/// The main thread's part once the shards serve: the running config, and what it does on
/// each event.
struct Running {
    config: Config,
    catalog: Arc<Catalog>,
    source: ConfigSource,
    /// `shutdown_timeout`.
    grace: Duration,
}

impl Running {
    fn serve(
        mut self,
        events: mpsc::Receiver<Event>,
        (board, acks): (&Board, &mpsc::Receiver<usize>),
        shards: usize,
    ) -> Result<Stop, String> {
        let mut stopping: Option<i32> = None;
        // An event read while gathering template streams, served next.
        let mut pending: Option<Event> = None;
        loop {
            let event = match pending.take() {
                Some(event) => event,
                None => match self.next_event(&events, stopping) {
                    Ok(event) => event,
                    Err(Some(sig)) => return Ok(Stop::Forced(sig)),
                    Err(None) => return Err("lost track of the shards".to_string()),
                },
            };
            match event {
                Event::Signal(sig) if sig == signal_hook::consts::SIGHUP => {
                    if stopping.is_some() {
                        log::warn!("SIGHUP while stopping: no reload");
                    } else {
                        let _ = self.reload(board, acks, shards);
                    }
                }
                Event::ApiReload(answer) => {
                    let result = match stopping {
                        Some(_) => Err("the server is stopping".to_string()),
                        None => self.reload(board, acks, shards),
                    };
                    *answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
                Event::Signal(sig) => {
                    if stopping.is_some() {
                        log::warn!("signal {sig} while stopping: exiting at once");
                        return Ok(Stop::Forced(sig));
                    }
                    log::info!(
                        "signal {sig}: stopping (connections get up to {} ms to finish)",
                        self.grace.as_millis()
                    );
                    control::sd_notify("STOPPING=1");
                    stopping = Some(sig);
                    board.post(&control::Command::Stop { grace: self.grace });
                }
                Event::MakeStream(name, answer) if stopping.is_none() => {
                    let deferred = self.template_streams(
                        vec![(name, answer)],
                        Vec::new(),
                        &events,
                        board,
                        acks,
                        shards,
                    );
                    if let Some(event) = deferred {
                        pending = Some(event);
                    }
                }
                Event::ForgetStream(name) if stopping.is_none() => {
                    let deferred =
                        self.template_streams(Vec::new(), vec![name], &events, board, acks, shards);
                    if let Some(event) = deferred {
                        pending = Some(event);
                    }
                }
                Event::MakeStream(_, answer) => {
                    *answer.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(Err("the server is stopping".to_string()));
                }
                Event::ForgetStream(_) => {}
                Event::ShardsEnded { failed } => {
                    return match stopping {
                        Some(sig) if failed == 0 => Ok(Stop::Signal(sig)),
                        _ => Err(format!("{failed} of {shards} shards stopped unexpectedly")),
                    };
                }
            }
        }
    }

    /// The next event; while stopping, a bounded wait (the shards end themselves after the
    /// grace; this bounds a stuck one).
    /// `Err(Some(sig))`: the stop took too long; `Err(None)`: the shards are gone.
    fn next_event(
        &self,
        events: &mpsc::Receiver<Event>,
        stopping: Option<i32>,
    ) -> Result<Event, Option<i32>> {
        match stopping {
            Some(sig) => events
                .recv_timeout(self.grace + Duration::from_secs(5))
                .map_err(|_| Some(sig)),
            None => events.recv().map_err(|_| None),
        }
    }

    /// Makes and forgets template streams, with every such request already queued: one
    /// catalog for all of them, posted to every shard; each asker is answered once every
    /// shard has it. Returns an event of another kind read meanwhile, to serve next.
    fn template_streams(
        &mut self,
        mut add: Vec<(Box<str>, control::Answer)>,
        mut forget: Vec<Box<str>>,
        events: &mpsc::Receiver<Event>,
        board: &Board,
        acks: &mpsc::Receiver<usize>,
        shards: usize,
    ) -> Option<Event> {
        let mut other = None;
        while let Ok(event) = events.try_recv() {
            match event {
                Event::MakeStream(name, answer) => add.push((name, answer)),
                Event::ForgetStream(name) => forget.push(name),
                event => {
                    other = Some(event);
                    break;
                }
            }
        }
        // A stream asked for again while being forgotten stays.
        forget.retain(|f| !add.iter().any(|(name, _)| name == f));
        let names: Vec<Box<str>> = add.iter().map(|(name, _)| name.clone()).collect();
        let (next, changes) = self
            .catalog
            .with_template_streams(&self.config, &names, &forget);
        let applied = if changes.is_empty() {
            Ok(())
        } else {
            log::info!(
                "template streams: {} ({} exist)",
                control::describe_streams(&changes, &next, &self.catalog),
                next.template_streams()
            );
            let next = Arc::new(next);
            self.catalog = next.clone();
            let update = Arc::new((next, changes));
            control::post_and_wait(board, acks, shards, control::Command::Streams(update))
        };
        for (name, answer) in add {
            let result = match (&applied, self.catalog.stream_by_name(&name)) {
                (Ok(()), Some(_)) => Ok(String::new()),
                (Err(why), _) => Err(why.clone()),
                (Ok(()), None)
                    if self.catalog.template_streams() >= crate::catalog::MAX_TEMPLATE_STREAMS =>
                {
                    Err(format!(
                        "{} template streams exist, the most there may be",
                        self.catalog.template_streams()
                    ))
                }
                (Ok(()), None) => Err("no template covers this name".to_string()),
            };
            *answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        }
        other
    }

    /// Reads the config again and applies it to every shard, or keeps the running one and
    /// says why. Either way one log line; the same text is the API's answer.
    fn reload(
        &mut self,
        board: &Board,
        acks: &mpsc::Receiver<usize>,
        shards: usize,
    ) -> Result<String, String> {
        control::sd_notify("RELOADING=1");
        let result = control::prepare_reload(&self.source, &self.config, &self.catalog).and_then(
            |(config, reloaded)| {
                let summary =
                    control::describe(&reloaded.changes, &reloaded.catalog, &self.catalog);
                let catalog = reloaded.catalog.clone();
                let applied = control::apply_everywhere(board, acks, shards, Arc::new(reloaded));
                // Posted is as good as applied: a slow shard applies it when it gets to it,
                // so the next reload starts from this config either way.
                self.grace = Duration::from_millis(config.shutdown_timeout_ms.into());
                self.config = config;
                self.catalog = catalog;
                applied.map(|()| summary)
            },
        );
        control::sd_notify("READY=1");
        match &result {
            Ok(summary) => log::info!("{summary}"),
            Err(why) => log::error!("config reload refused: {why}"),
        }
        result
    }
}

/// The browser player's scripts, from `player_assets DIR;` or else `$TESSERA_PLAYER_ASSETS`
/// (read here, before the shards start, so no shard ever reads a file).
pub(crate) fn load_player_assets(config: &Config) -> crate::player::PlayerAssets {
    let dir = config
        .player_assets
        .clone()
        .or_else(|| std::env::var(crate::player::ASSETS_ENV).ok())
        .filter(|d| !d.is_empty());
    match dir {
        Some(dir) => {
            let assets = crate::player::PlayerAssets::load(std::path::Path::new(&dir));
            let (installed, all) = (assets.installed(), crate::player::NPM_ASSETS.len());
            log::info!("player scripts: {installed} of {all} loaded from {dir}");
            assets
        }
        None => {
            log::info!(
                "player scripts not configured (player_assets DIR; or {}): /NAME/embed.html \
                 will report them missing",
                crate::player::ASSETS_ENV
            );
            Default::default()
        }
    }
}

/// The addresses each shard listens on, and the TLS setup of its TLS listeners.
#[derive(Clone)]
struct Listeners {
    tcp: Vec<(ListenerProto, SocketAddr)>,
    /// `srt` addresses and the streams' own SRT ports (UDP; each shard runs an
    /// `SrtEndpoint` on each).
    srt: Vec<(SocketAddr, srt_conn::SrtScope)>,
    /// `srt_latency`.
    srt_latency: Duration,
    /// The `webrtc` listener (shard `i` binds its port + `i`) and `webrtc_candidate`.
    webrtc: Option<webrtc_conn::Listener>,
    tls: Option<TlsSetup>,
}

/// The channel meshes every shard joins: stream events, authorization messages, and
/// on-demand pulls' demands.
struct Meshes {
    stream: MeshBuilder<StreamEvent, glommio::channels::channel_mesh::Full>,
    auth: MeshBuilder<AuthMsg, glommio::channels::channel_mesh::Full>,
    demand: on_demand::DemandMesh,
    /// Which shard asks the portal about a key (shared by every shard).
    claims: Arc<PortalClaims>,
}

async fn shard_main(
    catalog: Arc<Catalog>,
    addrs: Listeners,
    meshes: Meshes,
    (limits, caps): (HttpLimits, ConnectionCaps),
    (seed, board, fleet): (u64, Arc<Board>, Option<Arc<cluster::FleetLink>>),
    ready: mpsc::Sender<Result<usize, String>>,
) {
    let shards = meshes.stream.nr_peers();
    let joined = async {
        let stream = meshes.stream.join().await;
        let stream = stream.map_err(|e| format!("cannot join the shard mesh: {e}"))?;
        let auth = meshes.auth.join().await;
        let auth = auth.map_err(|e| format!("cannot join the auth mesh: {e}"))?;
        let demand = meshes.demand.join().await;
        let demand = demand.map_err(|e| format!("cannot join the demand mesh: {e}"))?;
        Ok::<_, String>((stream, auth, demand))
    };
    let ((senders, receivers), (auth_senders, auth_receivers), demand) = match joined.await {
        Ok(pairs) => pairs,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    let id = senders.peer_id();
    crate::logging::set_shard(id);
    // In a fleet, keyed hashes (tokens, session ids) agree across nodes.
    let auth_seed = fleet.as_ref().map_or(seed, |f| f.seed);
    let mut state = ShardState::new(id, shards, catalog.clone(), limits, auth_seed);
    state.set_connection_caps(caps);
    let state = Rc::new(RefCell::new(state));
    let bound = match bind_listeners(&addrs) {
        Ok(bound) => bound,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    let srt = match bind_srt(&addrs, seed ^ ((id as u64) << 48)) {
        Ok(srt) => srt,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    let udp = bind_rtp_udp(&addrs, id);
    let webrtc = match addrs.webrtc.as_ref().map(|l| l.bind(id)).transpose() {
        Ok(webrtc) => webrtc.map(Rc::new),
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    apply_stream_events(receivers, &state);
    let bus = AuthBus::start(auth_senders, auth_receivers, state.clone(), meshes.claims);
    if let Some(fleet) = fleet {
        cluster::join(fleet, state.clone(), &bus);
    }
    let fanout = Rc::new(Fanout::new(senders, state.clone()));
    let inputs = Rc::new(RefCell::new(OwnedInputs::new(fanout.clone())));
    start_owned_inputs(&catalog, shards, id, &inputs);
    on_demand::OnDemand::start(demand, state.clone(), inputs.clone());
    spawn_ticker(&state);
    for (proto, addr, _) in &bound {
        log::debug!("shard {id}: {} on {addr}", proto.as_str());
    }
    for endpoint in srt {
        let run = srt_conn::run_endpoint(endpoint, state.clone(), fanout.clone());
        glommio::spawn_local(run).detach();
    }
    if let Some(endpoint) = &webrtc {
        bus.set_webrtc(endpoint.clone());
        glommio::spawn_local(webrtc_conn::run_endpoint(endpoint.clone())).detach();
    }
    let _ = ready.send(Ok(id));
    let tls = Rc::new(RefCell::new(addrs.tls.clone()));
    let newcomers = Rc::new(RefCell::new(Newcomers::default()));
    for (proto, _, listener) in bound {
        let http = (bus.clone(), webrtc.clone());
        let serve = Server {
            tls: &tls,
            state: &state,
            newcomers: &newcomers,
            udp: &udp,
            fanout: &fanout,
            http: &http,
            seed,
        }
        .connection_server(proto);
        let open = ListenerOpen::begin();
        glommio::spawn_local(accept_loop(listener, proto, serve, open)).detach();
    }
    control::set_shard_board(board.clone());
    let control = ShardControl {
        board,
        state,
        inputs,
        tls,
    };
    control.serve().await;
}

/// A bound TCP listener: glommio's, which accepts through io_uring, and a second handle
/// on the same socket, which keeps it open after glommio's is gone so that a stop can take
/// what is still queued (`accept_loop`).
struct Bound {
    listener: TcpListener,
    queue: socket2::Socket,
}

/// Binds this shard's listeners (SO_REUSEPORT: every shard binds every address).
fn bind_listeners(addrs: &Listeners) -> Result<Vec<(ListenerProto, SocketAddr, Bound)>, String> {
    let mut bound = Vec::new();
    for &(proto, addr) in &addrs.tcp {
        let listener = bind_tcp(addr)
            .map_err(|e| format!("cannot listen for {} on {addr}: {e}", proto.as_str()))?;
        bound.push((proto, addr, listener));
    }
    Ok(bound)
}

/// What `glommio::net::TcpListener::bind` does (SO_REUSEPORT, a backlog of 1024), keeping a
/// duplicate of the socket.
fn bind_tcp(addr: SocketAddr) -> std::io::Result<Bound> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let queue = socket.try_clone()?;
    // SAFETY: `into_raw_fd` gives up the only owner of this descriptor (the clone is another
    // descriptor), so the listener becomes its sole owner and closes it once.
    let listener = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
    Ok(Bound { listener, queue })
}

/// Binds this shard's SRT ports (SO_REUSEPORT: every shard binds every address, and the
/// kernel sends each caller's datagrams to one shard, by a hash of their addresses).
fn bind_srt(addrs: &Listeners, seed: u64) -> Result<Vec<Rc<srt_conn::SrtEndpoint>>, String> {
    addrs
        .srt
        .iter()
        .map(|(addr, scope)| {
            srt_conn::SrtEndpoint::bind(*addr, scope.clone(), seed, addrs.srt_latency)
                .map(Rc::new)
                .map_err(|e| format!("cannot listen for srt on {addr}: {e}"))
        })
        .collect()
}

/// RTP/RTCP over UDP leave from one socket pair per shard, on the first RTSP address;
/// what clients send to it is drained.
fn bind_rtp_udp(addrs: &Listeners, shard: usize) -> Option<Rc<rtsp_conn::UdpPair>> {
    let (_, addr) = addrs
        .tcp
        .iter()
        .find(|(p, _)| p.inner() == ListenerProto::Rtsp)?;
    let pair = match rtsp_conn::UdpPair::bind(addr.ip()) {
        Ok(pair) => Rc::new(pair),
        Err(e) => {
            log::warn!("shard {shard}: no UDP ports for RTSP ({e}); RTSP over TCP only");
            return None;
        }
    };
    glommio::spawn_local(rtsp_conn::drain_udp(pair.clone(), false)).detach();
    glommio::spawn_local(rtsp_conn::drain_udp(pair.clone(), true)).detach();
    Some(pair)
}

/// Applies the stream events other shards' inputs send to this shard's views.
fn apply_stream_events(
    mut receivers: glommio::channels::channel_mesh::Receivers<StreamEvent>,
    state: &Rc<RefCell<ShardState>>,
) {
    for (peer, receiver) in receivers.streams() {
        let state = state.clone();
        glommio::spawn_local(async move {
            while let Some(event) = receiver.recv().await {
                state.borrow_mut().apply_from(peer, event);
            }
        })
        .detach();
    }
}

/// Starts the inputs of the streams this shard owns.
fn start_owned_inputs(
    catalog: &Catalog,
    shards: usize,
    shard: usize,
    inputs: &Rc<RefCell<inputs::OwnedInputs>>,
) {
    let mut inputs = inputs.borrow_mut();
    for stream in &catalog.streams {
        if catalog.owner_shard(stream.id, shards) == shard {
            inputs.start(stream);
        }
    }
}

/// The shard's housekeeping, once a second.
fn spawn_ticker(state: &Rc<RefCell<ShardState>>) {
    let state = state.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            state.borrow_mut().tick(Now::read());
        }
    })
    .detach();
}

/// A seed of its own for every connection (RTSP session ids and SSRCs, RTMP handshake
/// randomness), from the process seed, the shard and the connection's number.
fn connection_seed(seed: u64, shard: usize, accepted: u64) -> u64 {
    seed ^ ((shard as u64) << 48) ^ accepted.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A started connection task.
type ConnectionTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// What a shard's connections are served with.
struct Server<'a> {
    tls: &'a Rc<RefCell<Option<TlsSetup>>>,
    state: &'a Rc<RefCell<ShardState>>,
    newcomers: &'a Rc<RefCell<Newcomers>>,
    udp: &'a Option<Rc<rtsp_conn::UdpPair>>,
    fanout: &'a Rc<Fanout>,
    /// What HTTP connections share: the auth bus, the shard's WebRTC endpoint.
    http: &'a http_conn::Shared,
    seed: u64,
}

impl Server<'_> {
    /// What serves an accepted connection of `proto` (with the connection's number): the
    /// protocol's shell (after a TLS handshake on the TLS listeners), if the shard's caps admit
    /// it (per protocol, per client IP; a full protocol cap makes room by evicting its oldest
    /// connection that has not asked for anything yet, `admission`); otherwise HTTP gets `503`
    /// (HTTPS and RTMP/RTSP are closed at once: a 503 over TLS would need a handshake first).
    fn connection_server(
        self,
        proto: ListenerProto,
    ) -> impl FnMut(TcpStream, u64) -> ConnectionTask + 'static {
        let Server { seed, .. } = self;
        let (state, udp, fanout, http) = (
            self.state.clone(),
            self.udp.clone(),
            self.fanout.clone(),
            self.http.clone(),
        );
        let shard = state.borrow().id();
        let newcomers = self.newcomers.clone();
        let tls_setup = self.tls.clone();
        let kind = match proto.inner() {
            ListenerProto::Rtsp => ConnKind::Rtsp,
            ListenerProto::Rtmp => ConnKind::Rtmp,
            _ => ConnKind::Http,
        };
        move |stream, accepted| {
            let Ok(ip) = stream.peer_addr().map(|a| canonical_ip(a.ip())) else {
                return Box::pin(async {});
            };
            // Read per connection: a reload may have brought new certificates.
            let tls: Option<TlsAcceptor> = proto
                .is_tls()
                .then(|| tls_setup.borrow().as_ref().map(|t| t.acceptor_for(proto)))
                .flatten();
            let admission = match Admission::take(&state, &newcomers, kind, ip) {
                Ok(admission) => admission,
                Err(refusal) => {
                    log::debug!(
                        "{} connection from {ip} refused: {refusal:?}",
                        proto.as_str()
                    );
                    return match (kind, &tls) {
                        (ConnKind::Http, None) => {
                            Box::pin(http_conn::refuse(stream, state.clone()))
                        }
                        _ => Box::pin(async move { drop(stream) }),
                    };
                }
            };
            let conn_seed = connection_seed(seed, shard, accepted);
            let arrival = admission.arrival();
            let (state, udp, fanout) = (state.clone(), udp.clone(), fanout.clone());
            let task: ConnectionTask = match (proto.inner(), tls.clone()) {
                (ListenerProto::Http, tls) => {
                    http_conn::admit(stream, tls, proto.is_admin(), state, http.clone(), arrival)
                }
                (ListenerProto::Rtsp, None) => {
                    Box::pin(rtsp_conn::serve(stream, state, udp, conn_seed, arrival))
                }
                (ListenerProto::Rtmp, None) => {
                    Box::pin(rtmp_conn::serve(stream, state, fanout, conn_seed, arrival))
                }
                (inner, Some(acceptor)) => Box::pin(async move {
                    let Some(stream) = tls::handshake(&state, &acceptor, stream).await else {
                        return;
                    };
                    match inner {
                        ListenerProto::Rtsp => {
                            rtsp_conn::serve(stream, state, udp, conn_seed, arrival).await
                        }
                        _ => rtmp_conn::serve(stream, state, fanout, conn_seed, arrival).await,
                    }
                }),
                // SRT is UDP: its endpoints are not TCP listeners.
                (_, None) => Box::pin(async {}),
            };
            Box::pin(admission.run(task))
        }
    }
}

/// Accepts every connection already queued on a stopping listener, without waiting.
fn take_queued(queue: &socket2::Socket, admit: &mut impl FnMut(TcpStream)) {
    let _ = queue.set_nonblocking(true);
    while let Ok((socket, _)) = queue.accept() {
        let _ = socket.set_nonblocking(false);
        admit(TcpStream::from(socket));
    }
}

/// Raises the soft limit on open files to the hard one (connection caps are derived from
/// it) and returns the soft limit in force.
fn raise_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    /// What an unlimited (or unreadable) limit is counted as.
    const ASSUMED: u64 = 1 << 20;
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            log::warn!("cannot read the open files limit ({e}); assuming 1024");
            return 1024;
        }
    };
    let soft = if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                log::warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
                soft
            }
        }
    } else {
        soft
    };
    if soft == nix::sys::resource::RLIM_INFINITY {
        ASSUMED
    } else {
        soft
    }
}

/// Accepts connections and starts a task for each; the one accept loop of every TCP
/// listener. When the shard stops, it takes what is already queued, then closes the
/// socket: a connection left in the queue of a closed listener is reset, while a process
/// started beside this one (SO_REUSEPORT) would have taken it.
async fn accept_loop(
    bound: Bound,
    proto: ListenerProto,
    mut serve: impl FnMut(TcpStream, u64) -> ConnectionTask,
    open: ListenerOpen,
) {
    let Bound { listener, queue } = bound;
    let stop = shard_stop();
    let mut accepted: u64 = 0;
    let mut admit = |stream: TcpStream| {
        accepted += 1;
        glommio::spawn_local(serve(stream, accepted)).detach();
    };
    loop {
        // The accept stays pending across the stop (never dropped while the kernel may be
        // completing it: a connection it took would be lost with it).
        let mut next = std::pin::pin!(listener.accept());
        let stopped = async {
            stop.fired().await;
            None
        };
        let taken = futures_lite::future::or(async { Some(next.as_mut().await) }, stopped).await;
        match taken {
            Some(Ok(stream)) => {
                admit(stream);
                // Lets the connections this one displaced (`admission`) end and close
                // their descriptors before the next accept, so a flood cannot pile them up.
                futures_lite::future::yield_now().await;
            }
            Some(Err(e)) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                log::warn!("{} accept failed: {e}", proto.as_str());
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
            None => {
                // Take what is queued, then shut the socket's accepting down at once: the
                // pending accept ends (with a last connection, or an error), and whatever
                // arrives from now on goes to the other sockets of the port (a new process
                // beside this one). Linux's `net.ipv4.tcp_migrate_req = 1` moves even a
                // connection queued in between to them.
                take_queued(&queue, &mut admit);
                let _ = queue.shutdown(std::net::Shutdown::Read);
                if let Ok(stream) = next.as_mut().await {
                    admit(stream);
                }
                break;
            }
        }
    }
    take_queued(&queue, &mut admit);
    drop(listener);
    drop(queue);
    drop(open);
    log::debug!(
        "{} listener closed after {accepted} connections",
        proto.as_str()
    );
}
