//! Pure time budget, retries, fallbacks and breaker use of sync transfers. No I/O, no clock: every call takes
//! `now`, and jitter samples are passed in.
//!
//! Rules (shared/domain/sync.md, "Budget", "Fallback chain", "Integrity"):
//! - Every operation (one category from one peer) runs under a [`Budget`] of `total`; its files share it. An
//!   attempt ends when no byte has arrived for `per_attempt`, or at the budget's end, whichever comes first
//!   ([`AttemptLimits`]). Nothing (attempt, retry, fallback) starts once the budget is spent: the error says
//!   "budget exhausted" and lists every attempt with its reason.
//! - Per file, [`FileAttempts`] walks the transport chain in order. A transient failure is retried on the same
//!   transport up to `attempts` times, waiting the capped doubling backoff (2 s → 30 s, ±10 %) from the same
//!   budget; connection refused / no route skips to the next transport at once; a transport that cannot serve
//!   the file (not configured, program missing, file gone) goes to the next one without counting against its
//!   breaker.
//! - A size or sha256 mismatch is retried once (the temp file is deleted first), then the file is given up as a
//!   dead letter. A corrupt `.db` is quarantined and not retried.
//! - A [`Breakers`] map holds one circuit breaker per (peer, transport): an open circuit is skipped (and the skip
//!   is listed), a failure that reached the peer's side of the network counts against it, a success closes it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::{BudgetConfig, SyncConfig, TransportKind};
use crate::runtime::circuit_breaker::{BreakerSnapshot, CircuitBreaker, Jitter};
use crate::runtime::restart_policy::{Backoff, BackoffConfig};

/// The time budget of one operation.
#[derive(Debug, Clone)]
pub struct Budget {
    started: Instant,
    config: BudgetConfig,
}

/// How long one attempt may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimits {
    /// End the attempt when no byte arrived for this long: `min(per_attempt, remaining)`.
    pub idle_timeout: Duration,
    /// End the attempt at this instant in any case (the budget's end).
    pub deadline: Instant,
}

impl Budget {
    pub fn new(started: Instant, config: &BudgetConfig) -> Budget {
        Budget {
            started,
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// When the budget ends.
    pub fn deadline(&self) -> Instant {
        self.started + self.config.total
    }

    /// What is left at `now`.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.deadline().saturating_duration_since(now)
    }

    /// True once nothing new may start.
    pub fn spent(&self, now: Instant) -> bool {
        self.remaining(now).is_zero()
    }

    /// The limits of an attempt starting at `now`, or `None` when the budget is spent.
    pub fn attempt_limits(&self, now: Instant) -> Option<AttemptLimits> {
        let remaining = self.remaining(now);
        (!remaining.is_zero()).then(|| AttemptLimits {
            idle_timeout: self.config.per_attempt.min(remaining),
            deadline: self.deadline(),
        })
    }
}

/// How an attempt failed, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Connection refused / no route to host: the next transport at once (counts against the breaker).
    Unreachable,
    /// Timeout, reset, server error, process failure: retried with backoff (counts against the breaker).
    Transient,
    /// Size or sha256 did not match: deleted, retried once, then a dead letter.
    Integrity,
    /// A `.db` that failed `PRAGMA integrity_check`: quarantined, not retried.
    Corrupt,
    /// This transport cannot serve this file (not configured, program missing, file gone): the next transport.
    Unavailable,
    /// Stopped by shutdown or the cycle's watchdog.
    Cancelled,
}

impl FailureKind {
    /// Whether this failure counts against the (peer, transport) breaker.
    pub fn counts_against_breaker(self) -> bool {
        matches!(self, FailureKind::Unreachable | FailureKind::Transient)
    }
}

/// One thing tried, for logs, reports and the "budget exhausted" error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tried {
    pub transport: TransportKind,
    /// 1-based attempt on this transport (0: not attempted, e.g. circuit open).
    pub attempt: u32,
    pub reason: String,
}

/// Every attempt of a file, joined for an error message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriedList(pub Vec<Tried>);

impl fmt::Display for TriedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing was tried");
        }
        for (i, tried) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if tried.attempt == 0 {
                write!(f, "{}: {}", tried.transport, tried.reason)?;
            } else {
                write!(
                    f,
                    "{} attempt {}: {}",
                    tried.transport, tried.attempt, tried.reason
                )?;
            }
        }
        Ok(())
    }
}

