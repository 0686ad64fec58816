//! The sync actor's decisions as a pure state machine: when a cycle starts and for which peers, how requests are
//! coalesced and bounded, when a running cycle is past its watchdog deadline, and how healthy sync is. No actix, no
//! I/O, no clock: every call takes `now`; the interval's jitter sample is passed in.
//!
//! Rules (issue 9 item 6, shared/domain/sync.md "Watchdog", "Backpressure"):
//! - A full cycle every `interval` (±`interval_jitter`). One cycle runs at a time; a cycle due while one runs
//!   starts after it.
//! - A peer's notice asks for a pull from that peer `notify_delay` later (notices in between join it), and early
//!   cycles start at least `min_gap` after the previous start. An operator's run starts at once.
//! - Pending requests are bounded by `queue_capacity` (distinct notified peers plus waiting runs); past it a
//!   request is refused ([`Refused`]), never dropped silently.
//! - A cycle still running at `cycle_deadline` is cancelled and counted as stalled (a failure); the next starts
//!   only once it has really ended, so two cycles never write the same files.
//! - `unhealthy_after_failed_cycles` failed cycles in a row make sync failing; one failed cycle, degraded.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::config::SyncConfig;
use crate::runtime::{HealthCheck, HealthStatus};

/// Why a request starts a cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A peer has new files.
    Notice { peer: String },
    /// An operator asked (`POST /sync/run`, `sync --once`), for one peer or all.
    Run { peer: Option<String> },
}

/// A request that could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sync queue full ({capacity} requests waiting); try again after the running cycle")]
pub struct Refused {
    pub capacity: usize,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start cycle `id` for these peers (all when `None`); `runs` waiting operators get its report.
    Start {
        id: u64,
        peers: Option<BTreeSet<String>>,
        trigger: String,
        runs: usize,
    },
    /// Cycle `id` is past its deadline: cancel its transfers.
    Cancel { id: u64 },
}

#[derive(Debug, Clone)]
struct Running {
    id: u64,
    deadline: Instant,
    cancelled: bool,
}

#[derive(Debug, Clone, Default)]
struct Pending {
    at: Option<Instant>,
    full: bool,
    peers: BTreeSet<String>,
    runs: usize,
    trigger: Vec<String>,
}

/// See the module doc.
#[derive(Debug)]
pub struct CyclePolicy {
    interval: Duration,
    jitter: f64,
    notify_delay: Duration,
    min_gap: Duration,
    cycle_deadline: Duration,
    capacity: usize,
    unhealthy_after: u32,
    next_interval: Instant,
    running: Option<Running>,
    pending: Pending,
    last_start: Option<Instant>,
    next_id: u64,
    consecutive_failures: u32,
    last_success: Option<Instant>,
    last_summary: Option<String>,
    stalled: u64,
    refused: u64,
}

/// Counters for `/sync` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyCounters {
    pub consecutive_failures: u32,
    pub stalled: u64,
    pub refused: u64,
    pub running: Option<u64>,
    pub pending_peers: usize,
    pub pending_runs: usize,
}

impl CyclePolicy {
    /// A policy whose first interval cycle is due at `first` (the shell passes `now` + a short delay).
    pub fn new(config: &SyncConfig, first: Instant, first_id: u64) -> CyclePolicy {
        CyclePolicy {
            interval: config.interval,
            jitter: config.interval_jitter,
            notify_delay: config.notify_delay,
            min_gap: config.min_gap,
            cycle_deadline: config.cycle_deadline,
            capacity: config.queue_capacity,
            unhealthy_after: config.unhealthy_after_failed_cycles,
            next_interval: first,
            running: None,
            pending: Pending::default(),
            last_start: None,
            next_id: first_id,
            consecutive_failures: 0,
            last_success: None,
            last_summary: None,
            stalled: 0,
            refused: 0,
        }
    }

    fn queued(&self) -> usize {
        self.pending.peers.len() + self.pending.runs
    }

