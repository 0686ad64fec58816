//! The selfplay scheduler actor: a thin shell around the pure policy (`plan.rs`) and the job table
//! (`jobs::tracker`).
//!
//! Every `interval` (and at start) it turns its per-config state (games played, time since the last selfplay)
//! and the cluster's nodes into a plan, and each (config, node) share of the allocation into at most one waiting
//! job of at most `max_games_per_job` games. Jobs run through the executors (a local child process, or SSH to a
//! peer) as tokio tasks on this actor's thread, so they keep running while the actor stops gracefully; their
//! outcome comes back as [`JobFinished`]. A failed job is retried by the table's rules, then stored as a dead
//! letter ([`RunJob`], replayable). Concurrency per node follows the resource optimizer's [`CapacityUpdate`];
//! no job starts while its [`PressureGate`] is closed, and its [`ClusterFigures`] give the plan each node's
//! measured load and take out peers that fell silent or are under pressure.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::board::ConfigKey;
use super::plan::{plan, PlanConfigState, PlanNodeState, PlanOutput, PlanState};
use super::settings::SchedulerConfig;
use crate::jobs::executor::{Executors, Placement};
use crate::jobs::outcome::JobOutcome;
use crate::jobs::spec::JobSpec;
use crate::jobs::tracker::{Decision, JobTracker, JobsSnapshot, TrackerLimits};
use crate::pressure::PressureGate;
use crate::resources::cluster::ClusterFigures;
use crate::runtime::{Behavior, Ctx, HandlerError, Handles, Message};

/// A node the scheduler may place jobs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerNode {
    pub name: String,
    pub gpu: String,
    pub gpu_memory_gb: Option<f64>,
    pub ephemeral: bool,
    /// `None`: this node (local processes); `Some(user@host)`: a peer over SSH.
    pub ssh: Option<String>,
    pub local: bool,
}

/// Announced when a job wrote games (for the sync coordinator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewGames {
    pub config: String,
    pub node: String,
    pub games: u64,
    pub path: PathBuf,
}

/// Where `NewGames` go (the daemon routes them to the sync coordinator).
pub type NewGamesHook = Arc<dyn Fn(NewGames) + Send + Sync>;

/// Timer tick: replan and queue jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replan;
impl Message for Replan {
    type Reply = ();
    const NAME: &'static str = "Replan";
}

/// Start jobs whose turn has come (after a retry backoff).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchDue;
impl Message for LaunchDue {
    type Reply = ();
    const NAME: &'static str = "LaunchDue";
}

/// Run this job (also how a job's dead letter is replayed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunJob {
    pub spec: JobSpec,
}
impl Message for RunJob {
    type Reply = ();
    const NAME: &'static str = "RunJob";
}

/// A job ended (from the job's task).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobFinished {
    pub outcome: JobOutcome,
}
impl Message for JobFinished {
    type Reply = ();
    const NAME: &'static str = "JobFinished";
}

/// How many jobs each node should run (from the resource optimizer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityUpdate {
    pub targets: Vec<(String, u32)>,
}
impl Message for CapacityUpdate {
    type Reply = ();
    const NAME: &'static str = "CapacityUpdate";
}

/// Games that arrived from elsewhere (sync), counted towards their config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewGamesAvailable {
    pub config: ConfigKey,
    pub games: u64,
}
impl Message for NewGamesAvailable {
    type Reply = ();
    const NAME: &'static str = "NewGamesAvailable";
}

/// Query: the last plan and the per-config counters (`GET /plan`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetPlan;
/// Answer to [`GetPlan`].
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub planned_at: Option<String>,
    pub plans: u64,
    pub game_counts: BTreeMap<String, u64>,
    pub plan: Option<PlanOutput>,
}
impl Message for GetPlan {
    type Reply = PlanReport;
    const NAME: &'static str = "GetPlan";
}

/// Query: the job table (`GET /jobs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetJobs;
impl Message for GetJobs {
    type Reply = JobsSnapshot;
    const NAME: &'static str = "GetJobs";
}

#[derive(Debug, Clone, Default)]
struct ConfigProgress {
    games: u64,
    last_selfplay: Option<Instant>,
}

