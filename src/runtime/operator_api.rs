//! Runs an operator API call (`http::api::ApiCall`) across the shards through the
//! `AuthBus` and renders its answer. The parsing, the key check and the rendering are
//! `http::api`'s; this is only the asking around, and each shard's part of the answer
//! (`shard_sessions`, `shard_metrics`).

use crate::auth::fleet::FleetTarget;
use crate::auth::revoke::RevokeTarget;
use crate::auth::verdict::DenyReason;
use crate::catalog::{Catalog, StreamKind};
use crate::config::InputUrl;
use crate::http::api::{
    ApiCall, MetricsSnapshot, SessionFilter, SessionInfo, find_fleet_session, merge_sessions,
    write_fleet_sessions, write_metrics, write_one_session, write_sessions,
};
use crate::http::input_stats::{InputMetric, StreamEntry, write_streams};
use crate::http::status::Status;
use crate::runtime::auth_bus::{AuthBus, GatherCall, GatherPart};
use crate::runtime::cluster::{self, ToRedis};
use crate::shard::{Now, ShardState};
use std::rc::Rc;
use std::time::Instant;

const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The answer: status, content type, body.
pub struct ApiAnswer {
    pub status: Status,
    pub content_type: &'static str,
    pub body: String,
}

fn json(status: Status, body: String) -> ApiAnswer {
    ApiAnswer {
        status,
        content_type: JSON,
        body,
    }
}

async fn sessions(bus: &Rc<AuthBus>) -> Vec<SessionInfo> {
    let mut all = Vec::new();
    for part in bus.gather(GatherCall::Sessions).await {
        if let GatherPart::Sessions(list) = part {
            all.extend(list);
        }
    }
    merge_sessions(all)
}

async fn count(bus: &Rc<AuthBus>, call: GatherCall) -> (u64, usize) {
    let parts = bus.gather(call).await;
    let shards = parts.len();
    let n = parts
        .into_iter()
        .map(|p| match p {
            GatherPart::Count(n) => n,
            _ => 0,
        })
        .sum();
    (n, shards)
}

/// Revokes `target` on every shard (and, in a fleet, on every node: published, and
/// stored for the nodes that connect later); answers how many sessions closed here.
async fn revoke(bus: &Rc<AuthBus>, target: RevokeTarget, none_is_404: bool) -> ApiAnswer {
    let reason = DenyReason::SessionRevoked;
    let fleet = cluster::link();
    if let Some(link) = &fleet {
        link.send(ToRedis::Revoke(FleetTarget::of(&target, |t| {
            bus.token_hash(t)
        })));
    }
    let elsewhere = match (&target, &fleet) {
        (RevokeTarget::Session(id), Some(link)) if none_is_404 => {
            listed_elsewhere(link, id.as_str()).await
        }
        _ => false,
    };
    let (cut, shards) = count(bus, GatherCall::Revoke { target, reason }).await;
    let status = if cut == 0 && none_is_404 && !elsewhere {
        Status::NotFound
    } else {
        Status::Ok
    };
    json(
        status,
        format!("{{\"sessions_closed\":{cut},\"shards\":{shards}}}\n"),
    )
}

/// Whether another node of the fleet lists session `id`.
async fn listed_elsewhere(link: &cluster::FleetLink, id: &str) -> bool {
    link.list_others()
        .await
        .is_ok_and(|others| find_fleet_session(&others, id).is_some())
}

/// Session `id` as another node of the fleet lists it, if one does.
async fn fleet_session(id: &str) -> Option<String> {
    let others = cluster::link()?.list_others().await.ok()?;
    find_fleet_session(&others, id)
}

/// `GET .../sessions`: this node's, or the fleet's with `scope=cluster`.
async fn list_sessions(bus: &Rc<AuthBus>, filter: SessionFilter) -> ApiAnswer {
    let list: Vec<SessionInfo> = sessions(bus)
        .await
        .into_iter()
        .filter(|s| filter.matches(s))
        .collect();
    let fleet = cluster::link().filter(|_| filter.cluster);
    let Some(link) = fleet else {
        return json(Status::Ok, write_sessions(&list));
    };
    match link.list_others().await {
        Ok(others) => json(Status::Ok, write_fleet_sessions(&list, &others, &filter)),
        Err(why) => {
            log::warn!("sessions of the fleet: {why}; listing this node's only");
            json(Status::Ok, write_sessions(&list))
        }
    }
}

/// This node's sessions as JSON (what the other nodes of a fleet read).
pub async fn node_sessions(bus: &Rc<AuthBus>) -> String {
    write_sessions(&sessions(bus).await)
}

