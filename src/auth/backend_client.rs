//! Talking to portal backends without flooding them (spec §3, §7.5), sans-IO.
//!
//! Owns: `BackendConnection`, one keep-alive HTTP/1.1 client connection as a state machine
//! (request bytes out, response bytes in, deadline in, `BackendAnswer` out; check-then-parse:
//! the whole head, then the body is skipped); `BackendPool`, the bookkeeping of idle
//! connections and in-flight requests per backend with a concurrency cap; and
//! `CircuitBreaker` (closed → open after N consecutive failures, half-open after a
//! cool-down with exactly one probe).
//!
//! Never does: sockets, DNS, clocks or timers. The shell connects, writes what
//! `poll_transmit` holds, feeds what it reads to `handle_input`, reports EOF with
//! `handle_eof`, and calls `handle_timeout` when `poll_timeout` is due. Every `Permit` the
//! pool hands out must be given back with `release`, exactly once, with the outcome.

use crate::auth::portal::{BackendAnswer, PortalError, ResponseFraming, parse_response_head};
use std::time::{Duration, Instant};

/// How long a portal has to answer (spec §3: 3 s by default).
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest response head accepted.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Largest response body skipped (framing included); portals answer with a few bytes.
pub const MAX_RESPONSE_BODY: u64 = 64 * 1024;
/// Longest chunk-size line (with extensions) or trailer line in a chunked body.
const MAX_CHUNK_LINE: u32 = 1024;

/// Limits of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From `start` to the end of the response.
    pub timeout: Duration,
    pub max_head: usize,
    pub max_body: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            timeout: DEFAULT_BACKEND_TIMEOUT,
            max_head: MAX_RESPONSE_HEAD,
            max_body: MAX_RESPONSE_BODY,
        }
    }
}

#[derive(Debug)]
enum ConnState {
    /// Ready for a request (fresh, or after a complete keep-alive response).
    Idle { since: Instant },
    /// A request is out (or queued in `output`); the head has not fully arrived.
    AwaitingHead,
    /// The head arrived; the body is being skipped. The outcome is reported at its end.
    SkippingBody {
        outcome: Result<BackendAnswer, PortalError>,
        body: BodySkip,
        keep_alive: bool,
    },
    /// Unusable: the shell should close the socket.
    Closed,
}

/// One keep-alive HTTP/1.1 connection to a portal, as a state machine.
#[derive(Debug)]
pub struct BackendConnection {
    state: ConnState,
    limits: ConnectionLimits,
    /// Response head bytes buffered until the blank line.
    head: Vec<u8>,
    /// Request bytes not yet handed to the socket.
    output: Vec<u8>,
    sent: usize,
    started: Option<Instant>,
    deadline: Option<Instant>,
    /// Response bytes received for the request in flight.
    received: usize,
    /// Complete responses on this connection so far.
    responses: u64,
}

impl BackendConnection {
    /// A connection that is ready to carry a request (the shell connects the socket; the
    /// request deadline covers the connect too when `start` is called before it).
    pub fn new(limits: ConnectionLimits, now: Instant) -> Self {
        BackendConnection {
            state: ConnState::Idle { since: now },
            limits,
            head: Vec::new(),
            output: Vec::new(),
            sent: 0,
            started: None,
            deadline: None,
            received: 0,
            responses: 0,
        }
    }

    /// Queues `request` (a complete request from `portal::write_backend_request`) and
    /// starts its deadline. Only on an idle connection.
    pub fn start(&mut self, request: &[u8], now: Instant) -> Result<(), PortalError> {
        match self.state {
            ConnState::Idle { .. } => {}
            ConnState::Closed => return Err(PortalError::NotReady { state: "closed" }),
            _ => {
                return Err(PortalError::NotReady {
                    state: "a request is in flight",
                });
            }
        }
        self.output.clear();
        self.output.extend_from_slice(request);
        self.sent = 0;
        self.head.clear();
        self.received = 0;
        self.started = Some(now);
        self.deadline = Some(now + self.limits.timeout);
        self.state = ConnState::AwaitingHead;
        Ok(())
    }

    /// Request bytes the shell still has to write (empty when all were written).
    pub fn poll_transmit(&self) -> &[u8] {
        self.output.get(self.sent..).unwrap_or_default()
    }

