//! The HTTP playback service: what one request gets. Sans-IO: a parsed head and the
//! shard's state in; a response head (and inline body) written to `out`, and a `Reply`
//! saying what the connection does next. The connection task does the I/O.
//!
//! Every request walks the same phases, in this order and only here, each a function with
//! a typed result:
//!
//! 1. parse: `http::request::parse_head`, by the connection, before `respond`;
//! 2. `method`: GET and HEAD go on, OPTIONS is a CORS preflight, anything else 405;
//! 3. `normalize`: `Target` decodes the path once; what it refuses is 400;
//! 4. `route`: path → stream + `Resource` (404); the public player scripts and page are
//!    answered here;
//! 5. `authorize`: `auth::play::decide` (`Authorizer::authorize`, the one auth entry point,
//!    and the one rule for a portal verdict waited for) → `Grant` or `Refusal`;
//! 6. `serve`: the resource, one function per kind → `Served`, or `Unserved` (an error,
//!    or a wait for the segment or part being cut);
//! 7. `account`: the request joins its session and the counters; the head goes out.
//!
//! A phase that answers returns its `Reply` as the error, so no later phase runs: a refused
//! request learns nothing past the phase that refused it (a denied viewer cannot tell
//! which segments exist). Operator API paths leave before the method phase.

use crate::auth::cache::Grant;
use crate::auth::play::{Attempt, Decision};
use crate::auth::verdict::{DenyReason, PlayRequest, StreamId};
use crate::catalog::{Catalog, StreamKind, StreamSpec};
use crate::dash::mpd::{MpdContext, write_mpd};
use crate::hls::kept::{write_kept_ll_media, write_kept_media};
use crate::hls::ll::{Reload, blocking_reload};
use crate::hls::names::{Container, LlName};
use crate::hls::playlist::{TRACKS_DIR, TokenQuery, target_duration_s, write_master};
use crate::http::api::ApiCall;
use crate::http::request::{Method, RequestHead};
use crate::http::response::{CachePolicy, Head, write_head};
use crate::http::route::{DashTrack, Resource};
use crate::http::status::Status;
use crate::http::target::Target;
use crate::media::frame::TrackKind;
use crate::mss::manifest::{ManifestContext, has_fragments, write_manifest};
use crate::player::page::{PAGE_HEADERS, SCRIPT_HEADERS, format_from_target, write_page};
use crate::player::{ASSET_PREFIX, Asset};
use crate::shard::{Now, ShardState};
use crate::stream::segment::{MssFragment, Segment};
use crate::stream::view::StreamView;
use crate::stream::window::{Awaited, PartLookup};
use crate::webrtc::whep::{MAX_OFFER, WhepPath, bearer_token, whep_path};
use bytes::Bytes;
use std::io::Write;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const TS_TYPE: &str = "video/mp2t";
const MP4_TYPE: &str = "video/mp4";
const MPD_TYPE: &str = "application/dash+xml";
const M4S_TYPE: &str = "video/iso.segment";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";
const HTML_TYPE: &str = "text/html; charset=utf-8";
const MSS_MANIFEST_TYPE: &str = "text/xml; charset=utf-8";
const MSS_VIDEO_TYPE: &str = "video/mp4";
const MSS_AUDIO_TYPE: &str = "audio/mp4";
const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";
const API_ALLOWED_METHODS: &str = "GET, POST, DELETE";
const NOT_FOUND: &str = "not found\n";

/// BANDWIDTH before the first segment exists to measure.
const DEFAULT_BANDWIDTH: u64 = 2_000_000;

/// Longest a DASH or MSS request for the segment being cut waits for it.
pub const SEGMENT_WAIT: Duration = Duration::from_secs(6);

/// Per-connection buffers the service reuses, so steady-state requests allocate nothing.
pub struct ConnScratch {
    pub target: Target,
    pub body: Vec<u8>,
    /// The request being asked again already waited for a portal's verdict: a question
    /// still open now counts as unanswered. Apart from `respond`'s `may_wait` (media), so
    /// a request may wait for its verdict and then for its segment or part.
    pub portal_waited: bool,
    /// The connection came in on an admin listener (`admin_http`, `admin_https`).
    pub admin: bool,
    /// The request being asked again already waited for its template stream to be made:
    /// if it is still not there, 503.
    pub stream_waited: bool,
}

impl Default for ConnScratch {
    fn default() -> Self {
        ConnScratch {
            target: Target::new(),
            body: Vec::with_capacity(2048),
            portal_waited: false,
            admin: false,
            stream_waited: false,
        }
    }
}

/// What the connection must do after writing `out`.
#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    /// Close the connection after this response.
    pub close: bool,
    /// What the connection does after writing `out`.
    pub next: Next,
}

/// What follows the bytes in `out`.
#[derive(Debug)]
pub enum Next {
    /// Nothing: `out` holds the whole response (or, for HEAD, its head).
    Done,
    /// A shared body to write after the head (a segment, a player script): written as is,
    /// never copied.
    Body(Bytes),
    /// After the head, stream this stream's live MPEG-TS until the viewer leaves (the
    /// connection then closes); the viewer's session lives with the connection.
    LiveTs(StreamId),
    /// Nothing was written: the resource is the segment or part being cut right now, or an
    /// LL-HLS blocking reload. The connection waits (bounded) for it, then asks again.
    WaitForSegment(SegmentWait),
    /// Nothing was written: a portal is being asked about this request. The connection
    /// waits for this decision key, then asks again with `ConnScratch::portal_waited` set,
    /// so a lost answer ends as unanswered.
    WaitForVerdict(u64),
    /// Nothing was written: an operator API call (`http::api`) the connection runs across
    /// the shards and answers with `write_api_answer`. `send_body` is false for HEAD: the
    /// head alone, or a keep-alive client reads the body as the next response.
    Api { call: ApiCall, send_body: bool },
    /// Nothing was written: the request, authorized by a template's `on_play`, names a
    /// stream the template makes; the connection asks for it (`runtime::templates`), then
    /// asks again with `ConnScratch::stream_waited` set.
    MakeStream(Box<str>),
    /// Nothing was written: a WHEP exchange the connection carries out
    /// (`runtime::webrtc_conn`) and answers with the `write_whep_*` functions.
    Whep(WhepCall),
}

