//! The operator API on the HTTP port (spec §7.3, §7.4), sans-IO: which call a request is
//! (`parse_call`, Bearer key checked in constant time), and how answers are written
//! (`write_sessions`, `write_metrics`). The connection runs the call across the shards
//! (`runtime::auth_bus`); nothing here touches a socket or another shard.
//!
//! - `GET /streamer/api/v3/sessions[?name=&proto=&user_id=&token=]` (token: the `#tag` or
//!   its 8 hex digits, as logs and listings show it), `GET|DELETE .../sessions/{id}`,
//!   `POST .../sessions/reauth?name=STREAM`
//! - `POST /streamer/api/v3/revoke?token=T | user_id=U | session_id=ID | name=STREAM`
//! - `POST /streamer/api/v3/config/reload`: read the config again and apply it (as SIGHUP);
//!   `200 {"reloaded":"WHAT CHANGED"}`, or `400 {"error":"WHY"}` with the running config
//!   kept (file:line:col errors included)
//! - `GET /streamer/api/v3/streams`: the streams with their inputs' state (`input_stats`)
//! - `GET /metrics`: Prometheus text format.
//!
//! Every call needs `Authorization: Bearer KEY` matching `api_key`; without `api_key` in the
//! config the API refuses everyone (401), since an open revoke endpoint would be a way to
//! cut every viewer.

use crate::auth::LATENCY_BUCKETS_MS;
use crate::auth::revoke::RevokeTarget;
use crate::auth::session::{SessionId, TokenTag};
use crate::auth::verdict::{DENY_REASONS, DenyReason, Proto};
use crate::constant_time::constant_time_eq;
use crate::http::input_stats::{
    InputMetric, write_input_reconnects, write_input_source, write_input_state,
};
use crate::http::request::Method;
use crate::http::status::Status;
use crate::http::target::percent_decode_into;
use crate::webrtc::WebRtcStats;
use serde::{Serialize, Serializer};
use std::fmt::Write as _;
use std::net::IpAddr;

pub use crate::config::API_PREFIX;
pub const METRICS_PATH: &str = "/metrics";

/// One API call, parsed and authorized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiCall {
    ListSessions(SessionFilter),
    GetSession(Box<str>),
    DeleteSession(SessionId),
    Reauth { stream: Box<str> },
    Revoke(RevokeTarget),
    ReloadConfig,
    Metrics,
    ListStreams,
}

/// `GET .../sessions` filters; all that are set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub name: Option<Box<str>>,
    pub proto: Option<Proto>,
    pub user_id: Option<Box<str>>,
    pub token_tag: Option<u32>,
    /// `scope=cluster`: every node of the fleet, not only this one.
    pub cluster: bool,
}

impl SessionFilter {
    pub fn matches(&self, s: &SessionInfo) -> bool {
        self.name.as_deref().is_none_or(|n| n == &*s.stream)
            && self.proto.is_none_or(|p| p == s.proto)
            && self
                .user_id
                .as_deref()
                .is_none_or(|u| s.user.as_deref() == Some(u))
            && self.token_tag.is_none_or(|t| t == s.token_tag.0)
    }

    /// The same test for a session another node listed (its JSON object).
    pub fn matches_json(&self, s: &serde_json::Value) -> bool {
        let field = |k: &str| s.get(k).and_then(|v| v.as_str());
        self.name
            .as_deref()
            .is_none_or(|n| field("name") == Some(n))
            && self
                .proto
                .is_none_or(|p| field("proto") == Some(p.as_str()))
            && self
                .user_id
                .as_deref()
                .is_none_or(|u| field("user_id") == Some(u))
            && self
                .token_tag
                .is_none_or(|t| field("token") == Some(&TokenTag(t).to_string()))
    }
}

/// A session as the API lists it (gathered from every shard that serves it). Its JSON
/// form is the API's: the keys in this order, `token` the tag (never the token),
/// `user_id` null when the portal named no user, times in Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    #[serde(serialize_with = "as_text")]
    pub id: SessionId,
    #[serde(rename = "name")]
    pub stream: Box<str>,
    #[serde(serialize_with = "proto_name")]
    pub proto: Proto,
    #[serde(serialize_with = "as_text")]
    pub ip: IpAddr,
    #[serde(rename = "token", serialize_with = "as_text")]
    pub token_tag: TokenTag,
    #[serde(rename = "user_id")]
    pub user: Option<Box<str>>,
    #[serde(rename = "opened_at")]
    pub opened_unix_ms: i64,
    #[serde(rename = "last_seen_at")]
    pub last_seen_unix_ms: i64,
    pub requests: u64,
    #[serde(rename = "bytes")]
    pub bytes_sent: u64,
    /// A bit per shard serving it; listed as the shard numbers.
    #[serde(serialize_with = "shard_numbers")]
    pub shards: u64,
    /// The fleet node holding it (listed only in a fleet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<Box<str>>,
}

