//! The I/O shell of one HTTP connection: read bytes, frame request heads
//! (`http::request`), ask the service (`http::service`) for each, write what it says.
//! Pipelined requests are answered in order. Segments are written straight from their
//! shared `Bytes`; the connection's buffers are allocated once, at accept.

use crate::http::api::ApiCall;
use crate::http::limits::HttpLimits;
use crate::http::request::{Parsed, parse_head};
use crate::http::service::{
    ConnScratch, Next, Reply, SegmentWait, WhepCall, invalid_request, respond, write_api_answer,
    write_whep_created, write_whep_refused, write_whep_status,
};
use crate::http::status::Status;
use crate::runtime::admission::Arrival;
use crate::runtime::auth_bus::AuthBus;
use crate::runtime::body_files;
use crate::runtime::play_auth::wait_for_verdict;
use crate::runtime::ring_wait::SegmentReady;
use crate::runtime::stop_signal::{StopSignal, shard_stop};
use crate::runtime::tls::{Wire, handshake};
use crate::runtime::webrtc_conn::{self, OfferOutcome, WebRtcEndpoint};
use crate::runtime::{live_ts, operator_api};
use crate::shard::{Now, ShardState};
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::TlsAcceptor;
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// Serves one accepted connection until the client closes it, an error or timeout occurs,
/// or a response asks to close.
pub async fn serve<S: Wire>(
    stream: S,
    admin: bool,
    state: Rc<RefCell<ShardState>>,
    (bus, webrtc): Shared,
    arrival: Arrival,
) {
    let Ok(peer) = stream.tcp().peer_addr().map(|a| a.ip()) else {
        return;
    };
    let limits = state.borrow().limits().clone();
    // A segment may take several sends (a full socket, or TLS records); without NODELAY the
    // tail of a body can wait for the client's delayed ACK.
    let tcp = stream.tcp();
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(limits.read_timeout));
    let _ = tcp.set_write_timeout(Some(limits.write_timeout));
    let mut conn = HttpConn {
        // Grown (doubling) up to `max_inbuf` only by a request head that needs it: an idle
        // connection holds 4 KB, not the largest head allowed.
        inbuf: vec![0u8; INBUF_START.min(limits.max_head_bytes + 1024)],
        start: 0,
        end: 0,
        out: Vec::with_capacity(4096),
        scratch: ConnScratch {
            admin,
            ..ConnScratch::default()
        },
        skip_body: 0,
        head_started: None,
        first_deadline: Some(Instant::now() + limits.first_request_timeout),
        arrival,
        may_wait: true,
        stream,
        state,
        bus,
        webrtc,
        peer,
        limits,
        stop: shard_stop(),
    };
    conn.run().await;
}

/// What every HTTP connection of a shard shares: the auth bus (API calls), and the WebRTC
/// endpoint that WHEP offers start sessions on (none without a `webrtc` listener).
pub type Shared = (Rc<AuthBus>, Option<Rc<WebRtcEndpoint>>);

/// A connection's input buffer at first: most request heads fit.
const INBUF_START: usize = 4096;
/// What a body sent from its file writes the usual way to wait for room in a full socket.
const FILE_WAIT_PIECE: usize = 16 * 1024;

/// One HTTP connection's buffers and state; allocated once, at accept.
struct HttpConn<S> {
    stream: S,
    state: Rc<RefCell<ShardState>>,
    bus: Rc<AuthBus>,
    webrtc: Option<Rc<WebRtcEndpoint>>,
    peer: IpAddr,
    limits: HttpLimits,
    inbuf: Vec<u8>,
    /// Unparsed input is `inbuf[start..end]`.
    start: usize,
    end: usize,
    out: Vec<u8>,
    scratch: ConnScratch,
    /// Bytes of a request body still to be read and discarded.
    skip_body: usize,
    /// When the first byte of the request head being read arrived: the whole head must
    /// come within `read_timeout`, so a client dripping a byte at a time cannot hold the
    /// slot.
    head_started: Option<Instant>,
    /// Until the first request is answered: when its head must have arrived
    /// (`first_request_timeout`), so idle connections cannot pile up.
    first_deadline: Option<Instant>,
    /// Told when the first request came: the connection then keeps its place in a full cap.
    arrival: Arrival,
    /// Whether the next request may be parked until a segment is cut (not twice in a row).
    may_wait: bool,
    /// The shard's stop: an idle connection then closes; a request in flight is answered
    /// first.
    stop: StopSignal,
}