/// A WHEP request past routing: what the connection does with it.
#[derive(Debug, PartialEq, Eq)]
pub enum WhepCall {
    /// `POST /NAME/whep`: authorize and answer the offer, `body_len` bytes after the head
    /// (at most `MAX_OFFER`); the token from the query or `Authorization: Bearer`.
    Offer {
        stream: StreamId,
        token: Option<Vec<u8>>,
        body_len: usize,
    },
    /// `DELETE /NAME/whep/ID`: end that session.
    Delete { id: String },
}

impl Reply {
    /// `out` holds the whole response.
    pub fn done(status: Status, close: bool) -> Reply {
        Reply::then(status, close, Next::Done)
    }

    /// The connection goes on with `next` after writing `out`.
    pub fn then(status: Status, close: bool, next: Next) -> Reply {
        Reply {
            status,
            close,
            next,
        }
    }

    /// The request was not answered yet: it stays in the buffer to be asked again.
    pub fn parks(&self) -> bool {
        matches!(
            self.next,
            Next::WaitForSegment(_) | Next::WaitForVerdict(_) | Next::MakeStream(_)
        )
    }
}

/// A request parked until `stream`'s segment window has `until`, for at most `timeout`.
#[derive(Clone, Copy, Debug)]
pub struct SegmentWait {
    pub stream: StreamId,
    pub until: Awaited,
    pub timeout: Duration,
}

/// Where and how the answer to the current request is written. Every phase that answers
/// goes through it, so the connection header and HEAD's missing body are decided once.
struct Answer<'o> {
    out: &'o mut Vec<u8>,
    /// When the request's head was parsed (`date`, `x-run-time`).
    now: Now,
    /// Close the connection after this response.
    close: bool,
    /// False for HEAD: the head alone.
    send_body: bool,
}

impl<'o> Answer<'o> {
    fn new(out: &'o mut Vec<u8>, head: &RequestHead<'_>, now: Now) -> Answer<'o> {
        Answer {
            out,
            now,
            close: head.close,
            send_body: head.method != Method::Head,
        }
    }

    /// Writes `head` with the shard's id and cached date; the connection goes on with
    /// `next`, unless the request was HEAD.
    fn head_then(&mut self, shard: &mut ShardState, mut head: Head<'_>, next: Next) -> Reply {
        head.close = self.close;
        head.shard = shard.id();
        let date = *shard.date(self.now);
        write_head(self.out, &head, &date, self.now.instant);
        let next = if self.send_body { next } else { Next::Done };
        Reply::then(head.status, self.close, next)
    }

    /// Writes `head` and, unless the request was HEAD, `body`.
    fn write(&mut self, shard: &mut ShardState, head: Head<'_>, body: &[u8]) -> Reply {
        let reply = self.head_then(shard, head, Next::Done);
        if self.send_body {
            self.out.extend_from_slice(body);
        }
        reply
    }

    /// A short text error.
    fn error(&mut self, shard: &mut ShardState, status: Status, text: &'static str) -> Reply {
        let mut head = Head::new(status, TEXT_TYPE, text.len());
        if status == Status::MethodNotAllowed {
            head.allow = Some(ALLOWED_METHODS);
        }
        self.write(shard, head, text.as_bytes())
    }

    /// Not answered yet: nothing written, and not counted until it is answered.
    fn park(&self, shard: &mut ShardState, next: Next) -> Reply {
        shard.uncount_http_request();
        Reply::then(Status::Ok, self.close, next)
    }
}

/// Answers one request. `now` is when its head was parsed. `may_wait`: the connection can
/// park the request until the stream's next segment (false once it has waited).
pub fn respond(
    shard: &mut ShardState,
    scratch: &mut ConnScratch,
    head: &RequestHead<'_>,
    peer: IpAddr,
    now: Now,
    out: &mut Vec<u8>,
    may_wait: bool,
) -> Reply {
    shard.count_http_request();
    scratch.body.clear();
    let mut answer = Answer::new(out, head, now);
    match phases(shard, scratch, head, peer, &mut answer, may_wait) {
        Ok(reply) | Err(reply) => reply,
    }
}