    /// Queues a request. A run has its report sent once its cycle ends (the shell keeps its reply channel in
    /// the same order).
    pub fn request(&mut self, now: Instant, request: Request) -> Result<(), Refused> {
        let new_entry = match &request {
            Request::Notice { peer } => !self.pending.peers.contains(peer) && !self.pending.full,
            Request::Run { .. } => true,
        };
        if new_entry && self.queued() >= self.capacity {
            self.refused += 1;
            return Err(Refused {
                capacity: self.capacity,
            });
        }
        match request {
            Request::Notice { peer } => {
                let earliest = now + self.notify_delay;
                let gap = self.last_start.map_or(earliest, |s| s + self.min_gap);
                let at = earliest.max(gap);
                self.pending.at = Some(self.pending.at.map_or(at, |current| current.min(at)));
                if !self.pending.full {
                    self.pending.peers.insert(peer.clone());
                }
                self.pending.trigger.push(format!("notice from {peer}"));
            }
            Request::Run { peer } => {
                self.pending.at = Some(now);
                match peer {
                    Some(peer) if !self.pending.full => {
                        self.pending.peers.insert(peer.clone());
                        self.pending.trigger.push(format!("run for {peer}"));
                    }
                    Some(_) => self.pending.trigger.push("run".into()),
                    None => {
                        self.pending.full = true;
                        self.pending.peers.clear();
                        self.pending.trigger.push("run".into());
                    }
                }
                self.pending.runs += 1;
            }
        }
        Ok(())
    }

