//! Runs an operator API call (`http::api::ApiCall`) across the shards through the
//! `AuthBus` and renders its answer. The parsing, the key check and the rendering are
//! `http::api`'s; this is only the asking around.

use crate::auth::revoke::RevokeTarget;
use crate::auth::verdict::DenyReason;
use crate::http::api::{
    ApiCall, MetricsSnapshot, SessionInfo, merge_sessions, write_metrics, write_one_session,
    write_sessions,
};
use crate::http::status::Status;
use crate::runtime::auth_bus::{AuthBus, GatherCall, GatherPart};
use std::rc::Rc;

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

/// Revokes `target` on every shard; answers how many sessions closed.
async fn revoke(bus: &Rc<AuthBus>, target: RevokeTarget, none_is_404: bool) -> ApiAnswer {
    let reason = DenyReason::SessionRevoked;
    let (cut, shards) = count(bus, GatherCall::Revoke { target, reason }).await;
    let status = if cut == 0 && none_is_404 {
        Status::NotFound
    } else {
        Status::Ok
    };
    json(
        status,
        format!("{{\"sessions_closed\":{cut},\"shards\":{shards}}}\n"),
    )
}

pub async fn run(
    bus: &Rc<AuthBus>,
    call: ApiCall,
    stream_exists: impl Fn(&str) -> Option<u32>,
) -> ApiAnswer {
    match call {
        ApiCall::ListSessions(filter) => {
            let list: Vec<SessionInfo> = sessions(bus)
                .await
                .into_iter()
                .filter(|s| filter.matches(s))
                .collect();
            json(Status::Ok, write_sessions(&list))
        }
        ApiCall::GetSession(id) => match sessions(bus).await.iter().find(|s| s.id.as_str() == &*id)
        {
            Some(s) => json(Status::Ok, write_one_session(s)),
            None => json(Status::NotFound, "{\"error\":\"no such session\"}\n".into()),
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
        ApiCall::Metrics => {
            let mut total = MetricsSnapshot::default();
            for part in bus.gather(GatherCall::Metrics).await {
                if let GatherPart::Metrics(m) = part {
                    total.add(&m);
                }
            }
            ApiAnswer {
                status: Status::Ok,
                content_type: PROMETHEUS,
                body: write_metrics(&total),
            }
        }
    }
}