/// The phases in order. Each one that answers returns its `Reply` as the error.
fn phases(
    shard: &mut ShardState,
    scratch: &mut ConnScratch,
    head: &RequestHead<'_>,
    peer: IpAddr,
    answer: &mut Answer<'_>,
    may_wait: bool,
) -> Result<Reply, Reply> {
    // The operator API shares the port (unless admin listeners have it); it is never
    // routed as a stream.
    // In absolute form the API is reached the same way: its path after the authority.
    let api_target = crate::uri::path_and_query(head.target).unwrap_or(head.target);
    if crate::http::api::is_api_path(api_target) {
        return Err(api_request(
            shard,
            head,
            api_target,
            peer,
            scratch.admin,
            answer,
        ));
    }
    // An `Arc` clone (a reference count), so the catalog can be read while the shard's
    // authorizer and counters are mutated.
    let catalog = shard.catalog().clone();
    if let Some(reply) = whep_request(shard, scratch, head, &catalog, answer) {
        return Err(reply);
    }
    method(shard, head.method, answer)?;
    normalize(shard, scratch, head.target, &catalog, answer)?;
    let (stream, resource) = route(shard, scratch, head.target, &catalog, answer)?;
    let play = play_request(head, &scratch.target, stream.id, resource, peer);
    let grant = authorize(shard, &play, scratch.portal_waited, answer.now)
        .map_err(|refusal| refuse(shard, &mut scratch.body, refusal, answer))?;
    if stream.kind == StreamKind::Gate {
        return Err(make_stream(shard, scratch, answer));
    }
    let serving = Serving::new(
        shard,
        &catalog,
        stream,
        &scratch.target,
        answer.now,
        may_wait,
    );
    let served =
        serve(&serving, &mut scratch.body, resource).map_err(|why| unserved(shard, why, answer))?;
    Ok(account(shard, &play, &grant, served, answer))
}

/// Phase method: GET and HEAD go on; OPTIONS is a CORS preflight, answered without auth
/// and revealing nothing about the stream; anything else is 405 with `allow`.
fn method(shard: &mut ShardState, method: Method, answer: &mut Answer<'_>) -> Result<(), Reply> {
    match method {
        Method::Get | Method::Head => Ok(()),
        Method::Options => {
            let head = Head::new(Status::NoContent, "", 0);
            Err(answer.head_then(shard, head, Next::Done))
        }
        Method::Post | Method::Delete | Method::Other => {
            Err(answer.error(shard, Status::MethodNotAllowed, "method not allowed\n"))
        }
    }
}

/// Phase normalize: the target decoded once into `scratch.target`; routing and auth only
/// ever see this form. A target it refuses is 400 with the reason.
fn normalize(
    shard: &mut ShardState,
    scratch: &mut ConnScratch,
    raw: &[u8],
    catalog: &Catalog,
    answer: &mut Answer<'_>,
) -> Result<(), Reply> {
    let Err(e) = scratch.target.parse(raw, catalog.token_param.as_bytes()) else {
        return Ok(());
    };
    let _ = writeln!(scratch.body, "bad request: {e}");
    let head = Head::new(Status::BadRequest, TEXT_TYPE, scratch.body.len());
    Err(answer.write(shard, head, &scratch.body))
}

/// Phase route: the resource, recognised from the end of the path, and its stream, which
/// the catalog must know (404). Two public resources are answered here, before
/// authorization: the player's scripts and the player page.
fn route<'c>(
    shard: &mut ShardState,
    scratch: &mut ConnScratch,
    raw: &[u8],
    catalog: &'c Catalog,
    answer: &mut Answer<'_>,
) -> Result<(&'c StreamSpec, Resource), Reply> {
    let path = scratch.target.path();
    // The player's scripts: public, of no stream, never authorized.
    if let Some(name) = path.strip_prefix(ASSET_PREFIX) {
        return Err(player_script(shard, catalog.player.get(name), answer));
    }
    let routed = crate::http::route::route(path).and_then(|(name, res)| {
        let stream = catalog.stream_by_name(name);
        // A name under a template's prefix: its gate authorizes it (never the player page).
        let gate = || (res != Resource::EmbedPage).then(|| catalog.template_gate(name))?;
        stream.or_else(gate).map(|s| (s, res))
    });
    let Some((stream, resource)) = routed else {
        return Err(answer.error(shard, Status::NotFound, NOT_FOUND));
    };
    if resource == Resource::EmbedPage {
        return Err(embed_page(shard, scratch, raw, catalog, stream, answer));
    }
    Ok((stream, resource))
}

/// An authorized request for a name a template covers: park it while its stream is made;
/// 503 when it was asked for already and is still missing (past `MAX_TEMPLATE_STREAMS`, or
/// the main thread too slow).
fn make_stream(shard: &mut ShardState, scratch: &ConnScratch, answer: &mut Answer<'_>) -> Reply {
    let name = crate::http::route::route(scratch.target.path()).map(|(name, _)| name);
    match name {
        Some(name) if !scratch.stream_waited => answer.park(shard, Next::MakeStream(name.into())),
        _ => answer.error(shard, Status::ServiceUnavailable, "stream not available\n"),
    }
}

/// `/_player/NAME`: a player script, or a 404 that says why.
fn player_script(shard: &mut ShardState, asset: Asset, answer: &mut Answer<'_>) -> Reply {
    match asset {
        Asset::Script { content_type, body } => {
            let mut head = Head::new(Status::Ok, content_type, body.len());
            head.cache = CachePolicy::Immutable;
            head.extra = SCRIPT_HEADERS;
            answer.head_then(shard, head, Next::Body(body))
        }
        Asset::NotInstalled => {
            let text = "player script not installed on this server: run tools/player/install.sh \
                        and point player_assets (or TESSERA_PLAYER_ASSETS) at \
                        tools/player/node_modules\n";
            answer.error(shard, Status::NotFound, text)
        }
        Asset::Unknown => answer.error(shard, Status::NotFound, NOT_FOUND),
    }
}

