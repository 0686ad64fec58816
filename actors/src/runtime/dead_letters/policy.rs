//! Pure dead-letter rules, time injected: replay backoff, the retry/abandon transition, whether a replay may start,
//! purge eligibility, the store's failure state, the `dead_letters` health check, and the log limiter.
//!
//! No I/O and no actix: the store applies these rules (and mirrors `is_purgeable` in SQL), the actor shell asks
//! them what to log and report.

use std::time::{Duration, Instant, SystemTime};

use super::config::DeadLetterConfig;
use super::record::{duration_ms, unix_ms, DeadLetter, DeadLetterStatus};
use crate::runtime::backoff::Exponential;
use crate::runtime::health::{HealthCheck, HealthStatus};

/// The retry rules: backoff `min(base * 2^n, max)`, abandon after `max_retries` failed replays or `abandon_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failed replays allowed before abandoning.
    pub max_retries: u32,
    /// First wait.
    pub backoff_base: Duration,
    /// Longest wait.
    pub backoff_max: Duration,
    /// Age after which a failed replay abandons the row.
    pub abandon_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::from_config(&DeadLetterConfig::default())
    }
}

/// What a failed replay turns a record into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// The new retry count (old + 1).
    pub retries: u32,
    /// `Pending` while retries remain, else `Abandoned`.
    pub status: DeadLetterStatus,
    /// Unix ms of the next automatic replay; `None` once abandoned.
    pub next_retry_at_ms: Option<i64>,
}

impl RetryPolicy {
    /// The rules from the `dead_letters` config section.
    pub fn from_config(config: &DeadLetterConfig) -> Self {
        Self {
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
            backoff_max: config.backoff_max,
            abandon_after: config.abandon_after,
        }
    }

    /// Wait before replay number `retries + 1`: `min(base * 2^retries, max)`, saturating.
    pub fn backoff(&self, retries: u32) -> Duration {
        Exponential::new(self.backoff_base, self.backoff_max).delay(retries)
    }

    /// When a freshly stored dead letter that already spent `retries` is first replayed automatically; `None` when
    /// its retries are already used up (it then waits for an operator).
    pub fn first_retry_at(&self, retries: u32, now: SystemTime) -> Option<i64> {
        (retries < self.max_retries)
            .then(|| unix_ms(now).saturating_add(duration_ms(self.backoff(retries))))
    }

    /// The record after one more failed replay at `now`: retries + 1, abandoned once retries reach `max_retries` or
    /// the record is `abandon_after` old (an abandoned record stays abandoned), else pending with the next backoff.
    pub fn after_failed_replay(&self, record: &DeadLetter, now: SystemTime) -> ReplayOutcome {
        let retries = record.retries.saturating_add(1);
        let too_many = retries >= self.max_retries;
        let too_old = record.age(now) >= self.abandon_after;
        if too_many || too_old || record.status == DeadLetterStatus::Abandoned {
            return ReplayOutcome {
                retries,
                status: DeadLetterStatus::Abandoned,
                next_retry_at_ms: None,
            };
        }
        let next = unix_ms(now).saturating_add(duration_ms(self.backoff(retries)));
        ReplayOutcome {
            retries,
            status: DeadLetterStatus::Pending,
            next_retry_at_ms: Some(next),
        }
    }
}

/// Which rows a purge removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeScope {
    /// Recovered and abandoned rows only (the automatic purge and the default of `dead-letters purge`).
    Settled,
    /// Pending rows too (an explicit operator choice).
    IncludingPending,
}

/// Last-change time (unix ms) before which a row is old enough to purge: `now - older_than`.
pub fn purge_cutoff_ms(older_than: Duration, now: SystemTime) -> i64 {
    unix_ms(now).saturating_sub(duration_ms(older_than))
}

/// Whether a purge with these arguments removes `record`: its last change is at least `older_than` ago, and it is
/// recovered or abandoned (or any status with `PurgeScope::IncludingPending`).
pub fn is_purgeable(
    record: &DeadLetter,
    older_than: Duration,
    now: SystemTime,
    scope: PurgeScope,
) -> bool {
    let status_ok =
        scope == PurgeScope::IncludingPending || record.status != DeadLetterStatus::Pending;
    status_ok && record.updated_at_ms <= purge_cutoff_ms(older_than, now)
}

/// Whether a replay of `letter` may start: pending letters always; recovered and abandoned ones only when forced;
/// never one already being replayed.
pub fn may_replay(letter: &DeadLetter, in_flight: bool, force: bool) -> Result<(), ReplayRefused> {
    if in_flight {
        return Err(ReplayRefused::InFlight);
    }
    match letter.status {
        DeadLetterStatus::Pending => Ok(()),
        _ if force => Ok(()),
        status => Err(ReplayRefused::Settled(status)),
    }
}

