//! The data-server monitor actor: the thin shell that carries out [`MonitorPolicy`]'s decisions. It starts the
//! data server as an owned child process, watches it, polls `/health`, kills it, publishes state changes to
//! subscribers and keeps the metrics; every decision (when, whether, how long) is the policy's.
//!
//! How the pieces fit:
//! - Each server process is owned by a *keeper* task (on the actor's thread, outside the actor's own spawned work
//!   so it still runs while the actor shuts down). The keeper awaits the child's exit, relays its stderr to the
//!   log (keeping the last lines), and on exit tells the actor [`DataServerExited`] at once. A stop request
//!   (hung server, shutdown) makes the keeper terminate the child (SIGTERM, grace, SIGKILL to its group).
//! - Health polls run as the actor's spawned work and come back as [`HealthChecked`]; one timer ([`MonitorWoke`])
//!   is kept at the policy's next deadline.
//! - If the actor itself crashes, its state is dropped: the child's group is sent SIGKILL and the keeper, left to
//!   run, reaps it without reporting (the child is also `kill_on_drop` and has a parent-death signal should the
//!   thread go too); the fresh incarnation starts a new server. Run ids start at a random number per incarnation
//!   so late messages of an old one never match. A graceful stop already under way when the state is dropped
//!   (the runtime may cut the stop hook short) runs to its end in the keeper.

use std::cell::{Cell as StdCell, RefCell};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Stdio;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{FusedFuture, LocalBoxFuture};
use futures::FutureExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::command::ServerCommand;
use super::messages::{DataServerExited, DataServerStatus, HealthChecked, MonitorWoke};
use super::metrics::monitor_metrics;
use super::policy::{
    Action, DataServerState, ExitReport, MonitorPolicy, MonitorSnapshot, MonitorState, Notice,
    STDERR_TAIL_LINES,
};
use crate::data_server::config::DataServerConfig;
use crate::process::{signal_group, spawn_owned, terminate, Ended, ProcessError};
use crate::runtime::circuit_breaker::Jitter;
use crate::runtime::{
    ActorRef, Behavior, ChildOptions, ChildSpec, Ctx, HandlerError, Handles, HealthBoard,
    HealthCheck, TaskId, WorkerSpec,
};

/// The name of the check the monitor publishes on the health board.
pub const HEALTH_CHECK: &str = "data_server";

/// How long the keeper keeps reading a dead server's stderr for its last lines.
const STDERR_DRAIN: Duration = Duration::from_millis(500);
/// Extra time on top of `stop_grace` the actor's shutdown needs (SIGKILL, reaping).
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(2);

/// Who is told when the local data server goes down or comes up (the daemon routes it to the sync coordinator).
pub type StateListener = Arc<dyn Fn(DataServerState) + Send + Sync>;

/// A listener that ignores every state change.
pub fn ignore_state() -> StateListener {
    Arc::new(|_| {})
}

/// The data-server monitor. Build it with [`DataServerMonitor::new`] in a supervisor factory, or use
/// [`monitor_child`].
pub struct DataServerMonitor {
    config: DataServerConfig,
    node: String,
    command: ServerCommand,
    on_state: StateListener,
    policy: MonitorPolicy,
    keeper: Option<Keeper>,
    client: Option<awc::Client>,
    wake: Option<TaskId>,
    restarts_counted: u64,
    health: HealthBoard,
    published_health: Option<HealthCheck>,
}

impl DataServerMonitor {
    /// A monitor that runs `command` (see [`ServerCommand::current_exe`]) with `config` as node `node`, calls
    /// `on_state` on every change between up, down, circuit open and stopped, and keeps the check
    /// [`HEALTH_CHECK`] on `health` up to date.
    pub fn new(
        config: DataServerConfig,
        node: impl Into<String>,
        command: ServerCommand,
        on_state: StateListener,
        health: HealthBoard,
    ) -> Self {
        let policy = MonitorPolicy::new(&config, Jitter::random(), fastrand::u64(..));
        Self {
            config,
            node: node.into(),
            command,
            on_state,
            policy,
            keeper: None,
            client: None,
            wake: None,
            restarts_counted: 0,
            health,
            published_health: None,
        }
    }