/// The scheduler actor. See the module doc.
pub struct SchedulerActor {
    config: SchedulerConfig,
    nodes: Vec<SchedulerNode>,
    executors: Executors,
    tracker: JobTracker,
    progress: BTreeMap<ConfigKey, ConfigProgress>,
    last_plan: Option<(SystemTime, PlanOutput)>,
    plans: u64,
    next_job: u64,
    tasks: HashMap<String, tokio::task::JoinHandle<()>>,
    cancel: Arc<Notify>,
    on_new_games: NewGamesHook,
    /// Closed by the resource optimizer under disk/memory pressure: no job starts while it is.
    pressure: PressureGate,
    /// The resource optimizer's cluster view (load, GPU memory, peers out of the plan).
    cluster: ClusterFigures,
}

impl SchedulerActor {
    pub fn new(
        config: SchedulerConfig,
        nodes: Vec<SchedulerNode>,
        self_exe: PathBuf,
        on_new_games: NewGamesHook,
        pressure: PressureGate,
    ) -> Self {
        let jobs = Arc::new(config.jobs.clone());
        let tracker = JobTracker::new(TrackerLimits::from(&config.jobs));
        let progress = config
            .configs
            .iter()
            .map(|c| (*c, ConfigProgress::default()))
            .collect();
        SchedulerActor {
            executors: Executors::new(jobs, self_exe),
            tracker,
            progress,
            last_plan: None,
            plans: 0,
            next_job: 0,
            tasks: HashMap::new(),
            cancel: Arc::new(Notify::new()),
            on_new_games,
            pressure,
            cluster: ClusterFigures::default(),
            nodes,
            config,
        }
    }

    fn plan_state(&self, now: Instant) -> PlanState {
        let configs = self
            .progress
            .iter()
            .map(|(key, p)| PlanConfigState {
                config: *key,
                game_count: p.games,
                cluster_game_count: p.games,
                elo: None,
                elo_velocity_per_day: 0.0,
                elo_velocity_per_hour: 0.0,
                staleness_hours: p
                    .last_selfplay
                    .map(|t| now.saturating_duration_since(t).as_secs_f64() / 3600.0),
                curriculum_weight: 1.0,
                exploration_boost: 1.0,
                training_pending: false,
                quality: None,
                improvement_boost: 0.0,
                momentum: 1.0,
                diversity: 0.0,
                intensity: "normal".to_string(),
                score: None,
            })
            .collect();
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                let target = self.tracker.target(&n.name).max(1) as f64;
                PlanNodeState {
                    name: n.name.clone(),
                    gpu: n.gpu.clone(),
                    gpu_memory_gb: n.gpu_memory_gb.or(self.cluster.gpu_memory_gb_of(&n.name)),
                    load: self
                        .cluster
                        .load_of(&n.name)
                        .unwrap_or((self.tracker.running_on(&n.name) as f64 / target).min(1.0)),
                    ephemeral: Some(n.ephemeral),
                    healthy: !self.cluster.leaves_plan(&n.name),
                    data_lag_seconds: 0.0,
                    cost_per_hour: None,
                }
            })
            .collect();
        PlanState {
            games_per_config: None,
            cluster_health: None,
            node_cap_scope: None,
            configs,
            nodes,
            memory_constrained: false,
            backpressure_paused: false,
            spawn_rate_multiplier: None,
        }
    }

    /// Turns the plan into jobs: one waiting job per (config, node) share, bounded per node.
    fn enqueue_from_plan(&mut self, output: &PlanOutput, now: Instant) {
        let budgets: HashMap<ConfigKey, u32> = output
            .priorities
            .iter()
            .map(|p| (p.config, p.budget))
            .collect();
        let busy: std::collections::HashSet<(String, String)> = self.outstanding_pairs();
        for (config, shares) in &output.allocation.0 {
            for (node, games) in shares {
                if *games == 0 || busy.contains(&(config.to_string(), node.clone())) {
                    continue;
                }
                if self.tracker.queued_on(node) >= self.config.max_queued_per_node {
                    continue;
                }
                let games = (*games).min(u64::from(self.config.max_games_per_job)) as u32;
                let spec = self.job_spec(
                    *config,
                    node,
                    games,
                    budgets.get(config).copied().unwrap_or(800),
                );
                if let Err(e) = self.tracker.enqueue(spec, now) {
                    tracing::warn!(error = %e, "job not queued; the next replan tries again");
                }
            }
        }
    }

    fn outstanding_pairs(&self) -> std::collections::HashSet<(String, String)> {
        let snapshot = self.tracker.snapshot(Instant::now());
        let queued = snapshot
            .queued
            .iter()
            .map(|q| (q.config_key.clone(), q.node.clone()));
        let running = snapshot
            .running
            .iter()
            .map(|r| (r.config_key.clone(), r.node.clone()));
        queued.chain(running).collect()
    }

    fn job_spec(&mut self, config: ConfigKey, node: &str, games: u32, budget: u32) -> JobSpec {
        self.next_job += 1;
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let id = format!("{config}-{node}-{stamp}-{}", self.next_job);
        let jobs = &self.config.jobs;
        JobSpec {
            output: jobs.output_path(&config.to_string(), &id),
            id,
            config_key: config.to_string(),
            board: config.board.name().to_string(),
            players: config.players,
            games,
            budget,
            max_moves: jobs.max_moves_for(config.board.is_large()),
            think_time_ms: jobs.think_time_ms(),
            randomness: jobs.randomness,
            seed: fastrand::u64(..),
            node: node.to_string(),
        }
    }

    fn placement(&self, node: &str) -> Option<Placement> {
        let n = self.nodes.iter().find(|n| n.name == node)?;
        if n.local {
            Some(Placement::Local)
        } else {
            n.ssh
                .clone()
                .map(|destination| Placement::Ssh { destination })
        }
    }

    /// Starts every job whose node has room, each as a task whose outcome comes back as `JobFinished`.
    fn launch_ready(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(reason) = self.pressure.reason() {
            tracing::debug!(%reason, "no job starts while the pressure gate is closed");
            return;
        }
        let now = Instant::now();
        for launch in self.tracker.start_ready(now) {
            let spec = launch.spec;
            let Some(placement) = self.placement(&spec.node) else {
                tracing::warn!(job = %spec.id, node = %spec.node, "node is neither this node nor reachable over SSH (cluster.nodes[].ssh); job failed");
                let outcome = JobOutcome {
                    job_id: spec.id.clone(),
                    node: spec.node.clone(),
                    status: crate::jobs::outcome::JobStatus::Failed {
                        reason: format!(
                            "node {} has no ssh destination and is not this node",
                            spec.node
                        ),
                        exit: None,
                        stderr_tail: String::new(),
                    },
                    duration: Duration::ZERO,
                };
                let _ = ctx.myself().tell(JobFinished { outcome });
                continue;
            };
            tracing::info!(job = %spec.id, config = %spec.config_key, node = %spec.node, games = spec.games, attempt = launch.attempt, "starting selfplay job");
            let executors = self.executors.clone();
            let me = ctx.myself();
            let cancel = self.cancel.clone();
            let id = spec.id.clone();
            let task = crate::runtime::ids::WithMeta::capture(async move {
                let outcome = executors
                    .run_until(&spec, &placement, async move { cancel.notified().await })
                    .await;
                if let Err(e) = me.tell(JobFinished { outcome }) {
                    tracing::warn!(error = %e, job = %spec.id, "job outcome not delivered; stored as a dead letter");
                }
            });
            self.tasks.insert(id, actix_rt::spawn(task));
        }
        if let Some(at) = self.tracker.next_retry_at() {
            ctx.send_later(
                at.saturating_duration_since(now) + Duration::from_millis(10),
                LaunchDue,
            );
        }
    }
}