/// A JSON string of the value's `Display` form.
fn as_text<S: Serializer>(value: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn proto_name<S: Serializer>(proto: &Proto, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(proto.as_str())
}

/// The numbers of the set bits, ascending: `[0,1]` for `0b11`.
fn shard_numbers<S: Serializer>(shards: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq((0..64u32).filter(|i| shards & (1u64 << i) != 0))
}

/// Why a request is not a call the API will run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: Status,
    pub message: &'static str,
}

fn err(status: Status, message: &'static str) -> ApiError {
    ApiError { status, message }
}

/// Whether `path` belongs to the API (it is then never routed as a stream).
pub fn is_api_path(path: &[u8]) -> bool {
    path.starts_with(API_PREFIX.as_bytes())
        || path == METRICS_PATH.as_bytes()
        || path.starts_with(b"/metrics?")
}

/// Parses an API request. `raw_target` as sent; `api_key` from the config.
pub fn parse_call(
    method: Method,
    raw_target: &[u8],
    authorization: Option<&[u8]>,
    api_key: Option<&str>,
) -> Result<ApiCall, ApiError> {
    let Some(key) = api_key else {
        return Err(err(
            Status::Unauthorized,
            "the API is disabled: set `api_key KEY;` in the config\n",
        ));
    };
    let presented = authorization
        .and_then(|v| {
            v.strip_prefix(b"Bearer ")
                .or_else(|| v.strip_prefix(b"bearer "))
        })
        .map(<[u8]>::trim_ascii);
    if !presented.is_some_and(|p| constant_time_eq(p, key.as_bytes())) {
        return Err(err(Status::Unauthorized, "missing or wrong Bearer key\n"));
    }
    let (path, query) = match memchr::memchr(b'?', raw_target) {
        Some(i) => (&raw_target[..i], &raw_target[i + 1..]),
        None => (raw_target, &[][..]),
    };
    let params = Params::parse(query)?;
    if path == METRICS_PATH.as_bytes() {
        return match method {
            Method::Get | Method::Head => Ok(ApiCall::Metrics),
            _ => Err(err(Status::MethodNotAllowed, "use GET\n")),
        };
    }
    let rest = path
        .strip_prefix(API_PREFIX.as_bytes())
        .ok_or(err(Status::NotFound, "no such API call\n"))?;
    match (method, rest) {
        (Method::Get | Method::Head, b"sessions") => {
            Ok(ApiCall::ListSessions(session_filter(&params)?))
        }
        (Method::Post, b"sessions/reauth") => Ok(ApiCall::Reauth {
            stream: params
                .text("name")?
                .ok_or(err(Status::BadRequest, "reauth needs ?name=STREAM\n"))?,
        }),
        (Method::Post, b"revoke") => Ok(ApiCall::Revoke(revoke_target(&params)?)),
        (Method::Post, b"config/reload") => Ok(ApiCall::ReloadConfig),
        (Method::Get | Method::Head, b"streams") => Ok(ApiCall::ListStreams),
        (_, b"sessions" | b"sessions/reauth" | b"revoke" | b"config/reload" | b"streams") => {
            Err(err(Status::MethodNotAllowed, "method not allowed here\n"))
        }
        (method, rest) => session_call(method, rest),
    }
}

/// The filters of `GET .../sessions`.
fn session_filter(params: &Params<'_>) -> Result<SessionFilter, ApiError> {
    Ok(SessionFilter {
        name: params.text("name")?,
        proto: match params.text("proto")? {
            None => None,
            Some(p) => Some(Proto::parse(&p).ok_or(err(Status::BadRequest, "unknown proto\n"))?),
        },
        user_id: params.text("user_id")?,
        cluster: match params.text("scope")?.as_deref() {
            None | Some("node") => false,
            Some("cluster") => true,
            Some(_) => return Err(err(Status::BadRequest, "scope is node or cluster\n")),
        },
        token_tag: match params.text("token")? {
            None => None,
            Some(t) => Some(
                u32::from_str_radix(t.trim_start_matches('#'), 16)
                    .ok()
                    .filter(|_| t.trim_start_matches('#').len() == 8)
                    .ok_or(err(
                        Status::BadRequest,
                        "token filter is a tag: # and 8 hex digits, as listed\n",
                    ))?,
            ),
        },
    })
}

