//! What the nodes of a fleet tell each other through Redis (issue #17), sans-IO: the
//! messages on the fleet's channel, the stored revocations, the per-user session sets and
//! the admit-or-evict script. The runtime's `cluster` thread does the talking.
//!
//! Nothing secret goes to Redis in the clear: a token travels as the authorizer's keyed
//! hash (`Authorizer::token_hash`), whose seeds every node derives from the fleet's shared
//! secret (`fleet_seed`), so a hash made on one node matches the same token on another.
//! User ids, stream names and session ids are not secrets (the sessions API lists them).

use crate::auth::revoke::RevokeTarget;
use crate::auth::session::SessionId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The channel every node publishes on and subscribes to.
pub const CHANNEL: &str = "tessera:fleet";
/// Stored revocations: a sorted set, member = encoded target, score = expiry (Unix ms).
pub const REVOCATIONS_KEY: &str = "tessera:revocations";
/// The nodes that published a sessions snapshot (a set of names).
pub const NODES_KEY: &str = "tessera:nodes";
/// Longest message or member handled (longer ones are ignored: user ids and stream names
/// are short).
pub const MAX_MESSAGE_LEN: usize = 1024;

/// A user's sessions across the fleet: sorted set, member `OPENED_MS|NODE|SESSION`, score =
/// the last heartbeat (Unix ms).
pub fn user_key(user: &str) -> String {
    format!("tessera:user:{user}")
}

/// A node's sessions, as its API lists them (JSON, with an expiry).
pub fn sessions_key(node: &str) -> String {
    format!("tessera:sessions:{node}")
}

/// The authorizer's hash seed on every node of a fleet: HMAC-SHA256 of a fixed label under
/// the fleet's secret (`cluster_key`, or the Redis address when none is set), so keyed
/// hashes (tokens, session ids, owner shards) agree across nodes and stay unguessable to
/// whoever lacks the secret.
pub fn fleet_seed(secret: &str) -> u64 {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"tessera fleet hash seed v1");
    let out = mac.finalize().into_bytes();
    u64::from_le_bytes(out[..8].try_into().expect("8 bytes"))
}

/// A revocation as the fleet stores and sends it; a token only as its keyed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FleetTarget {
    TokenHash(u64),
    User(Box<str>),
    Session(SessionId),
    Stream(Box<str>),
}

impl FleetTarget {
    /// `token_hash`: the authorizer's keyed hash, for a token target.
    pub fn of(target: &RevokeTarget, token_hash: impl Fn(&[u8]) -> u64) -> FleetTarget {
        match target {
            RevokeTarget::Token(t) => FleetTarget::TokenHash(token_hash(t)),
            RevokeTarget::TokenHash(h) => FleetTarget::TokenHash(*h),
            RevokeTarget::User(u) => FleetTarget::User(u.clone()),
            RevokeTarget::Session(s) => FleetTarget::Session(*s),
            RevokeTarget::Stream(s) => FleetTarget::Stream(s.clone()),
        }
    }

    pub fn to_revoke(&self) -> RevokeTarget {
        match self {
            FleetTarget::TokenHash(h) => RevokeTarget::TokenHash(*h),
            FleetTarget::User(u) => RevokeTarget::User(u.clone()),
            FleetTarget::Session(s) => RevokeTarget::Session(*s),
            FleetTarget::Stream(s) => RevokeTarget::Stream(s.clone()),
        }
    }

    /// `t:HEX`, `u:USER`, `s:UUID`, `x:STREAM`.
    pub fn encode(&self) -> String {
        match self {
            FleetTarget::TokenHash(h) => format!("t:{h:016x}"),
            FleetTarget::User(u) => format!("u:{u}"),
            FleetTarget::Session(s) => format!("s:{s}"),
            FleetTarget::Stream(s) => format!("x:{s}"),
        }
    }

    pub fn decode(text: &str) -> Option<FleetTarget> {
        let (kind, value) = text.split_once(':')?;
        if value.is_empty() || text.len() > MAX_MESSAGE_LEN {
            return None;
        }
        Some(match kind {
            "t" if value.len() == 16 => {
                FleetTarget::TokenHash(u64::from_str_radix(value, 16).ok()?)
            }
            "u" => FleetTarget::User(value.into()),
            "s" => FleetTarget::Session(SessionId::parse(value)?),
            "x" => FleetTarget::Stream(value.into()),
            _ => return None,
        })
    }
}

/// One session in a user's set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub opened_ms: u64,
    pub node: Box<str>,
    pub session: SessionId,
}

impl Member {
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.opened_ms, self.node, self.session)
    }

    pub fn decode(text: &str) -> Option<Member> {
        let mut parts = text.splitn(3, '|');
        let opened_ms = parts.next()?.parse().ok()?;
        let node = parts.next()?;
        let session = SessionId::parse(parts.next()?)?;
        (!node.is_empty()).then(|| Member {
            opened_ms,
            node: node.into(),
            session,
        })
    }
}

