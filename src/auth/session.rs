//! `SessionTable`: the play sessions a shard serves.
//!
//! A session is keyed by (stream, client IP, proto, token) and has a stable UUID derived
//! from that key with process-wide secret seeds, so the shards that see requests of one HLS
//! viewer (its connections may land on different shards) name the same session, and the
//! portal sees one `session_id`. HTTP protocols have no connection to hang a session on,
//! so an HTTP session lives while requests keep coming and closes after `idle_timeout` of
//! silence (swept by the shard's timer); a connection's session (RTMP, RTSP, HTTP MPEG-TS)
//! lives until the connection ends. Session open and close are audit-logged with the token
//! as a short tag, never whole.

use crate::auth::verdict::{Proto, StreamId};
use ahash::AHashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A session id: an RFC 9562 version 4 UUID in its 36-character text form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 36]);

impl SessionId {
    pub fn from_random(bytes: [u8; 16]) -> SessionId {
        let mut b = bytes;
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC variant
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut pos = 0;
        for (i, byte) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                pos += 1;
            }
            out[pos] = HEX[usize::from(byte >> 4)];
            out[pos + 1] = HEX[usize::from(byte & 15)];
            pos += 2;
        }
        SessionId(out)
    }

    /// Parses the 36-character text form (lowercase hex, dashes at 8, 13, 18, 23).
    pub fn parse(text: &str) -> Option<SessionId> {
        let b = text.as_bytes();
        if b.len() != 36 {
            return None;
        }
        for (i, &c) in b.iter().enumerate() {
            let ok = match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
            };
            if !ok {
                return None;
            }
        }
        let mut out = [0u8; 36];
        out.copy_from_slice(b);
        Some(SessionId(out))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and '-' are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub stream: StreamId,
    pub proto: Proto,
    pub ip: IpAddr,
    /// Short, non-reversible tag of the token for logs and the API.
    pub token_tag: TokenTag,
    pub opened: Instant,
    pub last_seen: Instant,
    pub requests: u64,
    pub bytes_sent: u64,
    /// `X-UserId` of the portal's allow.
    pub user: Option<Rc<str>>,
    /// Keyed 64-bit hash of the token (revocation by token matches on it).
    pub token_hash: u64,
    /// Lives with a connection: closed by `SessionTable::close`, never by idleness.
    pub connection: bool,
    /// Connections sharing this session (same stream, proto, IP and token); it closes with
    /// the last one.
    pub connections: u32,
    /// Portal requests made for this session so far (`request_number` counts on from it).
    pub portal_requests: u64,
}

/// What the table learns when a request is attributed to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    Existing,
    Opened,
}

/// A 32-bit tag of a token, printed as `#` and 8 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenTag(pub u32);

impl std::fmt::Display for TokenTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:08x}", self.0)
    }
}

impl std::fmt::Debug for TokenTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[derive(Debug)]
pub struct SessionTable {
    sessions: AHashMap<u64, Session>,
    /// Open sessions per stream (`stream_clients` of portal requests).
    per_stream: AHashMap<StreamId, u64>,
    idle_timeout: Duration,
    capacity: usize,
}

