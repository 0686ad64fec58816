//! The sync actor: the thin shell that carries out [`CyclePolicy`]'s decisions. It keeps one timer at the
//! policy's next wake, starts each cycle on a runner thread ([`Runner::run_cycle`]) and hears its end as
//! [`CycleFinished`], cancels a cycle past its deadline, publishes the `sync` health check, `/sync` board and
//! metrics, stores dead letters, tells the scheduler about games received and the training nodes about games
//! written here. Its own thread never blocks on I/O.
//!
//! Stop: waits for the running cycle up to the shutdown timeout (less a margin), then cancels its transfers;
//! downloads live only under hidden temp names until verified, so nothing partial is ever under a final name.
//! A crash or restart drops the state, which cancels the running cycle; a process-wide lock keeps a new
//! incarnation's cycle from overlapping the old one's end.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::LocalBoxFuture;
use futures::FutureExt;
use tokio::sync::oneshot;

use super::board::{SyncBoard, SyncState};
use super::config::{Role, SyncConfig};
use super::messages::{
    CycleFinished, LocalGamesWritten, NotifySync, PullFile, RunSync, SyncTick, SyncWoke,
};
use super::metrics::sync_metrics;
use super::plan::{notify_targets, Peer};
use super::policy::{Action, CyclePolicy, Request};
use super::report::CycleReport;
use super::run::{CycleRequest, Layout, Runner};
use super::transport::{self, Cancel};
use crate::data_server::monitor::policy::DataServerState;
use crate::pressure::PressureGate;
use crate::runtime::circuit_breaker::Jitter;
use crate::runtime::restart_policy::jitter_sample;
use crate::runtime::{Behavior, Ctx, HandlerError, Handles, HealthBoard, TaskId};

/// The name of the health check sync publishes.
pub const HEALTH_CHECK: &str = "sync";
/// How long after start the first interval cycle runs.
const FIRST_CYCLE: Duration = Duration::from_secs(1);
/// How long after local games are written the first notice goes out (the writer's rename has happened by then).
pub const NOTICE_SOON: Duration = Duration::from_millis(100);
/// Time kept from the shutdown timeout for cancelling and the runtime's own stop.
const STOP_MARGIN: Duration = Duration::from_secs(1);

/// Where games received from peers are reported: (config key, games).
pub type GamesReceived = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// Everything the actor is built from (cloned into each incarnation).
#[derive(Clone)]
pub struct SyncSetup {
    pub config: SyncConfig,
    pub node: String,
    pub roles: Vec<Role>,
    /// Every node of the cluster (this one may be among them; it is never pulled from).
    pub peers: Vec<Peer>,
    pub layout: Layout,
    pub pressure: PressureGate,
    pub health: HealthBoard,
    pub board: SyncBoard,
    pub on_games: GamesReceived,
    /// Bearer token sent with notices to peers (`api.token`).
    pub token: Option<String>,
    /// When the second notice goes out after local games are written: the local data server lists a file
    /// written in place only once it is older than `data_server.settle`, so this one waits that long. The first
    /// goes out after [`NOTICE_SOON`] for files published by rename, which are listed at once.
    pub notify_after: Duration,
    /// The child's shutdown timeout.
    pub shutdown_timeout: Duration,
}

struct RunningCycle {
    id: u64,
    cancel: Cancel,
    done: Arc<AtomicBool>,
    runs: Vec<oneshot::Sender<CycleReport>>,
}

/// See the module doc.
pub struct SyncActor {
    setup: SyncSetup,
    runner: Arc<Runner>,
    policy: CyclePolicy,
    waiting_runs: VecDeque<oneshot::Sender<CycleReport>>,
    running: Option<RunningCycle>,
    wake: Option<TaskId>,
    started: Instant,
    last_success: Option<SystemTime>,
    local_data_server: Option<DataServerState>,
    notifier: Arc<Notifier>,
    /// Whether the last published `sync` check was failing (its changes are logged once each way).
    failing: bool,
}

impl SyncActor {
    pub fn new(setup: SyncSetup) -> SyncActor {
        let runner = Arc::new(Runner::new(
            setup.config.clone(),
            setup.node.clone(),
            setup.roles.clone(),
            setup.peers.clone(),
            setup.layout.clone(),
            setup.pressure.clone(),
            Jitter::random(),
        ));
        setup.board.set_runner(runner.clone());
        let policy = CyclePolicy::new(&setup.config, Instant::now() + FIRST_CYCLE, 1);
        let targets: Vec<Peer> =
            notify_targets(&setup.node, &setup.roles, &setup.peers, &setup.config.pulls)
                .into_iter()
                .cloned()
                .collect();
        let notifier = Arc::new(Notifier {
            node: setup.node.clone(),
            token: setup.token.clone(),
            timeout: setup.config.notify_timeout,
            after: setup.notify_after,
            targets,
            in_flight: AtomicBool::new(false),
            again: AtomicBool::new(false),
        });
        SyncActor {
            setup,
            runner,
            policy,
            waiting_runs: VecDeque::new(),
            running: None,
            wake: None,
            started: Instant::now(),
            last_success: None,
            local_data_server: None,
            notifier,
            failing: false,
        }
    }

