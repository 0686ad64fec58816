//! How a job ended ([`JobOutcome`]), the same for every executor, and the games report line a job prints last on
//! stdout (`{"games_written":N,"output":"..."}`), which executors read back from the job's stdout log.
//!
//! Plain data: serializable so outcomes can travel in messages, sit in `GET /jobs` and be stored as dead letters.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::Ended;

/// How one attempt of a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// The job's id.
    pub job_id: String,
    /// The node it ran on.
    pub node: String,
    /// Result.
    pub status: JobStatus,
    /// Wall time from start to end (or to the failure to start).
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

impl JobOutcome {
    /// The outcome of an attempt of `spec` that started at `started` and ended now with `status`.
    pub fn ended(
        spec: &crate::jobs::JobSpec,
        status: JobStatus,
        started: std::time::Instant,
    ) -> Self {
        JobOutcome {
            job_id: spec.id.clone(),
            node: spec.node.clone(),
            status,
            duration: started.elapsed(),
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobStatus {
    /// It exited 0 and the games it wrote were counted (and matched its report and the request).
    Succeeded {
        /// Games in the output file (local) or reported by the peer (SSH).
        games_written: u64,
    },
    /// It could not start, exited non-zero or by a signal, or its games did not check out.
    Failed {
        /// What went wrong, for humans.
        reason: String,
        /// How the process ended, when it ran.
        exit: Option<Ended>,
        /// The end of its stderr (the whole log is in `logs_dir`).
        stderr_tail: String,
    },
    /// It ran past `job_timeout` and was stopped.
    TimedOut {
        /// The timeout that was exceeded.
        #[serde(with = "humantime_serde")]
        after: Duration,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// It was cancelled (shutdown, or the scheduler withdrew it) and was stopped.
    Cancelled,
}

impl JobStatus {
    /// True for [`JobStatus::Succeeded`].
    pub fn is_success(&self) -> bool {
        matches!(self, JobStatus::Succeeded { .. })
    }

    /// A failure of a job that never ran (bad spec, spawn error, I/O).
    pub(crate) fn not_started(reason: impl Into<String>) -> Self {
        JobStatus::Failed {
            reason: reason.into(),
            exit: None,
            stderr_tail: String::new(),
        }
    }
}

/// The line a job prints last on stdout: how many games it wrote, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GamesReport {
    /// Games written to `output`.
    pub games_written: u64,
    /// The file written.
    pub output: PathBuf,
}

impl GamesReport {
    /// The report as one JSON line (no newline).
    pub fn to_json_line(&self) -> String {
        serde_json::json!({"games_written": self.games_written, "output": self.output}).to_string()
    }

    /// The last line of `text` that is a games report, if any (other lines and fields are ignored).
    pub fn find_last(text: &str) -> Option<GamesReport> {
        text.lines()
            .rev()
            .map(str::trim)
            .filter(|line| line.starts_with('{'))
            .find_map(|line| serde_json::from_str::<GamesReport>(line).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_round_trips_and_the_last_one_wins() {
        let report = GamesReport {
            games_written: 7,
            output: PathBuf::from("data/games/x.db"),
        };
        let line = report.to_json_line();
        assert_eq!(line, r#"{"games_written":7,"output":"data/games/x.db"}"#);
        let text = format!(
            "progress\n{{\"games_written\":1,\"output\":\"a\"}}\n{line}\n{{\"other\":1}}\nnot json {{\n\n"
        );
        assert_eq!(GamesReport::find_last(&text), Some(report));
        assert_eq!(GamesReport::find_last("nothing here"), None);
        assert_eq!(
            GamesReport::find_last(r#"{"games_written":3,"output":"o","extra":true}"#),
            Some(GamesReport {
                games_written: 3,
                output: PathBuf::from("o")
            })
        );
    }

    #[test]
    fn outcomes_serialize_with_a_status_tag() {
        let outcome = JobOutcome {
            job_id: "j".into(),
            node: "n".into(),
            status: JobStatus::TimedOut {
                after: Duration::from_secs(1800),
                stderr_tail: String::new(),
            },
            duration: Duration::from_millis(1500),
        };
        let json = serde_json::to_value(&outcome).expect("json");
        assert_eq!(json["status"]["status"], "timed_out");
        assert_eq!(json["status"]["after"], "30m");
        assert_eq!(json["duration"], "1s 500ms");
        let back: JobOutcome = serde_json::from_value(json).expect("back");
        assert_eq!(back, outcome);
        assert!(JobStatus::Succeeded { games_written: 1 }.is_success());
        assert!(!JobStatus::Cancelled.is_success());
    }
}
