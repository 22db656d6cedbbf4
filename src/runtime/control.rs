//! Control of the running shards from the main thread: a reload (SIGHUP or the API) and
//! the graceful stop (SIGTERM/SIGINT).
//!
//! The main thread checks a new config in full (`prepare_reload`) before any shard sees
//! it, then posts one `Command` per shard on the `Board`; each shard's control task
//! (`serve`) picks it up, applies it to what the shard owns (its state, its inputs, its TLS
//! acceptors) and acknowledges. The board is polled every 50 ms: a glommio executor cannot
//! be woken by a std channel from a foreign thread, and a poll that finds nothing costs one
//! uncontended lock, while 50 ms is well inside "within a second".

use crate::catalog::{Catalog, Changes};
use crate::config::{Config, Listener};
use crate::runtime::inputs::OwnedInputs;
use crate::runtime::stop_signal::{open_listeners, shard_stop};
use crate::runtime::tls::TlsSetup;
use crate::shard::{ConnKind, ShardState};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How often a shard looks at the board.
const POLL: Duration = Duration::from_millis(50);
/// How long a stopping shard waits for its accept loops to close their listeners (they
/// need one turn of the executor).
const LISTENERS_CLOSE: Duration = Duration::from_secs(1);
/// How often a shard looks whether the main thread answered it.
const STREAM_POLL: Duration = Duration::from_millis(20);
/// How long a request waits for its template stream to be made.
const MAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the main thread waits for every shard to apply a reload.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// `shutdown_timeout` unless the config says otherwise: how long a stop lets connections
/// finish.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What a shard is told to do.
#[derive(Clone)]
pub enum Command {
    Reload(Arc<Reloaded>),
    /// Template streams made or forgotten: the catalog changes, nothing else.
    Streams(Arc<(Arc<Catalog>, Changes)>),
    /// Stop accepting, end every viewer with its protocol's goodbye, let what is in flight
    /// finish within `grace`, close every session.
    Stop {
        grace: Duration,
    },
}

/// A checked config, compiled, with what changed.
pub struct Reloaded {
    pub catalog: Arc<Catalog>,
    pub changes: Changes,
    pub tls: Option<TlsSetup>,
    pub handshake_timeout: Duration,
    pub max_connections_per_ip: u32,
}

/// What reaches the main thread: signals, and the API's reload requests.
pub enum Event {
    Signal(i32),
    /// `POST /streamer/api/v3/config/reload`: the answer goes in the slot.
    ApiReload(Answer),
    /// A request under a template's prefix was authorized: make its stream on every shard
    /// (`Catalog::with_template_streams`); the answer goes in the slot once every shard
    /// has it, or says why not.
    MakeStream(Box<str>, Answer),
    /// The owner shard of a template stream found no viewer for its `clients_timeout`.
    ForgetStream(Box<str>),
    /// Every shard's executor ended (`failed` of them with an error).
    ShardsEnded {
        failed: usize,
    },
}

/// Where the main thread answers a shard's request (polled by the shard).
pub type Answer = Arc<Mutex<Option<Result<String, String>>>>;

/// The main thread's posts to the shards, and the shards' way back.
pub struct Board {
    commands: Vec<Mutex<Vec<Command>>>,
    acks: Mutex<mpsc::Sender<usize>>,
    events: Mutex<mpsc::Sender<Event>>,
}

impl Board {
    pub fn new(shards: usize, acks: mpsc::Sender<usize>, events: mpsc::Sender<Event>) -> Board {
        Board {
            commands: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            acks: Mutex::new(acks),
            events: Mutex::new(events),
        }
    }

    /// Posts `command` to every shard.
    pub fn post(&self, command: &Command) {
        for queue in &self.commands {
            lock(queue).push(command.clone());
        }
    }

    fn take(&self, shard: usize) -> Vec<Command> {
        std::mem::take(&mut *lock(&self.commands[shard]))
    }

    fn ack(&self, shard: usize) {
        let _ = lock(&self.acks).send(shard);
    }

