//! The HTTP playback service: what one request gets. Sans-IO: a parsed head and the
//! shard's state in, a response head (and inline body) written to `out` and an optional
//! shared body out. The connection task does the I/O.
//!
//! Every request walks the same phases, in this order and only here:
//! method → normalize (`Target`) → route → authorize (`Authorizer`, the one auth entry
//! point) → serve → account. A refused request learns nothing past the phase that refused
//! it (a denied viewer cannot tell which segments exist).

use crate::auth::Authorization;
use crate::auth::cache::Grant;
use crate::auth::verdict::{PlayRequest, Verdict};
use crate::dash::mpd::{MpdContext, write_mpd};
use crate::hls::ll::{Reload, blocking_reload};
use crate::hls::names::{Container, LlName};
use crate::hls::playlist::{
    TRACKS_DIR, TokenQuery, target_duration_s, write_ll_media, write_master, write_media,
};
use crate::http::request::{Method, RequestHead};
use crate::http::response::{CachePolicy, Head, write_head};
use crate::http::route::{DashTrack, Resource, route};
use crate::http::status::Status;
use crate::http::target::Target;
use crate::media::frame::TrackKind;
use crate::mss::manifest::{ManifestContext, has_fragments, write_manifest};
use crate::player::page::{PAGE_HEADERS, SCRIPT_HEADERS, format_from_target, write_page};
use crate::player::{ASSET_PREFIX, Asset};
use crate::shard::{Now, ShardState};
use crate::stream::segment::{MssFragment, Segment};
use crate::stream::segmenter::PART_TARGET_MS;
use crate::stream::window::{Awaited, PartLookup};
use bytes::Bytes;
use std::io::Write;
use std::net::IpAddr;

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

/// Per-connection buffers the service reuses, so steady-state requests allocate nothing.
pub struct ConnScratch {
    pub target: Target,
    pub body: Vec<u8>,
    /// The request being asked again already waited for a portal's verdict: a question
    /// still open now counts as unanswered. Apart from `respond`'s `may_wait` (media), so
    /// a request may wait for its verdict and then for its segment or part.
    pub portal_waited: bool,
}

impl Default for ConnScratch {
    fn default() -> Self {
        ConnScratch {
            target: Target::new(),
            body: Vec::with_capacity(2048),
            portal_waited: false,
        }
    }
}

/// What the connection must do after writing `out`.
#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    /// A shared body to write after the head (a segment): written as is, never copied.
    pub body: Option<Bytes>,
    /// Close the connection after this response.
    pub close: bool,
    /// After the head, stream this stream's live MPEG-TS until the viewer leaves (the
    /// connection then closes); the request that got it is `play`'s session.
    pub live: Option<LiveTs>,
    /// Nothing was written: the resource is the segment or part being cut right now, or an
    /// LL-HLS blocking reload. The connection waits (bounded) for it, then asks again.
    pub wait_for_segment: Option<SegmentWait>,
    /// Nothing was written: the connection has more to do before the answer (wait for a
    /// portal's verdict, or run an operator API call across the shards).
    pub defer: Option<Deferred>,
}

impl Reply {
    /// The request was not answered yet: it stays in the buffer to be asked again.
    pub fn parks(&self) -> bool {
        self.wait_for_segment.is_some() || matches!(self.defer, Some(Deferred::Auth(_)))
    }
}

/// Work the connection does before (or instead of) the service's answer.
#[derive(Debug)]
pub enum Deferred {
    /// A portal is being asked about this request: wait for the decision key, then ask
    /// the service again (with `ConnScratch::portal_waited` set, so a lost answer ends as
    /// unanswered).
    Auth(u64),
    /// An operator API call (`http::api`): the connection runs it and writes its answer.
    /// `send_body` is false for HEAD: the head alone, or a keep-alive client reads the
    /// body as the next response.
    Api {
        call: crate::http::api::ApiCall,
        send_body: bool,
    },
}

/// A request parked until `stream`'s segment window has `until`, for at most `timeout`.
#[derive(Clone, Copy, Debug)]
pub struct SegmentWait {
    pub stream: crate::auth::verdict::StreamId,
    pub until: Awaited,
    pub timeout: std::time::Duration,
}