/// What travels on `CHANNEL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FleetMsg {
    /// `revoke ORIGIN UNTIL_MS TARGET`: applied by every node but its origin.
    Revoke {
        origin: Box<str>,
        until_ms: u64,
        target: FleetTarget,
    },
    /// `evict MEMBER`: the admit script's verdict, applied by the member's node.
    Evict(Member),
}

impl FleetMsg {
    pub fn encode(&self) -> String {
        match self {
            FleetMsg::Revoke {
                origin,
                until_ms,
                target,
            } => format!("revoke {origin} {until_ms} {}", target.encode()),
            FleetMsg::Evict(m) => format!("evict {}", m.encode()),
        }
    }

    /// `None` for anything malformed or too long (ignored, never a panic).
    pub fn decode(text: &str) -> Option<FleetMsg> {
        if text.len() > MAX_MESSAGE_LEN {
            return None;
        }
        let (kind, rest) = text.split_once(' ')?;
        match kind {
            "revoke" => {
                let mut parts = rest.splitn(3, ' ');
                let origin = parts.next()?;
                let until_ms = parts.next()?.parse().ok()?;
                let target = FleetTarget::decode(parts.next()?)?;
                Some(FleetMsg::Revoke {
                    origin: origin.into(),
                    until_ms,
                    target,
                })
            }
            "evict" => Some(FleetMsg::Evict(Member::decode(rest)?)),
            _ => None,
        }
    }
}

/// Admit-or-evict, atomic in Redis. KEYS[1]: the user's set. ARGV: now (ms), dead before
/// (ms: members whose heartbeat is older are a dead node's and stop counting), max,
/// policy (`close_oldest` or `refuse_new`), the new member, the channel, the set's expiry
/// (ms). Evicted members (the oldest by opening time, the newcomer too when it opened
/// first — its admit ran late —, or the newcomer under `refuse_new`) are published as
/// `evict MEMBER` and returned. A member already in the set is a
/// heartbeat, never a new session.
pub const ADMIT_SCRIPT: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local member = ARGV[5]
local evicted = {}
if redis.call('ZSCORE', KEYS[1], member) then
  redis.call('ZADD', KEYS[1], ARGV[1], member)
  return evicted
end
local max = tonumber(ARGV[3])
local all = redis.call('ZRANGE', KEYS[1], 0, -1)
if #all >= max then
  if ARGV[4] == 'refuse_new' then
    redis.call('PUBLISH', ARGV[6], 'evict ' .. member)
    table.insert(evicted, member)
    return evicted
  end
  table.insert(all, member)
  local function opened(m) return tonumber(string.match(m, '^(%d+)')) or 0 end
  table.sort(all, function(a, b) return opened(a) < opened(b) end)
  local admitted = true
  for i = 1, #all - max do
    if all[i] == member then admitted = false else redis.call('ZREM', KEYS[1], all[i]) end
    redis.call('PUBLISH', ARGV[6], 'evict ' .. all[i])
    table.insert(evicted, all[i])
  end
  if not admitted then return evicted end
end
redis.call('ZADD', KEYS[1], ARGV[1], member)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return evicted
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_ignored() {
        let session = SessionId::from_random([7; 16]);
        let member = Member {
            opened_ms: 1_700_000_000_000,
            node: "edge-a".into(),
            session,
        };
        for msg in [
            FleetMsg::Revoke {
                origin: "edge-b".into(),
                until_ms: 5,
                target: FleetTarget::TokenHash(0xdead_beef),
            },
            FleetMsg::Revoke {
                origin: "b".into(),
                until_ms: 5,
                target: FleetTarget::User("alice smith".into()),
            },
            FleetMsg::Revoke {
                origin: "b".into(),
                until_ms: 5,
                target: FleetTarget::Session(session),
            },
            FleetMsg::Revoke {
                origin: "b".into(),
                until_ms: 5,
                target: FleetTarget::Stream("live/one".into()),
            },
            FleetMsg::Evict(member.clone()),
        ] {
            assert_eq!(FleetMsg::decode(&msg.encode()), Some(msg));
        }
        for bad in [
            "",
            "revoke",
            "revoke a b t:1",
            "revoke a 1 t:xyz",
            "revoke a 1 q:1",
            "revoke a 1 u:",
            "evict 1|a|not-a-uuid",
            "evict x|a|00000000-0000-0000-0000-000000000000",
            "hello world",
        ] {
            assert_eq!(FleetMsg::decode(bad), None, "{bad}");
        }
        assert_eq!(FleetMsg::decode(&"x".repeat(MAX_MESSAGE_LEN + 1)), None);
    }

    #[test]
    fn the_fleet_seed_depends_on_the_secret_only() {
        assert_eq!(fleet_seed("k1"), fleet_seed("k1"));
        assert_ne!(fleet_seed("k1"), fleet_seed("k2"));
    }

    #[test]
    fn a_token_leaves_only_as_its_hash() {
        let t = RevokeTarget::Token(b"secret-token".to_vec().into());
        let f = FleetTarget::of(&t, |_| 42);
        assert_eq!(f, FleetTarget::TokenHash(42));
        assert!(!f.encode().contains("secret"));
        assert_eq!(f.to_revoke(), RevokeTarget::TokenHash(42));
    }
}