    /// Asks the main thread to reload (the API); the answer is polled, not awaited on a
    /// channel a shard cannot wait on.
    pub async fn request_reload(&self) -> Result<String, String> {
        self.ask(Event::ApiReload, APPLY_TIMEOUT * 2).await
    }

    /// Asks the main thread for a template's stream (see `Event::MakeStream`).
    pub async fn request_stream(&self, name: &str) -> Result<String, String> {
        let name: Box<str> = name.into();
        self.ask(|slot| Event::MakeStream(name, slot), MAKE_TIMEOUT)
            .await
    }

    /// Tells the main thread a template stream may be forgotten.
    pub fn forget_stream(&self, name: &str) {
        let _ = lock(&self.events).send(Event::ForgetStream(name.into()));
    }

    /// Sends the event `event_of` makes with a fresh answer slot and polls the slot.
    async fn ask(
        &self,
        event_of: impl FnOnce(Answer) -> Event,
        timeout: Duration,
    ) -> Result<String, String> {
        let slot = Arc::new(Mutex::new(None));
        if lock(&self.events).send(event_of(slot.clone())).is_err() {
            return Err("the server is stopping".into());
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(answer) = lock(&slot).take() {
                return answer;
            }
            if Instant::now() > deadline {
                return Err("the main thread did not answer in time".into());
            }
            glommio::timer::sleep(STREAM_POLL).await;
        }
    }
}

thread_local! {
    /// The board of the shard running on this thread (set once at its start).
    static SHARD_BOARD: std::cell::RefCell<Option<Arc<Board>>> = const { std::cell::RefCell::new(None) };
}

/// Makes `board` this shard's (its API calls reach the main thread through it).
pub fn set_shard_board(board: Arc<Board>) {
    SHARD_BOARD.with(|b| *b.borrow_mut() = Some(board));
}

/// The API's reload, from a shard: the main thread reloads, and its answer comes back.
pub async fn request_reload() -> Result<String, String> {
    let Some(board) = SHARD_BOARD.with(|b| b.borrow().clone()) else {
        return Err("reload is not available here".into());
    };
    board.request_reload().await
}

/// From a shard: the template stream `name` made on every shard (see `Event::MakeStream`).
pub async fn request_stream(name: &str) -> Result<String, String> {
    let Some(board) = SHARD_BOARD.with(|b| b.borrow().clone()) else {
        return Err("template streams are not available here".into());
    };
    board.request_stream(name).await
}

/// From a shard: the template stream `name` has had no viewer for its `clients_timeout`.
pub fn forget_stream(name: &str) {
    if let Some(board) = SHARD_BOARD.with(|b| b.borrow().clone()) {
        board.forget_stream(name);
    }
}

/// A lock that a panicked holder does not poison for the others (the data is a queue).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the running config came from, to read it again.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    File(PathBuf),
    Embedded,
}

impl ConfigSource {
    pub fn name(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Embedded => "<embedded config/tessera.conf>".into(),
        }
    }

    /// Reads and checks the config; errors as the checker prints them (file:line:col).
    pub fn load(&self) -> Result<Config, String> {
        let loaded = match self {
            ConfigSource::File(path) => crate::config::load_file(path),
            ConfigSource::Embedded => {
                crate::config::parse(crate::config::DEFAULT_CONFIG, &self.name())
            }
        };
        loaded.map_err(|errors| errors.to_string())
    }

    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ConfigSource::File(p) => Some(p),
            ConfigSource::Embedded => None,
        }
    }
}

/// Reads the config again and checks all of it (certificates included) against the running
/// one: the reload to post, or why the running config stays.
pub fn prepare_reload(
    source: &ConfigSource,
    running: &Config,
    catalog: &Catalog,
) -> Result<(Config, Reloaded), String> {
    let config = source.load()?;
    let tls = crate::runtime::tls::load(&config, source.path(), &source.name())
        .map_err(|e| e.to_string())?;
    fixed_settings_unchanged(running, &config)?;
    let (mut next, changes) = catalog.reloaded(&config);
    next.player = crate::runtime::load_player_assets(&config);
    let reloaded = Reloaded {
        catalog: Arc::new(next),
        changes,
        tls,
        handshake_timeout: Duration::from_millis(config.handshake_timeout_ms.into()),
        max_connections_per_ip: config.max_connections_per_ip,
    };
    Ok((config, reloaded))
}

