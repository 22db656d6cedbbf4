//! The I/O shell of portal backend requests (spec §3, §7.5): glommio sockets around the
//! sans-IO `auth::backend_client` (`BackendConnection` per connection, `BackendPool` per
//! shard: idle keep-alive connections, an in-flight cap and a circuit breaker per backend).
//!
//! `ask` puts one question to every backend of the policy in parallel and combines the
//! answers as the spec says: the first allow wins, all deny is deny, and only when no
//! backend answered is it `Unreachable`. Every request has its backend's deadline (connect
//! included). A stale keep-alive connection (the portal closed it while idle) is retried
//! once on a fresh connection. Only the owner shard of a decision key calls this.

use crate::auth::PortalOutcome;
use crate::auth::backend_client::{
    BackendConnection, BackendPool, ConnectionLimits, Outcome, PoolLimits,
};
use crate::auth::lookup::PortalQuestion;
use crate::auth::portal::{
    BackendAnswer, BackendDecision, BackendQuery, PortalError, write_backend_request,
};
use crate::catalog::Catalog;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// A pooled connection: the socket and its protocol state.
pub struct PooledConn {
    stream: TcpStream,
    conn: BackendConnection,
}

/// One shard's portal client.
pub struct PortalClient {
    catalog: Arc<Catalog>,
    pool: RefCell<BackendPool<PooledConn>>,
}

type Asked = Pin<Box<dyn Future<Output = Result<Exchanged, String>>>>;

/// A backend's answer and when it was asked.
pub struct Exchanged {
    pub answer: BackendAnswer,
    pub time: PortalTime,
}

/// When a request's send to the portal began and ended, and the portal's share of the
/// time: from then to the answer read (the portal's work and the network both ways).
#[derive(Clone, Copy, Debug)]
pub struct PortalTime {
    pub sending: Instant,
    pub written: Instant,
    pub portal: Duration,
}

impl PortalClient {
    pub fn new(catalog: Arc<Catalog>) -> Rc<Self> {
        let pool = BackendPool::new(catalog.backends.len(), PoolLimits::default());
        Rc::new(PortalClient {
            catalog,
            pool: RefCell::new(pool),
        })
    }

    /// Asks every backend of the question's policy; the combined outcome, and the timing of
    /// the answer used (none when no backend answered).
    pub async fn ask(self: &Rc<Self>, q: &PortalQuestion) -> (PortalOutcome, Option<PortalTime>) {
        let backends = self
            .catalog
            .policies
            .get(q.policy as usize)
            .map(|p| p.backends.clone())
            .unwrap_or_default();
        let mut asked: Vec<Option<Asked>> = backends
            .into_iter()
            .map(|b| {
                let me = self.clone();
                let q = q.clone();
                Some(Box::pin(async move { me.ask_one(b as usize, &q).await }) as Asked)
            })
            .collect();
        let mut denied: Option<Exchanged> = None;
        // Dropping the futures that are still out (after an allow) closes their
        // connections; their `PermitGuard`s give the permits back.
        std::future::poll_fn(|cx| {
            for slot in asked.iter_mut() {
                let Some(fut) = slot else { continue };
                if let Poll::Ready(result) = fut.as_mut().poll(cx) {
                    *slot = None;
                    match result {
                        Ok(e) if e.answer.decision == BackendDecision::Allow => {
                            return Poll::Ready((PortalOutcome::Answered(e.answer), Some(e.time)));
                        }
                        Ok(e) => {
                            denied.get_or_insert(e);
                        }
                        Err(e) => log::warn!("portal backend: {e}"),
                    }
                }
            }
            if asked.iter().all(Option::is_none) {
                Poll::Ready(match denied.take() {
                    Some(e) => (PortalOutcome::Answered(e.answer), Some(e.time)),
                    None => (PortalOutcome::Unreachable, None),
                })
            } else {
                Poll::Pending
            }
        })
        .await
    }

    async fn ask_one(&self, backend: usize, q: &PortalQuestion) -> Result<Exchanged, String> {
        let Some(spec) = self.catalog.backends.get(backend) else {
            return Err(format!("no backend {backend}"));
        };
        let permit = self
            .pool
            .borrow_mut()
            .acquire(backend, Instant::now())
            .map_err(|r| format!("{}: not asked: {r:?}", spec.url))?;
        // Given back however this ends: with the outcome below, or, when this future is
        // dropped (another backend allowed first), cancelled by the guard.
        let mut guard = PermitGuard {
            pool: &self.pool,
            permit: Some(permit),
        };
        let result = self.exchange(backend, q).await;
        // Timeouts, connection errors and unexpected statuses all count against the
        // circuit; a 403 is an answer (success).
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        if let Some(p) = guard.permit.take() {
            self.pool.borrow_mut().release(p, outcome, Instant::now());
        }
        result.map_err(|e| format!("{}: {e}", spec.url))
    }