impl Drop for SchedulerActor {
    fn drop(&mut self) {
        // A crash drops the state: its job tasks are aborted (their guards kill the job process groups).
        for (_, task) in self.tasks.drain() {
            task.abort();
        }
    }
}

impl Behavior for SchedulerActor {
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        for node in &self.nodes {
            tracing::debug!(node = %node.name, target = self.tracker.target(&node.name), "job target");
        }
        ctx.send_later(Duration::from_millis(200), Replan);
        ctx.every(self.config.interval, || Replan);
    }

    /// Graceful stop: running jobs get SIGTERM, then SIGKILL after the grace period; waits for them.
    fn stopping(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Option<futures::future::LocalBoxFuture<'static, ()>> {
        if self.tasks.is_empty() {
            return None;
        }
        tracing::info!(running = self.tasks.len(), "stopping running selfplay jobs");
        self.cancel.notify_waiters();
        let tasks: Vec<_> = self.tasks.drain().map(|(_, t)| t).collect();
        Some(Box::pin(async move {
            for task in tasks {
                let _ = task.await;
            }
        }))
    }
}

impl Handles<Replan> for SchedulerActor {
    fn handle(&mut self, _msg: &Replan, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        let now = Instant::now();
        let output = plan(&self.plan_state(now), &self.config.policy);
        self.plans += 1;
        tracing::info!(
            total_games = output.total_games,
            configs = output.allocation.0.len(),
            "replanned"
        );
        self.enqueue_from_plan(&output, now);
        self.last_plan = Some((SystemTime::now(), output));
        self.launch_ready(ctx);
        ctx.progress();
        Ok(())
    }
}

