//! The circuit breaker: a pure Closed → Open → HalfOpen state machine shared by sync (one per peer and transport)
//! and the data-server monitor.
//!
//! It owns only the decision "may this call go ahead now?" and the bookkeeping of outcomes. It does no I/O, knows no
//! actix, never sleeps and never reads a clock: every method takes `now`, so tests drive it through hours in
//! microseconds. Jitter comes from an injected [`Jitter`] source so tests can pin it.
//!
//! Rules (shared/domain/sync.md, "Circuit breaker"):
//! - **Closed**: calls go through. `failure_threshold` consecutive failures open the circuit; a success resets the count.
//! - **Open**: calls are denied for the open period, then the circuit turns half-open. The open period is
//!   `recovery × 2^(consecutive_opens − 1)`, capped at `max_recovery`, then jittered by ±`jitter` (10 %), and never
//!   below `min_recovery` (0.1 s). `consecutive_opens` counts opens since the circuit last closed, so the first open
//!   waits exactly `recovery` and each re-open from half-open doubles it.
//! - **HalfOpen**: `half_open_calls` probes go through, further calls are denied. One success closes the circuit and
//!   resets the backoff (`consecutive_opens = 0`); one failure re-opens it and adds one to `consecutive_opens`.
//!
//! Outcomes reported while open (calls that started before the circuit opened) are ignored.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::backoff::Exponential;
/// Where jitter samples come from (the one definition is in `backoff`).
pub use super::backoff::Jitter;

/// Settings of one circuit breaker. Defaults are the data server's (5 failures, 60 s); the per-transport defaults
/// of shared/domain/sync.md are [`BreakerConfig::ssh`], [`BreakerConfig::http`], [`BreakerConfig::aria2`],
/// [`BreakerConfig::rsync`] and [`BreakerConfig::data_server`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures (while closed) that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open the first time; doubled on each re-open until it closes again.
    #[serde(with = "humantime_serde")]
    pub recovery: Duration,
    /// Upper bound of the doubled open period (before jitter).
    #[serde(with = "humantime_serde")]
    pub max_recovery: Duration,
    /// Lower bound of the open period (after jitter).
    #[serde(with = "humantime_serde")]
    pub min_recovery: Duration,
    /// Relative jitter applied to the open period: 0.1 means ±10 %.
    pub jitter: f64,
    /// Calls let through while half-open; one success among them closes the circuit.
    pub half_open_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::with_threshold_and_recovery(5, Duration::from_secs(60))
    }
}

impl BreakerConfig {
    /// A breaker with the shared defaults (180 s cap, 0.1 s floor, ±10 % jitter, 2 half-open calls) and the given
    /// threshold and first open period.
    pub fn with_threshold_and_recovery(failure_threshold: u32, recovery: Duration) -> Self {
        Self {
            failure_threshold,
            recovery,
            max_recovery: Duration::from_secs(180),
            min_recovery: Duration::from_millis(100),
            jitter: 0.1,
            half_open_calls: 2,
        }
    }

    /// `ssh`: 5 failures, 60 s.
    pub fn ssh() -> Self {
        Self::with_threshold_and_recovery(5, Duration::from_secs(60))
    }

    /// `http` (our client against peers' data servers): 5 failures, 30 s.
    pub fn http() -> Self {
        Self::with_threshold_and_recovery(5, Duration::from_secs(30))
    }

    /// `aria2`: 3 failures, 120 s.
    pub fn aria2() -> Self {
        Self::with_threshold_and_recovery(3, Duration::from_secs(120))
    }

    /// `rsync`: 3 failures, 90 s.
    pub fn rsync() -> Self {
        Self::with_threshold_and_recovery(3, Duration::from_secs(90))
    }

    /// The local data server (used by its monitor): 5 failures, 60 s.
    pub fn data_server() -> Self {
        Self::with_threshold_and_recovery(5, Duration::from_secs(60))
    }

    /// Every problem with these settings, as readable sentences naming the field (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.failure_threshold == 0 {
            problems.push("failure_threshold must be at least 1".to_string());
        }
        if self.half_open_calls == 0 {
            problems.push("half_open_calls must be at least 1".to_string());
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            problems.push(format!(
                "jitter must be between 0 and 1, got {}",
                self.jitter
            ));
        }
        if self.max_recovery < self.recovery {
            problems.push(format!(
                "max_recovery ({}) must not be below recovery ({})",
                humantime::format_duration(self.max_recovery),
                humantime::format_duration(self.recovery)
            ));
        }
        problems
    }
}

