//! Pure supervision decisions: restart types, strategies, restart intensity and restart backoff.
//!
//! The words are OTP's (and kameo's): a child is `permanent` (always restarted), `transient` (restarted only after a
//! failure) or `temporary` (never restarted). A supervisor's strategy says which siblings restart with a failed child:
//! `one_for_one` (only it), `one_for_all` (every child), `rest_for_one` (it and the children started after it).
//! More than `max_restarts` within `within` means the supervisor gives up and fails to its parent.
//! Between restarts of one child it waits a backoff that doubles from `initial` to `max` with jitter, and forgets the
//! backoff once the child has run healthy for `reset_after`.
//!
//! No actix and no clock reads: every function takes `now`, so tests need no sleeping.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::backoff::{Exponential, RestartWindow, WindowVerdict};

/// When a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    /// Always restarted, whether it failed or stopped on its own.
    #[default]
    Permanent,
    /// Restarted only when it failed (panic, watchdog, escalation); a normal stop is final.
    Transient,
    /// Never restarted; a failure leaves it `failed`.
    Temporary,
}

impl RestartType {
    /// Whether a child of this type is restarted after it ended (`failed` says whether it ended by failure).
    pub fn restarts(self, failed: bool) -> bool {
        match self {
            RestartType::Permanent => true,
            RestartType::Transient => failed,
            RestartType::Temporary => false,
        }
    }
}

/// Which children restart together when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    OneForOne,
    OneForAll,
    RestForOne,
}

impl Strategy {
    /// Indices (in start order) of the children that restart when child `failed` of `count` fails.
    pub fn affected(self, failed: usize, count: usize) -> std::ops::Range<usize> {
        match self {
            Strategy::OneForOne => failed..(failed + 1).min(count),
            Strategy::OneForAll => 0..count,
            Strategy::RestForOne => failed..count,
        }
    }
}

/// Restart intensity: "more than `max_restarts` within `within`" means give up (a [`RestartWindow`]).
#[derive(Debug, Clone)]
pub struct RestartIntensity {
    window: RestartWindow,
}

/// The intensity verdict on one more restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntensityVerdict {
    /// Restart; `count` restarts are now inside the window.
    Restart { count: u32 },
    /// Too many restarts inside the window: escalate to the parent.
    GiveUp { count: u32 },
}

impl RestartIntensity {
    pub fn new(max_restarts: u32, within: Duration) -> Self {
        RestartIntensity {
            window: RestartWindow::new(max_restarts, within),
        }
    }

    /// Records a restart at `now` and says whether it is still allowed.
    pub fn record(&mut self, now: Instant) -> IntensityVerdict {
        match self.window.record(now) {
            WindowVerdict::Within { count } => IntensityVerdict::Restart { count },
            WindowVerdict::Exceeded { count } => IntensityVerdict::GiveUp { count },
        }
    }

    /// Forgets every recorded restart (after the supervisor itself was restarted fresh).
    pub fn clear(&mut self) {
        self.window.clear();
    }
}

/// Backoff settings for restarts of one child.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    /// Relative jitter: 0.1 means ±10 %.
    pub jitter: f64,
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            jitter: 0.1,
            reset_after: Duration::from_secs(60),
        }
    }
}

/// Backoff state of one child: doubles per consecutive restart, forgotten after a healthy run.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    consecutive: u32,
    last_start: Option<Instant>,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            consecutive: 0,
            last_start: None,
        }
    }

    /// Records that the child (re)started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
    }

    /// The delay before the next restart of a child that failed at `now`. `jitter_sample` is uniform in [-1, 1].
    pub fn next_delay(&mut self, now: Instant, jitter_sample: f64) -> Duration {
        if let Some(start) = self.last_start {
            if now.saturating_duration_since(start) >= self.config.reset_after {
                self.consecutive = 0;
            }
        }
        let delay = Exponential::new(self.config.initial, self.config.max).jittered(
            self.consecutive,
            self.config.jitter,
            jitter_sample,
        );
        self.consecutive = self.consecutive.saturating_add(1);
        delay
    }

    /// Consecutive restarts without a healthy run in between.
    pub fn consecutive(&self) -> u32 {
        self.consecutive
    }
}