/// Listeners (and SRT's latency, a property of its listening endpoints) are bound at start:
/// a reload that changes them is refused as a whole, saying what differs, rather than
/// half-applied.
fn fixed_settings_unchanged(running: &Config, new: &Config) -> Result<(), String> {
    let added = listeners_only_in(&new.listeners, &running.listeners);
    let removed = listeners_only_in(&running.listeners, &new.listeners);
    let mut differs = Vec::new();
    if !added.is_empty() {
        differs.push(format!("listeners added: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        differs.push(format!("listeners removed: {}", removed.join(", ")));
    }
    if running.srt_latency_ms != new.srt_latency_ms {
        differs.push(format!(
            "srt_latency {} -> {}",
            running.srt_latency_ms, new.srt_latency_ms
        ));
    }
    // The fleet's Redis thread and hash seed are set up at start.
    if (&running.cluster, &running.cluster_key) != (&new.cluster, &new.cluster_key) {
        differs.push("cluster or cluster_key changed".into());
    }
    if differs.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}: the running configuration is kept (listeners are bound at start: restart, or \
         start a new process beside this one and stop this one)",
        differs.join("; ")
    ))
}

/// The listeners of `these` that `others` lacks (by protocol and address), as written.
fn listeners_only_in(these: &[Listener], others: &[Listener]) -> Vec<String> {
    these
        .iter()
        .filter(|l| {
            !others
                .iter()
                .any(|o| (o.proto, o.addr) == (l.proto, l.addr))
        })
        .map(|l| format!("{} {}", l.proto, l.addr))
        .collect()
}