/// The open period for the `consecutive_opens`-th open in a row (1 = first open), with `jitter_sample` in
/// [-1, 1] scaling the configured relative jitter.
pub fn open_period(config: &BreakerConfig, consecutive_opens: u32, jitter_sample: f64) -> Duration {
    Exponential::new(config.recovery, config.max_recovery)
        .jittered(
            consecutive_opens.saturating_sub(1),
            config.jitter,
            jitter_sample,
        )
        .max(config.min_recovery)
}

/// The state a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are denied until the open period ends.
    Open,
    /// A few probe calls go through to test recovery.
    HalfOpen,
}

/// The answer of [`CircuitBreaker::allow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Closed: go ahead.
    Allow,
    /// Half-open: go ahead as a probe; report the outcome.
    Probe,
    /// Do not make the call. `retry_in` is how long the circuit stays open, or `None` while half-open probes are out.
    Deny {
        /// Time left in the open period.
        retry_in: Option<Duration>,
    },
}

impl Decision {
    /// True for [`Decision::Allow`] and [`Decision::Probe`].
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Decision::Deny { .. })
    }
}

/// What `/status` shows of a breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerSnapshot {
    /// Current state.
    pub state: BreakerState,
    /// Failures in a row while closed.
    pub consecutive_failures: u32,
    /// Opens since the circuit last closed.
    pub consecutive_opens: u32,
    /// Seconds left in the open period (only while open).
    pub retry_in_s: Option<f64>,
    /// Length of the most recent open period, in seconds.
    pub last_open_period_s: Option<f64>,
    /// How many times the circuit opened in its life.
    pub total_opens: u64,
    /// The configured failure threshold.
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probes_let_through: u32 },
}

/// One circuit breaker. See the module doc for the rules.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Phase,
    consecutive_opens: u32,
    total_opens: u64,
    last_open_period: Option<Duration>,
    jitter: Jitter,
}

impl CircuitBreaker {
    /// A closed breaker with random jitter.
    pub fn new(config: BreakerConfig) -> Self {
        Self::with_jitter(config, Jitter::random())
    }

    /// A closed breaker with the given jitter source (tests use `Jitter::Fixed`).
    pub fn with_jitter(config: BreakerConfig, jitter: Jitter) -> Self {
        Self {
            config,
            phase: Phase::Closed { failures: 0 },
            consecutive_opens: 0,
            total_opens: 0,
            last_open_period: None,
            jitter,
        }
    }

