//! Authorization: the one phase every play request of every protocol goes through.
//!
//! `Authorizer::authorize` is the single entry point. It consults the shard's
//! `DecisionCache`, and on a miss evaluates the stream's policy and caches the verdict for
//! the decision's duration. Sessions (`SessionTable`) are tracked beside it. The shard owns
//! one `Authorizer`; nothing here is shared between threads.
//!
//! Built and unit-tested, not yet wired into `authorize` (portal backends are the next
//! step): `portal` (the Flussonic-compatible backend request/answer), `backend_client`
//! (sans-IO keep-alive client, pool bookkeeping, circuit breaker), `signed` (HMAC-SHA256
//! tokens with key rotation), `securetoken` (Flussonic securetoken), `session_limit`
//! (X-Max-Sessions / X-Unique decisions).

pub mod backend_client;
pub mod cache;
pub mod policy;
pub mod portal;
pub mod securetoken;
pub mod session;
pub mod session_limit;
pub mod signed;
pub mod verdict;

use crate::auth::cache::{DecisionCache, DecisionKey};
use crate::auth::session::{Session, SessionId, SessionTable, TokenTag, Touch};
use crate::auth::verdict::{PlayRequest, Verdict, canonical_ip};
use crate::stream::catalog::Catalog;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// How long a verdict holds when nothing says otherwise (the spec's `X-AuthDuration`
/// default). It is also how long an HTTP session survives without requests.
pub const DEFAULT_DECISION_TTL: Duration = Duration::from_secs(30);
/// Decisions cached per shard.
pub const DECISION_CACHE_CAPACITY: usize = 100_000;
/// Sessions per shard.
pub const SESSION_CAPACITY: usize = 100_000;

/// Counters the shard exports.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuthStats {
    pub allowed: u64,
    pub denied: u64,
    pub sessions_opened: u64,
    pub sessions_closed: u64,
}

pub struct Authorizer {
    cache: DecisionCache,
    sessions: SessionTable,
    /// Randomly keyed, so nobody outside can aim hash collisions at the cache.
    key_hasher: ahash::RandomState,
    /// Fixed keys, so the same token gets the same tag on every shard and in every log.
    tag_hasher: ahash::RandomState,
    ids: SplitMix64,
    decision_ttl: Duration,
    pub stats: AuthStats,
}

impl Authorizer {
    /// `seed` makes session ids unique per shard; pass fresh randomness.
    pub fn new(seed: u64) -> Self {
        Authorizer {
            cache: DecisionCache::new(DECISION_CACHE_CAPACITY),
            sessions: SessionTable::new(DEFAULT_DECISION_TTL, SESSION_CAPACITY),
            key_hasher: ahash::RandomState::new(),
            tag_hasher: ahash::RandomState::with_seeds(
                0x7465_7373,
                0x6572_6121,
                0x746f_6b65,
                0x6e74_6167,
            ),
            ids: SplitMix64(seed),
            decision_ttl: DEFAULT_DECISION_TTL,
            stats: AuthStats::default(),
        }
    }