impl SessionTable {
    pub fn new(idle_timeout: Duration, capacity: usize) -> Self {
        SessionTable {
            sessions: AHashMap::new(),
            per_stream: AHashMap::new(),
            idle_timeout,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    pub fn get(&self, key: u64) -> Option<&Session> {
        self.sessions.get(&key)
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut Session> {
        self.sessions.get_mut(&key)
    }

    /// Sessions open on `stream` on this shard.
    pub fn on_stream(&self, stream: StreamId) -> u64 {
        self.per_stream.get(&stream).copied().unwrap_or(0)
    }

    /// Closes the session under `key` (its connection ended, or it was cut).
    pub fn close(&mut self, key: u64) -> Option<Session> {
        let s = self.sessions.remove(&key)?;
        self.forget(s.stream);
        Some(s)
    }

    /// Closes every session `cut` selects, handing each to `closed`.
    pub fn close_where(
        &mut self,
        mut cut: impl FnMut(&Session) -> bool,
        mut closed: impl FnMut(&Session),
    ) -> usize {
        let before = self.sessions.len();
        let per_stream = &mut self.per_stream;
        self.sessions.retain(|_, s| {
            if cut(s) {
                closed(s);
                if let Some(n) = per_stream.get_mut(&s.stream) {
                    *n = n.saturating_sub(1);
                }
                false
            } else {
                true
            }
        });
        before - self.sessions.len()
    }

    fn forget(&mut self, stream: StreamId) {
        if let Some(n) = self.per_stream.get_mut(&stream) {
            *n = n.saturating_sub(1);
        }
    }

    /// Attributes a request to the session under `key`, opening it when new. `new_session`
    /// is called only then, so the steady state allocates nothing. Returns `None` when the
    /// table is full (the caller refuses the request rather than grow without bound).
    pub fn touch(
        &mut self,
        key: u64,
        now: Instant,
        bytes: u64,
        new_session: impl FnOnce() -> Session,
    ) -> Option<(Touch, &Session)> {
        if !self.sessions.contains_key(&key) && self.sessions.len() >= self.capacity {
            return None;
        }
        let mut kind = Touch::Existing;
        let s = self.sessions.entry(key).or_insert_with(|| {
            kind = Touch::Opened;
            new_session()
        });
        if kind == Touch::Opened {
            *self.per_stream.entry(s.stream).or_insert(0) += 1;
        }
        s.last_seen = now;
        s.requests += 1;
        s.bytes_sent += bytes;
        Some((kind, s))
    }

    /// Closes sessions idle for longer than the timeout, handing each to `closed`.
    pub fn expire_idle(&mut self, now: Instant, mut closed: impl FnMut(&Session)) -> usize {
        let timeout = self.idle_timeout;
        self.close_where(
            |s| !s.connection && now.saturating_duration_since(s.last_seen) >= timeout,
            |s| closed(s),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: Instant) -> Session {
        Session {
            id: SessionId::from_random([7; 16]),
            stream: 0,
            proto: Proto::Hls,
            ip: "127.0.0.1".parse().unwrap(),
            token_tag: TokenTag(1),
            opened: now,
            last_seen: now,
            requests: 0,
            bytes_sent: 0,
            user: None,
            token_hash: 0,
            connection: false,
            connections: 0,
            portal_requests: 0,
        }
    }

    #[test]
    fn connection_sessions_never_idle_out_and_counts_follow() {
        let mut t = SessionTable::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        t.touch(1, t0, 0, || Session {
            connection: true,
            ..session(t0)
        });
        t.touch(2, t0, 0, || session(t0));
        assert_eq!(t.on_stream(0), 2);
        assert_eq!(t.expire_idle(t0 + Duration::from_secs(60), |_| {}), 1);
        assert_eq!(t.on_stream(0), 1);
        assert!(t.close(1).is_some());
        assert_eq!((t.len(), t.on_stream(0)), (0, 0));
    }

    #[test]
    fn session_ids_parse_back() {
        let id = SessionId::from_random([0x5a; 16]);
        assert_eq!(SessionId::parse(id.as_str()), Some(id));
        assert_eq!(SessionId::parse("not-an-id"), None);
        assert_eq!(SessionId::parse(&id.as_str().to_uppercase()), None);
    }

    #[test]
    fn uuid_v4_text_form() {
        let id = SessionId::from_random([0xff; 16]);
        assert_eq!(id.as_str(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = SessionId::from_random([0; 16]);
        assert_eq!(id.as_str(), "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn opens_once_then_touches() {
        let mut t = SessionTable::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        assert_eq!(t.touch(1, t0, 10, || session(t0)).unwrap().0, Touch::Opened);
        let (kind, s) = t.touch(1, t0, 5, || unreachable!()).unwrap();
        assert_eq!(kind, Touch::Existing);
        assert_eq!((s.requests, s.bytes_sent), (2, 15));
    }

    #[test]
    fn closes_after_silence() {
        let mut t = SessionTable::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        t.touch(1, t0, 0, || session(t0));
        t.touch(2, t0 + Duration::from_secs(20), 0, || session(t0));
        let mut closed = 0;
        assert_eq!(
            t.expire_idle(t0 + Duration::from_secs(31), |_| closed += 1),
            1
        );
        assert_eq!((closed, t.len()), (1, 1));
    }

    #[test]
    fn refuses_past_capacity() {
        let mut t = SessionTable::new(Duration::from_secs(30), 1);
        let t0 = Instant::now();
        assert!(t.touch(1, t0, 0, || session(t0)).is_some());
        assert!(t.touch(2, t0, 0, || session(t0)).is_none());
        assert!(t.touch(1, t0, 0, || session(t0)).is_some());
    }
}
