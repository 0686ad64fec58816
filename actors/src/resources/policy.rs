//! The optimizer's decisions as pure code: the job controller, the pressure gate's state, the GPU reading kept
//! through failures, rate negotiation. No actix, no I/O, no clock: [`ResourcePolicy::observe`] takes `now` and one
//! round of measurements and answers with [`Action`]s for the actor shell to carry out.
//!
//! **Controller: a band with hysteresis, not the original's PID.** Its input is one utilization, the GPU's when
//! the node has GPUs and the CPU's otherwise ("GPU before CPU"); its output is a whole number of jobs, and each
//! job moves utilization by a large step (5-20 points on the nodes we run). A PID's continuous output quantized to
//! whole jobs hunts around the setpoint (with kp 0.5 one job more or less is always "the right correction"), and
//! its integral winds up while jobs are still starting. The band instead does nothing inside 60-80 %, so noise
//! never moves it; it acts at once past the scale thresholds (up to +2 jobs per interval below 55 %, −1 above
//! 85 %), and between a band edge and its threshold it makes a one-job correction only after `rebalance_after`
//! samples in a row. Of the upward steps that fit (below), it takes the one its estimate lands nearest the
//! optimum (`optimum_percent`, 70 %). It never makes a step that its own estimate (utilization per running job) says would land past the far
//! edge of the band, and a step of several jobs or one that reverses the previous step must land
//! `landing_margin_percent` inside it, so noise cannot bounce it across the band; an overloaded node (above 85 %, or GPU memory
//! critical, or CPU above 85 % on a GPU node) always steps down. The target is kept within 1 and the node's
//! hardware cap (the scheduler's per-node target jobs table) and never runs more than two jobs ahead of the jobs
//! actually running (no wind-up while the scheduler has nothing to start).
//!
//! **Pressure.** Disk use of any watched directory at `disk_critical_percent` (or unreadable), or memory at
//! `memory_critical_percent`, pauses new selfplay jobs and sync pulls; the pause holds until every reading is
//! below its warning threshold (hysteresis between warning and critical). Nothing is deleted.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cluster::NodeFigures;
use super::config::{BandConfig, RateConfig, ResourcesConfig};
use super::gpu::{GpuInfo, GpuProbe, GpuSummary};
use super::sample::Sample;
use crate::runtime::health::{HealthCheck, HealthStatus};
use crate::scheduler::config::{GpuChoice, GpuModelSource, GpuTable, TargetJobsPolicy};
use crate::scheduler::target_jobs::{target_jobs, JobConditions, NodeResources};

/// Games per hour this node can take when `requested` is asked for, at `utilization` % and GPU memory use
/// `gpu_memory` % (domain: request 1000 → 1500 at 35 %, 760 at 92 %, 300 at GPU memory 95 %).
pub fn negotiate_rate(
    requested: f64,
    utilization: Option<f64>,
    gpu_memory: Option<f64>,
    band: &BandConfig,
    rate: &RateConfig,
) -> f64 {
    let mut granted = requested;
    if let Some(u) = utilization {
        if u < band.low_percent {
            granted *= rate
                .max_boost
                .min(1.0 + (band.low_percent - u) / rate.slope_percent);
        } else if u > band.high_percent {
            granted *= rate
                .min_factor
                .max(1.0 - (u - band.high_percent) / rate.slope_percent);
        }
    }
    match gpu_memory {
        Some(m) if m > band.gpu_memory_critical_percent => {
            granted *= rate.gpu_memory_critical_factor
        }
        Some(m) if m > band.gpu_memory_warning_percent => granted *= rate.gpu_memory_warning_factor,
        _ => {}
    }
    granted.clamp(rate.min_games_per_hour, rate.max_games_per_hour)
}

