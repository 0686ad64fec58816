//! Which nodes may get work: a node whose jobs keep failing to run is taken out of the plan for a while.
//!
//! One circuit breaker per node (the runtime's [`CircuitBreaker`], so the backoff is the shared capped doubling):
//! `failures` failed job attempts in a row on a node take it out for `out_for`; when that ends it is back on trial
//! (planned again); the first job that succeeds there brings it fully back, a failure takes it out again for twice
//! as long, up to `max_out_for`. A success resets the count. Pure: every call takes `now`.
//!
//! The scheduler logs one line per [`Change`] (a warning when a node goes out), drops the queued jobs of a node
//! that went out instead of letting each become a dead letter, and replans so its share goes elsewhere.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::runtime::circuit_breaker::{BreakerConfig, BreakerState, CircuitBreaker, Jitter};

/// When a node leaves the plan, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeAvailabilityConfig {
    /// Failed job attempts in a row on a node that take it out of the plan.
    pub failures: u32,
    /// How long a node is out the first time; doubled each time it fails again on trial.
    #[serde(with = "humantime_serde")]
    pub out_for: Duration,
    /// Longest a node stays out.
    #[serde(with = "humantime_serde")]
    pub max_out_for: Duration,
}

impl Default for NodeAvailabilityConfig {
    fn default() -> Self {
        NodeAvailabilityConfig {
            failures: 3,
            out_for: Duration::from_secs(60),
            max_out_for: Duration::from_secs(30 * 60),
        }
    }
}

impl NodeAvailabilityConfig {
    /// Problems as (field, what is wrong).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.failures == 0 {
            out.push(("failures".into(), "must be at least 1".into()));
        }
        if self.out_for.is_zero() {
            out.push(("out_for".into(), "must be longer than 0s".into()));
        }
        if self.max_out_for < self.out_for {
            out.push((
                "max_out_for".into(),
                "must not be shorter than out_for".into(),
            ));
        }
        out
    }

    /// The breaker these settings make: no jitter (the figures are the documented ones), one trial job counts.
    fn breaker(&self) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: self.failures.max(1),
            recovery: self.out_for,
            max_recovery: self.max_out_for.max(self.out_for),
            min_recovery: Duration::ZERO,
            jitter: 0.0,
            half_open_calls: u32::MAX,
        }
    }
}

/// A node's availability as `/status` and `/plan` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Planned as usual.
    Available,
    /// Out of the plan until its out period ends.
    Out,
    /// Planned again; its next job decides.
    OnTrial,
}

/// A change worth one log line.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The node went out of the plan (again, when `outages > 1`).
    WentOut {
        /// The node.
        node: String,
        /// How long.
        out_for: Duration,
        /// Times out in a row (1 the first time).
        outages: u32,
    },
    /// Its out period ended: planned again, on trial.
    OnTrial {
        /// The node.
        node: String,
    },
    /// A job succeeded on a node that was out or on trial.
    Back {
        /// The node.
        node: String,
    },
}

/// What `/status` and `/plan` show of one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeAvailabilitySnapshot {
    /// Available, out or on trial.
    pub state: Availability,
    /// Failed attempts in a row (while available).
    pub consecutive_failures: u32,
    /// Seconds until it is back on trial (while out).
    pub back_in_s: Option<f64>,
    /// Times out in a row.
    pub outages: u32,
}

/// The availability of every node.
#[derive(Debug, Clone)]
pub struct NodeAvailability {
    config: NodeAvailabilityConfig,
    breakers: BTreeMap<String, CircuitBreaker>,
    /// Nodes seen on trial (so the change is reported once).
    on_trial: BTreeMap<String, bool>,
}

impl NodeAvailability {
    /// Every node available.
    pub fn new(config: NodeAvailabilityConfig) -> Self {
        NodeAvailability {
            config,
            breakers: BTreeMap::new(),
            on_trial: BTreeMap::new(),
        }
    }