/// Longest a DASH request for the segment being cut waits for it.
pub const SEGMENT_WAIT: std::time::Duration = std::time::Duration::from_secs(6);

/// A parked request's reply: nothing written, not counted until it is answered.
fn parked(shard: &mut ShardState, wait: SegmentWait, close: bool) -> Reply {
    shard.http.requests -= 1;
    Reply {
        status: Status::Ok,
        body: None,
        close,
        live: None,
        wait_for_segment: Some(wait),
        defer: None,
    }
}

/// How long an LL-HLS request may be held: three target durations (RFC 8216bis §6.2.5.2).
fn ll_wait(window: &crate::stream::window::SegmentWindow) -> std::time::Duration {
    std::time::Duration::from_secs(3 * target_duration_s(window.playlist()))
}

/// What the connection needs to stream `/NAME/mpegts`.
#[derive(Clone, Copy, Debug)]
pub struct LiveTs {
    pub stream: crate::auth::verdict::StreamId,
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
    shard.http.requests += 1;
    scratch.body.clear();
    let close = head.close;
    let send_body = head.method != Method::Head;

    // The operator API shares the port; it is never routed as a stream.
    if crate::http::api::is_api_path(head.target) {
        return api_request(shard, head, now, out, close, send_body);
    }

    // Phase: method.
    match head.method {
        Method::Get | Method::Head => {}
        Method::Options => {
            // CORS preflight: no auth, nothing about the stream is revealed.
            let mut h = Head::new(Status::NoContent, "", 0);
            h.close = close;
            emit(shard, out, h, now);
            return Reply {
                status: Status::NoContent,
                body: None,
                close,
                live: None,
                wait_for_segment: None,
                defer: None,
            };
        }
        Method::Post | Method::Delete | Method::Other => {
            return error(
                shard,
                out,
                now,
                Status::MethodNotAllowed,
                "method not allowed\n",
                close,
                send_body,
            );
        }
    }

    // Phase: normalize.
    // An `Arc` clone (a reference count), so the catalog can be read while the shard's
    // authorizer and counters are mutated.
    let catalog = shard.catalog.clone();
    if let Err(e) = scratch
        .target
        .parse(head.target, catalog.token_param.as_bytes())
    {
        let _ = writeln!(scratch.body, "bad request: {e}");
        return finish(
            shard,
            out,
            now,
            Head::new(Status::BadRequest, TEXT_TYPE, scratch.body.len()),
            scratch,
            close,
            send_body,
        );
    }

    // The player's scripts: public, of no stream, never authorized.
    if let Some(name) = scratch.target.path().strip_prefix(ASSET_PREFIX) {
        return player_script(shard, out, now, catalog.player.get(name), close, send_body);
    }

    // Phase: route.
    let routed = route(scratch.target.path())
        .and_then(|(name, res)| catalog.stream_by_name(name).map(|s| (s, res)));
    let Some((stream, resource)) = routed else {
        return error(
            shard,
            out,
            now,
            Status::NotFound,
            "not found\n",
            close,
            send_body,
        );
    };

    // The player page is not authorized: it holds no media, and the player asks for every
    // media URL with the token, each authorized below like any other request.
    if resource == Resource::EmbedPage {
        let Ok(format) = format_from_target(head.target) else {
            let text = "bad request: format must be hls, llhls, dash or mss\n";
            return error(shard, out, now, Status::BadRequest, text, close, send_body);
        };
        let token = TokenQuery {
            param: &catalog.token_param,
            token: scratch.target.token(),
        };
        write_page(&mut scratch.body, &stream.name, format, token);
        let mut h = Head::new(Status::Ok, HTML_TYPE, scratch.body.len());
        h.extra = PAGE_HEADERS;
        return finish(shard, out, now, h, scratch, close, send_body);
    }