    fn apply(&mut self, actions: Vec<Action>, ctx: &mut Ctx<'_, Self>) {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Spawn { run_id } => {
                    let now = Instant::now();
                    let more = match self.spawn_server(run_id, ctx) {
                        Ok(pid) => self.policy.spawned(now, run_id, pid),
                        Err(error) => self.policy.spawn_failed(now, run_id, error.to_string()),
                    };
                    queue.extend(more);
                }
                Action::CheckHealth { run_id, timeout } => self.check_health(run_id, timeout, ctx),
                Action::Kill { run_id, grace } => self.request_stop(run_id, grace, true),
                Action::Publish(state) => (self.on_state)(state),
                Action::Log(notice) => log_notice(&self.config.bind, notice),
            }
        }
        self.update_metrics();
        self.publish_health();
        self.reschedule(ctx);
    }

    /// Sets the board's check when it changed (the policy words it; the shell only carries it).
    fn publish_health(&mut self) {
        let check = self.policy.health(Instant::now());
        if self.published_health.as_ref() != Some(&check) {
            self.health.set(HEALTH_CHECK, check.clone());
            self.published_health = Some(check);
        }
    }

    fn spawn_server(&mut self, run_id: u64, ctx: &mut Ctx<'_, Self>) -> Result<u32, ProcessError> {
        let mut command = Command::new(&self.command.program);
        command
            .args(self.command.arguments(&self.config, &self.node))
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped());
        let child = spawn_owned(&mut command)?;
        let Some(pid) = child.id() else {
            return Err(ProcessError::Spawn {
                program: self.command.program.display().to_string(),
                source: std::io::Error::other("the process was gone before its pid could be read"),
            });
        };
        tracing::info!(pid, run_id, bind = %self.config.bind, "data server process started");
        let (stop_tx, stop_rx) = oneshot::channel();
        let reaped = Rc::new(StdCell::new(false));
        let wanted = Rc::new(StdCell::new(true));
        let task = actix_rt::spawn(keep(
            child,
            Report {
                run_id,
                pid,
                reaped: reaped.clone(),
                wanted: wanted.clone(),
                monitor: ctx.myself(),
            },
            stop_rx,
        ));
        // A previous keeper (should there be one) is dropped here, which kills its process.
        self.keeper = Some(Keeper {
            run_id,
            pid,
            stop: Some(stop_tx),
            reaped,
            wanted,
            task: Some(task),
        });
        Ok(pid)
    }

    fn check_health(&mut self, run_id: u64, timeout: Duration, ctx: &mut Ctx<'_, Self>) {
        let client = self
            .client
            .get_or_insert_with(|| awc::Client::builder().disable_redirects().finish())
            .clone();
        let url = health_url(&self.config.bind);
        ctx.spawn(async move {
            let request = client
                .get(url.as_str())
                .force_close()
                .timeout(timeout)
                .send();
            let error = match tokio::time::timeout(timeout, request).await {
                Ok(Ok(response)) if response.status().is_success() => None,
                Ok(Ok(response)) => Some(format!("GET {url} answered {}", response.status())),
                Ok(Err(error)) => Some(format!("GET {url} failed: {error}")),
                Err(_elapsed) => Some(format!(
                    "GET {url} did not answer within {}",
                    humantime::format_duration(timeout)
                )),
            };
            HealthChecked { run_id, error }
        });
    }

    fn request_stop(&mut self, run_id: u64, grace: Duration, report: bool) {
        if let Some(keeper) = self.keeper.as_mut().filter(|k| k.run_id == run_id) {
            if let Some(stop) = keeper.stop.take() {
                // A send error means the keeper already ended: its exit report is on its way.
                let _ = stop.send(StopRequest { grace, report });
            }
        }
    }

    fn reschedule(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(wake) = self.wake.take() {
            ctx.cancel(wake);
        }
        if let Some(at) = self.policy.next_wake() {
            let delay = at.saturating_duration_since(Instant::now());
            self.wake = Some(ctx.send_later(delay, MonitorWoke));
        }
    }

    fn update_metrics(&mut self) {
        let now = Instant::now();
        let metrics = monitor_metrics();
        metrics
            .up
            .set(i64::from(self.policy.state() == MonitorState::Up));
        metrics
            .circuit_open
            .set(i64::from(self.policy.circuit_open(now)));
        let restarts = self.policy.snapshot(now).restarts;
        if restarts > self.restarts_counted {
            metrics.restarts.inc_by(restarts - self.restarts_counted);
            self.restarts_counted = restarts;
        }
    }
}