    fn breaker(&mut self, node: &str) -> &mut CircuitBreaker {
        let config = self.config.breaker();
        self.breakers
            .entry(node.to_string())
            .or_insert_with(|| CircuitBreaker::with_jitter(config, Jitter::Fixed(0.0)))
    }

    fn state(&self, node: &str, now: Instant) -> Availability {
        match self.breakers.get(node).map(|b| b.state(now)) {
            None | Some(BreakerState::Closed) => Availability::Available,
            Some(BreakerState::Open) => Availability::Out,
            Some(BreakerState::HalfOpen) => Availability::OnTrial,
        }
    }

    /// True while `node` is out of the plan.
    pub fn is_out(&self, node: &str, now: Instant) -> bool {
        self.state(node, now) == Availability::Out
    }

    /// A job attempt on `node` failed at `now`.
    pub fn job_failed(&mut self, node: &str, now: Instant) -> Option<Change> {
        let was = self.state(node, now);
        if was == Availability::Out {
            return None; // a job that started before the node went out
        }
        let breaker = self.breaker(node);
        if was == Availability::OnTrial {
            let _ = breaker.allow(now); // make the expired open period half-open, so the failure re-opens it
        }
        breaker.on_failure(now);
        if breaker.state(now) != BreakerState::Open {
            return None;
        }
        let snapshot = breaker.snapshot(now);
        self.on_trial.remove(node);
        Some(Change::WentOut {
            node: node.to_string(),
            out_for: Duration::from_secs_f64(snapshot.last_open_period_s.unwrap_or(0.0)),
            outages: snapshot.consecutive_opens,
        })
    }

    /// A job on `node` succeeded at `now`.
    pub fn job_succeeded(&mut self, node: &str, now: Instant) -> Option<Change> {
        let was = self.state(node, now);
        let breaker = self.breaker(node);
        if was == Availability::OnTrial {
            let _ = breaker.allow(now);
        }
        if was == Availability::Out {
            // Started before it went out: it is reachable after all.
            breaker.reset();
        } else {
            breaker.on_success(now);
        }
        self.on_trial.remove(node);
        (was != Availability::Available).then(|| Change::Back {
            node: node.to_string(),
        })
    }

    /// Nodes whose out period has ended since the last call (each reported once).
    pub fn review(&mut self, now: Instant) -> Vec<Change> {
        let trial: Vec<String> = self
            .breakers
            .keys()
            .filter(|n| self.state(n, now) == Availability::OnTrial)
            .cloned()
            .collect();
        trial
            .into_iter()
            .filter(|n| self.on_trial.insert(n.clone(), true).is_none())
            .map(|node| Change::OnTrial { node })
            .collect()
    }

    /// When the next out period ends, if any node is out.
    pub fn next_review_in(&self, now: Instant) -> Option<Duration> {
        self.breakers
            .values()
            .filter_map(|b| b.snapshot(now).retry_in_s)
            .map(Duration::from_secs_f64)
            .min()
    }