/// One line saying what a reload changed.
pub fn describe(changes: &Changes, catalog: &Catalog, old: &Catalog) -> String {
    let names = stream_names;
    if changes.is_empty() {
        return "config reloaded: nothing changed".into();
    }
    let mut parts = Vec::new();
    let mut part = |what: &str, list: String| {
        if !list.is_empty() {
            parts.push(format!("{what} [{list}]"));
        }
    };
    part("streams added", names(&changes.added, catalog));
    part("removed", names(&changes.removed, old));
    part("restarted", names(&changes.restarted, catalog));
    part("re-authorized", names(&changes.reauthorized, catalog));
    part(
        "auth backends changed",
        changes
            .backends
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    format!("config reloaded: {}", parts.join("; "))
}

/// The names of streams `ids` in `c`, comma-separated.
fn stream_names(ids: &[u32], c: &Catalog) -> String {
    ids.iter()
        .filter_map(|&id| c.stream(id).map(|s| s.name.to_string()))
        .collect::<Vec<_>>()
        .join(",")
}

/// What a template stream update changed: the streams made and forgotten, by name.
pub fn describe_streams(changes: &Changes, catalog: &Catalog, old: &Catalog) -> String {
    let names = stream_names;
    format!(
        "made [{}], forgotten [{}]",
        names(&changes.added, catalog),
        names(&changes.removed, old)
    )
}

/// Posts `reloaded` to every shard and waits until each applied it.
pub fn apply_everywhere(
    board: &Board,
    acks: &mpsc::Receiver<usize>,
    shards: usize,
    reloaded: Arc<Reloaded>,
) -> Result<(), String> {
    post_and_wait(board, acks, shards, Command::Reload(reloaded))
}

/// Posts `command` to every shard and waits until each applied it.
pub fn post_and_wait(
    board: &Board,
    acks: &mpsc::Receiver<usize>,
    shards: usize,
    command: Command,
) -> Result<(), String> {
    while acks.try_recv().is_ok() {}
    board.post(&command);
    for _ in 0..shards {
        acks.recv_timeout(APPLY_TIMEOUT)
            .map_err(|_| "a shard did not apply the reload in time".to_string())?;
    }
    Ok(())
}

/// What a shard's control task works on.
pub struct ShardControl {
    pub board: Arc<Board>,
    pub state: Rc<RefCell<ShardState>>,
    pub inputs: Rc<RefCell<OwnedInputs>>,
    pub tls: Rc<RefCell<Option<TlsSetup>>>,
}

impl ShardControl {
    /// Serves the board until a stop is done.
    pub async fn serve(mut self) {
        let shard = self.state.borrow().id();
        loop {
            glommio::timer::sleep(POLL).await;
            for command in self.board.take(shard) {
                match command {
                    Command::Reload(reloaded) => self.reload(&reloaded),
                    Command::Streams(update) => self.apply_catalog(&update.0, &update.1),
                    Command::Stop { grace } => {
                        self.stop(grace).await;
                        self.board.ack(shard);
                        return;
                    }
                }
                self.board.ack(shard);
            }
        }
    }

    fn reload(&mut self, reloaded: &Reloaded) {
        {
            let mut state = self.state.borrow_mut();
            state.set_handshake_timeout(reloaded.handshake_timeout);
            state.set_connections_per_ip(reloaded.max_connections_per_ip);
        }
        *self.tls.borrow_mut() = reloaded.tls.clone();
        self.apply_catalog(&reloaded.catalog, &reloaded.changes);
    }

    /// The shard's state takes `catalog`, and its inputs follow `changes`.
    fn apply_catalog(&mut self, catalog: &Arc<Catalog>, changes: &Changes) {
        let (shard, shards) = {
            let mut state = self.state.borrow_mut();
            state.reload(catalog.clone(), changes);
            (state.id(), state.shards())
        };
        let mut inputs = self.inputs.borrow_mut();
        for &id in changes.removed.iter().chain(&changes.restarted) {
            inputs.stop(id);
        }
        // A restarted input continues the stopped one's timeline, one generation on.
        for &id in changes.restarted.iter().chain(&changes.added) {
            if let Some(spec) = catalog.stream(id)
                && catalog.owner_shard(id, shards) == shard
            {
                inputs.start(spec);
            }
        }
    }

    /// The graceful stop of this shard: listeners close (each accept loop drains its queue
    /// first), viewers get their protocol's goodbye and idle connections close (the shard's
    /// stop signal), inputs end, what is in flight gets until `grace`, then every session
    /// still open is closed.
    async fn stop(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        shard_stop().fire();
        self.inputs.borrow_mut().stop_all();
        self.wait_for_listeners_to_close().await;
        while Instant::now() < deadline && self.open_connections() > 0 {
            glommio::timer::sleep(POLL).await;
        }
        let left = self.open_connections();
        let mut state = self.state.borrow_mut();
        let closed = state.close_all_sessions(Instant::now());
        log::info!(
            "shard stopped: {closed} sessions closed, {left} connections still open at the end \
             of the grace"
        );
    }

    /// Waits until every accept loop has taken what its listener queued and closed it;
    /// each connection it took is counted open from then on. Not bounded by the grace (a
    /// zero grace still serves what was accepted), only by `LISTENERS_CLOSE`.
    async fn wait_for_listeners_to_close(&self) {
        let limit = Instant::now() + LISTENERS_CLOSE;
        while open_listeners() > 0 {
            if Instant::now() >= limit {
                log::warn!(
                    "{} listeners still open {} ms after the stop",
                    open_listeners(),
                    LISTENERS_CLOSE.as_millis()
                );
                return;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }

    fn open_connections(&self) -> usize {
        let state = self.state.borrow();
        [ConnKind::Http, ConnKind::Rtmp, ConnKind::Rtsp]
            .into_iter()
            .map(|k| state.open_connections(k))
            .sum()
    }
}

/// Tells systemd (`Type=notify`) how the service is, when it runs under it.
pub fn sd_notify(status: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot notify systemd: {e}");
            return;
        }
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let sent = match bytes.strip_prefix(b"@") {
        // An abstract socket: its name follows the '@'.
        Some(name) => <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)
            .and_then(|addr| socket.send_to_addr(status.as_bytes(), &addr)),
        None => socket.send_to(status.as_bytes(), &path),
    };
    if let Err(e) = sent {
        log::warn!("cannot notify systemd ({status}): {e}");
    }
}