impl Behavior for DataServerMonitor {
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.client = Some(awc::Client::builder().disable_redirects().finish());
        let actions = self.policy.start(Instant::now());
        self.apply(actions, ctx);
    }

    fn stopping(&mut self, ctx: &mut Ctx<'_, Self>) -> Option<LocalBoxFuture<'static, ()>> {
        let actions = self.policy.stop();
        self.apply(actions, ctx);
        monitor_metrics().up.set(0);
        let mut keeper = self.keeper.take()?;
        if let Some(stop) = keeper.stop.take() {
            let _ = stop.send(StopRequest {
                grace: self.config.stop_grace,
                report: false,
            });
        }
        let pid = keeper.pid;
        Some(
            async move {
                if let Some(task) = keeper.task.as_mut() {
                    let _ = task.await;
                }
                tracing::info!(pid, "data server stopped");
                drop(keeper);
            }
            .boxed_local(),
        )
    }
}

impl Handles<DataServerStatus> for DataServerMonitor {
    fn handle(
        &mut self,
        _msg: &DataServerStatus,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<MonitorSnapshot, HandlerError> {
        Ok(self.policy.snapshot(Instant::now()))
    }
}

impl Handles<DataServerExited> for DataServerMonitor {
    fn handle(
        &mut self,
        msg: &DataServerExited,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        if self.keeper.as_ref().is_some_and(|k| k.run_id == msg.run_id) {
            self.keeper = None;
        }
        let actions = self
            .policy
            .exited(Instant::now(), msg.run_id, msg.pid, msg.exit.clone());
        self.apply(actions, ctx);
        Ok(())
    }
}

impl Handles<HealthChecked> for DataServerMonitor {
    fn handle(&mut self, msg: &HealthChecked, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        let outcome = match &msg.error {
            None => Ok(()),
            Some(error) => Err(error.clone()),
        };
        let actions = self
            .policy
            .health_checked(Instant::now(), msg.run_id, outcome);
        self.apply(actions, ctx);
        Ok(())
    }
}

impl Handles<MonitorWoke> for DataServerMonitor {
    fn handle(&mut self, _msg: &MonitorWoke, ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        self.wake = None;
        let actions = self.policy.tick(Instant::now());
        self.apply(actions, ctx);
        Ok(())
    }
}

/// The child spec for the daemon's tree: `spec` (made with [`WorkerSpec::new`], so its [`ActorRef`] can be handed
/// out first) running a [`DataServerMonitor`] with these settings in every incarnation.
pub fn monitor_child(
    spec: WorkerSpec<DataServerMonitor>,
    config: DataServerConfig,
    node: String,
    command: ServerCommand,
    on_state: StateListener,
    health: HealthBoard,
) -> ChildSpec {
    spec.factory(move || {
        DataServerMonitor::new(
            config.clone(),
            node.clone(),
            command.clone(),
            on_state.clone(),
            health.clone(),
        )
    })
}

/// `base` with a shutdown timeout long enough to stop the server gracefully (`stop_grace` plus a margin).
pub fn monitor_child_options(base: ChildOptions, config: &DataServerConfig) -> ChildOptions {
    ChildOptions {
        shutdown_timeout: base
            .shutdown_timeout
            .max(config.stop_grace + SHUTDOWN_MARGIN),
        ..base
    }
}

/// What `/status` asks, for callers holding only the reference.
pub async fn data_server_status(
    monitor: &ActorRef<DataServerMonitor>,
    timeout: Duration,
) -> Result<MonitorSnapshot, crate::runtime::DeliveryError> {
    monitor.ask(DataServerStatus, timeout).await
}

/// `http://ADDR/health`, with an unspecified bind address (`0.0.0.0`, `::`) polled on loopback.
pub fn health_url(bind: &str) -> String {
    match bind.parse::<SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            format!("http://{addr}/health")
        }
        Err(_) => format!("http://{bind}/health"),
    }
}