    // Phase: authorize.
    let qs = memchr::memchr(b'?', head.target).map_or(&[][..], |i| &head.target[i + 1..]);
    let play = PlayRequest {
        stream: stream.id,
        proto: resource.proto(),
        token: scratch.target.token(),
        ip: peer,
        user_agent: head.user_agent,
        referer: head.referer,
        qs,
    };
    let verdict = match shard
        .auth
        .authorize(&catalog, &play, now.instant, now.utc_ms)
    {
        Authorization::Allow(grant) => Ok(grant),
        Authorization::Deny(reason) => Err(reason),
        Authorization::Redirect(location) => {
            // The portal sends this viewer elsewhere (spec §3: 302 + Location).
            let text = "302 Found: redirected by the portal\n";
            let mut h = Head::new(Status::Found, TEXT_TYPE, text.len());
            h.location = Some(&location);
            h.close = close;
            emit(shard, out, h, now);
            if send_body {
                out.extend_from_slice(text.as_bytes());
            }
            return Reply {
                status: Status::Found,
                body: None,
                close,
                live: None,
                wait_for_segment: None,
                defer: None,
            };
        }
        Authorization::Pending(key) if !scratch.portal_waited => {
            // Answered when the portal's verdict arrives; this one does not count yet.
            shard.http.requests -= 1;
            return Reply {
                status: Status::Ok,
                body: None,
                close,
                live: None,
                wait_for_segment: None,
                defer: Some(Deferred::Auth(key)),
            };
        }
        Authorization::Pending(_) => match shard.auth.unanswered(&catalog, stream.id) {
            Verdict::Allow => Ok(Grant::default()),
            Verdict::Deny(reason) => Err(reason),
        },
    };
    let grant = match verdict {
        Ok(grant) => grant,
        Err(reason) => {
            scratch.body.extend_from_slice(b"403 Forbidden: ");
            scratch.body.extend_from_slice(reason.as_str().as_bytes());
            scratch.body.push(b'\n');
            let mut h = Head::new(Status::Forbidden, TEXT_TYPE, scratch.body.len());
            h.deny_reason = Some(reason.as_str());
            h.close = close;
            emit(shard, out, h, now);
            if send_body {
                out.extend_from_slice(&scratch.body);
            }
            return Reply {
                status: Status::Forbidden,
                body: None,
                close,
                live: None,
                wait_for_segment: None,
                defer: None,
            };
        }
    };

