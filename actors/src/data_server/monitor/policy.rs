//! The monitor's decisions as a pure state machine: when to start, health-check, kill and restart the data server,
//! when to open its circuit, and what to tell subscribers. No actix, no processes, no clock: every event takes
//! `now`, and the answer is a list of [`Action`]s for the actor shell to carry out.
//!
//! Rules (shared/domain/sync.md, "Data server and its monitor"):
//! - After a start, `/health` is polled quickly ([`STARTUP_POLL`]) until the first success, which makes the server
//!   *up*. A server that is not up within `health_interval × failed_checks_before_restart` is killed and restarted.
//! - While up, `/health` is polled every `health_interval`; `failed_checks_before_restart` failures in a row mean
//!   the server hangs: it is killed (SIGTERM, `stop_grace`, SIGKILL) and restarted.
//! - An exit (or a failed start) schedules a restart after `restart_backoff_initial`, doubling for each restart in
//!   a row up to `restart_backoff_max`; a healthy server resets the doubling.
//! - At most `max_restarts` restarts within `restart_window` (counted by `backoff::RestartWindow`, whose edge
//!   keeps a restart exactly `restart_window` old inside): the next one opens the circuit instead. An open
//!   circuit allows no restart for its open period (`circuit_recovery`, doubled on each re-open, see
//!   [`CircuitBreaker`]), then one half-open attempt: up closes the circuit, a failure re-opens it.
//! - A port already in use (recognised in the child's last stderr lines) is a clear error naming the address,
//!   reported once per incident, and otherwise handled like any failed start.
//!
//! The restart window is counted here; the breaker only holds the open/half-open state (threshold 1, one probe).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::data_server::config::DataServerConfig;
use crate::process::Ended;
use crate::runtime::backoff::{Exponential, RestartWindow};
use crate::runtime::circuit_breaker::{
    BreakerConfig, BreakerSnapshot, BreakerState, CircuitBreaker, Decision, Jitter,
};
use crate::runtime::health::{HealthCheck, HealthStatus};

/// How often `/health` is polled while a freshly started server is not up yet (or `health_interval` if shorter).
pub const STARTUP_POLL: Duration = Duration::from_millis(100);

/// How many of the child's last stderr lines are kept for the status and the logs.
pub const STDERR_TAIL_LINES: usize = 20;

/// The monitor's state as `/status` shows it and subscribers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorState {
    /// A server process is starting and has not answered `/health` yet.
    Starting,
    /// The server answers `/health`.
    Up,
    /// No healthy server: it exited, failed to start, or is being killed; a restart is scheduled.
    Down,
    /// Too many restarts: no restart until the circuit's open period ends.
    CircuitOpen,
    /// The monitor stopped (daemon shutdown); no server runs.
    Stopped,
}

/// What subscribers (the sync coordinator) are told when the local data server goes down or comes up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataServerState {
    /// True when the server answers `/health`.
    pub up: bool,
    /// The monitor's state.
    pub state: MonitorState,
    /// The address the server listens on.
    pub bind: String,
    /// Why it is not up, when known.
    pub reason: Option<String>,
}

/// How a server process ended, as the actor shell saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitReport {
    /// How it ended (`None` when waiting on it failed).
    pub ended: Option<Ended>,
    /// Why waiting on it failed, if it did.
    pub wait_error: Option<String>,
    /// Its last stderr lines (oldest first).
    pub stderr_tail: Vec<String>,
}

/// The last exit, for `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastExit {
    /// The process id that ended.
    pub pid: u32,
    /// How it ended.
    pub ended: Option<Ended>,
    /// Seconds since it ended.
    pub ago_s: f64,
    /// Its last stderr lines.
    pub stderr_tail: Vec<String>,
}

/// What `/status` shows of the monitor (reply of the `DataServerStatus` query).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorSnapshot {
    /// Process id of the running server, if one runs.
    pub pid: Option<u32>,
    /// The monitor's state.
    pub state: MonitorState,
    /// Restarts since the monitor started (the first start is not one).
    pub restarts: u64,
    /// Failed `/health` checks in a row of the current server.
    pub consecutive_failed_checks: u32,
    /// The restart circuit.
    pub circuit: BreakerSnapshot,
    /// How the previous server ended.
    pub last_exit: Option<LastExit>,
    /// The most recent problem, in words.
    pub last_error: Option<String>,
    /// The address the server listens on.
    pub bind: String,
}

