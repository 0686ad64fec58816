//! The `resources` config section: how often the optimizer samples and steers, the pressure thresholds that
//! pause new work, the utilization band of the job controller, rate negotiation and the cluster view.
//!
//! Defaults are the numbers of shared/domain/resources-and-lifecycle.md ("Resource optimizer"); the per-node
//! hardware caps are the scheduler's `scheduler.policy.target_jobs` table (one home for that table). No I/O.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the resource optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesConfig {
    /// Run the resource optimizer on this node.
    pub enabled: bool,
    /// How often it samples CPU, memory, disks and GPUs, and sends the scheduler this node's job target.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Deadline of one OS sample (disks included: a hung mount must not hang the optimizer). A sample that
    /// misses it counts as an unreadable disk, which is critical.
    #[serde(with = "humantime_serde")]
    pub sample_timeout: Duration,
    /// Extra directories whose disk use is watched, besides the data server's categories, the jobs' output
    /// directory and the dead-letter store's directory (which are always watched).
    pub data_roots: Vec<PathBuf>,
    /// Disk use (%) of any watched directory at which a warning is raised; paused work resumes only below it.
    pub disk_warning_percent: f64,
    /// Disk use (%) of any watched directory at which new selfplay jobs and sync pulls are paused. An
    /// unreadable disk counts as critical. Nothing is deleted.
    pub disk_critical_percent: f64,
    /// Memory use (%) at which a warning is raised; paused work resumes only below it.
    pub memory_warning_percent: f64,
    /// Memory use (%) at which new selfplay jobs and sync pulls are paused.
    pub memory_critical_percent: f64,
    /// GPU query program (`nvidia-smi`, looked up on PATH). Not found: a CPU-only node, not an error.
    pub gpu_command: String,
    /// Deadline of one GPU query; a reply that misses it is a warning and the last good reading is kept.
    #[serde(with = "humantime_serde")]
    pub gpu_timeout: Duration,
    /// The job controller's utilization band.
    pub band: BandConfig,
    /// Rate negotiation (games per hour).
    pub rate: RateConfig,
    /// The cluster view: peers' figures read from their `/status`.
    pub cluster: ClusterViewConfig,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        ResourcesConfig {
            enabled: true,
            interval: Duration::from_secs(30),
            sample_timeout: Duration::from_secs(10),
            data_roots: Vec::new(),
            disk_warning_percent: 85.0,
            disk_critical_percent: 95.0,
            memory_warning_percent: 90.0,
            memory_critical_percent: 95.0,
            gpu_command: "nvidia-smi".to_string(),
            gpu_timeout: Duration::from_secs(5),
            band: BandConfig::default(),
            rate: RateConfig::default(),
            cluster: ClusterViewConfig::default(),
        }
    }
}

/// The band controller: utilization (GPU before CPU) held inside `low..=high`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BandConfig {
    /// Lower edge of the target band (%).
    pub low_percent: f64,
    /// Upper edge of the target band (%).
    pub high_percent: f64,
    /// The optimum inside the band (%): of the upward steps that fit the band, the controller takes the one its
    /// estimate lands nearest this; `/status` reports the distance to it (`controller.distance_to_optimum_percent`).
    pub optimum_percent: f64,
    /// Below this (%) jobs are added at once (`step_up` per interval).
    pub scale_up_below_percent: f64,
    /// Above this (%) jobs are removed at once (`step_down` per interval).
    pub scale_down_above_percent: f64,
    /// Jobs added per interval when below `scale_up_below_percent`.
    pub step_up: u32,
    /// Jobs removed per interval when above `scale_down_above_percent`.
    pub step_down: u32,
    /// Samples in a row between a band edge and its scale threshold before a one-job correction.
    pub rebalance_after: u32,
    /// Steps of more than one job, and steps that reverse the previous one, must land (by the controller's
    /// utilization-per-job estimate) at least this far (%) inside the band, so noise cannot bounce the node
    /// across it.
    pub landing_margin_percent: f64,
    /// GPU memory use (%) above which no job is added.
    pub gpu_memory_warning_percent: f64,
    /// GPU memory use (%) above which a job is removed per interval.
    pub gpu_memory_critical_percent: f64,
}

