//! The daemon executor against a real HTTP server on loopback that speaks the worker's side of the protocol
//! (`POST /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/cancel`): hand-over, watching to the end, refusal, a worker
//! that goes away, a planner that stops (the job stays on the worker), and the question a restarted planner asks
//! (`GET /jobs/handed-over`). The worker's real routes are tested black-box in `tests/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use actors::jobs::outcome::{JobOutcome, JobStatus};
use actors::jobs::remote::{DaemonExecutor, DispatchConfig, DispatchRequest, RemoteState};
use actors::jobs::JobSpec;
use serde_json::json;

#[derive(Default)]
struct Worker {
    /// Polls answered so far; the job finishes at the third.
    polls: u32,
    received: Vec<DispatchRequest>,
    cancelled: Vec<String>,
    auth: Vec<Option<String>>,
    refuse: bool,
    finish: bool,
}

type Shared = web::Data<Arc<Mutex<Worker>>>;

async fn submit(
    state: Shared,
    req: actix_web::HttpRequest,
    body: web::Json<DispatchRequest>,
) -> HttpResponse {
    let mut worker = state.lock().unwrap();
    worker.auth.push(
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    if worker.refuse {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"error": "new jobs paused: disk at 96%"}));
    }
    worker.received.push(body.into_inner());
    HttpResponse::Accepted().json(json!({"accepted": true}))
}

async fn show(state: Shared, id: web::Path<String>) -> HttpResponse {
    let mut worker = state.lock().unwrap();
    let Some(request) = worker.received.iter().find(|r| r.job.id == *id).cloned() else {
        return HttpResponse::NotFound().json(json!({"error": "no such job"}));
    };
    worker.polls += 1;
    if worker.finish && worker.polls >= 3 {
        let outcome = JobOutcome {
            job_id: request.job.id.clone(),
            node: request.job.node.clone(),
            status: JobStatus::Succeeded {
                games_written: u64::from(request.job.games),
            },
            duration: Duration::from_millis(1200),
        };
        return HttpResponse::Ok()
            .json(json!({"id": request.job.id, "state": "finished", "outcome": outcome}));
    }
    HttpResponse::Ok().json(json!({"id": request.job.id, "state": "running", "outcome": null}))
}

async fn handed_over(state: Shared) -> HttpResponse {
    let worker = state.lock().unwrap();
    let jobs: Vec<_> = worker
        .received
        .iter()
        .map(|r| json!({"job": r.job, "state": "running"}))
        .collect();
    HttpResponse::Ok().json(json!({"planner": "train-1", "jobs": jobs}))
}

async fn cancel(state: Shared, id: web::Path<String>) -> HttpResponse {
    state.lock().unwrap().cancelled.push(id.into_inner());
    HttpResponse::Ok().json(json!({"cancelled": true}))
}

