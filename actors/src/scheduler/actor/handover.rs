//! The scheduler's part in a cluster with one planner: who plans, and the worker's side of a hand-over.
//!
//! One node (`cluster.planner`) plans for the whole cluster and hands each job to its node's daemon
//! (`jobs::remote`); every other daemon is a worker: it makes no plan and runs the jobs it is handed, at its own
//! target concurrency, answering the planner's questions about them. The messages here are what the control
//! API's `POST /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/cancel` and `GET /jobs/handed-over` send.
//!
//! A planner that starts asks every worker with a daemon what it holds from it ([`Reconciliation`], pure) before its
//! first plan, and adopts those jobs: after a crash or a restart of the planner the work already out is neither
//! lost nor sent twice, and jobs that ended while the planner was away are collected and their games counted.
//! A worker that does not answer does not hold up the plan; it is asked again every
//! `scheduler.jobs.dispatch.reconcile_every` until it answers. The worker keeps what it was handed in a bounded
//! [`HandedOverBook`] until the planner has seen each job's end.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::SchedulerActor;
use crate::jobs::remote::{
    jobs_to_adopt, DispatchRequest, HandedOver, HandedOverList, RemoteJob, RemoteState,
};
use crate::jobs::spec::JobSpec;
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
    /// Jobs found on workers at start and adopted (planner only).
    pub jobs_adopted: u64,
    /// Workers not yet asked successfully what they hold from this planner (planner only).
    pub workers_unreconciled: Vec<String>,
}

/// The worker's record of what its planner handed it: each job as the planner sent it, until the planner has
/// seen its end. Bounded: past `limit` entries the oldest whose end was seen go first, then the oldest of all.
#[derive(Debug, Clone)]
pub struct HandedOverBook {
    limit: usize,
    order: VecDeque<String>,
    jobs: HashMap<String, (JobSpec, bool)>,
}

impl HandedOverBook {
    pub fn new(limit: usize) -> HandedOverBook {
        HandedOverBook {
            limit: limit.max(1),
            order: VecDeque::new(),
            jobs: HashMap::new(),
        }
    }

    /// Records a job as handed over; returns the id of an entry whose end the planner never saw, when the bound
    /// forced it out.
    pub fn record(&mut self, spec: JobSpec) -> Option<String> {
        if self.jobs.contains_key(&spec.id) {
            return None;
        }
        self.order.push_back(spec.id.clone());
        self.jobs.insert(spec.id.clone(), (spec, false));
        if self.jobs.len() <= self.limit {
            return None;
        }
        let seen = self
            .order
            .iter()
            .position(|id| self.jobs.get(id).is_some_and(|(_, seen)| *seen));
        let index = seen.unwrap_or(0);
        let id = self.order.remove(index)?;
        self.jobs.remove(&id);
        seen.is_none().then_some(id)
    }

    /// The planner has seen job `id` end.
    pub fn seen_end(&mut self, id: &str) {
        if let Some((_, seen)) = self.jobs.get_mut(id) {
            *seen = true;
        }
    }

    /// Every job whose end the planner has not seen, oldest first, with where it is now (`place`: `None` when the
    /// job table no longer knows it; such a job is left out).
    pub fn unseen(&self, place: impl Fn(&str) -> Option<RemoteState>) -> Vec<HandedOver> {
        self.order
            .iter()
            .filter_map(|id| {
                let (spec, seen) = self.jobs.get(id)?;
                if *seen {
                    return None;
                }
                Some(HandedOver {
                    job: spec.clone(),
                    state: place(id)?,
                })
            })
            .collect()
    }
}

/// The planner's round of questions to its workers at start: who was asked, who answered. Pure.
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Workers not yet answered.
    todo: BTreeSet<String>,
    /// Workers asked and not yet answered or failed.
    asking: BTreeSet<String>,
    /// Every worker was asked once (answered or not): the first plan may be made.
    first_round_done: bool,
    adopted: u64,
}

impl Reconciliation {
    /// A round over `workers` (the nodes reached through their daemon); with none, planning may start at once.
    pub fn new(workers: impl IntoIterator<Item = String>) -> Reconciliation {
        let todo: BTreeSet<String> = workers.into_iter().collect();
        Reconciliation {
            first_round_done: todo.is_empty(),
            todo,
            ..Reconciliation::default()
        }
    }