/// The node's spawn-rate multiplier: the rate it negotiates for the default request over that request
/// (1.5 at 35 %, 0.76 at 92 %, 0.3 with GPU memory at 95 %). The one home of the ratio the scheduler's plan
/// applies (`spawn_rate_multiplier`: below 1 it thins the games per config).
pub fn spawn_rate_multiplier(
    utilization: Option<f64>,
    gpu_memory: Option<f64>,
    band: &BandConfig,
    rate: &RateConfig,
) -> f64 {
    negotiate_rate(
        rate.default_games_per_hour,
        utilization,
        gpu_memory,
        band,
        rate,
    ) / rate.default_games_per_hour
}

/// Which way the controller moved the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Up,
    Down,
    Hold,
}

/// What the controller sees in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlInput {
    /// The utilization it steers (GPU's on a GPU node, else CPU's), %.
    pub utilization: Option<f64>,
    /// True when `utilization` is the GPU's.
    pub gpu_primary: bool,
    /// CPU %, which can veto adding jobs (and force one off) on a GPU node.
    pub cpu_percent: Option<f64>,
    /// GPU memory % (highest GPU).
    pub gpu_memory_percent: Option<f64>,
    /// Jobs running on the node now, when known.
    pub running: Option<u32>,
    /// The hardware cap (at least 1).
    pub cap: u32,
}

/// The controller's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlDecision {
    pub target: u32,
    pub change: Change,
    pub reason: String,
}

/// The band controller (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct BandController {
    target: u32,
    below: u32,
    above: u32,
    last_move: Change,
}

impl BandController {
    /// A controller starting at `initial` jobs (at least 1).
    pub fn new(initial: u32) -> BandController {
        BandController {
            target: initial.max(1),
            below: 0,
            above: 0,
            last_move: Change::Hold,
        }
    }

    pub fn target(&self) -> u32 {
        self.target
    }

    /// One round: the new target and why.
    pub fn step(&mut self, input: &ControlInput, band: &BandConfig) -> ControlDecision {
        let cap = input.cap.max(1);
        let running = input.running.unwrap_or(self.target);
        let (wanted, reason) = self.wanted(input, band, running);
        let target = wanted.clamp(1, cap);
        let reason = if target < wanted {
            format!("{reason}; held at the hardware cap of {cap}")
        } else {
            reason
        };
        let change = match target.cmp(&self.target) {
            std::cmp::Ordering::Greater => Change::Up,
            std::cmp::Ordering::Less => Change::Down,
            std::cmp::Ordering::Equal => Change::Hold,
        };
        self.target = target;
        if change != Change::Hold {
            self.last_move = change;
        }
        ControlDecision {
            target,
            change,
            reason,
        }
    }