    fn request(&mut self, request: Request, ctx: &mut Ctx<'_, Self>) -> Result<(), String> {
        let result = self.policy.request(Instant::now(), request);
        if let Err(refused) = &result {
            sync_metrics().refused.inc();
            tracing::warn!(error = %refused, "sync request refused; the caller should retry later");
        }
        self.poll(ctx);
        result.map_err(|e| e.to_string())
    }

    fn poll(&mut self, ctx: &mut Ctx<'_, Self>) {
        let actions = self.policy.poll(Instant::now(), jitter_sample());
        for action in actions {
            match action {
                Action::Start {
                    id,
                    peers,
                    trigger,
                    runs,
                } => self.start_cycle(id, peers, trigger, runs, ctx),
                Action::Cancel { id } => {
                    if let Some(running) = self.running.as_ref().filter(|r| r.id == id) {
                        tracing::warn!(cycle = id, deadline = %humantime::format_duration(self.setup.config.cycle_deadline), "sync cycle stalled past its deadline; cancelling its transfers (counted as a failed cycle)");
                        sync_metrics().cycles.with_label_values(&["stalled"]).inc();
                        running.cancel.cancel();
                    }
                }
            }
        }
        self.publish();
        self.reschedule(ctx);
    }

    fn start_cycle(
        &mut self,
        id: u64,
        peers: Option<std::collections::BTreeSet<String>>,
        trigger: String,
        runs: usize,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let runs: Vec<_> = (0..runs)
            .filter_map(|_| self.waiting_runs.pop_front())
            .collect();
        let cancel = Cancel::new();
        let done = Arc::new(AtomicBool::new(false));
        let request = CycleRequest {
            id,
            trigger: trigger.clone(),
            peers,
        };
        tracing::info!(cycle = id, %trigger, "sync cycle starting");
        let (tx, rx) = oneshot::channel();
        let runner = self.runner.clone();
        let thread_cancel = cancel.clone();
        let thread_done = done.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sync-cycle-{id}"))
            .spawn(move || {
                let report = runner.run_cycle(&request, &thread_cancel);
                thread_done.store(true, Ordering::Release);
                let _ = tx.send(report);
            });
        if let Err(error) = spawned {
            thread_done_now(&done);
            let report =
                CycleReport::not_run(id, &trigger, format!("cannot start a thread: {error}"));
            ctx.spawn(async move { CycleFinished { id, report } });
        } else {
            let trigger_for_loss = trigger.clone();
            ctx.spawn(async move {
                let report = rx.await.unwrap_or_else(|_| {
                    CycleReport::not_run(
                        id,
                        &trigger_for_loss,
                        "the cycle's thread ended without a report",
                    )
                });
                CycleFinished { id, report }
            });
        }
        self.running = Some(RunningCycle {
            id,
            cancel,
            done,
            runs,
        });
    }

    fn reschedule(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(wake) = self.wake.take() {
            ctx.cancel(wake);
        }
        if let Some(at) = self.policy.next_wake() {
            let delay = at.saturating_duration_since(Instant::now());
            self.wake = Some(ctx.send_later(delay, SyncWoke));
        }
    }

    fn publish(&mut self) {
        let counters = self.policy.counters();
        let health = self.policy.health();
        let failing = health.status == crate::runtime::HealthStatus::Failing;
        if failing != self.failing {
            self.failing = failing;
            if failing {
                tracing::error!(consecutive_failed_cycles = counters.consecutive_failures, detail = %health.detail, "sync unhealthy: too many cycles in a row failed; /health answers 503 until a cycle succeeds");
            } else {
                tracing::info!(detail = %health.detail, "sync healthy again after a successful cycle");
            }
        }
        let seconds_since = self.seconds_since_last_success();
        let metrics = sync_metrics();
        metrics.seconds_since_last_success.set(seconds_since);
        metrics
            .consecutive_failed_cycles
            .set(i64::from(counters.consecutive_failures));
        metrics.healthy.set(i64::from(!failing));
        self.setup.health.set(HEALTH_CHECK, health.clone());
        self.setup.board.set_state(SyncState {
            running_cycle: counters.running,
            consecutive_failed_cycles: counters.consecutive_failures,
            stalled_cycles: counters.stalled,
            refused_requests: counters.refused,
            pending_peers: counters.pending_peers,
            pending_runs: counters.pending_runs,
            last_successful_sync: self
                .last_success
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            seconds_since_last_successful_sync: self
                .policy
                .last_success()
                .map(|t| t.elapsed().as_secs_f64()),
            local_data_server: self.local_data_server.clone(),
            pressure_paused: self.setup.pressure.reason(),
            health: Some(health),
        });
    }