/// What `POST .../revoke` revokes: exactly one of its parameters.
fn revoke_target(params: &Params<'_>) -> Result<RevokeTarget, ApiError> {
    let targets = [
        params.bytes("token")?.map(RevokeTarget::Token),
        params.text("user_id")?.map(RevokeTarget::User),
        match params.text("session_id")? {
            None => None,
            Some(id) => Some(RevokeTarget::Session(
                SessionId::parse(&id).ok_or(err(Status::BadRequest, "bad session_id\n"))?,
            )),
        },
        params.text("name")?.map(RevokeTarget::Stream),
    ];
    let mut given = targets.into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(t), None) => Ok(t),
        _ => Err(err(
            Status::BadRequest,
            "revoke takes exactly one of token, user_id, session_id, name\n",
        )),
    }
}

/// `GET|HEAD|DELETE .../sessions/{id}`; `rest` is the path after the API prefix.
fn session_call(method: Method, rest: &[u8]) -> Result<ApiCall, ApiError> {
    let id = rest
        .strip_prefix(b"sessions/")
        .ok_or(err(Status::NotFound, "no such API call\n"))?;
    let id = std::str::from_utf8(id).map_err(|_| err(Status::NotFound, "no such session\n"))?;
    match method {
        Method::Get | Method::Head => Ok(ApiCall::GetSession(id.into())),
        Method::Delete => Ok(ApiCall::DeleteSession(
            SessionId::parse(id).ok_or(err(Status::NotFound, "no such session\n"))?,
        )),
        _ => Err(err(Status::MethodNotAllowed, "use GET or DELETE\n")),
    }
}

/// Query parameters, each key at most once (a repeated key is ambiguous: 400).
struct Params<'a> {
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

const MAX_PARAMS: usize = 16;

impl<'a> Params<'a> {
    fn parse(query: &'a [u8]) -> Result<Self, ApiError> {
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
        for part in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match memchr::memchr(b'=', part) {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &[][..]),
            };
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(err(Status::BadRequest, "a query parameter is repeated\n"));
            }
            if pairs.len() == MAX_PARAMS {
                return Err(err(Status::BadRequest, "too many query parameters\n"));
            }
            pairs.push((k, v));
        }
        Ok(Params { pairs })
    }

    fn bytes(&self, key: &str) -> Result<Option<Box<[u8]>>, ApiError> {
        let Some((_, raw)) = self.pairs.iter().find(|(k, _)| *k == key.as_bytes()) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(raw.len());
        percent_decode_into(raw, &mut out)
            .map_err(|_| err(Status::BadRequest, "bad percent-encoding\n"))?;
        if out.is_empty() {
            return Err(err(Status::BadRequest, "an empty query parameter\n"));
        }
        Ok(Some(out.into()))
    }

    fn text(&self, key: &str) -> Result<Option<Box<str>>, ApiError> {
        match self.bytes(key)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b.into_vec())
                .map(|s| Some(s.into_boxed_str()))
                .map_err(|_| err(Status::BadRequest, "a query parameter is not UTF-8\n")),
        }
    }
}

/// The answer of `GET .../sessions`.
#[derive(Serialize)]
struct SessionList<'a> {
    sessions: &'a [SessionInfo],
}

/// `value` as one line of compact JSON.
fn json_line(value: &impl Serialize) -> String {
    // Cannot fail: the answers hold no maps (no non-string keys), and their serializers
    // (`Display` of ids, addresses and tags) never return an error.
    let mut out = serde_json::to_string(value).expect("API answers always serialize");
    out.push('\n');
    out
}

/// `{"sessions":[...]}`, sessions ordered by opening time.
pub fn write_sessions(sessions: &[SessionInfo]) -> String {
    json_line(&SessionList { sessions })
}

/// `{"sessions":[...]}` of the whole fleet: this node's, then each other node's that
/// `filter` keeps (as they stored them, each naming its node).
pub fn write_fleet_sessions(
    local: &[SessionInfo],
    others: &[(String, String)],
    filter: &SessionFilter,
) -> String {
    let mut all: Vec<serde_json::Value> = local
        .iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect();
    for (_, list) in others {
        let Ok(serde_json::Value::Object(mut list)) = serde_json::from_str(list) else {
            continue;
        };
        if let Some(serde_json::Value::Array(sessions)) = list.remove("sessions") {
            all.extend(sessions.into_iter().filter(|s| filter.matches_json(s)));
        }
    }
    json_line(&serde_json::json!({ "sessions": all }))
}

/// Session `id` among the other nodes' listings, as one line of JSON.
pub fn find_fleet_session(others: &[(String, String)], id: &str) -> Option<String> {
    others.iter().find_map(|(_, list)| {
        let list: serde_json::Value = serde_json::from_str(list).ok()?;
        let sessions = list.get("sessions")?.as_array()?;
        let found = sessions
            .iter()
            .find(|s| s.get("id").and_then(|v| v.as_str()) == Some(id))?;
        Some(json_line(found))
    })
}

pub fn write_one_session(s: &SessionInfo) -> String {
    json_line(s)
}

