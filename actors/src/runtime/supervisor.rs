//! The supervisor actor: starts children in order, restarts them by strategy with backoff, escalates when
//! restarts pile up, runs the watchdog, and stops everything in reverse order.
//!
//! A manual in short (words from OTP/kameo, numbers from the domain file):
//! - children start one after another, each waiting for the previous one's `started`;
//! - a child that fails (panic, crash error, watchdog) is restarted per its restart type (`permanent`, `transient`,
//!   `temporary`) together with the siblings the strategy names (`one_for_one`, `one_for_all`, `rest_for_one`),
//!   after the failed child's backoff (100 ms doubling to 30 s, ±10 %, reset after 60 s healthy);
//! - more than `max_restarts` within `within` makes the supervisor give up: it drops its children's state and fails
//!   to its parent; the root giving up resolves [`RootHandle::exited`] so the daemon exits with code 1;
//! - the watchdog treats a child with no heartbeat within its deadline as failed;
//! - `Shutdown` stops children in reverse start order, each within its shutdown timeout, then aborts it and says so.
//!
//! Restarts happen in place (see `cell`): addresses stay valid and queued messages are kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Recipient,
    SpawnHandle,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::child::{ChildKind, ChildShared, ChildState, Control};
use super::directory::{Directory, DirectoryEntry};
use super::restart_policy::{
    jitter_sample, Backoff, BackoffConfig, IntensityVerdict, RestartIntensity, Strategy,
};
use super::spec::{ChildHandle, ChildHandleToken, ChildOptions, ChildSpec, SpawnChild};
use super::tree::TreeShape;

/// A supervisor's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SupervisorOptions {
    pub strategy: Strategy,
    pub max_restarts: u32,
    pub within: Duration,
    pub backoff: BackoffConfig,
    /// How often the watchdog looks at its children's heartbeats.
    pub watchdog_check_every: Duration,
    /// How long one child may take to start before the supervisor goes on without waiting.
    pub start_timeout: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            strategy: Strategy::OneForOne,
            max_restarts: 5,
            within: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
            watchdog_check_every: Duration::from_secs(1),
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// Why the root supervisor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootExit {
    /// Restart intensity exceeded somewhere and escalated to the root.
    GaveUp { reason: String },
}

/// Sent by a child (a cell or a nested supervisor) to its supervisor when an incarnation ended.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct ChildEnded {
    pub index: usize,
    pub reason: String,
    /// `false` when the child stopped on its own (normal exit).
    pub failed: bool,
}

/// A supervisor command from its parent (nested supervisors take the same commands as workers).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(crate) struct SupervisorCommand(pub(crate) Control);

/// Stops the whole tree gracefully; the reply comes when every child has stopped or been aborted.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Shutdown;

struct Slot {
    handle: ChildHandle,
    options: ChildOptions,
    backoff: Backoff,
    /// Stopped for good (not restarted by its restart type).
    ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Down,
    Stopping,
}

/// A supervisor before it runs: its children, in start order.
pub struct SupervisorSpec {
    shared: Arc<ChildShared>,
    options: SupervisorOptions,
    child_options: ChildOptions,
    children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    pub fn new(name: impl Into<String>, options: SupervisorOptions) -> Self {
        SupervisorSpec {
            shared: ChildShared::new(name, ChildKind::Supervisor),
            options,
            child_options: ChildOptions {
                watchdog: None,
                ..ChildOptions::default()
            },
            children: Vec::new(),
        }
    }

    /// Adds a child; children start in the order they are added and stop in reverse.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// This supervisor's own restart type when nested (its shutdown timeout is the sum of its children's).
    pub fn as_child(mut self, restart: super::restart_policy::RestartType) -> Self {
        self.child_options.restart = restart;
        self
    }

    pub fn tree(&self) -> TreeShape {
        TreeShape {
            shared: self.shared.clone(),
            children: self.children.iter().map(|c| c.tree()).collect(),
        }
    }

    /// Total time a graceful stop of this subtree may take.
    fn total_shutdown(&self) -> Duration {
        self.children
            .iter()
            .map(|c| c.options().shutdown_timeout)
            .sum::<Duration>()
            + Duration::from_millis(500)
    }

    /// Starts this supervisor as the root of a tree on the current actix system.
    pub fn start_root(self) -> RootHandle {
        let tree = self.tree();
        let directory = Directory::new(self.directory_entries());
        let total = self.total_shutdown();
        let (exit_tx, exit_rx) = oneshot::channel();
        let (started_tx, started_rx) = oneshot::channel();
        let supervisor = Supervisor::new(self, None, Some(exit_tx), Some(started_tx));
        let addr = supervisor.start();
        RootHandle {
            addr,
            tree,
            directory,
            exit: Some(exit_rx),
            started: Some(started_rx),
            shutdown_budget: total,
        }
    }
}

