//! The job table: which jobs wait, run and have finished on each node, how many may run at once per node, and what
//! happens to a job that failed (try again after the backoff, or give up so the caller makes a dead letter).
//!
//! Pure: no actix, no I/O, no clock. Time comes in as `now: Instant` on every call that needs it. The caller (the
//! scheduler actor) asks [`JobTracker::start_ready`] for jobs it may launch now, reports each attempt's end with
//! [`JobTracker::finish`], and sets a timer for [`JobTracker::next_retry_at`].
//!
//! Rules:
//! - A node runs at most its target of jobs at once: the resource optimizer's value from [`JobTracker::set_target`],
//!   else `default_target`. Lowering a target stops nothing; it only holds back new starts (0 pauses the node).
//! - Queued jobs start in the order they were queued (a retry goes to the back), skipping jobs waiting on a backoff
//!   or on a full node, so one busy node never blocks the others.
//! - A failed or timed-out attempt `a` is retried after `retry_backoff` while `a < max_attempts`; otherwise the job
//!   is given up. A cancelled job is not retried.
//! - The last `history_limit` finished jobs are kept for `GET /jobs`, newest first in the snapshot.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::JobsConfig;
use super::outcome::{JobOutcome, JobStatus};
use super::spec::JobSpec;

/// The numbers the tracker decides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerLimits {
    /// Attempts per job, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before a failed job is tried again.
    pub retry_backoff: Duration,
    /// Concurrent jobs on a node without a target from the resource optimizer.
    pub default_target: u32,
    /// Finished jobs kept.
    pub history_limit: usize,
}

impl From<&JobsConfig> for TrackerLimits {
    fn from(config: &JobsConfig) -> Self {
        TrackerLimits {
            max_attempts: config.max_attempts.max(1),
            retry_backoff: config.retry_backoff,
            default_target: config.max_concurrent_per_node,
            history_limit: config.history_limit,
        }
    }
}

/// Errors of the job table (caller bugs or races, reported rather than ignored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    /// A job with this id is already queued or running.
    #[error("job {id} is already queued or running; give each job a unique id")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// An outcome for a job that is not running.
    #[error("job {id} is not running; its outcome was reported twice or for an unknown job")]
    NotRunning {
        /// The id.
        id: String,
    },
}

/// A job the caller should launch now.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The job.
    pub spec: JobSpec,
    /// Which attempt this is, from 1.
    pub attempt: u32,
}

/// What became of a job after an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Done: announce its games.
    Succeeded {
        /// The job.
        spec: JobSpec,
        /// Games it wrote.
        games_written: u64,
    },
    /// Queued again; it becomes startable after `after`.
    Retry {
        /// The attempt that will run next.
        next_attempt: u32,
        /// The backoff.
        after: Duration,
    },
    /// Out of attempts: the caller turns it into a dead letter.
    GiveUp {
        /// The job.
        spec: JobSpec,
        /// Attempts made.
        attempts: u32,
        /// How the last attempt ended.
        last: JobStatus,
    },
    /// Cancelled; not retried.
    Cancelled {
        /// The job.
        spec: JobSpec,
    },
}

#[derive(Debug, Clone)]
struct Queued {
    spec: JobSpec,
    attempt: u32,
    not_before: Instant,
    last_failure: Option<String>,
}

#[derive(Debug, Clone)]
struct Running {
    spec: JobSpec,
    attempt: u32,
    started_at: Instant,
}

#[derive(Debug, Clone)]
struct Finished {
    spec: JobSpec,
    attempts: u32,
    status: JobStatus,
    duration: Duration,
    finished_at: Instant,
    given_up: bool,
}

/// Where one job is, for a planner asking about a job it handed over (`GET /jobs/{id}`).
#[derive(Debug, Clone, PartialEq)]
pub enum JobWhere {
    /// Waiting for a slot or for its retry backoff.
    Queued,
    /// An attempt is running.
    Running,
    /// Done (succeeded, given up or cancelled): the last attempt's status and time.
    Finished {
        /// The last attempt's status.
        status: JobStatus,
        /// The last attempt's wall time.
        duration: Duration,
    },
}

/// Totals of one node since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTotals {
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Attempts that failed or timed out (retried or not).
    pub failed_attempts: u64,
    /// Jobs given up after their last attempt.
    pub given_up: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Games written by succeeded jobs.
    pub games_written: u64,
}