/// Merges one session's views from several shards (same id): counts add up, the earliest
/// opening and the latest request win.
pub fn merge_sessions(mut all: Vec<SessionInfo>) -> Vec<SessionInfo> {
    all.sort_by(|a, b| (a.opened_unix_ms, a.id.as_str()).cmp(&(b.opened_unix_ms, b.id.as_str())));
    let mut out: Vec<SessionInfo> = Vec::with_capacity(all.len());
    // Linear in the sessions: a shard may list 100,000.
    let mut at: ahash::AHashMap<SessionId, usize> = ahash::AHashMap::with_capacity(all.len());
    for s in all {
        match at.get(&s.id).map(|&i| &mut out[i]) {
            Some(o) => {
                o.requests += s.requests;
                o.bytes_sent += s.bytes_sent;
                o.shards |= s.shards;
                o.opened_unix_ms = o.opened_unix_ms.min(s.opened_unix_ms);
                o.last_seen_unix_ms = o.last_seen_unix_ms.max(s.last_seen_unix_ms);
            }
            None => {
                at.insert(s.id, out.len());
                out.push(s);
            }
        }
    }
    out
}

/// One shard's counters, summed over shards for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub shards: u64,
    pub http_requests: u64,
    pub http_bytes_sent: u64,
    pub http_connections_open: u64,
    /// Connections refused by a cap, and connections that gave their place in a full cap
    /// to a newer one (every TCP protocol).
    pub connections_refused: u64,
    pub connections_evicted: u64,
    pub tls_handshakes: u64,
    pub tls_failed: u64,
    pub tls_timed_out: u64,
    pub allowed: u64,
    pub denied_by: [u64; DENY_REASONS],
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_entries: u64,
    pub sessions_by_proto: [u64; 9],
    pub sessions_opened: u64,
    pub sessions_closed: u64,
    pub sessions_revoked: u64,
    pub stale_served: u64,
    pub portal_requests: u64,
    pub portal_allowed: u64,
    pub portal_denied: u64,
    pub portal_unreachable: u64,
    /// Cumulative counts per `LATENCY_BUCKETS_MS` bucket, then `+Inf`.
    pub portal_latency_buckets: [u64; 13],
    pub portal_latency_sum_us: u64,
    pub lookups_pending: u64,
    pub revocations: u64,
    /// The pulled inputs (each on its owner shard only).
    pub inputs: Vec<InputMetric>,
    /// WebRTC peers and their counters (`webrtc::WebRtcStats`).
    pub webrtc: WebRtcStats,
}

impl MetricsSnapshot {
    pub fn add(&mut self, o: &MetricsSnapshot) {
        self.shards += o.shards;
        self.http_requests += o.http_requests;
        self.http_bytes_sent += o.http_bytes_sent;
        self.http_connections_open += o.http_connections_open;
        self.connections_refused += o.connections_refused;
        self.connections_evicted += o.connections_evicted;
        self.tls_handshakes += o.tls_handshakes;
        self.tls_failed += o.tls_failed;
        self.tls_timed_out += o.tls_timed_out;
        self.allowed += o.allowed;
        for (a, b) in self.denied_by.iter_mut().zip(o.denied_by) {
            *a += b;
        }
        self.cache_hits += o.cache_hits;
        self.cache_misses += o.cache_misses;
        self.cache_entries += o.cache_entries;
        for (a, b) in self.sessions_by_proto.iter_mut().zip(o.sessions_by_proto) {
            *a += b;
        }
        self.sessions_opened += o.sessions_opened;
        self.sessions_closed += o.sessions_closed;
        self.sessions_revoked += o.sessions_revoked;
        self.stale_served += o.stale_served;
        self.portal_requests += o.portal_requests;
        self.portal_allowed += o.portal_allowed;
        self.portal_denied += o.portal_denied;
        self.portal_unreachable += o.portal_unreachable;
        for (a, b) in self
            .portal_latency_buckets
            .iter_mut()
            .zip(o.portal_latency_buckets)
        {
            *a += b;
        }
        self.portal_latency_sum_us += o.portal_latency_sum_us;
        self.lookups_pending += o.lookups_pending;
        self.revocations += o.revocations;
        self.inputs.extend(o.inputs.iter().cloned());
        let (w, ow) = (&mut self.webrtc, &o.webrtc);
        w.connecting += ow.connecting;
        w.connected += ow.connected;
        w.ice_failures += ow.ice_failures;
        w.dtls_failures += ow.dtls_failures;
        w.bytes_sent += ow.bytes_sent;
        w.rtt_reports += ow.rtt_reports;
        w.rtt_sum_us += ow.rtt_sum_us;
    }
}

