//! The `scheduler` config section: the actor's cadence and job sizing, the pure policy's numbers
//! (`scheduler.policy`, see `config.rs`), and the job runner (`scheduler.jobs`, see `jobs::config`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::availability::NodeAvailabilityConfig;
use super::board::ConfigKey;
use super::config::SchedulerPolicyConfig;
use super::jobs_health::JobsHealthConfig;
use crate::jobs::config::JobsConfig;

/// The selfplay scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Run the selfplay scheduler on this node.
    pub enabled: bool,
    /// How often the scheduler checks its plan (the original's main cycle: 300 s). A plan is replaced as soon as it
    /// is played; on this timer also when a node with free slots has nothing left in a plan at least this old.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Where the per-config game counts and last-selfplay times are kept across restarts (JSON, written atomically).
    pub state_file: PathBuf,
    /// The board/player configs it schedules (`hex8_2p`, …); default all 12.
    pub configs: Vec<ConfigKey>,
    /// Most games one job plays; a node's share of a config is played in jobs of at most this many games, as many
    /// at once as the node's target concurrency.
    pub max_games_per_job: u32,
    /// When a node whose jobs keep failing leaves the plan, and for how long.
    pub node_availability: NodeAvailabilityConfig,
    /// When the `jobs` health check turns degraded or failing.
    pub jobs_health: JobsHealthConfig,
    /// While the pressure gate holds new work back, how often the scheduler looks whether it opened again.
    #[serde(with = "humantime_serde")]
    pub pressure_recheck: Duration,
    /// Weights, thresholds and tables of the priority, budget and allocation policy.
    pub policy: SchedulerPolicyConfig,
    /// How jobs run: command template, logs, timeouts, retries, SSH.
    pub jobs: JobsConfig,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            interval: Duration::from_secs(300),
            state_file: PathBuf::from("state/scheduler.json"),
            configs: ConfigKey::all(),
            max_games_per_job: 200,
            node_availability: NodeAvailabilityConfig::default(),
            jobs_health: JobsHealthConfig::default(),
            pressure_recheck: Duration::from_secs(1),
            policy: SchedulerPolicyConfig::default(),
            jobs: JobsConfig::default(),
        }
    }
}

impl SchedulerConfig {
    /// Problems as (path under `scheduler`, what is wrong and expected).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.interval < Duration::from_secs(1) {
            out.push(("interval".into(), "must be at least 1s".into()));
        }
        if self.configs.is_empty() {
            out.push((
                "configs".into(),
                "is empty (expected config keys like hex8_2p)".into(),
            ));
        }
        if self.state_file.as_os_str().is_empty() {
            out.push((
                "state_file".into(),
                "is empty (expected a file such as state/scheduler.json)".into(),
            ));
        }
        if self.max_games_per_job == 0 {
            out.push(("max_games_per_job".into(), "must be at least 1".into()));
        }
        out.extend(
            self.node_availability
                .problems()
                .into_iter()
                .map(|(f, p)| (format!("node_availability.{f}"), p)),
        );
        out.extend(
            self.jobs_health
                .problems()
                .into_iter()
                .map(|(f, p)| (format!("jobs_health.{f}"), p)),
        );
        if self.pressure_recheck.is_zero() {
            out.push(("pressure_recheck".into(), "must be longer than 0s".into()));
        }
        out.extend(self.jobs.problems("jobs"));
        out.extend(
            self.policy
                .problems()
                .into_iter()
                .map(|(path, p)| (format!("policy.{path}"), p)),
        );
        out
    }
}