    fn wanted(&mut self, input: &ControlInput, band: &BandConfig, running: u32) -> (u32, String) {
        let kind = if input.gpu_primary { "GPU" } else { "CPU" };
        let Some(u) = input.utilization else {
            self.below = 0;
            self.above = 0;
            return (
                self.target,
                format!("no {kind} utilization reading yet; holding"),
            );
        };
        // Utilization per running job: the controller's model of what one step does.
        let per_job = (running > 0).then(|| u / f64::from(running));
        // Where a step may land: inside the band; big steps and reversals well inside it.
        let last_move = self.last_move;
        let fits = |jobs: u32, up: bool| {
            let reversing = last_move == if up { Change::Down } else { Change::Up };
            let margin = if jobs > 1 || reversing {
                band.landing_margin_percent
            } else {
                0.0
            };
            match per_job {
                None => true,
                Some(e) if up => u + f64::from(jobs) * e <= band.high_percent - margin,
                Some(e) => u - f64::from(jobs) * e >= band.low_percent + margin,
            }
        };
        let down_from = self.target.min(running.max(1));
        let cpu_hot = input.gpu_primary
            && input
                .cpu_percent
                .is_some_and(|c| c > band.scale_down_above_percent);
        let gpu_memory_critical = input
            .gpu_memory_percent
            .is_some_and(|m| m > band.gpu_memory_critical_percent);
        if u > band.scale_down_above_percent || cpu_hot || gpu_memory_critical {
            self.below = 0;
            self.above = 0;
            let why = if u > band.scale_down_above_percent {
                format!(
                    "{kind} at {u:.0}% is above {}%",
                    band.scale_down_above_percent
                )
            } else if cpu_hot {
                format!(
                    "CPU at {:.0}% is above {}%",
                    input.cpu_percent.unwrap_or_default(),
                    band.scale_down_above_percent
                )
            } else {
                format!(
                    "GPU memory at {:.0}% is above {}%",
                    input.gpu_memory_percent.unwrap_or_default(),
                    band.gpu_memory_critical_percent
                )
            };
            return (
                down_from.saturating_sub(band.step_down),
                format!("{why}: {} job(s) fewer", band.step_down),
            );
        }
        let veto_up = if input
            .gpu_memory_percent
            .is_some_and(|m| m > band.gpu_memory_warning_percent)
        {
            Some(format!(
                "GPU memory above {}%: no job added",
                band.gpu_memory_warning_percent
            ))
        } else if input.gpu_primary && input.cpu_percent.is_some_and(|c| c > band.high_percent) {
            Some(format!("CPU above {}%: no job added", band.high_percent))
        } else {
            None
        };
        let up_to = |steps: u32| {
            // Never more than `steps` ahead of what runs: a target the scheduler does not fill is not raised.
            self.target
                .max(running.saturating_add(steps))
                .min(self.target.saturating_add(steps))
        };
        if u < band.scale_up_below_percent {
            self.below = 0;
            self.above = 0;
            if let Some(veto) = veto_up {
                return (self.target, format!("{kind} at {u:.0}% is low but {veto}"));
            }
            // Of the steps that fit, the one its estimate lands nearest the optimum (ties: the bigger step).
            let nearest = |a: &u32, b: &u32| {
                let off = |s: u32| {
                    per_job.map_or(0.0, |e| (u + f64::from(s) * e - band.optimum_percent).abs())
                };
                off(*a).total_cmp(&off(*b)).then(b.cmp(a))
            };
            let Some(steps) = (1..=band.step_up)
                .filter(|s| fits(*s, true))
                .min_by(nearest)
            else {
                return (
                    self.target,
                    format!("{kind} at {u:.0}% is low but one more job would overshoot the band"),
                );
            };
            return (
                up_to(steps),
                format!(
                    "{kind} at {u:.0}% is below {}%: up to {steps} job(s) more",
                    band.scale_up_below_percent
                ),
            );
        }
        if u > band.high_percent {
            self.below = 0;
            self.above += 1;
            if self.above < band.rebalance_after {
                return (
                    self.target,
                    format!(
                        "{kind} at {u:.0}% is above the band ({} of {} samples before a correction)",
                        self.above, band.rebalance_after
                    ),
                );
            }
            self.above = 0;
            if !fits(1, false) {
                return (
                    self.target,
                    format!(
                        "{kind} at {u:.0}% is above the band but one job fewer would undershoot it"
                    ),
                );
            }
            return (
                down_from.saturating_sub(1),
                format!("{kind} at {u:.0}% is above the band: one job fewer"),
            );
        }
        if u < band.low_percent {
            self.above = 0;
            self.below += 1;
            if self.below < band.rebalance_after {
                return (
                    self.target,
                    format!(
                        "{kind} at {u:.0}% is below the band ({} of {} samples before a correction)",
                        self.below, band.rebalance_after
                    ),
                );
            }
            self.below = 0;
            if let Some(veto) = veto_up {
                return (
                    self.target,
                    format!("{kind} at {u:.0}% is below the band but {veto}"),
                );
            }
            if !fits(1, true) {
                return (
                    self.target,
                    format!(
                        "{kind} at {u:.0}% is below the band but one more job would overshoot it"
                    ),
                );
            }
            return (
                up_to(1),
                format!("{kind} at {u:.0}% is below the band: one job more"),
            );
        }
        self.below = 0;
        self.above = 0;
        (
            self.target,
            format!(
                "{kind} at {u:.0}% is inside the band {}-{}%",
                band.low_percent, band.high_percent
            ),
        )
    }
}

/// How close the node is to running out of disk or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PressureLevel {
    Ok,
    Warning,
    Critical,
}

