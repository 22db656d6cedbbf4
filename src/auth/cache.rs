//! `DecisionCache`: a shard's memory of recent verdicts, so a viewer's next request costs a
//! hash lookup instead of a policy evaluation (and, later, a portal round trip).
//!
//! Keys are a keyed 64-bit hash of everything the verdict depends on (policy, stream, token,
//! client IP, and the user agent when the policy reads it). A hit is confirmed against the
//! stored stream, IP and token (constant time), so a hash collision can never hand a viewer
//! somebody else's verdict, and a token checked for stream A is a miss on stream B.
//! Bounded: past `capacity` an arbitrary entry makes room (in O(1)); expired entries are
//! swept by the shard's one-second ticker.

use crate::auth::policy::constant_time_eq;
use crate::auth::verdict::{StreamId, Verdict};
use ahash::AHashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Entry {
    stream: StreamId,
    ip: IpAddr,
    token: Box<[u8]>,
    verdict: Verdict,
    expires: Instant,
}

/// What a lookup is keyed on, borrowed from the request.
#[derive(Clone, Copy, Debug)]
pub struct DecisionKey<'a> {
    pub hash: u64,
    pub stream: StreamId,
    pub ip: IpAddr,
    pub token: &'a [u8],
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

    /// The cached verdict for `key`, if one is stored and still valid at `now`.
    pub fn get(&mut self, key: &DecisionKey<'_>, now: Instant) -> Option<Verdict> {
        let found = self.entries.get(&key.hash).filter(|e| {
            e.expires > now
                && e.stream == key.stream
                && e.ip == key.ip
                && constant_time_eq(key.token, &e.token)
        });
        match found {
            Some(e) => {
                self.hits += 1;
                Some(e.verdict)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Stores a verdict for `ttl`.
    pub fn insert(&mut self, key: &DecisionKey<'_>, verdict: Verdict, now: Instant, ttl: Duration) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key.hash) {
            // O(1): the shard ticker sweeps expired entries every second. Scanning for the
            // best victim here would let a client that sends many distinct tokens make every
            // miss cost a pass over the whole cache.
            self.evict_one();
        }
        self.entries.insert(
            key.hash,
            Entry {
                stream: key.stream,
                ip: key.ip,
                token: key.token.into(),
                verdict,
                expires: now + ttl,
            },
        );
    }

    /// Drops every expired entry; returns how many went.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.expires > now);
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

    #[test]
    fn hit_until_expiry() {
        let mut c = DecisionCache::new(10);
        let t0 = Instant::now();
        c.insert(
            &key(1, 0, b"t"),
            Verdict::Allow,
            t0,
            Duration::from_secs(30),
        );
        assert_eq!(
            c.get(&key(1, 0, b"t"), t0 + Duration::from_secs(29)),
            Some(Verdict::Allow)
        );
        assert_eq!(c.get(&key(1, 0, b"t"), t0 + Duration::from_secs(30)), None);
        assert_eq!((c.hits, c.misses), (1, 1));
    }

    #[test]
    fn a_colliding_hash_is_a_miss() {
        let mut c = DecisionCache::new(10);
        let t0 = Instant::now();
        c.insert(
            &key(7, 0, b"a"),
            Verdict::Allow,
            t0,
            Duration::from_secs(30),
        );
        assert_eq!(c.get(&key(7, 1, b"a"), t0), None, "other stream");
        assert_eq!(c.get(&key(7, 0, b"b"), t0), None, "other token");
        let other_ip = DecisionKey {
            ip: "127.0.0.2".parse().unwrap(),
            ..key(7, 0, b"a")
        };
        assert_eq!(c.get(&other_ip, t0), None, "other ip");
    }

    #[test]
    fn stays_within_capacity() {
        let mut c = DecisionCache::new(3);
        let t0 = Instant::now();
        for i in 0..10u64 {
            let deny = Verdict::Deny(DenyReason::BackendDenied);
            c.insert(&key(i, 0, b"x"), deny, t0, Duration::from_secs(i + 1));
            assert!(c.len() <= 3);
        }
        // The newest entry is always kept.
        assert!(c.get(&key(9, 0, b"x"), t0).is_some());
        assert_eq!(c.sweep(t0 + Duration::from_secs(100)), 3);
    }
}
