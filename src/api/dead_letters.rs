//! Dead-letter routes: list, show, replay, purge (contract: design/contract.md "Control API").

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::runtime::dead_letters::{
    GetDeadLetter, ListDeadLetters, PurgeDeadLetters, ReplayFinished,
};
use actors::runtime::ids::{CorrelationId, MessageMeta};
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

/// Re-sends the stored message to its actor, then records the outcome (recovered, or retry count + 1).
async fn replay(state: web::Data<ApiState>, id: web::Path<i64>) -> HttpResponse {
    let id = id.into_inner();
    let letter = match state
        .dead_letters
        .ask(GetDeadLetter { id }, state.ask_timeout)
        .await
    {
        Ok(Some(letter)) => letter,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no dead letter with id {id}"),
            )
        }
        Err(e) => return unavailable(e),
    };
    let meta = MessageMeta {
        retries: letter.retries + 1,
        replay_of: Some(letter.id),
        ..MessageMeta::with_correlation(
            CorrelationId::parse(&letter.correlation_id).unwrap_or_default(),
        )
    };
    let outcome = state
        .directory
        .replay(
            &letter.actor,
            &letter.msg,
            letter.payload.clone(),
            meta,
            state.ask_timeout,
        )
        .await;
    let error_text = outcome.as_ref().err().map(|e| e.to_string());
    tracing::info!(id, actor = %letter.actor, msg = %letter.msg, correlation_id = %letter.correlation_id, ok = error_text.is_none(), "dead letter replayed on request");
    match state
        .dead_letters
        .ask(
            ReplayFinished {
                id,
                error: error_text.clone(),
            },
            state.ask_timeout,
        )
        .await
    {
        Ok(updated) => HttpResponse::Ok().json(json!({
            "replayed": error_text.is_none(),
            "error": error_text,
            "dead_letter": updated,
        })),
        Err(e) => unavailable(e),
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
