//! From a plan to the jobs that play it: which jobs to make now, how much of each node's share is played, and when
//! the plan is done so the scheduler replans.
//!
//! Pure: no actix, no I/O, no clock. A plan's allocation becomes [`Share`]s, one per (config, node), each with the
//! search budget of its config. [`PlanProgress::next_jobs`] fills every node's free job slots (its target
//! concurrency minus its running and queued jobs) with jobs of at most `max_games_per_job` games, taking the node's
//! shares in plan order (score descending, the starvation floor's and the 3p/4p minimums' games included) until each
//! share's games are all in jobs. A job that wrote its games counts as played; one that was given up or cancelled
//! gives its games back to its share, so a later job plays them. The plan is played when every share is.
//!
//! [`replan_due`] says when the plan is replaced: none yet, every share played, or (on the timer) a node with free
//! slots has nothing left in this plan while the plan is at least one interval old.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::board::ConfigKey;
use super::plan::PlanOutput;

/// The games of one config on one node in one plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Share {
    /// The config.
    pub config: ConfigKey,
    /// The node.
    pub node: String,
    /// Search budget of the config's jobs (from the plan's priorities).
    pub budget: u32,
    /// Games the plan gave this (config, node).
    pub planned: u64,
    /// Games in jobs made so far (queued, running or played).
    pub assigned: u64,
    /// Games written by this share's finished jobs.
    pub played: u64,
}

impl Share {
    /// Games not yet in a job.
    pub fn unassigned(&self) -> u64 {
        self.planned.saturating_sub(self.assigned)
    }
}

/// How many more jobs a node may take now: its target minus its running and queued jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSlots {
    /// The node.
    pub node: String,
    /// Free job slots.
    pub free: u32,
}

/// A job to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    /// The plan it plays (its sequence number).
    pub plan: u64,
    /// The config.
    pub config: ConfigKey,
    /// The node.
    pub node: String,
    /// Games, 1..=`max_games_per_job`.
    pub games: u32,
    /// Search budget.
    pub budget: u32,
}

/// How a job of the plan ended, as the plan counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// It wrote this many games.
    Played(u64),
    /// It was given up or cancelled: its games go back to its share.
    Returned,
}

/// Planned, assigned and played games of one node in one plan (for `/jobs` and `/status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeProgress {
    /// Games the plan gave the node.
    pub planned: u64,
    /// Games in jobs made so far.
    pub assigned: u64,
    /// Games played.
    pub played: u64,
}

/// One plan's shares and how far they are played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProgress {
    /// Sequence number of the plan (1 for the first).
    pub seq: u64,
    /// Shares in plan order.
    pub shares: Vec<Share>,
}

impl PlanProgress {
    /// The shares of `output`: every non-zero (config, node) entry of its allocation, in allocation order, with the
    /// budget of the config's priority row. A config the allocation has and the priorities lack (none: the
    /// allocation is built from the priorities) is skipped rather than given an invented budget.
    pub fn from_plan(seq: u64, output: &PlanOutput) -> PlanProgress {
        let budgets: BTreeMap<ConfigKey, u32> = output
            .priorities
            .iter()
            .map(|p| (p.config, p.budget))
            .collect();
        let shares = output
            .allocation
            .0
            .iter()
            .filter_map(|(config, nodes)| budgets.get(config).map(|b| (config, nodes, *b)))
            .flat_map(|(config, nodes, budget)| {
                nodes
                    .iter()
                    .filter(|(_, games)| *games > 0)
                    .map(move |(node, games)| Share {
                        config: *config,
                        node: node.clone(),
                        budget,
                        planned: *games,
                        assigned: 0,
                        played: 0,
                    })
            })
            .collect();
        PlanProgress { seq, shares }
    }

    /// Jobs that fill the free slots of `slots`, each of at most `max_games_per_job` games, marking their games
    /// assigned. Nodes are served in `slots` order; a node's shares in plan order.
    pub fn next_jobs(&mut self, slots: &[NodeSlots], max_games_per_job: u32) -> Vec<JobRequest> {
        let most = u64::from(max_games_per_job.max(1));
        let mut jobs = Vec::new();
        for slot in slots {
            let mut free = slot.free;
            for share in self.shares.iter_mut().filter(|s| s.node == slot.node) {
                while free > 0 && share.unassigned() > 0 {
                    let games = share.unassigned().min(most);
                    share.assigned += games;
                    free -= 1;
                    jobs.push(JobRequest {
                        plan: self.seq,
                        config: share.config,
                        node: share.node.clone(),
                        games: games as u32,
                        budget: share.budget,
                    });
                }
            }
        }
        jobs
    }

