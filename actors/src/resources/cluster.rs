//! The cluster view: every node's figures (this one's from its own optimizer, peers' from the `resources` section of
//! their `/status`), and which peers are in it. Pure: the actor polls, this keeps the books with an injected clock.
//!
//! A peer that has not answered for `resources.cluster.stale_after` (300 s) leaves the view, and with it the plan
//! (the scheduler marks it unhealthy), until it answers again. A peer that was never heard from counts from the
//! moment the view started. Peers without an `api_url` cannot be polled and are not in the view at all: the
//! scheduler plans for them from the cluster file as before.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::runtime::Message;

/// One node's figures: what its `/status` `resources.figures` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFigures {
    /// Node name.
    pub node: String,
    /// CPU use %.
    pub cpu_percent: Option<f64>,
    /// Logical CPUs.
    pub cpu_cores: u32,
    /// 1-minute load average.
    pub load_1m: f64,
    /// Memory use %.
    pub memory_percent: Option<f64>,
    /// Memory in all (GB).
    pub memory_total_gb: f64,
    /// Fullest watched disk %.
    pub disk_percent: Option<f64>,
    /// GPU model (`None`: CPU-only).
    pub gpu_name: Option<String>,
    /// Number of GPUs.
    pub gpu_count: u32,
    /// Mean GPU utilization %.
    pub gpu_utilization_percent: Option<f64>,
    /// Highest GPU memory use %.
    pub gpu_memory_percent: Option<f64>,
    /// GPU memory in all (GB).
    pub gpu_memory_gb: f64,
    /// Selfplay jobs running there.
    pub running_jobs: Option<u32>,
    /// Its optimizer's job target.
    pub target_jobs: u32,
    /// Its hardware cap.
    pub hardware_cap: u32,
    /// True while its pressure gate holds back new work.
    pub paused: bool,
    /// Its spawn-rate multiplier: the rate its optimizer negotiates for the default request over that request
    /// (1 from a node that does not report one).
    #[serde(default = "one")]
    pub rate_multiplier: f64,
}

fn one() -> f64 {
    1.0
}

impl NodeFigures {
    /// Load 0-1 for the plan: GPU utilization on a GPU node, else running/target jobs, else CPU use.
    pub fn load(&self) -> Option<f64> {
        let load = if let Some(g) = self.gpu_utilization_percent {
            g / 100.0
        } else if let (Some(running), true) = (self.running_jobs, self.target_jobs > 0) {
            f64::from(running) / f64::from(self.target_jobs)
        } else {
            self.cpu_percent? / 100.0
        };
        Some(load.clamp(0.0, 1.0))
    }
}

/// Pushed to the scheduler each interval: the figures of every node in the view and the peers that left it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClusterFigures {
    /// The node that sent it (its own pressure pauses it through the gate, not the plan).
    pub local: String,
    /// This node and every peer in the view.
    pub nodes: Vec<NodeFigures>,
    /// Peers not heard from for `stale_after`: out of the plan until they answer.
    pub left: Vec<String>,
}

impl Message for ClusterFigures {
    type Reply = ();
    const NAME: &'static str = "ClusterFigures";
}

impl ClusterFigures {
    fn of(&self, node: &str) -> Option<&NodeFigures> {
        self.nodes.iter().find(|f| f.node == node)
    }

    /// The plan's load (0-1) of `node`, when figures for it are known.
    pub fn load_of(&self, node: &str) -> Option<f64> {
        self.of(node).and_then(NodeFigures::load)
    }

    /// Measured GPU memory (GB) of `node`, when known.
    pub fn gpu_memory_gb_of(&self, node: &str) -> Option<f64> {
        self.of(node)
            .map(|f| f.gpu_memory_gb)
            .filter(|gb| *gb > 0.0)
    }

    /// The spawn-rate multiplier `node` reports, when it reported figures.
    pub fn rate_multiplier_of(&self, node: &str) -> Option<f64> {
        self.of(node).map(|f| f.rate_multiplier)
    }

