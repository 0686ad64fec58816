//! `GET /sync` (the last cycles with every attempt, the breakers' states), `POST /sync/run[?peer=P]` (one cycle
//! now; answers with its report when it ends) and `POST /sync/notify?peer=NAME` (a peer has new files).

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::sync::messages::{NotifySync, RunSync};

use super::{error, ApiState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sync", web::get().to(show))
        .route("/sync/run", web::post().to(run))
        .route("/sync/notify", web::post().to(notify));
}

fn off() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "sync is off on this node (sync.enabled: false)",
    )
}

async fn show(state: web::Data<ApiState>) -> HttpResponse {
    match &state.sync {
        Some(sync) => HttpResponse::Ok().json(sync.board.snapshot()),
        None => off(),
    }
}

async fn run(
    state: web::Data<ApiState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let Some(sync) = &state.sync else {
        return off();
    };
    let peer = query.get("peer").cloned();
    let receiver = match sync.actor.ask(RunSync { peer }, state.ask_timeout).await {
        Ok(Ok(receiver)) => receiver,
        Ok(Err(refused)) => return error(StatusCode::SERVICE_UNAVAILABLE, refused),
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("sync did not answer: {e}"),
            )
        }
    };
    let wait = sync.cycle_deadline + Duration::from_secs(10);
    match tokio::time::timeout(wait, receiver).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sync stopped or restarted before the cycle ended; see GET /sync",
        ),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "the cycle did not end within sync.cycle_deadline; see GET /sync",
        ),
    }
}

async fn notify(
    state: web::Data<ApiState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let Some(sync) = &state.sync else {
        return off();
    };
    let Some(peer) = query.get("peer").filter(|p| !p.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "peer: missing (expected ?peer=NAME, a node of cluster.nodes)",
        );
    };
    match sync
        .actor
        .ask(NotifySync { peer: peer.clone() }, state.ask_timeout)
        .await
    {
        Ok(Ok(())) => HttpResponse::Accepted().json(serde_json::json!({"queued": peer})),
        Ok(Err(message)) if message.contains("queue full") => {
            error(StatusCode::SERVICE_UNAVAILABLE, message)
        }
        Ok(Err(message)) => error(StatusCode::BAD_REQUEST, format!("peer: {message}")),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("sync did not answer: {e}"),
        ),
    }
}