    pub fn cache(&self) -> &DecisionCache {
        &self.cache
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// Decides a play request at `now` (monotonic, for the cache) / `now_unix_ms` (wall
    /// clock, for signed-token expiry). Open streams (no `on_play`) are allowed.
    pub fn authorize(
        &mut self,
        catalog: &Catalog,
        req: &PlayRequest<'_>,
        now: Instant,
        now_unix_ms: i64,
    ) -> Verdict {
        let Some(stream) = catalog.stream(req.stream) else {
            return Verdict::Deny(verdict::DenyReason::BackendDenied);
        };
        let verdict = match stream.on_play {
            None => Verdict::Allow,
            Some(policy_id) => match catalog.policies.get(policy_id as usize) {
                // A reference the config check missed: closed, never open.
                None => Verdict::Deny(verdict::DenyReason::BackendDenied),
                Some(policy) => {
                    let ip = canonical_ip(req.ip);
                    let mut h = self.key_hasher.build_hasher();
                    h.write_u32(policy_id);
                    h.write_u32(req.stream);
                    h.write_u8(u8::from(req.token.is_some()));
                    h.write(req.token.unwrap_or_default());
                    h.write_usize(req.token.map_or(0, <[u8]>::len));
                    std::hash::Hash::hash(&ip, &mut h);
                    if policy.reads_user_agent() {
                        h.write(req.user_agent.unwrap_or_default());
                    }
                    // A request without the parameter and one with an empty value are kept
                    // apart by the presence byte above.
                    let key = DecisionKey {
                        hash: h.finish(),
                        stream: req.stream,
                        ip,
                        token: req.token.unwrap_or_default(),
                    };
                    match self.cache.get(&key, now) {
                        Some(v) => v,
                        None => {
                            let decision =
                                policy.decide(req, &stream.name, now_unix_ms.div_euclid(1000));
                            // A signed token's allow lasts no longer than the token.
                            let ttl =
                                decision
                                    .valid_until_unix
                                    .map_or(self.decision_ttl, |until| {
                                        let left_ms = (until * 1000 - now_unix_ms).max(0) as u64;
                                        self.decision_ttl.min(Duration::from_millis(left_ms))
                                    });
                            self.cache.insert(&key, decision.verdict, now, ttl);
                            decision.verdict
                        }
                    }
                }
            },
        };
        match verdict {
            Verdict::Allow => self.stats.allowed += 1,
            Verdict::Deny(reason) => {
                self.stats.denied += 1;
                log::debug!(
                    "deny stream={} proto={} ip={} token={} reason={reason}",
                    stream.name,
                    req.proto.as_str(),
                    canonical_ip(req.ip),
                    self.token_tag(req.token),
                );
            }
        }
        verdict
    }

    /// Attributes an allowed request to its session (opening it on first sight) and returns
    /// the session id, or `None` when the shard's session table is full.
    pub fn track_session(
        &mut self,
        catalog: &Catalog,
        req: &PlayRequest<'_>,
        now: Instant,
        bytes: u64,
    ) -> Option<SessionId> {
        let ip = canonical_ip(req.ip);
        let mut h = self.key_hasher.build_hasher();
        h.write_u32(req.stream);
        h.write_u8(req.proto as u8);
        std::hash::Hash::hash(&ip, &mut h);
        h.write(req.token.unwrap_or_default());
        let key = h.finish();
        let tag = self.token_tag(req.token);
        let ids = &mut self.ids;
        let (touch, session) = self.sessions.touch(key, now, bytes, || Session {
            id: SessionId::from_random(ids.next_16()),
            stream: req.stream,
            proto: req.proto,
            ip,
            token_tag: tag,
            opened: now,
            last_seen: now,
            requests: 0,
            bytes_sent: 0,
        })?;
        let id = session.id;
        if touch == Touch::Opened {
            self.stats.sessions_opened += 1;
            log::info!(
                "session opened id={id} stream={} proto={} ip={ip} token={tag}",
                catalog.stream(req.stream).map_or("?", |s| &s.name),
                req.proto.as_str()
            );
        }
        Some(id)
    }

    /// Housekeeping for the shard's timer: drops expired decisions, closes idle sessions.
    pub fn expire(&mut self, catalog: &Catalog, now: Instant) {
        self.cache.sweep(now);
        let closed = self.sessions.expire_idle(now, |s| {
            log::info!(
                "session closed id={} stream={} proto={} ip={} token={} requests={} bytes={} seconds={}",
                s.id,
                catalog.stream(s.stream).map_or("?", |st| &st.name),
                s.proto.as_str(),
                s.ip,
                s.token_tag,
                s.requests,
                s.bytes_sent,
                now.saturating_duration_since(s.opened).as_secs()
            );
        });
        self.stats.sessions_closed += closed as u64;
    }

    /// The tag logs use for a token: a short hash, never the token.
    pub fn token_tag(&self, token: Option<&[u8]>) -> TokenTag {
        match token {
            None => TokenTag(0),
            Some(t) => TokenTag(self.tag_hasher.hash_one(t) as u32),
        }
    }
}

/// A small, fast generator for session ids (Steele, Lea, Flood: SplitMix64). Seeded from
/// the OS per shard; ids need to be unique and unguessable enough to not collide, they
/// are not credentials.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        out[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        out
    }
}