    fn seconds_since_last_success(&self) -> f64 {
        self.policy
            .last_success()
            .unwrap_or(self.started)
            .elapsed()
            .as_secs_f64()
    }
}

fn thread_done_now(done: &AtomicBool) {
    done.store(true, Ordering::Release);
}

impl Drop for SyncActor {
    fn drop(&mut self) {
        // A crash or restart: stop the running cycle's transfers (a graceful stop already waited for them).
        if let Some(running) = &self.running {
            running.cancel.cancel();
        }
    }
}

impl Behavior for SyncActor {
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let transports: Vec<&str> = self
            .runner
            .transports
            .iter()
            .map(|t| t.kind().as_str())
            .collect();
        tracing::info!(node = %self.setup.node, transports = %transports.join(","), peers = self.setup.peers.len(), "sync coordinator started");
        ctx.every(Duration::from_secs(1), || SyncTick);
        self.poll(ctx);
    }

    fn stopping(&mut self, _ctx: &mut Ctx<'_, Self>) -> Option<LocalBoxFuture<'static, ()>> {
        let running = self.running.as_ref()?;
        let cancel = running.cancel.clone();
        let done = running.done.clone();
        let id = running.id;
        let wait = self
            .setup
            .shutdown_timeout
            .saturating_sub(STOP_MARGIN)
            .max(self.setup.shutdown_timeout / 2);
        Some(
            async move {
                let until = Instant::now() + wait;
                while !done.load(Ordering::Acquire) && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if !done.load(Ordering::Acquire) {
                    tracing::warn!(cycle = id, waited_ms = wait.as_millis() as u64, "sync cycle still running at shutdown; cancelling its transfers (partial downloads stay hidden for resuming)");
                    cancel.cancel();
                    let until = Instant::now() + STOP_MARGIN / 2;
                    while !done.load(Ordering::Acquire) && Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            .boxed_local(),
        )
    }
}

impl Handles<SyncWoke> for SyncActor {
    fn handle(&mut self, _msg: &SyncWoke, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        self.wake = None;
        self.poll(ctx);
        Ok(())
    }
}

impl Handles<SyncTick> for SyncActor {
    fn handle(&mut self, _msg: &SyncTick, _ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        self.publish();
        Ok(())
    }
}

impl Handles<CycleFinished> for SyncActor {
    fn handle(&mut self, msg: &CycleFinished, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        let report = &msg.report;
        let runs = match self.running.take_if(|r| r.id == msg.id) {
            Some(running) => running.runs,
            None => Vec::new(),
        };
        let summary = report.summary();
        self.policy
            .finished(Instant::now(), msg.id, report.ok, summary.clone());
        if report.ok {
            self.last_success = Some(SystemTime::now());
            sync_metrics().cycles.with_label_values(&["ok"]).inc();
            tracing::info!(
                cycle = msg.id,
                files = report.installed,
                bytes = report.bytes,
                duration_ms = report.duration_ms,
                "sync cycle finished: {summary}"
            );
        } else if !report.cancelled {
            sync_metrics().cycles.with_label_values(&["failed"]).inc();
            tracing::warn!(
                cycle = msg.id,
                files = report.installed,
                bytes = report.bytes,
                duration_ms = report.duration_ms,
                "sync cycle had failures (the next cycle retries): {summary}"
            );
        } else {
            tracing::info!(
                cycle = msg.id,
                "sync cycle ended after being cancelled: {summary}"
            );
        }
        for gave_up in &report.gave_up {
            ctx.dead_letter(
                &PullFile {
                    peer: gave_up.peer.clone(),
                    category: gave_up.category.clone(),
                    path: gave_up.path.clone(),
                },
                &gave_up.error,
            );
        }
        for (config, games) in &report.games {
            if *games > 0 {
                (self.setup.on_games)(config, *games);
            }
        }
        self.setup
            .board
            .push_cycle(report.clone(), self.setup.config.history);
        for run in runs {
            let _ = run.send(report.clone());
        }
        self.poll(ctx);
        Ok(())
    }
}

impl Handles<NotifySync> for SyncActor {
    fn handle(
        &mut self,
        msg: &NotifySync,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<Result<(), String>, HandlerError> {
        if !self.setup.peers.iter().any(|p| p.name == msg.peer) || msg.peer == self.setup.node {
            return Ok(Err(format!(
                "peer {:?} is not another node of cluster.nodes",
                msg.peer
            )));
        }
        tracing::info!(peer = %msg.peer, "peer has new files; pulling from it soon");
        Ok(self.request(
            Request::Notice {
                peer: msg.peer.clone(),
            },
            ctx,
        ))
    }
}

impl Handles<RunSync> for SyncActor {
    fn handle(
        &mut self,
        msg: &RunSync,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<Result<oneshot::Receiver<CycleReport>, String>, HandlerError> {
        if let Some(peer) = &msg.peer {
            if !self.setup.peers.iter().any(|p| &p.name == peer) || *peer == self.setup.node {
                return Ok(Err(format!(
                    "peer {peer:?} is not another node of cluster.nodes"
                )));
            }
        }
        let (tx, rx) = oneshot::channel();
        self.waiting_runs.push_back(tx);
        match self.request(
            Request::Run {
                peer: msg.peer.clone(),
            },
            ctx,
        ) {
            Ok(()) => Ok(Ok(rx)),
            Err(error) => {
                self.waiting_runs.pop_back();
                Ok(Err(error))
            }
        }
    }
}

impl Handles<PullFile> for SyncActor {
    fn handle(&mut self, msg: &PullFile, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        tracing::info!(peer = %msg.peer, category = %msg.category, path = %msg.path, "pulling a dead-lettered file again: running a cycle for its peer");
        self.runner.retry_file(&msg.peer, &msg.category, &msg.path);
        self.request(
            Request::Run {
                peer: Some(msg.peer.clone()),
            },
            ctx,
        )
        .map_err(HandlerError::fail)
    }
}

impl Handles<LocalGamesWritten> for SyncActor {
    fn handle(
        &mut self,
        msg: &LocalGamesWritten,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        if !self.setup.config.notify_peers || self.notifier.targets.is_empty() {
            return Ok(());
        }
        if self.local_data_server.as_ref().is_some_and(|s| !s.up) {
            tracing::info!(config = %msg.config, "local data server is down; training nodes are not told of the new games (they pull at their next interval once it is up)");
            return Ok(());
        }
        self.notifier.clone().notify();
        Ok(())
    }
}

impl Handles<DataServerState> for SyncActor {
    fn handle(
        &mut self,
        msg: &DataServerState,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        tracing::info!(up = msg.up, state = %crate::logging::serde_name(&msg.state), "sync heard the local data server's state");
        self.local_data_server = Some(msg.clone());
        self.publish();
        Ok(())
    }
}

/// Tells the training nodes that games were written here, one notice in flight at a time (a notice asked for
/// while one is in flight is sent once after it).
struct Notifier {
    node: String,
    token: Option<String>,
    timeout: Duration,
    after: Duration,
    targets: Vec<Peer>,
    in_flight: AtomicBool,
    again: AtomicBool,
}

impl Notifier {
    fn notify(self: Arc<Self>) {
        if self.in_flight.swap(true, Ordering::AcqRel) {
            self.again.store(true, Ordering::Release);
            return;
        }
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("sync-notify".into())
            .spawn(move || {
                loop {
                    // Once soon (files renamed into place are listed at once), once more when files written in
                    // place have settled; the training node coalesces the two.
                    std::thread::sleep(NOTICE_SOON);
                    this.send_all();
                    if this.after > NOTICE_SOON {
                        std::thread::sleep(this.after - NOTICE_SOON);
                        this.send_all();
                    }
                    if !this.again.swap(false, Ordering::AcqRel) {
                        break;
                    }
                }
                this.in_flight.store(false, Ordering::Release);
            });
        if let Err(error) = spawned {
            self.in_flight.store(false, Ordering::Release);
            tracing::warn!(%error, "cannot start the notice thread; training nodes pull at their next interval");
        }
    }

    fn send_all(&self) {
        let agent = ureq::AgentBuilder::new()
            .timeout(self.timeout)
            .redirects(0)
            .build();
        for peer in &self.targets {
            let Some(api) = peer.api_url.as_deref() else {
                tracing::debug!(peer = %peer.name, "training node has no api_url; it pulls at its next interval");
                continue;
            };
            let url = format!(
                "{}/sync/notify?peer={}",
                api.trim_end_matches('/'),
                transport::encode_segment(&self.node)
            );
            let mut request = agent.post(&url);
            if let Some(token) = &self.token {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
            match request.call() {
                Ok(_) => tracing::debug!(peer = %peer.name, "told the training node of new games"),
                Err(error) => {
                    tracing::warn!(peer = %peer.name, %url, %error, "could not tell the training node of new games; it pulls at its next interval")
                }
            }
        }
    }
}