/// `NAME/embed.html`. Not authorized: the page holds no media, and the player asks for
/// every media URL with the token, each authorized like any other request.
fn embed_page(
    shard: &mut ShardState,
    scratch: &mut ConnScratch,
    raw: &[u8],
    catalog: &Catalog,
    stream: &StreamSpec,
    answer: &mut Answer<'_>,
) -> Reply {
    let Ok(format) = format_from_target(raw) else {
        let text = "bad request: format must be hls, llhls, dash or mss\n";
        return answer.error(shard, Status::BadRequest, text);
    };
    let token = token_query(catalog, &scratch.target);
    write_page(&mut scratch.body, &stream.name, format, token);
    let mut head = Head::new(Status::Ok, HTML_TYPE, scratch.body.len());
    head.extra = PAGE_HEADERS;
    answer.write(shard, head, &scratch.body)
}

/// The query every URI rendered for this viewer carries.
fn token_query<'a>(catalog: &'a Catalog, target: &'a Target) -> TokenQuery<'a> {
    TokenQuery {
        param: &catalog.token_param,
        token: target.token(),
    }
}

/// The request as the authorizer (and, in `account`, the session table) sees it.
fn play_request<'r>(
    head: &RequestHead<'r>,
    target: &'r Target,
    stream: StreamId,
    resource: Resource,
    peer: IpAddr,
) -> PlayRequest<'r> {
    let qs = memchr::memchr(b'?', head.target).map_or(&[][..], |i| &head.target[i + 1..]);
    PlayRequest {
        stream,
        proto: resource.proto(),
        token: target.token(),
        ip: peer,
        user_agent: head.user_agent,
        referer: head.referer,
        qs,
    }
}

/// Why an authorized answer is not given (yet).
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// 403 with `x-deny-reason`.
    Deny(DenyReason),
    /// The portal sends this viewer elsewhere (spec §3: 302 + `Location`).
    Redirect(Rc<str>),
    /// A portal is being asked: the connection waits for this decision key.
    AwaitVerdict(u64),
}

/// Phase authorize: the one entry point, `Authorizer::authorize`. `portal_waited`: the
/// request already waited for a portal, so a question still open counts as unanswered.
fn authorize(
    shard: &mut ShardState,
    play: &PlayRequest<'_>,
    portal_waited: bool,
    now: Now,
) -> Result<Grant, Refusal> {
    let attempt = if portal_waited {
        Attempt::AfterWait
    } else {
        Attempt::First
    };
    match shard.decide_request(play, attempt, now) {
        Decision::Allow(grant) => Ok(grant),
        Decision::Deny(reason) => Err(Refusal::Deny(reason)),
        Decision::Redirect(location) => Err(Refusal::Redirect(location)),
        Decision::WaitForVerdict(key) => Err(Refusal::AwaitVerdict(key)),
    }
}

/// Answers a refusal: 403, 302, or the request parked until the portal's verdict.
fn refuse(
    shard: &mut ShardState,
    body: &mut Vec<u8>,
    refusal: Refusal,
    answer: &mut Answer<'_>,
) -> Reply {
    match refusal {
        Refusal::Deny(reason) => {
            body.extend_from_slice(b"403 Forbidden: ");
            body.extend_from_slice(reason.as_str().as_bytes());
            body.push(b'\n');
            let mut head = Head::new(Status::Forbidden, TEXT_TYPE, body.len());
            head.deny_reason = Some(reason.as_str());
            answer.write(shard, head, body)
        }
        Refusal::Redirect(location) => {
            let text = "302 Found: redirected by the portal\n";
            let mut head = Head::new(Status::Found, TEXT_TYPE, text.len());
            head.location = Some(&location);
            answer.write(shard, head, text.as_bytes())
        }
        Refusal::AwaitVerdict(key) => answer.park(shard, Next::WaitForVerdict(key)),
    }
}

/// What the serve phase reads: the stream's view on this shard, the viewer's token, the
/// clock.
struct Serving<'a> {
    stream: &'a StreamSpec,
    view: &'a StreamView,
    target: &'a Target,
    token: TokenQuery<'a>,
    utc_ms: i64,
    /// The request may be parked for a segment or part being cut (not twice in a row).
    may_wait: bool,
}

impl<'a> Serving<'a> {
    fn new(
        shard: &'a ShardState,
        catalog: &'a Catalog,
        stream: &'a StreamSpec,
        target: &'a Target,
        now: Now,
        may_wait: bool,
    ) -> Serving<'a> {
        Serving {
            stream,
            // Routed streams are the catalog's, and the shard has a view of each
            // (`ShardState::new`).
            view: shard
                .view(stream.id)
                .expect("a view of every catalog stream"),
            target,
            token: token_query(catalog, target),
            utc_ms: now.utc_ms,
            may_wait,
        }
    }

    /// Parks the request until the window has `until`, for at most `timeout`.
    fn wait(&self, until: Awaited, timeout: Duration) -> Unserved {
        Unserved::Wait(SegmentWait {
            stream: self.stream.id,
            until,
            timeout,
        })
    }

    /// Parks the request until the segment after `newest` is cut (it announced the one
    /// asked for).
    fn wait_for_cut(&self, newest: &Segment) -> Unserved {
        self.wait(Awaited::SegmentAfter(newest.sequence), SEGMENT_WAIT)
    }

    /// A stream without a segment yet that is live, or whose input the server runs itself
    /// (fake, or pulled — maybe on demand —: starting now, or this shard has not heard of
    /// its start yet, as right after the process started): park the request for the first
    /// segment (once), else 503. A `publish://` stream waits for nobody: no publisher, 503.
    /// (A stopped on-demand pull keeps its last segments listed: `/NAME/mpegts` then waits
    /// for the next segment, which the restarted pull cuts.)
    fn not_ready(&self) -> Unserved {
        use crate::config::InputUrl;
        let pulled = matches!(self.stream.input, InputUrl::Pull(_));
        let runs_itself = pulled || self.stream.input == InputUrl::Fake;
        if !self.may_wait || !(self.view.live || runs_itself) {
            return Unserved::NotReady;
        }
        let limit = Duration::from_millis(self.stream.pull.first_segment_timeout_ms.into());
        match self.view.window.newest() {
            None => self.wait(Awaited::FirstSegment, limit),
            Some(newest) if pulled && !self.view.live => {
                self.wait(Awaited::SegmentAfter(newest.sequence), limit)
            }
            Some(_) => Unserved::NotReady,
        }
    }

    /// Parks an LL-HLS request: three target durations at most (RFC 8216bis §6.2.5.2).
    fn wait_ll(&self, until: Awaited) -> Unserved {
        let target_s = target_duration_s(self.view.window.playlist());
        self.wait(until, Duration::from_secs(3 * target_s))
    }

    fn bandwidth(&self) -> u64 {
        self.view.window.peak_bitrate().unwrap_or(DEFAULT_BANDWIDTH)
    }
}