/// After a request was answered: go on, or the connection is done.
#[derive(PartialEq, Eq)]
enum After {
    Continue,
    Stop,
}

impl<S: Wire> HttpConn<S> {
    async fn run(&mut self) {
        loop {
            if self.answer_buffered().await == After::Stop || !self.write_out().await {
                return;
            }
            if self.stop.is_fired() && self.between_requests() {
                // Stopping, and every request answered.
                return;
            }
            if self.read_more().await == After::Stop {
                return;
            }
        }
    }

    /// Answers every whole request already buffered, in order.
    async fn answer_buffered(&mut self) -> After {
        loop {
            self.skip_body_bytes();
            if self.skip_body > 0 || self.start == self.end {
                return After::Continue;
            }
            let reply = match self.respond_to_next() {
                None => return After::Continue,
                Some(Ok(reply)) => reply,
                Some(Err(status)) => {
                    log::debug!("closing connection from {}: {}", self.peer, status.line());
                    self.close_with(status).await;
                    return After::Stop;
                }
            };
            self.head_started = None;
            self.first_deadline = None;
            self.arrival.asked();
            if self.follow(reply).await == After::Stop {
                return After::Stop;
            }
        }
    }

    /// Discards what is buffered of a request body being skipped.
    fn skip_body_bytes(&mut self) {
        let n = self.skip_body.min(self.end - self.start);
        self.start += n;
        self.skip_body -= n;
    }

    /// Parses the next request head and asks the service for it: `None` while the head is
    /// incomplete, `Err` for one that cannot be parsed.
    fn respond_to_next(&mut self) -> Option<Result<Reply, Status>> {
        let mut shard = self.state.borrow_mut();
        let head = match parse_head(&self.inbuf[self.start..self.end], shard.limits()) {
            Parsed::Partial => return None,
            Parsed::Invalid(status) => return Some(Err(status)),
            Parsed::Complete(head) => head,
        };
        let (scratch, out) = (&mut self.scratch, &mut self.out);
        let reply = respond(
            &mut shard,
            scratch,
            &head,
            self.peer,
            Now::read(),
            out,
            self.may_wait,
        );
        if !reply.parks() {
            self.start += head.head_len;
            self.skip_body = head.body_len;
        }
        Some(Ok(reply))
    }

    /// Does what the service's reply says after its head was written to `out`.
    async fn follow(&mut self, reply: Reply) -> After {
        match reply.next {
            Next::WaitForVerdict(key) => {
                // A portal is being asked about this request: answer what came before, wait
                // (bounded) for the verdict, then ask the service again, once.
                if !self.write_out().await {
                    return After::Stop;
                }
                let parked = Instant::now();
                wait_for_verdict(&self.state, key).await;
                log::trace!(
                    "portal verdict key={key:016x} resumed_us={}",
                    parked.elapsed().as_micros()
                );
                self.scratch.portal_waited = true;
                return After::Continue;
            }
            Next::WaitForSegment(wait) => return self.wait_for_segment(wait).await,
            Next::MakeStream(name) => {
                // Answer what came before, have the stream made on every shard, ask again.
                if !self.write_out().await {
                    return After::Stop;
                }
                if let Err(why) = crate::runtime::control::request_stream(&name).await {
                    log::warn!("stream {name}: not made from its template: {why}");
                }
                self.scratch.stream_waited = true;
                return After::Continue;
            }
            Next::Api { call, send_body } => {
                return self.run_api(call, send_body, reply.close).await;
            }
            Next::LiveTs(id) => {
                self.answered();
                if self.write_out().await {
                    let token = self.scratch.target.token().map(<[u8]>::to_vec);
                    let (state, peer) = (&self.state, self.peer);
                    live_ts::stream_live_ts(&mut self.stream, state, id, token, peer).await;
                }
                return After::Stop;
            }
            Next::Whep(call) => return self.whep(call, reply.close).await,
            Next::Body(body) => {
                self.answered();
                if !self.write_out_and_body(&body).await {
                    return After::Stop;
                }
            }
            Next::Done => self.answered(),
        }
        if reply.close {
            let _ = self.write_out().await;
            return After::Stop;
        }
        After::Continue
    }