impl Handles<LaunchDue> for SchedulerActor {
    fn handle(&mut self, _msg: &LaunchDue, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        self.launch_ready(ctx);
        Ok(())
    }
}

impl Handles<RunJob> for SchedulerActor {
    fn handle(&mut self, msg: &RunJob, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        let mut spec = msg.spec.clone();
        if self.tracker.contains(&spec.id) {
            return Err(HandlerError::fail(format!(
                "job {} is already queued or running",
                spec.id
            )));
        }
        if self.placement(&spec.node).is_none() {
            spec.node = self
                .nodes
                .iter()
                .find(|n| n.local)
                .map(|n| n.name.clone())
                .unwrap_or(spec.node);
        }
        self.tracker
            .enqueue(spec, Instant::now())
            .map_err(|e| HandlerError::fail(e.to_string()))?;
        self.launch_ready(ctx);
        Ok(())
    }
}

impl Handles<JobFinished> for SchedulerActor {
    fn handle(&mut self, msg: &JobFinished, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        let outcome = &msg.outcome;
        self.tasks.remove(&outcome.job_id);
        let now = Instant::now();
        match self.tracker.finish(outcome, now) {
            Ok(Decision::Succeeded {
                spec,
                games_written,
            }) => {
                tracing::info!(job = %spec.id, config = %spec.config_key, games_written, "selfplay job finished");
                if let Ok(key) = spec.config_key.parse::<ConfigKey>() {
                    let p = self.progress.entry(key).or_default();
                    p.games += games_written;
                    p.last_selfplay = Some(now);
                }
                (self.on_new_games)(NewGames {
                    config: spec.config_key.clone(),
                    node: spec.node.clone(),
                    games: games_written,
                    path: spec.output.clone(),
                });
            }
            Ok(Decision::Retry {
                next_attempt,
                after,
            }) => {
                tracing::warn!(job = %outcome.job_id, status = ?outcome.status, next_attempt, retry_in = ?after, "selfplay job failed; retrying after backoff");
            }
            Ok(Decision::GiveUp {
                spec,
                attempts,
                last,
            }) => {
                let error = format!("job failed {attempts} times; last: {last:?}");
                tracing::error!(job = %spec.id, %error, "selfplay job gave up; stored as a dead letter (replay re-runs it)");
                ctx.dead_letter(&RunJob { spec }, &error);
            }
            Ok(Decision::Cancelled { spec }) => {
                tracing::info!(job = %spec.id, "selfplay job cancelled")
            }
            Err(e) => {
                tracing::warn!(error = %e, "job outcome does not match the job table; ignored")
            }
        }
        self.launch_ready(ctx);
        ctx.progress();
        Ok(())
    }
}

impl Handles<CapacityUpdate> for SchedulerActor {
    fn handle(
        &mut self,
        msg: &CapacityUpdate,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        for (node, jobs) in &msg.targets {
            if self.tracker.target(node) != *jobs {
                tracing::info!(%node, jobs, "job target updated by the resource optimizer");
            }
            self.tracker.set_target(node, *jobs);
        }
        self.launch_ready(ctx);
        Ok(())
    }
}

impl Handles<ClusterFigures> for SchedulerActor {
    fn handle(
        &mut self,
        msg: &ClusterFigures,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        self.cluster = msg.clone();
        Ok(())
    }
}

impl Handles<NewGamesAvailable> for SchedulerActor {
    fn handle(
        &mut self,
        msg: &NewGamesAvailable,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        self.progress.entry(msg.config).or_default().games += msg.games;
        Ok(())
    }
}

impl Handles<GetPlan> for SchedulerActor {
    fn handle(
        &mut self,
        _msg: &GetPlan,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<PlanReport, HandlerError> {
        Ok(PlanReport {
            planned_at: self
                .last_plan
                .as_ref()
                .map(|(t, _)| humantime::format_rfc3339_millis(*t).to_string()),
            plans: self.plans,
            game_counts: self
                .progress
                .iter()
                .map(|(k, p)| (k.to_string(), p.games))
                .collect(),
            plan: self.last_plan.as_ref().map(|(_, p)| p.clone()),
        })
    }
}

impl Handles<GetJobs> for SchedulerActor {
    fn handle(
        &mut self,
        _msg: &GetJobs,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<JobsSnapshot, HandlerError> {
        Ok(self.tracker.snapshot(Instant::now()))
    }
}