impl Default for BandConfig {
    fn default() -> Self {
        BandConfig {
            low_percent: 60.0,
            high_percent: 80.0,
            optimum_percent: 70.0,
            scale_up_below_percent: 55.0,
            scale_down_above_percent: 85.0,
            step_up: 2,
            step_down: 1,
            rebalance_after: 2,
            landing_margin_percent: 5.0,
            gpu_memory_warning_percent: 80.0,
            gpu_memory_critical_percent: 90.0,
        }
    }
}

/// Rate negotiation: the games per hour this node can take for a requested rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// The rate asked for when nothing else is known (games/hour); the rate negotiated for it over it is the
    /// spawn-rate multiplier the plan applies.
    pub default_games_per_hour: f64,
    /// Lowest rate granted (games/hour).
    pub min_games_per_hour: f64,
    /// Highest rate granted (games/hour).
    pub max_games_per_hour: f64,
    /// Below the band: × min(`max_boost`, 1 + (low − u) / `slope_percent`).
    pub max_boost: f64,
    /// Above the band: × max(`min_factor`, 1 − (u − high) / `slope_percent`).
    pub min_factor: f64,
    /// Percentage points of distance from the band that change the rate by 100 %.
    pub slope_percent: f64,
    /// Factor when GPU memory is above `band.gpu_memory_critical_percent`.
    pub gpu_memory_critical_factor: f64,
    /// Factor when GPU memory is above `band.gpu_memory_warning_percent`.
    pub gpu_memory_warning_factor: f64,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            default_games_per_hour: 1000.0,
            min_games_per_hour: 100.0,
            max_games_per_hour: 5000.0,
            max_boost: 1.5,
            min_factor: 0.5,
            slope_percent: 50.0,
            gpu_memory_critical_factor: 0.3,
            gpu_memory_warning_factor: 0.7,
        }
    }
}

/// The cluster view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterViewConfig {
    /// Poll peers' `/status` (those with `cluster.nodes[].api_url`) for their figures.
    pub poll_peers: bool,
    /// Deadline of one peer poll.
    #[serde(with = "humantime_serde")]
    pub poll_timeout: Duration,
    /// A peer not heard from for this long leaves the view and the plan until it answers again.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
}

impl Default for ClusterViewConfig {
    fn default() -> Self {
        ClusterViewConfig {
            poll_peers: true,
            poll_timeout: Duration::from_secs(5),
            stale_after: Duration::from_secs(300),
        }
    }
}