    /// A request was answered: the next one may wait again.
    fn answered(&mut self) {
        self.may_wait = true;
        self.scratch.portal_waited = false;
        self.scratch.stream_waited = false;
    }

    /// Answers what came before, then parks this request until the segment or part it asks
    /// for is cut (bounded), and answers it again, once, without waiting. Only this
    /// connection waits; the shard goes on serving others.
    async fn wait_for_segment(&mut self, wait: SegmentWait) -> After {
        if !self.write_out().await {
            return After::Stop;
        }
        let ready = SegmentReady {
            state: &self.state,
            stream: wait.stream,
            until: wait.until,
        };
        futures_lite::future::or(ready, glommio::timer::sleep(wait.timeout)).await;
        self.may_wait = false;
        After::Continue
    }

    /// Runs an operator API call across the shards and writes its answer.
    async fn run_api(&mut self, call: ApiCall, send_body: bool, close: bool) -> After {
        if !self.write_out().await {
            return After::Stop;
        }
        let catalog = self.state.borrow().catalog().clone();
        let answer = operator_api::run(&self.bus, call, &catalog).await;
        write_api_answer(
            &mut self.state.borrow_mut(),
            &mut self.out,
            answer.status,
            answer.content_type,
            &answer.body,
            close,
            send_body,
        );
        if close {
            let _ = self.write_out().await;
            return After::Stop;
        }
        After::Continue
    }

    /// Carries out a WHEP request: an offer (its body read here) answered through the
    /// shard's WebRTC endpoint, or a session resource deleted.
    async fn whep(&mut self, call: WhepCall, close: bool) -> After {
        self.answered();
        let Some(endpoint) = self.webrtc.clone() else {
            if matches!(call, WhepCall::Offer { .. }) {
                // The body stays unread: the connection closes after the answer.
                self.whep_status(Status::ServiceUnavailable, "webrtc is not enabled\n", true);
                let _ = self.write_out().await;
                return After::Stop;
            }
            self.whep_status(Status::NotFound, "no such session\n", close);
            return self.after(close).await;
        };
        match call {
            WhepCall::Offer {
                stream,
                token,
                body_len,
            } => {
                let Some(sdp) = self.read_body(body_len).await else {
                    return After::Stop;
                };
                self.whep_offer(&endpoint, stream, token.as_deref(), &sdp, close)
                    .await;
            }
            WhepCall::Delete { id } => {
                // This shard's session, or another's (the DELETE came on another connection).
                if endpoint.end(&id) || self.bus.end_whep(id).await {
                    self.whep_status(Status::Ok, "session ended\n", close);
                } else {
                    self.whep_status(Status::NotFound, "no such session\n", close);
                }
            }
        }
        self.after(close).await
    }

    /// Answers an offer read whole.
    async fn whep_offer(
        &mut self,
        endpoint: &Rc<WebRtcEndpoint>,
        stream: crate::auth::verdict::StreamId,
        token: Option<&[u8]>,
        sdp: &[u8],
        close: bool,
    ) {
        let arrived_on = self.stream.tcp().local_addr().map(|a| a.ip());
        let offer = webrtc_conn::Offer {
            stream,
            token,
            peer: crate::auth::verdict::canonical_ip(self.peer),
            user_agent: None,
            arrived_on: arrived_on.unwrap_or(self.peer),
            sdp,
        };
        let outcome = webrtc_conn::offer(endpoint, &self.state, offer).await;
        let mut shard = self.state.borrow_mut();
        let out = &mut self.out;
        match outcome {
            OfferOutcome::Created { resource, answer } => {
                let name = shard.catalog().stream(stream).map(|s| s.name.clone());
                let location = format!("/{}/whep/{resource}", name.unwrap_or_default());
                write_whep_created(&mut shard, out, &location, &answer, close);
            }
            OfferOutcome::Refused(reason) => write_whep_refused(&mut shard, out, reason, close),
            OfferOutcome::Invalid(why) => {
                let text = format!("{why}\n");
                write_whep_status(&mut shard, out, Status::BadRequest, &text, close);
            }
            OfferOutcome::Unplayable(why) => {
                let text = format!("{why}\n");
                write_whep_status(&mut shard, out, Status::NotAcceptable, &text, close);
            }
            OfferOutcome::Busy => {
                let text = "too many webrtc sessions\n";
                write_whep_status(&mut shard, out, Status::ServiceUnavailable, text, close);
            }
        }
    }