    /// What is due at `now`; `interval_sample` in [-1, 1] spreads the next interval.
    pub fn poll(&mut self, now: Instant, interval_sample: f64) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(running) = &mut self.running {
            if !running.cancelled && now >= running.deadline {
                running.cancelled = true;
                self.stalled += 1;
                self.consecutive_failures += 1;
                self.last_summary = Some(format!(
                    "cycle {} stalled past its {} deadline and was cancelled",
                    running.id,
                    humantime::format_duration(self.cycle_deadline)
                ));
                actions.push(Action::Cancel { id: running.id });
            }
            return actions;
        }
        if now >= self.next_interval {
            self.pending.full = true;
            self.pending.peers.clear();
            self.pending.at = Some(now);
            self.pending.trigger.insert(0, "interval".into());
            let spread = 1.0 + self.jitter * interval_sample.clamp(-1.0, 1.0);
            self.next_interval = now + self.interval.mul_f64(spread.max(0.0));
        }
        if self.pending.at.is_some_and(|at| now >= at) {
            let pending = std::mem::take(&mut self.pending);
            let id = self.next_id;
            self.next_id += 1;
            self.last_start = Some(now);
            self.running = Some(Running {
                id,
                deadline: now + self.cycle_deadline,
                cancelled: false,
            });
            let mut trigger: Vec<String> = Vec::new();
            for t in pending.trigger {
                if !trigger.contains(&t) {
                    trigger.push(t);
                }
            }
            actions.push(Action::Start {
                id,
                peers: (!pending.full).then_some(pending.peers),
                trigger: trigger.join(", "),
                runs: pending.runs,
            });
        }
        actions
    }

    /// Cycle `id` ended (`ok`: no operation failed). A cycle already counted as stalled is not counted again.
    pub fn finished(&mut self, now: Instant, id: u64, ok: bool, summary: String) {
        let Some(running) = self.running.take_if(|r| r.id == id) else {
            return;
        };
        if running.cancelled {
            return;
        }
        if ok {
            self.consecutive_failures = 0;
            self.last_success = Some(now);
        } else {
            self.consecutive_failures += 1;
        }
        self.last_summary = Some(summary);
    }

    /// When the shell should call [`CyclePolicy::poll`] next; `None` while a cancelled cycle winds down (its end
    /// comes as a message, and nothing starts before it).
    pub fn next_wake(&self) -> Option<Instant> {
        match &self.running {
            Some(running) if !running.cancelled => Some(running.deadline),
            Some(_) => None,
            None => Some(
                self.pending
                    .at
                    .map_or(self.next_interval, |at| at.min(self.next_interval)),
            ),
        }
    }

    /// When the last ok cycle ended.
    pub fn last_success(&self) -> Option<Instant> {
        self.last_success
    }

    pub fn counters(&self) -> PolicyCounters {
        PolicyCounters {
            consecutive_failures: self.consecutive_failures,
            stalled: self.stalled,
            refused: self.refused,
            running: self.running.as_ref().map(|r| r.id),
            pending_peers: self.pending.peers.len(),
            pending_runs: self.pending.runs,
        }
    }

    /// The `sync` health check.
    pub fn health(&self) -> HealthCheck {
        let last = self
            .last_summary
            .clone()
            .unwrap_or_else(|| "no cycle has run yet".into());
        if self.consecutive_failures >= self.unhealthy_after {
            HealthCheck::new(
                HealthStatus::Failing,
                format!(
                    "{} sync cycles in a row failed; last: {last}",
                    self.consecutive_failures
                ),
            )
        } else if self.consecutive_failures > 0 {
            HealthCheck::new(
                HealthStatus::Degraded,
                format!("last sync cycle failed: {last}"),
            )
        } else {
            HealthCheck::ok(last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(t0: Instant) -> CyclePolicy {
        CyclePolicy::new(&SyncConfig::default(), t0 + Duration::from_secs(1), 1)
    }

    fn start(actions: &[Action]) -> (u64, Option<BTreeSet<String>>, String, usize) {
        match actions {
            [Action::Start {
                id,
                peers,
                trigger,
                runs,
            }] => (*id, peers.clone(), trigger.clone(), *runs),
            other => panic!("expected one start, got {other:?}"),
        }
    }

    #[test]
    fn interval_cycles_are_jittered_and_one_runs_at_a_time() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        assert!(p.poll(t0, 0.0).is_empty());
        assert_eq!(p.next_wake(), Some(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        let (id, peers, trigger, runs) = start(&p.poll(t1, 1.0));
        assert_eq!(
            (id, peers, trigger.as_str(), runs),
            (1, None, "interval", 0)
        );
        // Due again while the first runs: nothing starts.
        let t2 = t1 + Duration::from_secs(70);
        assert!(p.poll(t2, 0.0).is_empty());
        p.finished(t2, 1, true, "ok".into());
        let (id, ..) = start(&p.poll(t2, 0.0));
        assert_eq!(id, 2);
        p.finished(t2, 2, true, "ok".into());
        assert_eq!(p.next_wake(), Some(t2 + Duration::from_secs(60)));
    }

    #[test]
    fn interval_jitter_is_ten_percent() {
        let t0 = Instant::now();
        let mut p = CyclePolicy::new(&SyncConfig::default(), t0, 1);
        start(&p.poll(t0, 1.0));
        p.finished(t0, 1, true, "ok".into());
        assert_eq!(p.next_wake(), Some(t0 + Duration::from_secs(66)));
    }

    #[test]
    fn notices_coalesce_and_keep_two_seconds_apart() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        start(&p.poll(t0 + Duration::from_secs(1), 0.0));
        let t1 = t0 + Duration::from_millis(1500);
        p.finished(t1, 1, true, "ok".into());
        p.request(t1, Request::Notice { peer: "w1".into() })
            .unwrap();
        p.request(
            t1 + Duration::from_millis(50),
            Request::Notice { peer: "w2".into() },
        )
        .unwrap();
        p.request(
            t1 + Duration::from_millis(60),
            Request::Notice { peer: "w1".into() },
        )
        .unwrap();
        // The previous cycle started at t0+1s: 2 s apart means t0+3s, later than t1+200ms.
        assert_eq!(p.next_wake(), Some(t0 + Duration::from_secs(3)));
        assert!(p.poll(t0 + Duration::from_millis(2900), 0.0).is_empty());
        let (id, peers, trigger, runs) = start(&p.poll(t0 + Duration::from_secs(3), 0.0));
        assert_eq!(id, 2);
        assert_eq!(peers, Some(["w1", "w2"].map(String::from).into()));
        assert_eq!(trigger, "notice from w1, notice from w2");
        assert_eq!(runs, 0);
    }

    #[test]
    fn a_notice_after_a_quiet_spell_starts_within_the_notify_delay() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        start(&p.poll(t0 + Duration::from_secs(1), 0.0));
        p.finished(t0 + Duration::from_secs(2), 1, true, "ok".into());
        let t1 = t0 + Duration::from_secs(20);
        p.request(t1, Request::Notice { peer: "w1".into() })
            .unwrap();
        assert_eq!(p.next_wake(), Some(t1 + Duration::from_millis(200)));
        start(&p.poll(t1 + Duration::from_millis(200), 0.0));
    }

    #[test]
    fn runs_start_at_once_and_a_full_run_absorbs_peer_requests() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        p.request(
            t0,
            Request::Run {
                peer: Some("w1".into()),
            },
        )
        .unwrap();
        p.request(t0, Request::Run { peer: None }).unwrap();
        p.request(t0, Request::Notice { peer: "w2".into() })
            .unwrap();
        let (_, peers, trigger, runs) = start(&p.poll(t0, 0.0));
        assert_eq!(peers, None);
        assert_eq!(runs, 2);
        assert_eq!(trigger, "run for w1, run, notice from w2");
    }

    #[test]
    fn past_the_queue_bound_requests_are_refused_visibly() {
        let t0 = Instant::now();
        let config = SyncConfig {
            queue_capacity: 2,
            ..SyncConfig::default()
        };
        let mut p = CyclePolicy::new(&config, t0 + Duration::from_secs(60), 1);
        p.request(t0, Request::Notice { peer: "a".into() }).unwrap();
        p.request(t0, Request::Notice { peer: "b".into() }).unwrap();
        // The same peer again joins its pending request.
        p.request(t0, Request::Notice { peer: "a".into() }).unwrap();
        assert_eq!(
            p.request(t0, Request::Notice { peer: "c".into() }),
            Err(Refused { capacity: 2 })
        );
        assert!(p.request(t0, Request::Run { peer: None }).is_err());
        assert_eq!(p.counters().refused, 2);
    }

    #[test]
    fn a_stalled_cycle_is_cancelled_counted_and_waited_for() {
        let t0 = Instant::now();
        let mut p = CyclePolicy::new(&SyncConfig::default(), t0, 1);
        start(&p.poll(t0, 0.0));
        assert_eq!(p.next_wake(), Some(t0 + Duration::from_secs(600)));
        let late = t0 + Duration::from_secs(600);
        assert_eq!(p.poll(late, 0.0), [Action::Cancel { id: 1 }]);
        assert!(
            p.poll(late + Duration::from_secs(100), 0.0).is_empty(),
            "waits for the cancelled cycle to end"
        );
        assert_eq!(p.counters().stalled, 1);
        assert_eq!(p.health().status, HealthStatus::Degraded);
        assert!(
            p.health().detail.contains("stalled"),
            "{}",
            p.health().detail
        );
        p.finished(late + Duration::from_secs(101), 1, false, "late".into());
        assert_eq!(p.counters().consecutive_failures, 1, "not counted twice");
        start(&p.poll(late + Duration::from_secs(101), 0.0));
    }

    #[test]
    fn five_failed_cycles_in_a_row_are_unhealthy_one_success_heals() {
        let t0 = Instant::now();
        let mut p = CyclePolicy::new(&SyncConfig::default(), t0, 1);
        assert_eq!(p.health().status, HealthStatus::Ok);
        let mut now = t0;
        for i in 1..=5 {
            p.request(now, Request::Run { peer: None }).unwrap();
            let (id, ..) = start(&p.poll(now, 0.0));
            p.finished(now, id, false, format!("failure {i}"));
            now += Duration::from_secs(3);
            let expected = if i < 5 {
                HealthStatus::Degraded
            } else {
                HealthStatus::Failing
            };
            assert_eq!(p.health().status, expected, "after {i}");
        }
        assert!(p
            .health()
            .detail
            .starts_with("5 sync cycles in a row failed; last: failure 5"));
        p.request(now, Request::Run { peer: None }).unwrap();
        let (id, ..) = start(&p.poll(now, 0.0));
        p.finished(now, id, true, "fine".into());
        assert_eq!(p.health(), HealthCheck::ok("fine"));
        assert_eq!(p.last_success(), Some(now));
        assert_eq!(p.counters().consecutive_failures, 0, "the count resets");
        // After the reset it takes five again, a stalled cycle counting as one of them.
        for i in 1..=5 {
            now += Duration::from_secs(3);
            p.request(now, Request::Run { peer: None }).unwrap();
            let (id, ..) = start(&p.poll(now, 0.0));
            if i == 5 {
                let late = now + Duration::from_secs(600);
                assert_eq!(p.poll(late, 0.0), [Action::Cancel { id }]);
                p.finished(late, id, false, "late".into());
                now = late;
            } else {
                p.finished(now, id, false, format!("failure {i}"));
            }
            assert_eq!(p.counters().consecutive_failures, i);
            let expected = if i < 5 {
                HealthStatus::Degraded
            } else {
                HealthStatus::Failing
            };
            assert_eq!(p.health().status, expected, "after {i} since the reset");
        }
    }

    #[test]
    fn the_unhealthy_threshold_is_the_configured_count() {
        let t0 = Instant::now();
        let config = SyncConfig {
            unhealthy_after_failed_cycles: 2,
            ..SyncConfig::default()
        };
        let mut p = CyclePolicy::new(&config, t0, 1);
        let (id, ..) = start(&p.poll(t0, 0.0));
        p.finished(t0, id, false, "one".into());
        assert_eq!(p.health().status, HealthStatus::Degraded);
        p.request(t0, Request::Run { peer: None }).unwrap();
        let (id, ..) = start(&p.poll(t0, 0.0));
        p.finished(t0, id, false, "two".into());
        assert_eq!(p.health().status, HealthStatus::Failing);
    }
}