/// Why a replay was refused (the API answers 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayRefused {
    /// The letter is recovered or abandoned.
    #[error("dead letter is {0}; replay it anyway with force (`?force=true`, `dead-letters replay ID --force`)")]
    Settled(DeadLetterStatus),
    /// A replay of this letter is still running.
    #[error("a replay of this dead letter is still running; wait for its outcome")]
    InFlight,
}

/// The store's write state: consecutive failures, retried with backoff; at `max_failures` in a row the actor
/// escalates (crashes, so its supervisor restarts it and counts the restart against its intensity).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreHealth {
    max_failures: u32,
    retry: Exponential,
    failures: u32,
    last_error: Option<String>,
    next_try: Option<Instant>,
}

/// What a failed store write leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreVerdict {
    /// Keep spilling; try the store again after `after`.
    RetryAfter {
        /// Wait before the next try.
        after: Duration,
    },
    /// `max_failures` in a row: fail like a crashing child (the supervisor restarts the actor), keep spilling.
    Escalate {
        /// Failures in a row.
        failures: u32,
    },
}

impl StoreHealth {
    /// A healthy store; retries after `retry.base` doubling to `retry.max`, escalating at `max_failures` in a row.
    pub fn new(max_failures: u32, retry: Exponential) -> Self {
        StoreHealth {
            max_failures: max_failures.max(1),
            retry,
            failures: 0,
            last_error: None,
            next_try: None,
        }
    }

    /// The rules from the `dead_letters` config section.
    pub fn from_config(config: &DeadLetterConfig) -> Self {
        Self::new(
            config.store_max_failures,
            Exponential::new(config.store_retry_base, config.store_retry_max),
        )
    }

    /// A write succeeded: `true` when this ends a failing spell.
    pub fn on_success(&mut self) -> bool {
        let was_failing = self.failures > 0;
        self.failures = 0;
        self.last_error = None;
        self.next_try = None;
        was_failing
    }

    /// A write failed at `now`.
    pub fn on_failure(&mut self, error: &str, now: Instant) -> StoreVerdict {
        let after = self.retry.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error.to_string());
        self.next_try = Some(now + after);
        if self.failures >= self.max_failures {
            StoreVerdict::Escalate {
                failures: self.failures,
            }
        } else {
            StoreVerdict::RetryAfter { after }
        }
    }

    /// Whether the store should be written at `now` (always while healthy; after the backoff while failing).
    pub fn should_try(&self, now: Instant) -> bool {
        self.next_try.is_none_or(|at| now >= at)
    }

    /// Whether the last write failed.
    pub fn is_failing(&self) -> bool {
        self.failures > 0
    }

    /// Whether the failures in a row reached the limit.
    pub fn past_limit(&self) -> bool {
        self.failures >= self.max_failures
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The last write error, while failing.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

/// What the `dead_letters` health check is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthInputs<'a> {
    /// Pending rows in the store (`None` when the store could not be counted).
    pub pending: Option<u64>,
    /// Letters waiting in the spill file.
    pub spilled: u64,
    /// Failures in a row of the store.
    pub store_failures: u32,
    /// Whether they reached `store_max_failures`.
    pub store_past_limit: bool,
    /// The last store error.
    pub store_error: Option<&'a str>,
    /// Pending count at which the check turns degraded.
    pub warn_pending: u64,
    /// Pending count above which it fails.
    pub unhealthy_pending: u64,
}