    /// One request, on an idle connection when there is one (retried once on a fresh
    /// connection when the idle one turns out closed).
    async fn exchange(&self, backend: usize, q: &PortalQuestion) -> Result<Exchanged, Exchange> {
        let spec = &self.catalog.backends[backend];
        let addr = spec
            .addr
            .ok_or(Exchange::Io("host did not resolve".into()))?;
        let mut request = Vec::with_capacity(512);
        let name = self.catalog.stream(q.stream).map_or("", |s| &s.name);
        let session_id = q.session_id.to_string();
        let query = BackendQuery {
            name,
            proto: q.proto,
            ip: q.ip,
            token: q.token.as_deref(),
            session_id: &session_id,
            request_type: q.request_type,
            request_number: q.request_number,
            stream_clients: q.stream_clients,
            total_clients: q.total_clients,
            qs: &q.qs,
            user_agent: q.user_agent.as_deref(),
            referer: q.referer.as_deref(),
        };
        write_backend_request(&spec.url, &query, &mut request);
        let deadline = Instant::now() + spec.timeout;
        for attempt in 0..2 {
            let idle = if attempt == 0 {
                self.pool.borrow_mut().take_idle(backend, Instant::now())
            } else {
                None
            };
            let reused = idle.is_some();
            let mut pooled = match idle {
                Some(c) => c,
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Exchange::Io("timed out before connecting".into()));
                    }
                    let stream = TcpStream::connect_timeout(addr, left)
                        .await
                        .map_err(|e| Exchange::Io(format!("connect {addr}: {e}")))?;
                    let _ = stream.set_nodelay(true);
                    let limits = ConnectionLimits {
                        timeout: spec.timeout,
                        ..ConnectionLimits::default()
                    };
                    PooledConn {
                        stream,
                        conn: BackendConnection::new(limits, Instant::now()),
                    }
                }
            };
            match round_trip(&mut pooled, &request, deadline).await {
                Ok(answer) => {
                    if pooled.conn.is_idle() {
                        let _ = self
                            .pool
                            .borrow_mut()
                            .put_idle(backend, pooled, Instant::now());
                    }
                    return Ok(answer);
                }
                Err(Exchange::Portal(e)) if reused && e.is_stale_connection() => continue,
                Err(e) => {
                    if let Exchange::Portal(PortalError::UnexpectedStatus { .. }) = &e
                        && pooled.conn.is_idle()
                    {
                        let _ = self
                            .pool
                            .borrow_mut()
                            .put_idle(backend, pooled, Instant::now());
                    }
                    return Err(e);
                }
            }
        }
        Err(Exchange::Io("stale connection twice".into()))
    }
}

/// Cancels a permit whose request was dropped before it ended.
struct PermitGuard<'a> {
    pool: &'a RefCell<BackendPool<PooledConn>>,
    permit: Option<crate::auth::backend_client::Permit>,
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take()
            && let Ok(mut pool) = self.pool.try_borrow_mut()
        {
            pool.cancel(p, Instant::now());
        }
    }
}

/// Why one exchange failed.
enum Exchange {
    Io(String),
    Portal(PortalError),
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exchange::Io(e) => f.write_str(e),
            Exchange::Portal(e) => write!(f, "{e}"),
        }
    }
}

/// Writes the request and reads until the answer, within `deadline`.
async fn round_trip(
    pooled: &mut PooledConn,
    request: &[u8],
    deadline: Instant,
) -> Result<Exchanged, Exchange> {
    let now = Instant::now();
    pooled.conn.start(request, now).map_err(Exchange::Portal)?;
    let work = async {
        let out = pooled.conn.poll_transmit().to_vec();
        let sending = Instant::now();
        pooled
            .stream
            .write_all(&out)
            .await
            .map_err(|e| Exchange::Io(format!("write: {e}")))?;
        pooled.conn.transmitted(out.len());
        let written = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            let n = pooled
                .stream
                .read(&mut buf)
                .await
                .map_err(|e| Exchange::Io(format!("read: {e}")))?;
            let got = if n == 0 {
                pooled.conn.handle_eof()
            } else {
                pooled.conn.handle_input(&buf[..n], Instant::now())
            };
            match got {
                Ok(Some(answer)) => {
                    let portal = written.elapsed();
                    let time = PortalTime {
                        sending,
                        written,
                        portal,
                    };
                    return Ok(Exchanged { answer, time });
                }
                Ok(None) if n == 0 || pooled.conn.is_closed() => {
                    return Err(Exchange::Io("connection closed without an answer".into()));
                }
                Ok(None) => {}
                Err(e) => return Err(Exchange::Portal(e)),
            }
        }
    };
    let timer = async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        Err(Exchange::Io("timed out".into()))
    };
    futures_lite::future::or(work, timer).await
}
