//! `/health`, `/status`, `/metrics`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::runtime::ChildState;
use serde_json::json;

use super::ApiState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/status", web::get().to(status))
        .route("/metrics", web::get().to(metrics));
}

async fn health(state: web::Data<ApiState>) -> HttpResponse {
    let root = state.tree.shared.state();
    if matches!(root, ChildState::Running | ChildState::Starting) {
        HttpResponse::Ok().json(json!({ "status": "ok" }))
    } else {
        HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
            .json(json!({ "status": root.as_str() }))
    }
}

async fn status(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "node": state.node,
        "uptime_s": state.started.elapsed().as_secs(),
        "tree": state.tree.status(),
        "actors": state.tree.actor_stats(),
    }))
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(actors::runtime::metrics::render())
}