/// The `dead_letters` health check: failing when the store failed `store_max_failures` times in a row or more
/// than `unhealthy_pending` letters are pending; degraded while letters are spilled (store failing or queue
/// overflowing) or at least `warn_pending` are pending; else ok.
pub fn health_check(inputs: HealthInputs<'_>) -> HealthCheck {
    let pending = inputs.pending.unwrap_or(0);
    let error = inputs.store_error.unwrap_or("unknown error");
    if inputs.store_past_limit {
        return HealthCheck::new(
            HealthStatus::Failing,
            format!(
                "store failed {} writes in a row (last: {error}); {} letters kept in the spill file; see docs/operations.md \"dead-letter store failing\"",
                inputs.store_failures, inputs.spilled
            ),
        );
    }
    if pending > inputs.unhealthy_pending {
        return HealthCheck::new(
            HealthStatus::Failing,
            format!(
                "{pending} dead letters pending (more than {}); inspect, replay or purge them",
                inputs.unhealthy_pending
            ),
        );
    }
    if inputs.store_failures > 0 {
        return HealthCheck::new(
            HealthStatus::Degraded,
            format!(
                "store failing ({} in a row, last: {error}); {} letters kept in the spill file, moved into the store when it works again",
                inputs.store_failures, inputs.spilled
            ),
        );
    }
    if inputs.spilled > 0 {
        return HealthCheck::new(
            HealthStatus::Degraded,
            format!(
                "{} letters in the spill file, moved into the store at the next maintenance",
                inputs.spilled
            ),
        );
    }
    if pending >= inputs.warn_pending {
        return HealthCheck::new(
            HealthStatus::Degraded,
            format!(
                "{pending} dead letters pending (warning level {}); see `coordinator dead-letters list`",
                inputs.warn_pending
            ),
        );
    }
    HealthCheck::ok(format!("store writable, {pending} pending"))
}

/// What to do with one log-worthy event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDecision {
    /// Log this event on its own line.
    Log,
    /// Stay silent; the event is counted for the next summary.
    Suppress,
    /// Log one summary line: `suppressed` events (this one included) were not logged one by one.
    Summary {
        /// Events counted since the previous summary.
        suppressed: u64,
    },
}

/// Rate limit for dead-letter logging: the first `log_first` events are logged one by one, then one summary per
/// `summary_every` with the count suppressed; in quiet mode (shutdown) nothing is logged, only counted.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    log_first: u32,
    summary_every: Duration,
    logged: u32,
    suppressed: u64,
    window_start: Option<Instant>,
    quiet: bool,
}

impl LogLimiter {
    /// A limiter logging `log_first` events individually, then a summary every `summary_every`.
    pub fn new(log_first: u32, summary_every: Duration) -> Self {
        Self {
            log_first,
            summary_every,
            logged: 0,
            suppressed: 0,
            window_start: None,
            quiet: false,
        }
    }

    /// A limiter with the `dead_letters` config numbers.
    pub fn from_config(config: &DeadLetterConfig) -> Self {
        Self::new(config.log_first, config.log_summary_every)
    }

    /// Decide for one event at `now`.
    pub fn on_event(&mut self, now: Instant) -> LogDecision {
        if !self.quiet && self.logged < self.log_first {
            self.logged += 1;
            return LogDecision::Log;
        }
        self.suppressed += 1;
        let window_start = *self.window_start.get_or_insert(now);
        if !self.quiet && now.saturating_duration_since(window_start) >= self.summary_every {
            return LogDecision::Summary {
                suppressed: self.take_summary(now),
            };
        }
        LogDecision::Suppress
    }

    /// For a periodic tick: the suppressed count when a summary is due at `now` and something was suppressed.
    pub fn due_summary(&mut self, now: Instant) -> Option<u64> {
        let window_start = self.window_start?;
        let due = !self.quiet
            && self.suppressed > 0
            && now.saturating_duration_since(window_start) >= self.summary_every;
        due.then(|| self.take_summary(now))
    }

    /// Enter or leave quiet mode (shutdown): events are only counted.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// Whether quiet mode is on.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Events counted but not yet reported in a summary.
    pub fn pending_suppressed(&self) -> u64 {
        self.suppressed
    }