/// The pressure part of `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PressureReport {
    /// True while new selfplay jobs and sync pulls are held back.
    pub paused: bool,
    /// The worst reading's level.
    pub level: PressureLevel,
    /// Every reading at warning or worse, in words.
    pub reasons: Vec<String>,
}

/// The level of one round of readings and the reasons (each reading at warning or worse).
pub fn assess_pressure(sample: &Sample, config: &ResourcesConfig) -> (PressureLevel, Vec<String>) {
    let mut level = PressureLevel::Ok;
    let mut reasons = Vec::new();
    let mut note = |l: PressureLevel, reason: String| {
        level = level.max(l);
        reasons.push(reason);
    };
    for disk in &sample.disks {
        let path = disk.path.display();
        match disk.used_percent {
            None => note(
                PressureLevel::Critical,
                format!(
                    "disk of {path} unreadable ({}); counted as critical",
                    disk.error.as_deref().unwrap_or("no reading")
                ),
            ),
            Some(u) if u >= config.disk_critical_percent => note(
                PressureLevel::Critical,
                format!(
                    "disk of {path} at {u:.1}% (critical {}%)",
                    config.disk_critical_percent
                ),
            ),
            Some(u) if u >= config.disk_warning_percent => note(
                PressureLevel::Warning,
                format!(
                    "disk of {path} at {u:.1}% (warning {}%)",
                    config.disk_warning_percent
                ),
            ),
            Some(_) => {}
        }
    }
    match sample.memory_percent {
        Some(m) if m >= config.memory_critical_percent => note(
            PressureLevel::Critical,
            format!(
                "memory at {m:.1}% (critical {}%)",
                config.memory_critical_percent
            ),
        ),
        Some(m) if m >= config.memory_warning_percent => note(
            PressureLevel::Warning,
            format!(
                "memory at {m:.1}% (warning {}%)",
                config.memory_warning_percent
            ),
        ),
        _ => {}
    }
    (level, reasons)
}

/// Something to log, with the level the shell should use.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Warn: new work is paused.
    Paused { reason: String },
    /// Info: new work resumes.
    Resumed,
    /// Warn (once per incident): a reading reached its warning threshold.
    Warning { reason: String },
    /// Warn (once per incident): the GPU query failed; the last good reading is used.
    GpuFailed {
        error: String,
        last_good_age: Option<Duration>,
    },
    /// Info: the GPU query works again.
    GpuRecovered,
    /// Info (once): no GPU command on PATH; a CPU-only node.
    CpuOnly { command: String },
    /// Info: the job target changed.
    TargetChanged { from: u32, to: u32, reason: String },
    /// Warn (once per distinct mismatch): the configured GPU model differs from the measured one.
    GpuMismatch { warning: String },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Tell the scheduler how many jobs `node` should run.
    SetTarget { node: String, jobs: u32 },
    /// Close the pressure gate, saying why.
    Pause { reason: String },
    /// Open the pressure gate.
    Resume,
    /// Set the `resources` health check.
    Health(HealthCheck),
    /// Log this.
    Log(Notice),
}

/// One round of measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The OS sample.
    pub sample: Sample,
    /// The GPU query's outcome.
    pub gpu: GpuProbe,
    /// Jobs the scheduler runs on this node now, when it answered.
    pub running_jobs: Option<u32>,
}

/// The controller part of `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerReport {
    /// `band_with_hysteresis` (see docs/operations.md).
    pub kind: String,
    /// `gpu` or `cpu`: what it steers.
    pub steers: String,
    /// The job target sent to the scheduler.
    pub target_jobs: u32,
    /// The node's hardware cap (scheduler.policy.target_jobs).
    pub hardware_cap: u32,
    /// The last move.
    pub change: Change,
    /// Why.
    pub reason: String,
    /// Games per hour this node can take for the default request.
    pub rate_games_per_hour: f64,
    /// That rate over the default request: the spawn-rate multiplier the plan applies (below 1 it thins it).
    pub spawn_rate_multiplier: f64,
    /// Steered utilization minus the optimum (percentage points; negative below it).
    pub distance_to_optimum_percent: Option<f64>,
    /// The GPU model the hardware cap is taken from (a row of `scheduler.policy.gpus`, `unknown`, or the name
    /// as reported when no row fits).
    pub gpu_model: String,
    /// `configured` (`cluster.nodes[].gpu`), `measured` (nvidia-smi) or `unknown`.
    pub gpu_model_source: GpuModelSource,
}