    // Phase: serve.
    let view = &shard.streams[stream.id as usize];
    let token = TokenQuery {
        param: &catalog.token_param,
        token: scratch.target.token(),
    };
    let not_ready = Status::ServiceUnavailable;
    let served = match resource {
        Resource::HlsMaster => view.variant.as_ref().ok_or(not_ready).map(|variant| {
            let bandwidth = view.window.peak_bitrate().unwrap_or(DEFAULT_BANDWIDTH);
            write_master(&mut scratch.body, variant, bandwidth, token);
            (PLAYLIST_TYPE, CachePolicy::NoCache, None)
        }),
        Resource::HlsMedia { dir } if !view.window.is_empty() => {
            write_media(
                &mut scratch.body,
                view.window.playlist(),
                dir,
                token,
                Container::Ts,
            );
            Ok((PLAYLIST_TYPE, CachePolicy::NoCache, None))
        }
        Resource::HlsFmp4Media if !view.window.is_empty() && view.init_mp4.is_some() => {
            let segments = view.window.playlist();
            write_media(
                &mut scratch.body,
                segments,
                TRACKS_DIR,
                token,
                Container::Fmp4,
            );
            Ok((PLAYLIST_TYPE, CachePolicy::NoCache, None))
        }
        Resource::HlsMedia { .. } | Resource::HlsFmp4Media => Err(not_ready),
        Resource::DashManifest if !view.window.is_empty() => match &view.variant {
            Some(variant) => {
                let ctx = MpdContext {
                    variant,
                    bandwidth: view.window.peak_bitrate().unwrap_or(DEFAULT_BANDWIDTH),
                    token,
                    now_ms: now.utc_ms,
                    segment_ms: stream.segment_duration_ms,
                };
                write_mpd(&mut scratch.body, view.window.playlist(), &ctx);
                Ok((MPD_TYPE, CachePolicy::NoCache, None))
            }
            None => Err(not_ready),
        },
        Resource::DashManifest => Err(not_ready),
        Resource::DashInit { track } => {
            let init = match track {
                DashTrack::Video => &view.dash_init.0,
                DashTrack::Audio => &view.dash_init.1,
            };
            init.clone()
                .map(|b| (MP4_TYPE, CachePolicy::NoCache, Some(b)))
                .ok_or(not_ready)
        }
        Resource::DashSegment { track, start_dts } => {
            let segment = view.window.find_by_dts(start_dts);
            if segment.is_none() && may_wait {
                if let Some(newest) = view.window.newest().filter(|n| n.end_dts == start_dts) {
                    // The segment a player computed from the timeline is being cut: park the
                    // request instead of a 404 the player would have to recover from.
                    let wait = SegmentWait {
                        stream: stream.id,
                        until: Awaited::SegmentAfter(newest.sequence),
                        timeout: SEGMENT_WAIT,
                    };
                    return parked(shard, wait, close);
                }
            }
            let fragment = match track {
                DashTrack::Video => segment.and_then(|s| s.dash.video.clone()),
                DashTrack::Audio => segment.and_then(|s| s.dash.audio.clone()),
            };
            fragment
                .map(|b| (M4S_TYPE, CachePolicy::Immutable, Some(b)))
                .ok_or(Status::NotFound)
        }
        Resource::MssManifest => match &view.media {
            Some(media) if has_fragments(view.window.segments()) => {
                let ctx = ManifestContext {
                    media,
                    video_bitrate: view.window.peak_bitrate().unwrap_or(DEFAULT_BANDWIDTH),
                    token,
                };
                // Every kept segment, not only the playlist's: an MSS client never reloads
                // the manifest and derives its live delay from this DVR window (dash.js
                // needs about four fragments to start).
                write_manifest(&mut scratch.body, view.window.segments(), &ctx);
                Ok((MSS_MANIFEST_TYPE, CachePolicy::NoCache, None))
            }
            _ => Err(not_ready),
        },
        Resource::MssFragment {
            track,
            time,
            info_only,
        } => {
            let of_track = |s| mss_fragment_of(s, track);
            let found = view
                .window
                .segments()
                .rev()
                .filter_map(of_track)
                .find(|f| f.time == time);
            if found.is_none() && may_wait {
                let newest = view.window.newest();
                let announced = newest
                    .and_then(of_track)
                    .is_some_and(|f| f.time.saturating_add(f.duration) == time);
                if let Some(newest) = newest.filter(|_| announced) {
                    // The fragment the newest one's `tfrf` announced: it is written at the next
                    // cut. Park the request rather than 404 a player that did nothing wrong.
                    let wait = SegmentWait {
                        stream: stream.id,
                        until: Awaited::SegmentAfter(newest.sequence),
                        timeout: SEGMENT_WAIT,
                    };
                    return parked(shard, wait, close);
                }
            }
            let kind = match track {
                TrackKind::Video => MSS_VIDEO_TYPE,
                TrackKind::Audio => MSS_AUDIO_TYPE,
            };
            found
                .map(|f| {
                    let body = if info_only {
                        moof_of(&f.bytes)
                    } else {
                        f.bytes.clone()
                    };
                    (kind, CachePolicy::Immutable, Some(body))
                })
                .ok_or(Status::NotFound)
        }
        // Answered before authorization.
        Resource::EmbedPage => Err(Status::NotFound),
        Resource::LlHlsMedia if view.window.is_empty() || view.init_mp4.is_none() => Err(not_ready),
        Resource::LlHlsMedia => {
            let reload = match scratch.target.hls_directives() {
                Some(d) => blocking_reload(&view.window, d.msn, d.part),
                None => Reload::BadRequest,
            };
            match reload {
                Reload::Now => {
                    write_ll_media(
                        &mut scratch.body,
                        view.window.playlist(),
                        view.window.open_parts(),
                        PART_TARGET_MS,
                        token,
                    );
                    Ok((PLAYLIST_TYPE, CachePolicy::NoCache, None))
                }
                Reload::BadRequest => Err(Status::BadRequest),
                Reload::Wait(until) if may_wait => {
                    let timeout = ll_wait(&view.window);
                    let wait = SegmentWait {
                        stream: stream.id,
                        until,
                        timeout,
                    };
                    return parked(shard, wait, close);
                }
                // Waited three target durations and the stream did not get there.
                Reload::Wait(_) => Err(not_ready),
            }
        }
        Resource::LlInit => match &view.init_mp4 {
            Some(init) => Ok((MP4_TYPE, CachePolicy::NoCache, Some(init.clone()))),
            None => Err(not_ready),
        },
        Resource::Ll(LlName::Segment { sequence }) => view
            .window
            .find_by_sequence(sequence)
            .and_then(|s| s.fmp4.clone())
            .map(|b| (M4S_TYPE, CachePolicy::Immutable, Some(b)))
            .ok_or(Status::NotFound),
        Resource::Ll(LlName::Part { sequence, part }) => match view.window.part(sequence, part) {
            PartLookup::Found(p) => Ok((M4S_TYPE, CachePolicy::Immutable, Some(p.fmp4.clone()))),
            PartLookup::NotYet if may_wait => {
                // A part named by a preload hint, or asked for early: wait for it.
                let wait = SegmentWait {
                    stream: stream.id,
                    until: Awaited::Part {
                        segment: sequence,
                        part,
                    },
                    timeout: ll_wait(&view.window),
                };
                return parked(shard, wait, close);
            }
            PartLookup::NotYet | PartLookup::Missing => Err(Status::NotFound),
        },
        Resource::MpegTs => match view.ring.start() {
            Some(_) => Ok((TS_TYPE, CachePolicy::NoCache, None)),
            None => Err(not_ready),
        },
        Resource::Fmp4Init => match &view.init_mp4 {
            Some(init) => Ok((MP4_TYPE, CachePolicy::NoCache, Some(init.clone()))),
            None => Err(not_ready),
        },
        Resource::HlsSegment {
            start_second,
            duration_ms,
            container,
        } => {
            let found = view.window.find(start_second, duration_ms);
            let body = match container {
                Container::Ts => found.map(|s| (TS_TYPE, s.ts.clone())),
                Container::Fmp4 => found.and_then(|s| s.fmp4.clone()).map(|b| (M4S_TYPE, b)),
            };
            body.map(|(kind, bytes)| (kind, CachePolicy::Immutable, Some(bytes)))
                .ok_or(Status::NotFound)
        }
    };
    let (content_type, cache, shared_body) = match served {
        Ok(parts) => parts,
        Err(status) => {
            let text = match status {
                Status::NotFound => "segment not found\n",
                Status::BadRequest => "bad request: _HLS_msn/_HLS_part out of range\n",
                _ => "stream not ready\n",
            };
            return error(shard, out, now, status, text, close, send_body);
        }
    };