    /// The settings this breaker runs with.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// May a call start at `now`? Turns an expired open circuit half-open and counts the probes it lets through.
    pub fn allow(&mut self, now: Instant) -> Decision {
        match self.phase {
            Phase::Closed { .. } => Decision::Allow,
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen {
                    probes_let_through: 1,
                };
                Decision::Probe
            }
            Phase::Open { until } => Decision::Deny {
                retry_in: Some(until - now),
            },
            Phase::HalfOpen { probes_let_through }
                if probes_let_through < self.config.half_open_calls.max(1) =>
            {
                self.phase = Phase::HalfOpen {
                    probes_let_through: probes_let_through + 1,
                };
                Decision::Probe
            }
            Phase::HalfOpen { .. } => Decision::Deny { retry_in: None },
        }
    }

    /// A call succeeded: resets the failure count, or closes a half-open circuit and resets its backoff.
    pub fn on_success(&mut self, _now: Instant) {
        match self.phase {
            Phase::Closed { .. } | Phase::HalfOpen { .. } => {
                self.phase = Phase::Closed { failures: 0 };
                self.consecutive_opens = 0;
            }
            Phase::Open { .. } => {}
        }
    }

    /// A call failed: counts towards the threshold, or re-opens a half-open circuit with a doubled open period.
    pub fn on_failure(&mut self, now: Instant) {
        match self.phase {
            Phase::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold.max(1) {
                    self.open(now);
                } else {
                    self.phase = Phase::Closed { failures };
                }
            }
            Phase::HalfOpen { .. } => self.open(now),
            Phase::Open { .. } => {}
        }
    }

    /// Force the circuit closed and forget its history (an operator's reset).
    pub fn reset(&mut self) {
        self.phase = Phase::Closed { failures: 0 };
        self.consecutive_opens = 0;
    }

    /// The state as seen at `now` (an expired open period reads as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } if now >= until => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Opens since the circuit last closed.
    pub fn consecutive_opens(&self) -> u32 {
        self.consecutive_opens
    }

    /// A serializable view for `/status` at `now`.
    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        let retry_in_s = match self.phase {
            Phase::Open { until } if now < until => Some((until - now).as_secs_f64()),
            _ => None,
        };
        BreakerSnapshot {
            state: self.state(now),
            consecutive_failures: match self.phase {
                Phase::Closed { failures } => failures,
                _ => 0,
            },
            consecutive_opens: self.consecutive_opens,
            retry_in_s,
            last_open_period_s: self.last_open_period.map(|period| period.as_secs_f64()),
            total_opens: self.total_opens,
            failure_threshold: self.config.failure_threshold,
        }
    }

    fn open(&mut self, now: Instant) {
        self.consecutive_opens = self.consecutive_opens.saturating_add(1);
        self.total_opens = self.total_opens.saturating_add(1);
        let period = open_period(&self.config, self.consecutive_opens, self.jitter.sample());
        self.last_open_period = Some(period);
        self.phase = Phase::Open {
            until: now + period,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(value: f64) -> Duration {
        Duration::from_secs_f64(value)
    }

    fn breaker(threshold: u32, recovery: f64) -> CircuitBreaker {
        let config = BreakerConfig::with_threshold_and_recovery(threshold, secs(recovery));
        CircuitBreaker::with_jitter(config, Jitter::Fixed(0.0))
    }

    fn assert_close(actual: Duration, expected: f64) {
        assert!(
            (actual.as_secs_f64() - expected).abs() < 1e-6,
            "expected {expected}s, got {actual:?}"
        );
    }

    #[test]
    fn per_transport_defaults_match_the_domain_table() {
        let table = [
            ("ssh", BreakerConfig::ssh(), 5, 60),
            ("http", BreakerConfig::http(), 5, 30),
            ("aria2", BreakerConfig::aria2(), 3, 120),
            ("rsync", BreakerConfig::rsync(), 3, 90),
            ("data-server", BreakerConfig::data_server(), 5, 60),
            ("default", BreakerConfig::default(), 5, 60),
        ];
        for (name, config, threshold, recovery) in table {
            assert_eq!(config.failure_threshold, threshold, "{name}");
            assert_eq!(config.recovery, Duration::from_secs(recovery), "{name}");
            assert_eq!(config.max_recovery, Duration::from_secs(180), "{name}");
            assert_eq!(config.min_recovery, Duration::from_millis(100), "{name}");
            assert_eq!(config.half_open_calls, 2, "{name}");
            assert_eq!(config.jitter, 0.1, "{name}");
            assert!(config.problems().is_empty(), "{name}");
        }
    }

    #[test]
    fn scenario_1_opens_at_threshold_3() {
        let now = Instant::now();
        let mut cb = breaker(3, 60.0);
        for failure in 1..=2 {
            cb.on_failure(now);
            assert_eq!(
                cb.state(now),
                BreakerState::Closed,
                "after {failure} failures"
            );
            assert_eq!(cb.allow(now), Decision::Allow);
        }
        cb.on_failure(now);
        assert_eq!(cb.state(now), BreakerState::Open);
        assert_eq!(
            cb.allow(now),
            Decision::Deny {
                retry_in: Some(secs(60.0))
            }
        );
        assert_eq!(cb.consecutive_opens(), 1);
    }

    #[test]
    fn a_success_while_closed_resets_the_failure_count() {
        let now = Instant::now();
        let mut cb = breaker(3, 60.0);
        cb.on_failure(now);
        cb.on_failure(now);
        cb.on_success(now);
        cb.on_failure(now);
        cb.on_failure(now);
        assert_eq!(cb.state(now), BreakerState::Closed);
        assert_eq!(cb.snapshot(now).consecutive_failures, 2);
        cb.on_failure(now);
        assert_eq!(cb.state(now), BreakerState::Open);
    }

    #[test]
    fn scenario_2_half_open_lets_two_calls_through_and_success_closes() {
        let start = Instant::now();
        let mut cb = breaker(2, 0.1);
        cb.on_failure(start);
        cb.on_failure(start);
        assert_eq!(cb.state(start), BreakerState::Open);
        let before = start + secs(0.099);
        assert!(!cb.allow(before).is_allowed());
        let after = start + secs(0.1);
        assert_eq!(cb.state(after), BreakerState::HalfOpen);
        assert_eq!(cb.allow(after), Decision::Probe);
        assert_eq!(cb.allow(after), Decision::Probe);
        assert_eq!(cb.allow(after), Decision::Deny { retry_in: None });
        cb.on_success(after);
        assert_eq!(cb.state(after), BreakerState::Closed);
        assert_eq!(cb.allow(after), Decision::Allow);
        assert_eq!(cb.consecutive_opens(), 0);
    }

    #[test]
    fn scenario_2_half_open_failure_reopens_with_doubled_period() {
        let start = Instant::now();
        let mut cb = breaker(2, 0.1);
        cb.on_failure(start);
        cb.on_failure(start);
        assert_eq!(cb.consecutive_opens(), 1);
        let probe_at = start + secs(0.1);
        assert_eq!(cb.allow(probe_at), Decision::Probe);
        cb.on_failure(probe_at);
        assert_eq!(cb.state(probe_at), BreakerState::Open);
        assert_eq!(cb.consecutive_opens(), 2);
        let snapshot = cb.snapshot(probe_at);
        assert_close(secs(snapshot.last_open_period_s.unwrap_or_default()), 0.2);
        assert_eq!(cb.state(probe_at + secs(0.199)), BreakerState::Open);
        assert_eq!(cb.state(probe_at + secs(0.2)), BreakerState::HalfOpen);
    }

    #[test]
    fn scenario_3_recovery_resets_consecutive_opens() {
        let mut now = Instant::now();
        let mut cb = breaker(1, 1.0);
        cb.on_failure(now);
        for expected_period in [2.0, 4.0] {
            now += secs(expected_period / 2.0);
            assert_eq!(cb.allow(now), Decision::Probe);
            cb.on_failure(now);
            assert_close(
                secs(cb.snapshot(now).last_open_period_s.unwrap_or_default()),
                expected_period,
            );
        }
        assert_eq!(cb.consecutive_opens(), 3);
        now += secs(4.0);
        assert_eq!(cb.allow(now), Decision::Probe);
        cb.on_success(now);
        assert_eq!(cb.consecutive_opens(), 0);
        cb.on_failure(now);
        assert_close(
            secs(cb.snapshot(now).last_open_period_s.unwrap_or_default()),
            1.0,
        );
    }

    #[test]
    fn open_period_doubles_then_caps_at_max_recovery() {
        let config = BreakerConfig::data_server();
        let table = [
            (1, 60.0),
            (2, 120.0),
            (3, 180.0),
            (4, 180.0),
            (40, 180.0),
            (u32::MAX, 180.0),
        ];
        for (opens, expected) in table {
            assert_close(open_period(&config, opens, 0.0), expected);
        }
        let http = BreakerConfig::http();
        let table = [(1, 30.0), (2, 60.0), (3, 120.0), (4, 180.0)];
        for (opens, expected) in table {
            assert_close(open_period(&http, opens, 0.0), expected);
        }
    }

    #[test]
    fn jitter_is_plus_or_minus_ten_percent_and_clamped() {
        let config = BreakerConfig::data_server();
        let table = [
            (1.0, 66.0),
            (-1.0, 54.0),
            (0.5, 63.0),
            (7.0, 66.0),
            (-7.0, 54.0),
            (f64::NAN, 60.0),
        ];
        for (sample, expected) in table {
            assert_close(open_period(&config, 1, sample), expected);
        }
        assert_close(open_period(&config, 5, 1.0), 198.0);
    }

    #[test]
    fn open_period_never_below_the_floor() {
        let config = BreakerConfig::with_threshold_and_recovery(1, Duration::ZERO);
        assert_close(open_period(&config, 1, -1.0), 0.1);
        let config = BreakerConfig::with_threshold_and_recovery(1, secs(0.1));
        assert_close(open_period(&config, 1, -1.0), 0.1);
    }

    #[test]
    fn random_jitter_stays_within_bounds() {
        let config = BreakerConfig::with_threshold_and_recovery(1, secs(10.0));
        let mut cb =
            CircuitBreaker::with_jitter(config, Jitter::Random(fastrand::Rng::with_seed(7)));
        let mut now = Instant::now();
        for _ in 0..500 {
            cb.on_failure(now);
            let period = cb.snapshot(now).last_open_period_s.unwrap_or_default();
            assert!((9.0..=11.0).contains(&period), "period {period}");
            now += secs(period);
            assert_eq!(cb.allow(now), Decision::Probe);
            cb.on_success(now);
        }
    }

    #[test]
    fn deny_reports_time_left_in_open_period() {
        let start = Instant::now();
        let mut cb = breaker(1, 60.0);
        cb.on_failure(start);
        assert_eq!(
            cb.allow(start + secs(45.0)),
            Decision::Deny {
                retry_in: Some(secs(15.0))
            }
        );
        let snapshot = cb.snapshot(start + secs(45.0));
        assert_eq!(snapshot.state, BreakerState::Open);
        assert!((snapshot.retry_in_s.unwrap_or_default() - 15.0).abs() < 1e-6);
    }

    #[test]
    fn outcomes_reported_while_open_are_ignored() {
        let start = Instant::now();
        let mut cb = breaker(1, 60.0);
        cb.on_failure(start);
        cb.on_success(start + secs(1.0));
        assert_eq!(cb.state(start + secs(1.0)), BreakerState::Open);
        cb.on_failure(start + secs(2.0));
        assert_eq!(cb.consecutive_opens(), 1);
        assert_eq!(cb.snapshot(start).total_opens, 1);
    }

    #[test]
    fn reset_closes_and_forgets_backoff() {
        let start = Instant::now();
        let mut cb = breaker(1, 60.0);
        cb.on_failure(start);
        cb.reset();
        assert_eq!(cb.state(start), BreakerState::Closed);
        assert_eq!(cb.consecutive_opens(), 0);
        assert_eq!(cb.allow(start), Decision::Allow);
    }

    #[test]
    fn zero_threshold_and_zero_half_open_calls_behave_as_one() {
        let start = Instant::now();
        let mut config = BreakerConfig::with_threshold_and_recovery(0, secs(1.0));
        config.half_open_calls = 0;
        assert_eq!(config.problems().len(), 2);
        let mut cb = CircuitBreaker::with_jitter(config, Jitter::Fixed(0.0));
        cb.on_failure(start);
        assert_eq!(cb.state(start), BreakerState::Open);
        let later = start + secs(1.0);
        assert_eq!(cb.allow(later), Decision::Probe);
        assert_eq!(cb.allow(later), Decision::Deny { retry_in: None });
    }

    #[test]
    fn config_reads_humantime_yaml_like_json_and_rejects_unknown_keys() {
        let config: BreakerConfig = serde_json::from_str(
            r#"{"failure_threshold": 3, "recovery": "90s", "max_recovery": "5m"}"#,
        )
        .expect("valid config");
        assert_eq!(config.failure_threshold, 3);
        assert_eq!(config.recovery, secs(90.0));
        assert_eq!(config.max_recovery, secs(300.0));
        assert_eq!(config.half_open_calls, 2);
        let round_trip: BreakerConfig =
            serde_json::from_value(serde_json::to_value(&config).expect("serializes"))
                .expect("round trips");
        assert_eq!(round_trip, config);
        assert!(serde_json::from_str::<BreakerConfig>(r#"{"treshold": 3}"#).is_err());
    }

    #[test]
    fn problems_name_the_field() {
        let mut config = BreakerConfig::data_server();
        config.jitter = 1.5;
        config.max_recovery = secs(1.0);
        let problems = config.problems();
        assert!(
            problems.iter().any(|p| p.starts_with("jitter")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("max_recovery")),
            "{problems:?}"
        );
    }

    #[test]
    fn snapshot_serializes_state_in_snake_case() {
        let now = Instant::now();
        let mut cb = breaker(1, 0.1);
        cb.on_failure(now);
        let json = serde_json::to_value(cb.snapshot(now + secs(1.0))).expect("serializes");
        assert_eq!(json["state"], "half_open");
        assert_eq!(json["consecutive_opens"], 1);
    }
}
