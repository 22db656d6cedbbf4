//! `AuthCatalog`: what the authorizer knows of the configuration, compiled once from it and
//! shared read-only by every shard (inside the `Catalog`, which reads as one): the policies
//! (`auth_backend` blocks), the portal backends they ask, and for every stream its name (for
//! log lines and revocations by name) and the policies of its plays and publishes.
//!
//! Never does: media, inputs or anything else about a stream (the `Catalog` holds those).

use crate::auth::policy::Policy;
use crate::config::{BackendUrl, Config, OnPlay, Rules};
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
    /// What each policy was compiled from (its block's name and rules, positions cleared,
    /// the effective backend timeout filled in), by `PolicyId`: what a reload compares.
    sources: Vec<(Box<str>, Rules)>,
    /// The config's streams, in order.
    streams: Vec<StreamAuth>,
    /// Position in `streams` by `StreamId` (ids are stable across reloads, not positions).
    by_id: AHashMap<StreamId, u32>,
    by_name: AHashMap<Box<str>, StreamId>,
}

/// Ids for a config's streams in order, as a first start gives them (tests).
#[cfg(test)]
pub(crate) fn in_order(config: &Config) -> Vec<StreamId> {
    (0..config.streams.len() as StreamId).collect()
}

/// Each `auth_backend`'s name and rules as compiled, positions cleared and the effective
/// backend timeout filled in, so that two configs compare by what they mean.
fn policy_sources(config: &Config) -> Vec<(Box<str>, Rules)> {
    config
        .auth_backends
        .iter()
        .map(|b| {
            let mut rules = b.rules.clone();
            rules.backend_timeout_ms = Some(
                b.rules
                    .backend_timeout_ms
                    .unwrap_or(config.backend_timeout_ms),
            );
            for key in &mut rules.signed_keys {
                key.span = Default::default();
            }
            (b.name.as_str().into(), rules)
        })
        .collect()
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
    /// Compiles a validated config, `ids[i]` being the id of its `i`th stream. The parser
    /// has already rejected dangling references; one that slipped through anyway leaves the
    /// stream closed (every request denied), never open.
    pub fn from_config(config: &Config, ids: &[StreamId]) -> AuthCatalog {
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
            .zip(ids)
            .map(|(s, &id)| StreamAuth {
                id,
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
        let by_id = streams
            .iter()
            .enumerate()
            .map(|(at, s)| (s.id, at as u32))
            .collect();
        AuthCatalog {
            policies,
            backends,
            sources: policy_sources(config),
            streams,
            by_id,
            by_name,
        }
    }

    pub fn stream_by_name(&self, name: &str) -> Option<&StreamAuth> {
        self.by_name.get(name).and_then(|&id| self.stream(id))
    }

    pub fn stream(&self, id: StreamId) -> Option<&StreamAuth> {
        let &at = self.by_id.get(&id)?;
        self.streams.get(at as usize)
    }

    /// The `auth_backend` names added, removed or changed in `new`.
    pub fn changed_policies(&self, new: &AuthCatalog) -> Vec<Box<str>> {
        let named = |c: &AuthCatalog, name: &str| c.sources.iter().position(|(n, _)| **n == *name);
        let mut changed: Vec<Box<str>> = self
            .sources
            .iter()
            .filter(|(name, rules)| named(new, name).is_none_or(|at| new.sources[at].1 != *rules))
            .map(|(name, _)| name.clone())
            .collect();
        changed.extend(
            new.sources
                .iter()
                .filter(|(name, _)| named(self, name).is_none())
                .map(|(name, _)| name.clone()),
        );
        changed
    }

    /// Whether stream `id` is authorized alike here and in `new` (the same policies, by
    /// name, with the same rules and backends), for plays and publishes.
    pub fn same_policies(&self, new: &AuthCatalog, id: StreamId) -> bool {
        let (Some(old), Some(now)) = (self.stream(id), new.stream(id)) else {
            return false;
        };
        self.source(old.on_play) == new.source(now.on_play)
            && self.source(old.on_publish) == new.source(now.on_publish)
    }

    fn source(&self, policy: Option<PolicyId>) -> Option<&(Box<str>, Rules)> {
        policy.and_then(|p| self.sources.get(p as usize))
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