/// What `serve` found: how to label it, and where its bytes are.
#[derive(Debug)]
struct Served<'b> {
    content_type: &'static str,
    cache: CachePolicy,
    body: Body<'b>,
}

#[derive(Debug)]
enum Body<'b> {
    /// Rendered into the connection's scratch body (playlists, manifests).
    Rendered(&'b [u8]),
    /// Shared media bytes, written after the head as they are.
    Shared(Bytes),
    /// The live MPEG-TS, streamed by the connection until the viewer leaves.
    LiveTs,
}

impl<'b> Served<'b> {
    /// A live document rendered into the scratch body: never cached.
    fn rendered(content_type: &'static str, body: &'b [u8]) -> Served<'b> {
        Served {
            content_type,
            cache: CachePolicy::NoCache,
            body: Body::Rendered(body),
        }
    }

    /// A media segment or fragment: it never changes under its URL.
    fn segment(content_type: &'static str, bytes: Bytes) -> Served<'b> {
        Served {
            content_type,
            cache: CachePolicy::Immutable,
            body: Body::Shared(bytes),
        }
    }
}

/// Why `serve` has nothing to send now.
#[derive(Debug)]
enum Unserved {
    /// 404: no such segment (any more, or not yet and not worth waiting for).
    NotFound,
    /// 400: LL-HLS delivery directives malformed or out of range.
    BadDirectives,
    /// 503: the stream has no media for this resource (yet).
    NotReady,
    /// Being cut right now: the request is parked.
    Wait(SegmentWait),
}

/// Answers what `serve` could not serve.
fn unserved(shard: &mut ShardState, why: Unserved, answer: &mut Answer<'_>) -> Reply {
    match why {
        Unserved::NotFound => answer.error(shard, Status::NotFound, "segment not found\n"),
        Unserved::BadDirectives => {
            let text = "bad request: _HLS_msn/_HLS_part out of range\n";
            answer.error(shard, Status::BadRequest, text)
        }
        Unserved::NotReady => answer.error(shard, Status::ServiceUnavailable, "stream not ready\n"),
        Unserved::Wait(wait) => answer.park(shard, Next::WaitForSegment(wait)),
    }
}

/// Phase serve: the authorized resource, from this shard's view of the stream. Playlists
/// and manifests are rendered into `body` with the token in every URI; media is a `Bytes`
/// clone of the shared segment.
fn serve<'b>(
    s: &Serving<'_>,
    body: &'b mut Vec<u8>,
    resource: Resource,
) -> Result<Served<'b>, Unserved> {
    let view = s.view;
    match resource {
        Resource::HlsMaster => hls_master(s, body),
        Resource::HlsMedia { dir } => hls_media(s, body, dir, Container::Ts),
        Resource::HlsFmp4Media => hls_media(s, body, TRACKS_DIR, Container::Fmp4),
        Resource::HlsSegment {
            start_second,
            duration_ms,
            container,
        } => hls_segment(view, start_second, duration_ms, container),
        Resource::Fmp4Init | Resource::LlInit => init_segment(view.init_mp4.as_ref()),
        Resource::MpegTs => live_ts(view).map_err(|_| s.not_ready()),
        Resource::DashManifest => dash_manifest(s, body),
        Resource::DashInit { track } => match track {
            DashTrack::Video => init_segment(view.dash_init.0.as_ref()),
            DashTrack::Audio => init_segment(view.dash_init.1.as_ref()),
        },
        Resource::DashSegment { track, start_dts } => dash_segment(s, track, start_dts),
        Resource::MssManifest => mss_manifest(s, body),
        Resource::MssFragment {
            track,
            time,
            info_only,
        } => mss_fragment(s, track, time, info_only),
        Resource::LlHlsMedia => ll_playlist(s, body),
        Resource::Ll(name) => ll_media(s, name),
        // Answered by `route`, before authorization.
        Resource::EmbedPage => Err(Unserved::NotFound),
    }
}

// Serve, HLS playlists.

fn hls_master<'b>(s: &Serving<'_>, body: &'b mut Vec<u8>) -> Result<Served<'b>, Unserved> {
    let variant = s.view.variant.as_ref().ok_or_else(|| s.not_ready())?;
    write_master(body, variant, s.bandwidth(), s.token);
    Ok(Served::rendered(PLAYLIST_TYPE, body))
}