    /// The GPU `node` reports (first GPU's name), when it reported GPUs.
    pub fn gpu_name_of(&self, node: &str) -> Option<&str> {
        self.of(node).and_then(|f| f.gpu_name.as_deref())
    }

    /// The plan's spawn-rate multiplier for the nodes it plans: the rate they negotiate together over the rate
    /// asked of them, i.e. the mean of their multipliers (nodes without figures count 1). `None` when none of
    /// them has figures. Below 1 the plan thins its games per config (`spawn_rate_multiplier`).
    pub fn spawn_rate_multiplier<'a>(
        &self,
        planned: impl IntoIterator<Item = &'a str>,
    ) -> Option<f64> {
        let mut known = false;
        let (sum, count) = planned.into_iter().fold((0.0, 0u32), |(sum, count), node| {
            let m = self.of(node).map(|f| f.rate_multiplier);
            known |= m.is_some();
            (sum + m.unwrap_or(1.0), count + 1)
        });
        (known && count > 0).then(|| sum / f64::from(count))
    }

    /// True when `node` must get no games: it left the view, or it is a peer whose pressure gate is closed.
    pub fn leaves_plan(&self, node: &str) -> bool {
        self.left.iter().any(|n| n == node)
            || (node != self.local && self.of(node).is_some_and(|f| f.paused))
    }
}

/// A peer's line in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    pub node: String,
    /// In the view (and the plan).
    pub in_view: bool,
    /// Seconds since it last answered.
    pub heard_ago_s: Option<f64>,
    /// Why the last poll failed.
    pub error: Option<String>,
    /// Its figures, as last heard.
    pub figures: Option<NodeFigures>,
}

/// A peer entering or leaving the view, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewChange {
    /// Not heard from for `after`: out of the view and the plan.
    Left {
        node: String,
        after: Duration,
        error: Option<String>,
    },
    /// Answered again (or for the first time after having left).
    Rejoined { node: String },
}

#[derive(Debug, Clone)]
struct Peer {
    figures: Option<NodeFigures>,
    heard_at: Option<Instant>,
    error: Option<String>,
    in_view: bool,
}

/// The books of the cluster view (see the module doc).
#[derive(Debug, Clone)]
pub struct ClusterView {
    stale_after: Duration,
    since: Instant,
    peers: BTreeMap<String, Peer>,
}

