//! The fleet's Redis client (issue #17): one thread per process, `tessera-cluster`, with
//! the `redis` crate's blocking client (no tokio, no runtime of its own). Shards never wait
//! on it: they send it `ToRedis` over a std channel (a send never blocks) and it leaves
//! what they must apply in a mutex-guarded inbox per shard, which each shard polls every
//! 50 ms (a glommio executor cannot be woken from a foreign thread; see `control`).
//!
//! What it does (the message formats, keys and the admit script are `auth::fleet`'s):
//! - revocations: stored in a sorted set scored by expiry and published; loaded again at
//!   every (re)connect, so a node that starts or reconnects later applies them too;
//! - session limits: every limited session this node holds is admitted by the atomic
//!   script (which publishes the evictions), refreshed by a heartbeat every
//!   `HEARTBEAT`, removed when it closes; all of them admitted again at a reconnect, so
//!   counts converge after Redis was away (meanwhile limits are node-local);
//! - the sessions view: shard 0 stores this node's sessions every `SNAPSHOT_EVERY`, and
//!   `?scope=cluster` reads every node's.
//!
//! Redis unreachable: logged once per change, `/metrics` shows `tessera_cluster_redis_up
//! 0`, reconnects with capped exponential backoff.

use crate::auth::UserEvent;
use crate::auth::fleet::{self, FleetMsg, FleetTarget, Member};
use crate::auth::revoke::{REVOKE_TTL, RevokeTarget};
use crate::auth::session::SessionId;
use crate::auth::session_limit::LimitPolicy;
use crate::auth::verdict::DenyReason;
use crate::runtime::auth_bus::AuthBus;
use crate::shard::ShardState;
use ahash::AHashMap;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a shard looks at its inbox.
const INBOX_POLL: Duration = Duration::from_millis(50);
/// How often this node refreshes its sessions' heartbeats.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A session whose heartbeat is older stops counting (its node died).
const DEAD_AFTER: Duration = Duration::from_secs(15);
/// A user's set expires this long after its last admit (refreshed by heartbeats).
const USER_SET_TTL: Duration = Duration::from_secs(60);
/// How often shard 0 stores this node's sessions, and how long they stay.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);
const SNAPSHOT_TTL: Duration = Duration::from_secs(10);
/// How long the pubsub read waits before the thread looks at its channel again.
const READ_SLICE: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Revocations kept while Redis is away, published at the reconnect.
const MAX_PENDING: usize = 10_000;
/// Limited sessions this node tracks (past it new ones count node-locally only).
const MAX_LIVE: usize = 1_000_000;
/// Revocations loaded at a (re)connect.
const MAX_LOADED: usize = 100_000;
/// How long an API call waits for the other nodes' sessions.
const LIST_TIMEOUT: Duration = Duration::from_secs(2);

/// What a shard asks of the Redis thread.
pub enum ToRedis {
    Revoke(FleetTarget),
    /// A limited session opened or closed on one of this node's shards (one event per
    /// shard holding it), from the user's owner shard.
    User {
        event: UserEvent,
        at_ms: u64,
    },
    /// This node's sessions as JSON.
    Snapshot(String),
    /// The other nodes' sessions (JSON each), into the slot.
    ListOthers(Slot),
}

/// Where the Redis thread leaves an answer for a shard (polled, like the control board).
pub type Slot = Arc<Mutex<Option<Result<Vec<(String, String)>, String>>>>;

/// What a shard applies: a revocation (`remaining` of its hour left).
struct Apply {
    target: RevokeTarget,
    reason: DenyReason,
    remaining: Duration,
}

/// The shards' side of the fleet: shared by every shard and the Redis thread.
pub struct FleetLink {
    pub node: Box<str>,
    /// The authorizer's hash seed on every node (`fleet::fleet_seed`).
    pub seed: u64,
    to_redis: mpsc::Sender<ToRedis>,
    inboxes: Vec<Mutex<Vec<Apply>>>,
    up: AtomicBool,
}

impl FleetLink {
    pub fn send(&self, msg: ToRedis) {
        // The receiver lives as long as the process; a send never blocks.
        let _ = self.to_redis.send(msg);
    }

    pub fn redis_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn deliver(&self, target: &RevokeTarget, reason: DenyReason, remaining: Duration) {
        for inbox in &self.inboxes {
            lock(inbox).push(Apply {
                target: target.clone(),
                reason,
                remaining,
            });
        }
    }