    /// The shell wrote `n` bytes of `poll_transmit`.
    pub fn transmitted(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.output.len());
        if self.sent == self.output.len() {
            self.output.clear();
            self.sent = 0;
        }
    }

    /// When `handle_timeout` must be called, while a request is in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ConnState::AwaitingHead | ConnState::SkippingBody { .. } => self.deadline,
            _ => None,
        }
    }

    /// Fails the request in flight if its deadline has passed; the connection is then
    /// closed (a late response must never answer the next request).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PortalError> {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {
                let waited = now.saturating_duration_since(self.started.unwrap_or(now));
                self.close();
                Err(PortalError::Timeout {
                    waited,
                    received: self.received,
                })
            }
            _ => Ok(()),
        }
    }

    /// Feeds bytes read from the socket. `Ok(Some(answer))` when a response is complete;
    /// `Err` when it is a backend error (check `is_idle` to know whether the connection
    /// survived it, as it does for a well-framed `500`).
    pub fn handle_input(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Option<BackendAnswer>, PortalError> {
        match &mut self.state {
            ConnState::Closed => Ok(None),
            ConnState::Idle { .. } => {
                self.close();
                Err(PortalError::UnsolicitedData { len: bytes.len() })
            }
            ConnState::AwaitingHead => {
                self.received += bytes.len();
                let searched = self.head.len().saturating_sub(3);
                self.head.extend_from_slice(bytes);
                let Some(end) = memchr::memmem::find(&self.head[searched..], b"\r\n\r\n")
                    .map(|i| searched + i + 4)
                else {
                    if self.head.len() > self.limits.max_head {
                        self.close();
                        return Err(PortalError::HeadTooLarge {
                            limit: self.limits.max_head,
                        });
                    }
                    return Ok(None);
                };
                if end > self.limits.max_head {
                    self.close();
                    return Err(PortalError::HeadTooLarge {
                        limit: self.limits.max_head,
                    });
                }
                let head = match parse_response_head(&self.head[..end]) {
                    Ok(head) => head,
                    Err(e) => {
                        self.close();
                        return Err(e);
                    }
                };
                let body = match head.framing {
                    ResponseFraming::UntilClose => {
                        // The decision is complete; the rest is of no interest and the
                        // connection cannot be reused.
                        self.close();
                        return head.answer.map(Some);
                    }
                    ResponseFraming::Length(n) if n > self.limits.max_body => {
                        self.close();
                        return Err(PortalError::BodyTooLarge {
                            limit: self.limits.max_body,
                        });
                    }
                    ResponseFraming::Length(n) => BodySkip::Length { remaining: n },
                    ResponseFraming::Chunked => BodySkip::Chunked(ChunkSkipper::default()),
                };
                let rest = self.head.split_off(end);
                self.head.clear();
                self.state = ConnState::SkippingBody {
                    outcome: head.answer,
                    body,
                    keep_alive: head.keep_alive,
                };
                self.skip_body(&rest, now)
            }
            ConnState::SkippingBody { .. } => {
                self.received += bytes.len();
                self.skip_body(bytes, now)
            }
        }
    }

    fn skip_body(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Option<BackendAnswer>, PortalError> {
        let ConnState::SkippingBody { body, .. } = &mut self.state else {
            return Ok(None);
        };
        let max_body = self.limits.max_body;
        let (consumed, done) = match body.skip(bytes, max_body) {
            Ok(progress) => progress,
            Err(e) => {
                self.close();
                return Err(e);
            }
        };
        if !done {
            return Ok(None);
        }
        let state = std::mem::replace(&mut self.state, ConnState::Closed);
        let ConnState::SkippingBody {
            outcome,
            keep_alive,
            ..
        } = state
        else {
            return Ok(None);
        };
        self.responses += 1;
        self.deadline = None;
        // Bytes past the end of the response were never asked for: do not reuse.
        if keep_alive && consumed == bytes.len() {
            self.state = ConnState::Idle { since: now };
        } else {
            self.close();
        }
        outcome.map(Some)
    }

    /// The portal closed the connection (EOF on read).
    pub fn handle_eof(&mut self) -> Result<Option<BackendAnswer>, PortalError> {
        let state = std::mem::replace(&mut self.state, ConnState::Closed);
        self.deadline = None;
        match state {
            ConnState::Idle { .. } | ConnState::Closed => Ok(None),
            ConnState::AwaitingHead => Err(PortalError::ClosedEarly {
                reused: self.responses > 0,
                received: self.received,
            }),
            // The head, and so the decision, was complete; only the body was cut short.
            ConnState::SkippingBody { outcome, .. } => outcome.map(Some),
        }
    }

    fn close(&mut self) {
        self.state = ConnState::Closed;
        self.deadline = None;
        self.head = Vec::new();
        self.output = Vec::new();
        self.sent = 0;
    }

    /// Ready for `start`.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, ConnState::Idle { .. })
    }

    /// The shell should close the socket and drop this value.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, ConnState::Closed)
    }

    /// Since when the connection has been idle (for the pool's idle timeout).
    pub fn idle_since(&self) -> Option<Instant> {
        match self.state {
            ConnState::Idle { since } => Some(since),
            _ => None,
        }
    }

    /// Complete responses received on this connection.
    pub fn responses(&self) -> u64 {
        self.responses
    }
}