/// The live media playlist of TS segments, or of fMP4 ones (which need the init segment).
fn hls_media<'b>(
    s: &Serving<'_>,
    body: &'b mut Vec<u8>,
    dir: &str,
    container: Container,
) -> Result<Served<'b>, Unserved> {
    let has_init = matches!(container, Container::Ts) || s.view.init_mp4.is_some();
    if s.view.window.is_empty() || !has_init {
        return Err(s.not_ready());
    }
    write_kept_media(body, s.view, dir, container, s.token);
    Ok(Served::rendered(PLAYLIST_TYPE, body))
}

// Serve, segments.

fn hls_segment(
    view: &StreamView,
    start_second: i64,
    duration_ms: u32,
    container: Container,
) -> Result<Served<'static>, Unserved> {
    let found = view.window.find(start_second, duration_ms);
    let served = match container {
        Container::Ts => found.map(|seg| Served::segment(TS_TYPE, seg.ts.clone())),
        Container::Fmp4 => found
            .and_then(|seg| seg.fmp4.clone())
            .map(|bytes| Served::segment(M4S_TYPE, bytes)),
    };
    served.ok_or(Unserved::NotFound)
}

/// An initialization segment (fMP4 HLS, LL-HLS, DASH): known once the media is.
fn init_segment(init: Option<&Bytes>) -> Result<Served<'static>, Unserved> {
    let init = init.ok_or(Unserved::NotReady)?;
    Ok(Served {
        content_type: MP4_TYPE,
        cache: CachePolicy::NoCache,
        body: Body::Shared(init.clone()),
    })
}

/// `/NAME/mpegts`: the connection streams the ring from its newest keyframe.
fn live_ts(view: &StreamView) -> Result<Served<'static>, Unserved> {
    view.ring.start().ok_or(Unserved::NotReady)?;
    Ok(Served {
        content_type: TS_TYPE,
        cache: CachePolicy::NoCache,
        body: Body::LiveTs,
    })
}

// Serve, DASH.

fn dash_manifest<'b>(s: &Serving<'_>, body: &'b mut Vec<u8>) -> Result<Served<'b>, Unserved> {
    let window = &s.view.window;
    let variant = s.view.variant.as_ref().filter(|_| !window.is_empty());
    let ctx = MpdContext {
        variant: variant.ok_or_else(|| s.not_ready())?,
        bandwidth: s.bandwidth(),
        token: s.token,
        now_ms: s.utc_ms,
        segment_ms: s.stream.segment_duration_ms,
    };
    write_mpd(body, window.playlist(), &ctx);
    Ok(Served::rendered(MPD_TYPE, body))
}

fn dash_segment(
    s: &Serving<'_>,
    track: DashTrack,
    start_dts: i64,
) -> Result<Served<'static>, Unserved> {
    let window = &s.view.window;
    let segment = window.find_by_dts(start_dts);
    if segment.is_none() && s.may_wait {
        if let Some(newest) = window.newest().filter(|n| n.end_dts == start_dts) {
            // The segment a player computed from the timeline is being cut: park the
            // request instead of a 404 the player would have to recover from.
            return Err(s.wait_for_cut(newest));
        }
    }
    let fragment = match track {
        DashTrack::Video => segment.and_then(|seg| seg.dash.video.clone()),
        DashTrack::Audio => segment.and_then(|seg| seg.dash.audio.clone()),
    };
    let fragment = fragment.ok_or(Unserved::NotFound)?;
    Ok(Served::segment(M4S_TYPE, fragment))
}

// Serve, MSS.

fn mss_manifest<'b>(s: &Serving<'_>, body: &'b mut Vec<u8>) -> Result<Served<'b>, Unserved> {
    let window = &s.view.window;
    let media = s.view.media.as_ref();
    let media = media.filter(|_| has_fragments(window.segments()));
    let ctx = ManifestContext {
        media: media.ok_or(Unserved::NotReady)?,
        video_bitrate: s.bandwidth(),
        token: s.token,
    };
    // Every kept segment, not only the playlist's: an MSS client never reloads the
    // manifest and derives its live delay from this DVR window (dash.js needs about four
    // fragments to start).
    write_manifest(body, window.segments(), &ctx);
    Ok(Served::rendered(MSS_MANIFEST_TYPE, body))
}

fn mss_fragment(
    s: &Serving<'_>,
    track: TrackKind,
    time: u64,
    info_only: bool,
) -> Result<Served<'static>, Unserved> {
    let window = &s.view.window;
    let of_track = |segment| mss_fragment_of(segment, track);
    let found = window
        .segments()
        .rev()
        .filter_map(of_track)
        .find(|f| f.time == time);
    if found.is_none() && s.may_wait {
        let newest = window.newest();
        let announced = newest
            .and_then(of_track)
            .is_some_and(|f| f.time.saturating_add(f.duration) == time);
        if let Some(newest) = newest.filter(|_| announced) {
            // The fragment the newest one's `tfrf` announced: it is written at the next
            // cut. Park the request rather than 404 a player that did nothing wrong.
            return Err(s.wait_for_cut(newest));
        }
    }
    let fragment = found.ok_or(Unserved::NotFound)?;
    let bytes = if info_only {
        moof_of(&fragment.bytes)
    } else {
        fragment.bytes.clone()
    };
    let kind = match track {
        TrackKind::Video => MSS_VIDEO_TYPE,
        TrackKind::Audio => MSS_AUDIO_TYPE,
    };
    Ok(Served::segment(kind, bytes))
}

/// A segment's MSS fragment of one track.
fn mss_fragment_of(segment: &Segment, track: TrackKind) -> Option<&MssFragment> {
    match track {
        TrackKind::Video => segment.mss.video.as_ref(),
        TrackKind::Audio => segment.mss.audio.as_ref(),
    }
}