    /// The workers to ask now: every one not answered yet and not being asked.
    pub fn next_to_ask(&mut self) -> Vec<String> {
        let ask: Vec<String> = self.todo.difference(&self.asking).cloned().collect();
        self.asking.extend(ask.iter().cloned());
        ask
    }

    /// `node`'s question ended: answered (`adopted` jobs taken over) or not (asked again later). True when this
    /// ended the first round.
    pub fn ended(&mut self, node: &str, answered: Option<u64>) -> bool {
        self.asking.remove(node);
        if let Some(adopted) = answered {
            self.todo.remove(node);
            self.adopted += adopted;
        }
        let ends_round = !self.first_round_done && self.asking.is_empty();
        if ends_round {
            self.first_round_done = true;
        }
        ends_round
    }

    /// The first plan may be made.
    pub fn may_plan(&self) -> bool {
        self.first_round_done
    }

    /// Some worker is still to be asked.
    pub fn pending(&self) -> bool {
        !self.todo.is_empty()
    }

    pub fn adopted(&self) -> u64 {
        self.adopted
    }

    pub fn unreconciled(&self) -> Vec<String> {
        self.todo.iter().cloned().collect()
    }
}

/// Query (worker): the jobs the planner handed over whose end it has not seen (`GET /jobs/handed-over`); refused
/// on the planner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListHandedOver;
impl Message for ListHandedOver {
    type Reply = Result<HandedOverList, String>;
    const NAME: &'static str = "ListHandedOver";
}

/// Timer (planner): ask the workers not yet reconciled what they hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reconcile;
impl Message for Reconcile {
    type Reply = ();
    const NAME: &'static str = "Reconcile";
}

