//! The one home of capped exponential backoff and of "N restarts within a window".
//!
//! - [`Exponential`]: `base × 2^step`, capped at `max`, saturating (a step so large that the doubling overflows is
//!   simply `max`); [`Exponential::jittered`] scales it by `1 ± jitter × sample`, then caps and floors it.
//! - [`Jitter`]: where the samples come from, random in production, fixed in tests (injected, so every policy using
//!   jitter is tested without randomness).
//! - [`RestartWindow`]: a sliding window of event times. Edge: an event exactly `within` old is still inside the
//!   window (it leaves only once strictly older), and the verdict is "more than `max` inside" (`count > max`), the
//!   OTP reading of "more than `max_restarts` within `within`".
//!
//! Used by supervision restarts, circuit breakers, the data-server monitor and dead-letter replays. Pure: no clock
//! reads, `now` is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Capped exponential backoff: `base × 2^step`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exponential {
    /// The delay of step 0.
    pub base: Duration,
    /// The cap.
    pub max: Duration,
}

impl Exponential {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Exponential { base, max }
    }

    /// `min(base × 2^step, max)`, saturating.
    pub fn delay(&self, step: u32) -> Duration {
        let doubled = 1u32
            .checked_shl(step)
            .and_then(|factor| self.base.checked_mul(factor));
        match doubled {
            Some(delay) => delay.min(self.max),
            None => self.max,
        }
    }

    /// [`Exponential::delay`] scaled by `1 + jitter × sample` (`sample` clamped to [-1, 1], non-finite as 0), then
    /// capped at `max × (1 + jitter)` and never below zero.
    pub fn jittered(&self, step: u32, jitter: f64, sample: f64) -> Duration {
        let delay = self.delay(step).as_secs_f64();
        let sample = if sample.is_finite() {
            sample.clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let jitter = if jitter.is_finite() {
            jitter.max(0.0)
        } else {
            0.0
        };
        let scaled = (delay * (1.0 + jitter * sample)).max(0.0);
        Duration::try_from_secs_f64(scaled).unwrap_or(self.max)
    }
}

/// Where jitter samples come from: random in production, fixed in tests.
#[derive(Debug, Clone)]
pub enum Jitter {
    /// Uniform samples in [-1, 1].
    Random(fastrand::Rng),
    /// Always this sample (clamped to [-1, 1] by the user); `Fixed(0.0)` disables jitter.
    Fixed(f64),
}

impl Jitter {
    /// A randomly seeded source.
    pub fn random() -> Self {
        Jitter::Random(fastrand::Rng::new())
    }

    /// The next sample in [-1, 1].
    pub fn sample(&mut self) -> f64 {
        match self {
            Jitter::Random(rng) => rng.f64() * 2.0 - 1.0,
            Jitter::Fixed(sample) => *sample,
        }
    }
}

/// A uniform sample in [-1, 1] from the thread's generator.
pub fn jitter_sample() -> f64 {
    fastrand::f64() * 2.0 - 1.0
}

/// Sliding window of event times: "more than `max` within `within`". See the module doc for the edge.
#[derive(Debug, Clone)]
pub struct RestartWindow {
    max: u32,
    within: Duration,
    recent: VecDeque<Instant>,
}

/// The window's verdict on one more event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowVerdict {
    /// Still allowed; `count` events are now inside the window.
    Within { count: u32 },
    /// More than `max` inside the window.
    Exceeded { count: u32 },
}

impl RestartWindow {
    pub fn new(max: u32, within: Duration) -> Self {
        RestartWindow {
            max,
            within,
            recent: VecDeque::new(),
        }
    }

    /// Drops events strictly older than `within` at `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) > self.within {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records an event at `now` and says whether the window is exceeded.
    pub fn record(&mut self, now: Instant) -> WindowVerdict {
        self.expire(now);
        self.recent.push_back(now);
        let count = self.recent.len() as u32;
        if count > self.max {
            WindowVerdict::Exceeded { count }
        } else {
            WindowVerdict::Within { count }
        }
    }

    /// Whether one more event at `now` would exceed the window (nothing is recorded).
    pub fn would_exceed(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.recent.len() as u32 + 1 > self.max
    }

    /// Events inside the window at `now`.
    pub fn count(&mut self, now: Instant) -> u32 {
        self.expire(now);
        self.recent.len() as u32
    }

    /// Forgets every event.
    pub fn clear(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_caps_and_saturates() {
        let b = Exponential::new(100 * MS, Duration::from_secs(30));
        let expected = [
            100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000,
        ];
        for (step, ms) in expected.iter().enumerate() {
            assert_eq!(b.delay(step as u32), *ms * MS, "step {step}");
        }
        for step in [31, 32, 63, 64, u32::MAX] {
            assert_eq!(b.delay(step), Duration::from_secs(30), "step {step}");
        }
        let huge = Exponential::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.delay(1), Duration::MAX);
    }

    #[test]
    fn jitter_scales_within_bounds() {
        let b = Exponential::new(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(b.jittered(0, 0.1, 0.0), Duration::from_secs(1));
        assert_eq!(b.jittered(0, 0.1, 1.0), Duration::from_millis(1100));
        assert_eq!(b.jittered(0, 0.1, -1.0), Duration::from_millis(900));
        assert_eq!(
            b.jittered(0, 0.1, 5.0),
            Duration::from_millis(1100),
            "clamped"
        );
        assert_eq!(b.jittered(0, 0.1, f64::NAN), Duration::from_secs(1));
        assert_eq!(b.jittered(10, 0.1, 1.0), Duration::from_secs(11));
        assert_eq!(b.jittered(0, 2.0, -1.0), Duration::ZERO, "never negative");
        let mut fixed = Jitter::Fixed(0.5);
        assert_eq!(fixed.sample(), 0.5);
        let mut random = Jitter::random();
        for _ in 0..100 {
            let s = random.sample();
            assert!((-1.0..=1.0).contains(&s), "{s}");
        }
    }

    #[test]
    fn window_counts_more_than_max_and_keeps_the_edge_inside() {
        let t0 = Instant::now();
        let within = Duration::from_secs(30);
        let mut w = RestartWindow::new(2, within);
        assert_eq!(w.record(t0), WindowVerdict::Within { count: 1 });
        assert_eq!(w.record(t0), WindowVerdict::Within { count: 2 });
        assert!(w.would_exceed(t0 + within));
        assert_eq!(
            w.record(t0 + within),
            WindowVerdict::Exceeded { count: 3 },
            "exactly `within` old is inside"
        );
        assert_eq!(w.count(t0 + within + MS), 1, "strictly older leaves");
        w.clear();
        assert_eq!(w.count(t0), 0);
    }
}