/// The GPU part of `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuReport {
    /// `nvidia-smi`, `none` (CPU-only node), `last_good` (the query fails) or `pending`.
    pub source: String,
    /// The query's last error, while it fails.
    pub error: Option<String>,
    /// Age of the reading in use (s), when it is an old one.
    pub last_good_age_s: Option<f64>,
    /// The GPUs.
    pub gpus: Vec<GpuInfo>,
}

/// The optimizer's `/status` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourcesReport {
    /// What peers read (the cluster view's input).
    pub figures: NodeFigures,
    pub pressure: PressureReport,
    pub controller: ControllerReport,
    pub gpu: GpuReport,
    /// The last OS sample.
    pub sample: Option<Sample>,
    /// Seconds since the last sample.
    pub sample_age_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
enum GpuSource {
    Pending,
    None,
    Live,
    LastGood { error: String },
}

/// The optimizer's state (see the module doc).
#[derive(Debug)]
pub struct ResourcePolicy {
    config: ResourcesConfig,
    limits: TargetJobsPolicy,
    gpu_table: GpuTable,
    /// This node's `cluster.nodes[].gpu` (`unknown` when the config names none).
    configured_gpu: String,
    /// The last mismatch warned about (once per distinct mismatch).
    gpu_mismatch: Option<String>,
    node: String,
    controller: BandController,
    last: Option<ControlDecision>,
    cap: u32,
    paused: bool,
    /// No round seen yet: the gate is closed until the first one says the disks are fine.
    first: bool,
    level: PressureLevel,
    reasons: Vec<String>,
    warned: bool,
    gpu_source: GpuSource,
    gpus: Vec<GpuInfo>,
    gpu_read_at: Option<Instant>,
    sample: Option<(Instant, Sample)>,
    running: Option<u32>,
    health: Option<HealthCheck>,
}

impl ResourcePolicy {
    /// The policy for node `node`, starting at `initial_target` jobs, with the hardware table `limits`.
    pub fn new(
        config: ResourcesConfig,
        limits: TargetJobsPolicy,
        node: impl Into<String>,
        initial_target: u32,
    ) -> ResourcePolicy {
        ResourcePolicy {
            config,
            limits,
            gpu_table: GpuTable::default(),
            configured_gpu: "unknown".to_string(),
            gpu_mismatch: None,
            node: node.into(),
            controller: BandController::new(initial_target),
            last: None,
            cap: initial_target.max(1),
            paused: true,
            first: true,
            level: PressureLevel::Ok,
            reasons: Vec::new(),
            warned: false,
            gpu_source: GpuSource::Pending,
            gpus: Vec::new(),
            gpu_read_at: None,
            sample: None,
            running: None,
            health: None,
        }
    }

    /// The GPU model this node's config names (`unknown`: take the measured one) and the table that maps
    /// reported names to models ([`GpuTable::choose`]).
    pub fn with_gpu(mut self, configured: impl Into<String>, table: GpuTable) -> ResourcePolicy {
        self.configured_gpu = configured.into();
        self.gpu_table = table;
        self
    }

    /// The GPU model the hardware cap comes from (see [`GpuTable::choose`]).
    pub fn gpu_choice(&self) -> GpuChoice {
        let summary = GpuSummary::of(&self.gpus);
        self.gpu_table.choose(
            &self.configured_gpu,
            summary.as_ref().map(|g| g.name.as_str()),
        )
    }

    /// Why the gate is closed before the first round (the shell closes it with this at start).
    pub const FIRST_ROUND_REASON: &'static str =
        "waiting for the first measurement of disks and memory";