/// The job table.
#[derive(Debug, Clone)]
pub struct JobTracker {
    limits: TrackerLimits,
    queue: VecDeque<Queued>,
    running: BTreeMap<String, Running>,
    history: VecDeque<Finished>,
    targets: BTreeMap<String, u32>,
    totals: BTreeMap<String, NodeTotals>,
    games_by_config: BTreeMap<String, u64>,
}

impl JobTracker {
    /// An empty table.
    pub fn new(limits: TrackerLimits) -> Self {
        JobTracker {
            limits,
            queue: VecDeque::new(),
            running: BTreeMap::new(),
            history: VecDeque::new(),
            targets: BTreeMap::new(),
            totals: BTreeMap::new(),
            games_by_config: BTreeMap::new(),
        }
    }

    /// Queue a new job (attempt 1), startable at once.
    pub fn enqueue(&mut self, spec: JobSpec, now: Instant) -> Result<(), TrackerError> {
        if self.contains(&spec.id) {
            return Err(TrackerError::DuplicateId { id: spec.id });
        }
        self.queue.push_back(Queued {
            spec,
            attempt: 1,
            not_before: now,
            last_failure: None,
        });
        Ok(())
    }

    /// Where job `id` is: queued, running, or finished while it is still in the history; `None` when unknown.
    pub fn lookup(&self, id: &str) -> Option<JobWhere> {
        if self.running.contains_key(id) {
            return Some(JobWhere::Running);
        }
        if self.queue.iter().any(|q| q.spec.id == id) {
            return Some(JobWhere::Queued);
        }
        self.history
            .iter()
            .rev()
            .find(|f| f.spec.id == id)
            .map(|f| JobWhere::Finished {
                status: f.status.clone(),
                duration: f.duration,
            })
    }

    /// True when a job with this id is queued or running.
    pub fn contains(&self, id: &str) -> bool {
        self.running.contains_key(id) || self.queue.iter().any(|q| q.spec.id == id)
    }

    /// Set how many jobs `node` may run at once (from the resource optimizer). Takes effect at the next start.
    pub fn set_target(&mut self, node: &str, jobs: u32) {
        self.targets.insert(node.to_string(), jobs);
    }

    /// Forget `node`'s target: it falls back to `default_target`.
    pub fn clear_target(&mut self, node: &str) {
        self.targets.remove(node);
    }

    /// How many jobs `node` may run at once.
    pub fn target(&self, node: &str) -> u32 {
        self.targets
            .get(node)
            .copied()
            .unwrap_or(self.limits.default_target)
    }

    /// Jobs running on `node`.
    pub fn running_on(&self, node: &str) -> u32 {
        self.running
            .values()
            .filter(|r| r.spec.node == node)
            .count() as u32
    }

    /// Jobs queued for `node` (waiting for room or for a backoff).
    pub fn queued_on(&self, node: &str) -> u32 {
        self.queue.iter().filter(|q| q.spec.node == node).count() as u32
    }