pub async fn run(bus: &Rc<AuthBus>, call: ApiCall, catalog: &Catalog) -> ApiAnswer {
    let stream_exists = |name: &str| catalog.stream_by_name(name).map(|s| s.id);
    match call {
        ApiCall::ListSessions(filter) => list_sessions(bus, filter).await,
        ApiCall::GetSession(id) => match sessions(bus).await.iter().find(|s| s.id.as_str() == &*id)
        {
            Some(s) => json(Status::Ok, write_one_session(s)),
            None => match fleet_session(&id).await {
                Some(s) => json(Status::Ok, s),
                None => json(Status::NotFound, "{\"error\":\"no such session\"}\n".into()),
            },
        },
        // Deleting a session is revoking it; 404 when no shard had it.
        ApiCall::DeleteSession(id) => revoke(bus, RevokeTarget::Session(id), true).await,
        ApiCall::Revoke(target) => revoke(bus, target, false).await,
        ApiCall::Reauth { stream } => match stream_exists(&stream) {
            None => json(Status::NotFound, "{\"error\":\"no such stream\"}\n".into()),
            Some(id) => {
                let (n, shards) = count(bus, GatherCall::Reauth { stream: id }).await;
                json(
                    Status::Ok,
                    format!("{{\"decisions_reasked\":{n},\"shards\":{shards}}}\n"),
                )
            }
        },
        ApiCall::ReloadConfig => match crate::runtime::control::request_reload().await {
            Ok(summary) => json(Status::Ok, json_field("reloaded", &summary)),
            Err(why) => json(Status::BadRequest, json_field("error", &why)),
        },
        ApiCall::Metrics => {
            let mut body = write_metrics(&metrics(bus).await);
            if let Some(link) = cluster::link() {
                let up = u8::from(link.redis_up());
                body.push_str(
                    "# HELP tessera_cluster_redis_up Whether the fleet's Redis is reachable.\n\
                     # TYPE tessera_cluster_redis_up gauge\n",
                );
                body.push_str(&format!("tessera_cluster_redis_up {up}\n"));
            }
            ApiAnswer {
                status: Status::Ok,
                content_type: PROMETHEUS,
                body,
            }
        }
        ApiCall::ListStreams => {
            let inputs = metrics(bus).await.inputs;
            json(Status::Ok, write_streams(&stream_entries(catalog, inputs)))
        }
    }
}

/// Every shard's counters, summed.
async fn metrics(bus: &Rc<AuthBus>) -> MetricsSnapshot {
    let mut total = MetricsSnapshot::default();
    for part in bus.gather(GatherCall::Metrics).await {
        if let GatherPart::Metrics(m) = part {
            total.add(&m);
        }
    }
    total
}

/// The catalog's streams (gates left out) with their pulls' status.
fn stream_entries(catalog: &Catalog, mut inputs: Vec<InputMetric>) -> Vec<StreamEntry> {
    catalog
        .streams
        .iter()
        .filter(|s| s.kind != StreamKind::Gate)
        .map(|s| {
            let status = inputs
                .iter()
                .position(|i| i.stream == s.name)
                .map(|at| inputs.swap_remove(at).status);
            let sources = match &s.input {
                InputUrl::Pull(primary) => std::iter::once(primary)
                    .chain(&s.pull.backups)
                    .map(ToString::to_string)
                    .collect(),
                _ => Vec::new(),
            };
            StreamEntry {
                name: s.name.clone(),
                on_demand: s.pull.on_demand,
                from_template: s.kind == StreamKind::Made,
                sources,
                status,
            }
        })
        .collect()
}

/// `{"NAME":"TEXT"}` and a newline.
fn json_field(name: &str, text: &str) -> String {
    let mut body = serde_json::json!({ name: text }).to_string();
    body.push('\n');
    body
}

/// This shard's sessions, as the API lists them (its part of a sessions call).
pub fn shard_sessions(shard: &ShardState, now: Now) -> Vec<SessionInfo> {
    let unix =
        |at: Instant| now.utc_ms - now.instant.saturating_duration_since(at).as_millis() as i64;
    shard
        .authorizer()
        .sessions()
        .iter()
        .map(|s| SessionInfo {
            id: s.id,
            stream: shard
                .catalog()
                .stream(s.stream)
                .map_or_else(|| "?".into(), |st| st.name.clone()),
            proto: s.proto,
            ip: s.ip,
            token_tag: s.token_tag,
            user: s.user.as_deref().map(Into::into),
            opened_unix_ms: unix(s.opened),
            last_seen_unix_ms: unix(s.last_seen),
            requests: s.requests,
            bytes_sent: s.bytes_sent,
            shards: 1u64 << (shard.id() % 64),
            node: cluster::link().map(|l| l.node.clone()),
        })
        .collect()
}

/// This shard's counters for `/metrics` (its part of a metrics call).
pub fn shard_metrics(shard: &ShardState) -> MetricsSnapshot {
    let auth = shard.authorizer();
    let http = shard.http_stats();
    let a = &auth.stats;
    let mut sessions_by_proto = [0u64; 9];
    for s in auth.sessions().iter() {
        sessions_by_proto[s.proto as usize] += 1;
    }
    MetricsSnapshot {
        shards: 1,
        http_requests: http.requests,
        http_bytes_sent: http.bytes_sent,
        http_connections_open: http.connections_open as u64,
        connections_refused: shard.connections_refused(),
        connections_evicted: shard.connections_evicted(),
        tls_handshakes: http.tls_handshakes,
        tls_failed: http.tls_failed,
        tls_timed_out: http.tls_timed_out,
        allowed: a.allowed,
        denied_by: a.denied_by,
        cache_hits: auth.cache().hits,
        cache_misses: auth.cache().misses,
        cache_entries: auth.cache().len() as u64,
        sessions_by_proto,
        sessions_opened: a.sessions_opened,
        sessions_closed: a.sessions_closed,
        sessions_revoked: a.sessions_revoked,
        stale_served: a.stale_served,
        portal_requests: a.portal_requests,
        portal_allowed: a.portal_allowed,
        portal_denied: a.portal_denied,
        portal_unreachable: a.portal_unreachable,
        portal_latency_buckets: a.portal_latency_buckets,
        portal_latency_sum_us: a.portal_latency_sum_us,
        lookups_pending: auth.lookups.len() as u64,
        revocations: auth.revocations().len() as u64,
        inputs: shard
            .input_statuses()
            .filter_map(|(id, status)| {
                let stream = shard.catalog().stream(id)?.name.clone();
                let status = status.clone();
                Some(InputMetric { stream, status })
            })
            .collect(),
        webrtc: *shard.webrtc_stats(),
    }
}
