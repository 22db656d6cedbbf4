//! `ShardState`: everything one shard owns, as a plain value with no I/O: the stream views
//! it serves from, its authorizer (decision cache, sessions), the HTTP limits and a cached
//! `Date` header. The runtime wraps it in `Rc<RefCell<_>>` inside the shard; it is never
//! shared with another thread (other shards talk to it only through `StreamEvent`s).

use crate::auth::Authorizer;
use crate::auth::play::{PlayLifecycle, Step as PlayStep};
use crate::auth::session::SessionId;
use crate::auth::users::UserSessions;
use crate::auth::verdict::DenyReason;
use crate::catalog::Catalog;
use crate::config::HttpLimits;
use crate::stream::view::{StreamEvent, StreamView};
use crate::utc::{HTTP_DATE_LEN, http_date};
use std::sync::Arc;
use std::time::Instant;

/// How long past the slowest backend's timeout a portal question may stay unanswered
/// before the shard gives up on it (the answer was lost with a shard).
const LOOKUP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A moment, both as a monotonic instant (for timeouts) and as wall-clock ms (for names).
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub instant: Instant,
    pub utc_ms: i64,
}

impl Now {
    pub fn read() -> Now {
        Now {
            instant: Instant::now(),
            utc_ms: crate::utc::now_ms(),
        }
    }
}

/// Counters of one shard's HTTP traffic.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpStats {
    pub requests: u64,
    pub bytes_sent: u64,
    pub connections_open: usize,
    pub connections_refused: u64,
}

pub struct ShardState {
    pub id: usize,
    pub shards: usize,
    pub catalog: Arc<Catalog>,
    pub streams: Vec<StreamView>,
    pub auth: Authorizer,
    /// Sessions of the users this shard owns (session limits, across shards).
    pub users: UserSessions,
    pub limits: HttpLimits,
    pub http: HttpStats,
    date_second: i64,
    date: [u8; HTTP_DATE_LEN],
}

impl ShardState {
    pub fn new(
        id: usize,
        shards: usize,
        catalog: Arc<Catalog>,
        limits: HttpLimits,
        seed: u64,
    ) -> Self {
        let streams = catalog
            .streams
            .iter()
            .map(|_| StreamView::default())
            .collect();
        ShardState {
            id,
            shards,
            catalog,
            streams,
            // The same seed on every shard: keys hash alike everywhere (owner shards,
            // session ids).
            auth: Authorizer::new(seed),
            users: UserSessions::default(),
            limits,
            http: HttpStats::default(),
            date_second: i64::MIN,
            date: [b' '; HTTP_DATE_LEN],
        }
    }

    /// Applies an input's announcement to this shard's view of the stream.
    pub fn apply(&mut self, event: StreamEvent) {
        self.apply_from(self.id, event);
    }

    /// Applies an event another shard's input sent.
    pub fn apply_from(&mut self, from: usize, event: StreamEvent) {
        if let Some(view) = self.streams.get_mut(event.stream() as usize) {
            view.apply(from, event);
        }
    }

    /// The `Date` header value, formatted at most once a second.
    pub fn date(&mut self, now: Now) -> &[u8; HTTP_DATE_LEN] {
        let second = now.utc_ms.div_euclid(1000);
        if second != self.date_second {
            self.date_second = second;
            self.date = http_date(now.utc_ms);
        }
        &self.date
    }

    /// A connection's play decision (`auth::play`): the first, or the one after waiting
    /// for a portal's verdict.
    pub fn decide_play(&mut self, play: &mut PlayLifecycle, now: Now) -> PlayStep {
        play.decide(&mut self.auth, &self.catalog, now.instant, now.utc_ms)
    }

    /// Opens an allowed play's session; its id, for logs.
    pub fn open_play_session(
        &mut self,
        play: &mut PlayLifecycle,
        now: Instant,
    ) -> Option<SessionId> {
        play.open_session(&mut self.auth, &self.catalog, now)
    }

    /// Re-checks a playing connection; `Err` (its session closed) when it must end.
    pub fn recheck_play(&mut self, play: &mut PlayLifecycle, now: Now) -> Result<(), DenyReason> {
        play.recheck(&mut self.auth, &self.catalog, now.instant, now.utc_ms)
    }

    /// Closes a play's session (idempotent).
    pub fn close_play(&mut self, play: &mut PlayLifecycle, now: Instant) {
        play.close(&mut self.auth, &self.catalog, now);
    }

    /// Periodic housekeeping (the runtime calls it every second).
    pub fn tick(&mut self, now: Now) {
        let deadline = self.catalog.max_backend_timeout() + LOOKUP_GRACE;
        self.auth.expire(&self.catalog, now.instant, deadline);
    }
}