    fn take_summary(&mut self, now: Instant) -> u64 {
        self.window_start = Some(now);
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::dead_letters::record::from_unix_ms;

    const HOUR: Duration = Duration::from_secs(3600);

    fn record(retries: u32, status: DeadLetterStatus, at_ms: i64) -> DeadLetter {
        DeadLetter {
            id: 1,
            at_ms,
            actor: "scheduler".into(),
            msg: "StartJob".into(),
            payload: serde_json::Value::Null,
            error: "boom".into(),
            correlation_id: "c".into(),
            retries,
            status,
            updated_at_ms: at_ms,
            next_retry_at_ms: None,
        }
    }

    #[test]
    fn backoff_doubles_from_60s_and_caps_at_one_hour() {
        let policy = RetryPolicy::default();
        let expected_secs = [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600];
        for (n, secs) in expected_secs.iter().enumerate() {
            assert_eq!(
                policy.backoff(n as u32),
                Duration::from_secs(*secs),
                "n={n}"
            );
        }
        assert_eq!(policy.backoff(31), HOUR);
        assert_eq!(policy.backoff(32), HOUR);
        assert_eq!(policy.backoff(u32::MAX), HOUR);
    }

    #[test]
    fn failed_replays_walk_to_abandoned_after_five() {
        let policy = RetryPolicy::default();
        let start = 1_000_000_000_000;
        let mut current = record(0, DeadLetterStatus::Pending, start);
        let now = from_unix_ms(start + 1000);
        let expected = [
            (1, DeadLetterStatus::Pending, Some(120)),
            (2, DeadLetterStatus::Pending, Some(240)),
            (3, DeadLetterStatus::Pending, Some(480)),
            (4, DeadLetterStatus::Pending, Some(960)),
            (5, DeadLetterStatus::Abandoned, None),
        ];
        for (retries, status, wait_secs) in expected {
            let outcome = policy.after_failed_replay(&current, now);
            assert_eq!(outcome.retries, retries);
            assert_eq!(outcome.status, status);
            assert_eq!(
                outcome.next_retry_at_ms,
                wait_secs.map(|s: i64| start + 1000 + s * 1000)
            );
            current.retries = outcome.retries;
            current.status = outcome.status;
        }
    }

    #[test]
    fn age_abandons_at_168_hours_and_abandoned_stays_abandoned() {
        let policy = RetryPolicy::default();
        let fresh = record(0, DeadLetterStatus::Pending, 0);
        let just_before = from_unix_ms(duration_ms(168 * HOUR) - 1);
        let at_limit = from_unix_ms(duration_ms(168 * HOUR));
        assert_eq!(
            policy.after_failed_replay(&fresh, just_before).status,
            DeadLetterStatus::Pending
        );
        assert_eq!(
            policy.after_failed_replay(&fresh, at_limit).status,
            DeadLetterStatus::Abandoned
        );
        let abandoned = record(0, DeadLetterStatus::Abandoned, 0);
        let outcome = policy.after_failed_replay(&abandoned, from_unix_ms(5));
        assert_eq!(
            (outcome.retries, outcome.status, outcome.next_retry_at_ms),
            (1, DeadLetterStatus::Abandoned, None)
        );
    }

    #[test]
    fn first_retry_uses_spent_retries_and_none_when_used_up() {
        let policy = RetryPolicy::default();
        let now = from_unix_ms(10_000);
        assert_eq!(policy.first_retry_at(0, now), Some(70_000));
        assert_eq!(policy.first_retry_at(2, now), Some(250_000));
        assert_eq!(policy.first_retry_at(5, now), None);
    }

    #[test]
    fn purge_takes_settled_rows_older_than_the_limit() {
        let week = Duration::from_secs(7 * 86_400);
        let now = from_unix_ms(duration_ms(30 * 24 * HOUR));
        let old = unix_ms(now) - duration_ms(week);
        let young = old + 1;
        let cases = [
            (DeadLetterStatus::Recovered, old, PurgeScope::Settled, true),
            (DeadLetterStatus::Abandoned, old, PurgeScope::Settled, true),
            (DeadLetterStatus::Pending, old, PurgeScope::Settled, false),
            (
                DeadLetterStatus::Recovered,
                young,
                PurgeScope::Settled,
                false,
            ),
            (
                DeadLetterStatus::Pending,
                old,
                PurgeScope::IncludingPending,
                true,
            ),
            (
                DeadLetterStatus::Pending,
                young,
                PurgeScope::IncludingPending,
                false,
            ),
        ];
        for (status, updated, scope, expected) in cases {
            let mut row = record(0, status, 0);
            row.updated_at_ms = updated;
            assert_eq!(
                is_purgeable(&row, week, now, scope),
                expected,
                "{status} {updated} {scope:?}"
            );
        }
    }

    fn inputs(pending: u64) -> HealthInputs<'static> {
        HealthInputs {
            pending: Some(pending),
            spilled: 0,
            store_failures: 0,
            store_past_limit: false,
            store_error: None,
            warn_pending: 50,
            unhealthy_pending: 1000,
        }
    }

    #[test]
    fn health_warns_at_50_and_fails_above_1000() {
        let cases = [
            (0, HealthStatus::Ok),
            (49, HealthStatus::Ok),
            (50, HealthStatus::Degraded),
            (1000, HealthStatus::Degraded),
            (1001, HealthStatus::Failing),
        ];
        for (pending, expected) in cases {
            assert_eq!(health_check(inputs(pending)).status, expected, "{pending}");
        }
    }