impl SpawnChild for SupervisorSpec {
    fn shared(&self) -> Arc<ChildShared> {
        self.shared.clone()
    }

    fn options(&self) -> ChildOptions {
        ChildOptions {
            shutdown_timeout: self.total_shutdown(),
            ..self.child_options
        }
    }

    fn tree(&self) -> TreeShape {
        SupervisorSpec::tree(self)
    }

    fn directory_entries(&self) -> Vec<DirectoryEntry> {
        let mut entries = vec![DirectoryEntry {
            shared: self.shared.clone(),
            ping: None,
            replay: Default::default(),
        }];
        for child in &self.children {
            entries.extend(child.directory_entries());
        }
        entries
    }

    fn spawn(
        self: Box<Self>,
        parent: Recipient<ChildEnded>,
        index: usize,
    ) -> (ChildHandleToken, oneshot::Receiver<()>) {
        let (started_tx, started_rx) = oneshot::channel();
        let shared = self.shared.clone();
        let supervisor = Supervisor::new(*self, Some((parent, index)), None, Some(started_tx));
        let addr = supervisor.start();
        (
            ChildHandleToken(ChildHandle::Supervisor(shared, addr)),
            started_rx,
        )
    }
}

/// The running root: its address, tree shape, directory and exit signal.
pub struct RootHandle {
    pub addr: Addr<Supervisor>,
    pub tree: TreeShape,
    pub directory: Directory,
    exit: Option<oneshot::Receiver<RootExit>>,
    started: Option<oneshot::Receiver<()>>,
    /// Upper bound on a graceful shutdown of the whole tree.
    pub shutdown_budget: Duration,
}

impl RootHandle {
    /// Resolves when every child has started (or its start timeout passed).
    pub async fn started(&mut self) {
        if let Some(rx) = self.started.take() {
            let _ = rx.await;
        }
    }

    /// Resolves when the root supervisor gives up (never resolves while the tree is healthy).
    pub async fn exited(&mut self) -> RootExit {
        match self.exit.take() {
            Some(rx) => rx.await.unwrap_or(RootExit::GaveUp {
                reason: "root supervisor vanished".to_string(),
            }),
            None => futures::future::pending().await,
        }
    }

    /// Stops the tree in reverse order within [`RootHandle::shutdown_budget`]; `false` if the budget ran out.
    pub async fn shutdown(&self) -> bool {
        let budget = self.shutdown_budget + Duration::from_secs(1);
        matches!(
            tokio::time::timeout(budget, self.addr.send(Shutdown)).await,
            Ok(Ok(()))
        )
    }
}

/// The supervisor actor. See the module doc.
pub struct Supervisor {
    shared: Arc<ChildShared>,
    options: SupervisorOptions,
    pending: Vec<ChildSpec>,
    children: Vec<Slot>,
    intensity: RestartIntensity,
    parent: Option<(Recipient<ChildEnded>, usize)>,
    root_exit: Option<oneshot::Sender<RootExit>>,
    started_tx: Option<oneshot::Sender<()>>,
    stop_done: Vec<oneshot::Sender<()>>,
    phase: Phase,
    restart_timers: Vec<SpawnHandle>,
}

impl Supervisor {
    fn new(
        spec: SupervisorSpec,
        parent: Option<(Recipient<ChildEnded>, usize)>,
        root_exit: Option<oneshot::Sender<RootExit>>,
        started_tx: Option<oneshot::Sender<()>>,
    ) -> Self {
        Supervisor {
            shared: spec.shared,
            options: spec.options,
            pending: spec.children,
            children: Vec::new(),
            intensity: RestartIntensity::new(spec.options.max_restarts, spec.options.within),
            parent,
            root_exit,
            started_tx,
            stop_done: Vec::new(),
            phase: Phase::Starting,
            restart_timers: Vec::new(),
        }
    }

    fn name(&self) -> &str {
        &self.shared.name
    }