impl ResourcesConfig {
    /// Every problem as (field path under `resources.`, what is wrong and expected).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut percent = |field: &str, value: f64| {
            if !(0.0..=100.0).contains(&value) {
                out.push((
                    field.to_string(),
                    format!("{value} is outside 0..100 (a percentage)"),
                ));
            }
        };
        percent("disk_warning_percent", self.disk_warning_percent);
        percent("disk_critical_percent", self.disk_critical_percent);
        percent("memory_warning_percent", self.memory_warning_percent);
        percent("memory_critical_percent", self.memory_critical_percent);
        let b = &self.band;
        percent("band.low_percent", b.low_percent);
        percent("band.high_percent", b.high_percent);
        percent("band.optimum_percent", b.optimum_percent);
        percent("band.scale_up_below_percent", b.scale_up_below_percent);
        percent("band.scale_down_above_percent", b.scale_down_above_percent);
        percent(
            "band.gpu_memory_warning_percent",
            b.gpu_memory_warning_percent,
        );
        percent(
            "band.gpu_memory_critical_percent",
            b.gpu_memory_critical_percent,
        );
        let mut order = |field: &str, low: f64, high: f64, what: &str| {
            if low > high {
                out.push((field.to_string(), format!("{low} is above {what} ({high})")));
            }
        };
        order(
            "disk_warning_percent",
            self.disk_warning_percent,
            self.disk_critical_percent,
            "disk_critical_percent",
        );
        order(
            "memory_warning_percent",
            self.memory_warning_percent,
            self.memory_critical_percent,
            "memory_critical_percent",
        );
        order(
            "band.scale_up_below_percent",
            b.scale_up_below_percent,
            b.low_percent,
            "band.low_percent",
        );
        order(
            "band.low_percent",
            b.low_percent,
            b.optimum_percent,
            "band.optimum_percent",
        );
        order(
            "band.optimum_percent",
            b.optimum_percent,
            b.high_percent,
            "band.high_percent",
        );
        order(
            "band.high_percent",
            b.high_percent,
            b.scale_down_above_percent,
            "band.scale_down_above_percent",
        );
        order(
            "band.gpu_memory_warning_percent",
            b.gpu_memory_warning_percent,
            b.gpu_memory_critical_percent,
            "band.gpu_memory_critical_percent",
        );
        let r = &self.rate;
        order(
            "rate.min_games_per_hour",
            r.min_games_per_hour,
            r.max_games_per_hour,
            "rate.max_games_per_hour",
        );
        if r.min_games_per_hour <= 0.0
            || !(r.min_games_per_hour..=r.max_games_per_hour).contains(&r.default_games_per_hour)
        {
            out.push((
                "rate.default_games_per_hour".into(),
                format!(
                    "{} must lie within rate.min_games_per_hour ({}, above 0) and rate.max_games_per_hour ({})",
                    r.default_games_per_hour, r.min_games_per_hour, r.max_games_per_hour
                ),
            ));
        }
        if b.landing_margin_percent < 0.0
            || 2.0 * b.landing_margin_percent >= b.high_percent - b.low_percent
        {
            out.push((
                "band.landing_margin_percent".into(),
                format!(
                    "{} must be at least 0 and under half the band's width (e.g. 5)",
                    b.landing_margin_percent
                ),
            ));
        }
        if b.step_up == 0 || b.step_down == 0 {
            out.push((
                "band.step_up".into(),
                "band.step_up and band.step_down must be at least 1".into(),
            ));
        }
        if r.slope_percent <= 0.0 {
            out.push((
                "rate.slope_percent".into(),
                format!("{} must be above 0 (e.g. 50)", r.slope_percent),
            ));
        }
        for (field, value) in [
            ("interval", self.interval),
            ("sample_timeout", self.sample_timeout),
            ("gpu_timeout", self.gpu_timeout),
            ("cluster.poll_timeout", self.cluster.poll_timeout),
            ("cluster.stale_after", self.cluster.stale_after),
        ] {
            if value.is_zero() {
                out.push((field.to_string(), "must be above 0 (e.g. 5s)".into()));
            }
        }
        if self.gpu_command.trim().is_empty() {
            out.push((
                "gpu_command".into(),
                "is empty (expected a program name such as nvidia-smi)".into(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_domain_numbers_and_valid() {
        let c = ResourcesConfig::default();
        assert_eq!(c.disk_warning_percent, 85.0);
        assert_eq!(c.disk_critical_percent, 95.0);
        assert_eq!(
            (
                c.band.low_percent,
                c.band.optimum_percent,
                c.band.high_percent
            ),
            (60.0, 70.0, 80.0)
        );
        assert_eq!(
            (
                c.band.scale_up_below_percent,
                c.band.scale_down_above_percent
            ),
            (55.0, 85.0)
        );
        assert_eq!((c.band.step_up, c.band.step_down), (2, 1));
        assert_eq!(
            (
                c.band.gpu_memory_warning_percent,
                c.band.gpu_memory_critical_percent
            ),
            (80.0, 90.0)
        );
        assert_eq!(c.cluster.stale_after, Duration::from_secs(300));
        assert_eq!(c.problems(), vec![]);
    }

    #[test]
    fn problems_name_the_field() {
        let c = ResourcesConfig {
            disk_warning_percent: 96.0,
            memory_critical_percent: 120.0,
            interval: Duration::ZERO,
            ..ResourcesConfig::default()
        };
        let fields: Vec<String> = c.problems().into_iter().map(|(f, _)| f).collect();
        assert!(fields.contains(&"disk_warning_percent".to_string()));
        assert!(fields.contains(&"memory_critical_percent".to_string()));
        assert!(fields.contains(&"interval".to_string()));
        let mut c = ResourcesConfig::default();
        c.rate.default_games_per_hour = 0.0;
        let problems = c.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "rate.default_games_per_hour");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = serde_json::from_str::<ResourcesConfig>(r#"{"disk_critical": 90}"#).unwrap_err();
        assert!(err.to_string().contains("disk_critical"), "{err}");
    }
}