/// Prometheus text exposition format 0.0.4: every family of `METRIC_FAMILIES`, in order.
pub fn write_metrics(m: &MetricsSnapshot) -> String {
    let mut o = String::with_capacity(4096);
    for f in METRIC_FAMILIES {
        let _ = write!(
            o,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n",
            name = f.name,
            help = f.help,
            kind = f.kind.as_str()
        );
        match f.samples {
            Samples::Value(value) => {
                let _ = writeln!(o, "{} {}", f.name, value(m));
            }
            Samples::Lines(write) => write(&mut o, f.name, m),
        }
    }
    o
}

/// One metric family of `/metrics`: its name, type, help text and samples.
struct MetricFamily {
    name: &'static str,
    kind: MetricKind,
    help: &'static str,
    samples: Samples,
}

#[derive(Clone, Copy)]
enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
        }
    }
}

/// How a family's sample lines are written.
#[derive(Clone, Copy)]
enum Samples {
    /// One unlabelled sample: `NAME VALUE`.
    Value(fn(&MetricsSnapshot) -> u64),
    /// Labelled samples, a histogram, or a value that is not an integer: written by the
    /// function, given the family's name.
    Lines(fn(&mut String, &str, &MetricsSnapshot)),
}

fn write_tls_handshakes(out: &mut String, name: &str, m: &MetricsSnapshot) {
    for (outcome, n) in [
        ("done", m.tls_handshakes),
        ("failed", m.tls_failed),
        ("timed_out", m.tls_timed_out),
    ] {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {n}");
    }
}

fn write_webrtc_peers(out: &mut String, name: &str, m: &MetricsSnapshot) {
    for (state, n) in [
        ("connecting", m.webrtc.connecting),
        ("connected", m.webrtc.connected),
    ] {
        let _ = writeln!(out, "{name}{{state=\"{state}\"}} {n}");
    }
}

fn write_webrtc_failures(out: &mut String, name: &str, m: &MetricsSnapshot) {
    for (stage, n) in [
        ("ice", m.webrtc.ice_failures),
        ("dtls", m.webrtc.dtls_failures),
    ] {
        let _ = writeln!(out, "{name}{{stage=\"{stage}\"}} {n}");
    }
}

/// A summary without quantiles: the sum and the count, which add up across shards.
fn write_webrtc_rtt(out: &mut String, name: &str, m: &MetricsSnapshot) {
    let sum = m.webrtc.rtt_sum_us as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {}", m.webrtc.rtt_reports);
}