/// Why a file was not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SyncError {
    /// The operation's budget ran out before the file arrived.
    #[error("budget exhausted ({total_s}s): tried {tried}")]
    BudgetExhausted { total_s: u64, tried: TriedList },
    /// Every transport of the chain failed.
    #[error("all transports failed: {tried}")]
    Transport { tried: TriedList },
    /// The content did not match the peer's size/sha256 twice (stored as a dead letter).
    #[error("integrity check failed twice, giving up (dead letter): {tried}")]
    Integrity { tried: TriedList },
    /// A `.db` failed SQLite's integrity check and was moved to quarantine.
    #[error("corrupt database, quarantined: {tried}")]
    Corrupt { tried: TriedList },
    /// Stopped by shutdown or the cycle's watchdog; a partial download is kept (hidden) for resuming.
    #[error("cancelled: {tried}")]
    Cancelled { tried: TriedList },
}

/// What the shell does next for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run `transport` (its `attempt`-th try) under `limits`, then report with [`FileAttempts::record`].
    Attempt {
        transport: TransportKind,
        attempt: u32,
        limits: AttemptLimits,
    },
    /// Wait until then (a retry's backoff), then ask again.
    Wait { until: Instant },
    /// The circuit of `transport` is open: log the skip and ask again.
    Skipped { transport: TransportKind },
    /// Finished: installed (bytes fetched by the last attempt), or given up.
    Done(Result<u64, SyncError>),
}

/// The breakers of every (peer, transport).
#[derive(Debug)]
pub struct Breakers {
    config: SyncConfig,
    jitter: Jitter,
    map: BTreeMap<(String, TransportKind), CircuitBreaker>,
}

/// One breaker's state, for `GET /sync`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerView {
    pub peer: String,
    pub transport: TransportKind,
    #[serde(flatten)]
    pub breaker: BreakerSnapshot,
}

impl Breakers {
    pub fn new(config: &SyncConfig, jitter: Jitter) -> Breakers {
        Breakers {
            config: config.clone(),
            jitter,
            map: BTreeMap::new(),
        }
    }

    /// The breaker of (`peer`, `transport`), created closed on first use.
    pub fn get(&mut self, peer: &str, transport: TransportKind) -> &mut CircuitBreaker {
        let config = self.config.breaker(transport).clone();
        let jitter = self.jitter.clone();
        self.map
            .entry((peer.to_string(), transport))
            .or_insert_with(|| CircuitBreaker::with_jitter(config, jitter))
    }

    /// Every breaker used so far.
    pub fn snapshot(&self, now: Instant) -> Vec<BreakerView> {
        self.map
            .iter()
            .map(|((peer, transport), breaker)| BreakerView {
                peer: peer.clone(),
                transport: *transport,
                breaker: breaker.snapshot(now),
            })
            .collect()
    }
}

/// The attempts of one file through the transport chain (see the module doc).
#[derive(Debug)]
pub struct FileAttempts {
    peer: String,
    chain: Vec<TransportKind>,
    attempts: u32,
    backoff_config: BackoffConfig,
    index: usize,
    attempt: u32,
    backoff: Backoff,
    wait_until: Option<Instant>,
    integrity_retried: bool,
    tried: Vec<Tried>,
    done: Option<Result<u64, SyncError>>,
}

impl FileAttempts {
    pub fn new(peer: &str, chain: &[TransportKind], budget: &BudgetConfig) -> FileAttempts {
        let backoff_config = BackoffConfig {
            initial: budget.backoff_initial,
            max: budget.backoff_max,
            jitter: budget.backoff_jitter,
            reset_after: Duration::MAX,
        };
        FileAttempts {
            peer: peer.to_string(),
            chain: chain.to_vec(),
            attempts: budget.attempts.max(1),
            backoff_config,
            index: 0,
            attempt: 0,
            backoff: Backoff::new(backoff_config),
            wait_until: None,
            integrity_retried: false,
            tried: Vec::new(),
            done: None,
        }
    }

    /// Everything tried so far.
    pub fn tried(&self) -> &[Tried] {
        &self.tried
    }

    /// The transport after the current one, if any (the `fallback_to` of an attempt's log line).
    pub fn fallback_after(&self, transport: TransportKind) -> Option<TransportKind> {
        let position = self.chain.iter().position(|t| *t == transport)?;
        self.chain.get(position + 1).copied()
    }

    fn exhausted(&self, budget: &Budget) -> SyncError {
        SyncError::BudgetExhausted {
            total_s: budget.config().total.as_secs(),
            tried: TriedList(self.tried.clone()),
        }
    }

    fn next_transport(&mut self) {
        self.index += 1;
        self.attempt = 0;
        self.backoff = Backoff::new(self.backoff_config);
    }

