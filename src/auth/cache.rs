//! `DecisionCache`: a shard's memory of recent verdicts, so a viewer's next request costs a
//! hash lookup instead of a policy evaluation or a portal round trip.
//!
//! Keys are a keyed 64-bit hash of everything the verdict depends on (policy, stream, token,
//! client IP, and the user agent when the policy reads it). A hit is confirmed against the
//! stored stream, IP and token (constant time), so a hash collision can never hand a viewer
//! somebody else's verdict, and a token checked for stream A is a miss on stream B.
//!
//! A portal's allow outlives its duration as a *stale* entry for `STALE_GRACE`: the next
//! request is served from it while `update_session` goes out (spec §4), and it keeps
//! serving while the portal cannot be reached (spec §3, §7.1). A deny never goes stale.
//! Bounded: past `capacity` an arbitrary entry makes room (in O(1)); entries past their
//! grace are swept by the shard's one-second ticker.

use crate::auth::verdict::{StreamId, Verdict};
use crate::constant_time::constant_time_eq;
use ahash::AHashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long past its duration a portal's allow is still served while it is re-checked or
/// while the portal is unreachable.
pub const STALE_GRACE: Duration = Duration::from_secs(300);

/// What a verdict grants beyond allow/deny: the portal's user and session limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// `X-UserId`.
    pub user: Option<Rc<str>>,
    /// `X-Max-Sessions` (or 1 for `X-Unique`).
    pub max_sessions: Option<NonZeroU32>,
    /// The verdict came from a portal: re-ask it (`update_session`) when it runs out.
    pub from_portal: bool,
    /// The portal answered `302 Location`: HTTP clients are sent there (the verdict is a
    /// deny for everyone else).
    pub redirect: Option<Rc<str>>,
}

#[derive(Debug)]
struct Entry {
    stream: StreamId,
    ip: IpAddr,
    token: Box<[u8]>,
    verdict: Verdict,
    grant: Grant,
    expires: Instant,
    /// Until when an expired portal allow may still be served (= `expires` otherwise).
    stale_until: Instant,
}

/// What a lookup is keyed on, borrowed from the request.
#[derive(Clone, Copy, Debug)]
pub struct DecisionKey<'a> {
    pub hash: u64,
    pub stream: StreamId,
    pub ip: IpAddr,
    pub token: &'a [u8],
}

/// A lookup's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    Fresh(Verdict, Grant),
    /// A portal's allow past its duration, within the grace: serve it, and re-ask.
    Stale(Grant),
    Miss,
}