    /// True while the gate is closed.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// The job target.
    pub fn target(&self) -> u32 {
        self.controller.target()
    }

    /// One round: measurements in, actions out.
    pub fn observe(&mut self, now: Instant, observation: Observation) -> Vec<Action> {
        let mut actions = Vec::new();
        self.observe_gpu(now, observation.gpu, &mut actions);
        self.running = observation.running_jobs;
        let sample = observation.sample;
        self.observe_pressure(&sample, &mut actions);

        let summary = GpuSummary::of(&self.gpus);
        let choice = self.gpu_choice();
        if choice.mismatch != self.gpu_mismatch {
            if let Some(warning) = &choice.mismatch {
                actions.push(Action::Log(Notice::GpuMismatch {
                    warning: warning.clone(),
                }));
            }
            self.gpu_mismatch = choice.mismatch.clone();
        }
        let node = self.node_resources(&sample, summary.as_ref(), &choice);
        self.cap = target_jobs(&node, &JobConditions::default(), &self.limits).max(1);
        let input = ControlInput {
            utilization: summary
                .as_ref()
                .map_or(sample.cpu_percent, |g| g.utilization_percent),
            gpu_primary: summary.is_some(),
            cpu_percent: sample.cpu_percent,
            gpu_memory_percent: summary.as_ref().and_then(|g| g.memory_percent),
            running: self.running,
            cap: self.cap,
        };
        let before = self.controller.target();
        let decision = self.controller.step(&input, &self.config.band);
        if decision.target != before {
            actions.push(Action::Log(Notice::TargetChanged {
                from: before,
                to: decision.target,
                reason: decision.reason.clone(),
            }));
        }
        actions.push(Action::SetTarget {
            node: self.node.clone(),
            jobs: decision.target,
        });
        self.last = Some(decision);
        self.sample = Some((now, sample));
        let check = self.health_check();
        if self.health.as_ref() != Some(&check) {
            self.health = Some(check.clone());
            actions.push(Action::Health(check));
        }
        actions
    }

    fn observe_gpu(&mut self, now: Instant, probe: GpuProbe, actions: &mut Vec<Action>) {
        match probe {
            GpuProbe::NotInstalled => {
                if self.gpu_source != GpuSource::None {
                    actions.push(Action::Log(Notice::CpuOnly {
                        command: self.config.gpu_command.clone(),
                    }));
                }
                self.gpu_source = GpuSource::None;
                self.gpus.clear();
                self.gpu_read_at = None;
            }
            GpuProbe::Read(gpus) => {
                if matches!(self.gpu_source, GpuSource::LastGood { .. }) {
                    actions.push(Action::Log(Notice::GpuRecovered));
                }
                self.gpu_source = GpuSource::Live;
                self.gpus = gpus;
                self.gpu_read_at = Some(now);
            }
            GpuProbe::Failed(error) => {
                if !matches!(self.gpu_source, GpuSource::LastGood { .. }) {
                    actions.push(Action::Log(Notice::GpuFailed {
                        error: error.clone(),
                        last_good_age: self.gpu_read_at.map(|t| now.saturating_duration_since(t)),
                    }));
                }
                self.gpu_source = GpuSource::LastGood { error };
            }
        }
    }

    fn observe_pressure(&mut self, sample: &Sample, actions: &mut Vec<Action>) {
        let (level, reasons) = assess_pressure(sample, &self.config);
        let summary = reasons.join("; ");
        match level {
            PressureLevel::Critical if !self.paused || self.first => {
                self.paused = true;
                actions.push(Action::Pause {
                    reason: summary.clone(),
                });
                actions.push(Action::Log(Notice::Paused { reason: summary }));
            }
            PressureLevel::Ok | PressureLevel::Warning if self.first => {
                // The gate was closed only until this first round; a warning alone does not keep it closed.
                self.paused = false;
                actions.push(Action::Resume);
                if level == PressureLevel::Warning {
                    actions.push(Action::Log(Notice::Warning { reason: summary }));
                }
            }
            PressureLevel::Ok if self.paused => {
                self.paused = false;
                actions.push(Action::Resume);
                actions.push(Action::Log(Notice::Resumed));
            }
            // Still paused, for other reasons now: keep the gate's reason current.
            PressureLevel::Critical if reasons != self.reasons => {
                actions.push(Action::Pause { reason: summary });
            }
            PressureLevel::Warning if !self.warned && !self.paused => {
                actions.push(Action::Log(Notice::Warning { reason: summary }));
            }
            _ => {}
        }
        self.first = false;
        self.warned = level >= PressureLevel::Warning;
        self.level = level;
        self.reasons = reasons;
    }