    fn whep_status(&mut self, status: Status, text: &str, close: bool) {
        write_whep_status(
            &mut self.state.borrow_mut(),
            &mut self.out,
            status,
            text,
            close,
        );
    }

    /// After an answer: the connection goes on, or closes when the answer said so.
    async fn after(&mut self, close: bool) -> After {
        if close {
            let _ = self.write_out().await;
            return After::Stop;
        }
        After::Continue
    }

    /// Reads the `len` bytes of the request body that follow the head (what is buffered
    /// first); `None` when the connection ends or times out first.
    async fn read_body(&mut self, len: usize) -> Option<Vec<u8>> {
        let buffered = (self.end - self.start).min(len);
        let mut body = Vec::with_capacity(len);
        body.extend_from_slice(&self.inbuf[self.start..self.start + buffered]);
        self.start += buffered;
        self.skip_body = 0;
        while body.len() < len {
            let have = body.len();
            body.resize(len, 0);
            match self.stream.read(&mut body[have..]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => body.truncate(have + n),
            }
        }
        Some(body)
    }

    /// Writes what is queued; `false` when the connection is gone.
    async fn write_out(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let ok =
            self.stream.write_all(&self.out).await.is_ok() && self.stream.flush().await.is_ok();
        self.out.clear();
        ok
    }

    /// Writes the queued head and a shared body as it is: a large body on plain TCP from
    /// its memory file (`body_files`), a smaller one in one vectored send with the head
    /// (`driver::send_pieces`), inside TLS encrypted from it; never staged.
    async fn write_out_and_body(&mut self, body: &Bytes) -> bool {
        if body.len() >= body_files::MIN_BODY
            && let Some(fd) = self.stream.plain_fd()
            && let Some(file) = body_files::file_for(body, Instant::now())
        {
            return self.write_head_more(fd).await && self.send_body_file(fd, &file, body).await;
        }
        let pieces = [&self.out[..], &body[..]];
        let ok = crate::runtime::driver::send_pieces(&mut self.stream, pieces.into_iter())
            .await
            .is_ok()
            && self.stream.flush().await.is_ok();
        self.out.clear();
        ok
    }

    /// Sends the queued head with `MSG_MORE` (it leaves in one packet with the body's
    /// start); what does not go at once is written the usual way.
    async fn write_head_more(&mut self, fd: std::os::fd::RawFd) -> bool {
        use nix::sys::socket::{MsgFlags, send};
        let more = MsgFlags::from_bits_retain(nix::libc::MSG_MORE);
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL | more;
        let sent = send(fd, &self.out, flags).unwrap_or(0);
        self.out.drain(..sent);
        self.write_out().await
    }

