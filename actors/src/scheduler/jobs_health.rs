//! The `jobs` health check: are selfplay jobs working?
//!
//! Pure: the scheduler keeps the ends of the last `window` job attempts (successes and failures; cancellations do
//! not count) and which nodes are out of the plan, and [`jobs_check`] turns them into a [`HealthCheck`]:
//! - **failing** when all of the last `window` attempts failed (a full window: one bad start is not an outage);
//! - **degraded** when at least `degraded_share` of the recent attempts failed, or a node is out of the plan;
//! - **ok** otherwise (also before any job ended).
//!
//! The detail names the counts, the node with the most failures and the last failure, and where to look next.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::runtime::health::{HealthCheck, HealthStatus};

/// The name the check is published under on the health board.
pub const CHECK_NAME: &str = "jobs";

/// When the `jobs` check turns degraded or failing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsHealthConfig {
    /// How many recent job attempts the check looks at.
    pub window: usize,
    /// Share (0-1) of those that failed from which the check is degraded; all of a full window failed: failing.
    pub degraded_share: f64,
}

impl Default for JobsHealthConfig {
    fn default() -> Self {
        JobsHealthConfig {
            window: 20,
            degraded_share: 0.5,
        }
    }
}

impl JobsHealthConfig {
    /// Problems as (field, what is wrong).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.window == 0 {
            out.push(("window".into(), "must be at least 1".into()));
        }
        if !(self.degraded_share > 0.0 && self.degraded_share <= 1.0) {
            out.push((
                "degraded_share".into(),
                format!("{} is outside (0, 1]", self.degraded_share),
            ));
        }
        out
    }
}

/// How one job attempt ended, as the check counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    /// The node it ran on.
    pub node: String,
    /// `None` for a success; the failure's summary otherwise.
    pub failure: Option<String>,
}

/// The last attempts, bounded by the window.
#[derive(Debug, Clone, Default)]
pub struct RecentAttempts {
    ends: VecDeque<AttemptEnd>,
}

impl RecentAttempts {
    /// Records an end, keeping at most `window`.
    pub fn push(&mut self, end: AttemptEnd, window: usize) {
        self.ends.push_back(end);
        while self.ends.len() > window.max(1) {
            self.ends.pop_front();
        }
    }
}

/// The check for `recent` attempts and the nodes out of the plan.
pub fn jobs_check(
    recent: &RecentAttempts,
    nodes_out: &[String],
    config: &JobsHealthConfig,
) -> HealthCheck {
    let total = recent.ends.len();
    let failed: Vec<&AttemptEnd> = recent.ends.iter().filter(|e| e.failure.is_some()).collect();
    let out_note = if nodes_out.is_empty() {
        String::new()
    } else {
        format!(
            "; out of the plan after failed jobs: {} (see /plan nodes)",
            nodes_out.join(", ")
        )
    };
    if failed.is_empty() {
        let detail = if total == 0 {
            format!("no job has ended yet{out_note}")
        } else {
            format!("the last {total} job attempts succeeded{out_note}")
        };
        let status = if nodes_out.is_empty() {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        };
        return HealthCheck::new(status, detail);
    }
    let mut by_node: BTreeMap<&str, usize> = BTreeMap::new();
    for end in &failed {
        *by_node.entry(end.node.as_str()).or_default() += 1;
    }
    let (worst_node, worst) = by_node
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(node, n)| (*node, *n))
        .unwrap_or(("", 0));
    let last = failed
        .last()
        .and_then(|e| e.failure.as_deref())
        .unwrap_or("");
    let detail = format!(
        "{} of the last {total} job attempts failed ({worst} on {worst_node}); last: {last}{out_note}; \
         see GET /jobs and the job logs in scheduler.jobs.logs_dir",
        failed.len()
    );
    let status = if total >= config.window && failed.len() == total {
        HealthStatus::Failing
    } else if failed.len() as f64 >= config.degraded_share * total as f64 || !nodes_out.is_empty() {
        HealthStatus::Degraded
    } else {
        HealthStatus::Ok
    };
    HealthCheck::new(status, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempts(pattern: &str) -> RecentAttempts {
        let mut recent = RecentAttempts::default();
        for (i, c) in pattern.chars().enumerate() {
            recent.push(
                AttemptEnd {
                    node: if i % 2 == 0 { "a" } else { "b" }.into(),
                    failure: (c == 'x').then(|| format!("exited with code {i}")),
                },
                20,
            );
        }
        recent
    }

    fn status(pattern: &str, out: &[&str]) -> HealthStatus {
        let out: Vec<String> = out.iter().map(|s| s.to_string()).collect();
        jobs_check(&attempts(pattern), &out, &JobsHealthConfig::default()).status
    }

    #[test]
    fn status_table() {
        let cases = [
            ("", &[][..], HealthStatus::Ok),
            ("ooooo", &[], HealthStatus::Ok),
            ("oooox", &[], HealthStatus::Ok),
            ("ooxx", &[], HealthStatus::Degraded),
            ("x", &[], HealthStatus::Degraded),
            ("xxxxxxxxxxxxxxxxxxx", &[], HealthStatus::Degraded),
            ("xxxxxxxxxxxxxxxxxxxx", &[], HealthStatus::Failing),
            ("oxxxxxxxxxxxxxxxxxxxx", &[], HealthStatus::Failing),
            ("ooooo", &["peer"], HealthStatus::Degraded),
            ("", &["peer"], HealthStatus::Degraded),
        ];
        for (pattern, out, expected) in cases {
            assert_eq!(status(pattern, out), expected, "{pattern:?} out {out:?}");
        }
    }

    #[test]
    fn the_detail_says_what_failed_where_and_where_to_look() {
        let out = vec!["peer".to_string()];
        let check = jobs_check(&attempts("oxxox"), &out, &JobsHealthConfig::default());
        assert_eq!(
            check.detail,
            "3 of the last 5 job attempts failed (2 on a); last: exited with code 4; out of the plan after failed \
             jobs: peer (see /plan nodes); see GET /jobs and the job logs in scheduler.jobs.logs_dir"
        );
        let ok = jobs_check(&attempts("oo"), &[], &JobsHealthConfig::default());
        assert_eq!(ok.detail, "the last 2 job attempts succeeded");
    }

    #[test]
    fn the_window_bounds_what_is_kept() {
        let mut recent = attempts("xxxxxxxxxx");
        for _ in 0..20 {
            recent.push(
                AttemptEnd {
                    node: "a".into(),
                    failure: None,
                },
                20,
            );
        }
        assert_eq!(
            jobs_check(&recent, &[], &JobsHealthConfig::default()).status,
            HealthStatus::Ok
        );
        assert!(JobsHealthConfig::default().problems().is_empty());
        let bad = JobsHealthConfig {
            window: 0,
            degraded_share: 1.5,
        };
        assert_eq!(bad.problems().len(), 2);
    }
}