    /// What to do at `now`.
    pub fn next(&mut self, now: Instant, budget: &Budget, breakers: &mut Breakers) -> Step {
        if let Some(done) = &self.done {
            return Step::Done(done.clone());
        }
        if let Some(until) = self.wait_until {
            if until >= budget.deadline() {
                return self.finish(Err(self.exhausted(budget)));
            }
            if now < until {
                return Step::Wait { until };
            }
            self.wait_until = None;
        }
        let Some(&transport) = self.chain.get(self.index) else {
            return self.finish(Err(SyncError::Transport {
                tried: TriedList(self.tried.clone()),
            }));
        };
        let Some(limits) = budget.attempt_limits(now) else {
            return self.finish(Err(self.exhausted(budget)));
        };
        if !breakers.get(&self.peer, transport).allow(now).is_allowed() {
            self.tried.push(Tried {
                transport,
                attempt: 0,
                reason: "circuit open, skipped".to_string(),
            });
            self.next_transport();
            return Step::Skipped { transport };
        }
        self.attempt += 1;
        Step::Attempt {
            transport,
            attempt: self.attempt,
            limits,
        }
    }

    fn finish(&mut self, result: Result<u64, SyncError>) -> Step {
        self.done = Some(result.clone());
        Step::Done(result)
    }

