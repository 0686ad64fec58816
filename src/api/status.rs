//! `/health`, `/status`, `/metrics`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::data_server::monitor::messages::DataServerStatus;
use actors::runtime::{ChildState, HealthStatus};
use serde_json::json;

use super::ApiState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/status", web::get().to(status))
        .route("/metrics", web::get().to(metrics));
}

async fn health(state: web::Data<ApiState>) -> HttpResponse {
    // The health helper's issue (13 item 5) adds the tree's per-child checks; the board's checks are read as is.
    let checks = state.health.snapshot();
    let root = state.tree.shared.state();
    let root_running = matches!(root, ChildState::Running | ChildState::Starting);
    let overall = if root_running {
        actors::runtime::health::overall(checks.values())
    } else {
        HealthStatus::Failing
    };
    let body = json!({ "status": overall.as_str(), "root": root.as_str(), "checks": checks });
    if overall == HealthStatus::Failing {
        HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE).json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

async fn status(state: web::Data<ApiState>) -> HttpResponse {
    // The tree is read from shared status (never blocks on a hung actor); the data-server section asks its
    // monitor with a short deadline and says so when it cannot answer.
    let data_server = match &state.data_server {
        None => json!({ "enabled": false }),
        Some(monitor) => {
            let deadline = state.ask_timeout.min(std::time::Duration::from_secs(2));
            match monitor.ask(DataServerStatus, deadline).await {
                Ok(snapshot) => serde_json::to_value(snapshot).unwrap_or_default(),
                Err(e) => json!({ "error": format!("monitor did not answer: {e}") }),
            }
        }
    };
    // Sync's counters and last successful sync, from its board (no message to the actor).
    let sync = match &state.sync {
        None => json!({ "enabled": false }),
        Some(sync) => serde_json::to_value(sync.board.snapshot().state).unwrap_or_default(),
    };
    HttpResponse::Ok().json(json!({
        "node": state.node,
        "uptime_s": state.started.elapsed().as_secs(),
        "tree": state.tree.status(),
        "actors": state.tree.actor_stats(),
        "data_server": data_server,
        "sync": sync,
    }))
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(actors::runtime::metrics::render())
}
