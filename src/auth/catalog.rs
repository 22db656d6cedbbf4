//! `AuthCatalog`: what the authorizer knows of the configuration, compiled once from it and
//! shared read-only by every shard (inside the `Catalog`, which reads as one): the policies
//! (`auth_backend` blocks), the portal backends they ask, and for every stream its name (for
//! log lines and revocations by name) and the policies of its plays and publishes.
//!
//! Never does: media, inputs or anything else about a stream (the `Catalog` holds those).

use crate::auth::policy::Policy;
use crate::config::{BackendUrl, Config, OnPlay};
use crate::stream::StreamId;
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

/// Index of a policy in `AuthCatalog::policies`.
pub type PolicyId = u32;

/// What the authorizer knows of one stream.
#[derive(Debug)]
pub struct StreamAuth {
    pub id: StreamId,
    pub name: Box<str>,
    /// The policy that authorizes play requests; `None` means the stream is open.
    pub on_play: Option<PolicyId>,
    /// The policy that authorizes publishers (`publish://` streams); `None`: any publisher.
    pub on_publish: Option<PolicyId>,
}

#[derive(Debug)]
pub struct AuthCatalog {
    pub policies: Vec<Policy>,
    pub backends: Vec<PortalBackend>,
    /// By `StreamId`: the config's streams in order.
    streams: Vec<StreamAuth>,
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

impl AuthCatalog {
    /// Compiles a validated config. The parser has already rejected dangling references; one
    /// that slipped through anyway leaves the stream closed (every request denied), never open.
    pub fn from_config(config: &Config) -> AuthCatalog {
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
        let streams: Vec<StreamAuth> = config
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| StreamAuth {
                id: i as StreamId,
                name: s.name.as_str().into(),
                on_play: s.on_play.as_ref().map(|p| match p {
                    OnPlay::Auth { backend } => policy_id(backend),
                }),
                on_publish: s.on_publish.as_ref().map(|p| match p {
                    OnPlay::Auth { backend } => policy_id(backend),
                }),
            })
            .collect();
        let by_name = streams.iter().map(|s| (s.name.clone(), s.id)).collect();
        AuthCatalog {
            policies,
            backends,
            streams,
            by_name,
        }
    }

    pub fn stream_by_name(&self, name: &str) -> Option<&StreamAuth> {
        self.by_name
            .get(name)
            .and_then(|&id| self.streams.get(id as usize))
    }

    pub fn stream(&self, id: StreamId) -> Option<&StreamAuth> {
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
}