fn start_worker(worker: Worker) -> (String, Arc<Mutex<Worker>>, actix_web::dev::ServerHandle) {
    let shared = Arc::new(Mutex::new(worker));
    let data = web::Data::new(shared.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/jobs", web::post().to(submit))
            .route("/jobs/handed-over", web::get().to(handed_over))
            .route("/jobs/{id}", web::get().to(show))
            .route("/jobs/{id}/cancel", web::post().to(cancel))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (url, shared, handle)
}

fn spec() -> JobSpec {
    JobSpec {
        id: "hex8_2p-worker-1-7".into(),
        config_key: "hex8_2p".into(),
        board: "hex8".into(),
        players: 2,
        games: 50,
        budget: 64,
        output: PathBuf::from("data/games/hex8_2p/x.db"),
        max_moves: 500,
        think_time_ms: 0,
        randomness: 0.1,
        seed: 7,
        node: "worker-1".into(),
    }
}

fn fast() -> DispatchConfig {
    DispatchConfig {
        poll_every: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        lost_after: Duration::from_millis(600),
        max_wait: Duration::from_secs(60),
        ..DispatchConfig::default()
    }
}

const WAIT: Duration = Duration::from_secs(30);

/// One attempt at `url` with no token and no cancel, run to its end within [`WAIT`].
async fn run_to_end(url: &str) -> JobOutcome {
    tokio::time::timeout(
        WAIT,
        DaemonExecutor::new(fast()).run_until(
            &spec(),
            url,
            None,
            "train-1",
            std::future::pending(),
        ),
    )
    .await
    .expect("ended in time")
}

#[actix_rt::test]
async fn a_handed_over_job_is_watched_to_its_outcome_with_the_token() {
    let (url, worker, server) = start_worker(Worker {
        finish: true,
        ..Worker::default()
    });
    let executor = DaemonExecutor::new(fast());
    let outcome = tokio::time::timeout(
        WAIT,
        executor.run_until(
            &spec(),
            &url,
            Some("s3cret"),
            "train-1",
            std::future::pending(),
        ),
    )
    .await
    .expect("ended in time");
    assert_eq!(outcome.status, JobStatus::Succeeded { games_written: 50 });
    assert_eq!(outcome.node, "worker-1");
    {
        let worker = worker.lock().unwrap();
        assert_eq!(worker.received.len(), 1);
        assert_eq!(worker.received[0].planner, "train-1");
        assert_eq!(worker.auth, vec![Some("Bearer s3cret".to_string())]);
        assert!(worker.cancelled.is_empty());
    }
    server.stop(false).await;
}

#[actix_rt::test]
async fn a_refusal_is_a_failed_start_with_the_workers_reason() {
    let (url, _worker, server) = start_worker(Worker {
        refuse: true,
        ..Worker::default()
    });
    let outcome = run_to_end(&url).await;
    match outcome.status {
        JobStatus::Failed {
            reason, exit: None, ..
        } => {
            assert!(reason.contains("refused the job with 503"), "{reason}");
            assert!(reason.contains("disk at 96%"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    server.stop(false).await;
}

#[actix_rt::test]
async fn a_worker_that_goes_away_fails_the_attempt_after_lost_after() {
    let (url, worker, server) = start_worker(Worker::default());
    let executor = DaemonExecutor::new(fast());
    let job = spec();
    let run = executor.run_until(&job, &url, None, "train-1", std::future::pending());
    let stop = async {
        // Let the hand-over and a few polls happen, then take the worker away for good.
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if worker.lock().unwrap().polls >= 2 {
                break;
            }
        }
        server.stop(false).await;
    };
    let (outcome, ()) = tokio::time::timeout(WAIT, futures::future::join(run, stop))
        .await
        .expect("ended in time");
    match outcome.status {
        JobStatus::Failed { reason, .. } => {
            assert!(reason.contains("lost contact with worker-1"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn a_planner_that_stops_leaves_the_job_on_the_worker_and_finds_it_again() {
    let (url, worker, server) = start_worker(Worker::default());
    let executor = DaemonExecutor::new(fast());
    let cancel = tokio::time::sleep(Duration::from_millis(300));
    let outcome = tokio::time::timeout(
        WAIT,
        executor.run_until(&spec(), &url, None, "train-1", cancel),
    )
    .await
    .expect("ended in time");
    assert_eq!(outcome.status, JobStatus::Cancelled);
    assert!(
        worker.lock().unwrap().cancelled.is_empty(),
        "a stopping planner withdraws nothing"
    );
    // The restarted planner's question finds the job where it was.
    let list = executor
        .list_handed_over(&url, None)
        .await
        .expect("the worker answers");
    assert_eq!(list.planner, "train-1");
    assert_eq!(list.jobs.len(), 1);
    assert_eq!(list.jobs[0].job, spec());
    assert_eq!(list.jobs[0].state, RemoteState::Running);
    server.stop(false).await;
    let gone = executor.list_handed_over(&url, None).await;
    assert!(gone.is_err_and(|e| e.contains("/jobs/handed-over")));
}

#[actix_rt::test]
async fn an_unreachable_daemon_is_a_failed_start_naming_it() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let outcome = run_to_end(&format!("http://127.0.0.1:{port}")).await;
    match outcome.status {
        JobStatus::Failed { reason, .. } => {
            assert!(
                reason.contains("cannot hand the job to worker-1's daemon"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}