/// Something the policy wants logged, with the level the shell should use.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Info: the server answers `/health`.
    Up { pid: u32 },
    /// Warn: the server exited on its own.
    Exited {
        pid: u32,
        ended: Option<Ended>,
        stderr_tail: Vec<String>,
    },
    /// Error (once per incident): the address is taken by another process.
    AddressInUse {
        bind: String,
        stderr_tail: Vec<String>,
    },
    /// Error: the program could not be started at all.
    SpawnFailed { error: String },
    /// Warn: the server stopped answering `/health` and is being killed.
    Hung { pid: u32, reason: String },
    /// Error: too many restarts; no restart for `retry_in`.
    CircuitOpened { retry_in: Duration },
    /// Info: the half-open attempt came up; the circuit is closed again.
    CircuitClosed,
    /// Info: a restart is scheduled after `delay`.
    RestartScheduled { delay: Duration },
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a server process tagged `run_id`, then report [`MonitorPolicy::spawned`] or
    /// [`MonitorPolicy::spawn_failed`].
    Spawn { run_id: u64 },
    /// Poll `/health` of server `run_id` (within `health_timeout`), then report [`MonitorPolicy::health_checked`].
    CheckHealth { run_id: u64, timeout: Duration },
    /// Stop server `run_id` (SIGTERM, `grace`, SIGKILL); its exit comes back through [`MonitorPolicy::exited`].
    Kill { run_id: u64, grace: Duration },
    /// Tell subscribers.
    Publish(DataServerState),
    /// Log this.
    Log(Notice),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Idle,
    Spawning { run_id: u64 },
    Starting { run: Run, deadline: Instant },
    Up { run: Run },
    Killing { run_id: u64, pid: u32 },
    Backoff { until: Instant },
    CircuitOpen { until: Instant },
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    run_id: u64,
    pid: u32,
    next_check: Instant,
    check_in_flight: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct ExitRecord {
    pid: u32,
    ended: Option<Ended>,
    at: Instant,
    stderr_tail: Vec<String>,
}

/// The monitor's state machine.
#[derive(Debug)]
pub struct MonitorPolicy {
    config: DataServerConfig,
    phase: Phase,
    breaker: CircuitBreaker,
    probing: bool,
    restart_window: RestartWindow,
    restarts: u64,
    restarts_in_a_row: u32,
    consecutive_failed_checks: u32,
    next_run_id: u64,
    last_exit: Option<ExitRecord>,
    last_error: Option<String>,
    address_in_use_reported: bool,
    published: MonitorState,
}

impl MonitorPolicy {
    /// A policy for `config`; run ids start at `first_run_id` (pick it at random so messages of an earlier
    /// incarnation never match), open periods are jittered by `jitter`.
    pub fn new(config: &DataServerConfig, jitter: Jitter, first_run_id: u64) -> Self {
        Self {
            config: config.clone(),
            phase: Phase::Idle,
            breaker: CircuitBreaker::with_jitter(breaker_config(config), jitter),
            probing: false,
            restart_window: RestartWindow::new(config.max_restarts, config.restart_window),
            restarts: 0,
            restarts_in_a_row: 0,
            consecutive_failed_checks: 0,
            next_run_id: first_run_id,
            last_exit: None,
            last_error: None,
            address_in_use_reported: false,
            published: MonitorState::Down,
        }
    }

    /// The first start.
    pub fn start(&mut self, _now: Instant) -> Vec<Action> {
        if self.phase != Phase::Idle {
            return Vec::new();
        }
        vec![self.spawn()]
    }

    /// Server `run_id` was started as process `pid`.
    pub fn spawned(&mut self, now: Instant, run_id: u64, pid: u32) -> Vec<Action> {
        if self.phase != (Phase::Spawning { run_id }) {
            return Vec::new();
        }
        self.consecutive_failed_checks = 0;
        self.phase = Phase::Starting {
            run: Run {
                run_id,
                pid,
                next_check: now,
                check_in_flight: false,
            },
            deadline: now + self.startup_deadline(),
        };
        self.tick(now)
    }

    /// Server `run_id` could not be started at all (`error` says why).
    pub fn spawn_failed(&mut self, now: Instant, run_id: u64, error: String) -> Vec<Action> {
        if self.phase != (Phase::Spawning { run_id }) {
            return Vec::new();
        }
        self.last_error = Some(error.clone());
        let mut actions = vec![Action::Log(Notice::SpawnFailed { error })];
        actions.extend(self.went_down(now));
        actions
    }

    /// Server `run_id` (process `pid`) ended, on its own or because it was killed.
    pub fn exited(&mut self, now: Instant, run_id: u64, pid: u32, exit: ExitReport) -> Vec<Action> {
        let killed = match self.phase {
            Phase::Starting { run, .. } | Phase::Up { run } if run.run_id == run_id => false,
            Phase::Killing {
                run_id: killing, ..
            } if killing == run_id => true,
            _ => return Vec::new(),
        };
        self.last_exit = Some(ExitRecord {
            pid,
            ended: exit.ended,
            at: now,
            stderr_tail: exit.stderr_tail.clone(),
        });
        let mut actions = Vec::new();
        if !killed {
            if is_address_in_use(&exit.stderr_tail) {
                self.last_error = Some(address_in_use_error(&self.config.bind));
                if !self.address_in_use_reported {
                    self.address_in_use_reported = true;
                    actions.push(Action::Log(Notice::AddressInUse {
                        bind: self.config.bind.clone(),
                        stderr_tail: exit.stderr_tail.clone(),
                    }));
                }
            } else {
                self.address_in_use_reported = false;
                self.last_error = Some(exit_error(pid, &exit));
                actions.push(Action::Log(Notice::Exited {
                    pid,
                    ended: exit.ended,
                    stderr_tail: exit.stderr_tail,
                }));
            }
        }
        actions.extend(self.went_down(now));
        actions
    }