    /// Starts pending children one after another, each after the previous one said it started.
    fn start_next(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Starting {
            return;
        }
        if self.pending.is_empty() {
            self.phase = Phase::Running;
            self.shared.set_state(ChildState::Running);
            tracing::info!(supervisor = %self.shared.name, children = self.children.len(), "all children started");
            if let Some(tx) = self.started_tx.take() {
                let _ = tx.send(());
            }
            return;
        }
        let spec = self.pending.remove(0);
        let options = spec.options();
        let index = self.children.len();
        let (ChildHandleToken(handle), started) = spec.spawn(ctx.address().recipient(), index);
        let name = handle.shared().name.clone();
        let mut backoff = Backoff::new(self.options.backoff);
        backoff.started(Instant::now());
        self.children.push(Slot {
            handle,
            options,
            backoff,
            ended: false,
        });
        let timeout = self.options.start_timeout;
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(tokio::time::timeout(timeout, started)).map(move |outcome, sup, ctx| {
                if outcome.is_err() {
                    tracing::warn!(supervisor = %sup.shared.name, child = %name, timeout_ms = timeout.as_millis() as u64, "child did not report started in time; starting the next one anyway");
                }
                sup.start_next(ctx);
            }),
        );
    }

    fn handle_end(&mut self, index: usize, reason: String, failed: bool, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Stopping | Phase::Down) {
            return;
        }
        let Some(slot) = self.children.get_mut(index) else {
            return;
        };
        let name = slot.handle.shared().name.clone();
        if !slot.options.restart.restarts(failed) {
            slot.ended = true;
            let state = if failed {
                ChildState::Failed
            } else {
                ChildState::Stopped
            };
            slot.handle.shared().set_state(state);
            slot.handle.control(Control::Stop { done: None });
            tracing::warn!(supervisor = %self.shared.name, child = %name, %reason, restart = %crate::logging::serde_name(&slot.options.restart), "child ended and its restart type says not to restart it; it stays {}", state.as_str());
            return;
        }
        let now = Instant::now();
        match self.intensity.record(now) {
            IntensityVerdict::GiveUp { count } => {
                let why = format!(
                    "restart intensity exceeded: {count} restarts within {:?} (max {}); last: {name}: {reason}",
                    self.options.within, self.options.max_restarts
                );
                self.give_up(why, ctx);
            }
            IntensityVerdict::Restart { count } => {
                let affected = self.options.strategy.affected(index, self.children.len());
                for j in affected.clone().rev() {
                    let sibling = &self.children[j];
                    if sibling.ended
                        || (j != index
                            && sibling.options.restart
                                == super::restart_policy::RestartType::Temporary)
                    {
                        continue;
                    }
                    sibling.handle.control(Control::Reset {
                        reason: format!("{name} failed: {reason}"),
                    });
                    sibling.handle.shared().set_state(ChildState::BackingOff);
                }
                let delay = self.children[index]
                    .backoff
                    .next_delay(now, jitter_sample());
                tracing::warn!(
                    supervisor = %self.shared.name, child = %name, %reason, restarts_in_window = count,
                    delay_ms = delay.as_millis() as u64, strategy = %crate::logging::serde_name(&self.options.strategy),
                    "child ended; restarting it after backoff"
                );
                if delay.is_zero() {
                    // No timer round trip (its granularity is 1 ms) when the backoff is zero.
                    self.restart_children(index, affected);
                } else {
                    let timer = ctx.run_later(delay, move |sup, _ctx| {
                        sup.restart_children(index, affected)
                    });
                    self.restart_timers.push(timer);
                }
            }
        }
    }

    fn restart_children(&mut self, failed: usize, affected: std::ops::Range<usize>) {
        if !matches!(self.phase, Phase::Running | Phase::Starting) {
            return;
        }
        let now = Instant::now();
        for j in affected {
            let slot = &mut self.children[j];
            if slot.ended
                || (j != failed
                    && slot.options.restart == super::restart_policy::RestartType::Temporary)
            {
                continue;
            }
            slot.handle.shared().set_state(ChildState::Restarting);
            slot.handle.control(Control::Start);
            slot.backoff.started(now);
        }
    }

    /// Restart intensity exceeded: drop every child's state and fail to the parent (or end the daemon).
    fn give_up(&mut self, why: String, ctx: &mut Context<Self>) {
        tracing::error!(supervisor = %self.shared.name, reason = %why, "supervisor gives up: children's state dropped, failing to its parent");
        self.phase = Phase::Down;
        for timer in self.restart_timers.drain(..) {
            ctx.cancel_future(timer);
        }
        for slot in self.children.iter().rev() {
            slot.handle.control(Control::Reset {
                reason: why.clone(),
            });
        }
        for slot in &self.children {
            if !slot.ended {
                slot.handle.shared().set_state(ChildState::Failed);
            }
        }
        self.shared.set_state(ChildState::Failed);
        self.shared.record_failure(&why);
        if let Some((parent, index)) = &self.parent {
            parent.do_send(ChildEnded {
                index: *index,
                reason: why,
                failed: true,
            });
        } else if let Some(exit) = self.root_exit.take() {
            let _ = exit.send(RootExit::GaveUp { reason: why });
        }
    }

    fn watchdog(&mut self, ctx: &mut Context<Self>) {
        self.shared.beat();
        if self.phase != Phase::Running {
            return;
        }
        let mut stalled = Vec::new();
        for (i, slot) in self.children.iter().enumerate() {
            let Some(deadline) = slot.options.watchdog else {
                continue;
            };
            let shared = slot.handle.shared();
            if shared.kind.is_worker() && shared.state() == ChildState::Running {
                let silent = shared.since_last_beat();
                if silent > deadline {
                    stalled.push((i, silent, deadline));
                }
            }
        }
        for (i, silent, deadline) in stalled {
            let shared = self.children[i].handle.shared().clone();
            let reason = format!("watchdog: no progress for {silent:?} (deadline {deadline:?})");
            tracing::error!(supervisor = %self.shared.name, child = %shared.name, %reason, "child stalled; restarting it");
            shared.set_state(ChildState::Restarting);
            shared.record_failure(&reason);
            self.children[i].handle.control(Control::Reset {
                reason: reason.clone(),
            });
            self.handle_end(i, reason, true, ctx);
        }
    }

    /// Stops every child in reverse start order, each within its shutdown timeout, then stops itself.
    fn stop_all(&mut self, ctx: &mut Context<Self>) {
        if self.phase == Phase::Stopping {
            return;
        }
        self.phase = Phase::Stopping;
        self.shared.set_state(ChildState::Stopping);
        for timer in self.restart_timers.drain(..) {
            ctx.cancel_future(timer);
        }
        let children: Vec<(ChildHandle, Duration)> = self
            .children
            .iter()
            .map(|s| (s.handle.clone(), s.options.shutdown_timeout))
            .collect();
        let supervisor = self.shared.name.clone();
        let stop = async move {
            for (handle, timeout) in children.into_iter().rev() {
                let shared = handle.shared().clone();
                if shared.is_terminated() {
                    continue;
                }
                let (tx, rx) = oneshot::channel();
                let started = Instant::now();
                handle.control(Control::Stop { done: Some(tx) });
                match tokio::time::timeout(timeout, rx).await {
                    Ok(_) => {
                        tracing::info!(%supervisor, child = %shared.name, elapsed_ms = started.elapsed().as_millis() as u64, "child stopped")
                    }
                    Err(_) => {
                        tracing::warn!(%supervisor, child = %shared.name, timeout_ms = timeout.as_millis() as u64, "child did not stop within its shutdown timeout; aborting it");
                        handle.control(Control::Abort);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        shared.set_state(ChildState::Stopped);
                    }
                }
            }
        };
        ctx.wait(actix::fut::wrap_future::<_, Self>(stop).map(|_, sup, ctx| {
            sup.shared.set_state(ChildState::Stopped);
            tracing::info!(supervisor = %sup.shared.name, "all children stopped");
            for done in sup.stop_done.drain(..) {
                let _ = done.send(());
            }
            ctx.stop();
        }));
    }
}

