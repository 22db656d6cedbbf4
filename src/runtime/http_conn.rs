//! The I/O shell of one HTTP connection: read bytes, frame request heads
//! (`http::request`), ask the service (`http::service`) for each, write what it says.
//! Pipelined requests are answered in order. Segments are written straight from their
//! shared `Bytes`; the connection's buffers are allocated once, at accept.

use crate::http::request::{Parsed, parse_head};
use crate::http::service::{ConnScratch, Next, invalid_request, respond, write_api_answer};
use crate::http::status::Status;
use crate::runtime::auth_bus::AuthBus;
use crate::runtime::play_auth::{DecisionReady, decision_wait};
use crate::runtime::ring_wait::SegmentReady;
use crate::runtime::{live_ts, operator_api};
use crate::shard::{Now, ShardState};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// Serves one accepted connection until the client closes it, an error or timeout occurs,
/// or a response asks to close.
pub async fn serve(mut stream: TcpStream, state: Rc<RefCell<ShardState>>, bus: Rc<AuthBus>) {
    let peer: IpAddr = match stream.peer_addr() {
        Ok(a) => a.ip(),
        Err(_) => return,
    };
    let limits = state.borrow().limits.clone();
    // Segments are written in two sends (head, body); without NODELAY the body's tail can wait
    // for the client's delayed ACK.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(limits.read_timeout));
    let _ = stream.set_write_timeout(Some(limits.write_timeout));

    let mut inbuf = vec![0u8; limits.max_head_bytes + 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut scratch = ConnScratch::default();
    // Bytes of a request body still to be read and discarded.
    let mut skip_body = 0usize;
    // When the first byte of the request head being read arrived: the whole head must come
    // within `read_timeout`, so a client dripping a byte at a time cannot hold the slot.
    let mut head_started: Option<Instant> = None;
    // Whether the next request may be parked until a segment is cut (not twice in a row).
    let mut may_wait = true;

    loop {
        // Answer every whole request already buffered.
        loop {
            if skip_body > 0 {
                let n = skip_body.min(end - start);
                start += n;
                skip_body -= n;
                if skip_body > 0 {
                    break;
                }
            }
            if start == end {
                break;
            }
            let parsed = {
                let mut shard = state.borrow_mut();
                match parse_head(&inbuf[start..end], &shard.limits) {
                    Parsed::Partial => break,
                    Parsed::Invalid(status) => Err(status),
                    Parsed::Complete(head) => {
                        let now = Now::read();
                        let reply = respond(
                            &mut shard,
                            &mut scratch,
                            &head,
                            peer,
                            now,
                            &mut out,
                            may_wait,
                        );
                        if !reply.parks() {
                            start += head.head_len;
                            skip_body = head.body_len;
                        }
                        Ok(reply)
                    }
                }
            };
            let reply = match parsed {
                Ok(reply) => reply,
                Err(status) => {
                    log::debug!("closing connection from {peer}: {}", status.line());
                    return close_with(&mut stream, &state, &mut out, status).await;
                }
            };
            head_started = None;
            match reply.next {
                Next::WaitForVerdict(key) => {
                    // A portal is being asked about this request: answer what came before,
                    // wait (bounded) for the verdict, then ask the service again, once.
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                    let wait = decision_wait(&state);
                    let ready = DecisionReady { state: &state, key };
                    futures_lite::future::or(ready, glommio::timer::sleep(wait)).await;
                    scratch.portal_waited = true;
                    continue;
                }
                Next::Api { call, send_body } => {
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                    let catalog = state.borrow().catalog.clone();
                    let answer = operator_api::run(&bus, call, |name| {
                        catalog.stream_by_name(name).map(|s| s.id)
                    })
                    .await;
                    write_api_answer(
                        &mut state.borrow_mut(),
                        &mut out,
                        answer.status,
                        answer.content_type,
                        &answer.body,
                        reply.close,
                        send_body,
                    );
                    if reply.close {
                        let _ = stream.write_all(&out).await;
                        return;
                    }
                    continue;
                }
                Next::WaitForSegment(_) | Next::LiveTs(_) | Next::Body(_) | Next::Done => {}
            }
            if let Next::WaitForSegment(wait) = reply.next {
                // Answer what came before, then park this request until the segment or part it
                // asks for is cut (bounded), and answer it again, once, without waiting. Only
                // this connection waits; the shard goes on serving others.
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
                let ready = SegmentReady {
                    state: &state,
                    stream: wait.stream,
                    until: wait.until,
                };
                futures_lite::future::or(ready, glommio::timer::sleep(wait.timeout)).await;
                may_wait = false;
                continue;
            }
            may_wait = true;
            scratch.portal_waited = false;
            if let Next::LiveTs(id) = reply.next {
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
                let token = scratch.target.token().map(<[u8]>::to_vec);
                live_ts::stream_live_ts(&mut stream, &state, id, token, peer).await;
                return;
            }
            if let Next::Body(body) = reply.next {
                if stream.write_all(&out).await.is_err() || stream.write_all(&body).await.is_err() {
                    return;
                }
                out.clear();
            }
            if reply.close {
                let _ = stream.write_all(&out).await;
                return;
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        // Keep the unparsed tail at the front so a head always fits the buffer.
        if start > 0 {
            inbuf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == inbuf.len() {
            // parse_head answers 414/431 before the buffer fills; this is a safety net.
            let status = Status::HeaderFieldsTooLarge;
            return close_with(&mut stream, &state, &mut out, status).await;
        }
        let timeout = if start == end && skip_body == 0 {
            head_started = None;
            limits.read_timeout
        } else {
            let started = *head_started.get_or_insert_with(Instant::now);
            limits.read_timeout.saturating_sub(started.elapsed())
        };
        if timeout.is_zero() {
            return close_with(&mut stream, &state, &mut out, Status::RequestTimeout).await;
        }
        let _ = stream.set_read_timeout(Some(timeout));
        match stream.read(&mut inbuf[end..]).await {
            Ok(0) => return,
            Ok(n) => end += n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && start != end => {
                return close_with(&mut stream, &state, &mut out, Status::RequestTimeout).await;
            }
            Err(_) => return,
        }
    }
}

/// Takes an accepted connection in, or, when the shard already serves its most HTTP
/// connections, answers it 503 and closes it.
pub fn admit(
    stream: TcpStream,
    state: Rc<RefCell<ShardState>>,
    bus: Rc<AuthBus>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    let full = {
        let mut s = state.borrow_mut();
        let full = s.http.connections_open >= s.limits.max_connections_per_shard;
        if full {
            s.http.connections_refused += 1;
        } else {
            s.http.connections_open += 1;
        }
        full
    };
    if full {
        return Box::pin(refuse(stream, state));
    }
    Box::pin(async move {
        serve(stream, state.clone(), bus).await;
        state.borrow_mut().http.connections_open -= 1;
    })
}

/// Answers a connection the shard has no room for with 503 and closes it.
async fn refuse(mut stream: TcpStream, state: Rc<RefCell<ShardState>>) {
    let mut out = Vec::with_capacity(512);
    close_with(&mut stream, &state, &mut out, Status::ServiceUnavailable).await;
}

/// Writes what is pending plus an error response; the caller then closes the connection.
async fn close_with(
    stream: &mut TcpStream,
    state: &Rc<RefCell<ShardState>>,
    out: &mut Vec<u8>,
    status: Status,
) {
    invalid_request(&mut state.borrow_mut(), out, Now::read(), status);
    let _ = stream.write_all(out).await;
}