    /// Nothing queued and nothing running.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.running.is_empty()
    }

    /// Move every job that may start now into `running`, in queue order, and return them for launching.
    pub fn start_ready(&mut self, now: Instant) -> Vec<Launch> {
        let mut room: BTreeMap<String, u32> = BTreeMap::new();
        let mut launches = Vec::new();
        let mut waiting = VecDeque::with_capacity(self.queue.len());
        while let Some(job) = self.queue.pop_front() {
            let node = job.spec.node.clone();
            let free = *room
                .entry(node.clone())
                .or_insert_with(|| self.target(&node).saturating_sub(self.running_on(&node)));
            if job.not_before > now || free == 0 {
                waiting.push_back(job);
                continue;
            }
            room.insert(node, free - 1);
            self.running.insert(
                job.spec.id.clone(),
                Running {
                    spec: job.spec.clone(),
                    attempt: job.attempt,
                    started_at: now,
                },
            );
            launches.push(Launch {
                spec: job.spec,
                attempt: job.attempt,
            });
        }
        self.queue = waiting;
        launches
    }

    /// Record how an attempt ended and decide what becomes of the job.
    pub fn finish(&mut self, outcome: &JobOutcome, now: Instant) -> Result<Decision, TrackerError> {
        let running =
            self.running
                .remove(&outcome.job_id)
                .ok_or_else(|| TrackerError::NotRunning {
                    id: outcome.job_id.clone(),
                })?;
        let totals = self.totals.entry(running.spec.node.clone()).or_default();
        let mut finished = Finished {
            spec: running.spec.clone(),
            attempts: running.attempt,
            status: outcome.status.clone(),
            duration: outcome.duration,
            finished_at: now,
            given_up: false,
        };
        let decision = match &outcome.status {
            JobStatus::Succeeded { games_written } => {
                totals.succeeded += 1;
                totals.games_written += games_written;
                *self
                    .games_by_config
                    .entry(running.spec.config_key.clone())
                    .or_default() += games_written;
                Decision::Succeeded {
                    spec: running.spec,
                    games_written: *games_written,
                }
            }
            JobStatus::Cancelled => {
                totals.cancelled += 1;
                Decision::Cancelled { spec: running.spec }
            }
            failure @ (JobStatus::Failed { .. } | JobStatus::TimedOut { .. }) => {
                totals.failed_attempts += 1;
                if running.attempt < self.limits.max_attempts {
                    let next_attempt = running.attempt + 1;
                    self.queue.push_back(Queued {
                        spec: running.spec,
                        attempt: next_attempt,
                        not_before: now + self.limits.retry_backoff,
                        last_failure: Some(summary(failure)),
                    });
                    return Ok(Decision::Retry {
                        next_attempt,
                        after: self.limits.retry_backoff,
                    });
                }
                totals.given_up += 1;
                finished.given_up = true;
                Decision::GiveUp {
                    spec: running.spec,
                    attempts: running.attempt,
                    last: failure.clone(),
                }
            }
        };
        self.history.push_back(finished);
        while self.history.len() > self.limits.history_limit {
            self.history.pop_front();
        }
        Ok(decision)
    }

    /// Remove a queued job (not a running one: cancel that through its executor). Returns it if it was queued.
    pub fn cancel_queued(&mut self, id: &str) -> Option<JobSpec> {
        let index = self.queue.iter().position(|q| q.spec.id == id)?;
        self.queue.remove(index).map(|q| q.spec)
    }

    /// Remove every queued job of `node` (it left the plan): the jobs that will not run.
    pub fn cancel_queued_on(&mut self, node: &str) -> Vec<JobSpec> {
        let (gone, kept): (VecDeque<Queued>, VecDeque<Queued>) =
            self.queue.drain(..).partition(|q| q.spec.node == node);
        self.queue = kept;
        gone.into_iter().map(|q| q.spec).collect()
    }

    /// Empty the queue (shutdown): the jobs that will not run.
    pub fn drain_queue(&mut self) -> Vec<JobSpec> {
        self.queue.drain(..).map(|q| q.spec).collect()
    }

    /// When the earliest queued job's backoff ends (the caller wakes then and calls [`Self::start_ready`]); none
    /// when nothing is queued.
    pub fn next_retry_at(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.not_before).min()
    }

    /// Games written by succeeded jobs, per config key.
    pub fn games_by_config(&self) -> &BTreeMap<String, u64> {
        &self.games_by_config
    }

    /// The table as data for `GET /jobs`, ages relative to `now`.
    pub fn snapshot(&self, now: Instant) -> JobsSnapshot {
        let mut nodes: BTreeMap<String, NodeJobs> = BTreeMap::new();
        let names = self
            .targets
            .keys()
            .chain(self.totals.keys())
            .chain(self.queue.iter().map(|q| &q.spec.node))
            .chain(self.running.values().map(|r| &r.spec.node));
        for name in names {
            nodes.entry(name.clone()).or_insert_with(|| NodeJobs {
                target: self.target(name),
                running: self.running_on(name),
                queued: self.queued_on(name),
                totals: self.totals.get(name).cloned().unwrap_or_default(),
            });
        }
        JobsSnapshot {
            nodes,
            queued: self
                .queue
                .iter()
                .map(|q| QueuedJob {
                    id: q.spec.id.clone(),
                    config_key: q.spec.config_key.clone(),
                    node: q.spec.node.clone(),
                    games: q.spec.games,
                    attempt: q.attempt,
                    starts_in: q.not_before.saturating_duration_since(now),
                    last_failure: q.last_failure.clone(),
                })
                .collect(),
            running: self
                .running
                .values()
                .map(|r| RunningJob {
                    id: r.spec.id.clone(),
                    config_key: r.spec.config_key.clone(),
                    node: r.spec.node.clone(),
                    games: r.spec.games,
                    attempt: r.attempt,
                    running_for: now.saturating_duration_since(r.started_at),
                })
                .collect(),
            history: self
                .history
                .iter()
                .rev()
                .map(|f| FinishedJob {
                    id: f.spec.id.clone(),
                    config_key: f.spec.config_key.clone(),
                    node: f.spec.node.clone(),
                    games: f.spec.games,
                    attempts: f.attempts,
                    given_up: f.given_up,
                    status: f.status.clone(),
                    duration: f.duration,
                    finished_ago: now.saturating_duration_since(f.finished_at),
                })
                .collect(),
            games_by_config: self.games_by_config.clone(),
        }
    }
}

