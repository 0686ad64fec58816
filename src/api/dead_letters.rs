//! Dead-letter routes: list, show, replay, purge (contract: design/contract.md "Control API").

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::runtime::dead_letters::{
    GetDeadLetter, ListDeadLetters, PurgeDeadLetters, ReplayDeadLetter, ReplayDenied,
};
use serde::Deserialize;
use serde_json::json;

use super::{error, ApiState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dead-letters", web::get().to(list))
        .route("/dead-letters/purge", web::post().to(purge))
        .route("/dead-letters/{id}", web::get().to(show))
        .route("/dead-letters/{id}/replay", web::post().to(replay));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayQuery {
    force: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeQuery {
    older_than: Option<String>,
}

fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("dead-letter actor did not answer: {e}"),
    )
}

async fn list(state: web::Data<ApiState>, query: web::Query<ListQuery>) -> HttpResponse {
    let limit = match super::query_number("limit", query.limit.as_deref(), 100, 10_000) {
        Ok(n) => n,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match state
        .dead_letters
        .ask(
            ListDeadLetters {
                limit,
                status: None,
            },
            state.ask_timeout,
        )
        .await
    {
        Ok(page) => HttpResponse::Ok().json(page),
        Err(e) => unavailable(e),
    }
}

async fn show(state: web::Data<ApiState>, id: web::Path<i64>) -> HttpResponse {
    let id = id.into_inner();
    match state
        .dead_letters
        .ask(GetDeadLetter { id }, state.ask_timeout)
        .await
    {
        Ok(Some(letter)) => HttpResponse::Ok().json(letter),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id}"),
        ),
        Err(e) => unavailable(e),
    }
}

/// Replays one letter through the dead-letter actor's `ReplayDeadLetter` (the same command the timed replay uses,
/// with its in-flight set). 404 for an unknown id; 409 for a recovered or abandoned letter unless `force=true`, and
/// for a letter already being replayed.
async fn replay(
    state: web::Data<ApiState>,
    id: web::Path<i64>,
    query: web::Query<ReplayQuery>,
) -> HttpResponse {
    let id = id.into_inner();
    let force = match query.force.as_deref().map(str::trim) {
        None => false,
        Some("true" | "1" | "yes") => true,
        Some("false" | "0" | "no") => false,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("force: {other:?} is not a boolean (expected true or false)"),
            )
        }
    };
    let ticket = match state
        .dead_letters
        .ask(ReplayDeadLetter { id, force }, state.ask_timeout)
        .await
    {
        Ok(Ok(ticket)) => ticket,
        Ok(Err(denied @ ReplayDenied::NotFound(_))) => {
            return error(StatusCode::NOT_FOUND, denied.to_string())
        }
        Ok(Err(denied @ ReplayDenied::Refused(_))) => {
            return error(StatusCode::CONFLICT, denied.to_string())
        }
        Ok(Err(denied)) => return error(StatusCode::SERVICE_UNAVAILABLE, denied.to_string()),
        Err(e) => return unavailable(e),
    };
    match tokio::time::timeout(ticket.wait, ticket.result).await {
        Ok(Ok(result)) => {
            tracing::info!(id, force, replayed = result.replayed, awaiting_outcome = result.awaiting_outcome, "dead letter replayed on request");
            HttpResponse::Ok().json(result)
        }
        Ok(Err(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the dead-letter actor restarted during the replay; see the letter for its state",
        ),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "replay of {id} gave no answer within {} ms; it counts as failed when its deadline passes",
                ticket.wait.as_millis()
            ),
        ),
    }
}

async fn purge(state: web::Data<ApiState>, query: web::Query<PurgeQuery>) -> HttpResponse {
    let older_than = match query.older_than.as_deref() {
        None => Duration::ZERO,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("older_than: {text:?}: {e} (expected a duration like 7d, 12h, 30m)"),
                )
            }
        },
    };
    match state
        .dead_letters
        .ask(PurgeDeadLetters { older_than }, state.ask_timeout)
        .await
    {
        Ok(purged) => HttpResponse::Ok().json(json!({ "purged": purged })),
        Err(e) => unavailable(e),
    }
}