impl ClusterView {
    /// A view of `peers` (the nodes that can be polled), starting at `now`.
    pub fn new(
        peers: impl IntoIterator<Item = String>,
        stale_after: Duration,
        now: Instant,
    ) -> ClusterView {
        ClusterView {
            stale_after,
            since: now,
            peers: peers
                .into_iter()
                .map(|name| {
                    (
                        name,
                        Peer {
                            figures: None,
                            heard_at: None,
                            error: None,
                            in_view: true,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The peers to poll.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.peers.keys().map(String::as_str)
    }

    fn fresh(&self, peer: &Peer, now: Instant) -> bool {
        now.saturating_duration_since(peer.heard_at.unwrap_or(self.since)) < self.stale_after
    }

    /// `node` answered with `figures` (filed under the cluster file's name for it, whatever it calls itself).
    pub fn heard(&mut self, node: &str, figures: NodeFigures, now: Instant) -> Vec<ViewChange> {
        if let Some(peer) = self.peers.get_mut(node) {
            peer.figures = Some(NodeFigures {
                node: node.to_string(),
                ..figures
            });
            peer.heard_at = Some(now);
            peer.error = None;
        }
        self.tick(now)
    }

    /// Polling `node` failed.
    pub fn failed(&mut self, node: &str, error: String, now: Instant) -> Vec<ViewChange> {
        if let Some(peer) = self.peers.get_mut(node) {
            peer.error = Some(error);
        }
        self.tick(now)
    }

    /// Moves peers in and out of the view as time passes; returns the changes.
    pub fn tick(&mut self, now: Instant) -> Vec<ViewChange> {
        let mut changes = Vec::new();
        let fresh: Vec<(String, bool)> = self
            .peers
            .iter()
            .map(|(name, peer)| (name.clone(), self.fresh(peer, now)))
            .collect();
        for (name, fresh) in fresh {
            let Some(peer) = self.peers.get_mut(&name) else {
                continue;
            };
            if peer.in_view && !fresh {
                peer.in_view = false;
                changes.push(ViewChange::Left {
                    node: name,
                    after: self.stale_after,
                    error: peer.error.clone(),
                });
            } else if !peer.in_view && fresh {
                peer.in_view = true;
                changes.push(ViewChange::Rejoined { node: name });
            }
        }
        changes
    }

    /// What the scheduler is told: `local` plus every peer in the view with figures, and the peers that left.
    pub fn figures(&self, local: NodeFigures, now: Instant) -> ClusterFigures {
        let mut out = ClusterFigures {
            local: local.node.clone(),
            nodes: vec![local],
            left: Vec::new(),
        };
        for (name, peer) in &self.peers {
            if self.fresh(peer, now) {
                out.nodes.extend(peer.figures.clone());
            } else {
                out.left.push(name.clone());
            }
        }
        out
    }

    /// Job targets of the peers in the view, as their own optimizers set them.
    pub fn peer_targets(&self, now: Instant) -> Vec<(String, u32)> {
        self.peers
            .iter()
            .filter(|(_, peer)| self.fresh(peer, now))
            .filter_map(|(name, peer)| {
                let f = peer.figures.as_ref()?;
                Some((name.clone(), f.target_jobs.clamp(1, f.hardware_cap.max(1))))
            })
            .collect()
    }

    /// Every peer, for `/status`.
    pub fn report(&self, now: Instant) -> Vec<PeerReport> {
        self.peers
            .iter()
            .map(|(name, peer)| PeerReport {
                node: name.clone(),
                in_view: self.fresh(peer, now),
                heard_ago_s: peer
                    .heard_at
                    .map(|t| now.saturating_duration_since(t).as_secs_f64()),
                error: peer.error.clone(),
                figures: peer.figures.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn figures(node: &str, gpu_util: Option<f64>) -> NodeFigures {
        NodeFigures {
            node: node.to_string(),
            cpu_percent: Some(40.0),
            cpu_cores: 64,
            load_1m: 3.0,
            memory_percent: Some(30.0),
            memory_total_gb: 512.0,
            disk_percent: Some(50.0),
            gpu_name: gpu_util.map(|_| "NVIDIA H100 80GB HBM3".to_string()),
            gpu_count: u32::from(gpu_util.is_some()),
            gpu_utilization_percent: gpu_util,
            gpu_memory_percent: gpu_util.map(|_| 40.0),
            gpu_memory_gb: if gpu_util.is_some() { 79.6 } else { 0.0 },
            running_jobs: Some(6),
            target_jobs: 8,
            hardware_cap: 32,
            paused: false,
            rate_multiplier: 1.0,
        }
    }

    #[test]
    fn a_peer_silent_for_300_s_leaves_and_rejoins_when_it_answers() {
        let t0 = Instant::now();
        let stale = Duration::from_secs(300);
        let mut view = ClusterView::new(["a".to_string(), "b".to_string()], stale, t0);
        let t1 = t0 + Duration::from_secs(1);
        assert!(view.heard("a", figures("a", Some(70.0)), t1).is_empty());
        // b never answers: counted from the view's start.
        let changes = view.failed(
            "b",
            "connection refused".into(),
            t0 + Duration::from_secs(299),
        );
        assert!(changes.is_empty());
        let changes = view.failed("b", "connection refused".into(), t0 + stale);
        assert_eq!(
            changes,
            vec![ViewChange::Left {
                node: "b".into(),
                after: stale,
                error: Some("connection refused".into())
            }]
        );
        let at = t0 + stale;
        let sent = view.figures(figures("me", None), at);
        assert_eq!(
            sent.nodes
                .iter()
                .map(|f| f.node.as_str())
                .collect::<Vec<_>>(),
            ["me", "a"]
        );
        assert_eq!(sent.left, ["b"]);
        assert!(sent.leaves_plan("b") && !sent.leaves_plan("a"));
        // a goes silent too: heard at t0 + 1 s, gone at t0 + 301 s.
        assert_eq!(view.tick(t0 + stale).len(), 0, "b already left");
        let at = t0 + Duration::from_secs(301);
        let _ = view.tick(at);
        assert_eq!(view.figures(figures("me", None), at).left, ["a", "b"]);
        assert!(view.peer_targets(at).is_empty());
        // b answers: back at once.
        let changes = view.heard("b", figures("b", None), at);
        assert_eq!(changes, vec![ViewChange::Rejoined { node: "b".into() }]);
        assert_eq!(view.peer_targets(at), vec![("b".to_string(), 8)]);
        let report = view.report(at);
        assert!(!report[0].in_view && report[1].in_view);
        assert_eq!(report[1].heard_ago_s, Some(0.0));
    }

    #[test]
    fn load_is_gpu_then_jobs_then_cpu() {
        let gpu = figures("g", Some(85.0));
        assert_eq!(gpu.load(), Some(0.85));
        let cpu = figures("c", None);
        assert_eq!(cpu.load(), Some(0.75));
        let bare = NodeFigures {
            running_jobs: None,
            ..figures("c", None)
        };
        assert_eq!(bare.load(), Some(0.4));
        let cluster = ClusterFigures {
            local: "g".into(),
            nodes: vec![
                gpu,
                NodeFigures {
                    paused: true,
                    ..cpu
                },
            ],
            left: vec![],
        };
        assert_eq!(cluster.load_of("g"), Some(0.85));
        assert_eq!(cluster.gpu_memory_gb_of("g"), Some(79.6));
        assert_eq!(cluster.gpu_memory_gb_of("c"), None);
        assert!(cluster.leaves_plan("c"), "a paused peer gets no games");
        let local_paused = ClusterFigures {
            local: "c".into(),
            ..cluster.clone()
        };
        assert!(
            !local_paused.leaves_plan("c"),
            "this node's own pause is the gate's"
        );
        assert_eq!(cluster.load_of("unknown"), None);
    }

    #[test]
    fn the_plan_multiplier_is_the_mean_rate_of_the_planned_nodes() {
        let hot = NodeFigures {
            rate_multiplier: 0.3,
            ..figures("hot", Some(70.0))
        };
        let idle = NodeFigures {
            rate_multiplier: 1.5,
            ..figures("idle", None)
        };
        let cluster = ClusterFigures {
            local: "hot".into(),
            nodes: vec![hot, idle],
            left: vec![],
        };
        let close = |got: Option<f64>, want: f64| {
            assert!((got.unwrap() - want).abs() < 1e-9, "{got:?} vs {want}")
        };
        close(cluster.spawn_rate_multiplier(["hot"]), 0.3);
        close(cluster.spawn_rate_multiplier(["hot", "idle"]), 0.9);
        // A node without figures (SSH-only) is asked the full rate.
        close(cluster.spawn_rate_multiplier(["hot", "ssh-only"]), 0.65);
        assert_eq!(cluster.spawn_rate_multiplier(["ssh-only"]), None);
        assert_eq!(cluster.spawn_rate_multiplier([]), None);
        assert_eq!(cluster.gpu_name_of("hot"), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(cluster.gpu_name_of("idle"), None);
        assert_eq!(cluster.rate_multiplier_of("hot"), Some(0.3));
        assert_eq!(cluster.rate_multiplier_of("ssh-only"), None);
        // A peer on an older build reports no multiplier: 1.
        let mut json = serde_json::to_value(figures("old", None)).unwrap();
        json.as_object_mut().unwrap().remove("rate_multiplier");
        let old: NodeFigures = serde_json::from_value(json).unwrap();
        assert_eq!(old.rate_multiplier, 1.0);
    }
}
