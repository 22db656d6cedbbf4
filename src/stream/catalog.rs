//! The `Catalog`: the configured streams and auth policies, compiled once from the config
//! and shared read-only by every shard (an `Arc`, never mutated; a reload builds a new one).
//! The one exception is each `publish://` stream's `PublishSlot`, an atomic claim (see there).

use crate::auth::policy::Policy;
use crate::config::BackendUrl;
use crate::config::{Config, InputUrl, OnPlay};
use crate::stream::StreamId;
use crate::stream::publish_slot::PublishSlot;
use ahash::AHashMap;
use std::time::Duration;

/// A portal backend (`backend http://...;`) as every shard's client sees it. Indexed by
/// `Policy::backends`; each shard keeps its own connection pool and circuit breaker per entry.
#[derive(Debug)]
pub struct PortalBackend {
    pub url: BackendUrl,
    /// Resolved once when the catalog is built (on the main thread: name lookups block);
    /// `None` when the name did not resolve, and every request to it fails.
    pub addr: Option<std::net::SocketAddr>,
    /// The request deadline (connect included): the block's `backend_timeout`, else the
    /// top-level one, else 3 s.
    pub timeout: Duration,
}

/// Index of a policy in `Catalog::policies`.
pub type PolicyId = u32;

#[derive(Debug)]
pub struct StreamSpec {
    pub id: StreamId,
    pub name: Box<str>,
    pub input: InputUrl,
    /// The policy that authorizes play requests; `None` means the stream is open.
    pub on_play: Option<PolicyId>,
    /// The policy that authorizes publishers (`publish://` streams); `None`: any publisher.
    pub on_publish: Option<PolicyId>,
    /// Who publishes right now, for `publish://` streams (see `PublishSlot`).
    pub publish: Option<PublishSlot>,
    pub segment_duration_ms: u32,
}

#[derive(Debug)]
pub struct Catalog {
    pub streams: Vec<StreamSpec>,
    pub policies: Vec<Policy>,
    pub backends: Vec<PortalBackend>,
    /// The operator API's Bearer key (`api_key`); `None` refuses every API call.
    pub api_key: Option<Box<str>>,
    /// The query parameter that carries tokens (`auth_token`, default `token`).
    pub token_param: Box<str>,
    /// The browser player's scripts (`/_player/`); empty until the runtime loads them.
    pub player: crate::player::PlayerAssets,
    by_name: AHashMap<Box<str>, StreamId>,
}

/// The backend's address: its IP literal, or its name looked up now.
fn resolve(url: &BackendUrl) -> Option<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    if let Some(ip) = url.ip() {
        return Some(std::net::SocketAddr::new(ip, url.port()));
    }
    match (url.host(), url.port()).to_socket_addrs() {
        Ok(mut addrs) => addrs.next(),
        Err(e) => {
            log::error!("backend {url}: cannot resolve {}: {e}", url.host());
            None
        }
    }
}

impl Catalog {
    /// Compiles a validated config. The parser has already rejected dangling references; one
    /// that slipped through anyway leaves the stream closed (every request denied), never open.
    pub fn from_config(config: &Config) -> Catalog {
        let mut backends = Vec::new();
        let policies: Vec<Policy> = config
            .auth_backends
            .iter()
            .map(|b| {
                let timeout_ms = b
                    .rules
                    .backend_timeout_ms
                    .unwrap_or(config.backend_timeout_ms);
                let mut ids = Vec::new();
                for url in &b.rules.backends {
                    // The parser accepted only URLs this parse accepts.
                    match BackendUrl::parse(url) {
                        Ok(url) => {
                            ids.push(backends.len() as u32);
                            let addr = resolve(&url);
                            backends.push(PortalBackend {
                                url,
                                addr,
                                timeout: Duration::from_millis(u64::from(timeout_ms)),
                            });
                        }
                        Err(e) => log::error!("auth_backend {}: backend skipped: {e}", b.name),
                    }
                }
                Policy::compile(b, ids)
            })
            .collect();
        let policy_id = |name: &str| -> PolicyId {
            config
                .auth_backends
                .iter()
                .position(|b| b.name == name)
                .map_or(u32::MAX, |i| i as PolicyId)
        };
        let streams: Vec<StreamSpec> = config
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| StreamSpec {
                id: i as StreamId,
                name: s.name.as_str().into(),
                input: s.input.clone(),
                on_play: s.on_play.as_ref().map(|p| match p {
                    OnPlay::Auth { backend } => policy_id(backend),
                }),
                on_publish: s.on_publish.as_ref().map(|p| match p {
                    OnPlay::Auth { backend } => policy_id(backend),
                }),
                publish: (s.input == InputUrl::Publish).then(PublishSlot::new),
                segment_duration_ms: s.segment_duration_ms,
            })
            .collect();
        let by_name = streams.iter().map(|s| (s.name.clone(), s.id)).collect();
        Catalog {
            streams,
            policies,
            backends,
            api_key: config.api_key.as_deref().map(Into::into),
            token_param: config.auth_token_param.as_str().into(),
            player: Default::default(),
            by_name,
        }
    }

    pub fn stream_by_name(&self, name: &str) -> Option<&StreamSpec> {
        self.by_name
            .get(name)
            .and_then(|&id| self.streams.get(id as usize))
    }

    pub fn stream(&self, id: StreamId) -> Option<&StreamSpec> {
        self.streams.get(id as usize)
    }

    /// The longest request deadline of any portal backend.
    pub fn max_backend_timeout(&self) -> Duration {
        self.backends
            .iter()
            .map(|b| b.timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// The shard that owns a key of a cross-shard table (portal lookups by decision key,
    /// user sessions by user): keys are hashed with process-wide seeds, so every shard agrees.
    pub fn owner_of(key: u64, shards: usize) -> usize {
        (key % shards.max(1) as u64) as usize
    }

    /// The shard that runs a stream's input: a stable function of the name, so every shard
    /// agrees without asking.
    pub fn owner_shard(&self, id: StreamId, shards: usize) -> usize {
        let name = self.streams.get(id as usize).map_or("", |s| &s.name);
        // FNV-1a: stable across processes, unlike the randomly keyed hashers.
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        (h % shards.max(1) as u64) as usize
    }
}
