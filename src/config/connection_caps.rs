//! `ConnectionCaps`: how many connections each shard takes per protocol, and per client IP,
//! derived from the process's file limit (`RLIMIT_NOFILE`) so that a cap always answers
//! (HTTP `503`, RTMP/RTSP closed at once) before `accept` could fail with `EMFILE`.
//!
//! Every client connection holds one file descriptor. The process needs some of its own
//! (listeners, io_uring rings and eventfds per shard, the RTP/RTCP UDP pair, portal
//! connections, a refused connection between its accept and its close), so a reserve is kept
//! back; the rest is split evenly over the shards and, inside a shard, evenly over the
//! protocols it serves, so that a flood on one protocol never takes another's share. The sum
//! of every cap stays below the limit whatever mix of protocols arrives.
//!
//! Pure arithmetic: the runtime reads (and raises) the limit and hands it in.

/// Descriptors kept back for the process itself, before any per-shard or proportional part.
pub const FD_RESERVE_BASE: u64 = 32;
/// Descriptors a shard keeps open for the memory files of its hot segment bodies
/// (`runtime::body_files`).
pub const FD_RESERVE_BODY_FILES: u64 = 8;
/// Descriptors kept back per shard (its listeners, rings, eventfds, UDP pair, portal pool,
/// connections being refused, the body files).
pub const FD_RESERVE_PER_SHARD: u64 = 8 + FD_RESERVE_BODY_FILES;
/// One part in this many of the limit is kept back too (connections being refused under a
/// flood scale with the load).
pub const FD_RESERVE_FRACTION: u64 = 32;

/// One shard's connection caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Open HTTP connections (past it: `503` and close).
    pub http: usize,
    /// Open RTMP connections (past it: closed at once).
    pub rtmp: usize,
    /// Open RTSP connections (past it: closed at once).
    pub rtsp: usize,
    /// Open connections of one client IP, every protocol together; `usize::MAX` is none.
    pub per_ip: usize,
}

/// Which protocols a shard serves (each gets a share only if it does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    pub http: bool,
    pub rtmp: bool,
    pub rtsp: bool,
}

impl ConnectionCaps {
    /// The caps of each of `shards` shards under a file limit of `fd_limit`. `per_ip` is the
    /// process-wide per-IP cap (`max_connections_per_ip`, 0 for none); the kernel spreads one
    /// client's connections over the shards (SO_REUSEPORT hashes each connection), so each
    /// shard allows its share, rounded up.
    pub fn derive(fd_limit: u64, shards: usize, served: Served, per_ip: u32) -> ConnectionCaps {
        let shards = shards.max(1) as u64;
        let reserve =
            FD_RESERVE_BASE + FD_RESERVE_PER_SHARD * shards + fd_limit / FD_RESERVE_FRACTION;
        let per_shard = fd_limit.saturating_sub(reserve) / shards;
        let protocols = u64::from(served.http) + u64::from(served.rtmp) + u64::from(served.rtsp);
        let share = usize::try_from(per_shard / protocols.max(1)).unwrap_or(usize::MAX);
        let share_if = |on: bool| if on { share } else { 0 };
        ConnectionCaps {
            http: share_if(served.http),
            rtmp: share_if(served.rtmp),
            rtsp: share_if(served.rtsp),
            per_ip: ConnectionCaps::per_ip_share(per_ip, shards as usize),
        }
    }

    /// Each shard's share of the process-wide per-IP cap (0: none), rounded up.
    pub fn per_ip_share(per_ip: u32, shards: usize) -> usize {
        match u64::from(per_ip) {
            0 => usize::MAX,
            n => usize::try_from(n.div_ceil(shards.max(1) as u64)).unwrap_or(usize::MAX),
        }
    }

    /// Client connections a shard may hold in all.
    pub fn total(&self) -> usize {
        self.http
            .saturating_add(self.rtmp)
            .saturating_add(self.rtsp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Served = Served {
        http: true,
        rtmp: true,
        rtsp: true,
    };

    #[test]
    fn every_cap_together_stays_below_the_limit() {
        for limit in [256u64, 1024, 20_000, 1 << 20] {
            for shards in 1..=16 {
                let caps = ConnectionCaps::derive(limit, shards, ALL, 0);
                let all = caps.total() as u64 * shards as u64;
                let reserve = FD_RESERVE_BASE + FD_RESERVE_PER_SHARD * shards as u64;
                assert!(
                    all <= limit.saturating_sub(reserve),
                    "{limit} {shards}: {caps:?}"
                );
            }
        }
    }

    #[test]
    fn the_issue_s_figures() {
        // 20,000 descriptors, 2 shards, three protocols: every cap answers first.
        let caps = ConnectionCaps::derive(20_000, 2, ALL, 1000);
        assert_eq!(caps.http, 3218);
        assert_eq!((caps.rtmp, caps.rtsp), (3218, 3218));
        assert_eq!(caps.per_ip, 500);
        // A lowered limit, as the flood test runs it.
        let caps = ConnectionCaps::derive(256, 2, ALL, 0);
        assert_eq!((caps.http, caps.rtmp, caps.rtsp), (30, 30, 30));
        assert_eq!(caps.per_ip, usize::MAX);
    }

    #[test]
    fn only_served_protocols_get_a_share() {
        let http_only = Served {
            http: true,
            ..Served::default()
        };
        let caps = ConnectionCaps::derive(20_000, 2, http_only, 7);
        assert_eq!((caps.http, caps.rtmp, caps.rtsp), (9655, 0, 0));
        assert_eq!(caps.per_ip, 4, "7 over 2 shards, rounded up");
        // A limit too small for the reserve leaves no room at all, rather than a wrap.
        assert_eq!(ConnectionCaps::derive(10, 4, ALL, 0).total(), 0);
    }
}
