//! The resource optimizer actor: the thin shell that measures, hands the round to [`ResourcePolicy`], and carries
//! out what it answers: the scheduler's [`CapacityUpdate`], the shared [`PressureGate`], the `resources` check on
//! the [`HealthBoard`], metrics and logs. Every decision is the policy's.
//!
//! Each round (at start, then every `resources.interval`) runs as the actor's spawned work, never blocking its
//! thread: the OS sample in `spawn_blocking` under `sample_timeout` (a sample still stuck, e.g. on a hung mount,
//! makes the next ones fail fast, which counts as an unreadable disk), the GPU query as an async child under
//! `gpu_timeout`, and the scheduler asked for this node's running jobs. One round at a time; a tick that finds
//! one still running is skipped. Peers with an `api_url` are polled for their `/status` after each round, each
//! under `cluster.poll_timeout`, and the cluster view goes to the scheduler as [`ClusterFigures`].

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use super::cluster::{ClusterView, NodeFigures, ViewChange};
use super::config::ResourcesConfig;
use super::gpu;
use super::messages::{PeerPolled, ResourcesStatus, ResourcesStatusReport, SampleDue, Sampled};
use super::metrics::resource_metrics;
use super::policy::{Action, Notice, Observation, ResourcePolicy};
use super::sample::{OsSampler, Sample};
use crate::pressure::PressureGate;
use crate::runtime::{ActorRef, Behavior, Ctx, HandlerError, Handles, HealthBoard};
use crate::scheduler::actor::{CapacityUpdate, GetJobs, SchedulerActor};
use crate::scheduler::config::{GpuTable, TargetJobsPolicy};

/// The name of the optimizer's check on the health board.
pub const HEALTH_CHECK: &str = "resources";

/// The largest peer `/status` body read.
const STATUS_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// A peer whose `/status` is polled.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerEndpoint {
    pub name: String,
    /// Base URL of its control API (`http://host:8765`).
    pub api_url: String,
}

/// Everything the optimizer is wired to (built once by the daemon, cloned into each incarnation).
#[derive(Clone)]
pub struct OptimizerSetup {
    pub config: ResourcesConfig,
    /// This node's name (the scheduler's name for it).
    pub node: String,
    /// Directories whose disk use is watched.
    pub roots: Vec<PathBuf>,
    /// The hardware-cap table (`scheduler.policy.target_jobs`).
    pub limits: TargetJobsPolicy,
    /// The GPU table (`scheduler.policy.gpus`): maps the names nvidia-smi reports to its models.
    pub gpus: GpuTable,
    /// This node's `cluster.nodes[].gpu` (`unknown` when the config names none: the measured model is used).
    pub gpu: String,
    /// The job target before the first round (the scheduler's default per node).
    pub initial_target: u32,
    pub gate: PressureGate,
    pub health: HealthBoard,
    /// `None` when the scheduler is off: nothing is steered, pressure still gates sync.
    pub scheduler: Option<ActorRef<SchedulerActor>>,
    pub peers: Vec<PeerEndpoint>,
    /// Sent as `Authorization: Bearer` to peers (the cluster shares `api.token`).
    pub token: Option<String>,
    /// Deadline of the scheduler's answer about running jobs.
    pub ask_timeout: Duration,
}

/// The resource optimizer (see the module doc).
pub struct ResourceOptimizer {
    setup: OptimizerSetup,
    policy: ResourcePolicy,
    sampler: Arc<Mutex<OsSampler>>,
    view: ClusterView,
    round_in_flight: bool,
    client: Option<awc::Client>,
}

impl ResourceOptimizer {
    pub fn new(setup: OptimizerSetup) -> ResourceOptimizer {
        let policy = ResourcePolicy::new(
            setup.config.clone(),
            setup.limits.clone(),
            setup.node.clone(),
            setup.initial_target,
        )
        .with_gpu(setup.gpu.clone(), setup.gpus.clone());
        let view = ClusterView::new(
            setup.peers.iter().map(|p| p.name.clone()),
            setup.config.cluster.stale_after,
            Instant::now(),
        );
        ResourceOptimizer {
            policy,
            sampler: Arc::new(Mutex::new(OsSampler::new())),
            view,
            round_in_flight: false,
            client: None,
            setup,
        }
    }

