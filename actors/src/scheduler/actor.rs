//! The selfplay scheduler actor: a thin shell around the pure policy (`plan.rs`), the job-making rules
//! (`dispatch.rs`) and the job table (`jobs::tracker`).
//!
//! It plans from its per-config state (games played, time since the last selfplay) and the cluster's nodes, then
//! keeps every node at its target concurrency with jobs of at most `max_games_per_job` games until the node's share
//! of the plan is played ([`PlanProgress`]). It replans when the whole plan is played, or on the `interval` timer
//! when a node with free slots has nothing left in a plan at least one interval old ([`replan_due`]). Every plan
//! gets its own correlation id: the `replanned` line, each job's start and end, and the executors' lines carry it.
//! Jobs run through the executors (a local child process, or SSH to a peer) as tokio tasks on this actor's thread,
//! so they keep running while the actor stops gracefully; their outcome comes back as [`JobFinished`]. A failed job
//! is retried by the table's rules, then stored as a dead letter ([`RunJob`], replayable). Concurrency per node
//! follows the resource optimizer's [`CapacityUpdate`].
//! No job starts while its [`PressureGate`] is closed, and the resource optimizer's [`ClusterFigures`] give the
//! plan each node's measured load and take out peers that fell silent or are under pressure.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use tracing::Instrument;

use super::availability::{Change, NodeAvailability, NodeAvailabilitySnapshot};
use super::board::ConfigKey;
use super::config::PriorityWeights;
use super::dispatch::{
    replan_due, JobEnd, JobRequest, NodeProgress, NodeSlots, PlanProgress, ReplanCheck,
    ReplanReason,
};
use super::history::{self, ConfigHistory, SchedulerState};
use super::jobs_health::{jobs_check, AttemptEnd, RecentAttempts, CHECK_NAME};
use super::plan::{plan_input, ConfigInput, PlanInput, PlanNodeState, PlanOutput};
use super::settings::SchedulerConfig;
use super::weights::{cluster_signals, dynamic_weights, ClusterLoad, ClusterSignals};
use crate::jobs::executor::{Executors, Placement};
use crate::jobs::outcome::{JobOutcome, JobStatus};
use crate::jobs::spec::JobSpec;
use crate::jobs::tracker::{Decision, JobTracker, JobsSnapshot, TrackerLimits};
use crate::pressure::PressureGate;
use crate::resources::cluster::ClusterFigures;
use crate::runtime::health::HealthBoard;
use crate::runtime::ids::{self, CorrelationId, MessageMeta};
use crate::runtime::{Behavior, Ctx, HandlerError, Handles, Message};

/// A node the scheduler may place jobs on.
mod handover;
pub use handover::{
    AcceptJob, Accepted, ClusterRoleReport, ListHandedOver, LookupJob, SchedulerRole, WithdrawJob,
};
use handover::{HandedOverBook, Reconcile, Reconciliation};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerNode {
    pub name: String,
    /// The node's control API (`cluster.nodes[].api_url`): the planner hands its jobs to that daemon.
    pub api_url: Option<String>,
    pub gpu: String,
    pub gpu_memory_gb: Option<f64>,
    pub ephemeral: bool,
    /// `user@host` of a peer without `api_url`: its jobs run over SSH.
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

/// Timer: recompute the dynamic priority weights from the cluster state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshWeights;
impl Message for RefreshWeights {
    type Reply = ();
    const NAME: &'static str = "RefreshWeights";
}

/// Timer: a node's out period ended; plan it again (on trial).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewNodes;
impl Message for ReviewNodes {
    type Reply = ();
    const NAME: &'static str = "ReviewNodes";
}

/// Timer, while the pressure gate is closed: has it opened?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecheckPressure;
impl Message for RecheckPressure {
    type Reply = ();
    const NAME: &'static str = "RecheckPressure";
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
    /// Per node: available, out of the plan (and for how long) or on trial.
    pub nodes: BTreeMap<String, NodeAvailabilitySnapshot>,
    /// The priority weights the plans use: dynamic, recomputed every `policy.dynamic_weights.interval`.
    pub weights: PriorityWeights,
    /// The cluster state they were computed from, and when.
    pub weights_from: Option<WeightsSource>,
    /// The spawn-rate multiplier the current plan was made with (the planned nodes' negotiated rate over the
    /// rate asked; below 1 it thinned the games per config), `None` before any node reported figures.
    pub spawn_rate_multiplier: Option<f64>,
}

/// What the dynamic weights were computed from.
#[derive(Debug, Clone, Serialize)]
pub struct WeightsSource {
    /// When (RFC 3339).
    pub at: String,
    /// The signals.
    pub cluster: ClusterSignals,
}
impl Message for GetPlan {
    type Reply = PlanReport;
    const NAME: &'static str = "GetPlan";
}

/// Query: the job table and the plan's progress (`GET /jobs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetJobs;
impl Message for GetJobs {
    type Reply = JobsReport;
    const NAME: &'static str = "GetJobs";
}

/// Answer to [`GetJobs`]: the job table's fields, and how far the current plan is played.
#[derive(Debug, Clone, Serialize)]
pub struct JobsReport {
    /// Nodes, queued, running and finished jobs.
    #[serde(flatten)]
    pub table: JobsSnapshot,
    /// The plan being played, per node.
    pub plan_progress: Option<PlanProgressReport>,
    /// The plan before it (its late jobs still count there).
    pub previous_plan_progress: Option<PlanProgressReport>,
    /// Why no new job starts, while the pressure gate is closed (running jobs continue).
    pub paused: Option<String>,
}

/// Query: the scheduler's part of `/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchedulerStatus;
impl Message for SchedulerStatus {
    type Reply = SchedulerSummary;
    const NAME: &'static str = "SchedulerStatus";
}

/// Answer to [`SchedulerStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct SchedulerSummary {
    /// Plans made since start.
    pub plans: u64,
    /// Jobs running and queued now.
    pub running: usize,
    /// Jobs waiting (for room or a retry backoff).
    pub queued: usize,
    /// The plan being played: planned, played and running per node.
    pub plan_progress: Option<PlanProgressReport>,
    /// Who plans, and when a worker last heard from the planner.
    pub cluster: ClusterRoleReport,
    /// Per node: available, out of the plan (and for how long) or on trial.
    pub nodes: BTreeMap<String, NodeAvailabilitySnapshot>,
    /// Why no new job starts, while the pressure gate is closed (running jobs continue).
    pub paused: Option<String>,
    /// The spawn-rate multiplier of the current plan (see [`PlanReport::spawn_rate_multiplier`]).
    pub spawn_rate_multiplier: Option<f64>,
}