/// The body still to skip.
#[derive(Debug)]
enum BodySkip {
    Length { remaining: u64 },
    Chunked(ChunkSkipper),
}

impl BodySkip {
    /// Skips what `bytes` holds of the body: (bytes consumed, whether the body ended).
    fn skip(&mut self, bytes: &[u8], max_body: u64) -> Result<(usize, bool), PortalError> {
        match self {
            BodySkip::Length { remaining } => {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *remaining -= take as u64;
                Ok((take, *remaining == 0))
            }
            BodySkip::Chunked(c) => c.skip(bytes, max_body),
        }
    }
}

/// Skips a chunked body (RFC 9112 §7.1) without keeping any of it: sizes, extensions,
/// data, and trailers, checking every CRLF.
#[derive(Debug, Default)]
struct ChunkSkipper {
    state: ChunkState,
    size: u64,
    digits: u32,
    line: u32,
    offset: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl ChunkSkipper {
    fn skip(&mut self, bytes: &[u8], max_body: u64) -> Result<(usize, bool), PortalError> {
        let mut i = 0;
        while i < bytes.len() && self.state != ChunkState::Done {
            if self.state == ChunkState::Data {
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                self.size -= take as u64;
                self.advance(take as u64, max_body)?;
                i += take;
                if self.size == 0 {
                    self.state = ChunkState::DataCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.advance(1, max_body)?;
            self.state = match (self.state, b) {
                (ChunkState::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    if self.digits == 15 {
                        return self.bad("chunk size has more than 15 hex digits");
                    }
                    self.digits += 1;
                    // At most 15 digits: cannot overflow.
                    self.size = self.size * 16 + u64::from(hex_value(b));
                    ChunkState::Size
                }
                (ChunkState::Size, b';' | b' ' | b'\t') if self.digits > 0 => ChunkState::Extension,
                (ChunkState::Size | ChunkState::Extension, b'\r') if self.digits > 0 => {
                    ChunkState::SizeLf
                }
                (ChunkState::Size, _) => return self.bad("expected a hex chunk size"),
                (ChunkState::Extension, _) => {
                    self.line += 1;
                    if self.line > MAX_CHUNK_LINE {
                        return self.bad("chunk extension too long");
                    }
                    ChunkState::Extension
                }
                (ChunkState::SizeLf, b'\n') => {
                    let last = self.size == 0;
                    self.digits = 0;
                    self.line = 0;
                    if last {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data
                    }
                }
                (ChunkState::DataCr, b'\r') => ChunkState::DataLf,
                (ChunkState::DataLf, b'\n') => ChunkState::Size,
                (ChunkState::SizeLf | ChunkState::DataCr | ChunkState::DataLf, _) => {
                    return self.bad("expected CRLF");
                }
                (ChunkState::TrailerStart, b'\r') => ChunkState::EndLf,
                (ChunkState::Trailer, b'\r') => ChunkState::TrailerLf,
                (ChunkState::TrailerStart | ChunkState::Trailer, _) => {
                    self.line += 1;
                    if self.line > MAX_CHUNK_LINE {
                        return self.bad("trailer line too long");
                    }
                    ChunkState::Trailer
                }
                (ChunkState::TrailerLf, b'\n') => {
                    self.line = 0;
                    ChunkState::TrailerStart
                }
                (ChunkState::EndLf, b'\n') => ChunkState::Done,
                (ChunkState::TrailerLf | ChunkState::EndLf, _) => {
                    return self.bad("expected CRLF");
                }
                // Handled before the match (Data) or ends the loop (Done).
                (ChunkState::Data | ChunkState::Done, _) => self.state,
            };
        }
        Ok((i, self.state == ChunkState::Done))
    }

    fn advance(&mut self, n: u64, max_body: u64) -> Result<(), PortalError> {
        self.offset += n;
        if self.offset > max_body {
            return Err(PortalError::BodyTooLarge { limit: max_body });
        }
        Ok(())
    }

    fn bad<T>(&self, problem: &'static str) -> Result<T, PortalError> {
        Err(PortalError::BadChunk {
            problem,
            offset: self.offset.saturating_sub(1),
        })
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// How a request to a backend ended, for the circuit breaker: `Failure` for timeouts,
/// connection errors and backend errors (unexpected statuses); a `403` is a `Success`
/// (the portal works, it said no).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// Circuit breaker settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit (at least 1).
    pub failure_threshold: u32,
    /// How long an open circuit refuses requests before it lets one probe through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; failures are counted.
    Closed { consecutive_failures: u32 },
    /// Requests are refused until `until`.
    Open { until: Instant },
    /// One probe is in flight; everything else is refused until it reports.
    HalfOpen,
}

/// Whether an admitted request is an ordinary one or the half-open probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Normal,
    Probe,
}

/// Closed → open after `failure_threshold` consecutive failures; open → half-open when the
/// cool-down has passed, admitting exactly one probe; the probe's success closes the
/// circuit, its failure opens it for another cool-down. Results of ordinary requests that
/// were in flight when the circuit opened are ignored.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                ..config
            },
            state: BreakerState::Closed {
                consecutive_failures: 0,
            },
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a request may go out now, and as what.
    pub fn admit(&mut self, now: Instant) -> Option<Admission> {
        match self.state {
            BreakerState::Closed { .. } => Some(Admission::Normal),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Some(Admission::Probe)
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => None,
        }
    }

    /// Whether `admit` would let a request through at `now` (no state change).
    pub fn would_admit(&self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } => now >= until,
            BreakerState::HalfOpen => false,
        }
    }

    /// Reports how an admitted request ended.
    pub fn record(&mut self, admission: Admission, outcome: Outcome, now: Instant) {
        let open = BreakerState::Open {
            until: now + self.config.cool_down,
        };
        self.state = match (self.state, admission, outcome) {
            (BreakerState::HalfOpen, Admission::Probe, Outcome::Success) => BreakerState::Closed {
                consecutive_failures: 0,
            },
            (BreakerState::HalfOpen, Admission::Probe, Outcome::Failure) => open,
            (BreakerState::Closed { .. }, Admission::Normal, Outcome::Success) => {
                BreakerState::Closed {
                    consecutive_failures: 0,
                }
            }
            (
                BreakerState::Closed {
                    consecutive_failures,
                },
                Admission::Normal,
                Outcome::Failure,
            ) => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= self.config.failure_threshold {
                    open
                } else {
                    BreakerState::Closed {
                        consecutive_failures: failures,
                    }
                }
            }
            // Late results of requests admitted before the circuit opened, or a probe
            // reporting in a state it did not start from: no change.
            (state, _, _) => state,
        };
    }
}