    // Phase: account.
    let length = shared_body.as_ref().map_or(scratch.body.len(), Bytes::len);
    let sent = if send_body { length as u64 } else { 0 };
    // A live MPEG-TS viewer's session lives with its connection (`runtime::live_ts`).
    let session = match resource {
        Resource::MpegTs => None,
        _ => shard
            .auth
            .track_session(&catalog, &play, &grant, now.instant, sent),
    };
    shard.http.bytes_sent += sent;
    let live = (resource == Resource::MpegTs).then_some(LiveTs { stream: stream.id });
    let mut h = Head::new(Status::Ok, content_type, length);
    h.cache = cache;
    h.close = close || live.is_some();
    h.streaming = live.is_some();
    h.session_id = session.as_ref().map(|id| id.as_str());
    emit(shard, out, h, now);
    let close = close || live.is_some();
    if !send_body {
        return Reply {
            status: Status::Ok,
            body: None,
            close,
            live: None,
            wait_for_segment: None,
            defer: None,
        };
    }
    if shared_body.is_none() && live.is_none() {
        out.extend_from_slice(&scratch.body);
    }
    Reply {
        status: Status::Ok,
        body: shared_body,
        close,
        live,
        wait_for_segment: None,
        defer: None,
    }
}

/// An operator API request: refused here (401/400/404/405), or handed to the connection
/// to run across the shards.
fn api_request(
    shard: &mut ShardState,
    head: &RequestHead<'_>,
    now: Now,
    out: &mut Vec<u8>,
    close: bool,
    send_body: bool,
) -> Reply {
    let key = shard.catalog.api_key.clone();
    match crate::http::api::parse_call(head.method, head.target, head.authorization, key.as_deref())
    {
        Ok(call) => Reply {
            status: Status::Ok,
            body: None,
            close,
            live: None,
            wait_for_segment: None,
            defer: Some(Deferred::Api { call, send_body }),
        },
        Err(e) => {
            let mut h = Head::new(e.status, TEXT_TYPE, e.message.len());
            h.close = close;
            h.bearer_challenge = e.status == Status::Unauthorized;
            if e.status == Status::MethodNotAllowed {
                h.allow = Some("GET, POST, DELETE");
            }
            emit(shard, out, h, now);
            if send_body {
                out.extend_from_slice(e.message.as_bytes());
            }
            Reply {
                status: e.status,
                body: None,
                close,
                live: None,
                wait_for_segment: None,
                defer: None,
            }
        }
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
    let now = Now::read();
    let mut h = Head::new(status, content_type, body.len());
    h.close = close;
    emit(shard, out, h, now);
    if send_body {
        out.extend_from_slice(body.as_bytes());
    }
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

/// `/_player/NAME`: a player script, or a 404 that says why.
fn player_script(
    shard: &mut ShardState,
    out: &mut Vec<u8>,
    now: Now,
    asset: Asset,
    close: bool,
    send_body: bool,
) -> Reply {
    let body = match asset {
        Asset::Script { content_type, body } => {
            let mut h = Head::new(Status::Ok, content_type, body.len());
            h.cache = CachePolicy::Immutable;
            h.extra = SCRIPT_HEADERS;
            h.close = close;
            emit(shard, out, h, now);
            body
        }
        Asset::NotInstalled => {
            let text = "player script not installed on this server: run tools/player/install.sh \
                        and point player_assets (or TESSERA_PLAYER_ASSETS) at \
                        tools/player/node_modules\n";
            return error(shard, out, now, Status::NotFound, text, close, send_body);
        }
        Asset::Unknown => {
            return error(
                shard,
                out,
                now,
                Status::NotFound,
                "not found\n",
                close,
                send_body,
            );
        }
    };
    Reply {
        status: Status::Ok,
        body: send_body.then_some(body),
        close,
        live: None,
        wait_for_segment: None,
        defer: None,
    }
}

/// Writes a response head with the shard's id and cached date.
fn emit(shard: &mut ShardState, out: &mut Vec<u8>, mut head: Head<'_>, now: Now) {
    head.shard = shard.id;
    let date = *shard.date(now);
    write_head(out, &head, &date, now.instant);
}

/// BANDWIDTH before the first segment exists to measure.
const DEFAULT_BANDWIDTH: u64 = 2_000_000;

fn finish(
    shard: &mut ShardState,
    out: &mut Vec<u8>,
    now: Now,
    mut head: Head<'_>,
    scratch: &ConnScratch,
    close: bool,
    send_body: bool,
) -> Reply {
    head.close = close;
    let status = head.status;
    emit(shard, out, head, now);
    if send_body {
        out.extend_from_slice(&scratch.body);
    }
    Reply {
        status,
        body: None,
        close,
        live: None,
        wait_for_segment: None,
        defer: None,
    }
}

/// A short text error response.
fn error(
    shard: &mut ShardState,
    out: &mut Vec<u8>,
    now: Now,
    status: Status,
    text: &'static str,
    close: bool,
    send_body: bool,
) -> Reply {
    let mut h = Head::new(status, TEXT_TYPE, text.len());
    h.close = close;
    if status == Status::MethodNotAllowed {
        h.allow = Some(ALLOWED_METHODS);
    }
    emit(shard, out, h, now);
    if send_body {
        out.extend_from_slice(text.as_bytes());
    }
    Reply {
        status,
        body: None,
        close,
        live: None,
        wait_for_segment: None,
        defer: None,
    }
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
    error(shard, out, now, status, text, true, true);
}
