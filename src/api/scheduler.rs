//! `GET /jobs` (the job table) and `GET /plan` (the last plan and per-config game counts).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::scheduler::actor::{GetJobs, GetPlan};

use super::{error, ApiState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs", web::get().to(jobs))
        .route("/plan", web::get().to(plan));
}

async fn jobs(state: web::Data<ApiState>) -> HttpResponse {
    let Some(scheduler) = &state.scheduler else {
        return error(
            StatusCode::NOT_FOUND,
            "the scheduler is off on this node (scheduler.enabled: false)",
        );
    };
    match scheduler.ask(GetJobs, state.ask_timeout).await {
        Ok(snapshot) => HttpResponse::Ok().json(snapshot),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("scheduler did not answer: {e}"),
        ),
    }
}

async fn plan(state: web::Data<ApiState>) -> HttpResponse {
    let Some(scheduler) = &state.scheduler else {
        return error(
            StatusCode::NOT_FOUND,
            "the scheduler is off on this node (scheduler.enabled: false)",
        );
    };
    match scheduler.ask(GetPlan, state.ask_timeout).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("scheduler did not answer: {e}"),
        ),
    }
}
