//! `UserSessions`: every open session of the users a shard owns, across all shards and
//! protocols, for `X-Max-Sessions` / `X-Unique` (spec §4).
//!
//! A user belongs to one owner shard (a hash of the user id); every shard reports the
//! sessions it opens and closes for a user with a limit to that owner, which applies
//! `session_limit::decide` and names the sessions to cut. One HLS viewer may be seen by
//! several shards under one (deterministic) session id: the entry counts which shards hold
//! it and goes away when the last one closes it. Sans-IO: the runtime carries the messages.

use crate::auth::session::SessionId;
use crate::auth::session_limit::{LimitDecision, LimitPolicy, OpenSession, decide};
use crate::auth::verdict::DenyReason;
use ahash::AHashMap;
use std::num::NonZeroU32;
use std::time::Instant;

/// Sessions tracked per user; a user past it has the oldest forgotten (they still play).
const MAX_TRACKED_PER_USER: usize = 1024;

struct Tracked {
    id: SessionId,
    opened: Instant,
    /// Bit per shard holding the session.
    shards: u64,
}

#[derive(Default)]
pub struct UserSessions {
    users: AHashMap<Box<str>, Vec<Tracked>>,
}

impl UserSessions {
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Shard `shard` opened session `id` of `user`, whose portal set `max`. Returns the
    /// sessions to cut and why: the oldest ones (`close_oldest`), or the new one itself
    /// (`refuse_new`).
    pub fn opened(
        &mut self,
        user: &str,
        id: SessionId,
        shard: usize,
        max: NonZeroU32,
        policy: LimitPolicy,
        now: Instant,
    ) -> Vec<(SessionId, DenyReason)> {
        let bit = 1u64 << (shard % 64);
        let list = self.users.entry(user.into()).or_default();
        if let Some(t) = list.iter_mut().find(|t| t.id == id) {
            // Another shard sees a session it already knows: nothing new opened.
            t.shards |= bit;
            return Vec::new();
        }
        let open: Vec<OpenSession<SessionId>> = list
            .iter()
            .map(|t| OpenSession {
                id: t.id,
                opened_at: t.opened,
            })
            .collect();
        let decision = decide(&open, OpenSession { id, opened_at: now }, max, policy);
        let mut cut: Vec<(SessionId, DenyReason)> = decision
            .to_close()
            .iter()
            .map(|&id| (id, DenyReason::SessionLimit))
            .collect();
        list.retain(|t| !cut.iter().any(|(id, _)| *id == t.id));
        match decision {
            LimitDecision::Admit { .. } => {
                if list.len() >= MAX_TRACKED_PER_USER {
                    list.remove(0);
                }
                list.push(Tracked {
                    id,
                    opened: now,
                    shards: bit,
                });
            }
            LimitDecision::Refuse { reason, .. } => cut.push((id, reason)),
        }
        if list.is_empty() {
            self.users.remove(user);
        }
        cut
    }

    /// Shard `shard` closed session `id` of `user`.
    pub fn closed(&mut self, user: &str, id: SessionId, shard: usize) {
        let bit = 1u64 << (shard % 64);
        let Some(list) = self.users.get_mut(user) else {
            return;
        };
        if let Some(i) = list.iter().position(|t| t.id == id) {
            list[i].shards &= !bit;
            if list[i].shards == 0 {
                list.remove(i);
            }
        }
        if list.is_empty() {
            self.users.remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(n: u8) -> SessionId {
        SessionId::from_random([n; 16])
    }

    #[test]
    fn the_second_session_closes_the_first_across_shards() {
        let mut u = UserSessions::default();
        let t0 = Instant::now();
        let one = NonZeroU32::new(1).unwrap();
        let close = LimitPolicy::CloseOldest;
        assert!(u.opened("alice", id(1), 0, one, close, t0).is_empty());
        // The same session seen by another shard is not a second session.
        assert!(u.opened("alice", id(1), 1, one, close, t0).is_empty());
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            u.opened("alice", id(2), 1, one, close, later),
            vec![(id(1), DenyReason::SessionLimit)]
        );
        assert!(u.opened("bob", id(3), 0, one, close, later).is_empty());
        u.closed("alice", id(2), 1);
        u.closed("bob", id(3), 0);
        assert_eq!(u.users(), 0);
    }

    #[test]
    fn refuse_new_cuts_the_newcomer() {
        let mut u = UserSessions::default();
        let t0 = Instant::now();
        let one = NonZeroU32::new(1).unwrap();
        let refuse = LimitPolicy::RefuseNew;
        assert!(u.opened("alice", id(1), 0, one, refuse, t0).is_empty());
        assert_eq!(
            u.opened("alice", id(2), 0, one, refuse, t0),
            vec![(id(2), DenyReason::SessionLimit)]
        );
        // Closed on one shard of two: still open.
        assert!(u.opened("alice", id(1), 1, one, refuse, t0).is_empty());
        u.closed("alice", id(1), 0);
        assert_eq!(u.users(), 1);
        u.closed("alice", id(1), 1);
        assert_eq!(u.users(), 0);
    }
}