impl Supervisor {
    fn mark_terminated(&self) {
        self.shared
            .terminated
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.mark_terminated();
    }

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.set_state(ChildState::Starting);
        let every = self.options.watchdog_check_every;
        ctx.run_interval(every, |sup, ctx| sup.watchdog(ctx));
        self.start_next(ctx);
    }
}

impl Handler<ChildEnded> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ChildEnded, ctx: &mut Self::Context) {
        self.handle_end(msg.index, msg.reason, msg.failed, ctx);
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = actix::ResponseFuture<()>;
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        tracing::info!(supervisor = %self.name(), "shutdown requested; stopping children in reverse start order");
        let (tx, rx) = oneshot::channel();
        self.stop_done.push(tx);
        self.stop_all(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<SupervisorCommand> for Supervisor {
    type Result = ();
    fn handle(&mut self, SupervisorCommand(control): SupervisorCommand, ctx: &mut Self::Context) {
        match control {
            Control::Reset { reason } => {
                if self.phase != Phase::Down {
                    tracing::info!(supervisor = %self.shared.name, %reason, "resetting every child");
                }
                self.phase = Phase::Down;
                for timer in self.restart_timers.drain(..) {
                    ctx.cancel_future(timer);
                }
                for slot in self.children.iter().rev() {
                    slot.handle.control(Control::Reset {
                        reason: reason.clone(),
                    });
                }
                self.shared.set_state(ChildState::Restarting);
            }
            Control::Start => {
                self.intensity.clear();
                self.shared.count_restart_if_started();
                let now = Instant::now();
                for slot in self.children.iter_mut() {
                    if !slot.ended {
                        slot.handle.control(Control::Start);
                        slot.backoff.started(now);
                    }
                }
                self.phase = if self.pending.is_empty() {
                    Phase::Running
                } else {
                    Phase::Starting
                };
                self.shared.set_state(ChildState::Running);
            }
            Control::Stop { done } => {
                if let Some(done) = done {
                    self.stop_done.push(done);
                }
                self.stop_all(ctx);
            }
            Control::Abort => {
                for slot in self.children.iter().rev() {
                    slot.handle.control(Control::Abort);
                }
                self.shared.set_state(ChildState::Stopped);
                for done in self.stop_done.drain(..) {
                    let _ = done.send(());
                }
                ctx.stop();
            }
        }
    }
}