    /// The `/health` poll of server `run_id` answered (`Ok`) or failed (`Err` says how).
    pub fn health_checked(
        &mut self,
        now: Instant,
        run_id: u64,
        outcome: Result<(), String>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        match (&mut self.phase, outcome) {
            (Phase::Starting { run, .. }, Ok(())) if run.run_id == run_id => {
                let run = Run {
                    check_in_flight: false,
                    next_check: now + self.config.health_interval,
                    ..*run
                };
                self.phase = Phase::Up { run };
                self.consecutive_failed_checks = 0;
                self.restarts_in_a_row = 0;
                self.address_in_use_reported = false;
                actions.push(Action::Log(Notice::Up { pid: run.pid }));
                if self.probing {
                    self.probing = false;
                    self.breaker.on_success(now);
                    actions.push(Action::Log(Notice::CircuitClosed));
                }
            }
            (Phase::Starting { run, .. }, Err(_)) if run.run_id == run_id => {
                // Normal while the server binds; the startup deadline decides when it is a problem.
                run.check_in_flight = false;
                self.consecutive_failed_checks = self.consecutive_failed_checks.saturating_add(1);
            }
            (Phase::Up { run }, Ok(())) if run.run_id == run_id => {
                run.check_in_flight = false;
                self.consecutive_failed_checks = 0;
            }
            (Phase::Up { run }, Err(error)) if run.run_id == run_id => {
                run.check_in_flight = false;
                self.consecutive_failed_checks = self.consecutive_failed_checks.saturating_add(1);
                if self.consecutive_failed_checks >= self.config.failed_checks_before_restart.max(1)
                {
                    let (run_id, pid) = (run.run_id, run.pid);
                    let reason = format!(
                        "{} health checks failed in a row (last: {error}); killing the hung server",
                        self.consecutive_failed_checks
                    );
                    actions.extend(self.kill(run_id, pid, reason));
                }
            }
            _ => return Vec::new(),
        }
        actions.extend(self.publish_if_changed());
        actions.extend(self.tick(now));
        actions
    }