/// The `moof` at the start of a fragment (a `FragmentInfo` answer): a slice, not a copy.
fn moof_of(fragment: &Bytes) -> Bytes {
    let len = fragment
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    fragment.slice(..len.min(fragment.len()))
}

// Serve, LL-HLS.

/// The LL-HLS playlist, now or, for a blocking reload, once the window has what the
/// `_HLS_msn`/`_HLS_part` directives name.
fn ll_playlist<'b>(s: &Serving<'_>, body: &'b mut Vec<u8>) -> Result<Served<'b>, Unserved> {
    let window = &s.view.window;
    if window.is_empty() || s.view.init_mp4.is_none() {
        return Err(s.not_ready());
    }
    let reload = match s.target.hls_directives() {
        Some(d) => blocking_reload(window, d.msn, d.part),
        None => Reload::BadRequest,
    };
    match reload {
        Reload::Now => {
            write_kept_ll_media(body, s.view, s.token);
            Ok(Served::rendered(PLAYLIST_TYPE, body))
        }
        Reload::BadRequest => Err(Unserved::BadDirectives),
        Reload::Wait(until) if s.may_wait => Err(s.wait_ll(until)),
        // Waited three target durations and the stream did not get there.
        Reload::Wait(_) => Err(Unserved::NotReady),
    }
}