pub use super::backoff::jitter_sample;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_types_follow_otp() {
        assert!(RestartType::Permanent.restarts(true));
        assert!(RestartType::Permanent.restarts(false));
        assert!(RestartType::Transient.restarts(true));
        assert!(!RestartType::Transient.restarts(false));
        assert!(!RestartType::Temporary.restarts(true));
        assert!(!RestartType::Temporary.restarts(false));
    }

    #[test]
    fn strategies_pick_the_affected_children() {
        assert_eq!(Strategy::OneForOne.affected(2, 5), 2..3);
        assert_eq!(Strategy::OneForAll.affected(2, 5), 0..5);
        assert_eq!(Strategy::RestForOne.affected(2, 5), 2..5);
        assert_eq!(Strategy::RestForOne.affected(4, 5), 4..5);
        assert_eq!(Strategy::OneForOne.affected(0, 1), 0..1);
    }

    #[test]
    fn intensity_gives_up_on_the_sixth_restart_within_thirty_seconds() {
        let t0 = Instant::now();
        let mut i = RestartIntensity::new(5, Duration::from_secs(30));
        for n in 1..=5 {
            assert_eq!(
                i.record(t0 + Duration::from_secs(n)),
                IntensityVerdict::Restart { count: n as u32 }
            );
        }
        assert_eq!(
            i.record(t0 + Duration::from_secs(6)),
            IntensityVerdict::GiveUp { count: 6 }
        );
    }

    #[test]
    fn intensity_forgets_restarts_outside_the_window() {
        let t0 = Instant::now();
        let mut i = RestartIntensity::new(5, Duration::from_secs(30));
        for n in 0..5 {
            i.record(t0 + Duration::from_secs(n * 10));
        }
        // at t=50 the restarts at 0 and 10 are older than 30 s
        assert_eq!(
            i.record(t0 + Duration::from_secs(50)),
            IntensityVerdict::Restart { count: 4 }
        );
        i.clear();
        assert_eq!(
            i.record(t0 + Duration::from_secs(51)),
            IntensityVerdict::Restart { count: 1 }
        );
    }

    #[test]
    fn zero_max_restarts_gives_up_at_once() {
        let mut i = RestartIntensity::new(0, Duration::from_secs(30));
        assert_eq!(
            i.record(Instant::now()),
            IntensityVerdict::GiveUp { count: 1 }
        );
    }

    #[test]
    fn backoff_doubles_from_100ms_to_30s() {
        let t0 = Instant::now();
        let mut b = Backoff::new(BackoffConfig::default());
        b.started(t0);
        let delays: Vec<u128> = (0..12).map(|_| b.next_delay(t0, 0.0).as_millis()).collect();
        assert_eq!(
            delays,
            vec![100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]
        );
    }

    #[test]
    fn backoff_jitter_stays_within_ten_percent() {
        let t0 = Instant::now();
        let mut lo = Backoff::new(BackoffConfig::default());
        let mut hi = Backoff::new(BackoffConfig::default());
        assert_eq!(lo.next_delay(t0, -1.0).as_millis(), 90);
        assert_eq!(hi.next_delay(t0, 1.0).as_millis(), 110);
        for _ in 0..1000 {
            let mut b = Backoff::new(BackoffConfig::default());
            let d = b.next_delay(t0, jitter_sample()).as_secs_f64();
            assert!((0.09..=0.11).contains(&d), "{d}");
        }
    }

    #[test]
    fn backoff_resets_after_sixty_seconds_healthy() {
        let t0 = Instant::now();
        let mut b = Backoff::new(BackoffConfig::default());
        b.started(t0);
        b.next_delay(t0, 0.0);
        b.next_delay(t0, 0.0);
        b.started(t0 + Duration::from_secs(1));
        assert_eq!(
            b.next_delay(t0 + Duration::from_secs(30), 0.0).as_millis(),
            400,
            "not yet healthy long enough"
        );
        b.started(t0 + Duration::from_secs(31));
        assert_eq!(
            b.next_delay(t0 + Duration::from_secs(91), 0.0).as_millis(),
            100,
            "reset after 60 s healthy"
        );
    }

    #[test]
    fn zero_backoff_is_zero() {
        let mut b = Backoff::new(BackoffConfig {
            initial: Duration::ZERO,
            ..BackoffConfig::default()
        });
        assert_eq!(b.next_delay(Instant::now(), 1.0), Duration::ZERO);
    }

    proptest::proptest! {
        #[test]
        fn backoff_never_exceeds_max_plus_jitter(steps in 0usize..100, sample in -1.0f64..=1.0) {
            let t0 = Instant::now();
            let mut b = Backoff::new(BackoffConfig::default());
            let mut last = Duration::ZERO;
            for _ in 0..steps { last = b.next_delay(t0, sample); }
            proptest::prop_assert!(last <= Duration::from_secs(33));
        }

        #[test]
        fn intensity_count_never_exceeds_restarts_in_window(gaps in proptest::collection::vec(0u64..20, 1..50)) {
            let t0 = Instant::now();
            let mut i = RestartIntensity::new(5, Duration::from_secs(30));
            let mut t = 0;
            let mut times = vec![];
            for g in gaps {
                t += g;
                times.push(t);
                let expected = times.iter().filter(|&&x| t - x <= 30).count() as u32;
                let verdict = i.record(t0 + Duration::from_secs(t));
                let count = match verdict { IntensityVerdict::Restart { count } | IntensityVerdict::GiveUp { count } => count };
                proptest::prop_assert_eq!(count, expected);
                proptest::prop_assert_eq!(matches!(verdict, IntensityVerdict::GiveUp { .. }), expected > 5);
            }
        }
    }
}
