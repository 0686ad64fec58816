//! The control API (default 127.0.0.1:8765, JSON): health, status, metrics, dead letters, fault drills.
//!
//! Reads the supervision tree's shared status directly (never blocks on a hung actor); asks actors with a
//! deadline where it needs their state. Every non-GET request needs `Authorization: Bearer <token>` when
//! `api.token` is set. Errors are JSON `{"error": "..."}` that say what was wrong and what is expected.

mod auth;
mod dead_letters;
mod debug;
mod scheduler;
mod status;
mod sync;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use actors::data_server::monitor::actor::DataServerMonitor;
use actors::runtime::dead_letters::{DeadLetterActor, DeadLetterShared};
use actors::runtime::{ActorRef, Directory, HealthBoard, TreeShape};
use actors::scheduler::actor::SchedulerActor;
use actors::sync::actor::SyncActor;
use actors::sync::board::SyncBoard;
use anyhow::{Context, Result};
use serde_json::json;

/// Everything the handlers need.
#[derive(Clone)]
pub struct ApiState {
    pub node: String,
    pub started: Instant,
    pub tree: TreeShape,
    pub directory: Directory,
    pub dead_letters: ActorRef<DeadLetterActor>,
    /// The dead-letter store's state (spill, failures, queue) for `/status`, read without messaging the actor.
    pub dead_letter_status: DeadLetterShared,
    /// `None` when `data_server.enabled` is false.
    pub data_server: Option<ActorRef<DataServerMonitor>>,
    /// `None` when `scheduler.enabled` is false.
    pub scheduler: Option<ActorRef<SchedulerActor>>,
    /// `None` when `sync.enabled` is false.
    pub sync: Option<SyncApi>,
    /// Named checks that components publish; `/health` reads them.
    pub health: HealthBoard,
    pub token: Option<String>,
    pub debug_endpoints: bool,
    /// How long a request waits for an actor's answer.
    pub ask_timeout: Duration,
}

/// What the sync routes need.
#[derive(Clone)]
pub struct SyncApi {
    pub actor: ActorRef<SyncActor>,
    pub board: SyncBoard,
    /// How long `POST /sync/run` may wait for its cycle.
    pub cycle_deadline: Duration,
}

/// A JSON error response.
pub(crate) fn error(
    status: actix_web::http::StatusCode,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into() }))
}

/// Parses an optional whole-number query field; the error names the field and the expected range.
pub(crate) fn query_number(
    field: &str,
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, String> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{field}: {text:?} is not a whole number from 1 to {max}"
        )),
    }
}

/// Binds the API and returns the server future to spawn (bind errors name the address).
pub fn start(bind: &str, state: ApiState) -> Result<actix_web::dev::Server> {
    let listener = TcpListener::bind(bind).with_context(|| {
        format!(
            "control API cannot listen on {bind} (is another coordinator running? set api.bind)"
        )
    })?;
    let local = listener.local_addr().ok();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::QueryConfig::default().error_handler(|err, _req| {
                let message = format!("bad query string: {err}");
                actix_web::error::InternalError::from_response(
                    err,
                    error(actix_web::http::StatusCode::BAD_REQUEST, message),
                )
                .into()
            }))
            .app_data(web::PathConfig::default().error_handler(|err, _req| {
                let message = format!("bad path parameter: {err}");
                actix_web::error::InternalError::from_response(
                    err,
                    error(actix_web::http::StatusCode::BAD_REQUEST, message),
                )
                .into()
            }))
            .wrap(auth::RequireToken)
            .configure(status::routes)
            .configure(dead_letters::routes)
            .configure(debug::routes)
            .configure(scheduler::routes)
            .configure(sync::routes)
            .default_service(web::to(|| async {
                error(
                    actix_web::http::StatusCode::NOT_FOUND,
                    "no such route (see docs/operations.md for the API)",
                )
            }))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)
    .with_context(|| format!("control API cannot serve on {bind}"))?
    .run();
    tracing::info!(addr = %local.map_or_else(|| bind.to_string(), |a| a.to_string()), "control API listening");
    Ok(server)
}