    /// Time passed: start due health checks and due restarts, kill a server that never came up.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let timeout = self.config.health_timeout;
        let mut actions = Vec::new();
        match self.phase {
            Phase::Starting { run, deadline } if now >= deadline => {
                let reason = format!(
                    "did not answer /health within {} of starting; killing it",
                    humantime::format_duration(self.startup_deadline())
                );
                actions.extend(self.kill(run.run_id, run.pid, reason));
            }
            Phase::Starting { run, .. } | Phase::Up { run }
                if !run.check_in_flight && now >= run.next_check =>
            {
                let interval = if matches!(self.phase, Phase::Up { .. }) {
                    self.config.health_interval
                } else {
                    STARTUP_POLL.min(self.config.health_interval)
                };
                if let Phase::Starting { run, .. } | Phase::Up { run } = &mut self.phase {
                    run.check_in_flight = true;
                    run.next_check = now + interval;
                }
                actions.push(Action::CheckHealth {
                    run_id: run.run_id,
                    timeout,
                });
            }
            Phase::Backoff { until } if now >= until => {
                self.record_restart(now);
                actions.push(self.spawn());
            }
            Phase::CircuitOpen { until } if now >= until => match self.breaker.allow(now) {
                Decision::Allow | Decision::Probe => {
                    self.probing = true;
                    self.record_restart(now);
                    actions.push(self.spawn());
                }
                Decision::Deny { retry_in } => {
                    self.phase = Phase::CircuitOpen {
                        until: now + retry_in.unwrap_or(self.config.circuit_recovery),
                    };
                }
            },
            _ => {}
        }
        actions.extend(self.publish_if_changed());
        actions
    }

    /// The monitor stops for good: no more restarts. The shell stops the running server itself.
    pub fn stop(&mut self) -> Vec<Action> {
        self.phase = Phase::Stopped;
        self.probing = false;
        self.publish_if_changed()
    }

    /// When [`MonitorPolicy::tick`] next has something to do (`None`: only an event can change anything).
    pub fn next_wake(&self) -> Option<Instant> {
        match self.phase {
            Phase::Starting { run, deadline } if run.check_in_flight => Some(deadline),
            Phase::Starting { run, deadline } => Some(run.next_check.min(deadline)),
            Phase::Up { run } if !run.check_in_flight => Some(run.next_check),
            Phase::Backoff { until } | Phase::CircuitOpen { until } => Some(until),
            _ => None,
        }
    }

    /// The id and pid of the server that should be running, if any.
    pub fn current_run(&self) -> Option<(u64, u32)> {
        match self.phase {
            Phase::Starting { run, .. } | Phase::Up { run } => Some((run.run_id, run.pid)),
            Phase::Killing { run_id, pid } => Some((run_id, pid)),
            _ => None,
        }
    }

    /// The state subscribers and `/status` see.
    pub fn state(&self) -> MonitorState {
        match self.phase {
            Phase::Idle | Phase::Spawning { .. } | Phase::Starting { .. } => MonitorState::Starting,
            Phase::Up { .. } => MonitorState::Up,
            Phase::Killing { .. } | Phase::Backoff { .. } => MonitorState::Down,
            Phase::CircuitOpen { .. } => MonitorState::CircuitOpen,
            Phase::Stopped => MonitorState::Stopped,
        }
    }

    /// The status at `now`.
    pub fn snapshot(&self, now: Instant) -> MonitorSnapshot {
        MonitorSnapshot {
            pid: self.current_run().map(|(_, pid)| pid),
            state: self.state(),
            restarts: self.restarts,
            consecutive_failed_checks: self.consecutive_failed_checks,
            circuit: self.breaker.snapshot(now),
            last_exit: self.last_exit.as_ref().map(|exit| LastExit {
                pid: exit.pid,
                ended: exit.ended,
                ago_s: now.saturating_duration_since(exit.at).as_secs_f64(),
                stderr_tail: exit.stderr_tail.clone(),
            }),
            last_error: self.last_error.clone(),
            bind: self.config.bind.clone(),
        }
    }

    /// The `data_server` health check at `now`: up is ok, starting (after a start or a restart) is degraded, down
    /// (no server, a restart scheduled), circuit open or stopped is failing. The detail says why and what next.
    pub fn health(&self, now: Instant) -> HealthCheck {
        let bind = &self.config.bind;
        let why = self
            .last_error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        match self.phase {
            Phase::Up { run } => HealthCheck::ok(format!(
                "up: pid {} serves files on {bind} ({} restarts)",
                run.pid, self.restarts
            )),
            Phase::Idle | Phase::Spawning { .. } | Phase::Starting { .. } => HealthCheck::new(
                HealthStatus::Degraded,
                format!(
                    "starting on {bind}, not answering yet ({} restarts){why}",
                    self.restarts
                ),
            ),
            Phase::Killing { pid, .. } => HealthCheck::new(
                HealthStatus::Failing,
                format!("down: killing hung server {pid}; a restart follows{why}"),
            ),
            Phase::Backoff { until } => HealthCheck::new(
                HealthStatus::Failing,
                format!(
                    "down: restarting after a {} backoff{why}",
                    humantime::format_duration(round_ms(until.saturating_duration_since(now)))
                ),
            ),
            Phase::CircuitOpen { until } => HealthCheck::new(
                HealthStatus::Failing,
                format!(
                    "circuit open after too many restarts (max {} within {}); one attempt after a {} open period{why}",
                    self.config.max_restarts,
                    humantime::format_duration(self.config.restart_window),
                    humantime::format_duration(round_ms(until.saturating_duration_since(now)))
                ),
            ),
            Phase::Stopped => HealthCheck::new(
                HealthStatus::Failing,
                "stopped: the monitor is shutting down; no data server runs",
            ),
        }
    }

    /// True while the circuit is open (or half-open, waiting for its attempt).
    pub fn circuit_open(&self, now: Instant) -> bool {
        self.breaker.state(now) != BreakerState::Closed
    }

    fn spawn(&mut self) -> Action {
        let run_id = self.next_run_id;
        self.next_run_id = self.next_run_id.wrapping_add(1);
        self.phase = Phase::Spawning { run_id };
        Action::Spawn { run_id }
    }

    fn kill(&mut self, run_id: u64, pid: u32, reason: String) -> Vec<Action> {
        self.last_error = Some(reason.clone());
        self.phase = Phase::Killing { run_id, pid };
        let mut actions = vec![
            Action::Log(Notice::Hung { pid, reason }),
            Action::Kill {
                run_id,
                grace: self.config.stop_grace,
            },
        ];
        actions.extend(self.publish_if_changed());
        actions
    }

    fn record_restart(&mut self, now: Instant) {
        self.restarts = self.restarts.saturating_add(1);
        self.restarts_in_a_row = self.restarts_in_a_row.saturating_add(1);
        self.restart_window.record(now);
    }

    /// No server runs any more: schedule a restart, or open (re-open) the circuit.
    fn went_down(&mut self, now: Instant) -> Vec<Action> {
        self.consecutive_failed_checks = 0;
        let mut actions = Vec::new();
        let open = if self.probing {
            self.probing = false;
            true
        } else {
            // More than `max_restarts` within `restart_window` (the one edge of `backoff::RestartWindow`).
            self.restart_window.would_exceed(now)
        };
        if open {
            self.breaker.on_failure(now);
            self.restart_window.clear();
            let retry_in = match self.breaker.allow(now) {
                Decision::Deny {
                    retry_in: Some(retry_in),
                } => retry_in,
                _ => self.config.circuit_recovery,
            };
            self.phase = Phase::CircuitOpen {
                until: now + retry_in,
            };
            actions.push(Action::Log(Notice::CircuitOpened { retry_in }));
        } else {
            // The `restarts_in_a_row`-th restart in a row (0 = the first): `initial × 2^n`, capped at `max`.
            let delay = Exponential::new(
                self.config.restart_backoff_initial,
                self.config.restart_backoff_max,
            )
            .delay(self.restarts_in_a_row);
            self.phase = Phase::Backoff { until: now + delay };
            actions.push(Action::Log(Notice::RestartScheduled { delay }));
        }
        actions.extend(self.publish_if_changed());
        actions
    }

    fn publish_if_changed(&mut self) -> Vec<Action> {
        let state = match self.state() {
            MonitorState::Starting => MonitorState::Down,
            other => other,
        };
        if state == self.published {
            return Vec::new();
        }
        self.published = state;
        let up = state == MonitorState::Up;
        vec![Action::Publish(DataServerState {
            up,
            state,
            bind: self.config.bind.clone(),
            reason: if up { None } else { self.last_error.clone() },
        })]
    }

    fn startup_deadline(&self) -> Duration {
        self.config
            .health_interval
            .saturating_mul(self.config.failed_checks_before_restart.max(1))
    }
}

