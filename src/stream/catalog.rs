//! The `Catalog`: the configured streams and auth policies, compiled once from the config
//! and shared read-only by every shard (an `Arc`, never mutated; a reload builds a new one).

use crate::auth::policy::Policy;
use crate::auth::verdict::StreamId;
use crate::config::{Config, InputUrl, OnPlay};
use ahash::AHashMap;

/// Index of a policy in `Catalog::policies`.
pub type PolicyId = u32;

#[derive(Debug)]
pub struct StreamSpec {
    pub id: StreamId,
    pub name: Box<str>,
    pub input: InputUrl,
    /// The policy that authorizes play requests; `None` means the stream is open.
    pub on_play: Option<PolicyId>,
    pub segment_duration_ms: u32,
}

#[derive(Debug)]
pub struct Catalog {
    pub streams: Vec<StreamSpec>,
    pub policies: Vec<Policy>,
    /// The query parameter that carries tokens (`auth_token`, default `token`).
    pub token_param: Box<str>,
    by_name: AHashMap<Box<str>, StreamId>,
}

impl Catalog {
    /// Compiles a validated config. The parser has already rejected dangling references; one
    /// that slipped through anyway leaves the stream closed (every request denied), never open.
    pub fn from_config(config: &Config) -> Catalog {
        let policies: Vec<Policy> = config.auth_backends.iter().map(Policy::compile).collect();
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
                segment_duration_ms: s.segment_duration_ms,
            })
            .collect();
        let by_name = streams.iter().map(|s| (s.name.clone(), s.id)).collect();
        Catalog {
            streams,
            policies,
            token_param: config.auth_token_param.as_str().into(),
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
