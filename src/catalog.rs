//! The `Catalog`: the configured streams, their auth policies and the player's scripts,
//! compiled once from the config and shared read-only by every shard (an `Arc`, never
//! mutated; a reload builds a new one). The one exception is each `publish://` stream's
//! `PublishSlot`, an atomic claim (see there), taken through a [`PublishClaim`]; the
//! other is `opus_demand`, the WebRTC viewers per stream (`stream::webrtc_audio`).
//!
//! It sits above the modules whose parts it holds: `stream` (the slots), `auth` (its
//! `AuthCatalog`, which the catalog derefs to, so `authorizer.authorize(&catalog, ..)`
//! reads) and `player` (the scripts).

use crate::auth::catalog::AuthCatalog;
use crate::config::template::TemplateConfig;
use crate::config::{Config, InputUrl};
use crate::stream::StreamId;
use crate::stream::live_input::Timeline;
use crate::stream::publish_slot::PublishSlot;
use crate::stream::webrtc_audio::OpusDemand;
use std::sync::Arc;

#[derive(Debug)]
pub struct StreamSpec {
    pub id: StreamId,
    pub name: Box<str>,
    pub input: InputUrl,
    /// Who publishes right now, for `publish://` streams (see `PublishSlot`); shared with
    /// the catalog a reload makes, so a live publisher keeps its claim across it.
    pub publish: Option<Arc<PublishSlot>>,
    pub segment_duration_ms: u32,
    /// The SRT passphrase its callers must use (`srt_passphrase`, the stream's or the
    /// top-level one); `None`: unencrypted.
    pub srt_passphrase: Option<Box<[u8]>>,
    /// Failover sources, on-demand and timeouts, for pulled inputs.
    pub pull: crate::config::pull::PullOptions,
    /// Configured, a template's gate, or made from a template.
    pub kind: StreamKind,
}

/// Where a catalog stream comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A `stream` block.
    Configured,
    /// A template's gate: not a stream anyone plays (never found by name, never pulled),
    /// but what a request under the template's prefix is authorized against before its
    /// stream is made (the template's `on_play`, with a `StreamId` like any stream's).
    Gate,
    /// A stream a template made for a requested name (pulled on demand, forgotten after
    /// `clients_timeout` without viewers).
    Made,
}

/// At most this many template streams exist at once; a request for another name under a
/// prefix past it is refused (503) until some are forgotten.
pub const MAX_TEMPLATE_STREAMS: usize = 10_000;

/// Ids of forgotten template streams, by name.
type Retired = ahash::AHashMap<Box<str>, StreamId>;

/// At most this many forgotten template streams keep their id for their name's next making;
/// names past it take fresh ids, as every stream did before.
pub const MAX_RETIRED_NAMES: usize = 100_000;

/// Longer names (a request's path can be kilobytes) take a fresh id when made again, so
/// the retired names hold at most ~25 MB.
pub const MAX_RETIRED_NAME_LEN: usize = 255;

/// The name of template `t`'s gate: with a space and a trailing `/`, no stream and no
/// request path can name it.
fn gate_name(t: &TemplateConfig) -> String {
    format!("template {}/", t.name)
}

#[derive(Debug)]
pub struct Catalog {
    /// In config order. Ids are stable across reloads (a stream keeps its id while its
    /// name stays in the config; a new stream takes a fresh one), so they are not
    /// positions: `stream(id)` looks them up.
    pub streams: Vec<StreamSpec>,
    /// Position in `streams` by id (`NO_STREAM` for ids no longer in the config).
    by_id: Vec<u32>,
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
    /// The config's templates, in order (`config::template`).
    templates: Vec<TemplateConfig>,
    /// The streams the templates made, by name, with their template's name: kept across
    /// reloads while their template stays and still covers the name.
    made: Vec<(Box<str>, Box<str>)>,
    /// The ids of made streams since forgotten, by name: the name's next making takes its
    /// id back, so an edge whose viewers zap across an origin's channels for months keeps
    /// one id (and one view per shard) per channel, not one per making. At most
    /// `MAX_RETIRED_NAMES`; only the same name ever gets an id back, and only under the
    /// config it was made under (a reload empties it).
    retired: Arc<Retired>,
    /// WebRTC viewers per stream, counted across shards: the input's shard transcodes
    /// AAC to Opus while it is non-zero. Handed from catalog to catalog like the slots.
    pub opus_demand: Arc<OpusDemand>,
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
    /// Compiles a validated config (see `AuthCatalog::from_config` for the policies); the
    /// streams take ids in config order.
    pub fn from_config(config: &Config) -> Catalog {
        let (expanded, kinds) = expand(config, &[]);
        let ids: Vec<StreamId> = (0..expanded.streams.len() as StreamId).collect();
        Catalog::compile(&expanded, &kinds, &ids, |_| None)
    }

