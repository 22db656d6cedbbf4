//! The `Catalog`: the configured streams, their auth policies and the player's scripts,
//! compiled once from the config and shared read-only by every shard (an `Arc`, never
//! mutated; a reload builds a new one). The one exception is each `publish://` stream's
//! `PublishSlot`, an atomic claim (see there), taken through a [`PublishClaim`].
//!
//! It sits above the modules whose parts it holds: `stream` (the slots), `auth` (its
//! `AuthCatalog`, which the catalog derefs to, so `authorizer.authorize(&catalog, ..)`
//! reads) and `player` (the scripts).

use crate::auth::catalog::AuthCatalog;
use crate::config::{Config, InputUrl};
use crate::stream::StreamId;
use crate::stream::live_input::Timeline;
use crate::stream::publish_slot::PublishSlot;
use std::sync::Arc;

#[derive(Debug)]
pub struct StreamSpec {
    pub id: StreamId,
    pub name: Box<str>,
    pub input: InputUrl,
    /// Who publishes right now, for `publish://` streams (see `PublishSlot`).
    pub publish: Option<PublishSlot>,
    pub segment_duration_ms: u32,
    /// Failover sources, on-demand and timeouts, for pulled inputs.
    pub pull: crate::config::pull::PullOptions,
}

#[derive(Debug)]
pub struct Catalog {
    pub streams: Vec<StreamSpec>,
    /// The policies, portal backends and per-stream policies (`Catalog` derefs to it).
    pub auth: AuthCatalog,
    /// The operator API's Bearer key (`api_key`); `None` refuses every API call.
    pub api_key: Option<Box<str>>,
    /// `api_allowed_from`: the addresses the API answers (all when empty).
    pub api_allowed_from: Vec<crate::config::Cidr>,
    /// An `admin_http`/`admin_https` listener exists: the API answers only there.
    pub api_on_admin_only: bool,
    /// The query parameter that carries tokens (`auth_token`, default `token`).
    pub token_param: Box<str>,
    /// The browser player's scripts (`/_player/`); empty until the runtime loads them.
    pub player: crate::player::PlayerAssets,
}

/// The authorizer reads the catalog as its `AuthCatalog`: every shard hands the one catalog
/// it holds to `Authorizer` calls (`auth.authorize(&catalog, ..)`), and auth, which sits
/// below the catalog, knows only its own part.
impl std::ops::Deref for Catalog {
    type Target = AuthCatalog;

    fn deref(&self) -> &AuthCatalog {
        &self.auth
    }
}

impl Catalog {
    /// Compiles a validated config (see `AuthCatalog::from_config` for the policies).
    pub fn from_config(config: &Config) -> Catalog {
        let streams: Vec<StreamSpec> = config
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| StreamSpec {
                id: i as StreamId,
                name: s.name.as_str().into(),
                input: s.input.clone(),
                publish: (s.input == InputUrl::Publish).then(PublishSlot::new),
                segment_duration_ms: s.segment_duration_ms,
                pull: s.pull.clone(),
            })
            .collect();
        Catalog {
            streams,
            auth: AuthCatalog::from_config(config),
            api_key: config.api_key.as_deref().map(Into::into),
            api_allowed_from: config.api_allowed_from.clone(),
            api_on_admin_only: config.listeners.iter().any(|l| l.proto.is_admin()),
            token_param: config.auth_token_param.as_str().into(),
            player: Default::default(),
        }
    }

    pub fn stream_by_name(&self, name: &str) -> Option<&StreamSpec> {
        self.auth
            .stream_by_name(name)
            .and_then(|s| self.streams.get(s.id as usize))
    }

    pub fn stream(&self, id: StreamId) -> Option<&StreamSpec> {
        self.streams.get(id as usize)
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

/// A held publish slot. Dropping it releases the slot with the last timeline recorded.
#[derive(Debug)]
pub struct PublishClaim {
    catalog: Arc<Catalog>,
    stream: StreamId,
    generation: u64,
    timeline: Timeline,
}

impl PublishClaim {
    /// Claims `stream`'s slot; `None` when the stream takes no publishers or one is live.
    pub fn take(catalog: &Arc<Catalog>, stream: StreamId) -> Option<PublishClaim> {
        let slot = catalog.stream(stream)?.publish.as_ref()?;
        let (generation, timeline) = slot.claim()?;
        Some(PublishClaim {
            catalog: catalog.clone(),
            stream,
            generation,
            timeline,
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Where the previous publisher left the stream's timeline.
    pub fn timeline(&self) -> Timeline {
        self.timeline
    }

    /// Records how far this publisher got (kept when the claim is dropped).
    pub fn record(&mut self, timeline: Timeline) {
        self.timeline = timeline;
    }
}

impl Drop for PublishClaim {
    fn drop(&mut self) {
        if let Some(slot) = self
            .catalog
            .stream(self.stream)
            .and_then(|s| s.publish.as_ref())
        {
            slot.release(self.generation, self.timeline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Arc<Catalog> {
        let cfg = crate::config::parse(
            "stream p { input publish://; }\nstream f { input fake://fake; }",
            "t.conf",
        )
        .expect("config parses");
        Arc::new(Catalog::from_config(&cfg))
    }

    #[test]
    fn one_publisher_at_a_time_and_the_timeline_carries_over() {
        let cat = catalog();
        assert!(
            PublishClaim::take(&cat, 1).is_none(),
            "fake streams take none"
        );
        let mut first = PublishClaim::take(&cat, 0).expect("free");
        assert_eq!(first.generation(), 1);
        assert_eq!(first.timeline(), Timeline::default());
        assert!(PublishClaim::take(&cat, 0).is_none(), "held");
        let reached = Timeline {
            next_dts: 900_000,
            next_sequence: 7,
            utc_base_ms: Some(1_700_000_000_000),
        };
        first.record(reached);
        drop(first);
        let second = PublishClaim::take(&cat, 0).expect("released on drop");
        assert_eq!(second.generation(), 2);
        assert_eq!(second.timeline(), reached);
        assert!(cat.stream(0).unwrap().publish.as_ref().unwrap().is_live());
    }

    #[test]
    fn racing_claims_on_threads_admit_one() {
        let cat = catalog();
        let winners: usize = (0..8)
            .map(|_| {
                let cat = cat.clone();
                std::thread::spawn(move || PublishClaim::take(&cat, 0).map(std::mem::forget))
            })
            .map(|t| usize::from(t.join().unwrap().is_some()))
            .sum();
        assert_eq!(winners, 1);
    }
}