    /// Counts the end of a job of this plan that asked for `asked` games of `config` on `node`.
    pub fn job_ended(&mut self, config: ConfigKey, node: &str, asked: u64, end: JobEnd) {
        let Some(share) = self
            .shares
            .iter_mut()
            .find(|s| s.config == config && s.node == node)
        else {
            return;
        };
        match end {
            JobEnd::Played(written) => share.played += written,
            JobEnd::Returned => share.assigned = share.assigned.saturating_sub(asked),
        }
    }

    /// Every share's games played (true for an empty plan).
    pub fn is_played(&self) -> bool {
        self.shares.iter().all(|s| s.played >= s.planned)
    }

    /// True when `node` has no games left to put in jobs (all of its shares assigned, or none at all).
    pub fn node_has_no_work(&self, node: &str) -> bool {
        self.shares
            .iter()
            .filter(|s| s.node == node)
            .all(|s| s.unassigned() == 0)
    }

    /// Planned, assigned and played games per node.
    pub fn by_node(&self) -> BTreeMap<String, NodeProgress> {
        let mut out: BTreeMap<String, NodeProgress> = BTreeMap::new();
        for share in &self.shares {
            let node = out.entry(share.node.clone()).or_default();
            node.planned += share.planned;
            node.assigned += share.assigned;
            node.played += share.played;
        }
        out
    }

    /// Games the plan gave out, and games played.
    pub fn totals(&self) -> (u64, u64) {
        self.shares
            .iter()
            .fold((0, 0), |(p, d), s| (p + s.planned, d + s.played))
    }
}

/// Why the scheduler replans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplanReason {
    /// No plan yet.
    First,
    /// Every share of the plan is played.
    Played,
    /// On the timer: a node with free slots has nothing left in a plan at least one interval old.
    Idle,
    /// A node left or rejoined the plan (availability changed).
    NodesChanged,
}

impl ReplanReason {
    /// The reason's name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplanReason::First => "first",
            ReplanReason::Played => "played",
            ReplanReason::Idle => "idle",
            ReplanReason::NodesChanged => "nodes_changed",
        }
    }
}

/// What [`replan_due`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct ReplanCheck<'a> {
    /// The current plan, if any.
    pub progress: Option<&'a PlanProgress>,
    /// Age of the current plan.
    pub plan_age: Duration,
    /// `scheduler.interval`.
    pub interval: Duration,
    /// The check runs on the timer (not after a job ended).
    pub on_timer: bool,
    /// Nodes with free job slots now.
    pub nodes_with_free_slots: &'a [String],
}