/// What one worker answered to [`Reconcile`]'s question.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandedOverFound {
    pub node: String,
    pub answer: Result<HandedOverList, String>,
}
impl Message for HandedOverFound {
    type Reply = ();
    const NAME: &'static str = "HandedOverFound";
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
            jobs_adopted: self.reconciliation.adopted(),
            workers_unreconciled: self.reconciliation.unreconciled(),
        }
    }

    /// The workers this planner reaches through their daemon (the ones it asks at start).
    pub(super) fn daemon_workers(&self) -> Vec<String> {
        if !self.role.plans() {
            return Vec::new();
        }
        self.nodes
            .iter()
            .filter(|n| {
                matches!(
                    self.placement(&n.name),
                    Some(crate::jobs::executor::Placement::Daemon { .. })
                )
            })
            .map(|n| n.name.clone())
            .collect()
    }

    /// Asks every worker still to be reconciled what it holds; each answer comes back as [`HandedOverFound`].
    pub(super) fn ask_workers(&mut self, ctx: &mut Ctx<'_, Self>) {
        for node in self.reconciliation.next_to_ask() {
            let Some(crate::jobs::executor::Placement::Daemon { api_url }) = self.placement(&node)
            else {
                let _ = self.reconciliation.ended(&node, Some(0));
                continue;
            };
            let executors = self.executors.clone();
            let me = ctx.myself();
            actix_rt::spawn(async move {
                let answer = executors.list_handed_over(&api_url).await;
                let _ = me.tell(HandedOverFound { node, answer });
            });
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
        if let Some(dropped) = self.handed_over.record(spec.clone()) {
            tracing::warn!(job = %dropped, "handed-over job forgotten before the planner saw its end (the record is full); the planner will not collect it, its games still sync");
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
        if matches!(
            self.tracker.lookup(&msg.id),
            Some(JobWhere::Finished { .. })
        ) {
            self.handed_over.seen_end(&msg.id);
        }
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

impl Handles<ListHandedOver> for SchedulerActor {
    fn handle(
        &mut self,
        _msg: &ListHandedOver,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<Result<HandedOverList, String>, HandlerError> {
        let SchedulerRole::Worker { planner } = &self.role else {
            return Ok(Err(
                "this node is the planner: it holds no jobs handed over by another".to_string(),
            ));
        };
        self.planner_heard = Some(Instant::now());
        let jobs = self.handed_over.unseen(|id| {
            self.tracker.lookup(id).map(|place| match place {
                JobWhere::Queued => RemoteState::Queued,
                JobWhere::Running => RemoteState::Running,
                JobWhere::Finished { .. } => RemoteState::Finished,
            })
        });
        Ok(Ok(HandedOverList {
            planner: planner.clone(),
            jobs,
        }))
    }
}

impl Handles<Reconcile> for SchedulerActor {
    fn handle(&mut self, _msg: &Reconcile, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        if self.reconciliation.pending() {
            self.ask_workers(ctx);
        }
        Ok(())
    }
}

impl Handles<HandedOverFound> for SchedulerActor {
    fn handle(
        &mut self,
        msg: &HandedOverFound,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        let answered = match &msg.answer {
            Ok(list) => {
                let planner = self.local_name();
                let adopt = jobs_to_adopt(&planner, &msg.node, list, |id| {
                    self.tracker.lookup(id).is_some()
                });
                if list.planner != planner {
                    tracing::warn!(node = %msg.node, its_planner = %list.planner, "worker takes its jobs from another planner; check cluster.planner on both nodes");
                }
                let now = Instant::now();
                let mut adopted = 0;
                for spec in adopt {
                    let id = spec.id.clone();
                    match self.tracker.enqueue(spec, now) {
                        Ok(()) => adopted += 1,
                        Err(error) => {
                            tracing::warn!(job = %id, node = %msg.node, %error, "job found on the worker not adopted; it finishes there uncollected")
                        }
                    }
                }
                tracing::info!(node = %msg.node, found = list.jobs.len(), adopted, "asked the worker what it holds from this planner");
                Some(adopted)
            }
            Err(error) => {
                tracing::warn!(node = %msg.node, %error, retry_in_s = self.config.jobs.dispatch.reconcile_every.as_secs(), "worker not reconciled: jobs it holds are collected once it answers; planning goes on");
                None
            }
        };
        if self.reconciliation.ended(&msg.node, answered) {
            tracing::info!(
                adopted = self.reconciliation.adopted(),
                unreconciled = self.reconciliation.unreconciled().len(),
                "workers reconciled; planning starts"
            );
        }
        self.step(ctx, false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> JobSpec {
        JobSpec {
            id: id.into(),
            ..crate::jobs::spec::tests::sample_spec()
        }
    }

    #[test]
    fn the_book_lists_what_the_planner_has_not_seen_end_and_stays_bounded() {
        let mut book = HandedOverBook::new(3);
        assert_eq!(book.record(spec("a")), None);
        assert_eq!(book.record(spec("b")), None);
        assert_eq!(book.record(spec("a")), None, "a repeat is not a new entry");
        book.seen_end("a");
        let running = |_: &str| Some(RemoteState::Running);
        let ids = |l: Vec<HandedOver>| l.into_iter().map(|h| h.job.id).collect::<Vec<_>>();
        assert_eq!(ids(book.unseen(running)), ["b"]);
        assert_eq!(book.record(spec("c")), None);
        // Full: the seen "a" goes first, silently.
        assert_eq!(book.record(spec("d")), None);
        assert_eq!(ids(book.unseen(running)), ["b", "c", "d"]);
        // Full of unseen: the oldest goes, and is reported.
        assert_eq!(book.record(spec("e")), Some("b".to_string()));
        assert_eq!(ids(book.unseen(running)), ["c", "d", "e"]);
        // A job the table forgot is left out.
        assert_eq!(
            ids(book.unseen(|id| (id != "d").then_some(RemoteState::Finished))),
            ["c", "e"]
        );
    }

    #[test]
    fn reconciliation_plans_after_one_round_and_asks_again_who_did_not_answer() {
        let mut r = Reconciliation::new(["w1".to_string(), "w2".to_string()]);
        assert!(!r.may_plan());
        assert_eq!(r.next_to_ask(), ["w1", "w2"]);
        assert!(r.next_to_ask().is_empty(), "not asked twice at once");
        assert!(!r.ended("w1", Some(2)));
        assert!(!r.may_plan());
        assert!(r.ended("w2", None), "the round ends with the last answer");
        assert!(r.may_plan());
        assert!(r.pending());
        assert_eq!(r.unreconciled(), ["w2"]);
        assert_eq!(r.next_to_ask(), ["w2"]);
        assert!(!r.ended("w2", Some(1)), "a later answer ends no round");
        assert!(!r.pending());
        assert_eq!(r.adopted(), 3);
        assert!(r.next_to_ask().is_empty());
        // No daemon workers: plan at once.
        let none = Reconciliation::new(Vec::<String>::new());
        assert!(none.may_plan() && !none.pending());
    }

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