/// `ll/MSN.m4s`, `ll/MSN.PART.m4s`.
fn ll_media(s: &Serving<'_>, name: LlName) -> Result<Served<'static>, Unserved> {
    let window = &s.view.window;
    let bytes = match name {
        LlName::Segment { sequence } => window
            .find_by_sequence(sequence)
            .and_then(|seg| seg.fmp4.clone()),
        LlName::Part { sequence, part } => match window.part(sequence, part) {
            PartLookup::Found(p) => Some(p.fmp4.clone()),
            PartLookup::NotYet if s.may_wait => {
                // A part named by a preload hint, or asked for early: wait for it.
                let segment = sequence;
                return Err(s.wait_ll(Awaited::Part { segment, part }));
            }
            PartLookup::NotYet | PartLookup::Missing => None,
        },
    };
    let bytes = bytes.ok_or(Unserved::NotFound)?;
    Ok(Served::segment(M4S_TYPE, bytes))
}

/// Phase account: the request joins its session (opened on first sight) and the shard's
/// counters; the head goes out with the session id, then the body.
fn account(
    shard: &mut ShardState,
    play: &PlayRequest<'_>,
    grant: &Grant,
    served: Served<'_>,
    answer: &mut Answer<'_>,
) -> Reply {
    let length = match &served.body {
        Body::Rendered(rendered) => rendered.len(),
        Body::Shared(bytes) => bytes.len(),
        Body::LiveTs => 0,
    };
    let sent = if answer.send_body { length as u64 } else { 0 };
    let live = matches!(served.body, Body::LiveTs);
    // A live MPEG-TS viewer's session lives with its connection (`runtime::live_ts`).
    let session = if live {
        None
    } else {
        let now = answer.now.instant;
        shard.track_session(play, grant, now, sent)
    };
    shard.count_http_bytes(sent);
    let mut head = Head::new(Status::Ok, served.content_type, length);
    head.cache = served.cache;
    head.streaming = live;
    head.session_id = session.as_ref().map(|id| id.as_str());
    // A live stream has no length: it ends with the connection.
    answer.close |= live;
    match served.body {
        Body::Rendered(rendered) => answer.write(shard, head, rendered),
        Body::Shared(bytes) => answer.head_then(shard, head, Next::Body(bytes)),
        Body::LiveTs => answer.head_then(shard, head, Next::LiveTs(play.stream)),
    }
}

/// An operator API request: refused here (401/400/404/405), or handed to the connection
/// to run across the shards.
fn api_request(
    shard: &mut ShardState,
    head: &RequestHead<'_>,
    target: &[u8],
    peer: IpAddr,
    admin: bool,
    answer: &mut Answer<'_>,
) -> Reply {
    let catalog = shard.catalog().clone();
    if catalog.api_on_admin_only && !admin {
        // Not on this listener: the same answer as any unknown path.
        return answer.error(shard, Status::NotFound, "not found\n");
    }
    let allowed = &catalog.api_allowed_from;
    if !allowed.is_empty() && !allowed.iter().any(|c| c.contains(peer)) {
        return answer.error(
            shard,
            Status::Forbidden,
            "the API is not open to this address\n",
        );
    }
    let key = catalog.api_key.as_deref();
    match crate::http::api::parse_call(head.method, target, head.authorization, key) {
        Ok(call) => {
            let send_body = answer.send_body;
            Reply::then(Status::Ok, answer.close, Next::Api { call, send_body })
        }
        Err(e) => {
            let mut h = Head::new(e.status, TEXT_TYPE, e.message.len());
            h.bearer_challenge = e.status == Status::Unauthorized;
            if e.status == Status::MethodNotAllowed {
                h.allow = Some(API_ALLOWED_METHODS);
            }
            answer.write(shard, h, e.message.as_bytes())
        }
    }
}

/// What WHEP resources take.
const WHEP_METHODS: &str = "POST, DELETE, OPTIONS";
const SDP_TYPE: &str = "application/sdp";

/// A WHEP request (`/NAME/whep`, `/NAME/whep/ID`): answered here (preflight, 404, 405,
/// 400, 413) or handed to the connection (`Next::Whep`). `None`: not a WHEP path.
fn whep_request(
    shard: &mut ShardState,
    scratch: &mut ConnScratch,
    head: &RequestHead<'_>,
    catalog: &Catalog,
    answer: &mut Answer<'_>,
) -> Option<Reply> {
    memchr::memmem::find(head.target, b"/whep")?;
    if let Err(reply) = normalize(shard, scratch, head.target, catalog, answer) {
        return Some(reply);
    }
    let path = whep_path(scratch.target.path())?;
    let name = match path {
        WhepPath::Endpoint { stream } | WhepPath::Resource { stream, .. } => stream,
    };
    let Some(stream) = catalog.stream_by_name(name) else {
        return Some(answer.error(shard, Status::NotFound, NOT_FOUND));
    };
    let reply = match (head.method, path) {
        (Method::Options, _) => {
            let mut h = Head::new(Status::NoContent, "", 0);
            h.cors_methods = WHEP_METHODS;
            h.extra = "accept-post: application/sdp\r\n";
            answer.head_then(shard, h, Next::Done)
        }
        (Method::Post, WhepPath::Endpoint { .. }) => {
            whep_offer(shard, scratch, head, stream, answer)
        }
        (Method::Delete, WhepPath::Resource { id, .. }) => {
            let id = id.to_owned();
            Reply::then(
                Status::Ok,
                answer.close,
                Next::Whep(WhepCall::Delete { id }),
            )
        }
        _ => {
            let text = "method not allowed: POST an SDP offer to /NAME/whep, DELETE its \
                        resource; trickle ICE (PATCH) is not supported\n";
            let mut h = Head::new(Status::MethodNotAllowed, TEXT_TYPE, text.len());
            h.allow = Some(WHEP_METHODS);
            h.cors_methods = WHEP_METHODS;
            answer.write(shard, h, text.as_bytes())
        }
    };
    Some(reply)
}

/// `POST /NAME/whep`: an offer of a bounded size, handed to the connection with the token.
fn whep_offer(
    shard: &mut ShardState,
    scratch: &ConnScratch,
    head: &RequestHead<'_>,
    stream: &StreamSpec,
    answer: &mut Answer<'_>,
) -> Reply {
    if head.body_len == 0 {
        return answer.error(shard, Status::BadRequest, "an SDP offer is required\n");
    }
    if head.body_len > MAX_OFFER {
        // The body is not read: the connection cannot find the next request.
        answer.close = true;
        return answer.error(shard, Status::PayloadTooLarge, "SDP offer too large\n");
    }
    let token = scratch
        .target
        .token()
        .or_else(|| bearer_token(head.authorization))
        .map(<[u8]>::to_vec);
    let call = WhepCall::Offer {
        stream: stream.id,
        token,
        body_len: head.body_len,
    };
    Reply::then(Status::Created, answer.close, Next::Whep(call))
}

/// Answers an offer: `201 Created`, the resource's `Location`, the SDP answer.
pub fn write_whep_created(
    shard: &mut ShardState,
    out: &mut Vec<u8>,
    location: &str,
    sdp: &str,
    close: bool,
) {
    let mut answer = connection_answer(out, close);
    let mut h = Head::new(Status::Created, SDP_TYPE, sdp.len());
    h.location = Some(location);
    h.cors_methods = WHEP_METHODS;
    answer.write(shard, h, sdp.as_bytes());
}

/// Refuses an offer: `403` with `x-deny-reason`, as for every other protocol.
pub fn write_whep_refused(
    shard: &mut ShardState,
    out: &mut Vec<u8>,
    reason: DenyReason,
    close: bool,
) {
    let mut answer = connection_answer(out, close);
    let mut body = Vec::with_capacity(64);
    refuse(shard, &mut body, Refusal::Deny(reason), &mut answer);
}

/// Any other WHEP answer: a status and a short text.
pub fn write_whep_status(
    shard: &mut ShardState,
    out: &mut Vec<u8>,
    status: Status,
    text: &str,
    close: bool,
) {
    let mut answer = connection_answer(out, close);
    let mut h = Head::new(status, TEXT_TYPE, text.len());
    h.cors_methods = WHEP_METHODS;
    answer.write(shard, h, text.as_bytes());
}

/// An answer the connection writes after running what the service handed it.
fn connection_answer(out: &mut Vec<u8>, close: bool) -> Answer<'_> {
    Answer {
        out,
        now: Now::read(),
        close,
        send_body: true,
    }
}

/// Writes the answer of an API call the connection ran.
pub fn write_api_answer(
    shard: &mut ShardState,
    out: &mut Vec<u8>,
    status: Status,
    content_type: &'static str,
    body: &str,
    close: bool,
    send_body: bool,
) {
    let mut answer = Answer {
        out,
        now: Now::read(),
        close,
        send_body,
    };
    let head = Head::new(status, content_type, body.len());
    answer.write(shard, head, body.as_bytes());
}

/// A response for a request head that could not be parsed (the connection closes after it).
pub fn invalid_request(shard: &mut ShardState, out: &mut Vec<u8>, now: Now, status: Status) {
    let text = match status {
        Status::UriTooLong => "uri too long\n",
        Status::HeaderFieldsTooLarge => "request header fields too large\n",
        Status::PayloadTooLarge => "request body too large\n",
        Status::ServiceUnavailable => "too many connections\n",
        Status::RequestTimeout => "request head not received in time\n",
        _ => "bad request\n",
    };
    let mut answer = Answer {
        out,
        now,
        close: true,
        send_body: true,
    };
    answer.error(shard, status, text);
}

#[cfg(test)]
mod tests;