/// One line saying why an attempt failed (also its log line).
pub(crate) fn summary(status: &JobStatus) -> String {
    match status {
        JobStatus::Failed { reason, .. } => reason.clone(),
        JobStatus::TimedOut { after, .. } => {
            format!("timed out after {}", humantime::format_duration(*after))
        }
        JobStatus::Succeeded { .. } => "succeeded".to_string(),
        JobStatus::Cancelled => "cancelled".to_string(),
    }
}

/// The job table as data (`GET /jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobsSnapshot {
    /// Per node: limit, load and totals.
    pub nodes: BTreeMap<String, NodeJobs>,
    /// Waiting jobs, in start order.
    pub queued: Vec<QueuedJob>,
    /// Running jobs, by id.
    pub running: Vec<RunningJob>,
    /// Finished jobs, newest first.
    pub history: Vec<FinishedJob>,
    /// Games written by succeeded jobs, per config key.
    pub games_by_config: BTreeMap<String, u64>,
}

/// One node in the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeJobs {
    /// Jobs it may run at once.
    pub target: u32,
    /// Jobs running.
    pub running: u32,
    /// Jobs waiting.
    pub queued: u32,
    /// Totals since start.
    #[serde(flatten)]
    pub totals: NodeTotals,
}

/// A waiting job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedJob {
    /// Job id.
    pub id: String,
    /// Config key.
    pub config_key: String,
    /// Node.
    pub node: String,
    /// Games asked for.
    pub games: u32,
    /// The attempt it will be.
    pub attempt: u32,
    /// Backoff left (0: waiting only for room on its node).
    #[serde(with = "humantime_serde")]
    pub starts_in: Duration,
    /// Why the previous attempt failed.
    pub last_failure: Option<String>,
}

/// A running job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningJob {
    /// Job id.
    pub id: String,
    /// Config key.
    pub config_key: String,
    /// Node.
    pub node: String,
    /// Games asked for.
    pub games: u32,
    /// Which attempt.
    pub attempt: u32,
    /// Time since it started.
    #[serde(with = "humantime_serde")]
    pub running_for: Duration,
}