    /// The catalog a reload to `config` makes, and what changed: a stream that stays keeps
    /// its id (and, if it still takes publishers, its `PublishSlot`, so a live publisher
    /// keeps its claim); a new one takes an id never used before (a reload gives no
    /// forgotten template stream its id back).
    pub fn reloaded(&self, config: &Config) -> (Catalog, Changes) {
        // A reload may change a template's policy: no id goes back to a name from before.
        self.remade(config, &self.made, None)
    }

    /// The catalog with the template streams `add` made (each a name under a template's
    /// prefix that no stream has) and `forget` gone; the running `config` otherwise. Names
    /// past `MAX_TEMPLATE_STREAMS` are left out (the caller finds them missing). A name
    /// made again takes back the id it had (`retired`).
    pub fn with_template_streams(
        &self,
        config: &Config,
        add: &[Box<str>],
        forget: &[Box<str>],
    ) -> (Catalog, Changes) {
        let mut made: Vec<(Box<str>, Box<str>)> = self
            .made
            .iter()
            .filter(|(name, _)| !forget.contains(name))
            .cloned()
            .collect();
        for name in add {
            if made.len() >= MAX_TEMPLATE_STREAMS {
                break;
            }
            let known = self.stream_by_name(name).is_some() || made.iter().any(|(n, _)| n == name);
            if let Some(t) = config.templates.iter().find(|t| t.matches(name))
                && !known
            {
                made.push((name.clone(), t.name.as_str().into()));
            }
        }
        let (mut next, changes) = self.remade(config, &made, Some(self.retired.clone()));
        next.player = self.player.clone();
        (next, changes)
    }

    /// How many streams the templates made.
    pub fn template_streams(&self) -> usize {
        self.made.len()
    }

    /// The gate of the template whose prefix covers `name`, when no stream has that name:
    /// what a request for it is authorized against before its stream is made.
    pub fn template_gate(&self, name: &str) -> Option<&StreamSpec> {
        if self.stream_by_name(name).is_some() {
            return None;
        }
        let t = self.templates.iter().find(|t| t.matches(name))?;
        let gate = self.auth.stream_by_name(&gate_name(t))?;
        self.stream(gate.id)
    }

    /// The catalog of `config` plus the template streams `made`, ids kept by name. With
    /// `retired` (the running config's template streams made or forgotten), a made stream
    /// takes its name's retired id back, and the made streams that leave retire theirs.
    fn remade(
        &self,
        config: &Config,
        made: &[(Box<str>, Box<str>)],
        retired: Option<Arc<Retired>>,
    ) -> (Catalog, Changes) {
        let (config, kinds) = expand(config, made);
        let config = &config;
        let mut next = self.by_id.len() as StreamId;
        let reusing = retired.is_some();
        let mut retired = retired.unwrap_or_default();
        let ids: Vec<StreamId> = config
            .streams
            .iter()
            .zip(&kinds)
            .map(|(s, &kind)| {
                if let Some(old) = self.auth.stream_by_name(&s.name) {
                    return old.id;
                }
                if kind == StreamKind::Made
                    && let Some(id) = retired.get(s.name.as_str()).copied()
                {
                    Arc::make_mut(&mut retired).remove(s.name.as_str());
                    return id;
                }
                next += 1;
                next - 1
            })
            .collect();
        let mut catalog = Catalog::compile(config, &kinds, &ids, |name| {
            let old = self.stream_by_name(name)?;
            old.publish.clone()
        });
        // Ids are never given to another name, even those of the last streams removed.
        catalog.by_id.resize(next as usize, NO_STREAM);
        catalog.opus_demand = self.opus_demand.clone();
        let made_streams = self.streams.iter().filter(|s| s.kind == StreamKind::Made);
        for gone in made_streams.filter(|_| reusing) {
            let keep = gone.name.len() <= MAX_RETIRED_NAME_LEN && retired.len() < MAX_RETIRED_NAMES;
            if catalog.stream(gone.id).is_none() && keep {
                Arc::make_mut(&mut retired).insert(gone.name.clone(), gone.id);
            }
        }
        catalog.retired = retired;
        let changes = Changes::between(self, &catalog);
        (catalog, changes)
    }

