//! Per-user session limits: `X-UserId` + `X-Max-Sessions` / `X-Unique` (spec §3, §4).
//!
//! Owns: the pure decision of which sessions of one user survive when a session asks to
//! play (a new session, or an existing one being re-authorized), under `LimitPolicy`.
//! Never does: finding a user's sessions (they may live on several shards and protocols;
//! the caller gathers them), closing anything, clocks, or I/O.
//!
//! The rule: order the user's sessions by `opened_at` (ties keep the caller's order; a new
//! session always counts as the newest). `CloseOldest` (the spec's default, Flussonic's
//! behaviour) keeps the newest `max` and closes the rest; `RefuseNew` keeps the oldest
//! `max`, refuses the asking session when it is not among them and closes nothing (others
//! over the limit, e.g. after a portal lowered it, are refused at their own re-auth).

use crate::auth::verdict::DenyReason;
use std::num::NonZeroU32;
use std::time::Instant;

/// What to do when a user would exceed the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitPolicy {
    /// The new session plays; the user's oldest sessions are closed.
    #[default]
    CloseOldest,
    /// The user's existing sessions keep playing; the new one is refused.
    RefuseNew,
}

/// One of a user's sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenSession<Id> {
    pub id: Id,
    pub opened_at: Instant,
}

/// The outcome for the asking session and the sessions to close (oldest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitDecision<Id> {
    Admit {
        close: Vec<Id>,
    },
    /// The asking session must not play (`session_limit`); `close` may still hold other
    /// sessions over the limit.
    Refuse {
        reason: DenyReason,
        close: Vec<Id>,
    },
}

impl<Id> LimitDecision<Id> {
    pub fn is_admitted(&self) -> bool {
        matches!(self, LimitDecision::Admit { .. })
    }

    /// Sessions to close, oldest first.
    pub fn to_close(&self) -> &[Id] {
        match self {
            LimitDecision::Admit { close } | LimitDecision::Refuse { close, .. } => close,
        }
    }
}