/// A finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedJob {
    /// Job id.
    pub id: String,
    /// Config key.
    pub config_key: String,
    /// Node.
    pub node: String,
    /// Games asked for.
    pub games: u32,
    /// Attempts made.
    pub attempts: u32,
    /// It used up its attempts (and became a dead letter).
    pub given_up: bool,
    /// How its last attempt ended.
    pub status: JobStatus,
    /// Its last attempt's duration.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Time since it finished.
    #[serde(with = "humantime_serde")]
    pub finished_ago: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::spec::tests::sample_spec;

    fn limits() -> TrackerLimits {
        TrackerLimits::from(&JobsConfig::default())
    }

    fn spec(id: &str, node: &str) -> JobSpec {
        JobSpec {
            id: id.into(),
            node: node.into(),
            ..sample_spec()
        }
    }

    fn outcome(id: &str, status: JobStatus) -> JobOutcome {
        JobOutcome {
            job_id: id.into(),
            node: String::new(),
            status,
            duration: Duration::from_secs(3),
        }
    }

    fn failed() -> JobStatus {
        JobStatus::Failed {
            reason: "exited with code 1".into(),
            exit: None,
            stderr_tail: String::new(),
        }
    }

    fn ids(launches: &[Launch]) -> Vec<&str> {
        launches.iter().map(|l| l.spec.id.as_str()).collect()
    }

    #[test]
    fn lookup_follows_a_job_from_queue_to_history() {
        let t0 = Instant::now();
        let mut tracker = JobTracker::new(limits());
        assert_eq!(tracker.lookup("j"), None);
        tracker.enqueue(spec("j", "a"), t0).expect("enqueue");
        assert_eq!(tracker.lookup("j"), Some(JobWhere::Queued));
        tracker.start_ready(t0);
        assert_eq!(tracker.lookup("j"), Some(JobWhere::Running));
        let done = JobStatus::Succeeded { games_written: 50 };
        tracker
            .finish(&outcome("j", done.clone()), t0)
            .expect("finish");
        assert_eq!(
            tracker.lookup("j"),
            Some(JobWhere::Finished {
                status: done,
                duration: Duration::from_secs(3)
            })
        );
    }

    #[test]
    fn limits_come_from_the_config_defaults() {
        assert_eq!(
            limits(),
            TrackerLimits {
                max_attempts: 3,
                retry_backoff: Duration::from_secs(10),
                default_target: 2,
                history_limit: 200,
            }
        );
    }

    #[test]
    fn a_node_runs_at_most_its_target_and_others_are_not_blocked() {
        let t0 = Instant::now();
        let mut tracker = JobTracker::new(limits());
        for (id, node) in [
            ("a1", "a"),
            ("a2", "a"),
            ("a3", "a"),
            ("b1", "b"),
            ("a4", "a"),
        ] {
            tracker.enqueue(spec(id, node), t0).expect("enqueue");
        }
        assert_eq!(ids(&tracker.start_ready(t0)), ["a1", "a2", "b1"]);
        assert_eq!((tracker.running_on("a"), tracker.queued_on("a")), (2, 2));
        assert!(tracker.start_ready(t0).is_empty(), "a is full");
        tracker
            .finish(
                &outcome("a1", JobStatus::Succeeded { games_written: 50 }),
                t0,
            )
            .expect("finish");
        assert_eq!(
            ids(&tracker.start_ready(t0)),
            ["a3"],
            "one slot freed, queue order kept"
        );
    }

    #[test]
    fn targets_change_at_any_time() {
        let t0 = Instant::now();
        // (target set before starting, jobs started)
        let cases = [(0u32, 0usize), (1, 1), (2, 2), (5, 5), (10, 6)];
        for (target, started) in cases {
            let mut tracker = JobTracker::new(limits());
            for i in 0..6 {
                tracker
                    .enqueue(spec(&format!("j{i}"), "gpu"), t0)
                    .expect("enqueue");
            }
            tracker.set_target("gpu", target);
            assert_eq!(tracker.start_ready(t0).len(), started, "target {target}");
            assert_eq!(tracker.target("gpu"), target);
        }
        // Lowering the target stops nothing but holds back starts until the load is below it.
        let mut tracker = JobTracker::new(limits());
        for i in 0..5 {
            tracker
                .enqueue(spec(&format!("j{i}"), "gpu"), t0)
                .expect("enqueue");
        }
        tracker.set_target("gpu", 3);
        assert_eq!(tracker.start_ready(t0).len(), 3);
        tracker.set_target("gpu", 1);
        assert_eq!(tracker.running_on("gpu"), 3);
        for id in ["j0", "j1"] {
            tracker
                .finish(&outcome(id, JobStatus::Succeeded { games_written: 1 }), t0)
                .expect("finish");
            assert!(tracker.start_ready(t0).is_empty());
        }
        tracker
            .finish(
                &outcome("j2", JobStatus::Succeeded { games_written: 1 }),
                t0,
            )
            .expect("finish");
        assert_eq!(ids(&tracker.start_ready(t0)), ["j3"]);
        tracker.clear_target("gpu");
        assert_eq!(tracker.target("gpu"), 2);
        assert_eq!(ids(&tracker.start_ready(t0)), ["j4"]);
    }

    #[test]
    fn failures_are_retried_after_the_backoff_until_attempts_run_out() {
        let t0 = Instant::now();
        let backoff = Duration::from_secs(10);
        for failure in [
            failed(),
            JobStatus::TimedOut {
                after: Duration::from_secs(1800),
                stderr_tail: String::new(),
            },
        ] {
            let mut tracker = JobTracker::new(limits());
            tracker.enqueue(spec("j", "n"), t0).expect("enqueue");
            let mut now = t0;
            for attempt in 1..=3u32 {
                let launches = tracker.start_ready(now);
                assert_eq!(launches.len(), 1, "attempt {attempt}");
                assert_eq!(launches[0].attempt, attempt);
                let decision = tracker
                    .finish(&outcome("j", failure.clone()), now)
                    .expect("finish");
                if attempt < 3 {
                    assert_eq!(
                        decision,
                        Decision::Retry {
                            next_attempt: attempt + 1,
                            after: backoff
                        }
                    );
                    assert_eq!(tracker.next_retry_at(), Some(now + backoff));
                    assert!(tracker
                        .start_ready(now + backoff - Duration::from_millis(1))
                        .is_empty());
                    now += backoff;
                } else {
                    assert_eq!(
                        decision,
                        Decision::GiveUp {
                            spec: spec("j", "n"),
                            attempts: 3,
                            last: failure.clone()
                        }
                    );
                }
            }
            assert!(tracker.is_idle());
            let snapshot = tracker.snapshot(now);
            let node = &snapshot.nodes["n"];
            assert_eq!((node.totals.failed_attempts, node.totals.given_up), (3, 1));
            assert_eq!(snapshot.history.len(), 1);
            assert!(snapshot.history[0].given_up);
            assert_eq!(snapshot.history[0].attempts, 3);
        }
    }

    #[test]
    fn max_attempts_table() {
        let t0 = Instant::now();
        // (max_attempts, failures before giving up)
        for (max_attempts, attempts) in [(1u32, 1u32), (2, 2), (3, 3), (5, 5)] {
            let mut tracker = JobTracker::new(TrackerLimits {
                max_attempts,
                retry_backoff: Duration::ZERO,
                ..limits()
            });
            tracker.enqueue(spec("j", "n"), t0).expect("enqueue");
            let mut made = 0;
            loop {
                assert_eq!(tracker.start_ready(t0).len(), 1);
                made += 1;
                match tracker.finish(&outcome("j", failed()), t0).expect("finish") {
                    Decision::Retry { .. } => continue,
                    Decision::GiveUp { attempts: n, .. } => {
                        assert_eq!(n, attempts);
                        break;
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(made, attempts, "max_attempts {max_attempts}");
        }
    }

    #[test]
    fn success_after_a_retry_and_cancellation_are_final() {
        let t0 = Instant::now();
        let mut tracker = JobTracker::new(limits());
        tracker.enqueue(spec("j", "n"), t0).expect("enqueue");
        tracker.enqueue(spec("k", "n"), t0).expect("enqueue");
        tracker.start_ready(t0);
        tracker.finish(&outcome("j", failed()), t0).expect("fail");
        assert_eq!(
            tracker
                .finish(&outcome("k", JobStatus::Cancelled), t0)
                .expect("cancel"),
            Decision::Cancelled {
                spec: spec("k", "n")
            }
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(tracker.start_ready(later)[0].attempt, 2);
        let snapshot = tracker.snapshot(later);
        assert_eq!(snapshot.running[0].attempt, 2);
        assert_eq!(
            tracker
                .finish(
                    &outcome("j", JobStatus::Succeeded { games_written: 50 }),
                    later
                )
                .expect("finish"),
            Decision::Succeeded {
                spec: spec("j", "n"),
                games_written: 50
            }
        );
        let totals = &tracker.snapshot(later).nodes["n"].totals;
        assert_eq!(
            *totals,
            NodeTotals {
                succeeded: 1,
                failed_attempts: 1,
                given_up: 0,
                cancelled: 1,
                games_written: 50
            }
        );
        assert_eq!(tracker.games_by_config()["hex8_2p"], 50);
    }

    #[test]
    fn a_waiting_retry_does_not_block_later_jobs_of_its_node() {
        let t0 = Instant::now();
        let mut tracker = JobTracker::new(limits());
        tracker.enqueue(spec("j", "n"), t0).expect("enqueue");
        tracker.start_ready(t0);
        tracker.finish(&outcome("j", failed()), t0).expect("fail");
        tracker.enqueue(spec("k", "n"), t0).expect("enqueue");
        assert_eq!(ids(&tracker.start_ready(t0)), ["k"]);
        let snapshot = tracker.snapshot(t0);
        assert_eq!(snapshot.queued[0].id, "j");
        assert_eq!(snapshot.queued[0].starts_in, Duration::from_secs(10));
        assert_eq!(
            snapshot.queued[0].last_failure.as_deref(),
            Some("exited with code 1")
        );
    }

    #[test]
    fn errors_for_duplicates_and_unknown_outcomes() {
        let t0 = Instant::now();
        let mut tracker = JobTracker::new(limits());
        tracker.enqueue(spec("j", "n"), t0).expect("enqueue");
        assert_eq!(
            tracker.enqueue(spec("j", "m"), t0),
            Err(TrackerError::DuplicateId { id: "j".into() })
        );
        assert_eq!(
            tracker.finish(&outcome("j", failed()), t0),
            Err(TrackerError::NotRunning { id: "j".into() }),
            "queued, not running"
        );
        tracker.start_ready(t0);
        assert!(tracker.enqueue(spec("j", "n"), t0).is_err(), "running");
        tracker
            .finish(&outcome("j", JobStatus::Succeeded { games_written: 1 }), t0)
            .expect("finish");
        assert!(
            tracker.finish(&outcome("j", failed()), t0).is_err(),
            "twice"
        );
        tracker
            .enqueue(spec("j", "n"), t0)
            .expect("a finished id may be reused");
    }

    #[test]
    fn history_keeps_the_newest_up_to_the_limit() {
        let t0 = Instant::now();
        let mut tracker = JobTracker::new(TrackerLimits {
            default_target: 1000,
            ..limits()
        });
        for i in 0..250 {
            tracker
                .enqueue(spec(&format!("j{i}"), "n"), t0)
                .expect("enqueue");
        }
        assert_eq!(tracker.start_ready(t0).len(), 250);
        for i in 0..250 {
            let now = t0 + Duration::from_secs(i);
            tracker
                .finish(
                    &outcome(&format!("j{i}"), JobStatus::Succeeded { games_written: 1 }),
                    now,
                )
                .expect("finish");
        }
        let snapshot = tracker.snapshot(t0 + Duration::from_secs(250));
        assert_eq!(snapshot.history.len(), 200);
        assert_eq!(snapshot.history[0].id, "j249");
        assert_eq!(snapshot.history[0].finished_ago, Duration::from_secs(1));
        assert_eq!(snapshot.history[199].id, "j50");
        assert_eq!(
            snapshot.nodes["n"].totals.succeeded, 250,
            "totals are not bounded by the history"
        );
    }

    #[test]
    fn cancel_and_drain_the_queue() {
        let t0 = Instant::now();
        let mut tracker = JobTracker::new(limits());
        for id in ["a", "b", "c"] {
            tracker.enqueue(spec(id, "n"), t0).expect("enqueue");
        }
        tracker.enqueue(spec("m", "other"), t0).expect("enqueue");
        let dropped: Vec<String> = tracker
            .cancel_queued_on("other")
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(dropped, ["m"]);
        assert!(tracker.cancel_queued_on("other").is_empty());
        assert_eq!(tracker.cancel_queued("b").map(|s| s.id), Some("b".into()));
        assert_eq!(tracker.cancel_queued("b"), None);
        assert_eq!(tracker.next_retry_at(), Some(t0));
        let drained: Vec<String> = tracker.drain_queue().into_iter().map(|s| s.id).collect();
        assert_eq!(drained, ["a", "c"]);
        assert_eq!(tracker.next_retry_at(), None);
        assert!(tracker.is_idle());
    }

    #[test]
    fn snapshot_serializes_for_get_jobs() {
        let t0 = Instant::now();
        let mut tracker = JobTracker::new(limits());
        tracker.set_target("idle-node", 4);
        tracker.enqueue(spec("r", "n"), t0).expect("enqueue");
        tracker.start_ready(t0);
        let snapshot = tracker.snapshot(t0 + Duration::from_secs(90));
        let json = serde_json::to_value(&snapshot).expect("json");
        assert_eq!(json["nodes"]["idle-node"]["target"], 4);
        assert_eq!(json["nodes"]["n"]["running"], 1);
        assert_eq!(json["nodes"]["n"]["succeeded"], 0);
        assert_eq!(json["running"][0]["running_for"], "1m 30s");
        let back: JobsSnapshot = serde_json::from_value(json).expect("back");
        assert_eq!(back, snapshot);
    }
}
