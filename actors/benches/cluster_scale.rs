//! What one planner costs as the cluster grows (issue 12's scale note), not a test: every figure from one run.
//!
//! Measured, on loopback:
//! - the plan: `plan_from_json` for 12 configs over 10, 100, 1 000 and 10 000 nodes (what the planner runs every
//!   `scheduler.interval` and on replans);
//! - one watch of a handed-over job, planner side: the real `DaemonExecutor::run_until` (one `POST /jobs`, then
//!   `GET /jobs/{id}` every `poll_every` until finished) against an in-process worker that answers from memory;
//!   the CPU time of the planner's client thread per request, and the planner's resident memory per watch in
//!   flight (10 000 watches at once);
//! - one peer `/status` poll (what the resource optimizer does for every peer every `resources.interval`): a GET
//!   of a real `/status` body (fixtures/status.json, captured from `coordinator run` on config.yaml) and its JSON
//!   parse, CPU time of the client thread per request.
//!
//! From those it prints the planner's load at each cluster size with the defaults (`poll_every` 2 s, 30 s resource
//! interval, 5 min plan interval) and `JOBS_PER_NODE` jobs running on each node, and the size at which that load
//! reaches one core. Run: `cargo bench -p actors --bench cluster_scale`. Env: `JOBS_PER_NODE` (default 8),
//! `SCALE_WATCHES` (watches held at once for the memory figure, default 10000).

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use actors::jobs::remote::{DaemonExecutor, DispatchConfig};
use actors::jobs::JobSpec;
use actors::scheduler::config::SchedulerPolicyConfig;
use actors::scheduler::plan::plan_from_json;
use serde_json::json;

const STATUS_BODY: &str = include_str!("fixtures/status.json");
/// Polls a fake job answers `running` before it answers `finished`.
const POLLS_PER_JOB: u64 = 20;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The state `plan` gets: 12 configs over `nodes` nodes of mixed GPUs (as benches/plan.rs).
fn plan_state(nodes: usize) -> String {
    const GPUS: [(&str, u32); 4] = [("GH200", 96), ("H100", 80), ("RTX_4090", 24), ("A10", 24)];
    let configs: Vec<_> = actors::scheduler::board::ConfigKey::all()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"config": c.to_string(), "game_count": i * 700, "cluster_game_count": i * 1500,
                   "staleness_hours": (i % 5) as f64 * 3.0})
        })
        .collect();
    let nodes: Vec<_> = (0..nodes)
        .map(|i| {
            let (gpu, vram) = GPUS[i % GPUS.len()];
            json!({"name": format!("node-{i}"), "gpu": gpu, "gpu_memory_gb": vram,
                   "load": (i % 10) as f64 / 10.0, "healthy": true})
        })
        .collect();
    json!({"configs": configs, "nodes": nodes}).to_string()
}

/// Median time of `plan` at `nodes` nodes.
fn plan_time(nodes: usize) -> Duration {
    let policy = SchedulerPolicyConfig::default();
    let text = plan_state(nodes);
    let runs = if nodes >= 10_000 { 7 } else { 21 };
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let out = plan_from_json(&text, &policy).expect("plan");
            std::hint::black_box(out.total_games);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// A worker's control API answering from memory: every job is accepted, answers `running` for
/// [`POLLS_PER_JOB`] polls, then `finished`; `/status` answers the fixture.
struct FakeWorker {
    polls: dashmap::DashMap<String, u64>,
    requests: AtomicU64,
}

async fn accept(state: web::Data<Arc<FakeWorker>>, body: web::Bytes) -> HttpResponse {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = request["job"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    state.polls.insert(id.clone(), 0);
    HttpResponse::Accepted().json(json!({"id": id, "accepted": "new"}))
}

async fn lookup(state: web::Data<Arc<FakeWorker>>, id: web::Path<String>) -> HttpResponse {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let id = id.into_inner();
    let Some(mut polls) = state.polls.get_mut(&id) else {
        return HttpResponse::NotFound().json(json!({"error": "unknown"}));
    };
    *polls += 1;
    if *polls < POLLS_PER_JOB {
        return HttpResponse::Ok().json(json!({"id": id, "state": "running", "outcome": null}));
    }
    HttpResponse::Ok().json(json!({"id": id, "state": "finished", "outcome": {
        "job_id": id, "node": "w", "status": {"status": "succeeded", "games_written": 1}, "duration": "1s"}}))
}

async fn status(state: web::Data<Arc<FakeWorker>>) -> HttpResponse {
    state.requests.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok()
        .content_type("application/json")
        .body(STATUS_BODY)
}

/// Starts the fake worker on its own thread (2 workers); its base URL.
fn start_worker(worker: Arc<FakeWorker>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let data = web::Data::new(worker);
            HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route("/jobs", web::post().to(accept))
                    .route("/jobs/{id}", web::get().to(lookup))
                    .route("/status", web::get().to(status))
            })
            .workers(2)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run()
            .await
        })
    });
    url
}

fn spec(i: u64) -> JobSpec {
    JobSpec {
        id: format!("hex8_2p-w-{i}"),
        config_key: "hex8_2p".into(),
        board: "hex8".into(),
        players: 2,
        games: 1,
        budget: 64,
        output: PathBuf::from("data/games/hex8_2p/x.db"),
        max_moves: 500,
        think_time_ms: 0,
        randomness: 0.1,
        seed: i,
        node: "w".into(),
    }
}

