//! Fault drills and probes, served only with `api.debug_endpoints: true` (every `/debug/...` request is 404
//! otherwise, before its query is even read):
//! `POST /debug/fail/{actor}?mode=panic|error|hang|block` arms a drill for the actor's next message (and pings it so it
//! fires now); `POST /debug/ping/{actor}?count=N` queues N pings (to show queued messages survive a restart).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::runtime::directory::DirectoryError;
use actors::runtime::Drill;
use serde::Deserialize;
use serde_json::json;

use super::{error, ApiState};

/// The drill routes when `enabled`; otherwise every `/debug/...` request is 404, whatever its method or query.
pub fn routes(cfg: &mut web::ServiceConfig, enabled: bool) {
    if !enabled {
        cfg.service(web::scope("/debug").default_service(web::to(debug_off)));
        return;
    }
    cfg.route("/debug/fail/{actor}", web::post().to(fail))
        .route("/debug/ping/{actor}", web::post().to(ping));
}

async fn debug_off() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "no such route (debug endpoints are off: api.debug_endpoints)",
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailQuery {
    mode: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PingQuery {
    count: Option<String>,
}

fn directory_error(e: DirectoryError) -> HttpResponse {
    match e {
        DirectoryError::UnknownActor { .. } => error(StatusCode::NOT_FOUND, e.to_string()),
        DirectoryError::NotAWorker { .. } => error(StatusCode::BAD_REQUEST, e.to_string()),
        DirectoryError::Delivery(_) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn fail(
    state: web::Data<ApiState>,
    actor: web::Path<String>,
    query: web::Query<FailQuery>,
) -> HttpResponse {
    let drill: Drill = match query.mode.parse() {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("mode: {e}")),
    };
    match state.directory.arm_drill(&actor, drill) {
        Ok(()) => HttpResponse::Accepted().json(json!({ "actor": actor.as_str(), "drill": drill })),
        Err(e) => directory_error(e),
    }
}

async fn ping(
    state: web::Data<ApiState>,
    actor: web::Path<String>,
    query: web::Query<PingQuery>,
) -> HttpResponse {
    let count = match super::query_number("count", query.count.as_deref(), 1, 10_000) {
        Ok(n) => n as u32,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match state.directory.ping(&actor, count) {
        Ok(sent) => {
            HttpResponse::Accepted().json(json!({ "actor": actor.as_str(), "queued": sent }))
        }
        Err(e) => directory_error(e),
    }
}