/// Pool settings, per backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// Requests in flight to one backend at once (spec §7.5).
    pub max_in_flight: u32,
    /// Idle keep-alive connections kept per backend.
    pub max_idle: usize,
    /// Idle connections older than this are not reused (portals close idle connections;
    /// reusing one that is about to close wastes a round trip).
    pub idle_timeout: Duration,
    pub breaker: BreakerConfig,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_in_flight: 64,
            max_idle: 16,
            idle_timeout: Duration::from_secs(30),
            breaker: BreakerConfig::default(),
        }
    }
}

/// Permission to send one request to one backend. Not `Clone`: give it back to
/// `BackendPool::release` exactly once.
#[must_use = "a permit must be released with the request's outcome"]
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    backend: usize,
    admission: Admission,
}

impl Permit {
    pub fn backend(&self) -> usize {
        self.backend
    }

    pub fn is_probe(&self) -> bool {
        self.admission == Admission::Probe
    }
}

/// Why `acquire` said no.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `max_in_flight` requests are already out to this backend.
    AtCapacity,
    /// The backend's circuit is open (or half-open with its probe out).
    CircuitOpen,
    /// No backend with that index.
    UnknownBackend,
}

struct BackendSlot<C> {
    /// Newest last: reused first, since it is the least likely to have been closed.
    idle: Vec<(C, Instant)>,
    in_flight: u32,
    breaker: CircuitBreaker,
}

/// Per-backend bookkeeping for one shard: idle connections (`C` is whatever the shell
/// keeps per connection, e.g. its socket and `BackendConnection`), in-flight counts under
/// a cap, and a circuit breaker. Backends are numbered `0..backends`.
pub struct BackendPool<C> {
    slots: Vec<BackendSlot<C>>,
    limits: PoolLimits,
}

impl<C> BackendPool<C> {
    pub fn new(backends: usize, limits: PoolLimits) -> Self {
        BackendPool {
            slots: (0..backends)
                .map(|_| BackendSlot {
                    idle: Vec::new(),
                    in_flight: 0,
                    breaker: CircuitBreaker::new(limits.breaker),
                })
                .collect(),
            limits,
        }
    }