/// Whether to replace the plan now, and why.
pub fn replan_due(check: &ReplanCheck<'_>) -> Option<ReplanReason> {
    let Some(progress) = check.progress else {
        return Some(ReplanReason::First);
    };
    if progress.is_played() {
        return Some(ReplanReason::Played);
    }
    let idle = check
        .nodes_with_free_slots
        .iter()
        .any(|n| progress.node_has_no_work(n));
    (check.on_timer && check.plan_age >= check.interval && idle).then_some(ReplanReason::Idle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plan::{PlanAllocation, PlanPriority};

    fn key(text: &str) -> ConfigKey {
        text.parse().unwrap()
    }

    fn output(entries: &[(&str, &[(&str, u64)])]) -> PlanOutput {
        PlanOutput {
            priorities: entries
                .iter()
                .enumerate()
                .map(|(i, (c, _))| PlanPriority {
                    config: key(c),
                    score: 10.0 - i as f64,
                    starvation: "",
                    budget: 100 + i as u32,
                    target_games: 0,
                })
                .collect(),
            allocation: PlanAllocation(
                entries
                    .iter()
                    .map(|(c, nodes)| {
                        (
                            key(c),
                            nodes.iter().map(|(n, g)| (n.to_string(), *g)).collect(),
                        )
                    })
                    .collect(),
            ),
            total_games: entries
                .iter()
                .flat_map(|(_, n)| n.iter().map(|(_, g)| g))
                .sum(),
            estimated_cost_usd: 0.0,
        }
    }

    fn slots(pairs: &[(&str, u32)]) -> Vec<NodeSlots> {
        pairs
            .iter()
            .map(|(n, free)| NodeSlots {
                node: n.to_string(),
                free: *free,
            })
            .collect()
    }

    fn games(jobs: &[JobRequest]) -> Vec<(String, &str, u32)> {
        jobs.iter()
            .map(|j| (j.config.to_string(), j.node.as_str(), j.games))
            .collect()
    }

    #[test]
    fn the_issue_case_500_games_two_slots_50_per_job_is_played_in_ten_jobs() {
        let mut progress = PlanProgress::from_plan(1, &output(&[("hex8_2p", &[("local", 500)])]));
        let mut made = 0;
        let mut rounds = 0;
        while !progress.is_played() {
            rounds += 1;
            assert!(rounds <= 10, "bounded");
            let jobs = progress.next_jobs(&slots(&[("local", 2)]), 50);
            assert_eq!(jobs.len(), 2, "the node is kept at its target of 2");
            for job in &jobs {
                assert_eq!(job.games, 50);
                assert_eq!(job.budget, 100);
                progress.job_ended(job.config, &job.node, 50, JobEnd::Played(50));
            }
            made += jobs.len();
        }
        assert_eq!(made, 10);
        assert_eq!(
            progress.by_node()["local"],
            NodeProgress {
                planned: 500,
                assigned: 500,
                played: 500
            }
        );
    }

    #[test]
    fn shares_are_taken_in_plan_order_and_the_last_job_is_the_remainder() {
        let plan = output(&[
            ("square19_4p", &[("a", 120)]),
            ("hex8_3p", &[("a", 60), ("b", 30)]),
            ("hex8_2p", &[("b", 0)]),
        ]);
        let mut progress = PlanProgress::from_plan(7, &plan);
        assert_eq!(progress.shares.len(), 3, "zero entries make no share");
        let jobs = progress.next_jobs(&slots(&[("a", 4), ("b", 4)]), 50);
        assert_eq!(
            games(&jobs),
            [
                ("square19_4p".to_string(), "a", 50),
                ("square19_4p".to_string(), "a", 50),
                ("square19_4p".to_string(), "a", 20),
                ("hex8_3p".to_string(), "a", 50),
                ("hex8_3p".to_string(), "b", 30),
            ]
        );
        assert!(jobs.iter().all(|j| j.plan == 7));
        assert_eq!(jobs[3].budget, 101, "each config's own budget");
        // Slot 4 of a and slots 2-4 of b stay free: nothing left but hex8_3p's last 10 on a.
        let more = progress.next_jobs(&slots(&[("a", 1), ("b", 3)]), 50);
        assert_eq!(games(&more), [("hex8_3p".to_string(), "a", 10)]);
        assert!(progress.node_has_no_work("a") && progress.node_has_no_work("b"));
        assert!(progress.next_jobs(&slots(&[("a", 9)]), 50).is_empty());
    }

    #[test]
    fn no_free_slot_makes_no_job_and_unknown_nodes_get_nothing() {
        let mut progress = PlanProgress::from_plan(1, &output(&[("hex8_2p", &[("a", 100)])]));
        assert!(progress.next_jobs(&slots(&[("a", 0)]), 50).is_empty());
        assert!(progress.next_jobs(&slots(&[("z", 5)]), 50).is_empty());
        assert_eq!(progress.by_node()["a"].assigned, 0);
        assert!(progress.node_has_no_work("z"));
        assert!(!progress.node_has_no_work("a"));
    }

    #[test]
    fn returned_games_are_made_again_and_played_games_count() {
        let mut progress = PlanProgress::from_plan(1, &output(&[("hex8_2p", &[("a", 80)])]));
        let jobs = progress.next_jobs(&slots(&[("a", 2)]), 50);
        assert_eq!(games(&jobs).len(), 2);
        progress.job_ended(key("hex8_2p"), "a", 50, JobEnd::Returned);
        progress.job_ended(key("hex8_2p"), "a", 30, JobEnd::Played(30));
        assert_eq!(
            progress.by_node()["a"],
            NodeProgress {
                planned: 80,
                assigned: 30,
                played: 30
            }
        );
        assert!(!progress.is_played());
        let again = progress.next_jobs(&slots(&[("a", 2)]), 50);
        assert_eq!(games(&again), [("hex8_2p".to_string(), "a", 50)]);
        progress.job_ended(key("hex8_2p"), "a", 50, JobEnd::Played(50));
        assert!(progress.is_played());
        assert_eq!(progress.totals(), (80, 80));
        // Ends of jobs of configs or nodes the plan does not have change nothing.
        progress.job_ended(key("hex8_4p"), "a", 50, JobEnd::Played(50));
        progress.job_ended(key("hex8_2p"), "b", 50, JobEnd::Returned);
        assert_eq!(progress.totals(), (80, 80));
    }

    #[test]
    fn floors_and_minimums_reach_the_jobs_every_planned_game_is_in_a_job() {
        // A plan as the allocator makes it for an empty cluster (starvation floors, 3p/4p minimums); per_config so
        // the 2p configs do not use up the nodes' caps.
        let state = serde_json::json!({
            "node_cap_scope": "per_config",
            "configs": crate::scheduler::board::ConfigKey::all()
                .iter().map(|k| serde_json::json!({"config": k.to_string()})).collect::<Vec<_>>(),
            "nodes": [{"name": "gh200", "gpu": "GH200"}, {"name": "h100", "gpu": "H100"}]
        });
        let plan = crate::scheduler::plan::plan_from_json(
            &state.to_string(),
            &crate::scheduler::config::SchedulerPolicyConfig::default(),
        )
        .unwrap();
        assert!(plan.total_games > 0);
        let multiplayer = plan
            .allocation
            .0
            .iter()
            .filter(|(c, _)| c.players > 2)
            .count();
        assert!(multiplayer > 0, "{plan:?}");
        let mut progress = PlanProgress::from_plan(1, &plan);
        let jobs = progress.next_jobs(&slots(&[("gh200", 1000), ("h100", 1000)]), 50);
        let in_jobs: u64 = jobs.iter().map(|j| u64::from(j.games)).sum();
        assert_eq!(in_jobs, plan.total_games);
        for (config, nodes) in &plan.allocation.0 {
            for (node, planned) in nodes {
                let made: u64 = jobs
                    .iter()
                    .filter(|j| j.config == *config && &j.node == node)
                    .map(|j| u64::from(j.games))
                    .sum();
                assert_eq!(made, *planned, "{config} on {node}");
            }
        }
        assert!(jobs.iter().all(|j| j.games <= 50));
    }

    #[test]
    fn replan_rules() {
        let interval = Duration::from_secs(30);
        let mut progress =
            PlanProgress::from_plan(1, &output(&[("hex8_2p", &[("a", 100), ("b", 100)])]));
        let check = |progress: Option<&PlanProgress>, age: u64, on_timer: bool, free: &[&str]| {
            let free: Vec<String> = free.iter().map(|s| s.to_string()).collect();
            replan_due(&ReplanCheck {
                progress,
                plan_age: Duration::from_secs(age),
                interval,
                on_timer,
                nodes_with_free_slots: &free,
            })
        };
        assert_eq!(check(None, 0, false, &[]), Some(ReplanReason::First));
        assert_eq!(
            check(Some(&progress), 999, true, &["a", "b"]),
            None,
            "work left on both"
        );
        progress.next_jobs(&slots(&[("a", 2)]), 50);
        // a has nothing left and a free slot: replan on the timer once the plan is an interval old.
        assert_eq!(check(Some(&progress), 10, true, &["a"]), None);
        assert_eq!(check(Some(&progress), 30, false, &["a"]), None);
        assert_eq!(
            check(Some(&progress), 30, true, &["a"]),
            Some(ReplanReason::Idle)
        );
        assert_eq!(
            check(Some(&progress), 30, true, &["b"]),
            None,
            "b still has work"
        );
        for node in ["a", "b"] {
            progress.job_ended(key("hex8_2p"), node, 100, JobEnd::Played(100));
        }
        assert_eq!(
            check(Some(&progress), 0, false, &[]),
            Some(ReplanReason::Played)
        );
        let empty = PlanProgress::from_plan(2, &output(&[]));
        assert_eq!(
            check(Some(&empty), 0, false, &[]),
            Some(ReplanReason::Played)
        );
    }
}