/// 64 bits of OS randomness for seeding (falls back to time and address entropy when
/// /dev/urandom is unreadable, which only happens in broken sandboxes).
pub fn os_seed() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return u64::from_le_bytes(buf);
    }
    let t = crate::utc::now_ms() as u64;
    t ^ (&buf as *const _ as u64).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Authorizer {
        fn authorize_at(
            &mut self,
            catalog: &Catalog,
            req: &PlayRequest<'_>,
            now: Instant,
        ) -> Verdict {
            self.authorize(catalog, req, now, 1_700_000_000_000)
        }
    }
    use crate::auth::verdict::{DenyReason, Proto};

    fn catalog() -> Catalog {
        let cfg = crate::config::parse(
            "auth_backend b { allow token good; }\n\
             stream a { input fake://fake; on_play auth://b; }\n\
             stream c { input fake://fake; on_play auth://b; }\n\
             stream open { input fake://fake; }",
            "t.conf",
        )
        .expect("config parses");
        Catalog::from_config(&cfg)
    }

    fn req(stream: u32, token: Option<&'static [u8]>) -> PlayRequest<'static> {
        PlayRequest {
            stream,
            proto: Proto::Hls,
            token,
            ip: "192.0.2.1".parse().unwrap(),
            user_agent: None,
        }
    }

    #[test]
    fn caches_per_stream_and_token() {
        let cat = catalog();
        let mut a = Authorizer::new(1);
        let now = Instant::now();
        assert_eq!(
            a.authorize_at(&cat, &req(0, Some(b"good")), now),
            Verdict::Allow
        );
        assert_eq!(
            a.authorize_at(&cat, &req(0, Some(b"good")), now),
            Verdict::Allow
        );
        assert_eq!((a.cache().hits, a.cache().misses), (1, 1));
        // Same token on another stream is its own decision (a miss, evaluated again).
        assert_eq!(
            a.authorize_at(&cat, &req(1, Some(b"good")), now),
            Verdict::Allow
        );
        assert_eq!(a.cache().misses, 2);
        let denied = Verdict::Deny(DenyReason::BackendDenied);
        assert_eq!(a.authorize_at(&cat, &req(0, Some(b"bad")), now), denied);
        assert_eq!(a.authorize_at(&cat, &req(0, None), now), denied);
        assert_eq!(a.authorize_at(&cat, &req(0, Some(b"")), now), denied);
        assert_eq!(
            a.authorize_at(&cat, &req(2, None), now),
            Verdict::Allow,
            "open stream"
        );
    }

    #[test]
    fn sessions_open_once_and_expire() {
        let cat = catalog();
        let mut a = Authorizer::new(2);
        let now = Instant::now();
        let id1 = a
            .track_session(&cat, &req(0, Some(b"good")), now, 100)
            .unwrap();
        let id2 = a
            .track_session(&cat, &req(0, Some(b"good")), now, 100)
            .unwrap();
        assert_eq!(id1, id2);
        let other = a
            .track_session(&cat, &req(1, Some(b"good")), now, 100)
            .unwrap();
        assert_ne!(id1, other);
        assert_eq!(a.stats.sessions_opened, 2);
        a.expire(&cat, now + DEFAULT_DECISION_TTL + Duration::from_secs(1));
        assert_eq!(a.sessions().len(), 0);
        assert_eq!(a.stats.sessions_closed, 2);
    }

    #[test]
    fn token_tags_hide_tokens() {
        let a = Authorizer::new(3);
        let tag = a.token_tag(Some(b"test1")).to_string();
        assert_eq!(tag.len(), 9);
        assert!(!tag.contains("test1"));
        assert_eq!(
            tag,
            Authorizer::new(4).token_tag(Some(b"test1")).to_string(),
            "stable across shards"
        );
    }
}