    /// Every node that was ever not available, and `nodes` (all available unless noted).
    pub fn snapshot(
        &self,
        nodes: &[String],
        now: Instant,
    ) -> BTreeMap<String, NodeAvailabilitySnapshot> {
        nodes
            .iter()
            .map(|node| {
                let snap = self.breakers.get(node).map(|b| b.snapshot(now));
                (
                    node.clone(),
                    NodeAvailabilitySnapshot {
                        state: self.state(node, now),
                        consecutive_failures: snap.as_ref().map_or(0, |s| s.consecutive_failures),
                        back_in_s: snap.as_ref().and_then(|s| s.retry_in_s),
                        outages: snap.as_ref().map_or(0, |s| s.consecutive_opens),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn three_failures_take_a_node_out_for_60s_doubling_to_30_minutes() {
        let t0 = Instant::now();
        let mut a = NodeAvailability::new(NodeAvailabilityConfig::default());
        assert_eq!(a.job_failed("peer", t0), None);
        assert_eq!(a.job_failed("peer", t0), None);
        assert!(!a.is_out("peer", t0));
        assert_eq!(
            a.job_failed("peer", t0),
            Some(Change::WentOut {
                node: "peer".into(),
                out_for: secs(60),
                outages: 1
            })
        );
        assert!(a.is_out("peer", t0 + secs(59)));
        assert_eq!(a.next_review_in(t0), Some(secs(60)));
        assert_eq!(
            a.job_failed("peer", t0 + secs(1)),
            None,
            "late failures change nothing"
        );
        assert!(a.review(t0 + secs(59)).is_empty());
        // Out periods: 60 s, then doubling on each failed trial, capped at 30 min.
        let mut now = t0;
        let mut expected = 60;
        for outage in 1..=7u32 {
            now += secs(expected);
            assert_eq!(
                a.review(now),
                vec![Change::OnTrial {
                    node: "peer".into()
                }]
            );
            assert!(a.review(now).is_empty(), "reported once");
            assert!(!a.is_out("peer", now));
            expected = (expected * 2).min(1800);
            assert_eq!(
                a.job_failed("peer", now),
                Some(Change::WentOut {
                    node: "peer".into(),
                    out_for: secs(expected),
                    outages: outage + 1
                }),
                "outage {outage}"
            );
        }
        assert_eq!(expected, 1800);
    }

    #[test]
    fn the_first_success_brings_it_back_and_resets_the_backoff() {
        let t0 = Instant::now();
        let mut a = NodeAvailability::new(NodeAvailabilityConfig::default());
        for _ in 0..3 {
            a.job_failed("peer", t0);
        }
        let trial = t0 + secs(60);
        a.review(trial);
        assert_eq!(
            a.job_succeeded("peer", trial),
            Some(Change::Back {
                node: "peer".into()
            })
        );
        assert_eq!(a.job_succeeded("peer", trial), None, "already back");
        let snap = a.snapshot(&["peer".to_string(), "other".to_string()], trial);
        assert_eq!(snap["peer"].state, Availability::Available);
        assert_eq!(snap["peer"].outages, 0);
        assert_eq!(snap["other"].state, Availability::Available);
        // Out again: 60 s, not 120 s.
        for _ in 0..3 {
            a.job_failed("peer", trial);
        }
        assert_eq!(a.next_review_in(trial), Some(secs(60)));
        let snap = a.snapshot(&["peer".to_string()], trial);
        assert_eq!(snap["peer"].state, Availability::Out);
        assert_eq!(snap["peer"].back_in_s, Some(60.0));
    }

    #[test]
    fn a_success_between_failures_resets_the_count_and_nodes_are_independent() {
        let t0 = Instant::now();
        let mut a = NodeAvailability::new(NodeAvailabilityConfig::default());
        a.job_failed("a", t0);
        a.job_failed("a", t0);
        assert_eq!(a.job_succeeded("a", t0), None);
        a.job_failed("a", t0);
        a.job_failed("a", t0);
        assert!(!a.is_out("a", t0));
        for _ in 0..3 {
            a.job_failed("b", t0);
        }
        assert!(a.is_out("b", t0) && !a.is_out("a", t0));
        // A job that started before b went out and then succeeded: b is reachable, back at once.
        assert!(matches!(
            a.job_succeeded("b", t0),
            Some(Change::Back { .. })
        ));
        assert!(!a.is_out("b", t0));
    }

    #[test]
    fn config_problems() {
        assert!(NodeAvailabilityConfig::default().problems().is_empty());
        let bad = NodeAvailabilityConfig {
            failures: 0,
            out_for: Duration::ZERO,
            max_out_for: Duration::ZERO,
        };
        let fields: Vec<String> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["failures", "out_for"]);
        let inverted = NodeAvailabilityConfig {
            max_out_for: secs(1),
            ..NodeAvailabilityConfig::default()
        };
        assert_eq!(inverted.problems()[0].0, "max_out_for");
    }
}
