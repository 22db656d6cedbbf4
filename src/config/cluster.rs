//! The `cluster { redis URL; node NAME; }` block and top-level `cluster_key KEY;`
//! (Flussonic's name for the secret every node of a cluster shares): a fleet of nodes that
//! share session limits, revocations and the sessions view through one Redis.
//!
//! Owns the syntax of the Redis address (`RedisUrl`, password hidden from `Display`) and
//! the node name's rules. Never connects (the runtime's `cluster` thread does).

use std::fmt;

/// Longest node name (it is part of Redis keys and session listings).
pub const MAX_NODE_NAME_LEN: usize = 64;
/// Shortest `cluster_key` accepted: 128 bits.
pub const MIN_CLUSTER_KEY_LEN: usize = 16;

/// A `cluster` block, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub redis: RedisUrl,
    /// `node NAME;`; `None`: the host name (the runtime reads it).
    pub node: Option<String>,
}

/// `redis://[user:pass@]HOST:PORT[/DB]`, as written (the client parses it again) and its
/// parts.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    url: String,
    pub host: String,
    pub port: u16,
    pub db: u32,
    has_password: bool,
}

impl RedisUrl {
    /// Checks `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<RedisUrl, String> {
        let usage = "use redis://[USER:PASSWORD@]HOST:PORT[/DB]";
        let rest = text
            .strip_prefix("redis://")
            .ok_or_else(|| format!("not a redis:// address ({usage})"))?;
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((hp, "")) => (hp, 0),
            Some((hp, db)) => (
                hp,
                db.parse::<u32>()
                    .map_err(|_| format!("database `{db}` is not a number ({usage})"))?,
            ),
            None => (rest, 0),
        };
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("the port is missing ({usage})"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("port `{port}` is not 1-65535"))?;
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
        if !host_ok {
            return Err(format!("`{host}` is not a host name or address ({usage})"));
        }
        Ok(RedisUrl {
            url: text.to_string(),
            host: host.to_string(),
            port,
            db,
            has_password: userinfo.is_some_and(|u| !u.is_empty()),
        })
    }

    /// The whole address, credentials included: for the client only, never a log line.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.has_password { "***@" } else { "" };
        write!(f, "redis://{auth}{}:{}/{}", self.host, self.port, self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A node name: 1-64 of `A-Z a-z 0-9 . _ -`.
pub fn check_node_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NODE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node name `{name}`: use 1-{MAX_NODE_NAME_LEN} characters of A-Z a-z 0-9 . _ -"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        let u = RedisUrl::parse("redis://user:secret@10.0.0.5:6380/2").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("10.0.0.5", 6380, 2));
        assert_eq!(u.to_string(), "redis://***@10.0.0.5:6380/2");
        assert!(!format!("{u:?}").contains("secret"));
        assert_eq!(u.expose(), "redis://user:secret@10.0.0.5:6380/2");
        let u = RedisUrl::parse("redis://localhost:6379").unwrap();
        assert_eq!(u.to_string(), "redis://localhost:6379/0");
        for bad in [
            "http://x:1",
            "redis://x",
            "redis://x:0",
            "redis://x:99999",
            "redis://:6379",
            "redis://x:1/db",
            "redis://x y:1",
        ] {
            assert!(RedisUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_names() {
        assert!(check_node_name("edge-1.eu").is_ok());
        assert!(check_node_name("").is_err());
        assert!(check_node_name("a b").is_err());
        assert!(check_node_name(&"a".repeat(65)).is_err());
    }
}