    fn start_round(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.round_in_flight {
            tracing::debug!("previous resource round still running; this tick is skipped");
            return;
        }
        self.round_in_flight = true;
        let sampler = self.sampler.clone();
        let roots = self.setup.roots.clone();
        let sample_timeout = self.setup.config.sample_timeout;
        let gpu_command = self.setup.config.gpu_command.clone();
        let gpu_timeout = self.setup.config.gpu_timeout;
        let scheduler = self.setup.scheduler.clone();
        let node = self.setup.node.clone();
        let ask_timeout = self.setup.ask_timeout;
        ctx.spawn(async move {
            let os = os_sample(sampler, roots, sample_timeout);
            let gpus = gpu::probe(&gpu_command, gpu_timeout);
            let running = running_jobs(scheduler, node, ask_timeout);
            let ((sample, sample_cpu_seconds), gpu, running_jobs) =
                futures::join!(os, gpus, running);
            Sampled {
                observation: Observation {
                    sample,
                    gpu,
                    running_jobs,
                },
                sample_cpu_seconds,
            }
        });
    }

    fn apply(&mut self, actions: Vec<Action>, now: Instant) {
        let mut queue = VecDeque::from(actions);
        let mut targets = Vec::new();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::SetTarget { node, jobs } => targets.push((node, jobs)),
                Action::Pause { reason } => self.setup.gate.pause(format!("resources: {reason}")),
                Action::Resume => self.setup.gate.resume(),
                Action::Health(check) => self.setup.health.set(HEALTH_CHECK, check),
                Action::Log(notice) => log_notice(notice),
            }
        }
        let peer_targets = self.view.peer_targets(now);
        resource_metrics().record(&self.policy.report(now), &peer_targets);
        let Some(scheduler) = &self.setup.scheduler else {
            return;
        };
        targets.extend(peer_targets);
        if let Err(error) = scheduler.tell(CapacityUpdate { targets }) {
            tracing::warn!(%error, "job targets not delivered to the scheduler; sent again next interval");
        }
        let figures = self.view.figures(self.policy.figures(), now);
        if let Err(error) = scheduler.tell(figures) {
            tracing::warn!(%error, "cluster figures not delivered to the scheduler; sent again next interval");
        }
    }

    fn poll_peers(&mut self, ctx: &mut Ctx<'_, Self>) {
        if !self.setup.config.cluster.poll_peers || self.setup.peers.is_empty() {
            return;
        }
        let client = self
            .client
            .get_or_insert_with(|| awc::Client::builder().disable_redirects().finish())
            .clone();
        let timeout = self.setup.config.cluster.poll_timeout;
        for peer in self.setup.peers.clone() {
            let client = client.clone();
            let token = self.setup.token.clone();
            ctx.spawn(async move {
                let outcome =
                    tokio::time::timeout(timeout, poll_peer(&client, &peer, token, timeout))
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!(
                                "GET {}/status did not answer within {}",
                                peer.api_url,
                                humantime::format_duration(timeout)
                            ))
                        });
                PeerPolled {
                    node: peer.name,
                    outcome,
                }
            });
        }
    }

    fn log_view_changes(&self, changes: Vec<ViewChange>) {
        for change in changes {
            match change {
                ViewChange::Left { node, after, error } => tracing::warn!(
                    peer = %node,
                    after_s = after.as_secs(),
                    error = %error.unwrap_or_default(),
                    "peer not heard from; it leaves the cluster view and gets no games until it answers again"
                ),
                ViewChange::Rejoined { node } => {
                    tracing::info!(peer = %node, "peer answers again; back in the cluster view and the plan")
                }
            }
        }
        let metrics = resource_metrics();
        let report = self.view.report(Instant::now());
        let in_view = report.iter().filter(|p| p.in_view).count() as i64;
        metrics
            .cluster_nodes
            .with_label_values(&["in_view"])
            .set(in_view);
        metrics
            .cluster_nodes
            .with_label_values(&["left"])
            .set(report.len() as i64 - in_view);
    }
}