fn log_notice(bind: &str, notice: Notice) {
    match notice {
        Notice::Up { pid } => tracing::info!(pid, %bind, "data server is up"),
        Notice::Exited {
            pid,
            ended,
            stderr_tail,
        } => {
            tracing::warn!(pid, ended = %ended.map_or_else(|| "ended".to_string(), |e| e.to_string()), stderr_tail = %stderr_tail.join(" | "), "data server exited")
        }
        Notice::AddressInUse { bind, stderr_tail } => tracing::error!(
            %bind,
            stderr_tail = %stderr_tail.join(" | "),
            "data server cannot listen: address {bind} is already in use; stop the process listening there or change data_server.bind (retrying with backoff)"
        ),
        Notice::SpawnFailed { error } => {
            tracing::error!(%error, "data server process could not be started")
        }
        Notice::Hung { pid, reason } => tracing::warn!(pid, %reason, "data server hangs"),
        Notice::CircuitOpened { retry_in } => tracing::error!(
            retry_in_ms = retry_in.as_millis() as u64,
            "data server restarted too often; circuit open, no restart until it half-opens"
        ),
        Notice::CircuitClosed => tracing::info!("data server came back; circuit closed"),
        Notice::RestartScheduled { delay } => tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "data server restart scheduled"
        ),
    }
}

struct StopRequest {
    grace: Duration,
    report: bool,
}

/// The actor's hold on a running server's keeper task.
struct Keeper {
    run_id: u64,
    pid: u32,
    stop: Option<oneshot::Sender<StopRequest>>,
    reaped: Rc<StdCell<bool>>,
    /// False once the actor state holding this keeper is gone: then the exit is not reported.
    wanted: Rc<StdCell<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        // Whatever happens next, the monitor that would read the report is gone.
        self.wanted.set(false);
        let Some(task) = self.task.take() else {
            return;
        };
        if task.is_finished() {
            return;
        }
        // The keeper task is left to run: it reaps the child (no zombie), and a graceful stop already asked for
        // (shutdown, hung server) runs to its end even if the actor's stop hook was cut short. Should the thread
        // go away too, the child is killed on drop and by its parent-death signal.
        let Some(stop) = self.stop.take() else {
            return;
        };
        // No stop asked for: the monitor crashed or restarts. Kill the whole group now.
        if !self.reaped.get() {
            if let Err(error) = signal_group(self.pid, libc::SIGKILL) {
                tracing::warn!(pid = self.pid, %error, "could not kill the data server on drop");
            }
        }
        let _ = stop.send(StopRequest {
            grace: Duration::ZERO,
            report: false,
        });
    }
}

/// Where a keeper reports, and the flags it shares with the actor's [`Keeper`].
struct Report {
    run_id: u64,
    pid: u32,
    reaped: Rc<StdCell<bool>>,
    wanted: Rc<StdCell<bool>>,
    monitor: ActorRef<DataServerMonitor>,
}