/// Decides whether `asking` may play given the user's `open` sessions (which may or may not
/// include `asking` already, with the same id) and the user's limit `max`.
pub fn decide<Id: Copy + Eq>(
    open: &[OpenSession<Id>],
    asking: OpenSession<Id>,
    max: NonZeroU32,
    policy: LimitPolicy,
) -> LimitDecision<Id> {
    let is_new = !open.iter().any(|s| s.id == asking.id);
    // (new session last, opened_at, caller's order)
    let mut ordered: Vec<(bool, Instant, usize, Id)> = open
        .iter()
        .enumerate()
        .map(|(i, s)| (false, s.opened_at, i, s.id))
        .collect();
    if is_new {
        ordered.push((true, asking.opened_at, open.len(), asking.id));
    }
    ordered.sort_by_key(|&(new, at, i, _)| (new, at, i));
    let max = usize::try_from(max.get()).unwrap_or(usize::MAX);
    let excess = ordered.len().saturating_sub(max);
    let (dropped, kept) = match policy {
        LimitPolicy::CloseOldest => (&ordered[..excess], &ordered[excess..]),
        LimitPolicy::RefuseNew => {
            let keep = ordered.len() - excess;
            (&ordered[keep..], &ordered[..keep])
        }
    };
    let admitted = kept.iter().any(|&(_, _, _, id)| id == asking.id);
    let close: Vec<Id> = match policy {
        LimitPolicy::CloseOldest => dropped
            .iter()
            .map(|&(_, _, _, id)| id)
            .filter(|&id| id != asking.id)
            .collect(),
        LimitPolicy::RefuseNew => Vec::new(),
    };
    if admitted {
        LimitDecision::Admit { close }
    } else {
        LimitDecision::Refuse {
            reason: DenyReason::SessionLimit,
            close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn sessions(t0: Instant, ages: &[(u32, u64)]) -> Vec<OpenSession<u32>> {
        ages.iter()
            .map(|&(id, s)| OpenSession {
                id,
                opened_at: at(t0, s),
            })
            .collect()
    }

    fn max(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn under_the_limit_admits() {
        let t0 = Instant::now();
        let open = sessions(t0, &[(1, 0), (2, 5)]);
        let new = OpenSession {
            id: 3,
            opened_at: at(t0, 9),
        };
        for policy in [LimitPolicy::CloseOldest, LimitPolicy::RefuseNew] {
            assert_eq!(
                decide(&open, new, max(3), policy),
                LimitDecision::Admit { close: vec![] }
            );
            assert_eq!(
                decide(&[], new, max(1), policy),
                LimitDecision::Admit { close: vec![] }
            );
        }
    }

    #[test]
    fn close_oldest_at_the_limit() {
        let t0 = Instant::now();
        // Given out of order: age decides, not position.
        let open = sessions(t0, &[(2, 5), (1, 0), (3, 7)]);
        let new = OpenSession {
            id: 4,
            opened_at: at(t0, 9),
        };
        assert_eq!(
            decide(&open, new, max(3), LimitPolicy::CloseOldest),
            LimitDecision::Admit { close: vec![1] }
        );
        assert_eq!(
            decide(&open, new, max(1), LimitPolicy::CloseOldest),
            LimitDecision::Admit {
                close: vec![1, 2, 3]
            }
        );
        // X-Unique with one open session elsewhere: the old one goes.
        let one = sessions(t0, &[(1, 0)]);
        let d = decide(&one, new, max(1), LimitPolicy::default());
        assert!(d.is_admitted());
        assert_eq!(d.to_close(), &[1]);
    }

    #[test]
    fn refuse_new_at_the_limit() {
        let t0 = Instant::now();
        let open = sessions(t0, &[(1, 0), (2, 5)]);
        let new = OpenSession {
            id: 3,
            opened_at: at(t0, 9),
        };
        assert_eq!(
            decide(&open, new, max(2), LimitPolicy::RefuseNew),
            LimitDecision::Refuse {
                reason: DenyReason::SessionLimit,
                close: vec![]
            }
        );
    }

    #[test]
    fn existing_session_reauthorized() {
        let t0 = Instant::now();
        let open = sessions(t0, &[(1, 0), (2, 5), (3, 7)]);
        let again = |id, secs| OpenSession {
            id,
            opened_at: at(t0, secs),
        };
        // Within the limit: nothing happens, the session is not counted twice.
        assert_eq!(
            decide(&open, again(2, 5), max(3), LimitPolicy::CloseOldest),
            LimitDecision::Admit { close: vec![] }
        );
        // The portal lowered the limit to 2. CloseOldest: session 1 is the oldest, so
        // asking for it refuses it; asking for 3 closes 1.
        assert_eq!(
            decide(&open, again(1, 0), max(2), LimitPolicy::CloseOldest),
            LimitDecision::Refuse {
                reason: DenyReason::SessionLimit,
                close: vec![]
            }
        );
        assert_eq!(
            decide(&open, again(3, 7), max(2), LimitPolicy::CloseOldest),
            LimitDecision::Admit { close: vec![1] }
        );
        // Lowered to 1: asking for 2 refuses it and closes 1 (3 survives).
        assert_eq!(
            decide(&open, again(2, 5), max(1), LimitPolicy::CloseOldest),
            LimitDecision::Refuse {
                reason: DenyReason::SessionLimit,
                close: vec![1]
            }
        );
        // RefuseNew keeps the oldest: 1 and 2 stay, 3 is refused at its re-auth.
        assert!(decide(&open, again(1, 0), max(2), LimitPolicy::RefuseNew).is_admitted());
        assert_eq!(
            decide(&open, again(3, 7), max(2), LimitPolicy::RefuseNew),
            LimitDecision::Refuse {
                reason: DenyReason::SessionLimit,
                close: vec![]
            }
        );
    }

    #[test]
    fn ties_keep_the_callers_order() {
        let t0 = Instant::now();
        let open = sessions(t0, &[(7, 0), (5, 0), (6, 0)]);
        let new = OpenSession {
            id: 1,
            opened_at: t0,
        };
        assert_eq!(
            decide(&open, new, max(2), LimitPolicy::CloseOldest),
            LimitDecision::Admit { close: vec![7, 5] }
        );
        // A new session opened "earlier" (clock skew between shards) still counts as newest.
        let skewed = OpenSession {
            id: 1,
            opened_at: t0,
        };
        let later = sessions(t0, &[(2, 10)]);
        assert_eq!(
            decide(&later, skewed, max(1), LimitPolicy::CloseOldest),
            LimitDecision::Admit { close: vec![2] }
        );
    }
}
