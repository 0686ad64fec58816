//! The scheduler's part in a cluster with one planner: who plans, and the worker's side of a hand-over.
//!
//! One node (`cluster.planner`) plans for the whole cluster and hands each job to its node's daemon
//! (`jobs::remote`); every other daemon is a worker: it makes no plan and runs the jobs it is handed, at its own
//! target concurrency, answering the planner's questions about them. The messages here are what the control
//! API's `POST /jobs`, `GET /jobs/{id}` and `POST /jobs/{id}/cancel` send.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::SchedulerActor;
use crate::jobs::remote::{DispatchRequest, RemoteJob, RemoteState};
use crate::jobs::tracker::JobWhere;
use crate::jobs::JobOutcome;
use crate::runtime::{Ctx, HandlerError, Handles, Message};

/// Whether this node's scheduler plans for the cluster or runs what the planner hands it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum SchedulerRole {
    /// Plans for every selfplay node of the cluster (a single machine plans for itself).
    Planner,
    /// Plans nothing; runs the jobs `planner` hands it.
    Worker {
        /// The node that plans.
        planner: String,
    },
}

impl SchedulerRole {
    /// The role of `this_node` when `planner` is the cluster's planner.
    pub fn of(this_node: &str, planner: &str) -> SchedulerRole {
        if this_node == planner {
            SchedulerRole::Planner
        } else {
            SchedulerRole::Worker {
                planner: planner.to_string(),
            }
        }
    }

    /// True for the planner.
    pub fn plans(&self) -> bool {
        matches!(self, SchedulerRole::Planner)
    }
}

/// The cluster side of `/status`: who plans, and (on a worker) when the planner was last heard from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterRoleReport {
    /// The node that plans.
    pub planner: String,
    /// Whether this node plans.
    pub plans: bool,
    /// Seconds since the planner last handed over or asked about a job (workers only; none: not yet).
    pub planner_last_heard_ago_s: Option<f64>,
    /// Jobs handed over by the planner since start.
    pub jobs_received: u64,
}

/// Run a job the planner hands over (`POST /jobs`). Accepted at once when new or already known (a retried
/// hand-over is idempotent); refused on a node that plans.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcceptJob {
    pub request: DispatchRequest,
}
/// Answer to [`AcceptJob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Accepted {
    /// Queued now.
    New,
    /// Already queued, running or finished: nothing changed.
    Known,
}
impl Message for AcceptJob {
    type Reply = Result<Accepted, String>;
    const NAME: &'static str = "AcceptJob";
}

/// Query: where one job is (`GET /jobs/{id}`); `None` when this node does not know it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupJob {
    pub id: String,
}
impl Message for LookupJob {
    type Reply = Option<RemoteJob>;
    const NAME: &'static str = "LookupJob";
}

/// Withdraw a job (`POST /jobs/{id}/cancel`): a queued one is dropped, a running one stopped; false when
/// unknown or already finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WithdrawJob {
    pub id: String,
}
impl Message for WithdrawJob {
    type Reply = bool;
    const NAME: &'static str = "WithdrawJob";
}

impl SchedulerActor {
    pub(super) fn role_report(&self, now: Instant) -> ClusterRoleReport {
        ClusterRoleReport {
            planner: match &self.role {
                SchedulerRole::Planner => self.local_name(),
                SchedulerRole::Worker { planner } => planner.clone(),
            },
            plans: self.role.plans(),
            planner_last_heard_ago_s: self
                .planner_heard
                .map(|t| now.saturating_duration_since(t).as_secs_f64()),
            jobs_received: self.jobs_received,
        }
    }

    pub(super) fn local_name(&self) -> String {
        if !self.this_node.is_empty() {
            return self.this_node.clone();
        }
        self.nodes
            .iter()
            .find(|n| n.local)
            .map(|n| n.name.clone())
            .unwrap_or_default()
    }
}

impl Handles<AcceptJob> for SchedulerActor {
    fn handle(
        &mut self,
        msg: &AcceptJob,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<Result<Accepted, String>, HandlerError> {
        let SchedulerRole::Worker { planner } = &self.role else {
            return Ok(Err(
                "this node is the planner: it makes its own jobs and takes none".to_string(),
            ));
        };
        if &msg.request.planner != planner {
            return Ok(Err(format!(
                "jobs come from the planner {planner}, not {} (check cluster.planner on both nodes)",
                msg.request.planner
            )));
        }
        self.planner_heard = Some(Instant::now());
        let mut spec = msg.request.job.clone();
        if let Err(e) = crate::jobs::spec::check_job_id(&spec.id) {
            return Ok(Err(e.to_string()));
        }
        if self.tracker.lookup(&spec.id).is_some() {
            return Ok(Ok(Accepted::Known));
        }
        // The job runs here, whatever node name and path the planner wrote.
        spec.node = self.local_name();
        spec.output = self.config.jobs.output_path(&spec.config_key, &spec.id);
        tracing::info!(job = %spec.id, config = %spec.config_key, games = spec.games, planner = %planner, "job handed over by the planner");
        if let Err(e) = self.tracker.enqueue(spec, Instant::now()) {
            return Ok(Err(e.to_string()));
        }
        self.jobs_received += 1;
        self.launch_ready(ctx);
        Ok(Ok(Accepted::New))
    }
}

impl Handles<LookupJob> for SchedulerActor {
    fn handle(
        &mut self,
        msg: &LookupJob,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<Option<RemoteJob>, HandlerError> {
        if !self.role.plans() {
            self.planner_heard = Some(Instant::now());
        }
        let local = self.local_name();
        Ok(self.tracker.lookup(&msg.id).map(|place| {
            let (state, outcome) = match place {
                JobWhere::Queued => (RemoteState::Queued, None),
                JobWhere::Running => (RemoteState::Running, None),
                JobWhere::Finished { status, duration } => (
                    RemoteState::Finished,
                    Some(JobOutcome {
                        job_id: msg.id.clone(),
                        node: local.clone(),
                        status,
                        duration,
                    }),
                ),
            };
            RemoteJob {
                id: msg.id.clone(),
                state,
                outcome,
            }
        }))
    }
}

impl Handles<WithdrawJob> for SchedulerActor {
    fn handle(&mut self, msg: &WithdrawJob, ctx: &mut Ctx<'_, Self>) -> Result<bool, HandlerError> {
        if self.tracker.cancel_queued(&msg.id).is_some() {
            tracing::info!(job = %msg.id, "queued job withdrawn by the planner");
            return Ok(true);
        }
        match self.tasks.remove(&msg.id) {
            Some(task) => {
                // Dropping the attempt's future stops the job: its guard kills the job's process group. The
                // table hears of it as any end, so the slot frees and the job is not retried.
                task.abort();
                tracing::info!(job = %msg.id, "running job withdrawn by the planner; stopped");
                let outcome = JobOutcome {
                    job_id: msg.id.clone(),
                    node: self.local_name(),
                    status: crate::jobs::JobStatus::Cancelled,
                    duration: Duration::ZERO,
                };
                let _ = ctx.myself().tell(super::JobFinished { outcome });
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_planner_plans() {
        assert_eq!(SchedulerRole::of("t1", "t1"), SchedulerRole::Planner);
        assert!(SchedulerRole::of("t1", "t1").plans());
        let worker = SchedulerRole::of("w1", "t1");
        assert!(!worker.plans());
        assert_eq!(
            worker,
            SchedulerRole::Worker {
                planner: "t1".into()
            }
        );
    }
}
