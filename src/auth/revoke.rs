//! Push revocation (spec §7.3): what an operator revoked, and for how long it stays revoked.
//!
//! Owns: `RevokeTarget` (a token, a user, a session or a whole stream; owned and `Send`, so a
//! revocation can be broadcast to every shard) and `Revocations`, one shard's list of revoked
//! tokens (by keyed hash), users and sessions, each with an expiry and the deny reason its
//! viewers get (`session_revoked`, or `session_limit` for a session closed by a user's
//! limit). Never does: finding or closing sessions (the `Authorizer` does, per shard).
//!
//! Revoking a stream cuts the sessions it has now (each becomes a revoked session); new
//! viewers of the stream are asked about afresh. A revoked token, user or session stays
//! refused for `REVOKE_TTL`, so a cut viewer cannot come straight back with the same link.

use crate::auth::session::SessionId;
use crate::auth::verdict::DenyReason;
use ahash::AHashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long a revoked token, user or session stays refused.
pub const REVOKE_TTL: Duration = Duration::from_secs(3600);
/// Revocations kept per kind per shard (a bound, not a policy: past it an arbitrary one
/// makes room after the expired ones went).
pub const REVOCATION_CAPACITY: usize = 100_000;

/// What an operator (or a user's session limit) revokes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeTarget {
    Token(Box<[u8]>),
    /// A token known only by its keyed hash (`Authorizer::token_hash`): a revocation from
    /// another node of the fleet.
    TokenHash(u64),
    User(Box<str>),
    Session(SessionId),
    Stream(Box<str>),
}

type Until = (Instant, DenyReason);

#[derive(Default)]
pub struct Revocations {
    tokens: AHashMap<u64, Until>,
    users: AHashMap<Box<str>, Until>,
    sessions: AHashMap<SessionId, Until>,
}

fn insert<K: Hash + Eq + Clone>(map: &mut AHashMap<K, Until>, key: K, until: Until) {
    if map.len() >= REVOCATION_CAPACITY && !map.contains_key(&key) {
        let now = until.0 - REVOKE_TTL;
        map.retain(|_, (t, _)| *t > now);
        if map.len() >= REVOCATION_CAPACITY
            && let Some(k) = map.keys().next().cloned()
        {
            map.remove(&k);
        }
    }
    map.insert(key, until);
}

fn check<K: Hash + Eq + ?Sized>(
    map: &AHashMap<impl std::borrow::Borrow<K> + Hash + Eq, Until>,
    key: &K,
    now: Instant,
) -> Option<DenyReason> {
    map.get(key)
        .filter(|(until, _)| *until > now)
        .map(|&(_, reason)| reason)
}

impl Revocations {
    /// Nothing is revoked: the request path skips every check.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.users.is_empty() && self.sessions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tokens.len() + self.users.len() + self.sessions.len()
    }

    pub fn revoke_token(&mut self, token_hash: u64, reason: DenyReason, now: Instant) {
        insert(&mut self.tokens, token_hash, (now + REVOKE_TTL, reason));
    }

    pub fn revoke_user(&mut self, user: &str, reason: DenyReason, now: Instant) {
        insert(&mut self.users, user.into(), (now + REVOKE_TTL, reason));
    }

    pub fn revoke_session(&mut self, id: SessionId, reason: DenyReason, now: Instant) {
        insert(&mut self.sessions, id, (now + REVOKE_TTL, reason));
    }

    pub fn token(&self, token_hash: u64, now: Instant) -> Option<DenyReason> {
        check(&self.tokens, &token_hash, now)
    }

    pub fn user(&self, user: &str, now: Instant) -> Option<DenyReason> {
        check::<str>(&self.users, user, now)
    }

    pub fn session(&self, id: &SessionId, now: Instant) -> Option<DenyReason> {
        check(&self.sessions, id, now)
    }

    pub fn has_sessions(&self) -> bool {
        !self.sessions.is_empty()
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// Drops what has expired (the shard ticker).
    pub fn sweep(&mut self, now: Instant) {
        self.tokens.retain(|_, (t, _)| *t > now);
        self.users.retain(|_, (t, _)| *t > now);
        self.sessions.retain(|_, (t, _)| *t > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_until_the_ttl() {
        let mut r = Revocations::default();
        let t0 = Instant::now();
        assert!(r.is_empty());
        let id = SessionId::from_random([1; 16]);
        r.revoke_token(42, DenyReason::SessionRevoked, t0);
        r.revoke_user("alice", DenyReason::SessionRevoked, t0);
        r.revoke_session(id, DenyReason::SessionLimit, t0);
        assert_eq!(r.token(42, t0), Some(DenyReason::SessionRevoked));
        assert_eq!(r.token(43, t0), None);
        assert_eq!(r.user("alice", t0), Some(DenyReason::SessionRevoked));
        assert_eq!(r.user("bob", t0), None);
        assert_eq!(r.session(&id, t0), Some(DenyReason::SessionLimit));
        let later = t0 + REVOKE_TTL;
        assert_eq!(r.token(42, later), None);
        r.sweep(later);
        assert!(r.is_empty());
    }
}
