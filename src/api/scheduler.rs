//! `GET /jobs` (the job table) and `GET /plan` (the last plan and per-config game counts); and the worker's side
//! of a hand-over from the planner: `POST /jobs` (run this job), `GET /jobs/{id}` (where is it),
//! `POST /jobs/{id}/cancel` (withdraw it), `GET /jobs/handed-over` (what do you hold from me). The protocol is
//! described in `actors::jobs::remote`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::jobs::remote::DispatchRequest;
use actors::runtime::ActorRef;
use actors::scheduler::actor::{
    AcceptJob, Accepted, GetJobs, GetPlan, ListHandedOver, LookupJob, SchedulerActor, WithdrawJob,
};
use serde_json::json;

use super::{error, ApiState};

/// The scheduler, or the 404 that says it is off on this node.
fn scheduler_of(state: &ApiState) -> Result<&ActorRef<SchedulerActor>, Box<HttpResponse>> {
    state.scheduler.as_ref().ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            "the scheduler is off on this node (scheduler.enabled: false)",
        ))
    })
}

/// The 503 of a scheduler that did not answer within the ask deadline.
fn not_answered(e: impl std::fmt::Display) -> HttpResponse {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("scheduler did not answer: {e}"),
    )
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs", web::get().to(jobs))
        .route("/jobs", web::post().to(accept))
        .route("/jobs/handed-over", web::get().to(handed_over))
        .route("/jobs/{id}", web::get().to(lookup))
        .route("/jobs/{id}/cancel", web::post().to(withdraw))
        .route("/plan", web::get().to(plan));
}

async fn jobs(state: web::Data<ApiState>) -> HttpResponse {
    let scheduler = match scheduler_of(&state) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    match scheduler.ask(GetJobs, state.ask_timeout).await {
        Ok(snapshot) => HttpResponse::Ok().json(snapshot),
        Err(e) => not_answered(e),
    }
}

async fn plan(state: web::Data<ApiState>) -> HttpResponse {
    let scheduler = match scheduler_of(&state) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    match scheduler.ask(GetPlan, state.ask_timeout).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => not_answered(e),
    }
}

/// `POST /jobs`: a job from the planner. 202 when queued, 200 when already known, 409 when this node takes no
/// handed-over jobs (it plans, or the sender is not its planner), 400 for a body that is not a hand-over.
async fn accept(state: web::Data<ApiState>, body: web::Bytes) -> HttpResponse {
    let scheduler = match scheduler_of(&state) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    let request: DispatchRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                "body: {e} (expected {{\"job\": {{...a job spec...}}, \"planner\": \"<node>\"}})"
            ),
            )
        }
    };
    let id = request.job.id.clone();
    match scheduler
        .ask(AcceptJob { request }, state.ask_timeout)
        .await
    {
        Ok(Ok(Accepted::New)) => {
            HttpResponse::Accepted().json(json!({ "id": id, "accepted": "new" }))
        }
        Ok(Ok(Accepted::Known)) => {
            HttpResponse::Ok().json(json!({ "id": id, "accepted": "known" }))
        }
        Ok(Err(reason)) => error(StatusCode::CONFLICT, reason),
        Err(e) => not_answered(e),
    }
}

/// `GET /jobs/{id}`: where a job is (`queued`, `running`, `finished` with its outcome); 404 when unknown.
async fn lookup(state: web::Data<ApiState>, id: web::Path<String>) -> HttpResponse {
    let scheduler = match scheduler_of(&state) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    let id = id.into_inner();
    match scheduler
        .ask(LookupJob { id: id.clone() }, state.ask_timeout)
        .await
    {
        Ok(Some(job)) => HttpResponse::Ok().json(job),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no job {id} on this node (never handed over, or gone from its history)"),
        ),
        Err(e) => not_answered(e),
    }
}

/// `GET /jobs/handed-over`: the jobs the planner handed this node whose end it has not seen; 409 on the planner.
async fn handed_over(state: web::Data<ApiState>) -> HttpResponse {
    let scheduler = match scheduler_of(&state) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    match scheduler.ask(ListHandedOver, state.ask_timeout).await {
        Ok(Ok(list)) => HttpResponse::Ok().json(list),
        Ok(Err(reason)) => error(StatusCode::CONFLICT, reason),
        Err(e) => not_answered(e),
    }
}

/// `POST /jobs/{id}/cancel`: withdraw a queued or running job; 404 when unknown or already finished.
async fn withdraw(state: web::Data<ApiState>, id: web::Path<String>) -> HttpResponse {
    let scheduler = match scheduler_of(&state) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    let id = id.into_inner();
    match scheduler
        .ask(WithdrawJob { id: id.clone() }, state.ask_timeout)
        .await
    {
        Ok(true) => HttpResponse::Ok().json(json!({ "id": id, "cancelled": true })),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("no queued or running job {id} on this node"),
        ),
        Err(e) => not_answered(e),
    }
}