    #[test]
    fn health_is_degraded_while_spilling_and_failing_past_the_store_limit() {
        let spilling = HealthInputs {
            spilled: 3,
            ..inputs(0)
        };
        let check = health_check(spilling);
        assert_eq!(check.status, HealthStatus::Degraded);
        assert!(
            check.detail.contains("3 letters in the spill file"),
            "{}",
            check.detail
        );
        let store_failing = HealthInputs {
            store_failures: 2,
            store_error: Some("database or disk is full"),
            ..spilling
        };
        let check = health_check(store_failing);
        assert_eq!(check.status, HealthStatus::Degraded);
        assert!(check.detail.contains("disk is full"), "{}", check.detail);
        let past = HealthInputs {
            store_failures: 5,
            store_past_limit: true,
            ..store_failing
        };
        let check = health_check(past);
        assert_eq!(check.status, HealthStatus::Failing);
        assert!(
            check.detail.contains("5 writes in a row"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn store_failures_back_off_then_escalate_and_success_resets() {
        let t0 = Instant::now();
        let mut store = StoreHealth::new(
            3,
            Exponential::new(Duration::from_secs(1), Duration::from_secs(60)),
        );
        assert!(store.should_try(t0));
        assert_eq!(
            store.on_failure("full", t0),
            StoreVerdict::RetryAfter {
                after: Duration::from_secs(1)
            }
        );
        assert!(!store.should_try(t0 + Duration::from_millis(999)));
        assert!(store.should_try(t0 + Duration::from_secs(1)));
        assert_eq!(
            store.on_failure("full", t0),
            StoreVerdict::RetryAfter {
                after: Duration::from_secs(2)
            }
        );
        assert_eq!(
            store.on_failure("full", t0),
            StoreVerdict::Escalate { failures: 3 }
        );
        assert!(store.past_limit() && store.is_failing());
        assert_eq!(store.last_error(), Some("full"));
        assert!(store.on_success(), "ends the failing spell");
        assert!(!store.on_success());
        assert!(!store.is_failing() && store.should_try(t0));
    }

    #[test]
    fn settled_letters_replay_only_when_forced_and_never_twice_at_once() {
        let pending = record(0, DeadLetterStatus::Pending, 0);
        assert_eq!(may_replay(&pending, false, false), Ok(()));
        assert_eq!(
            may_replay(&pending, true, true),
            Err(ReplayRefused::InFlight)
        );
        for status in [DeadLetterStatus::Recovered, DeadLetterStatus::Abandoned] {
            let settled = record(0, status, 0);
            assert_eq!(
                may_replay(&settled, false, false),
                Err(ReplayRefused::Settled(status))
            );
            assert_eq!(may_replay(&settled, false, true), Ok(()));
        }
        assert!(ReplayRefused::Settled(DeadLetterStatus::Recovered)
            .to_string()
            .contains("force=true"));
    }

    #[test]
    fn limiter_logs_first_ten_then_summarises_every_five_minutes() {
        let start = Instant::now();
        let five_min = Duration::from_secs(300);
        let mut limiter = LogLimiter::from_config(&DeadLetterConfig::default());
        for _ in 0..10 {
            assert_eq!(limiter.on_event(start), LogDecision::Log);
        }
        assert_eq!(limiter.on_event(start), LogDecision::Suppress);
        assert_eq!(
            limiter.on_event(start + Duration::from_secs(100)),
            LogDecision::Suppress
        );
        assert_eq!(limiter.due_summary(start + Duration::from_secs(299)), None);
        assert_eq!(
            limiter.on_event(start + five_min),
            LogDecision::Summary { suppressed: 3 }
        );
        assert_eq!(limiter.pending_suppressed(), 0);
        assert_eq!(
            limiter.on_event(start + five_min + Duration::from_secs(1)),
            LogDecision::Suppress
        );
        assert_eq!(
            limiter.due_summary(start + 2 * five_min - Duration::from_secs(1)),
            None
        );
        assert_eq!(limiter.due_summary(start + 2 * five_min), Some(1));
        assert_eq!(
            limiter.due_summary(start + 3 * five_min),
            None,
            "nothing suppressed since"
        );
    }

    #[test]
    fn limiter_is_quiet_during_shutdown() {
        let start = Instant::now();
        let mut limiter = LogLimiter::new(10, Duration::from_secs(300));
        limiter.set_quiet(true);
        assert!(limiter.is_quiet());
        for step in 0..20 {
            assert_eq!(
                limiter.on_event(start + Duration::from_secs(step * 60)),
                LogDecision::Suppress
            );
        }
        assert_eq!(limiter.due_summary(start + Duration::from_secs(3600)), None);
        assert_eq!(limiter.pending_suppressed(), 20);
        limiter.set_quiet(false);
        assert_eq!(
            limiter.on_event(start),
            LogDecision::Log,
            "individual logging resumes after quiet mode"
        );
    }
}