    /// Every other node's sessions (node name, JSON), or why not.
    pub async fn list_others(&self) -> Result<Vec<(String, String)>, String> {
        let slot: Slot = Arc::new(Mutex::new(None));
        self.send(ToRedis::ListOthers(slot.clone()));
        let deadline = Instant::now() + LIST_TIMEOUT;
        loop {
            if let Some(answer) = lock(&slot).take() {
                return answer;
            }
            if Instant::now() > deadline {
                return Err("redis did not answer in time".into());
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Starts the Redis thread for `config`'s cluster; `None` without a `cluster` block.
pub fn start(config: &crate::config::Config, shards: usize) -> Option<Arc<FleetLink>> {
    let cluster = config.cluster.as_ref()?;
    let node: Box<str> = cluster.node.clone().unwrap_or_else(host_name).into();
    let secret = match &config.cluster_key {
        Some(key) => key.as_str(),
        None => {
            log::warn!(
                "cluster: no cluster_key set; the fleet's hash key derives from the redis address"
            );
            cluster.redis.expose()
        }
    };
    let (tx, rx) = mpsc::channel();
    let link = Arc::new(FleetLink {
        node: node.clone(),
        seed: fleet::fleet_seed(secret),
        to_redis: tx,
        inboxes: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
        up: AtomicBool::new(false),
    });
    log::info!("cluster: node {node}, redis {}", cluster.redis);
    let thread_link = link.clone();
    let url = cluster.redis.expose().to_string();
    let spawned = std::thread::Builder::new()
        .name("tessera-cluster".into())
        .spawn(move || RedisThread::new(thread_link, rx).run(&url));
    if let Err(e) = spawned {
        log::error!("cluster: cannot start the redis thread ({e}); this node runs alone");
        return None;
    }
    Some(link)
}

/// The host name (the default node name): the kernel's, else `tessera`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| crate::config::cluster::check_node_name(h).is_ok())
        .unwrap_or_else(|| "tessera".into())
}

thread_local! {
    static SHARD_LINK: RefCell<Option<Arc<FleetLink>>> = const { RefCell::new(None) };
}

/// This shard's fleet, if the node has one.
pub fn link() -> Option<Arc<FleetLink>> {
    SHARD_LINK.with(|l| l.borrow().clone())
}

/// Joins the fleet on this shard: its inbox is applied every `INBOX_POLL`; shard 0 stores
/// the node's sessions every `SNAPSHOT_EVERY`.
pub fn join(link: Arc<FleetLink>, state: Rc<RefCell<ShardState>>, bus: &Rc<AuthBus>) {
    let me = state.borrow().id();
    SHARD_LINK.with(|l| *l.borrow_mut() = Some(link.clone()));
    if me == 0 {
        glommio::spawn_local(store_snapshots(link.clone(), bus.clone())).detach();
    }
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(INBOX_POLL).await;
            let applies = std::mem::take(&mut *lock(&link.inboxes[me]));
            if applies.is_empty() {
                continue;
            }
            let now = Instant::now();
            let mut shard = state.borrow_mut();
            for a in applies {
                // `revoke` keeps a revocation for `REVOKE_TTL` from the instant given: an
                // older instant keeps it for what is left of its hour.
                let since = now
                    .checked_sub(REVOKE_TTL.saturating_sub(a.remaining))
                    .unwrap_or(now);
                shard.revoke(&a.target, a.reason, since);
            }
        }
    })
    .detach();
}