#[derive(Debug)]
pub struct DecisionCache {
    entries: AHashMap<u64, Entry>,
    capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl DecisionCache {
    pub fn new(capacity: usize) -> Self {
        DecisionCache {
            entries: AHashMap::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            hits: 0,
            misses: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached verdict for `key` at `now`, counted as a hit or a miss.
    pub fn get(&mut self, key: &DecisionKey<'_>, now: Instant) -> Cached {
        let cached = self.peek(key, now);
        match cached {
            Cached::Miss => self.misses += 1,
            _ => self.hits += 1,
        }
        cached
    }

    /// The cached verdict for `key` at `now`, not counted (another shard's question).
    pub fn peek(&self, key: &DecisionKey<'_>, now: Instant) -> Cached {
        let found = self.entries.get(&key.hash).filter(|e| {
            e.stale_until > now
                && e.stream == key.stream
                && e.ip == key.ip
                && constant_time_eq(key.token, &e.token)
        });
        match found {
            Some(e) if e.expires > now => Cached::Fresh(e.verdict, e.grant.clone()),
            Some(e) => Cached::Stale(e.grant.clone()),
            None => Cached::Miss,
        }
    }

    /// Stores a verdict for `ttl`; a portal's allow stays usable as stale for `STALE_GRACE`
    /// after that.
    pub fn insert(
        &mut self,
        key: &DecisionKey<'_>,
        verdict: Verdict,
        grant: Grant,
        now: Instant,
        ttl: Duration,
    ) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key.hash) {
            // O(1): the shard ticker sweeps expired entries every second. Scanning for the
            // best victim here would let a client that sends many distinct tokens make every
            // miss cost a pass over the whole cache.
            self.evict_one();
        }
        let expires = now + ttl;
        let stale_until = if verdict == Verdict::Allow && grant.from_portal {
            expires + STALE_GRACE
        } else {
            expires
        };
        self.entries.insert(
            key.hash,
            Entry {
                stream: key.stream,
                ip: key.ip,
                token: key.token.into(),
                verdict,
                grant,
                expires,
                stale_until,
            },
        );
    }

    /// The stale allow under `key`, if there is one (the portal could not be reached to
    /// renew it). It is kept stale; `update_session` is retried on a later request.
    pub fn stale_grant(&self, key: &DecisionKey<'_>, now: Instant) -> Option<Grant> {
        self.entries
            .get(&key.hash)
            .filter(|e| {
                e.expires <= now
                    && e.stale_until > now
                    && e.stream == key.stream
                    && e.ip == key.ip
                    && constant_time_eq(key.token, &e.token)
            })
            .map(|e| e.grant.clone())
    }

    /// Keeps serving the stale allow under `key` for `retry` before the portal is asked
    /// again (it could not be reached); the grace does not grow.
    pub fn retry_later(&mut self, key: &DecisionKey<'_>, now: Instant, retry: Duration) {
        if let Some(e) = self.entries.get_mut(&key.hash)
            && e.stream == key.stream
            && e.ip == key.ip
            && constant_time_eq(key.token, &e.token)
        {
            e.expires = (now + retry).min(e.stale_until);
        }
    }

    /// Drops every entry `matches` selects; returns how many went (revocation).
    pub fn remove_where(
        &mut self,
        mut matches: impl FnMut(StreamId, &[u8], &Grant) -> bool,
    ) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| !matches(e.stream, &e.token, &e.grant));
        before - self.entries.len()
    }

    /// Ends the duration of every portal verdict of `stream` now, so each session's next
    /// request re-asks the portal (`update_session` for allows, which keep serving until the
    /// answer). Returns how many were touched.
    pub fn expire_stream(&mut self, stream: StreamId, now: Instant) -> usize {
        let mut n = 0;
        for e in self.entries.values_mut() {
            if e.stream == stream && e.grant.from_portal && e.expires > now {
                e.expires = now;
                if e.verdict != Verdict::Allow {
                    e.stale_until = now;
                }
                n += 1;
            }
        }
        n
    }

    /// Drops every entry past its grace; returns how many went.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.stale_until > now);
        before - self.entries.len()
    }

    /// Drops every entry (config reload, revocation of everything).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    fn evict_one(&mut self) {
        if let Some(&k) = self.entries.keys().next() {
            self.entries.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::verdict::DenyReason;

    fn key(hash: u64, stream: StreamId, token: &[u8]) -> DecisionKey<'_> {
        DecisionKey {
            hash,
            stream,
            ip: "127.0.0.1".parse().unwrap(),
            token,
        }
    }

    fn portal() -> Grant {
        Grant {
            user: Some("alice".into()),
            max_sessions: NonZeroU32::new(2),
            from_portal: true,
            redirect: None,
        }
    }

    const S30: Duration = Duration::from_secs(30);

    #[test]
    fn hit_until_expiry() {
        let mut c = DecisionCache::new(10);
        let t0 = Instant::now();
        c.insert(&key(1, 0, b"t"), Verdict::Allow, Grant::default(), t0, S30);
        assert_eq!(
            c.get(&key(1, 0, b"t"), t0 + Duration::from_secs(29)),
            Cached::Fresh(Verdict::Allow, Grant::default())
        );
        assert_eq!(c.get(&key(1, 0, b"t"), t0 + S30), Cached::Miss);
        assert_eq!((c.hits, c.misses), (1, 1));
    }

    #[test]
    fn a_portal_allow_goes_stale_then_away_and_a_deny_never_goes_stale() {
        let mut c = DecisionCache::new(10);
        let t0 = Instant::now();
        c.insert(&key(1, 0, b"a"), Verdict::Allow, portal(), t0, S30);
        let denied = Verdict::Deny(DenyReason::BackendDenied);
        c.insert(&key(2, 0, b"d"), denied, portal(), t0, S30);
        let later = t0 + S30 + Duration::from_secs(1);
        assert_eq!(c.get(&key(1, 0, b"a"), later), Cached::Stale(portal()));
        assert_eq!(c.stale_grant(&key(1, 0, b"a"), later), Some(portal()));
        assert_eq!(c.get(&key(2, 0, b"d"), later), Cached::Miss);
        assert_eq!(c.sweep(later), 1);
        let gone = t0 + S30 + STALE_GRACE;
        assert_eq!(c.get(&key(1, 0, b"a"), gone), Cached::Miss);
        assert_eq!(c.sweep(gone), 1);
    }

    #[test]
    fn expire_stream_and_remove_where() {
        let mut c = DecisionCache::new(10);
        let t0 = Instant::now();
        c.insert(&key(1, 0, b"a"), Verdict::Allow, portal(), t0, S30);
        c.insert(&key(2, 1, b"a"), Verdict::Allow, portal(), t0, S30);
        c.insert(&key(3, 0, b"b"), Verdict::Allow, Grant::default(), t0, S30);
        assert_eq!(
            c.expire_stream(0, t0),
            1,
            "only portal verdicts are re-asked"
        );
        assert_eq!(c.get(&key(1, 0, b"a"), t0), Cached::Stale(portal()));
        assert_eq!(c.remove_where(|_, token, _| token == b"a"), 2);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_colliding_hash_is_a_miss() {
        let mut c = DecisionCache::new(10);
        let t0 = Instant::now();
        c.insert(&key(7, 0, b"a"), Verdict::Allow, Grant::default(), t0, S30);
        assert_eq!(c.get(&key(7, 1, b"a"), t0), Cached::Miss, "other stream");
        assert_eq!(c.get(&key(7, 0, b"b"), t0), Cached::Miss, "other token");
        let other_ip = DecisionKey {
            ip: "127.0.0.2".parse().unwrap(),
            ..key(7, 0, b"a")
        };
        assert_eq!(c.get(&other_ip, t0), Cached::Miss, "other ip");
    }

    #[test]
    fn stays_within_capacity() {
        let mut c = DecisionCache::new(3);
        let t0 = Instant::now();
        for i in 0..10u64 {
            let deny = Verdict::Deny(DenyReason::BackendDenied);
            let ttl = Duration::from_secs(i + 1);
            c.insert(&key(i, 0, b"x"), deny, Grant::default(), t0, ttl);
            assert!(c.len() <= 3);
        }
        // The newest entry is always kept.
        assert!(c.get(&key(9, 0, b"x"), t0) != Cached::Miss);
        assert_eq!(c.sweep(t0 + Duration::from_secs(100)), 3);
    }
}