/// Every family of `/metrics`, in the order they are written.
const METRIC_FAMILIES: &[MetricFamily] = &[
    MetricFamily {
        name: "tessera_http_requests_total",
        kind: MetricKind::Counter,
        help: "HTTP requests answered.",
        samples: Samples::Value(|m| m.http_requests),
    },
    MetricFamily {
        name: "tessera_http_sent_bytes_total",
        kind: MetricKind::Counter,
        help: "HTTP response bytes sent.",
        samples: Samples::Value(|m| m.http_bytes_sent),
    },
    MetricFamily {
        name: "tessera_decisions_total",
        kind: MetricKind::Counter,
        help: "Play requests decided, by result and deny reason.",
        samples: Samples::Lines(write_decisions),
    },
    MetricFamily {
        name: "tessera_decision_cache_hits_total",
        kind: MetricKind::Counter,
        help: "Decisions served from the cache.",
        samples: Samples::Value(|m| m.cache_hits),
    },
    MetricFamily {
        name: "tessera_decision_cache_misses_total",
        kind: MetricKind::Counter,
        help: "Decisions not in the cache.",
        samples: Samples::Value(|m| m.cache_misses),
    },
    MetricFamily {
        name: "tessera_decision_cache_hit_ratio",
        kind: MetricKind::Gauge,
        help: "Hits over lookups since start.",
        samples: Samples::Lines(write_cache_hit_ratio),
    },
    MetricFamily {
        name: "tessera_decision_cache_entries",
        kind: MetricKind::Gauge,
        help: "Decisions cached (all shards).",
        samples: Samples::Value(|m| m.cache_entries),
    },
    MetricFamily {
        name: "tessera_stale_allows_served_total",
        kind: MetricKind::Counter,
        help: "Requests served from a portal allow past its duration while it was re-asked or unreachable.",
        samples: Samples::Value(|m| m.stale_served),
    },
    MetricFamily {
        name: "tessera_backend_requests_total",
        kind: MetricKind::Counter,
        help: "Portal backend questions, by outcome.",
        samples: Samples::Lines(write_backend_outcomes),
    },
    MetricFamily {
        name: "tessera_backend_request_duration_seconds",
        kind: MetricKind::Histogram,
        help: "Portal question latency (all backends of one question).",
        samples: Samples::Lines(write_backend_latency),
    },
    MetricFamily {
        name: "tessera_sessions_open",
        kind: MetricKind::Gauge,
        help: "Play sessions open, by protocol (a session served by two shards counts twice).",
        samples: Samples::Lines(write_sessions_by_proto),
    },
    MetricFamily {
        name: "tessera_sessions_opened_total",
        kind: MetricKind::Counter,
        help: "Play sessions opened.",
        samples: Samples::Value(|m| m.sessions_opened),
    },
    MetricFamily {
        name: "tessera_sessions_closed_total",
        kind: MetricKind::Counter,
        help: "Play sessions closed.",
        samples: Samples::Value(|m| m.sessions_closed),
    },
    MetricFamily {
        name: "tessera_sessions_revoked_total",
        kind: MetricKind::Counter,
        help: "Play sessions cut by revocation or a session limit.",
        samples: Samples::Value(|m| m.sessions_revoked),
    },
    MetricFamily {
        name: "tessera_http_connections_open",
        kind: MetricKind::Gauge,
        help: "HTTP connections open.",
        samples: Samples::Value(|m| m.http_connections_open),
    },
    MetricFamily {
        name: "tessera_connections_refused_total",
        kind: MetricKind::Counter,
        help: "TCP connections refused by a connection cap (per protocol and shard, or per IP).",
        samples: Samples::Value(|m| m.connections_refused),
    },
    MetricFamily {
        name: "tessera_connections_evicted_total",
        kind: MetricKind::Counter,
        help: "TCP connections closed before their first request to make room in a full cap.",
        samples: Samples::Value(|m| m.connections_evicted),
    },
    MetricFamily {
        name: "tessera_tls_handshakes_total",
        kind: MetricKind::Counter,
        help: "TLS handshakes on the https, rtmps and rtsps listeners, by outcome.",
        samples: Samples::Lines(write_tls_handshakes),
    },
    MetricFamily {
        name: "tessera_backend_lookups_pending",
        kind: MetricKind::Gauge,
        help: "Portal questions waiting for an answer.",
        samples: Samples::Value(|m| m.lookups_pending),
    },
    MetricFamily {
        name: "tessera_revocations",
        kind: MetricKind::Gauge,
        help: "Revoked tokens, users and sessions remembered.",
        samples: Samples::Value(|m| m.revocations),
    },
    MetricFamily {
        name: "tessera_input_state",
        kind: MetricKind::Gauge,
        help: "Pulled inputs by state (1 for the current one): connecting, running, failed, stopped.",
        samples: Samples::Lines(|o, name, m| write_input_state(o, name, &m.inputs)),
    },
    MetricFamily {
        name: "tessera_input_source_index",
        kind: MetricKind::Gauge,
        help: "The input line a pull uses: 0 the first, 1 the first backup.",
        samples: Samples::Lines(|o, name, m| write_input_source(o, name, &m.inputs)),
    },
    MetricFamily {
        name: "tessera_input_reconnects_total",
        kind: MetricKind::Counter,
        help: "Connections a pull made after its first (reconnects and failovers).",
        samples: Samples::Lines(|o, name, m| write_input_reconnects(o, name, &m.inputs)),
    },
    MetricFamily {
        name: "tessera_webrtc_peers",
        kind: MetricKind::Gauge,
        help: "WebRTC peer connections, by state: connecting (answered, ICE or DTLS not up) and connected.",
        samples: Samples::Lines(write_webrtc_peers),
    },
    MetricFamily {
        name: "tessera_webrtc_failures_total",
        kind: MetricKind::Counter,
        help: "WebRTC sessions that ended (not by DELETE) before ICE was up (stage ice) or with ICE up and DTLS not (stage dtls).",
        samples: Samples::Lines(write_webrtc_failures),
    },
    MetricFamily {
        name: "tessera_webrtc_sent_bytes_total",
        kind: MetricKind::Counter,
        help: "UDP payload bytes sent to WebRTC peers (SRTP, SRTCP, DTLS, STUN).",
        samples: Samples::Value(|m| m.webrtc.bytes_sent),
    },
    MetricFamily {
        name: "tessera_webrtc_rtt_seconds",
        kind: MetricKind::Summary,
        help: "Round-trip times WebRTC peers' RTCP receiver reports gave (one a second per peer).",
        samples: Samples::Lines(write_webrtc_rtt),
    },
    MetricFamily {
        name: "tessera_shards",
        kind: MetricKind::Gauge,
        help: "Shards answering this scrape.",
        samples: Samples::Value(|m| m.shards),
    },
];

/// The allows (with an empty reason), then the denies of every reason.
fn write_decisions(o: &mut String, name: &str, m: &MetricsSnapshot) {
    let _ = writeln!(o, "{name}{{result=\"allow\",reason=\"\"}} {}", m.allowed);
    for r in DenyReason::ALL {
        let _ = writeln!(
            o,
            "{name}{{result=\"deny\",reason=\"{}\"}} {}",
            r.as_str(),
            m.denied_by[r as usize]
        );
    }
}