    fn compile(
        config: &Config,
        kinds: &[StreamKind],
        ids: &[StreamId],
        slot_of: impl Fn(&str) -> Option<Arc<PublishSlot>>,
    ) -> Catalog {
        let streams: Vec<StreamSpec> = config
            .streams
            .iter()
            .zip(ids)
            .zip(kinds)
            .map(|((s, &id), &kind)| StreamSpec {
                id,
                name: s.name.as_str().into(),
                input: s.input.clone(),
                publish: (s.input == InputUrl::Publish)
                    .then(|| slot_of(&s.name).unwrap_or_else(|| Arc::new(PublishSlot::new()))),
                segment_duration_ms: s.segment_duration_ms,
                srt_passphrase: s
                    .srt
                    .passphrase
                    .as_ref()
                    .or(config.srt_passphrase.as_ref())
                    .map(|p| p.as_bytes().into()),
                pull: s.pull.clone(),
                kind,
            })
            .collect();
        Catalog {
            by_id: positions_by_id(ids),
            streams,
            auth: AuthCatalog::from_config(config, ids),
            api_key: config.api_key.as_deref().map(Into::into),
            api_allowed_from: config.api_allowed_from.clone(),
            api_on_admin_only: config.listeners.iter().any(|l| l.proto.is_admin()),
            token_param: config.auth_token_param.as_str().into(),
            player: Default::default(),
            templates: config.templates.clone(),
            made: kinds
                .iter()
                .zip(&config.streams)
                .filter(|(k, _)| **k == StreamKind::Made)
                .filter_map(|(_, s)| {
                    let t = config.templates.iter().find(|t| t.matches(&s.name))?;
                    Some((s.name.as_str().into(), t.name.as_str().into()))
                })
                .collect(),
            opus_demand: Arc::default(),
            retired: Arc::default(),
        }
    }

    /// One past the highest stream id this catalog (or one it was reloaded from) gave out:
    /// a shard keeps a view for every id below it.
    pub fn id_bound(&self) -> usize {
        self.by_id.len()
    }

    /// The stream of that name (configured, or made from a template; never a gate).
    pub fn stream_by_name(&self, name: &str) -> Option<&StreamSpec> {
        self.auth
            .stream_by_name(name)
            .and_then(|s| self.stream(s.id))
            .filter(|s| s.kind != StreamKind::Gate)
    }

    pub fn stream(&self, id: StreamId) -> Option<&StreamSpec> {
        let &at = self.by_id.get(id as usize)?;
        self.streams.get(at as usize)
    }

    /// The shard that owns a key of a cross-shard table (portal lookups by decision key,
    /// user sessions by user): keys are hashed with process-wide seeds, so every shard agrees.
    pub fn owner_of(key: u64, shards: usize) -> usize {
        (key % shards.max(1) as u64) as usize
    }

    /// The shard that runs a stream's input: a stable function of the name, so every shard
    /// agrees without asking.
    pub fn owner_shard(&self, id: StreamId, shards: usize) -> usize {
        let name = self.stream(id).map_or("", |s| &s.name);
        // FNV-1a: stable across processes, unlike the randomly keyed hashers.
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        (h % shards.max(1) as u64) as usize
    }
}

/// `config` with its templates' gates and the streams `made` (name, template) appended as
/// streams, and each stream's kind. A made stream whose template is gone, no longer covers
/// it, or whose name a `stream` block took, is left out.
fn expand(config: &Config, made: &[(Box<str>, Box<str>)]) -> (Config, Vec<StreamKind>) {
    let mut expanded = config.clone();
    let mut kinds = vec![StreamKind::Configured; config.streams.len()];
    for t in &config.templates {
        let mut gate = t.stream.clone();
        gate.name = gate_name(t);
        expanded.streams.push(gate);
        kinds.push(StreamKind::Gate);
    }
    for (name, template) in made {
        let Some(t) = config.templates.iter().find(|t| *t.name == **template) else {
            continue;
        };
        if t.matches(name) && config.stream(name).is_none() {
            expanded.streams.push(t.instance(name));
            kinds.push(StreamKind::Made);
        }
    }
    (expanded, kinds)
}

/// Position of each id in a catalog's streams (`NO_STREAM` for ids not in it).
fn positions_by_id(ids: &[StreamId]) -> Vec<u32> {
    let bound = ids.iter().map(|&id| id as usize + 1).max().unwrap_or(0);
    let mut by_id = vec![NO_STREAM; bound];
    for (at, &id) in ids.iter().enumerate() {
        by_id[id as usize] = at as u32;
    }
    by_id
}

/// `by_id`'s mark for an id no stream has.
const NO_STREAM: u32 = u32::MAX;