    fn node_resources(
        &self,
        sample: &Sample,
        gpu: Option<&GpuSummary>,
        choice: &GpuChoice,
    ) -> NodeResources {
        NodeResources {
            // CPU-only unless a GPU was measured or the config names one.
            gpu: (choice.source != GpuModelSource::Unknown).then(|| choice.model.clone()),
            gpu_count: gpu.map_or(0, |g| g.count),
            cpu_cores: sample.cpu_cores,
            memory_gb: sample.memory_total_gb(),
            gpu_util_pct: gpu.and_then(|g| g.utilization_percent),
            gpu_mem_pct: gpu.and_then(|g| g.memory_percent),
            cpu_pct: sample.cpu_percent,
            // No disk watched: no disk limit; watched but unreadable: treated as full.
            disk_pct: max_disk_percent(sample).unwrap_or(if sample.disks.is_empty() {
                0.0
            } else {
                100.0
            }),
            memory_pct: sample.memory_percent.unwrap_or(0.0),
            current_jobs: self.running.unwrap_or(self.controller.target()),
        }
    }

    fn health_check(&self) -> HealthCheck {
        if self.first {
            return HealthCheck::new(HealthStatus::Degraded, Self::FIRST_ROUND_REASON);
        }
        if self.paused {
            return HealthCheck::new(
                HealthStatus::Failing,
                format!(
                    "new selfplay jobs and sync pulls paused: {}; free space (nothing is deleted automatically); work resumes below {}% disk / {}% memory",
                    self.reasons.join("; "),
                    self.config.disk_warning_percent,
                    self.config.memory_warning_percent
                ),
            );
        }
        if self.level == PressureLevel::Warning {
            return HealthCheck::new(
                HealthStatus::Degraded,
                format!(
                    "{}; new work pauses at {}% disk / {}% memory",
                    self.reasons.join("; "),
                    self.config.disk_critical_percent,
                    self.config.memory_critical_percent
                ),
            );
        }
        if let GpuSource::LastGood { error } = &self.gpu_source {
            return HealthCheck::new(
                HealthStatus::Degraded,
                format!("GPU query failing ({error}); steering on the last good reading"),
            );
        }
        let target = self.controller.target();
        let detail = match &self.sample {
            Some((_, s)) => format!(
                "job target {target} (cap {}); cpu {}; memory {}; disk {}",
                self.cap,
                percent(s.cpu_percent),
                percent(s.memory_percent),
                percent(max_disk_percent(s)),
            ),
            None => format!("job target {target}; no sample yet"),
        };
        HealthCheck::ok(detail)
    }

    /// This node's figures, as peers read them.
    pub fn figures(&self) -> NodeFigures {
        let gpu = GpuSummary::of(&self.gpus);
        let sample = self.sample.as_ref().map(|(_, s)| s);
        NodeFigures {
            node: self.node.clone(),
            cpu_percent: sample.and_then(|s| s.cpu_percent),
            cpu_cores: sample.map_or(0, |s| s.cpu_cores),
            load_1m: sample.map_or(0.0, |s| s.load[0]),
            memory_percent: sample.and_then(|s| s.memory_percent),
            memory_total_gb: sample.map_or(0.0, Sample::memory_total_gb),
            disk_percent: sample.and_then(max_disk_percent),
            gpu_name: gpu.as_ref().map(|g| g.name.clone()),
            gpu_count: gpu.as_ref().map_or(0, |g| g.count),
            gpu_utilization_percent: gpu.as_ref().and_then(|g| g.utilization_percent),
            gpu_memory_percent: gpu.as_ref().and_then(|g| g.memory_percent),
            gpu_memory_gb: gpu.as_ref().map_or(0.0, |g| g.memory_total_gb),
            running_jobs: self.running,
            target_jobs: self.controller.target(),
            hardware_cap: self.cap,
            paused: self.paused,
            rate_multiplier: self.spawn_rate_multiplier(),
        }
    }