    /// Reports the attempt [`Step::Attempt`] asked for. `jitter_sample` in [-1, 1] spreads a retry's backoff.
    pub fn record(
        &mut self,
        now: Instant,
        transport: TransportKind,
        outcome: Result<u64, (FailureKind, String)>,
        breakers: &mut Breakers,
        jitter_sample: f64,
    ) {
        let breaker = breakers.get(&self.peer, transport);
        let (kind, reason) = match outcome {
            Ok(bytes) => {
                breaker.on_success(now);
                self.done = Some(Ok(bytes));
                return;
            }
            Err(failure) => failure,
        };
        if kind.counts_against_breaker() {
            breaker.on_failure(now);
        }
        self.tried.push(Tried {
            transport,
            attempt: self.attempt,
            reason,
        });
        let tried = || TriedList(self.tried.clone());
        match kind {
            FailureKind::Unreachable | FailureKind::Unavailable => self.next_transport(),
            FailureKind::Transient => {
                if self.attempt < self.attempts {
                    self.wait_until = Some(now + self.backoff.next_delay(now, jitter_sample));
                } else {
                    self.next_transport();
                }
            }
            FailureKind::Integrity => {
                if self.integrity_retried {
                    self.done = Some(Err(SyncError::Integrity { tried: tried() }));
                } else {
                    // The retry does not use up one of the transport's attempts.
                    self.integrity_retried = true;
                    self.attempt -= 1;
                }
            }
            FailureKind::Corrupt => self.done = Some(Err(SyncError::Corrupt { tried: tried() })),
            FailureKind::Cancelled => {
                self.done = Some(Err(SyncError::Cancelled { tried: tried() }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::circuit_breaker::BreakerState;

    const HTTP: TransportKind = TransportKind::Http;
    const RSYNC: TransportKind = TransportKind::Rsync;

    fn setup() -> (Instant, Budget, Breakers, FileAttempts) {
        let t0 = Instant::now();
        let config = SyncConfig::default();
        let budget = Budget::new(t0, &config.budget);
        let breakers = Breakers::new(&config, Jitter::Fixed(0.0));
        let file = FileAttempts::new("w1", &[HTTP, RSYNC], &config.budget);
        (t0, budget, breakers, file)
    }

    fn attempt(step: Step) -> (TransportKind, u32, AttemptLimits) {
        match step {
            Step::Attempt {
                transport,
                attempt,
                limits,
            } => (transport, attempt, limits),
            other => panic!("expected an attempt, got {other:?}"),
        }
    }

    fn transient() -> Result<u64, (FailureKind, String)> {
        Err((FailureKind::Transient, "timed out".to_string()))
    }

    #[test]
    fn attempt_timeout_is_per_attempt_or_what_is_left() {
        let (t0, budget, _, _) = setup();
        let limits = budget.attempt_limits(t0).expect("budget left");
        assert_eq!(limits.idle_timeout, Duration::from_secs(30));
        assert_eq!(limits.deadline, t0 + Duration::from_secs(300));
        let late = budget
            .attempt_limits(t0 + Duration::from_secs(290))
            .expect("budget left");
        assert_eq!(late.idle_timeout, Duration::from_secs(10));
        assert_eq!(budget.attempt_limits(t0 + Duration::from_secs(300)), None);
        assert!(budget.spent(t0 + Duration::from_secs(301)));
    }

    #[test]
    fn two_transient_failures_then_success_is_three_calls_with_doubling_backoff() {
        let (t0, budget, mut breakers, mut file) = setup();
        let (t, n, _) = attempt(file.next(t0, &budget, &mut breakers));
        assert_eq!((t, n), (HTTP, 1));
        file.record(t0, HTTP, transient(), &mut breakers, 0.0);
        assert_eq!(
            file.next(t0, &budget, &mut breakers),
            Step::Wait {
                until: t0 + Duration::from_secs(2)
            }
        );
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(attempt(file.next(t1, &budget, &mut breakers)).1, 2);
        file.record(t1, HTTP, transient(), &mut breakers, 0.0);
        assert_eq!(
            file.next(t1, &budget, &mut breakers),
            Step::Wait {
                until: t1 + Duration::from_secs(4)
            }
        );
        let t2 = t1 + Duration::from_secs(4);
        assert_eq!(attempt(file.next(t2, &budget, &mut breakers)).1, 3);
        file.record(t2, HTTP, Ok(42), &mut breakers, 0.0);
        assert_eq!(file.next(t2, &budget, &mut breakers), Step::Done(Ok(42)));
        assert_eq!(file.tried().len(), 2);
    }

    #[test]
    fn backoff_jitter_stays_within_ten_percent() {
        let (t0, budget, mut breakers, mut file) = setup();
        attempt(file.next(t0, &budget, &mut breakers));
        file.record(t0, HTTP, transient(), &mut breakers, 1.0);
        assert_eq!(
            file.next(t0, &budget, &mut breakers),
            Step::Wait {
                until: t0 + Duration::from_millis(2200)
            }
        );
    }

    #[test]
    fn connection_refused_skips_to_the_next_transport_at_once() {
        let (t0, budget, mut breakers, mut file) = setup();
        attempt(file.next(t0, &budget, &mut breakers));
        file.record(
            t0,
            HTTP,
            Err((FailureKind::Unreachable, "connection refused".into())),
            &mut breakers,
            0.0,
        );
        let (t, n, _) = attempt(file.next(t0, &budget, &mut breakers));
        assert_eq!((t, n), (RSYNC, 1));
        assert_eq!(file.fallback_after(HTTP), Some(RSYNC));
        assert_eq!(file.fallback_after(RSYNC), None);
    }

    #[test]
    fn all_transports_failing_lists_every_attempt() {
        let (t0, budget, mut breakers, mut file) = setup();
        let mut now = t0;
        for _ in 0..6 {
            match file.next(now, &budget, &mut breakers) {
                Step::Attempt { transport, .. } => {
                    file.record(now, transport, transient(), &mut breakers, 0.0)
                }
                Step::Wait { until } => now = until,
                other => panic!("{other:?}"),
            }
        }
        loop {
            match file.next(now, &budget, &mut breakers) {
                Step::Attempt { transport, .. } => {
                    file.record(now, transport, transient(), &mut breakers, 0.0)
                }
                Step::Wait { until } => now = until,
                Step::Done(result) => {
                    let error = result.expect_err("failed");
                    assert!(matches!(error, SyncError::Transport { .. }));
                    let text = error.to_string();
                    assert!(text.contains("http attempt 3: timed out"), "{text}");
                    assert!(text.contains("rsync attempt 3: timed out"), "{text}");
                    break;
                }
                Step::Skipped { .. } => {}
            }
        }
        assert_eq!(file.tried().len(), 6);
    }

    #[test]
    fn nothing_starts_once_the_budget_is_spent() {
        let t0 = Instant::now();
        let config = SyncConfig {
            budget: BudgetConfig {
                total: Duration::from_secs(3),
                ..BudgetConfig::default()
            },
            ..SyncConfig::default()
        };
        let budget = Budget::new(t0, &config.budget);
        let mut breakers = Breakers::new(&config, Jitter::Fixed(0.0));
        let mut file = FileAttempts::new("w1", &[HTTP, RSYNC], &config.budget);
        let (_, _, limits) = attempt(file.next(t0, &budget, &mut breakers));
        assert_eq!(limits.idle_timeout, Duration::from_secs(3));
        let t1 = t0 + Duration::from_millis(1500);
        file.record(t1, HTTP, transient(), &mut breakers, 0.0);
        // The 2 s backoff would end past the budget: exhausted now, not after waiting.
        match file.next(t1, &budget, &mut breakers) {
            Step::Done(Err(error)) => {
                let text = error.to_string();
                assert!(text.starts_with("budget exhausted (3s)"), "{text}");
                assert!(text.contains("http attempt 1: timed out"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_open_circuit_is_skipped_and_listed() {
        let (t0, budget, mut breakers, _) = setup();
        for _ in 0..5 {
            breakers.get("w1", HTTP).on_failure(t0);
        }
        assert_eq!(breakers.get("w1", HTTP).state(t0), BreakerState::Open);
        let mut file = FileAttempts::new("w1", &[HTTP, RSYNC], &BudgetConfig::default());
        assert_eq!(
            file.next(t0, &budget, &mut breakers),
            Step::Skipped { transport: HTTP }
        );
        assert_eq!(attempt(file.next(t0, &budget, &mut breakers)).0, RSYNC);
        assert_eq!(file.tried()[0].reason, "circuit open, skipped");
        // Another peer is unaffected.
        let mut other = FileAttempts::new("w2", &[HTTP], &BudgetConfig::default());
        assert_eq!(attempt(other.next(t0, &budget, &mut breakers)).0, HTTP);
        let views = breakers.snapshot(t0);
        assert_eq!(views.len(), 3);
        assert_eq!(views[0].peer, "w1");
        assert_eq!(views[0].breaker.state, BreakerState::Open);
    }

    #[test]
    fn failures_open_the_breaker_at_its_threshold_and_success_closes_it() {
        let (t0, budget, mut breakers, _) = setup();
        for _ in 0..3 {
            let mut file = FileAttempts::new(
                "w1",
                &[RSYNC],
                &BudgetConfig {
                    attempts: 1,
                    ..BudgetConfig::default()
                },
            );
            attempt(file.next(t0, &budget, &mut breakers));
            file.record(t0, RSYNC, transient(), &mut breakers, 0.0);
        }
        assert_eq!(breakers.get("w1", RSYNC).state(t0), BreakerState::Open);
        let later = t0 + Duration::from_secs(91);
        let mut file = FileAttempts::new("w1", &[RSYNC], &BudgetConfig::default());
        attempt(file.next(later, &budget, &mut breakers));
        file.record(later, RSYNC, Ok(1), &mut breakers, 0.0);
        assert_eq!(breakers.get("w1", RSYNC).state(later), BreakerState::Closed);
    }

    #[test]
    fn an_integrity_failure_is_retried_once_then_given_up() {
        let (t0, budget, mut breakers, mut file) = setup();
        let mismatch = || Err((FailureKind::Integrity, "sha256 mismatch".to_string()));
        attempt(file.next(t0, &budget, &mut breakers));
        file.record(t0, HTTP, mismatch(), &mut breakers, 0.0);
        let (t, n, _) = attempt(file.next(t0, &budget, &mut breakers));
        assert_eq!(
            (t, n),
            (HTTP, 1),
            "the retry is immediate, on the same transport"
        );
        file.record(t0, HTTP, mismatch(), &mut breakers, 0.0);
        match file.next(t0, &budget, &mut breakers) {
            Step::Done(Err(SyncError::Integrity { tried })) => assert_eq!(tried.0.len(), 2),
            other => panic!("{other:?}"),
        }
        // A peer that serves the wrong bytes is reachable: its breaker stays closed.
        assert_eq!(breakers.get("w1", HTTP).state(t0), BreakerState::Closed);
    }

    #[test]
    fn corrupt_databases_and_cancels_end_at_once_unavailable_falls_through() {
        let (t0, budget, mut breakers, mut file) = setup();
        attempt(file.next(t0, &budget, &mut breakers));
        file.record(
            t0,
            HTTP,
            Err((FailureKind::Unavailable, "no data_url".into())),
            &mut breakers,
            0.0,
        );
        assert_eq!(attempt(file.next(t0, &budget, &mut breakers)).0, RSYNC);
        file.record(
            t0,
            RSYNC,
            Err((FailureKind::Corrupt, "integrity_check: bad page".into())),
            &mut breakers,
            0.0,
        );
        assert!(matches!(
            file.next(t0, &budget, &mut breakers),
            Step::Done(Err(SyncError::Corrupt { .. }))
        ));
        let (_, _, _, mut cancelled) = setup();
        attempt(cancelled.next(t0, &budget, &mut breakers));
        cancelled.record(
            t0,
            HTTP,
            Err((FailureKind::Cancelled, "shutdown".into())),
            &mut breakers,
            0.0,
        );
        assert!(matches!(
            cancelled.next(t0, &budget, &mut breakers),
            Step::Done(Err(SyncError::Cancelled { .. }))
        ));
    }
}