/// Hits over lookups, 0 before the first lookup.
fn write_cache_hit_ratio(o: &mut String, name: &str, m: &MetricsSnapshot) {
    let lookups = m.cache_hits + m.cache_misses;
    let ratio = if lookups == 0 {
        0.0
    } else {
        m.cache_hits as f64 / lookups as f64
    };
    let _ = writeln!(o, "{name} {ratio:.6}");
}

fn write_backend_outcomes(o: &mut String, name: &str, m: &MetricsSnapshot) {
    let outcomes = [
        ("allow", m.portal_allowed),
        ("deny", m.portal_denied),
        ("error", m.portal_unreachable),
    ];
    for (outcome, count) in outcomes {
        let _ = writeln!(o, "{name}{{outcome=\"{outcome}\"}} {count}");
    }
}

/// Cumulative buckets (`le` in seconds), `+Inf`, the sum in seconds and the count.
fn write_backend_latency(o: &mut String, name: &str, m: &MetricsSnapshot) {
    for (le, count) in LATENCY_BUCKETS_MS.iter().zip(m.portal_latency_buckets) {
        let _ = writeln!(o, "{name}_bucket{{le=\"{}\"}} {count}", *le as f64 / 1000.0);
    }
    let _ = write!(
        o,
        "{name}_bucket{{le=\"+Inf\"}} {}\n\
         {name}_sum {:.6}\n\
         {name}_count {}\n",
        m.portal_latency_buckets[LATENCY_BUCKETS_MS.len()],
        m.portal_latency_sum_us as f64 / 1e6,
        m.portal_requests
    );
}