/// What a reload changed, stream by stream, and in authorization.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Streams new in the config.
    pub added: Vec<StreamId>,
    /// Streams gone from it (their ids are in the old catalog only).
    pub removed: Vec<StreamId>,
    /// Streams whose input (its URL, failover sources or pull options) or segment duration
    /// changed: their input restarts.
    pub restarted: Vec<StreamId>,
    /// Streams whose play or publish policy is another one, or whose policy's rules or
    /// backends changed: decisions cached for them are dropped.
    pub reauthorized: Vec<StreamId>,
    /// `auth_backend` blocks added, removed or changed, by name.
    pub backends: Vec<Box<str>>,
}

impl Changes {
    fn between(old: &Catalog, new: &Catalog) -> Changes {
        let mut changes = Changes {
            backends: old.auth.changed_policies(&new.auth),
            ..Changes::default()
        };
        for s in &new.streams {
            match old.stream(s.id) {
                None => changes.added.push(s.id),
                Some(was) => {
                    if was.input != s.input
                        || was.pull != s.pull
                        || was.segment_duration_ms != s.segment_duration_ms
                    {
                        changes.restarted.push(s.id);
                    }
                    if !old.auth.same_policies(&new.auth, s.id) {
                        changes.reauthorized.push(s.id);
                    }
                }
            }
        }
        changes.removed = old
            .streams
            .iter()
            .filter(|s| new.stream(s.id).is_none())
            .map(|s| s.id)
            .collect();
        changes
    }

    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// A held publish slot. Dropping it releases the slot with the last timeline recorded.
#[derive(Debug)]
pub struct PublishClaim {
    slot: Arc<PublishSlot>,
    generation: u64,
    timeline: Timeline,
}

impl PublishClaim {
    /// Claims `stream`'s slot; `None` when the stream takes no publishers or one is live.
    pub fn take(catalog: &Arc<Catalog>, stream: StreamId) -> Option<PublishClaim> {
        let slot = catalog.stream(stream)?.publish.as_ref()?;
        let (generation, timeline) = slot.claim()?;
        Some(PublishClaim {
            slot: slot.clone(),
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
        self.slot.release(self.generation, self.timeline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::Config;

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

    fn parse(text: &str) -> Config {
        crate::config::parse(text, "t.conf").expect("config parses")
    }

    #[test]
    fn a_reload_keeps_ids_and_publish_slots_and_says_what_changed() {
        let before = parse(
            "auth_backend a { allow token t1; allow token t2; }\n\
             auth_backend b { allow token x; }\n\
             stream keep { input fake://fake; on_play auth://a; }\n\
             stream gone { input fake://fake; }\n\
             stream pub { input publish://; }\n\
             stream seg { input fake://fake; on_play auth://b; }",
        );
        let old = Arc::new(Catalog::from_config(&before));
        let claim = PublishClaim::take(&old, 2).expect("free");
        let after = parse(
            "auth_backend a { allow token t1; }\n\
             auth_backend b { allow token x; }\n\
             stream new { input fake://fake; }\n\
             stream pub { input publish://; }\n\
             stream seg { input fake://fake; on_play auth://b; segment_duration 4; }\n\
             stream keep { input fake://fake; on_play auth://a; }",
        );
        let (new, changes) = old.reloaded(&after);
        let id = |c: &Catalog, name: &str| c.stream_by_name(name).map(|s| s.id);
        assert_eq!(id(&new, "keep"), Some(0), "kept ids, whatever the order");
        assert_eq!(id(&new, "pub"), Some(2));
        assert_eq!(id(&new, "seg"), Some(3));
        assert_eq!(id(&new, "new"), Some(4), "a fresh id, never `gone`'s");
        assert!(new.stream(1).is_none(), "`gone` is not in the new catalog");
        assert_eq!(new.id_bound(), 5);
        assert_eq!(new.owner_shard(0, 7), old.owner_shard(0, 7));
        // The live publisher's claim holds in the new catalog, and its release frees it there.
        let new = Arc::new(new);
        assert!(PublishClaim::take(&new, 2).is_none(), "still held");
        drop(claim);
        assert!(
            PublishClaim::take(&new, 2).is_some(),
            "released into the same slot"
        );
        assert_eq!(
            changes,
            Changes {
                added: vec![4],
                removed: vec![1],
                restarted: vec![3],
                reauthorized: vec![0],
                backends: vec!["a".into()],
            }
        );
        let (_, none) = new.reloaded(&after);
        assert!(
            none.is_empty(),
            "the same config again changes nothing: {none:?}"
        );
    }

    #[test]
    fn templates_make_streams_with_ids_kept_across_reloads() {
        let config = parse(
            "auth_backend e { allow token t; }\n\
             stream tv/local { input fake://fake; }\n\
             template tv { prefix tv; input tshttp://o/%s/mpegts; on_play auth://e; }",
        );
        let first = Catalog::from_config(&config);
        let gate = first.template_gate("tv/ch1").expect("under the prefix");
        assert_eq!(gate.kind, StreamKind::Gate);
        assert!(
            first.auth.stream(gate.id).unwrap().on_play.is_some(),
            "the template's on_play"
        );
        assert!(
            first.template_gate("tv/local").is_none(),
            "the static stream wins"
        );
        assert!(first.template_gate("radio/x").is_none());
        assert!(
            first.stream_by_name("template tv/").is_none(),
            "a gate is never found by name"
        );
        let names: Vec<Box<str>> = vec!["tv/ch1".into(), "tv/local".into(), "radio/x".into()];
        let (made, changes) = first.with_template_streams(&config, &names, &[]);
        let ch1 = made.stream_by_name("tv/ch1").expect("made");
        assert_eq!((ch1.kind, ch1.pull.on_demand), (StreamKind::Made, true));
        assert_eq!(changes.added, vec![ch1.id]);
        assert_eq!(made.template_streams(), 1);
        assert!(made.template_gate("tv/ch1").is_none(), "now a stream");
        let (reloaded, none) = made.reloaded(&config);
        assert!(none.is_empty(), "a reload keeps made streams: {none:?}");
        assert_eq!(reloaded.stream_by_name("tv/ch1").unwrap().id, ch1.id);
        let (forgotten, changes) = reloaded.with_template_streams(&config, &[], &names[..1]);
        assert_eq!(changes.removed, vec![ch1.id]);
        assert!(forgotten.stream_by_name("tv/ch1").is_none());
        let (again, changes) = forgotten.with_template_streams(&config, &names[..1], &[]);
        assert_eq!(
            again.stream_by_name("tv/ch1").unwrap().id,
            ch1.id,
            "made again, the name takes its id back"
        );
        assert_eq!(changes.added, vec![ch1.id]);
        assert_eq!(again.id_bound(), forgotten.id_bound());
        let without = parse("stream tv/local { input fake://fake; }");
        let (gone, changes) = again.reloaded(&without);
        assert_eq!(gone.template_streams(), 0, "its template is gone");
        assert_eq!(changes.removed.len(), 2, "the gate and the made stream");
    }

    #[test]
    fn a_name_made_again_takes_its_id_back_and_no_other_name_does() {
        let config = parse(
            "auth_backend e { allow token t; }\n\
             template tv { prefix tv; input tshttp://o/%s/mpegts; on_play auth://e; }",
        );
        let names = |n: &[&str]| -> Vec<Box<str>> { n.iter().map(|&s| s.into()).collect() };
        let id = |c: &Catalog, name: &str| c.stream_by_name(name).expect(name).id;
        let start = Catalog::from_config(&config);
        let (made, _) = start.with_template_streams(&config, &names(&["tv/a", "tv/b"]), &[]);
        let (a, bound) = (id(&made, "tv/a"), made.id_bound());
        // A thousand zaps away from and back to tv/a: one id, no growth.
        let mut catalog = made;
        for _ in 0..1000 {
            (catalog, _) = catalog.with_template_streams(&config, &[], &names(&["tv/a"]));
            (catalog, _) = catalog.with_template_streams(&config, &names(&["tv/a"]), &[]);
        }
        assert_eq!((id(&catalog, "tv/a"), catalog.id_bound()), (a, bound));
        // Another name never gets tv/a's id, even while tv/a is forgotten.
        let (forgotten, _) = catalog.with_template_streams(&config, &[], &names(&["tv/a"]));
        let (other, _) = forgotten.with_template_streams(&config, &names(&["tv/c"]), &[]);
        assert_eq!(id(&other, "tv/c"), bound as StreamId);
        // After a reload (a template's policy may have changed), a fresh id.
        let (reloaded, _) = other.reloaded(&config);
        let (again, _) = reloaded.with_template_streams(&config, &names(&["tv/a"]), &[]);
        assert_eq!(id(&again, "tv/a"), bound as StreamId + 1);
        // A name too long to keep takes a fresh id each time.
        let long = format!("tv/{}", "x".repeat(MAX_RETIRED_NAME_LEN));
        let (made, _) = again.with_template_streams(&config, &names(&[&long]), &[]);
        let (gone, _) = made.with_template_streams(&config, &[], &names(&[&long]));
        let (back, _) = gone.with_template_streams(&config, &names(&[&long]), &[]);
        assert_ne!(id(&back, &long), id(&made, &long));
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
