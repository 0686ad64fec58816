//! `/health`, `/status`, `/metrics`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::data_server::monitor::messages::DataServerStatus;
use actors::runtime::{ChildState, HealthReport};
use actors::scheduler::actor::SchedulerStatus;
use serde_json::json;

use super::ApiState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/status", web::get().to(status))
        .route("/metrics", web::get().to(metrics));
}

/// One check per tree node (`tree.<name>`, from the shared status) plus every check on the health board; the worst
/// decides. Never messages an actor, so it answers while one hangs.
async fn health(state: web::Data<ApiState>) -> HttpResponse {
    let tree = state.tree.status();
    let mut checks = tree.health_checks();
    checks.extend(state.health.snapshot());
    let report = HealthReport::new(tree.state == ChildState::Running, checks);
    let code =
        StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    HttpResponse::build(code).json(report)
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
    let scheduler = match &state.scheduler {
        None => json!({ "enabled": false }),
        Some(scheduler) => {
            let deadline = state.ask_timeout.min(std::time::Duration::from_secs(2));
            match scheduler.ask(SchedulerStatus, deadline).await {
                Ok(summary) => serde_json::to_value(summary).unwrap_or_default(),
                Err(e) => json!({ "error": format!("scheduler did not answer: {e}") }),
            }
        }
    };
    HttpResponse::Ok().json(json!({
        "node": state.node,
        "uptime_s": state.started.elapsed().as_secs(),
        "tree": state.tree.status(),
        "actors": state.tree.actor_stats(),
        "data_server": data_server,
        "sync": sync,
        "scheduler": scheduler,
        "dead_letters": state.dead_letter_status.snapshot(),
    }))
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(actors::runtime::metrics::render())
}