/// The breaker behind the monitor's circuit: the restart window is counted by the policy, so one failure (a
/// restart over the limit, or a failed half-open attempt) opens it, and one attempt is let through half-open.
pub fn breaker_config(config: &DataServerConfig) -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 1,
        half_open_calls: 1,
        ..config.breaker_config()
    }
}

/// True when the child's stderr says its address was taken.
pub fn is_address_in_use(stderr_tail: &[String]) -> bool {
    stderr_tail.iter().any(|line| {
        let line = line.to_ascii_lowercase();
        line.contains("already in use")
            || line.contains("address in use")
            || line.contains("addrinuse")
    })
}

/// The error `/status` shows when the port is taken.
pub fn address_in_use_error(bind: &str) -> String {
    format!(
        "address {bind} is already in use by another process; stop it or change data_server.bind"
    )
}

/// `d` cut to whole milliseconds, for readable durations in details.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

fn exit_error(pid: u32, exit: &ExitReport) -> String {
    let how = match (exit.ended, &exit.wait_error) {
        (Some(Ended::Exited { code }), _) => format!("exited with code {code}"),
        (Some(Ended::Signalled { signal }), _) => format!("was killed by signal {signal}"),
        (Some(Ended::KilledAfterGrace), _) => "was killed after ignoring SIGTERM".to_string(),
        (None, Some(error)) => format!("could not be waited on: {error}"),
        (None, None) => "ended".to_string(),
    };
    match exit.stderr_tail.last() {
        Some(line) => format!("data server {pid} {how}; last stderr line: {line}"),
        None => format!("data server {pid} {how}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn config() -> DataServerConfig {
        DataServerConfig {
            bind: "127.0.0.1:9999".to_string(),
            ..DataServerConfig::default()
        }
    }

    fn policy() -> MonitorPolicy {
        MonitorPolicy::new(&config(), Jitter::Fixed(0.0), 100)
    }

    fn exit_code(code: i32) -> ExitReport {
        ExitReport {
            ended: Some(Ended::Exited { code }),
            wait_error: None,
            stderr_tail: vec![format!("bye {code}")],
        }
    }

    fn spawn_id(actions: &[Action]) -> Option<u64> {
        actions.iter().find_map(|action| match action {
            Action::Spawn { run_id } => Some(*run_id),
            _ => None,
        })
    }

    fn checks(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, Action::CheckHealth { .. }))
            .count()
    }

    fn published(actions: &[Action]) -> Vec<MonitorState> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Publish(state) => Some(state.state),
                _ => None,
            })
            .collect()
    }

    /// Starts (or restarts after a due spawn) and brings the server up; returns its run id.
    fn bring_up(policy: &mut MonitorPolicy, now: Instant, actions: &[Action], pid: u32) -> u64 {
        let run_id = spawn_id(actions).expect("a spawn");
        let after_spawn = policy.spawned(now, run_id, pid);
        assert_eq!(checks(&after_spawn), 1, "first check at once");
        let up = policy.health_checked(now, run_id, Ok(()));
        assert_eq!(policy.state(), MonitorState::Up);
        assert!(published(&up).contains(&MonitorState::Up));
        run_id
    }

    #[test]
    fn start_spawns_then_first_healthy_check_makes_it_up() {
        let now = Instant::now();
        let mut p = policy();
        assert_eq!(p.state(), MonitorState::Starting);
        let actions = p.start(now);
        assert_eq!(actions, vec![Action::Spawn { run_id: 100 }]);
        assert!(p.start(now).is_empty(), "start is once");
        let actions = p.spawned(now, 100, 42);
        assert_eq!(
            actions,
            vec![Action::CheckHealth {
                run_id: 100,
                timeout: ms(2000)
            }]
        );
        assert_eq!(p.snapshot(now).pid, Some(42));
        let actions = p.health_checked(now, 100, Ok(()));
        assert_eq!(
            actions[..2],
            [
                Action::Log(Notice::Up { pid: 42 }),
                Action::Publish(DataServerState {
                    up: true,
                    state: MonitorState::Up,
                    bind: "127.0.0.1:9999".to_string(),
                    reason: None
                })
            ]
        );
        assert_eq!(p.next_wake(), Some(now + ms(5000)));
        assert_eq!(p.snapshot(now).restarts, 0);
    }

    #[test]
    fn startup_polls_quickly_until_up_and_kills_a_server_that_never_answers() {
        let start = Instant::now();
        let mut p = policy();
        p.start(start);
        p.spawned(start, 100, 42);
        assert_eq!(p.next_wake(), Some(start + ms(15_000)), "check in flight");
        p.health_checked(start, 100, Err("connection refused".into()));
        assert_eq!(p.next_wake(), Some(start + STARTUP_POLL));
        assert!(p.tick(start + ms(50)).is_empty());
        assert_eq!(checks(&p.tick(start + STARTUP_POLL)), 1);
        assert_eq!(p.state(), MonitorState::Starting);
        let actions = p.tick(start + ms(15_000));
        assert!(actions.contains(&Action::Kill {
            run_id: 100,
            grace: ms(5000)
        }));
        assert_eq!(p.state(), MonitorState::Down);
        assert!(p
            .snapshot(start)
            .last_error
            .unwrap_or_default()
            .contains("did not answer /health within 15s"));
    }

    #[test]
    fn health_checks_every_interval_never_overlap() {
        let start = Instant::now();
        let mut p = policy();
        let actions = p.start(start);
        bring_up(&mut p, start, &actions, 42);
        assert!(p.tick(start + ms(4999)).is_empty());
        let at = start + ms(5000);
        assert_eq!(checks(&p.tick(at)), 1);
        assert_eq!(p.next_wake(), None, "waits for the check in flight");
        assert!(
            p.tick(at + ms(10_000)).is_empty(),
            "no second check in flight"
        );
        p.health_checked(at + ms(10), 100, Ok(()));
        assert_eq!(p.next_wake(), Some(at + ms(5000)));
    }

    #[test]
    fn three_failed_checks_in_a_row_kill_and_restart_a_hung_server() {
        let start = Instant::now();
        let mut p = policy();
        let actions = p.start(start);
        bring_up(&mut p, start, &actions, 42);
        let mut now = start;
        let outcomes = [Err("timeout"), Err("timeout"), Ok(()), Err("t"), Err("t")];
        for outcome in outcomes {
            now += ms(5000);
            assert_eq!(checks(&p.tick(now)), 1);
            let actions = p.health_checked(now, 100, outcome.map_err(String::from));
            assert!(!actions.iter().any(|a| matches!(a, Action::Kill { .. })));
        }
        assert_eq!(p.snapshot(now).consecutive_failed_checks, 2);
        now += ms(5000);
        p.tick(now);
        let actions = p.health_checked(now, 100, Err("timeout".into()));
        assert!(actions.contains(&Action::Kill {
            run_id: 100,
            grace: ms(5000)
        }));
        assert_eq!(published(&actions), vec![MonitorState::Down]);
        assert_eq!(
            p.snapshot(now).pid,
            Some(42),
            "still running until it exits"
        );
        let actions = p.exited(now + ms(10), 100, 42, exit_code(0));
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Log(Notice::Exited { .. }))),
            "a kill we asked for is not an unexpected exit"
        );
        assert_eq!(p.next_wake(), Some(now + ms(10) + ms(100)));
        let actions = p.tick(now + ms(110));
        assert_eq!(spawn_id(&actions), Some(101));
        assert_eq!(p.snapshot(now).restarts, 1);
    }

    #[test]
    fn restart_backoff_doubles_to_the_cap_and_resets_when_healthy() {
        let table = [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (8, 25_600),
            (9, 30_000),
            (31, 30_000),
            (32, 30_000),
            (u32::MAX, 30_000),
        ];
        for (in_a_row, expected) in table {
            assert_eq!(
                Exponential::new(ms(100), ms(30_000)).delay(in_a_row),
                ms(expected),
                "{in_a_row}"
            );
        }
        let mut now = Instant::now();
        let cfg = DataServerConfig {
            max_restarts: 100,
            ..config()
        };
        let mut p = MonitorPolicy::new(&cfg, Jitter::Fixed(0.0), 0);
        let mut actions = p.start(now);
        for expected in [100, 200, 400, 800] {
            let run_id = spawn_id(&actions).expect("spawn");
            p.spawned(now, run_id, 7);
            p.exited(now, run_id, 7, exit_code(1));
            assert_eq!(p.next_wake(), Some(now + ms(expected)));
            now += ms(expected);
            actions = p.tick(now);
        }
        bring_up(&mut p, now, &actions, 8);
        let run_id = p.current_run().expect("running").0;
        p.exited(now, run_id, 8, exit_code(1));
        assert_eq!(p.next_wake(), Some(now + ms(100)), "reset after healthy");
    }

    #[test]
    fn more_than_max_restarts_in_the_window_open_the_circuit() {
        let mut now = Instant::now();
        let mut p = policy();
        let mut actions = p.start(now);
        let mut all_published = Vec::new();
        for restart in 0..=5 {
            let run_id = spawn_id(&actions).expect("spawn");
            p.spawned(now, run_id, 7);
            let exit = p.exited(now, run_id, 7, exit_code(1));
            all_published.extend(published(&exit));
            if restart < 5 {
                assert_eq!(p.state(), MonitorState::Down, "restart {restart}");
                now = p.next_wake().expect("restart scheduled");
                actions = p.tick(now);
            } else {
                assert!(exit.contains(&Action::Log(Notice::CircuitOpened {
                    retry_in: ms(60_000)
                })));
            }
        }
        assert_eq!(p.snapshot(now).restarts, 5);
        assert_eq!(p.state(), MonitorState::CircuitOpen);
        assert!(p.circuit_open(now));
        assert_eq!(all_published, vec![MonitorState::CircuitOpen]);
        assert_eq!(p.snapshot(now).circuit.state, BreakerState::Open);
        assert!(p.tick(now + ms(59_999)).is_empty(), "no restart while open");
        let actions = p.tick(now + ms(60_000));
        let run_id = spawn_id(&actions).expect("half-open attempt");
        assert_eq!(p.snapshot(now).restarts, 6);
        p.spawned(now + ms(60_000), run_id, 9);
        let actions = p.health_checked(now + ms(60_000), run_id, Ok(()));
        assert!(actions.contains(&Action::Log(Notice::CircuitClosed)));
        assert_eq!(published(&actions), vec![MonitorState::Up]);
        assert!(!p.circuit_open(now + ms(60_000)));
    }

    #[test]
    fn health_follows_the_server_through_down_starting_up_and_circuit_open() {
        let mut now = Instant::now();
        let cfg = DataServerConfig {
            max_restarts: 1,
            circuit_recovery: ms(1000),
            ..config()
        };
        let mut p = MonitorPolicy::new(&cfg, Jitter::Fixed(0.0), 0);
        let status = |p: &MonitorPolicy, now| p.health(now).status;
        assert_eq!(status(&p, now), HealthStatus::Degraded, "not started yet");
        let actions = p.start(now);
        let run_id = bring_up(&mut p, now, &actions, 7);
        let up = p.health(now);
        assert_eq!(up.status, HealthStatus::Ok);
        assert!(up.detail.contains("pid 7"), "{}", up.detail);

        // Killed: down (failing) while the restart waits, starting (degraded) after it, up (ok) again.
        p.exited(now, run_id, 7, exit_code(137));
        let down = p.health(now);
        assert_eq!(down.status, HealthStatus::Failing);
        assert!(down.detail.contains("restarting after"), "{}", down.detail);
        assert!(down.detail.contains("code 137"), "{}", down.detail);
        now = p.next_wake().expect("restart scheduled");
        let actions = p.tick(now);
        let run_id = spawn_id(&actions).expect("restart");
        p.spawned(now, run_id, 8);
        assert_eq!(status(&p, now), HealthStatus::Degraded, "restarting");
        p.health_checked(now, run_id, Ok(()));
        assert_eq!(status(&p, now), HealthStatus::Ok);

        // Killed again within the window: the circuit opens (failing) until its probe brings it back.
        p.exited(now, run_id, 8, exit_code(137));
        let open = p.health(now);
        assert_eq!(open.status, HealthStatus::Failing);
        assert!(open.detail.contains("circuit open"), "{}", open.detail);
        now += ms(1000);
        let run_id = spawn_id(&p.tick(now)).expect("probe");
        p.spawned(now, run_id, 9);
        assert_eq!(status(&p, now), HealthStatus::Degraded);
        p.health_checked(now, run_id, Ok(()));
        assert_eq!(status(&p, now), HealthStatus::Ok);

        // Hung: failing while it is killed; stopped is failing too.
        for _ in 0..cfg.failed_checks_before_restart {
            now = p.next_wake().expect("next check");
            p.tick(now);
            p.health_checked(now, run_id, Err("timed out".into()));
        }
        let killing = p.health(now);
        assert_eq!(killing.status, HealthStatus::Failing);
        assert!(killing.detail.contains("hung"), "{}", killing.detail);
        p.stop();
        assert_eq!(status(&p, now), HealthStatus::Failing);
    }

    #[test]
    fn restarts_outside_the_window_do_not_count() {
        let mut now = Instant::now();
        let mut p = policy();
        let mut actions = p.start(now);
        for _ in 0..20 {
            let run_id = spawn_id(&actions).expect("spawn");
            bring_up(&mut p, now, &actions, 7);
            now += ms(15_000);
            p.exited(now, run_id, 7, exit_code(1));
            assert_eq!(p.state(), MonitorState::Down);
            now = p.next_wake().expect("restart");
            actions = p.tick(now);
        }
        assert_eq!(p.snapshot(now).restarts, 20);
        assert!(!p.circuit_open(now));
    }

    #[test]
    fn failed_half_open_attempt_reopens_with_doubled_period() {
        let mut now = Instant::now();
        let cfg = DataServerConfig {
            max_restarts: 0,
            circuit_recovery: ms(1000),
            ..config()
        };
        let mut p = MonitorPolicy::new(&cfg, Jitter::Fixed(0.0), 0);
        let actions = p.start(now);
        let run_id = spawn_id(&actions).expect("spawn");
        let actions = p.spawn_failed(now, run_id, "no such file".into());
        assert!(actions.contains(&Action::Log(Notice::CircuitOpened { retry_in: ms(1000) })));
        now += ms(1000);
        let run_id = spawn_id(&p.tick(now)).expect("probe");
        p.spawned(now, run_id, 5);
        let actions = p.exited(now, run_id, 5, exit_code(2));
        assert!(actions.contains(&Action::Log(Notice::CircuitOpened { retry_in: ms(2000) })));
        assert_eq!(p.next_wake(), Some(now + ms(2000)));
        assert_eq!(p.snapshot(now).circuit.consecutive_opens, 2);
    }

    #[test]
    fn address_in_use_is_a_clear_error_reported_once_per_incident() {
        let mut now = Instant::now();
        let mut p = policy();
        let mut actions = p.start(now);
        let taken = ExitReport {
            ended: Some(Ended::Exited { code: 1 }),
            wait_error: None,
            stderr_tail: vec![
                "error: address 127.0.0.1:9999 is already in use; stop the process".to_string(),
            ],
        };
        let mut reports = 0;
        for _ in 0..3 {
            let run_id = spawn_id(&actions).expect("spawn");
            p.spawned(now, run_id, 3);
            let exit = p.exited(now, run_id, 3, taken.clone());
            reports += exit
                .iter()
                .filter(|a| matches!(a, Action::Log(Notice::AddressInUse { .. })))
                .count();
            now = p.next_wake().expect("restart");
            actions = p.tick(now);
        }
        assert_eq!(reports, 1);
        let error = p.snapshot(now).last_error.unwrap_or_default();
        assert!(
            error.contains("127.0.0.1:9999") && error.contains("already in use"),
            "{error}"
        );
        bring_up(&mut p, now, &actions, 4);
        let run_id = p.current_run().expect("running").0;
        let exit = p.exited(now, run_id, 4, taken);
        assert!(
            exit.iter()
                .any(|a| matches!(a, Action::Log(Notice::AddressInUse { .. }))),
            "a new incident is reported again"
        );
    }

    #[test]
    fn address_in_use_detection() {
        let table = [
            ("Error: Address already in use (os error 98)", true),
            ("address 1.2.3.4:5 is already in use", true),
            ("AddrInUse", true),
            ("connection refused", false),
            ("", false),
        ];
        for (line, expected) in table {
            assert_eq!(is_address_in_use(&[line.to_string()]), expected, "{line}");
        }
    }

    #[test]
    fn stale_events_of_other_runs_are_ignored() {
        let now = Instant::now();
        let mut p = policy();
        let actions = p.start(now);
        bring_up(&mut p, now, &actions, 42);
        assert!(p.exited(now, 7, 1, exit_code(1)).is_empty());
        assert!(p.health_checked(now, 7, Err("x".into())).is_empty());
        assert!(p.spawned(now, 7, 1).is_empty());
        assert!(p.spawn_failed(now, 7, "x".into()).is_empty());
        assert_eq!(p.state(), MonitorState::Up);
    }

    #[test]
    fn exit_while_up_publishes_down_then_up_again() {
        let now = Instant::now();
        let mut p = policy();
        let actions = p.start(now);
        bring_up(&mut p, now, &actions, 42);
        let actions = p.exited(now, 100, 42, exit_code(137));
        assert_eq!(published(&actions), vec![MonitorState::Down]);
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Log(Notice::Exited { pid: 42, .. }))));
        let snapshot = p.snapshot(now + ms(500));
        assert_eq!(snapshot.pid, None);
        let last_exit = snapshot.last_exit.expect("recorded");
        assert_eq!(last_exit.ended, Some(Ended::Exited { code: 137 }));
        assert!((last_exit.ago_s - 0.5).abs() < 1e-6);
        assert_eq!(
            snapshot.last_error.as_deref(),
            Some("data server 42 exited with code 137; last stderr line: bye 137")
        );
        let actions = p.tick(now + ms(100));
        bring_up(&mut p, now + ms(100), &actions, 43);
    }

    #[test]
    fn stop_publishes_stopped_and_ends_all_scheduling() {
        let now = Instant::now();
        let mut p = policy();
        let actions = p.start(now);
        bring_up(&mut p, now, &actions, 42);
        assert_eq!(published(&p.stop()), vec![MonitorState::Stopped]);
        assert_eq!(p.next_wake(), None);
        assert!(p.tick(now + ms(100_000)).is_empty());
        assert!(p.exited(now, 100, 42, exit_code(0)).is_empty());
        assert_eq!(p.state(), MonitorState::Stopped);
    }

    #[test]
    fn snapshot_serializes_in_snake_case() {
        let now = Instant::now();
        let p = policy();
        let json = serde_json::to_value(p.snapshot(now)).expect("serializes");
        assert_eq!(json["state"], "starting");
        assert_eq!(json["circuit"]["state"], "closed");
        assert_eq!(json["bind"], "127.0.0.1:9999");
    }

    #[test]
    fn breaker_opens_on_one_failure_and_lets_one_attempt_through() {
        let breaker = breaker_config(&config());
        assert_eq!(breaker.failure_threshold, 1);
        assert_eq!(breaker.half_open_calls, 1);
        assert_eq!(breaker.recovery, ms(60_000));
    }
}