impl Behavior for ResourceOptimizer {
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        tracing::info!(
            interval = %humantime::format_duration(self.setup.config.interval),
            roots = self.setup.roots.len(),
            peers = self.setup.peers.len(),
            "resource optimizer started"
        );
        // Until the first round has measured the disks, no new work starts (also after a restart of this actor).
        self.setup
            .gate
            .pause(format!("resources: {}", ResourcePolicy::FIRST_ROUND_REASON));
        self.start_round(ctx);
        ctx.every(self.setup.config.interval, || SampleDue);
    }
}

impl Handles<SampleDue> for ResourceOptimizer {
    fn handle(&mut self, _msg: &SampleDue, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        self.start_round(ctx);
        let changes = self.view.tick(Instant::now());
        self.log_view_changes(changes);
        Ok(())
    }
}

impl Handles<Sampled> for ResourceOptimizer {
    fn handle(&mut self, msg: &Sampled, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        self.round_in_flight = false;
        let now = Instant::now();
        let actions = self.policy.observe(now, msg.observation.clone());
        let metrics = resource_metrics();
        metrics.samples.inc();
        metrics.sample_cpu_seconds.set(msg.sample_cpu_seconds);
        self.apply(actions, now);
        self.poll_peers(ctx);
        ctx.progress();
        Ok(())
    }
}

impl Handles<PeerPolled> for ResourceOptimizer {
    fn handle(&mut self, msg: &PeerPolled, _ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        let now = Instant::now();
        let changes = match &msg.outcome {
            Ok(figures) => self.view.heard(&msg.node, figures.clone(), now),
            Err(error) => {
                tracing::debug!(peer = %msg.node, %error, "peer status poll failed");
                self.view.failed(&msg.node, error.clone(), now)
            }
        };
        self.log_view_changes(changes);
        Ok(())
    }
}

impl Handles<ResourcesStatus> for ResourceOptimizer {
    fn handle(
        &mut self,
        _msg: &ResourcesStatus,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<ResourcesStatusReport, HandlerError> {
        let now = Instant::now();
        Ok(ResourcesStatusReport {
            report: self.policy.report(now),
            cluster: self.view.report(now),
        })
    }
}

/// CPU time this thread has used (s).
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// One OS sample off the actor's thread, within `timeout`; (sample, its CPU time in s).
async fn os_sample(
    sampler: Arc<Mutex<OsSampler>>,
    roots: Vec<PathBuf>,
    timeout: Duration,
) -> (Sample, f64) {
    let task_roots = roots.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut guard = match sampler.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return (
                    Sample::failed(
                        &task_roots,
                        "the previous OS sample is still stuck (a hung mount?)",
                    ),
                    0.0,
                )
            }
        };
        let before = thread_cpu_seconds();
        let sample = guard.sample(&task_roots);
        (sample, (thread_cpu_seconds() - before).max(0.0))
    });
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(done)) => done,
        Ok(Err(error)) => (
            Sample::failed(&roots, &format!("the OS sample failed: {error}")),
            0.0,
        ),
        Err(_) => (
            Sample::failed(
                &roots,
                &format!(
                    "no OS sample within {} (a hung mount?)",
                    humantime::format_duration(timeout)
                ),
            ),
            0.0,
        ),
    }
}

/// Jobs the scheduler runs on `node` now; `None` when it does not answer.
async fn running_jobs(
    scheduler: Option<ActorRef<SchedulerActor>>,
    node: String,
    timeout: Duration,
) -> Option<u32> {
    let jobs = scheduler?.ask(GetJobs, timeout).await.ok()?;
    Some(jobs.table.nodes.get(&node).map_or(0, |n| n.running))
}