/// Owns one server process until it ends: relays its stderr, reports its exit, stops it on request.
async fn keep(mut child: Child, report_to: Report, stop: oneshot::Receiver<StopRequest>) {
    let Report {
        run_id,
        pid,
        reaped,
        wanted,
        monitor,
    } = report_to;
    let tail = Rc::new(RefCell::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
    let relay = relay_stderr(child.stderr.take(), pid, tail.clone()).fuse();
    let waited = wait_or_stop(&mut child, pid, stop).fuse();
    futures::pin_mut!(relay, waited);
    let (outcome, report) = loop {
        futures::select! {
            result = waited => break result,
            () = relay => {}
        }
    };
    reaped.set(true);
    if !relay.is_terminated() {
        let _ = tokio::time::timeout(STDERR_DRAIN, relay.as_mut()).await;
    }
    if !report || !wanted.get() {
        return;
    }
    let (ended, wait_error) = match outcome {
        Ok(ended) => (Some(ended), None),
        Err(error) => (None, Some(error)),
    };
    let stderr_tail = tail.borrow().iter().cloned().collect();
    let exited = DataServerExited {
        run_id,
        pid,
        exit: ExitReport {
            ended,
            wait_error,
            stderr_tail,
        },
    };
    if let Err(error) = monitor.tell(exited) {
        tracing::warn!(pid, %error, "could not tell the monitor that the data server ended");
    }
}

/// Waits for the child to end, or stops it when asked. Returns how it ended and whether to report it.
async fn wait_or_stop(
    child: &mut Child,
    pid: u32,
    stop: oneshot::Receiver<StopRequest>,
) -> (Result<Ended, String>, bool) {
    enum Event {
        Exited(std::io::Result<std::process::ExitStatus>),
        Stop(Option<StopRequest>),
    }
    let event = tokio::select! {
        status = child.wait() => Event::Exited(status),
        request = stop => Event::Stop(request.ok()),
    };
    match event {
        Event::Exited(Ok(status)) => (Ok(Ended::from_status(status)), true),
        Event::Exited(Err(error)) => (Err(format!("waiting for {pid} failed: {error}")), true),
        Event::Stop(request) => {
            // No request but a closed channel: the monitor is gone; stop the child without grace.
            let (grace, report) = request.map_or((Duration::ZERO, false), |r| (r.grace, r.report));
            let ended = terminate(child, grace)
                .await
                .map_err(|error| error.to_string());
            (ended, report)
        }
    }
}

/// Logs each stderr line of the server at its own level and keeps the last [`STDERR_TAIL_LINES`].
async fn relay_stderr(
    stderr: Option<impl AsyncRead + Unpin>,
    pid: u32,
    tail: Rc<RefCell<VecDeque<String>>>,
) {
    let Some(stderr) = stderr else {
        return;
    };
    let mut reader = BufReader::new(stderr);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer).trim_end().to_string();
                // The server's own lines keep their level; a line it did not log (a panic) is a warning.
                match crate::logging::parse_line(&line) {
                    (Some(tracing::Level::ERROR), text) => {
                        tracing::error!(target: "data_server", pid, "{text}")
                    }
                    (Some(tracing::Level::WARN) | None, text) => {
                        tracing::warn!(target: "data_server", pid, "{text}")
                    }
                    (Some(tracing::Level::INFO), text) => {
                        tracing::info!(target: "data_server", pid, "{text}")
                    }
                    (Some(tracing::Level::DEBUG), text) => {
                        tracing::debug!(target: "data_server", pid, "{text}")
                    }
                    (Some(_), text) => tracing::trace!(target: "data_server", pid, "{text}"),
                }
                let mut tail = tail.borrow_mut();
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Err(error) => {
                tracing::debug!(pid, %error, "stopped reading the data server's stderr");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_url_polls_loopback_for_unspecified_addresses() {
        let table = [
            ("127.0.0.1:8766", "http://127.0.0.1:8766/health"),
            ("0.0.0.0:8766", "http://127.0.0.1:8766/health"),
            ("[::]:8766", "http://[::1]:8766/health"),
            ("[::1]:9000", "http://[::1]:9000/health"),
            ("localhost:1", "http://localhost:1/health"),
        ];
        for (bind, url) in table {
            assert_eq!(health_url(bind), url, "{bind}");
        }
    }

    #[test]
    fn child_options_leave_room_for_a_graceful_stop() {
        let config = DataServerConfig::default();
        let options = monitor_child_options(ChildOptions::default(), &config);
        assert!(options.shutdown_timeout >= config.stop_grace + SHUTDOWN_MARGIN);
        let long = ChildOptions {
            shutdown_timeout: Duration::from_secs(60),
            ..ChildOptions::default()
        };
        assert_eq!(
            monitor_child_options(long, &config).shutdown_timeout,
            Duration::from_secs(60)
        );
    }
}
