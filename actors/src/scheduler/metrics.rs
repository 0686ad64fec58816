//! The work itself in `/metrics`, beside the actor metrics: selfplay jobs running per node, jobs finished by
//! outcome, and games written per config.
//! - `coordinator_jobs_running{node}`: attempts running now, as the scheduler's job table counts them;
//! - `coordinator_jobs_finished_total{node,outcome}`: attempts ended `succeeded`, `failed`, `timed_out`, `cancelled`;
//! - `coordinator_games_written_total{config}`: games written by succeeded jobs.

use std::sync::OnceLock;

use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use crate::jobs::JobStatus;
use crate::runtime::metrics::register;

/// See the module doc.
pub struct JobMetrics {
    pub running: IntGaugeVec,
    pub finished: IntCounterVec,
    pub games: IntCounterVec,
}

/// The metrics (registered on first use).
pub fn job_metrics() -> &'static JobMetrics {
    static METRICS: OnceLock<JobMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let fail = |name: &str, e: prometheus::Error| -> ! { panic!("metric {name}: {e}") };
        JobMetrics {
            running: register(
                IntGaugeVec::new(
                    Opts::new("coordinator_jobs_running", "Selfplay job attempts running now, per node"),
                    &["node"],
                )
                .unwrap_or_else(|e| fail("coordinator_jobs_running", e)),
            ),
            finished: register(
                IntCounterVec::new(
                    Opts::new(
                        "coordinator_jobs_finished_total",
                        "Selfplay job attempts ended, per node and outcome (succeeded, failed, timed_out, cancelled)",
                    ),
                    &["node", "outcome"],
                )
                .unwrap_or_else(|e| fail("coordinator_jobs_finished_total", e)),
            ),
            games: register(
                IntCounterVec::new(
                    Opts::new(
                        "coordinator_games_written_total",
                        "Games written by succeeded selfplay jobs, per config",
                    ),
                    &["config"],
                )
                .unwrap_or_else(|e| fail("coordinator_games_written_total", e)),
            ),
        }
    })
}

/// The `outcome` label of an attempt's status.
pub fn outcome_label(status: &JobStatus) -> &'static str {
    match status {
        JobStatus::Succeeded { .. } => "succeeded",
        JobStatus::Failed { .. } => "failed",
        JobStatus::TimedOut { .. } => "timed_out",
        JobStatus::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn outcomes_have_stable_labels() {
        assert_eq!(
            outcome_label(&JobStatus::Succeeded { games_written: 1 }),
            "succeeded"
        );
        assert_eq!(outcome_label(&JobStatus::Cancelled), "cancelled");
        assert_eq!(
            outcome_label(&JobStatus::TimedOut {
                after: Duration::from_secs(1),
                stderr_tail: String::new()
            }),
            "timed_out"
        );
    }
}