/// A peer's figures from its `/status` (`resources.figures`).
async fn poll_peer(
    client: &awc::Client,
    peer: &PeerEndpoint,
    token: Option<String>,
    timeout: Duration,
) -> Result<NodeFigures, String> {
    let url = format!("{}/status", peer.api_url.trim_end_matches('/'));
    let mut request = client.get(url.as_str()).timeout(timeout);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| format!("GET {url} failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    let body = response
        .body()
        .limit(STATUS_BODY_LIMIT)
        .await
        .map_err(|e| format!("GET {url}: reading the body failed: {e}"))?;
    figures_from_status(&body).map_err(|e| format!("GET {url}: {e}"))
}

/// A node's figures from the body of its `/status` (`resources.figures`).
pub fn figures_from_status(body: &[u8]) -> Result<NodeFigures, String> {
    let status: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let figures = status
        .get("resources")
        .and_then(|r| r.get("figures"))
        .ok_or_else(|| "no resources.figures (is its resource optimizer on?)".to_string())?;
    serde_json::from_value(figures.clone())
        .map_err(|e| format!("resources.figures unreadable: {e}"))
}

fn log_notice(notice: Notice) {
    match notice {
        Notice::Paused { reason } => tracing::warn!(
            %reason,
            "disk or memory pressure: new selfplay jobs and sync pulls are paused until every reading is below its warning threshold; nothing is deleted"
        ),
        Notice::Resumed => {
            tracing::info!(
                "pressure is below the warning thresholds; new jobs and sync pulls resume"
            )
        }
        Notice::Warning { reason } => tracing::warn!(
            %reason,
            "resources near their limit; new work pauses if they reach critical"
        ),
        Notice::GpuFailed {
            error,
            last_good_age,
        } => tracing::warn!(
            %error,
            last_good_age_s = last_good_age.map_or(-1, |d| d.as_secs() as i64),
            "GPU query failed; steering on the last good reading until it answers again"
        ),
        Notice::GpuRecovered => tracing::info!("GPU query answers again"),
        Notice::CpuOnly { command } => {
            tracing::info!(%command, "GPU query command not on PATH; treating this node as CPU-only")
        }
        Notice::TargetChanged { from, to, reason } => {
            tracing::info!(from, to, %reason, "job target changed")
        }
        Notice::GpuMismatch { warning } => {
            tracing::warn!(%warning, "configured GPU model differs from the measured one; the configured one is used")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_status_body_gives_its_figures_or_says_what_is_wrong() {
        let figures = ResourcePolicy::new(
            ResourcesConfig::default(),
            TargetJobsPolicy::default(),
            "peer",
            2,
        )
        .figures();
        let body = serde_json::json!({ "node": "peer", "resources": { "figures": figures } });
        assert_eq!(
            figures_from_status(body.to_string().as_bytes()),
            Ok(figures)
        );
        let cases: [(&[u8], &str); 3] = [
            (b"<html>", "not JSON"),
            (
                br#"{"resources": {"enabled": false}}"#,
                "no resources.figures",
            ),
            (br#"{"resources": {"figures": {"node": 3}}}"#, "unreadable"),
        ];
        for (body, expected) in cases {
            let error = figures_from_status(body).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn a_sample_still_stuck_makes_the_next_one_fail_fast_as_unreadable() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sampler = Arc::new(Mutex::new(OsSampler::new()));
        let roots = vec![PathBuf::from("/")];
        let held = sampler.clone();
        let guard = held.lock().unwrap();
        let (sample, cpu) = runtime.block_on(os_sample(
            sampler.clone(),
            roots.clone(),
            Duration::from_secs(10),
        ));
        assert_eq!(cpu, 0.0);
        assert_eq!(sample.disks[0].used_percent, None);
        assert!(sample.disks[0]
            .error
            .as_deref()
            .unwrap()
            .contains("still stuck"));
        drop(guard);
        let (sample, cpu) = runtime.block_on(os_sample(sampler, roots, Duration::from_secs(10)));
        assert!(sample.disks[0].used_percent.is_some(), "{sample:?}");
        assert!(cpu >= 0.0);
    }
}