/// Shard 0: this node's sessions, as the API lists them, stored for the other nodes.
async fn store_snapshots(link: Arc<FleetLink>, bus: Rc<AuthBus>) {
    loop {
        glommio::timer::sleep(SNAPSHOT_EVERY).await;
        let sessions = crate::runtime::operator_api::node_sessions(&bus).await;
        link.send(ToRedis::Snapshot(sessions));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A limited session this node holds.
struct Live {
    user: Box<str>,
    member: String,
    max: u32,
    policy: LimitPolicy,
    /// Shards holding it.
    holders: u32,
}

struct RedisThread {
    link: Arc<FleetLink>,
    rx: mpsc::Receiver<ToRedis>,
    live: AHashMap<SessionId, Live>,
    pending: Vec<(FleetTarget, u64)>,
    script: redis::Script,
    last_up: Option<bool>,
}

type Io<T> = redis::RedisResult<T>;

impl RedisThread {
    fn new(link: Arc<FleetLink>, rx: mpsc::Receiver<ToRedis>) -> RedisThread {
        RedisThread {
            link,
            rx,
            live: AHashMap::new(),
            pending: Vec::new(),
            script: redis::Script::new(fleet::ADMIT_SCRIPT),
            last_up: None,
        }
    }

    fn run(mut self, url: &str) {
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.connect(url) {
                Ok((conn, sub)) => {
                    backoff = BACKOFF_MIN;
                    if let Err(e) = self.serve(conn, sub) {
                        self.set_up(false, &e.to_string());
                    }
                }
                Err(e) => self.set_up(false, &e.to_string()),
            }
            if !self.offline_for(backoff) {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Logs a change of state once, and shows it to `/metrics`.
    fn set_up(&mut self, up: bool, why: &str) {
        self.link.up.store(up, Ordering::Relaxed);
        if self.last_up != Some(up) {
            if up {
                log::info!("cluster: redis connected");
            } else {
                log::warn!(
                    "cluster: redis unreachable ({why}); limits are node-local until it is back"
                );
            }
            self.last_up = Some(up);
        }
    }

    fn connect(&self, url: &str) -> Io<(redis::Connection, redis::Connection)> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        let sub = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        sub.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok((conn, sub))
    }

    /// While Redis is away: keeps the live sessions and revocations up to date for `wait`;
    /// false when every shard is gone.
    fn offline_for(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.rx.recv_timeout(left) {
                Ok(msg) => self.offline(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => return true,
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    fn offline(&mut self, msg: ToRedis) {
        match msg {
            // A stream's revocation cuts the viewers it has at that moment: sent late, it
            // would cut those who came since.
            ToRedis::Revoke(FleetTarget::Stream(name)) => {
                log::warn!(
                    "cluster: redis unreachable, the revocation of stream {name} stays on this node"
                );
            }
            ToRedis::Revoke(target) => {
                if self.pending.len() < MAX_PENDING {
                    self.pending
                        .push((target, unix_ms() + REVOKE_TTL.as_millis() as u64));
                }
            }
            ToRedis::User { event, at_ms } => {
                self.track(event, at_ms);
            }
            ToRedis::Snapshot(_) => {}
            ToRedis::ListOthers(slot) => {
                *lock(&slot) = Some(Err("redis is unreachable".into()));
            }
        }
    }

    /// Connected: catches up, then serves the shards and the channel until an error.
    fn serve(&mut self, mut conn: redis::Connection, mut sub: redis::Connection) -> Io<()> {
        let mut pubsub = sub.as_pubsub();
        pubsub.subscribe(fleet::CHANNEL)?;
        pubsub.set_read_timeout(Some(READ_SLICE))?;
        self.load_revocations(&mut conn)?;
        for (target, until) in std::mem::take(&mut self.pending) {
            self.publish_revoke(&mut conn, &target, until)?;
        }
        self.readmit_all(&mut conn)?;
        // Up once caught up: what `/metrics` shows as up has the stored revocations.
        self.set_up(true, "");
        let mut next_beat = Instant::now() + HEARTBEAT;
        loop {
            loop {
                match self.rx.try_recv() {
                    Ok(msg) => self.online(&mut conn, msg)?,
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
                }
            }
            if Instant::now() >= next_beat {
                self.heartbeat(&mut conn)?;
                next_beat = Instant::now() + HEARTBEAT;
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    if let Ok(text) = msg.get_payload::<String>() {
                        self.received(&text);
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn online(&mut self, conn: &mut redis::Connection, msg: ToRedis) -> Io<()> {
        match msg {
            ToRedis::Revoke(target) => {
                let until = unix_ms() + REVOKE_TTL.as_millis() as u64;
                self.publish_revoke(conn, &target, until)
            }
            ToRedis::User { event, at_ms } => match self.track(event, at_ms) {
                Some(Change::Admit(session)) => self.admit(conn, session),
                Some(Change::Gone { user, member }) => redis::cmd("ZREM")
                    .arg(fleet::user_key(&user))
                    .arg(member)
                    .query(conn),
                None => Ok(()),
            },
            ToRedis::Snapshot(json) => redis::pipe()
                .cmd("SET")
                .arg(fleet::sessions_key(&self.link.node))
                .arg(json)
                .arg("PX")
                .arg(SNAPSHOT_TTL.as_millis() as u64)
                .ignore()
                .cmd("SADD")
                .arg(fleet::NODES_KEY)
                .arg(&*self.link.node)
                .ignore()
                .query(conn),
            ToRedis::ListOthers(slot) => match self.others(conn) {
                Ok(list) => {
                    *lock(&slot) = Some(Ok(list));
                    Ok(())
                }
                Err(e) => {
                    *lock(&slot) = Some(Err(e.to_string()));
                    Err(e)
                }
            },
        }
    }

    /// Updates the live sessions (`at_ms`: when the owner shard heard of the event); what
    /// Redis must hear of it.
    fn track(&mut self, event: UserEvent, at_ms: u64) -> Option<Change> {
        match event {
            UserEvent::Opened {
                user,
                session,
                max,
                policy,
            } => {
                if let Some(live) = self.live.get_mut(&session) {
                    live.holders += 1;
                    return None;
                }
                if self.live.len() >= MAX_LIVE {
                    return None;
                }
                let member = Member {
                    opened_ms: at_ms,
                    node: self.link.node.clone(),
                    session,
                };
                self.live.insert(
                    session,
                    Live {
                        user,
                        member: member.encode(),
                        max: max.get(),
                        policy,
                        holders: 1,
                    },
                );
                Some(Change::Admit(session))
            }
            UserEvent::Closed { session, .. } => {
                let live = self.live.get_mut(&session)?;
                live.holders = live.holders.saturating_sub(1);
                if live.holders > 0 {
                    return None;
                }
                let live = self.live.remove(&session)?;
                Some(Change::Gone {
                    user: live.user,
                    member: live.member,
                })
            }
        }
    }

    /// Runs the admit script for one live session (its evictions are published by it).
    fn admit(&self, conn: &mut redis::Connection, session: SessionId) -> Io<()> {
        let Some(live) = self.live.get(&session) else {
            return Ok(());
        };
        let now = unix_ms();
        let policy = match live.policy {
            LimitPolicy::CloseOldest => "close_oldest",
            LimitPolicy::RefuseNew => "refuse_new",
        };
        let evicted: Vec<String> = self
            .script
            .key(fleet::user_key(&live.user))
            .arg(now)
            .arg(now.saturating_sub(DEAD_AFTER.as_millis() as u64))
            .arg(live.max)
            .arg(policy)
            .arg(&live.member)
            .arg(fleet::CHANNEL)
            .arg(USER_SET_TTL.as_millis() as u64)
            .invoke(conn)?;
        if !evicted.is_empty() {
            log::info!(
                "cluster: session limit of a user evicts {} session(s)",
                evicted.len()
            );
        }
        Ok(())
    }

    /// After a reconnect: every live session admitted again, oldest first, so the counts
    /// converge (evictions included).
    fn readmit_all(&self, conn: &mut redis::Connection) -> Io<()> {
        let mut order: Vec<(&String, SessionId)> =
            self.live.iter().map(|(id, l)| (&l.member, *id)).collect();
        order.sort_by(|a, b| a.0.cmp(b.0));
        for (_, session) in order {
            self.admit(conn, session)?;
        }
        Ok(())
    }

    /// Refreshes the heartbeat of every live session (one pipeline).
    fn heartbeat(&self, conn: &mut redis::Connection) -> Io<()> {
        if self.live.is_empty() {
            return Ok(());
        }
        let now = unix_ms();
        let mut pipe = redis::pipe();
        for live in self.live.values() {
            let key = fleet::user_key(&live.user);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg("XX")
                .arg(now)
                .arg(&live.member)
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(USER_SET_TTL.as_millis() as u64)
                .ignore();
        }
        pipe.query(conn)
    }

    fn publish_revoke(
        &self,
        conn: &mut redis::Connection,
        target: &FleetTarget,
        until_ms: u64,
    ) -> Io<()> {
        let msg = FleetMsg::Revoke {
            origin: self.link.node.clone(),
            until_ms,
            target: target.clone(),
        };
        let mut pipe = redis::pipe();
        // A stream's revocation applies to the viewers of the moment: published, not stored
        // (a node loading it later would cut viewers who came after it).
        if !matches!(target, FleetTarget::Stream(_)) {
            pipe.cmd("ZADD")
                .arg(fleet::REVOCATIONS_KEY)
                .arg(until_ms)
                .arg(target.encode())
                .ignore();
        }
        pipe.cmd("PUBLISH")
            .arg(fleet::CHANNEL)
            .arg(msg.encode())
            .ignore()
            .query(conn)
    }

    /// Every stored revocation still in force, applied here (expired ones dropped).
    fn load_revocations(&self, conn: &mut redis::Connection) -> Io<()> {
        let now = unix_ms();
        let stored: Vec<(String, u64)> = redis::pipe()
            .cmd("ZREMRANGEBYSCORE")
            .arg(fleet::REVOCATIONS_KEY)
            .arg("-inf")
            .arg(now)
            .ignore()
            .cmd("ZRANGEBYSCORE")
            .arg(fleet::REVOCATIONS_KEY)
            .arg(now)
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(MAX_LOADED)
            .query::<(Vec<(String, u64)>,)>(conn)?
            .0;
        let mut applied = 0;
        for (member, until) in stored {
            if let Some(target) = FleetTarget::decode(&member) {
                self.apply_revoke(&target, until, now);
                applied += 1;
            }
        }
        if applied > 0 {
            log::info!("cluster: {applied} stored revocation(s) applied");
        }
        Ok(())
    }

    fn apply_revoke(&self, target: &FleetTarget, until_ms: u64, now_ms: u64) {
        let remaining = Duration::from_millis(until_ms.saturating_sub(now_ms)).min(REVOKE_TTL);
        if !remaining.is_zero() {
            let reason = DenyReason::SessionRevoked;
            self.link.deliver(&target.to_revoke(), reason, remaining);
        }
    }

    /// A message on the fleet's channel.
    fn received(&self, text: &str) {
        match FleetMsg::decode(text) {
            Some(FleetMsg::Revoke {
                origin,
                until_ms,
                target,
            }) if origin != self.link.node => self.apply_revoke(&target, until_ms, unix_ms()),
            Some(FleetMsg::Evict(member)) if member.node == self.link.node => {
                log::info!("cluster: session limit closes session {}", member.session);
                self.link.deliver(
                    &RevokeTarget::Session(member.session),
                    DenyReason::SessionLimit,
                    REVOKE_TTL,
                );
            }
            Some(_) => {}
            None => log::debug!("cluster: ignored a malformed message"),
        }
    }

    /// Every other node's stored sessions.
    fn others(&self, conn: &mut redis::Connection) -> Io<Vec<(String, String)>> {
        let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(fleet::NODES_KEY).query(conn)?;
        let others: Vec<String> = nodes
            .into_iter()
            .filter(|n| **n != *self.link.node)
            .collect();
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = others.iter().map(|n| fleet::sessions_key(n)).collect();
        let lists: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query(conn)?;
        Ok(others
            .into_iter()
            .zip(lists)
            .filter_map(|(node, list)| Some((node, list?)))
            .collect())
    }
}

enum Change {
    Admit(SessionId),
    Gone { user: Box<str>, member: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread() -> RedisThread {
        let (tx, rx) = mpsc::channel();
        let link = Arc::new(FleetLink {
            node: "n1".into(),
            seed: 1,
            to_redis: tx,
            inboxes: vec![Mutex::new(Vec::new())],
            up: AtomicBool::new(false),
        });
        RedisThread::new(link, rx)
    }

    fn opened(session: SessionId) -> UserEvent {
        UserEvent::Opened {
            user: "bob".into(),
            session,
            max: std::num::NonZeroU32::MIN,
            policy: LimitPolicy::CloseOldest,
        }
    }

    fn closed(session: SessionId) -> UserEvent {
        UserEvent::Closed {
            user: "bob".into(),
            session,
        }
    }

    #[test]
    fn a_session_held_by_two_shards_is_admitted_once_and_leaves_with_the_last() {
        let mut t = thread();
        let id = SessionId::from_random([3; 16]);
        assert!(matches!(t.track(opened(id), 1), Some(Change::Admit(s)) if s == id));
        assert!(t.track(opened(id), 1).is_none());
        assert!(t.track(closed(id), 2).is_none());
        let Some(Change::Gone { user, member }) = t.track(closed(id), 2) else {
            panic!("the last close is news for Redis");
        };
        assert_eq!(&*user, "bob");
        assert_eq!(Member::decode(&member).map(|m| m.session), Some(id));
        assert!(t.track(closed(id), 2).is_none());
    }

    #[test]
    fn evictions_apply_on_their_node_and_revocations_on_the_others() {
        let t = thread();
        let id = SessionId::from_random([4; 16]);
        let evict = |node: &str| {
            FleetMsg::Evict(Member {
                opened_ms: 1,
                node: node.into(),
                session: id,
            })
            .encode()
        };
        t.received(&evict("n2"));
        t.received(&format!("revoke n1 {} u:bob", u64::MAX));
        t.received("garbage");
        assert!(lock(&t.link.inboxes[0]).is_empty());
        t.received(&evict("n1"));
        t.received(&format!("revoke n2 {} u:bob", unix_ms() + 60_000));
        let inbox = std::mem::take(&mut *lock(&t.link.inboxes[0]));
        assert_eq!(inbox.len(), 2);
        assert_eq!(inbox[0].target, RevokeTarget::Session(id));
        assert_eq!(inbox[0].reason, DenyReason::SessionLimit);
        assert_eq!(inbox[1].target, RevokeTarget::User("bob".into()));
        assert!(inbox[1].remaining <= Duration::from_secs(60));
        // An expired revocation is not applied.
        t.received("revoke n2 1 u:bob");
        assert!(lock(&t.link.inboxes[0]).is_empty());
    }
}