    /// Sends `body` from its memory `file`; when the socket is full, waits for room the one
    /// way glommio offers, a write (of the next `FILE_WAIT_PIECE` bytes, copied), then goes
    /// on from the file.
    async fn send_body_file(
        &mut self,
        fd: std::os::fd::RawFd,
        file: &std::os::fd::OwnedFd,
        body: &Bytes,
    ) -> bool {
        let mut offset: i64 = 0;
        while let Some(left) = body.len().checked_sub(offset as usize).filter(|&n| n > 0) {
            match body_files::send_now(fd, file, &mut offset, left) {
                Ok(body_files::Sent::Bytes(0)) | Err(_) => return false,
                Ok(body_files::Sent::Bytes(_)) => {}
                Ok(body_files::Sent::Full) => {
                    let start = offset as usize;
                    let piece = &body[start..start + left.min(FILE_WAIT_PIECE)];
                    match self.stream.write(piece).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => offset += n as i64,
                    }
                }
            }
        }
        true
    }

    /// Reads more of the next request, within what is left of its deadline.
    async fn read_more(&mut self) -> After {
        // Keep the unparsed tail at the front so a head always fits the buffer.
        if self.start > 0 {
            self.inbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let max_inbuf = self.limits.max_head_bytes + 1024;
        if self.end == self.inbuf.len() && self.end < max_inbuf {
            self.inbuf.resize((self.end * 2).min(max_inbuf), 0);
        }
        if self.end == self.inbuf.len() {
            // parse_head answers 414/431 before the buffer fills; this is a safety net.
            self.close_with(Status::HeaderFieldsTooLarge).await;
            return After::Stop;
        }
        let mut timeout = if self.start == self.end && self.skip_body == 0 {
            self.head_started = None;
            self.limits.read_timeout
        } else {
            let started = *self.head_started.get_or_insert_with(Instant::now);
            self.limits.read_timeout.saturating_sub(started.elapsed())
        };
        if let Some(deadline) = self.first_deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        if timeout.is_zero() && self.start == self.end {
            // Nothing sent before the first request's deadline: closed without a word.
            return After::Stop;
        }
        if timeout.is_zero() {
            self.close_with(Status::RequestTimeout).await;
            return After::Stop;
        }
        let _ = self.stream.tcp().set_read_timeout(Some(timeout));
        let idle = self.between_requests();
        let read = async { Some(self.stream.read(&mut self.inbuf[self.end..]).await) };
        let stopped = async {
            if !idle {
                // A request has begun: it is answered, stopping or not.
                futures_lite::future::pending::<()>().await;
            }
            self.stop.fired().await;
            None
        };
        let Some(read) = futures_lite::future::or(read, stopped).await else {
            return After::Stop;
        };
        match read {
            Ok(0) => After::Stop,
            Ok(n) => {
                self.end += n;
                After::Continue
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && self.start != self.end => {
                self.close_with(Status::RequestTimeout).await;
                After::Stop
            }
            Err(_) => After::Stop,
        }
    }

    /// Every request so far answered, and none begun: what a stop may close. A new
    /// connection's first request is awaited (within its deadline) even when stopping: it
    /// was accepted, so it is answered.
    fn between_requests(&self) -> bool {
        self.start == self.end && self.skip_body == 0 && self.first_deadline.is_none()
    }

    /// Writes what is pending plus an error response; the connection then closes.
    async fn close_with(&mut self, status: Status) {
        close_with(&mut self.stream, &self.state, &mut self.out, status).await;
    }
}

/// Serves an accepted connection that `runtime::connection_server` admitted against the
/// shard's caps (which also gives its count back); `tls`: the connection starts with a TLS
/// handshake.
pub fn admit(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    admin: bool,
    state: Rc<RefCell<ShardState>>,
    shared: Shared,
    arrival: Arrival,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    // Two futures, not one with both arms: a plain connection's task then does not carry
    // the size of a TLS one (its handshake and record buffers' state).
    match tls {
        None => Box::pin(serve(stream, admin, state, shared, arrival)),
        Some(acceptor) => Box::pin(async move {
            if let Some(stream) = handshake(&state, &acceptor, stream).await {
                serve(stream, admin, state, shared, arrival).await;
            }
        }),
    }
}

/// Answers a connection the shard has no room for (`runtime::connection_server` asked
/// `ShardState::open_connection`) with 503 and closes it.
pub async fn refuse(mut stream: TcpStream, state: Rc<RefCell<ShardState>>) {
    let mut out = Vec::with_capacity(512);
    close_with(&mut stream, &state, &mut out, Status::ServiceUnavailable).await;
}

/// Writes what is pending plus an error response; the caller then closes the connection.
async fn close_with<S: Wire + ?Sized>(
    stream: &mut S,
    state: &Rc<RefCell<ShardState>>,
    out: &mut Vec<u8>,
    status: Status,
) {
    invalid_request(&mut state.borrow_mut(), out, Now::read(), status);
    let _ = stream.write_all(out).await;
    let _ = stream.flush().await;
}