/// How far one plan is played.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanProgressReport {
    /// The plan's sequence number (`plans` in `/plan` counts them).
    pub plan: u64,
    /// The plan's correlation id (its log lines carry it).
    pub correlation_id: String,
    /// Why it was made.
    pub reason: ReplanReason,
    /// Games the plan gave out.
    pub planned: u64,
    /// Games played so far.
    pub played: u64,
    /// Per node: planned, assigned (in jobs), played, and jobs running now.
    pub nodes: BTreeMap<String, NodeProgressReport>,
}

/// One node's part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeProgressReport {
    /// Games planned, in jobs, played.
    #[serde(flatten)]
    pub games: NodeProgress,
    /// Jobs running on the node now (of any plan).
    pub running: u32,
}

/// The counts found at start: the state file merged with the games on disk (see `history.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountsLoaded {
    /// Per config, the merged history.
    pub configs: BTreeMap<ConfigKey, ConfigHistory>,
    /// Game files counted on disk.
    pub files: u64,
    /// Files or directories that could not be read (counted 0).
    pub unreadable: Vec<String>,
    /// Why the state file could not be used, if it could not.
    pub state_error: Option<String>,
}
impl Message for CountsLoaded {
    type Reply = ();
    const NAME: &'static str = "CountsLoaded";
}

#[derive(Debug, Clone, Default)]
struct ConfigProgress {
    games: u64,
    last_selfplay: Option<SystemTime>,
}

/// One plan and where it stands.
struct CurrentPlan {
    at: SystemTime,
    made: Instant,
    correlation: CorrelationId,
    reason: ReplanReason,
    output: PlanOutput,
    progress: PlanProgress,
    /// The spawn-rate multiplier it was made with.
    spawn_rate_multiplier: Option<f64>,
}

/// Which plan made a job (jobs replayed from dead letters have none).
#[derive(Debug, Clone, Copy)]
struct JobOrigin {
    plan: u64,
    correlation: CorrelationId,
}

/// The scheduler actor. See the module doc.
pub struct SchedulerActor {
    config: SchedulerConfig,
    nodes: Vec<SchedulerNode>,
    executors: Executors,
    tracker: JobTracker,
    progress: BTreeMap<ConfigKey, ConfigProgress>,
    current: Option<CurrentPlan>,
    previous: Option<CurrentPlan>,
    origins: HashMap<String, JobOrigin>,
    plans: u64,
    next_job: u64,
    counts_loaded: bool,
    availability: NodeAvailability,
    recent: RecentAttempts,
    weights: PriorityWeights,
    weights_from: Option<(SystemTime, ClusterSignals)>,
    health: HealthBoard,
    pressure: PressureGate,
    /// The gate was seen closed (so its change is logged once).
    paused_seen: bool,
    /// A [`RecheckPressure`] is on its way (one at a time).
    recheck_pending: bool,
    tasks: HashMap<String, tokio::task::JoinHandle<()>>,
    cancel: Arc<Notify>,
    on_new_games: NewGamesHook,
    /// Jobs started by a replayed dead letter: job id → letter id, whose outcome is reported when the job ends.
    replays: HashMap<String, i64>,
    /// Whether this node plans for the cluster or runs what the planner hands it.
    role: SchedulerRole,
    /// When the planner last handed over or asked about a job (workers).
    planner_heard: Option<Instant>,
    /// Jobs the planner handed over since start (workers).
    jobs_received: u64,
    /// This node's name (empty until [`Self::with_role`]: then the local entry of `nodes`).
    this_node: String,
    /// The resource optimizer's cluster view (load, GPU memory, peers out of the plan).
    cluster: ClusterFigures,
    /// What the planner handed this node, until the planner has seen each end (workers).
    handed_over: HandedOverBook,
    /// The planner's questions to its workers at start (planner).
    reconciliation: Reconciliation,
}