/// `jobs` watches run to their end at once, polling every `poll_every`; the planner thread's CPU time per
/// request, the requests made, and the peak RSS growth in KiB.
fn watch_cost(
    url: &str,
    worker: &FakeWorker,
    jobs: u64,
    poll_every: Duration,
) -> (Duration, u64, u64) {
    let config = DispatchConfig {
        poll_every,
        request_timeout: Duration::from_secs(30),
        lost_after: Duration::from_secs(120),
        max_wait: Duration::from_secs(3600),
        ..DispatchConfig::default()
    };
    let before_requests = worker.requests.load(Ordering::Relaxed);
    let url = url.to_string();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let executor = DaemonExecutor::new(config);
            let rss_before = rss_kib();
            let cpu_before = thread_cpu();
            let peak = Arc::new(AtomicU64::new(rss_before));
            let tasks: Vec<_> = (0..jobs)
                .map(|i| {
                    let executor = executor.clone();
                    let url = url.clone();
                    actix_rt::spawn(async move {
                        executor
                            .run_until(&spec(i), &url, None, "planner", std::future::pending())
                            .await
                    })
                })
                .collect();
            let sampler = {
                let peak = peak.clone();
                actix_rt::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        peak.fetch_max(rss_kib(), Ordering::Relaxed);
                    }
                })
            };
            for task in tasks {
                let outcome = task.await.expect("watch");
                assert!(outcome.status.is_success(), "{:?}", outcome.status);
            }
            sampler.abort();
            let cpu = thread_cpu() - cpu_before;
            (cpu, peak.load(Ordering::Relaxed).saturating_sub(rss_before))
        })
    })
    .join()
    .map(|(cpu, rss)| {
        let requests = worker.requests.load(Ordering::Relaxed) - before_requests;
        (cpu / requests.max(1) as u32, requests, rss)
    })
    .expect("watch thread")
}

/// `n` sequential `/status` polls with their JSON parse; the client thread's CPU time per poll.
fn status_cost(url: &str, n: u32) -> Duration {
    let url = format!("{url}/status");
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(5))
                .finish();
            let cpu_before = thread_cpu();
            for _ in 0..n {
                let mut response = client.get(&url).send().await.expect("status");
                let body = response.body().limit(1 << 20).await.expect("body");
                let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
                std::hint::black_box(value);
            }
            (thread_cpu() - cpu_before) / n
        })
    })
    .join()
    .expect("status thread")
}

fn main() {
    // Cargo runs benches with `--bench`; nothing else is taken.
    let jobs_per_node = env_number("JOBS_PER_NODE", 8);
    let watches = env_number("SCALE_WATCHES", 10_000);
    let worker = Arc::new(FakeWorker {
        polls: dashmap::DashMap::new(),
        requests: AtomicU64::new(0),
    });
    let url = start_worker(worker.clone());
    std::thread::sleep(Duration::from_millis(200));

    println!("cluster scale benchmark (planner side, loopback; every figure from this run)");
    let (per_request, requests, _) = watch_cost(&url, &worker, 500, Duration::from_millis(5));
    println!(
        "job watch: {requests} requests for 500 jobs, planner CPU {:.1} us per request",
        per_request.as_secs_f64() * 1e6
    );
    let (_, _, rss) = watch_cost(&url, &worker, watches, Duration::from_millis(500));
    println!(
        "job watch memory: {watches} watches in flight at once: +{:.1} MiB RSS ({:.2} KiB per watch)",
        rss as f64 / 1024.0,
        rss as f64 / watches as f64
    );
    let per_status = status_cost(&url, 2000);
    println!(
        "peer /status poll ({} bytes body): planner CPU {:.1} us per poll",
        STATUS_BODY.len(),
        per_status.as_secs_f64() * 1e6
    );

    let poll_every = DispatchConfig::default().poll_every.as_secs_f64();
    let resources_interval = 30.0;
    let plan_interval = 300.0;
    println!();
    println!(
        "| nodes | plan | job polls/s ({jobs_per_node} jobs/node, every {poll_every}s) | /status polls/s | planner CPU (cores) |"
    );
    println!("|---|---|---|---|---|");
    let mut core_at = None;
    for nodes in [10usize, 100, 1_000, 10_000] {
        let plan = plan_time(nodes);
        let job_polls = nodes as f64 * jobs_per_node as f64 / poll_every;
        let status_polls = nodes as f64 / resources_interval;
        let cores = job_polls * per_request.as_secs_f64()
            + status_polls * per_status.as_secs_f64()
            + plan.as_secs_f64() / plan_interval;
        println!(
            "| {nodes} | {:.2} ms | {job_polls:.0} | {status_polls:.1} | {cores:.3} |",
            plan.as_secs_f64() * 1e3
        );
        if cores < 1.0 {
            core_at = Some(nodes);
        }
    }
    let per_node_core = jobs_per_node as f64 / poll_every * per_request.as_secs_f64()
        + per_status.as_secs_f64() / resources_interval;
    println!();
    println!(
        "one planner core is used up at about {:.0} nodes (polling alone; largest size measured under one core: {})",
        1.0 / per_node_core,
        core_at.map_or("none".to_string(), |n| n.to_string())
    );
}