    /// The utilization the controller steers (GPU's on a GPU node, else CPU's) and the GPU memory %, last round.
    fn steered(&self) -> (Option<f64>, Option<f64>) {
        let gpu = GpuSummary::of(&self.gpus);
        let cpu = self.sample.as_ref().and_then(|(_, s)| s.cpu_percent);
        (
            gpu.as_ref().map_or(cpu, |g| g.utilization_percent),
            gpu.as_ref().and_then(|g| g.memory_percent),
        )
    }

    /// This node's spawn-rate multiplier ([`spawn_rate_multiplier`] of its last readings).
    pub fn spawn_rate_multiplier(&self) -> f64 {
        let (utilization, gpu_memory) = self.steered();
        spawn_rate_multiplier(
            utilization,
            gpu_memory,
            &self.config.band,
            &self.config.rate,
        )
    }

    /// The `/status` section, ages relative to `now`.
    pub fn report(&self, now: Instant) -> ResourcesReport {
        let gpu_summary = GpuSummary::of(&self.gpus);
        let figures = self.figures();
        let (utilization, gpu_memory) = self.steered();
        let choice = self.gpu_choice();
        let (source, error) = match &self.gpu_source {
            GpuSource::Pending => ("pending", None),
            GpuSource::None => ("none", None),
            GpuSource::Live => ("nvidia-smi", None),
            GpuSource::LastGood { error } => ("last_good", Some(error.clone())),
        };
        ResourcesReport {
            pressure: PressureReport {
                paused: self.paused,
                level: self.level,
                reasons: self.reasons.clone(),
            },
            controller: ControllerReport {
                kind: "band_with_hysteresis".to_string(),
                steers: if gpu_summary.is_some() { "gpu" } else { "cpu" }.to_string(),
                target_jobs: self.controller.target(),
                hardware_cap: self.cap,
                change: self.last.as_ref().map_or(Change::Hold, |d| d.change),
                reason: self
                    .last
                    .as_ref()
                    .map_or_else(|| "no sample yet".to_string(), |d| d.reason.clone()),
                rate_games_per_hour: negotiate_rate(
                    self.config.rate.default_games_per_hour,
                    utilization,
                    gpu_memory,
                    &self.config.band,
                    &self.config.rate,
                ),
                spawn_rate_multiplier: figures.rate_multiplier,
                distance_to_optimum_percent: utilization
                    .map(|u| u - self.config.band.optimum_percent),
                gpu_model: choice.model,
                gpu_model_source: choice.source,
            },
            gpu: GpuReport {
                source: source.to_string(),
                error,
                last_good_age_s: matches!(self.gpu_source, GpuSource::LastGood { .. })
                    .then(|| {
                        self.gpu_read_at
                            .map(|t| now.saturating_duration_since(t).as_secs_f64())
                    })
                    .flatten(),
                gpus: self.gpus.clone(),
            },
            sample: self.sample.as_ref().map(|(_, s)| s.clone()),
            sample_age_s: self
                .sample
                .as_ref()
                .map(|(t, _)| now.saturating_duration_since(*t).as_secs_f64()),
            figures,
        }
    }
}

/// The fullest watched disk (%); `None` when no disk is watched or none could be read.
pub fn max_disk_percent(sample: &Sample) -> Option<f64> {
    sample
        .disks
        .iter()
        .filter_map(|d| d.used_percent)
        .fold(None, |max: Option<f64>, u| {
            Some(max.map_or(u, |m| m.max(u)))
        })
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.0}%"))
}

#[cfg(test)]
mod tests;