impl SchedulerActor {
    /// `health`: where the `jobs` check is published; `pressure`: while it is paused no new job starts.
    pub fn new(
        config: SchedulerConfig,
        nodes: Vec<SchedulerNode>,
        self_exe: PathBuf,
        on_new_games: NewGamesHook,
        health: HealthBoard,
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
            current: None,
            previous: None,
            origins: HashMap::new(),
            plans: 0,
            next_job: 0,
            counts_loaded: false,
            availability: NodeAvailability::new(config.node_availability.clone()),
            recent: RecentAttempts::default(),
            weights: config.policy.priority.weights,
            weights_from: None,
            health,
            pressure,
            paused_seen: false,
            recheck_pending: false,
            tasks: HashMap::new(),
            cancel: Arc::new(Notify::new()),
            on_new_games,
            replays: HashMap::new(),
            role: SchedulerRole::Planner,
            planner_heard: None,
            jobs_received: 0,
            this_node: String::new(),
            cluster: ClusterFigures::default(),
            handed_over: HandedOverBook::new(config.jobs.history_limit.saturating_mul(4)),
            reconciliation: Reconciliation::new(Vec::new()),
            nodes,
            config,
        }
    }

    /// Sets who plans (default: this node plans for every node it was given) and this node's name (a planner
    /// need not be one of the nodes it schedules). Hand-overs to peers' daemons carry `token` when set.
    pub fn with_role(
        mut self,
        role: SchedulerRole,
        this_node: &str,
        token: Option<String>,
    ) -> Self {
        self.executors = self.executors.clone().with_dispatch(this_node, token);
        self.this_node = this_node.to_string();
        self.role = role;
        self
    }

    fn plan_input(&self, wall_now: SystemTime) -> PlanInput {
        let configs = self
            .progress
            .iter()
            .map(|(key, p)| ConfigInput {
                cluster_game_count: p.games,
                staleness_hours: p.last_selfplay.map(|t| {
                    wall_now
                        .duration_since(t)
                        .unwrap_or(Duration::ZERO)
                        .as_secs_f64()
                        / 3600.0
                }),
                ..ConfigInput::neutral(*key, p.games)
            })
            .collect();
        let now = Instant::now();
        let nodes: Vec<PlanNodeState> = self
            .nodes
            .iter()
            .filter(|n| !self.availability.is_out(&n.name, now))
            .map(|n| {
                let target = self.tracker.target(&n.name).max(1) as f64;
                PlanNodeState {
                    name: n.name.clone(),
                    // `gpu: unknown` takes the model the node's nvidia-smi reports (its optimizer warns on a
                    // mismatch with an explicit one).
                    gpu: self
                        .config
                        .policy
                        .gpus
                        .choose(&n.gpu, self.cluster.gpu_name_of(&n.name))
                        .model,
                    gpu_memory_gb: n.gpu_memory_gb.or(self.cluster.gpu_memory_gb_of(&n.name)),
                    load: self
                        .cluster
                        .load_of(&n.name)
                        .unwrap_or((self.tracker.running_on(&n.name) as f64 / target).min(1.0)),
                    ephemeral: Some(n.ephemeral),
                    healthy: !self.cluster.leaves_plan(&n.name),
                    data_lag_seconds: 0.0,
                    cost_per_hour: None,
                    rate_multiplier: self.cluster.rate_multiplier_of(&n.name),
                }
            })
            .collect();
        let spawn_rate_multiplier = self
            .cluster
            .spawn_rate_multiplier(nodes.iter().filter(|n| n.healthy).map(|n| n.name.as_str()));
        PlanInput {
            games_per_config: None,
            cluster_health: None,
            node_cap_scope: None,
            configs,
            nodes,
            memory_constrained: false,
            backpressure_paused: false,
            spawn_rate_multiplier,
            weights: self.weights,
        }
    }

    /// Replaces the plan when [`replan_due`] says so, then fills every node's free slots and starts what may start.
    /// Nothing is planned before the counts are loaded (the first plan follows [`CountsLoaded`]).
    fn step(&mut self, ctx: &mut Ctx<'_, Self>, on_timer: bool) {
        self.step_with(ctx, on_timer, None);
    }

    /// [`Self::step`], replanning for `force` whatever [`replan_due`] says.
    fn step_with(&mut self, ctx: &mut Ctx<'_, Self>, on_timer: bool, force: Option<ReplanReason>) {
        if !self.role.plans() {
            // A worker makes no plan: it only starts what the planner handed it as room frees up.
            self.launch_ready(ctx);
            return;
        }
        let now = Instant::now();
        if !self.counts_loaded || !self.reconciliation.may_plan() {
            // The first plan waits for the counts and for one round of questions to the workers.
            self.launch_ready(ctx);
            return;
        }
        let free = self.nodes_with_free_slots();
        let due = force.or_else(|| {
            replan_due(&ReplanCheck {
                progress: self.current.as_ref().map(|c| &c.progress),
                plan_age: self
                    .current
                    .as_ref()
                    .map_or(Duration::ZERO, |c| now.saturating_duration_since(c.made)),
                interval: self.config.interval,
                on_timer,
                nodes_with_free_slots: &free,
            })
        });
        if let Some(reason) = due {
            self.replan(reason, now);
        }
        self.fill_slots(now);
        self.launch_ready(ctx);
    }

    /// Writes the per-config counts to the state file (a failure is a warning: the counts live on in memory).
    fn save_counts(&self) {
        let state = SchedulerState {
            version: history::STATE_VERSION,
            configs: self
                .progress
                .iter()
                .map(|(k, p)| {
                    let h = ConfigHistory {
                        games: p.games,
                        last_selfplay_unix_ms: p.last_selfplay.map(history::unix_ms),
                    };
                    (*k, h)
                })
                .collect(),
        };
        if let Err(error) = history::save(&self.config.state_file, &state) {
            tracing::warn!(%error, "game counts not saved; they are kept in memory and saved after the next job");
        }
    }

    fn free_slots(&self, node: &str) -> u32 {
        self.tracker
            .target(node)
            .saturating_sub(self.tracker.running_on(node) + self.tracker.queued_on(node))
    }

    fn nodes_with_free_slots(&self) -> Vec<String> {
        let now = Instant::now();
        self.nodes
            .iter()
            .filter(|n| !self.availability.is_out(&n.name, now) && self.free_slots(&n.name) > 0)
            .map(|n| n.name.clone())
            .collect()
    }

    fn replan(&mut self, reason: ReplanReason, now: Instant) {
        let correlation = CorrelationId::new();
        let span = tracing::info_span!("plan", correlation_id = correlation.hex().as_str());
        let _entered = span.enter();
        let input = self.plan_input(SystemTime::now());
        let output = plan_input(&input, &self.config.policy);
        self.plans += 1;
        let progress = PlanProgress::from_plan(self.plans, &output);
        if let Some(old) = &self.current {
            let (planned, played) = old.progress.totals();
            if planned > played {
                tracing::info!(
                    old_plan = old.progress.seq,
                    planned,
                    played,
                    "plan replaced before it was played; its running jobs finish and count there"
                );
            }
        }
        tracing::info!(
            plan = self.plans,
            reason = reason.as_str(),
            total_games = output.total_games,
            configs = output.allocation.0.len(),
            spawn_rate_multiplier = input.spawn_rate_multiplier.unwrap_or(1.0),
            "replanned"
        );
        let next = CurrentPlan {
            at: SystemTime::now(),
            made: now,
            correlation,
            reason,
            output,
            progress,
            spawn_rate_multiplier: input.spawn_rate_multiplier,
        };
        self.previous = self.current.replace(next);
    }

    /// Makes the jobs that bring every node up to its target concurrency (within the current plan); none while the
    /// pressure gate is closed.
    fn fill_slots(&mut self, now: Instant) {
        if self.pressure.is_paused() {
            return;
        }
        let slots: Vec<NodeSlots> = self
            .nodes
            .iter()
            .filter(|n| !self.availability.is_out(&n.name, now))
            .map(|n| NodeSlots {
                node: n.name.clone(),
                free: self.free_slots(&n.name),
            })
            .filter(|s| s.free > 0)
            .collect();
        let max_games = self.config.max_games_per_job;
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let correlation = current.correlation;
        let requests = current.progress.next_jobs(&slots, max_games);
        for request in requests {
            let spec = self.job_spec(&request);
            let id = spec.id.clone();
            let (config, node, games) = (request.config, request.node.clone(), request.games);
            match self.tracker.enqueue(spec, now) {
                Ok(()) => {
                    self.origins.insert(
                        id,
                        JobOrigin {
                            plan: request.plan,
                            correlation,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "job not queued; its games go back to the plan");
                    if let Some(current) = self.current.as_mut() {
                        current.progress.job_ended(
                            config,
                            &node,
                            u64::from(games),
                            JobEnd::Returned,
                        );
                    }
                }
            }
        }
    }

    /// Logs one line for an availability change; a node that went out loses its queued jobs (their games go back
    /// to the plan) and a review is timed for the end of its out period. Returns true when the plan should change.
    fn availability_changed(&mut self, change: Change, ctx: &mut Ctx<'_, Self>) -> bool {
        match change {
            Change::WentOut {
                node,
                out_for,
                outages,
            } => {
                let dropped = self.drop_queued_on(&node);
                tracing::warn!(%node, failures = self.config.node_availability.failures, outages, out_for = %humantime::format_duration(out_for), dropped_jobs = dropped,
                    "node out of the plan after failed jobs; its queued jobs are dropped and its games replanned; back on trial after out_for");
                ctx.send_later(out_for + Duration::from_millis(10), ReviewNodes);
            }
            Change::OnTrial { node } => {
                tracing::info!(%node, "node back in the plan on trial; its next job decides");
            }
            Change::Back { node } => {
                tracing::info!(%node, "node available again after a job succeeded");
            }
        }
        true
    }

    /// Drops the queued jobs of `node` (retries waiting included), giving their games back to their plans.
    fn drop_queued_on(&mut self, node: &str) -> usize {
        let dropped = self.tracker.cancel_queued_on(node);
        for spec in &dropped {
            if let Some(origin) = self.origins.remove(&spec.id) {
                self.count_in_plan(origin, spec, JobEnd::Returned);
            }
        }
        dropped.len()
    }

    /// Counts a plan job's end in the plan that made it (current or previous).
    fn count_in_plan(&mut self, origin: JobOrigin, spec: &JobSpec, end: JobEnd) {
        let Ok(config) = spec.config_key.parse::<ConfigKey>() else {
            return;
        };
        for plan in [self.current.as_mut(), self.previous.as_mut()]
            .into_iter()
            .flatten()
        {
            if plan.progress.seq == origin.plan {
                plan.progress
                    .job_ended(config, &spec.node, u64::from(spec.games), end);
            }
        }
    }

    fn job_spec(&mut self, request: &JobRequest) -> JobSpec {
        self.next_job += 1;
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let config = request.config;
        let node = &request.node;
        let id = format!("{config}-{node}-{stamp}-{}", self.next_job);
        let jobs = &self.config.jobs;
        JobSpec {
            output: jobs.output_path(&config.to_string(), &id),
            id,
            config_key: config.to_string(),
            board: config.board.name().to_string(),
            players: config.players,
            games: request.games,
            budget: request.budget,
            max_moves: jobs.max_moves_for(config.board.is_large()),
            think_time_ms: jobs.think_time_ms(),
            randomness: jobs.randomness,
            seed: fastrand::u64(..),
            node: node.to_string(),
        }
    }

    /// Recomputes the dynamic weights from the cluster state: the share of available nodes running no job, and the
    /// configs' Elos (the fallback Elo: no Elo reaches this daemon yet). No training queue reaches it either (0).
    fn refresh_weights(&mut self) {
        let now = Instant::now();
        let available: Vec<&SchedulerNode> = self
            .nodes
            .iter()
            .filter(|n| !self.availability.is_out(&n.name, now))
            .collect();
        let idle = available
            .iter()
            .filter(|n| self.tracker.running_on(&n.name) == 0)
            .count();
        let load = ClusterLoad {
            idle_gpu_fraction: idle as f64 / available.len().max(1) as f64,
            training_queue_depth: 0,
        };
        let p = &self.config.policy.priority;
        let elos = vec![p.elo.fallback_elo; self.progress.len()];
        let signals = cluster_signals(load, &elos, p.elo.target_elo);
        self.weights = dynamic_weights(&p.weights, &signals, &self.config.policy.dynamic_weights);
        self.weights_from = Some((SystemTime::now(), signals));
        tracing::debug!(
            idle_gpu_fraction = signals.idle_gpu_fraction,
            staleness = self.weights.staleness,
            "priority weights recomputed"
        );
    }

    /// Sets the `jobs` check on the health board.
    fn publish_health(&self) {
        let now = Instant::now();
        let out: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| self.availability.is_out(&n.name, now))
            .map(|n| n.name.clone())
            .collect();
        self.health.set(
            CHECK_NAME,
            jobs_check(&self.recent, &out, &self.config.jobs_health),
        );
    }

    fn availability_snapshot(&self) -> BTreeMap<String, NodeAvailabilitySnapshot> {
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        self.availability.snapshot(&names, Instant::now())
    }

    fn progress_report(&self, plan: &CurrentPlan) -> PlanProgressReport {
        let (planned, played) = plan.progress.totals();
        PlanProgressReport {
            plan: plan.progress.seq,
            correlation_id: plan.correlation.hex().as_str().to_string(),
            reason: plan.reason,
            planned,
            played,
            nodes: plan
                .progress
                .by_node()
                .into_iter()
                .map(|(node, games)| {
                    let running = self.tracker.running_on(&node);
                    (node, NodeProgressReport { games, running })
                })
                .collect(),
        }
    }

    fn placement(&self, node: &str) -> Option<Placement> {
        let n = self.nodes.iter().find(|n| n.name == node)?;
        Placement::for_node(n.local, n.api_url.as_deref(), n.ssh.as_deref())
    }

    /// Starts every job whose node has room, each as a task whose outcome comes back as `JobFinished`.
    /// `coordinator_jobs_running{node}` from the job table, for every node this scheduler runs jobs on.
    fn publish_running(&self) {
        let running = &super::metrics::job_metrics().running;
        for node in &self.nodes {
            running
                .with_label_values(&[&node.name])
                .set(i64::from(self.tracker.running_on(&node.name)));
        }
    }

    fn launch_ready(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.launch_ready_inner(ctx);
        self.publish_running();
    }

    fn launch_ready_inner(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = Instant::now();
        if self.pressure.is_paused() {
            if !self.paused_seen {
                self.paused_seen = true;
                let reason = self.pressure.reason().unwrap_or_default();
                tracing::warn!(%reason, running = self.tasks.len(), "pressure gate closed: no new selfplay job starts until it opens; running jobs continue");
            }
            if !self.recheck_pending {
                self.recheck_pending = true;
                ctx.send_later(self.config.pressure_recheck, RecheckPressure);
            }
            return;
        }
        if self.paused_seen {
            self.paused_seen = false;
            tracing::info!("pressure gate open again: selfplay jobs start");
            // Jobs were not made while it was closed: fill the slots now.
            self.fill_slots(now);
        }
        for launch in self.tracker.start_ready(now) {
            let spec = launch.spec;
            let Some(placement) = self.placement(&spec.node) else {
                tracing::warn!(job = %spec.id, node = %spec.node, "node is not this node and lists neither api_url nor ssh in cluster.nodes; job failed");
                let outcome = JobOutcome {
                    job_id: spec.id.clone(),
                    node: spec.node.clone(),
                    status: crate::jobs::outcome::JobStatus::Failed {
                        reason: format!(
                            "node {} is not this node and lists neither api_url nor ssh",
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
            // The job's lines (here, in the executor, and its JobFinished) carry the correlation id of the plan
            // that made it; a replayed job keeps the replay's.
            let origin = self.origins.get(&spec.id).copied();
            let correlation = origin
                .map(|o| o.correlation)
                .or_else(|| ctx.meta().map(|m| m.correlation_id))
                .unwrap_or_default();
            // A root span: the job outlives the message that started it.
            let span = tracing::info_span!(
                parent: None,
                "job",
                job = spec.id.as_str(),
                plan = origin.map_or(0, |o| o.plan),
                correlation_id = correlation.hex().as_str()
            );
            span.in_scope(|| {
                tracing::info!(config = %spec.config_key, node = %spec.node, games = spec.games, attempt = launch.attempt, "starting selfplay job");
            });
            let executors = self.executors.clone();
            let me = ctx.myself();
            let cancel = self.cancel.clone();
            let id = spec.id.clone();
            let _meta = ids::enter(MessageMeta::with_correlation(correlation), None);
            let task = ids::WithMeta::capture(
                async move {
                    let outcome = executors
                        .run_until(&spec, &placement, async move { cancel.notified().await })
                        .await;
                    if let Err(e) = me.tell(JobFinished { outcome }) {
                        tracing::warn!(error = %e, job = %spec.id, "job outcome not delivered; stored as a dead letter");
                    }
                }
                .instrument(span),
            );
            self.tasks.insert(id, actix_rt::spawn(task));
        }
        // Only a backoff still running needs a timer; jobs waiting for room start when a job ends.
        if let Some(at) = self.tracker.next_retry_at().filter(|at| *at > now) {
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
        self.publish_health();
        for node in &self.nodes {
            tracing::debug!(node = %node.name, target = self.tracker.target(&node.name), "job target");
        }
        // Count what is already there before the first plan (blocking file reads, off this thread).
        let state_file = self.config.state_file.clone();
        let games_root = self.config.jobs.output_dir.clone();
        ctx.spawn(async move {
            let scan = tokio::task::spawn_blocking(move || {
                let (state, state_error) = match history::load(&state_file) {
                    Ok(state) => (state, None),
                    Err(e) => (None, Some(e.to_string())),
                };
                let scan = history::scan_games_root(&games_root);
                CountsLoaded {
                    configs: history::merge(state.as_ref(), &scan.games),
                    files: scan.files,
                    unreadable: scan.unreadable,
                    state_error,
                }
            });
            scan.await.unwrap_or_else(|e| CountsLoaded {
                configs: BTreeMap::new(),
                files: 0,
                unreadable: Vec::new(),
                state_error: Some(format!("counting the games on disk failed: {e}")),
            })
        });
        // A planner first asks its workers what they already hold from it (a restart loses nothing it handed out).
        self.reconciliation = Reconciliation::new(self.daemon_workers());
        if self.reconciliation.pending() {
            self.ask_workers(ctx);
            ctx.every(self.config.jobs.dispatch.reconcile_every, || Reconcile);
        }
        ctx.every(self.config.interval, || Replan);
        ctx.every(self.config.policy.dynamic_weights.interval, || {
            RefreshWeights
        });
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
        self.step(ctx, true);
        ctx.progress();
        Ok(())
    }
}

impl Handles<RefreshWeights> for SchedulerActor {
    fn handle(
        &mut self,
        _msg: &RefreshWeights,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        self.refresh_weights();
        ctx.progress();
        Ok(())
    }
}

impl Handles<ReviewNodes> for SchedulerActor {
    fn handle(&mut self, _msg: &ReviewNodes, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        let changes = self.availability.review(Instant::now());
        let replan = !changes.is_empty();
        for change in changes {
            self.availability_changed(change, ctx);
        }
        self.publish_health();
        self.step_with(ctx, false, replan.then_some(ReplanReason::NodesChanged));
        Ok(())
    }
}

impl Handles<RecheckPressure> for SchedulerActor {
    fn handle(
        &mut self,
        _msg: &RecheckPressure,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        self.recheck_pending = false;
        self.launch_ready(ctx);
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
        let job_id = spec.id.clone();
        self.tracker
            .enqueue(spec, Instant::now())
            .map_err(|e| HandlerError::fail(e.to_string()))?;
        if let Some(letter) = ctx.replay_of() {
            // A replay succeeds only when the job does: its outcome goes back to the same letter.
            self.replays.insert(job_id, letter);
        }
        self.launch_ready(ctx);
        Ok(())
    }
}

impl Handles<JobFinished> for SchedulerActor {
    fn handle(&mut self, msg: &JobFinished, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        let outcome = &msg.outcome;
        self.tasks.remove(&outcome.job_id);
        let now = Instant::now();
        let metrics = super::metrics::job_metrics();
        metrics
            .finished
            .with_label_values(&[
                &outcome.node,
                super::metrics::outcome_label(&outcome.status),
            ])
            .inc();
        let origin = self.origins.get(&outcome.job_id).copied();
        let decision = self.tracker.finish(outcome, now);
        self.publish_running();
        let change = match &outcome.status {
            JobStatus::Succeeded { .. } => self.availability.job_succeeded(&outcome.node, now),
            JobStatus::Failed { .. } | JobStatus::TimedOut { .. } => {
                self.availability.job_failed(&outcome.node, now)
            }
            JobStatus::Cancelled => None,
        };
        let node_out = self.availability.is_out(&outcome.node, now);
        let failure = match &outcome.status {
            JobStatus::Succeeded { .. } => Some(None),
            JobStatus::Failed { reason, .. } => Some(Some(reason.clone())),
            JobStatus::TimedOut { after, .. } => Some(Some(format!(
                "timed out after {}",
                humantime::format_duration(*after)
            ))),
            JobStatus::Cancelled => None,
        };
        if let Some(failure) = failure {
            self.recent.push(
                AttemptEnd {
                    node: outcome.node.clone(),
                    failure,
                },
                self.config.jobs_health.window,
            );
        }
        let end = match &decision {
            Ok(Decision::Succeeded {
                spec,
                games_written,
            }) => Some((spec, JobEnd::Played(*games_written))),
            Ok(Decision::GiveUp { spec, .. } | Decision::Cancelled { spec }) => {
                Some((spec, JobEnd::Returned))
            }
            _ => None,
        };
        if let Some((spec, end)) = end {
            if let Some(origin) = self.origins.remove(&spec.id) {
                self.count_in_plan(origin, spec, end);
            }
        }
        match decision {
            Ok(Decision::Succeeded {
                spec,
                games_written,
            }) => {
                tracing::info!(job = %spec.id, plan = origin.map_or(0, |o| o.plan), config = %spec.config_key, games_written, "selfplay job finished");
                metrics
                    .games
                    .with_label_values(&[&spec.config_key])
                    .inc_by(games_written);
                if let Some(letter) = self.replays.remove(&spec.id) {
                    ctx.replay_outcome(letter, Ok(()));
                }
                if let Ok(key) = spec.config_key.parse::<ConfigKey>() {
                    let p = self.progress.entry(key).or_default();
                    p.games += games_written;
                    p.last_selfplay = Some(SystemTime::now());
                    self.save_counts();
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
                tracing::warn!(job = %outcome.job_id, reason = %crate::jobs::tracker::summary(&outcome.status), next_attempt, retry_in_ms = after.as_millis() as u64, "selfplay job failed; retrying after backoff");
            }
            Ok(Decision::GiveUp {
                spec,
                attempts,
                last,
            }) => {
                let error = format!(
                    "job failed {attempts} times; last: {}",
                    crate::jobs::tracker::summary(&last)
                );
                if let Some(letter) = self.replays.remove(&spec.id) {
                    tracing::error!(job = %spec.id, %error, letter, "replayed selfplay job gave up; its dead letter counts one more failed replay");
                    ctx.replay_outcome(letter, Err(error));
                } else if node_out {
                    // One warning for the node (below), not a dead letter per job: its games are replanned.
                    tracing::info!(job = %spec.id, node = %spec.node, attempts, "selfplay job gave up on a node out of the plan; its games are replanned");
                } else {
                    tracing::error!(job = %spec.id, %error, "selfplay job gave up; stored as a dead letter (replay re-runs it)");
                    ctx.dead_letter(&RunJob { spec }, &error);
                }
            }
            Ok(Decision::Cancelled { spec }) => {
                // A cancelled replayed job reports nothing: its letter is replayed again after its deadline.
                self.replays.remove(&spec.id);
                tracing::info!(job = %spec.id, "selfplay job cancelled")
            }
            Err(e) => {
                tracing::warn!(error = %e, "job outcome does not match the job table; ignored")
            }
        }
        let replan = match change {
            Some(change) => self.availability_changed(change, ctx),
            None => {
                if node_out {
                    // A retry of a job that ran while the node went out.
                    self.drop_queued_on(&outcome.node);
                }
                false
            }
        };
        self.publish_health();
        self.step_with(ctx, false, replan.then_some(ReplanReason::NodesChanged));
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
        self.step(ctx, false);
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
        self.save_counts();
        Ok(())
    }
}

impl Handles<CountsLoaded> for SchedulerActor {
    fn handle(&mut self, msg: &CountsLoaded, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        if let Some(error) = &msg.state_error {
            tracing::warn!(%error, "scheduler state file not used; counts start from the games on disk");
        }
        for line in &msg.unreadable {
            tracing::warn!(problem = %line, "games file not counted; it counts 0 games");
        }
        for (config, h) in &msg.configs {
            let p = self.progress.entry(*config).or_default();
            p.games = p.games.max(h.games);
            p.last_selfplay = p.last_selfplay.max(h.last_selfplay());
        }
        let total: u64 = self.progress.values().map(|p| p.games).sum();
        tracing::info!(
            games = total,
            files = msg.files,
            unreadable = msg.unreadable.len(),
            "game counts loaded"
        );
        self.counts_loaded = true;
        self.save_counts();
        self.refresh_weights();
        self.step(ctx, false);
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
                .current
                .as_ref()
                .map(|c| humantime::format_rfc3339_millis(c.at).to_string()),
            plans: self.plans,
            game_counts: self
                .progress
                .iter()
                .map(|(k, p)| (k.to_string(), p.games))
                .collect(),
            plan: self.current.as_ref().map(|c| c.output.clone()),
            nodes: self.availability_snapshot(),
            weights: self.weights,
            weights_from: self.weights_from.map(|(at, cluster)| WeightsSource {
                at: humantime::format_rfc3339_millis(at).to_string(),
                cluster,
            }),
            spawn_rate_multiplier: self.current.as_ref().and_then(|c| c.spawn_rate_multiplier),
        })
    }
}

impl Handles<SchedulerStatus> for SchedulerActor {
    fn handle(
        &mut self,
        _msg: &SchedulerStatus,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<SchedulerSummary, HandlerError> {
        let table = self.tracker.snapshot(Instant::now());
        Ok(SchedulerSummary {
            plans: self.plans,
            running: table.running.len(),
            queued: table.queued.len(),
            plan_progress: self.current.as_ref().map(|c| self.progress_report(c)),
            cluster: self.role_report(Instant::now()),
            nodes: self.availability_snapshot(),
            paused: self.pressure.reason(),
            spawn_rate_multiplier: self.current.as_ref().and_then(|c| c.spawn_rate_multiplier),
        })
    }
}

impl Handles<GetJobs> for SchedulerActor {
    fn handle(
        &mut self,
        _msg: &GetJobs,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<JobsReport, HandlerError> {
        Ok(JobsReport {
            table: self.tracker.snapshot(Instant::now()),
            plan_progress: self.current.as_ref().map(|c| self.progress_report(c)),
            previous_plan_progress: self.previous.as_ref().map(|c| self.progress_report(c)),
            paused: self.pressure.reason(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{start_unsupervised, ChildOptions, DeadLetterSink, HealthStatus};

    /// A scheduler on one local node whose job command writes `{games}` JSON lines to `{output}` after a short
    /// sleep, with its files under `dir`.
    const WRITES_GAMES: &[&str] = &[
        "sh",
        "-c",
        r#"sleep 0.3; mkdir -p "$(dirname "$1")"; i=0; while [ $i -lt "$2" ]; do echo '{{}}'; i=$((i+1)); done > "$1""#,
        "job",
        "{output}",
        "{games}",
    ];

    fn scheduler(
        dir: &std::path::Path,
        health: HealthBoard,
        gate: PressureGate,
        command: &[&str],
    ) -> SchedulerActor {
        let mut config = SchedulerConfig {
            interval: Duration::from_secs(1),
            max_games_per_job: 50,
            state_file: dir.join("state/scheduler.json"),
            pressure_recheck: Duration::from_millis(50),
            configs: vec!["hex8_2p".parse().unwrap()],
            ..SchedulerConfig::default()
        };
        config.jobs.output_dir = dir.join("games");
        config.jobs.logs_dir = dir.join("logs");
        config.jobs.command = command.iter().map(|s| s.to_string()).collect();
        let node = SchedulerNode {
            name: "local".into(),
            api_url: None,
            gpu: "unknown".into(),
            gpu_memory_gb: None,
            ephemeral: false,
            ssh: None,
            local: true,
        };
        SchedulerActor::new(
            config,
            vec![node],
            PathBuf::from("unused"),
            Arc::new(|_| {}),
            health,
            gate,
        )
    }

    async fn jobs_until(
        actor: &crate::runtime::ActorRef<SchedulerActor>,
        what: &str,
        cond: impl Fn(&JobsReport) -> bool,
    ) -> JobsReport {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let report = actor
                .ask(GetJobs, Duration::from_secs(5))
                .await
                .expect("GetJobs");
            if cond(&report) {
                return report;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[actix_rt::test]
    async fn a_closed_pressure_gate_starts_no_job_and_running_jobs_continue() {
        let dir = tempfile::tempdir().unwrap();
        let health = HealthBoard::new();
        let gate = PressureGate::new();
        let sink = DeadLetterSink::new();
        let (root, board, g) = (dir.path().to_path_buf(), health.clone(), gate.clone());
        let actor = start_unsupervised("scheduler", ChildOptions::default(), &sink, move || {
            scheduler(&root, board.clone(), g.clone(), WRITES_GAMES)
        });
        // Two jobs running (the default target), then the gate closes: they finish, nothing new starts.
        jobs_until(&actor, "two running jobs", |r| r.table.running.len() == 2).await;
        gate.pause("disk /data at 96% (critical 95%)");
        let paused = jobs_until(&actor, "the running jobs to finish", |r| {
            r.table.running.is_empty() && r.table.history.len() == 2
        })
        .await;
        assert_eq!(
            paused.paused.as_deref(),
            Some("disk /data at 96% (critical 95%)")
        );
        assert!(paused.table.history.iter().all(|j| j.status.is_success()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let still = actor.ask(GetJobs, Duration::from_secs(5)).await.unwrap();
        assert!(still.table.running.is_empty(), "no job starts while paused");
        assert_eq!(still.table.history.len(), 2);
        let summary = actor
            .ask(SchedulerStatus, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(summary.paused.is_some());
        // Open again: jobs start within a recheck.
        gate.resume();
        let resumed = jobs_until(&actor, "jobs after the gate opened", |r| {
            !r.table.running.is_empty() || r.table.history.len() > 2
        })
        .await;
        assert_eq!(resumed.paused, None);
        let check = health.get(CHECK_NAME).expect("jobs check published");
        assert_eq!(check.status, HealthStatus::Ok, "{check:?}");
        assert!(check.detail.contains("succeeded"), "{check:?}");
    }

    #[actix_rt::test]
    async fn failing_jobs_turn_the_jobs_check_degraded_with_a_detail() {
        let dir = tempfile::tempdir().unwrap();
        let health = HealthBoard::new();
        let sink = DeadLetterSink::new();
        let (root, board) = (dir.path().to_path_buf(), health.clone());
        let actor = start_unsupervised("scheduler", ChildOptions::default(), &sink, move || {
            let fails = ["sh", "-c", "echo broken >&2; exit 3"];
            scheduler(&root, board.clone(), PressureGate::new(), &fails)
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let check = loop {
            if let Some(check) = health.get(CHECK_NAME) {
                if check.status != HealthStatus::Ok {
                    break check;
                }
            }
            assert!(Instant::now() < deadline, "jobs check stayed ok");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(check.status, HealthStatus::Degraded);
        assert!(check.detail.contains("job attempts failed"), "{check:?}");
        assert!(check.detail.contains("exited"), "{check:?}");
        drop(actor);
    }
}