    /// Permission to send a request to `backend` now: refused when the cap is reached or
    /// the circuit is open. The cap is checked first, so a refused request never takes
    /// the half-open probe.
    pub fn acquire(&mut self, backend: usize, now: Instant) -> Result<Permit, Refusal> {
        let cap = self.limits.max_in_flight;
        let slot = self.slots.get_mut(backend).ok_or(Refusal::UnknownBackend)?;
        if slot.in_flight >= cap {
            return Err(Refusal::AtCapacity);
        }
        let admission = slot.breaker.admit(now).ok_or(Refusal::CircuitOpen)?;
        slot.in_flight += 1;
        Ok(Permit { backend, admission })
    }

    /// Gives a permit back with how its request ended.
    pub fn release(&mut self, permit: Permit, outcome: Outcome, now: Instant) {
        if let Some(slot) = self.slots.get_mut(permit.backend) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
            slot.breaker.record(permit.admission, outcome, now);
        }
    }

    /// Gives a permit back whose request was abandoned (another backend answered first):
    /// no outcome for the breaker, but a probe that never reported lets the next request
    /// probe again at once, so the circuit cannot stay half-open for good.
    pub fn cancel(&mut self, permit: Permit, now: Instant) {
        if let Some(slot) = self.slots.get_mut(permit.backend) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
            if permit.admission == Admission::Probe && slot.breaker.state == BreakerState::HalfOpen
            {
                slot.breaker.state = BreakerState::Open { until: now };
            }
        }
    }

    /// The most recently parked idle connection to `backend` that is still fresh. Stale
    /// ones are dropped (dropping `C` must close it).
    pub fn take_idle(&mut self, backend: usize, now: Instant) -> Option<C> {
        let idle_timeout = self.limits.idle_timeout;
        let slot = self.slots.get_mut(backend)?;
        while let Some((conn, since)) = slot.idle.pop() {
            if now.saturating_duration_since(since) < idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    /// Parks an idle connection for reuse. Gives it back when the backend already has
    /// `max_idle` parked (the caller closes it).
    pub fn put_idle(&mut self, backend: usize, conn: C, now: Instant) -> Option<C> {
        let max_idle = self.limits.max_idle;
        match self.slots.get_mut(backend) {
            Some(slot) if slot.idle.len() < max_idle => {
                slot.idle.push((conn, now));
                None
            }
            _ => Some(conn),
        }
    }

    /// Removes idle connections past the idle timeout, handing each to `close`.
    pub fn sweep_idle(&mut self, now: Instant, mut close: impl FnMut(usize, C)) {
        let idle_timeout = self.limits.idle_timeout;
        for (backend, slot) in self.slots.iter_mut().enumerate() {
            let mut i = 0;
            while i < slot.idle.len() {
                if now.saturating_duration_since(slot.idle[i].1) >= idle_timeout {
                    let (conn, _) = slot.idle.remove(i);
                    close(backend, conn);
                } else {
                    i += 1;
                }
            }
        }
    }

    pub fn in_flight(&self, backend: usize) -> u32 {
        self.slots.get(backend).map_or(0, |s| s.in_flight)
    }

    pub fn idle_count(&self, backend: usize) -> usize {
        self.slots.get(backend).map_or(0, |s| s.idle.len())
    }

    pub fn breaker_state(&self, backend: usize) -> Option<BreakerState> {
        self.slots.get(backend).map(|s| s.breaker.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::portal::BackendDecision;
    use crate::auth::verdict::DenyReason;

    const REQ: &[u8] = b"GET /auth?name=s HTTP/1.1\r\nHost: p\r\n\r\n";

    fn conn(now: Instant) -> BackendConnection {
        BackendConnection::new(ConnectionLimits::default(), now)
    }

    #[test]
    fn one_request_then_reuse() {
        let t0 = Instant::now();
        let mut c = conn(t0);
        assert!(c.is_idle());
        c.start(REQ, t0).unwrap();
        assert_eq!(c.poll_transmit(), REQ);
        c.transmitted(10);
        assert_eq!(c.poll_transmit(), &REQ[10..]);
        c.transmitted(REQ.len() - 10);
        assert!(c.poll_transmit().is_empty());
        assert_eq!(c.poll_timeout(), Some(t0 + DEFAULT_BACKEND_TIMEOUT));
        assert!(matches!(
            c.start(REQ, t0),
            Err(PortalError::NotReady { .. })
        ));

        // The head arrives byte by byte, then the body.
        let resp = b"HTTP/1.1 200 OK\r\nX-AuthDuration: 60\r\nContent-Length: 2\r\n\r\nok";
        let (head, body) = resp.split_at(resp.len() - 2);
        for &b in head {
            assert_eq!(c.handle_input(&[b], t0), Ok(None));
        }
        let answer = c.handle_input(body, t0).unwrap().unwrap();
        assert_eq!(answer.decision, BackendDecision::Allow);
        assert_eq!(answer.duration, Duration::from_secs(60));
        assert!(c.is_idle());
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.idle_since(), Some(t0));

        // Reused: a 403 with head and body in one read.
        c.start(REQ, t0).unwrap();
        let a = c
            .handle_input(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied",
                t0,
            )
            .unwrap()
            .unwrap();
        assert_eq!(a.decision, BackendDecision::Deny(DenyReason::BackendDenied));
        assert_eq!(c.responses(), 2);
        assert!(c.is_idle());
    }

    #[test]
    fn chunked_body_is_skipped() {
        let t0 = Instant::now();
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        let resp: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
        // Split at every position: the result never depends on how reads fall.
        for split in 0..resp.len() {
            let mut c = conn(t0);
            c.start(REQ, t0).unwrap();
            let first = c.handle_input(&resp[..split], t0).unwrap();
            assert_eq!(first, None, "split {split}");
            let second = c.handle_input(&resp[split..], t0).unwrap();
            assert!(second.is_some(), "split {split}");
            assert!(c.is_idle());
        }
        let bad: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n";
        assert!(matches!(
            c.handle_input(bad, t0),
            Err(PortalError::BadChunk { .. })
        ));
        assert!(c.is_closed());
    }

    #[test]
    fn backend_error_status_keeps_connection() {
        let t0 = Instant::now();
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        assert_eq!(
            c.handle_input(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nboom", t0),
            Err(PortalError::UnexpectedStatus { status: 500 })
        );
        assert!(c.is_idle());
    }

    #[test]
    fn until_close_answers_and_closes() {
        let t0 = Instant::now();
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        let a = c
            .handle_input(b"HTTP/1.0 200 OK\r\nServer: py\r\n\r\nbody", t0)
            .unwrap();
        assert_eq!(a.map(|a| a.decision), Some(BackendDecision::Allow));
        assert!(c.is_closed());
        assert_eq!(c.handle_eof(), Ok(None));
    }

    #[test]
    fn connection_close_and_extra_bytes_close() {
        let t0 = Instant::now();
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        c.handle_input(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            t0,
        )
        .unwrap()
        .unwrap();
        assert!(c.is_closed());
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        c.handle_input(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 403",
            t0,
        )
        .unwrap()
        .unwrap();
        assert!(
            c.is_closed(),
            "a smuggled second response must not be read later"
        );
        let mut c = conn(t0);
        assert_eq!(
            c.handle_input(b"HTTP/1.1 200 OK\r\n", t0),
            Err(PortalError::UnsolicitedData { len: 17 })
        );
        assert!(c.is_closed());
        assert!(matches!(
            c.start(REQ, t0),
            Err(PortalError::NotReady { .. })
        ));
    }

    #[test]
    fn timeout_closes() {
        let t0 = Instant::now();
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        c.handle_input(b"HTTP/1.1 200", t0).unwrap();
        assert_eq!(c.handle_timeout(t0 + Duration::from_secs(2)), Ok(()));
        let err = c.handle_timeout(t0 + Duration::from_secs(3)).unwrap_err();
        assert_eq!(
            err,
            PortalError::Timeout {
                waited: Duration::from_secs(3),
                received: 12
            }
        );
        assert!(err.to_string().contains("3000 ms"));
        assert!(c.is_closed());
        assert_eq!(c.poll_timeout(), None);
        // Late bytes are ignored.
        assert_eq!(c.handle_input(b" OK\r\n\r\n", t0), Ok(None));
    }

    #[test]
    fn eof_cases() {
        let t0 = Instant::now();
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        let err = c.handle_eof().unwrap_err();
        assert!(!err.is_stale_connection(), "fresh connection");
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        c.handle_input(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", t0)
            .unwrap();
        c.start(REQ, t0).unwrap();
        let err = c.handle_eof().unwrap_err();
        assert!(err.is_stale_connection(), "{err}");
        // Body cut short: the decision in the head stands.
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        c.handle_input(b"HTTP/1.1 403 No\r\nContent-Length: 10\r\n\r\nab", t0)
            .unwrap();
        assert_eq!(
            c.handle_eof().unwrap().map(|a| a.decision),
            Some(BackendDecision::Deny(DenyReason::BackendDenied))
        );
    }

    #[test]
    fn limits() {
        let t0 = Instant::now();
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        let long = vec![b'a'; MAX_RESPONSE_HEAD + 1];
        assert!(matches!(
            c.handle_input(&long, t0),
            Err(PortalError::HeadTooLarge { .. })
        ));
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        assert!(matches!(
            c.handle_input(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n", t0),
            Err(PortalError::BodyTooLarge { .. })
        ));
        let mut c = conn(t0);
        c.start(REQ, t0).unwrap();
        c.handle_input(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", t0)
            .unwrap();
        let mut result = Ok(None);
        for _ in 0..100 {
            result = c.handle_input(b"3E8\r\n", t0).and_then(|_| {
                c.handle_input(&[b'x'; 1000], t0)?;
                c.handle_input(b"\r\n", t0)
            });
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(PortalError::BodyTooLarge { .. })));
    }

    #[test]
    fn breaker_transitions() {
        let t0 = Instant::now();
        let cfg = BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(5),
        };
        let mut b = CircuitBreaker::new(cfg);
        // Closed: failures count, a success resets.
        for _ in 0..2 {
            assert_eq!(b.admit(t0), Some(Admission::Normal));
            b.record(Admission::Normal, Outcome::Failure, t0);
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 2
            }
        );
        b.record(Admission::Normal, Outcome::Success, t0);
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 0
            }
        );
        // Closed → open after 3 consecutive failures.
        for _ in 0..3 {
            b.record(Admission::Normal, Outcome::Failure, t0);
        }
        let until = t0 + Duration::from_secs(5);
        assert_eq!(b.state(), BreakerState::Open { until });
        assert_eq!(b.admit(t0 + Duration::from_secs(4)), None);
        assert!(!b.would_admit(t0 + Duration::from_secs(4)));
        // Late results of requests from before the trip change nothing.
        b.record(Admission::Normal, Outcome::Success, t0);
        assert_eq!(b.state(), BreakerState::Open { until });
        // Open → half-open after the cool-down, one probe only.
        assert!(b.would_admit(until));
        assert_eq!(b.admit(until), Some(Admission::Probe));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(until), None);
        // Probe failure → open again for a full cool-down.
        let t1 = until + Duration::from_secs(1);
        b.record(Admission::Probe, Outcome::Failure, t1);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t1 + Duration::from_secs(5)
            }
        );
        // Probe success → closed.
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(b.admit(t2), Some(Admission::Probe));
        b.record(Admission::Normal, Outcome::Failure, t2);
        assert_eq!(b.state(), BreakerState::HalfOpen, "only the probe decides");
        b.record(Admission::Probe, Outcome::Success, t2);
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 0
            }
        );
        // A threshold of 0 means 1.
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 0,
            ..cfg
        });
        b.record(Admission::Normal, Outcome::Failure, t0);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
    }

    #[test]
    fn pool_cap_and_breaker() {
        let t0 = Instant::now();
        let limits = PoolLimits {
            max_in_flight: 2,
            max_idle: 1,
            idle_timeout: Duration::from_secs(10),
            breaker: BreakerConfig {
                failure_threshold: 2,
                cool_down: Duration::from_secs(5),
            },
        };
        let mut pool: BackendPool<&'static str> = BackendPool::new(2, limits);
        let p1 = pool.acquire(0, t0).unwrap();
        let p2 = pool.acquire(0, t0).unwrap();
        assert_eq!(pool.acquire(0, t0), Err(Refusal::AtCapacity));
        assert_eq!(pool.in_flight(0), 2);
        // Another backend has its own cap.
        let other = pool.acquire(1, t0).unwrap();
        pool.release(other, Outcome::Success, t0);
        assert_eq!(pool.acquire(7, t0), Err(Refusal::UnknownBackend));
        pool.release(p1, Outcome::Failure, t0);
        pool.release(p2, Outcome::Failure, t0);
        assert_eq!(pool.in_flight(0), 0);
        assert_eq!(pool.acquire(0, t0), Err(Refusal::CircuitOpen));
        let later = t0 + Duration::from_secs(5);
        let probe = pool.acquire(0, later).unwrap();
        assert!(probe.is_probe());
        assert_eq!(pool.acquire(0, later), Err(Refusal::CircuitOpen));
        pool.release(probe, Outcome::Success, later);
        let p = pool.acquire(0, later).unwrap();
        assert!(!p.is_probe());
        pool.release(p, Outcome::Success, later);
        assert_eq!(
            pool.breaker_state(0),
            Some(BreakerState::Closed {
                consecutive_failures: 0
            })
        );
    }

    #[test]
    fn pool_cap_is_checked_before_the_probe() {
        let t0 = Instant::now();
        let limits = PoolLimits {
            max_in_flight: 1,
            breaker: BreakerConfig {
                failure_threshold: 1,
                cool_down: Duration::from_secs(1),
            },
            ..PoolLimits::default()
        };
        let mut pool: BackendPool<()> = BackendPool::new(1, limits);
        let a = pool.acquire(0, t0).unwrap();
        let t1 = t0 + Duration::from_secs(1);
        // A request still out from before: at capacity, and the breaker is untouched.
        let b = pool.acquire(0, t0).unwrap_err();
        assert_eq!(b, Refusal::AtCapacity);
        pool.release(a, Outcome::Failure, t0);
        assert!(matches!(
            pool.breaker_state(0),
            Some(BreakerState::Open { .. })
        ));
        let probe = pool.acquire(0, t1).unwrap();
        assert!(probe.is_probe());
        pool.release(probe, Outcome::Failure, t1);
    }

    #[test]
    fn a_cancelled_probe_frees_its_slot_and_the_next_request_probes() {
        let t0 = Instant::now();
        let limits = PoolLimits {
            max_in_flight: 1,
            breaker: BreakerConfig {
                failure_threshold: 1,
                cool_down: Duration::from_secs(1),
            },
            ..PoolLimits::default()
        };
        let mut pool: BackendPool<()> = BackendPool::new(1, limits);
        let a = pool.acquire(0, t0).unwrap();
        pool.release(a, Outcome::Failure, t0);
        let t1 = t0 + Duration::from_secs(1);
        let probe = pool.acquire(0, t1).unwrap();
        assert!(probe.is_probe());
        pool.cancel(probe, t1);
        assert_eq!(pool.in_flight(0), 0);
        let again = pool
            .acquire(0, t1)
            .expect("not stuck half-open or at capacity");
        assert!(again.is_probe());
        pool.release(again, Outcome::Success, t1);
    }

    #[test]
    fn pool_idle_connections() {
        let t0 = Instant::now();
        let limits = PoolLimits {
            max_idle: 2,
            idle_timeout: Duration::from_secs(10),
            ..PoolLimits::default()
        };
        let mut pool: BackendPool<u32> = BackendPool::new(1, limits);
        assert_eq!(pool.take_idle(0, t0), None);
        assert_eq!(pool.put_idle(0, 1, t0), None);
        assert_eq!(pool.put_idle(0, 2, t0 + Duration::from_secs(5)), None);
        assert_eq!(pool.put_idle(0, 3, t0), Some(3), "full: handed back");
        assert_eq!(pool.put_idle(4, 9, t0), Some(9), "unknown backend");
        // Newest first.
        assert_eq!(pool.take_idle(0, t0 + Duration::from_secs(6)), Some(2));
        // Connection 1 is 10 s old: stale, dropped.
        assert_eq!(pool.take_idle(0, t0 + Duration::from_secs(10)), None);
        assert_eq!(pool.idle_count(0), 0);
        pool.put_idle(0, 5, t0);
        pool.put_idle(0, 6, t0 + Duration::from_secs(8));
        let mut closed = Vec::new();
        pool.sweep_idle(t0 + Duration::from_secs(10), |b, c| closed.push((b, c)));
        assert_eq!(closed, vec![(0, 5)]);
        assert_eq!(pool.idle_count(0), 1);
    }

    /// Deterministic garbage (xorshift64), fed in random slices, never panics the
    /// connection, and every outcome leaves it in a consistent state.
    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 403 No\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 302 F\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
        ];
        let t0 = Instant::now();
        for round in 0..5_000 {
            let mut buf: Vec<u8> = seeds[round % 3].to_vec();
            if round % 4 == 3 {
                buf = (0..(next() % 200)).map(|_| next() as u8).collect();
            }
            for _ in 0..(next() % 6) {
                if buf.is_empty() {
                    break;
                }
                let i = (next() as usize) % buf.len();
                buf[i] = next() as u8;
            }
            let mut c = conn(t0);
            c.start(REQ, t0).unwrap();
            let mut rest = &buf[..];
            while !rest.is_empty() {
                let n = 1 + (next() as usize) % rest.len();
                let (now, later) = rest.split_at(n);
                let _ = c.handle_input(now, t0);
                rest = later;
            }
            let _ = c.handle_eof();
            assert!(c.is_closed());
        }
    }
}