fn write_sessions_by_proto(o: &mut String, name: &str, m: &MetricsSnapshot) {
    for p in Proto::ALL {
        let _ = writeln!(
            o,
            "{name}{{proto=\"{}\"}} {}",
            p.as_str(),
            m.sessions_by_proto[p as usize]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef";
    const BEARER: &[u8] = b"Bearer 0123456789abcdef";

    fn call(method: Method, target: &str) -> Result<ApiCall, ApiError> {
        parse_call(method, target.as_bytes(), Some(BEARER), Some(KEY))
    }

    #[test]
    fn the_key_is_required() {
        let t = b"/streamer/api/v3/sessions";
        assert_eq!(
            parse_call(Method::Get, t, None, Some(KEY))
                .unwrap_err()
                .status,
            Status::Unauthorized
        );
        assert_eq!(
            parse_call(Method::Get, t, Some(b"Bearer nope"), Some(KEY))
                .unwrap_err()
                .status,
            Status::Unauthorized
        );
        assert_eq!(
            parse_call(Method::Get, t, Some(BEARER), None)
                .unwrap_err()
                .status,
            Status::Unauthorized,
            "no api_key: no API"
        );
        assert!(parse_call(Method::Get, t, Some(BEARER), Some(KEY)).is_ok());
    }

    #[test]
    fn calls() {
        assert_eq!(
            call(
                Method::Get,
                "/streamer/api/v3/sessions?name=a%2Fb&proto=rtmp&token=%2300ff00ff"
            ),
            Ok(ApiCall::ListSessions(SessionFilter {
                name: Some("a/b".into()),
                proto: Some(Proto::Rtmp),
                user_id: None,
                token_tag: Some(0x00ff_00ff),
                cluster: false,
            }))
        );
        assert_eq!(
            call(Method::Post, "/streamer/api/v3/revoke?token=test%201"),
            Ok(ApiCall::Revoke(RevokeTarget::Token(
                b"test 1".as_slice().into()
            )))
        );
        assert_eq!(
            call(Method::Post, "/streamer/api/v3/revoke?token=a&user_id=b")
                .unwrap_err()
                .status,
            Status::BadRequest
        );
        assert_eq!(
            call(Method::Post, "/streamer/api/v3/revoke?token=a&token=b")
                .unwrap_err()
                .status,
            Status::BadRequest
        );
        assert_eq!(
            call(Method::Post, "/streamer/api/v3/sessions/reauth?name=s"),
            Ok(ApiCall::Reauth { stream: "s".into() })
        );
        assert_eq!(call(Method::Get, "/metrics"), Ok(ApiCall::Metrics));
        let id = SessionId::from_random([3; 16]);
        assert_eq!(
            call(Method::Delete, &format!("/streamer/api/v3/sessions/{id}")),
            Ok(ApiCall::DeleteSession(id))
        );
        assert_eq!(
            call(Method::Get, "/streamer/api/v3/sessions/xyz"),
            Ok(ApiCall::GetSession("xyz".into()))
        );
        assert_eq!(
            call(Method::Get, "/streamer/api/v3/revoke")
                .unwrap_err()
                .status,
            Status::MethodNotAllowed
        );
        assert_eq!(
            call(Method::Get, "/streamer/api/v3/nothing")
                .unwrap_err()
                .status,
            Status::NotFound
        );
    }

    #[test]
    fn sessions_merge_and_render() {
        let s = |shard: u64, bytes| SessionInfo {
            id: SessionId::from_random([1; 16]),
            stream: "a\"b".into(),
            proto: Proto::Hls,
            ip: "127.0.0.1".parse().unwrap(),
            token_tag: TokenTag(0xabcdef01),
            user: Some("alice".into()),
            opened_unix_ms: 1000 * shard as i64,
            last_seen_unix_ms: 5000,
            requests: 1,
            bytes_sent: bytes,
            shards: 1 << shard,
            node: None,
        };
        let merged = merge_sessions(vec![s(1, 10), s(0, 5)]);
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].bytes_sent, merged[0].shards), (15, 3));
        let json = write_sessions(&merged);
        assert!(json.contains("\"name\":\"a\\\"b\""), "{json}");
        assert!(json.contains("\"token\":\"#abcdef01\""), "{json}");
        assert!(json.contains("\"shards\":[0,1]"), "{json}");
    }

    #[test]
    fn the_fleet_listing_filters_the_other_nodes_sessions_alike() {
        let other = r##"{"sessions":[{"id":"x","name":"live","proto":"hls","token":"#00000001","user_id":"bob","node":"b"},
            {"id":"y","name":"live","proto":"rtmp","token":"#00000002","user_id":"eve","node":"b"}]}"##;
        let filter = SessionFilter {
            name: Some("live".into()),
            proto: Some(Proto::Hls),
            user_id: Some("bob".into()),
            token_tag: Some(1),
            cluster: true,
        };
        let json = write_fleet_sessions(
            &[],
            &[("b".into(), other.into()), ("c".into(), "junk".into())],
            &filter,
        );
        assert!(
            json.contains("\"id\":\"x\"") && !json.contains("\"id\":\"y\""),
            "{json}"
        );
        assert!(json.contains("\"node\":\"b\""), "{json}");
        let others = [("b".into(), other.into())];
        let one = find_fleet_session(&others, "y").expect("listed");
        assert!(one.contains("\"user_id\":\"eve\""), "{one}");
        assert_eq!(find_fleet_session(&others, "z"), None);
    }

    #[test]
    fn session_json_keys_and_values_are_the_api_format() {
        let s = SessionInfo {
            id: SessionId::from_random([2; 16]),
            stream: "live/a".into(),
            proto: Proto::Rtmp,
            ip: "::1".parse().unwrap(),
            token_tag: TokenTag(0x0000_00ff),
            user: None,
            opened_unix_ms: -1,
            last_seen_unix_ms: 1_700_000_000_123,
            requests: u64::MAX,
            bytes_sent: 0,
            shards: 1 << 63 | 1 << 2,
            node: None,
        };
        assert_eq!(
            write_one_session(&s),
            "{\"id\":\"02020202-0202-4202-8202-020202020202\",\"name\":\"live/a\",\
             \"proto\":\"rtmp\",\"ip\":\"::1\",\"token\":\"#000000ff\",\"user_id\":null,\
             \"opened_at\":-1,\"last_seen_at\":1700000000123,\
             \"requests\":18446744073709551615,\"bytes\":0,\"shards\":[2,63]}\n"
        );
        assert_eq!(write_sessions(&[]), "{\"sessions\":[]}\n");
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let mut m = MetricsSnapshot {
            shards: 1,
            allowed: 3,
            webrtc: WebRtcStats {
                connected: 1,
                ice_failures: 2,
                rtt_reports: 4,
                rtt_sum_us: 10_000,
                ..WebRtcStats::default()
            },
            ..MetricsSnapshot::default()
        };
        m.add(&m.clone());
        let text = write_metrics(&m);
        assert!(text.contains("tessera_decisions_total{result=\"allow\",reason=\"\"} 6\n"));
        assert!(text.contains("tessera_webrtc_peers{state=\"connected\"} 2\n"));
        assert!(text.contains("tessera_webrtc_failures_total{stage=\"ice\"} 4\n"));
        assert!(text.contains("# TYPE tessera_webrtc_rtt_seconds summary\n"));
        assert!(text.contains("tessera_webrtc_rtt_seconds_sum 0.02\n"));
        assert!(text.contains("tessera_webrtc_rtt_seconds_count 8\n"));
        assert!(text.contains(
            "tessera_decisions_total{result=\"deny\",reason=\"backend_unavailable\"} 0\n"
        ));
        assert!(text.contains("tessera_shards 2\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(!name.is_empty());
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
