//! Allocation: how many games of each config each node plays in one plan.
//!
//! Configs are taken in score order; each gets `gpc x max(0.1, 0.5 + score)` games (times the
//! cluster health when below 1), split over the healthy nodes with spare capacity in order of
//! cost efficiency, capacity and data lag, proportionally to capacity and bounded by each GPU's
//! games cap. Ephemeral nodes get more short (small-board) work and less long work. Then the
//! starvation floor tops up configs with few games, and 3p/4p configs take games from 2p donors
//! up to their minimums (`shared/domain/scheduler.md`, "Allocation").
//!
//! Two fixes over the original, both always on in [`NodeCapScope::PerPlan`] (the default):
//! a node's games cap is shared by all configs of the plan (the ephemeral factor is applied before
//! the cap, and games moved to 3p/4p configs stay on the node they came from, so totals and caps
//! hold); and in both scopes large boards only go to nodes with unknown VRAM or at least
//! `large_board_min_vram_gb`. [`NodeCapScope::PerConfig`] keeps the original's quirks: each config
//! sees the full cap, the ephemeral x1.5 comes after the cap, and a 3p/4p top-up adds the full
//! amount to the recipient's first node while the donors lose only the truncated proportional
//! shares (which can raise the total).

use std::cmp::Ordering;
use std::collections::HashMap;

use super::board::ConfigKey;
use super::config::{AllocationPolicy, GpuProfile, NodeCapScope};

/// A node as the allocator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// Node name (unique in one plan).
    pub name: String,
    /// Resolved GPU numbers (weight, games cap, price).
    pub gpu: GpuProfile,
    /// GPU memory in GB; `None` or 0 when unknown.
    pub gpu_memory_gb: Option<f64>,
    /// GPU load 0-1.
    pub load: f64,
    /// Spot/marketplace node that may vanish.
    pub ephemeral: bool,
    /// False when the node was reported unhealthy or dead.
    pub healthy: bool,
    /// Seconds the node's data is behind.
    pub data_lag_seconds: f64,
}

impl NodeState {
    /// `max(0, 1 - load) x GPU weight`.
    pub fn available_capacity(&self) -> f64 {
        (1.0 - self.load).max(0.0) * self.gpu.weight
    }

    /// Capacity per dollar-hour (infinite when the node is free).
    pub fn cost_efficiency(&self) -> f64 {
        if self.gpu.cost_per_hour <= 0.0 {
            f64::INFINITY
        } else {
            self.available_capacity() / self.gpu.cost_per_hour
        }
    }

    /// True when large boards fit: VRAM unknown (or 0) or at least `min_vram_gb`.
    pub fn fits_large_boards(&self, min_vram_gb: f64) -> bool {
        match self.gpu_memory_gb {
            None => true,
            Some(gb) => gb <= 0.0 || gb >= min_vram_gb,
        }
    }
}

/// True when the node name carries one of the ephemeral markers (`vast-`, `runpod-`, ...).
pub fn is_ephemeral_name(name: &str, markers: &[String]) -> bool {
    let lower = name.to_lowercase();
    markers.iter().any(|m| lower.contains(&m.to_lowercase()))
}

/// A config with its priority score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedConfig {
    /// The config.
    pub config: ConfigKey,
    /// Its priority score.
    pub score: f64,
}

/// A config the starvation floor watches, with its game count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackedConfig {
    /// The config.
    pub config: ConfigKey,
    /// Games it has.
    pub game_count: u64,
}

/// Everything one allocation needs.
#[derive(Debug, Clone, Copy)]
pub struct AllocationRequest<'a> {
    /// Configs to allocate, with scores (any order; sorted by score, ties keep this order).
    pub ranked: &'a [RankedConfig],
    /// Configs the starvation floor checks, walked in this order.
    pub tracked: &'a [TrackedConfig],
    /// The nodes.
    pub nodes: &'a [NodeState],
    /// Base games per config.
    pub games_per_config: u64,
    /// Cluster health 0-1 (share of healthy nodes, at least 0.3 when reported by events).
    pub cluster_health: f64,
    /// Node cap scope.
    pub scope: NodeCapScope,
    /// Memory pressure: allocate nothing.
    pub memory_constrained: bool,
    /// Backpressure asked to pause: allocate nothing.
    pub backpressure_paused: bool,
    /// Spawn rate multiplier; below 1 it scales games per config down.
    pub spawn_rate_multiplier: f64,
}

/// Games of one config on one node (the node is an index into the request's nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeGames {
    /// Index of the node in [`AllocationRequest::nodes`].
    pub node: usize,
    /// Games to play.
    pub games: u64,
}

/// The games of one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAllocation {
    /// The config.
    pub config: ConfigKey,
    /// Nodes in assignment order (cost-efficiency order, top-ups appended).
    pub nodes: Vec<NodeGames>,
}

impl ConfigAllocation {
    /// Games over all nodes.
    pub fn total(&self) -> u64 {
        self.nodes.iter().map(|n| n.games).sum()
    }
}

/// One plan's allocation. Configs appear in allocation order: score descending, then configs
/// added by the starvation floor; zero entries are dropped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Allocation {
    /// Per config.
    pub configs: Vec<ConfigAllocation>,
    /// Games per config after the spawn-rate adjustment.
    pub games_per_config: u64,
}

impl Allocation {
    /// Games over all configs and nodes.
    pub fn total_games(&self) -> u64 {
        self.configs.iter().map(ConfigAllocation::total).sum()
    }

    /// Games per node (indexed like the request's nodes).
    pub fn node_totals(&self, node_count: usize) -> Vec<u64> {
        let mut totals = vec![0; node_count];
        for entry in self.configs.iter().flat_map(|c| &c.nodes) {
            if let Some(total) = totals.get_mut(entry.node) {
                *total += entry.games;
            }
        }
        totals
    }

    /// Dollars for the batch: sum over nodes of (games / GPU games cap) x $/h.
    pub fn estimated_cost_usd(&self, nodes: &[NodeState]) -> f64 {
        self.node_totals(nodes.len())
            .iter()
            .zip(nodes)
            .filter(|(games, node)| **games > 0 && node.gpu.games_cap > 0)
            .map(|(games, node)| *games as f64 / node.gpu.games_cap as f64 * node.gpu.cost_per_hour)
            .sum()
    }

    /// Games of `config`, if allocated.
    pub fn config(&self, config: ConfigKey) -> Option<&ConfigAllocation> {
        self.configs.iter().find(|c| c.config == config)
    }

    /// Per config (allocation order), the games per node by node name (`nodes` as in the request).
    pub fn by_node_name(&self, nodes: &[NodeState]) -> Vec<(ConfigKey, Vec<(String, u64)>)> {
        self.configs
            .iter()
            .map(|c| {
                let per_node = c
                    .nodes
                    .iter()
                    .map(|n| (nodes[n.node].name.clone(), n.games))
                    .collect();
                (c.config, per_node)
            })
            .collect()
    }
}

/// Node order and running cap use shared by every step of one plan.
struct Allocator<'a> {
    nodes: &'a [NodeState],
    policy: &'a AllocationPolicy,
    scope: NodeCapScope,
    health: f64,
    /// Eligible nodes in allocation order, for small boards and for large boards.
    small_order: Vec<usize>,
    large_order: Vec<usize>,
    small_capacity: f64,
    large_capacity: f64,
    /// Games already placed on each node in this plan.
    used: Vec<u64>,
}

impl<'a> Allocator<'a> {
    fn new(req: &AllocationRequest<'a>, policy: &'a AllocationPolicy) -> Self {
        let nodes = req.nodes;
        let mut order: Vec<usize> = (0..nodes.len())
            .filter(|&i| {
                nodes[i].healthy && nodes[i].available_capacity() > policy.min_node_capacity
            })
            .collect();
        // Stable: nodes equal on all three keys keep input order.
        order.sort_by(|&a, &b| {
            let (na, nb) = (&nodes[a], &nodes[b]);
            nb.cost_efficiency()
                .total_cmp(&na.cost_efficiency())
                .then_with(|| nb.available_capacity().total_cmp(&na.available_capacity()))
                .then_with(|| na.data_lag_seconds.total_cmp(&nb.data_lag_seconds))
        });
        let large_order: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| nodes[i].fits_large_boards(policy.large_board_min_vram_gb))
            .collect();
        let capacity = |ids: &[usize]| ids.iter().map(|&i| nodes[i].available_capacity()).sum();
        Allocator {
            nodes,
            policy,
            scope: req.scope,
            health: req.cluster_health,
            small_capacity: capacity(&order),
            large_capacity: capacity(&large_order),
            small_order: order,
            large_order,
            used: vec![0; nodes.len()],
        }
    }

    /// Splits `games` of `config` over the nodes.
    fn allocate_config(&mut self, config: ConfigKey, games: u64) -> Vec<NodeGames> {
        let min_alloc = self.policy.min_games_per_allocation;
        let games = if self.health < 1.0 {
            min_alloc.max((games as f64 * self.health.max(0.0)).trunc() as u64)
        } else {
            games
        };
        let large = config.board.is_large();
        let (order, total_capacity) = if large {
            (&self.large_order, self.large_capacity)
        } else {
            (&self.small_order, self.small_capacity)
        };
        if total_capacity <= 0.0 {
            return Vec::new();
        }
        let ephemeral_factor = if large {
            self.policy.ephemeral_large_board_factor
        } else {
            self.policy.ephemeral_small_board_factor
        };
        let mut out = Vec::new();
        let mut remaining = games;
        for &i in order {
            if remaining < min_alloc.max(1) {
                break;
            }
            let node = &self.nodes[i];
            let proportion = node.available_capacity() / total_capacity;
            let mut share = min_alloc.max((games as f64 * proportion).trunc() as u64);
            let factor = if node.ephemeral {
                ephemeral_factor
            } else {
                1.0
            };
            match self.scope {
                NodeCapScope::PerConfig => {
                    share = share.min(node.gpu.games_cap);
                    share = (share as f64 * factor).trunc() as u64;
                }
                NodeCapScope::PerPlan => {
                    share = (share as f64 * factor).trunc() as u64;
                    share = share.min(node.gpu.games_cap.saturating_sub(self.used[i]));
                }
            }
            share = share.min(remaining);
            if share >= min_alloc {
                out.push(NodeGames {
                    node: i,
                    games: share,
                });
                remaining -= share;
                self.used[i] += share;
            }
        }
        out
    }
}

fn merge(target: &mut Vec<NodeGames>, extra: &[NodeGames]) {
    let mut at: HashMap<usize, usize> = target
        .iter()
        .enumerate()
        .map(|(p, n)| (n.node, p))
        .collect();
    for e in extra {
        match at.get(&e.node) {
            Some(&p) => target[p].games += e.games,
            None => {
                at.insert(e.node, target.len());
                target.push(*e);
            }
        }
    }
}

/// Ranks configs by score, descending; equal scores keep input order.
pub fn rank_by_score(ranked: &[RankedConfig]) -> Vec<RankedConfig> {
    let mut sorted = ranked.to_vec();
    sorted.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal));
    sorted
}

/// Multiple of games per config the starvation floor guarantees for `game_count` games.
pub fn starvation_floor_multiple(game_count: u64, policy: &AllocationPolicy) -> Option<f64> {
    policy
        .starvation_floor
        .iter()
        .find(|tier| game_count < tier.below_games)
        .map(|tier| tier.multiple)
}

/// The full allocation of one plan.
pub fn allocate(req: &AllocationRequest<'_>, policy: &AllocationPolicy) -> Allocation {
    let min_alloc = policy.min_games_per_allocation;
    let mut gpc = req.games_per_config;
    if req.spawn_rate_multiplier < 1.0 {
        gpc = min_alloc.max((gpc as f64 * req.spawn_rate_multiplier.max(0.0)).trunc() as u64);
    }
    let mut allocation = Allocation {
        configs: Vec::new(),
        games_per_config: gpc,
    };
    if req.memory_constrained || req.backpressure_paused {
        return allocation;
    }
    let mut allocator = Allocator::new(req, policy);

    for ranked in rank_by_score(req.ranked) {
        let factor = (policy.score_offset + ranked.score).max(policy.min_score_factor);
        let games = min_alloc.max((gpc as f64 * factor).trunc() as u64);
        let nodes = allocator.allocate_config(ranked.config, games);
        if !nodes.is_empty() {
            push_or_merge(&mut allocation.configs, ranked.config, &nodes);
        }
    }

    enforce_starvation_floor(&mut allocation, &mut allocator, req.tracked, gpc, policy);
    enforce_multiplayer_minimums(&mut allocation, &allocator, gpc, policy);
    for entry in &mut allocation.configs {
        entry.nodes.retain(|n| n.games > 0);
    }
    allocation.configs.retain(|c| !c.nodes.is_empty());
    allocation
}

fn push_or_merge(configs: &mut Vec<ConfigAllocation>, config: ConfigKey, nodes: &[NodeGames]) {
    match configs.iter_mut().find(|c| c.config == config) {
        Some(existing) => merge(&mut existing.nodes, nodes),
        None => configs.push(ConfigAllocation {
            config,
            nodes: nodes.to_vec(),
        }),
    }
}

fn enforce_starvation_floor(
    allocation: &mut Allocation,
    allocator: &mut Allocator<'_>,
    tracked: &[TrackedConfig],
    gpc: u64,
    policy: &AllocationPolicy,
) {
    for t in tracked {
        let Some(multiple) = starvation_floor_multiple(t.game_count, policy) else {
            continue;
        };
        let floor = (gpc as f64 * multiple).trunc() as u64;
        let current = allocation
            .config(t.config)
            .map_or(0, ConfigAllocation::total);
        if current >= floor {
            continue;
        }
        let extra = allocator.allocate_config(t.config, floor - current);
        if !extra.is_empty() {
            push_or_merge(&mut allocation.configs, t.config, &extra);
        }
    }
}

fn enforce_multiplayer_minimums(
    allocation: &mut Allocation,
    allocator: &Allocator<'_>,
    gpc: u64,
    policy: &AllocationPolicy,
) {
    let configs = &mut allocation.configs;
    let with_players = |configs: &[ConfigAllocation], players: u8| -> Vec<usize> {
        (0..configs.len())
            .filter(|&i| configs[i].config.players == players)
            .collect()
    };
    let donors = with_players(configs, 2);
    if donors.is_empty() {
        return;
    }
    let mut totals: Vec<u64> = configs.iter().map(ConfigAllocation::total).collect();
    let keep = (gpc as f64 * policy.donor_keep_multiple).trunc() as u64;
    let min_4p = (gpc as f64 * policy.min_4p_multiple).trunc() as u64;
    let min_3p = (gpc as f64 * policy.min_3p_multiple).trunc() as u64;
    let recipients = with_players(configs, 4)
        .into_iter()
        .map(|i| (i, min_4p))
        .chain(with_players(configs, 3).into_iter().map(|i| (i, min_3p)))
        .collect::<Vec<_>>();

    for (recipient, minimum) in recipients {
        let mut shortfall = minimum.saturating_sub(totals[recipient]);
        for &donor in &donors {
            if shortfall == 0 {
                break;
            }
            let donor_current = totals[donor];
            let steal = shortfall.min(donor_current.saturating_sub(keep));
            if steal == 0 || donor_current == 0 {
                continue;
            }
            let moved = match allocator.scope {
                NodeCapScope::PerConfig => {
                    for entry in &mut configs[donor].nodes {
                        let node_steal = steal * entry.games / donor_current;
                        entry.games = entry.games.saturating_sub(node_steal);
                    }
                    if let Some(first) = configs[recipient].nodes.first_mut() {
                        first.games += steal;
                    }
                    steal
                }
                NodeCapScope::PerPlan => {
                    let large = configs[recipient].config.board.is_large();
                    let min_vram = allocator.policy.large_board_min_vram_gb;
                    let mut taken = Vec::new();
                    for entry in &mut configs[donor].nodes {
                        let node = &allocator.nodes[entry.node];
                        if large && !node.fits_large_boards(min_vram) {
                            continue;
                        }
                        let node_steal = steal * entry.games / donor_current;
                        if node_steal > 0 {
                            entry.games -= node_steal;
                            taken.push(NodeGames {
                                node: entry.node,
                                games: node_steal,
                            });
                        }
                    }
                    merge(&mut configs[recipient].nodes, &taken);
                    taken.iter().map(|n| n.games).sum()
                }
            };
            totals[donor] -= moved;
            totals[recipient] += moved;
            shortfall = shortfall.saturating_sub(moved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::config::GpuTable;

    fn key(text: &str) -> ConfigKey {
        text.parse().unwrap()
    }

    fn node(name: &str, gpu: &str, load: f64) -> NodeState {
        let policy = AllocationPolicy::default();
        NodeState {
            name: name.to_string(),
            gpu: GpuTable::default().profile(gpu),
            gpu_memory_gb: None,
            load,
            ephemeral: is_ephemeral_name(name, &policy.ephemeral_markers),
            healthy: true,
            data_lag_seconds: 0.0,
        }
    }

    fn scenario_nodes() -> Vec<NodeState> {
        vec![
            node("gh200-1", "GH200", 0.0),
            node("h100-a", "H100", 0.2),
            node("vast-4090", "RTX_4090", 0.5),
        ]
    }

    fn scenario_tracked() -> Vec<TrackedConfig> {
        [
            ("hex8_2p", 20_000),
            ("square8_2p", 9_000),
            ("hexagonal_3p", 6_000),
            ("square19_4p", 400),
        ]
        .map(|(c, g)| TrackedConfig {
            config: key(c),
            game_count: g,
        })
        .to_vec()
    }

    fn scenario_ranked() -> Vec<RankedConfig> {
        [
            ("hex8_2p", 0.2),
            ("square8_2p", -1.0),
            ("hexagonal_3p", 0.1),
            ("square19_4p", 3.0),
        ]
        .map(|(c, s)| RankedConfig {
            config: key(c),
            score: s,
        })
        .to_vec()
    }

    fn request<'a>(
        ranked: &'a [RankedConfig],
        tracked: &'a [TrackedConfig],
        nodes: &'a [NodeState],
        scope: NodeCapScope,
    ) -> AllocationRequest<'a> {
        AllocationRequest {
            ranked,
            tracked,
            nodes,
            games_per_config: 500,
            cluster_health: 1.0,
            scope,
            memory_constrained: false,
            backpressure_paused: false,
            spawn_rate_multiplier: 1.0,
        }
    }

    fn named(allocation: &Allocation, nodes: &[NodeState]) -> Vec<(String, Vec<(String, u64)>)> {
        allocation
            .by_node_name(nodes)
            .into_iter()
            .map(|(config, per_node)| (config.to_string(), per_node))
            .collect()
    }

    fn expect(entries: &[(&str, &[(&str, u64)])]) -> Vec<(String, Vec<(String, u64)>)> {
        entries
            .iter()
            .map(|(c, nodes)| {
                (
                    c.to_string(),
                    nodes.iter().map(|(n, g)| (n.to_string(), *g)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn scenario_10_allocation_example_per_config() {
        let (nodes, ranked, tracked) = (scenario_nodes(), scenario_ranked(), scenario_tracked());
        let policy = AllocationPolicy::default();
        let a = allocate(
            &request(&ranked, &tracked, &nodes, NodeCapScope::PerConfig),
            &policy,
        );
        assert_eq!(
            named(&a, &nodes),
            expect(&[
                ("square19_4p", &[("gh200-1", 976), ("h100-a", 651)]),
                ("hex8_2p", &[("gh200-1", 195), ("vast-4090", 150)]),
                ("hexagonal_3p", &[("gh200-1", 167), ("h100-a", 111)]),
                ("square8_2p", &[("gh200-1", 100)]),
            ])
        );
        assert_eq!(a.total_games(), 2350);
        let cost = a.estimated_cost_usd(&nodes);
        let exact = 1438.0 / 2000.0 * 0.70 + 762.0 / 1500.0 * 2.50 + 150.0 / 400.0 * 0.45;
        assert!((cost - exact).abs() < 1e-6, "{cost}");
        assert_eq!((cost * 100.0).round() / 100.0, 1.94);
    }

    #[test]
    fn scenario_10_per_plan_stays_within_caps() {
        // Here every node stays under its cap, so the shared cap changes nothing.
        let (nodes, ranked, tracked) = (scenario_nodes(), scenario_ranked(), scenario_tracked());
        let policy = AllocationPolicy::default();
        let per_plan = allocate(
            &request(&ranked, &tracked, &nodes, NodeCapScope::PerPlan),
            &policy,
        );
        let per_config = allocate(
            &request(&ranked, &tracked, &nodes, NodeCapScope::PerConfig),
            &policy,
        );
        assert_eq!(per_plan, per_config);
        for (total, node) in per_plan.node_totals(nodes.len()).iter().zip(&nodes) {
            assert!(*total <= node.gpu.games_cap, "{}", node.name);
        }
    }

    #[test]
    fn scenario_11_degraded_cluster() {
        let mut nodes = scenario_nodes();
        nodes[0].healthy = false;
        let ranked = [RankedConfig {
            config: key("hex8_2p"),
            score: 0.2,
        }];
        let tracked = scenario_tracked();
        let policy = AllocationPolicy::default();
        for scope in [NodeCapScope::PerConfig, NodeCapScope::PerPlan] {
            let mut req = request(&ranked, &tracked, &nodes, scope);
            req.cluster_health = 0.5;
            let a = allocate(&req, &policy);
            assert_eq!(
                named(&a, &nodes),
                expect(&[
                    ("hex8_2p", &[("vast-4090", 150)]),
                    ("square19_4p", &[("h100-a", 631)]),
                ]),
                "{scope:?}"
            );
        }
    }

    #[test]
    fn per_plan_shares_the_cap_across_configs() {
        let nodes = vec![node("a100-1", "A100", 0.0)];
        let ranked: Vec<RankedConfig> = ["hex8_2p", "square8_2p", "hex8_3p"]
            .map(|c| RankedConfig {
                config: key(c),
                score: 0.5,
            })
            .to_vec();
        let policy = AllocationPolicy::default();
        let per_config = allocate(
            &request(&ranked, &[], &nodes, NodeCapScope::PerConfig),
            &policy,
        );
        assert_eq!(per_config.total_games(), 1500);
        let per_plan = allocate(
            &request(&ranked, &[], &nodes, NodeCapScope::PerPlan),
            &policy,
        );
        assert_eq!(per_plan.total_games(), 800);
        assert_eq!(per_plan.node_totals(1), vec![800]);
    }

    #[test]
    fn per_plan_applies_the_ephemeral_boost_before_the_cap() {
        let nodes = vec![node("vast-4090", "RTX_4090", 0.0)];
        let ranked = [RankedConfig {
            config: key("hex8_2p"),
            score: 1.5,
        }];
        let policy = AllocationPolicy::default();
        let per_config = allocate(
            &request(&ranked, &[], &nodes, NodeCapScope::PerConfig),
            &policy,
        );
        assert_eq!(per_config.total_games(), 600);
        let per_plan = allocate(
            &request(&ranked, &[], &nodes, NodeCapScope::PerPlan),
            &policy,
        );
        assert_eq!(per_plan.total_games(), 400);
    }

    #[test]
    fn large_boards_skip_small_vram_nodes() {
        let mut small = node("a10-1", "A10", 0.0);
        small.gpu_memory_gb = Some(24.0);
        let mut big = node("h100-1", "H100", 0.0);
        big.gpu_memory_gb = Some(80.0);
        let nodes = vec![small, big];
        let ranked = [
            RankedConfig {
                config: key("square19_2p"),
                score: 0.5,
            },
            RankedConfig {
                config: key("hex8_2p"),
                score: 0.5,
            },
        ];
        let a = allocate(
            &request(&ranked, &[], &nodes, NodeCapScope::PerPlan),
            &AllocationPolicy::default(),
        );
        let large = a.config(key("square19_2p")).unwrap();
        assert!(large.nodes.iter().all(|n| n.node == 1), "{large:?}");
        let small_board = a.config(key("hex8_2p")).unwrap();
        assert!(small_board.nodes.iter().any(|n| n.node == 0));
    }

    #[test]
    fn cpu_nodes_never_get_games() {
        let nodes = vec![node("cpu-1", "CPU", 0.0)];
        let ranked = [RankedConfig {
            config: key("hex8_2p"),
            score: 1.0,
        }];
        for scope in [NodeCapScope::PerConfig, NodeCapScope::PerPlan] {
            let a = allocate(
                &request(&ranked, &[], &nodes, scope),
                &AllocationPolicy::default(),
            );
            assert_eq!(a.total_games(), 0);
        }
    }

    #[test]
    fn pauses_and_spawn_rate() {
        let nodes = scenario_nodes();
        let ranked = scenario_ranked();
        let policy = AllocationPolicy::default();
        let mut req = request(&ranked, &[], &nodes, NodeCapScope::PerPlan);
        req.memory_constrained = true;
        assert_eq!(allocate(&req, &policy).total_games(), 0);
        req.memory_constrained = false;
        req.backpressure_paused = true;
        assert_eq!(allocate(&req, &policy).total_games(), 0);
        req.backpressure_paused = false;
        req.spawn_rate_multiplier = 0.1;
        assert_eq!(allocate(&req, &policy).games_per_config, 100);
        req.spawn_rate_multiplier = 0.5;
        assert_eq!(allocate(&req, &policy).games_per_config, 250);
    }

    fn donor_case(scope: NodeCapScope) -> (Allocation, Vec<NodeState>) {
        let nodes = vec![node("gh200-1", "GH200", 0.0), node("gh200-2", "GH200", 0.0)];
        let ranked = [
            RankedConfig {
                config: key("hex8_2p"),
                score: 2.5,
            },
            RankedConfig {
                config: key("hex8_4p"),
                score: -1.0,
            },
        ];
        let a = allocate(
            &request(&ranked, &[], &nodes, scope),
            &AllocationPolicy::default(),
        );
        (a, nodes)
    }

    #[test]
    fn multiplayer_minimum_takes_from_2p_donors() {
        // hex8_2p gets 1500 (750 + 750), hex8_4p 100 (100 + 0); the 4p minimum is 750.
        let (a, nodes) = donor_case(NodeCapScope::PerConfig);
        assert_eq!(a.config(key("hex8_4p")).unwrap().total(), 750);
        assert_eq!(a.config(key("hex8_2p")).unwrap().total(), 850);
        assert_eq!(a.total_games(), 1600);
        let (b, _) = donor_case(NodeCapScope::PerPlan);
        assert_eq!(b.config(key("hex8_4p")).unwrap().total(), 750);
        assert_eq!(b.total_games(), 1600);
        assert_eq!(
            named(&b, &nodes)[1],
            (
                "hex8_4p".to_string(),
                vec![("gh200-1".to_string(), 425), ("gh200-2".to_string(), 325)]
            )
        );
    }

    #[test]
    fn per_config_top_up_can_raise_the_total_per_plan_cannot() {
        let nodes = vec![
            node("gh200-1", "GH200", 0.0),
            node("gh200-2", "GH200", 0.0),
            node("gh200-3", "GH200", 0.0),
        ];
        let ranked = [
            RankedConfig {
                config: key("hex8_2p"),
                score: 2.5,
            },
            RankedConfig {
                config: key("hex8_4p"),
                score: -1.0,
            },
        ];
        let policy = AllocationPolicy::default();
        let before: u64 = 1500 + 100;
        let per_config = allocate(
            &request(&ranked, &[], &nodes, NodeCapScope::PerConfig),
            &policy,
        );
        assert!(
            per_config.total_games() > before,
            "{}",
            per_config.total_games()
        );
        let per_plan = allocate(
            &request(&ranked, &[], &nodes, NodeCapScope::PerPlan),
            &policy,
        );
        assert!(per_plan.total_games() <= before);
    }

    #[test]
    fn unhealthy_and_idle_nodes_are_skipped() {
        let mut nodes = scenario_nodes();
        nodes[1].healthy = false;
        nodes[0].load = 0.99;
        let ranked = scenario_ranked();
        let a = allocate(
            &request(&ranked, &[], &nodes, NodeCapScope::PerPlan),
            &AllocationPolicy::default(),
        );
        let totals = a.node_totals(nodes.len());
        assert_eq!(totals[0], 0);
        assert_eq!(totals[1], 0);
    }

    #[test]
    fn ties_keep_input_order() {
        let nodes = vec![node("n1", "H100", 0.0), node("n2", "H100", 0.0)];
        let ranked = [
            RankedConfig {
                config: key("square8_2p"),
                score: 0.0,
            },
            RankedConfig {
                config: key("hex8_2p"),
                score: 0.0,
            },
        ];
        let a = allocate(
            &request(&ranked, &[], &nodes, NodeCapScope::PerPlan),
            &AllocationPolicy::default(),
        );
        assert_eq!(a.configs[0].config, key("square8_2p"));
        assert_eq!(a.configs[0].nodes[0].node, 0);
    }

    #[test]
    fn floor_multiples() {
        let p = AllocationPolicy::default();
        for (games, multiple) in [
            (0, Some(5.0)),
            (1, Some(3.0)),
            (499, Some(3.0)),
            (500, Some(2.0)),
            (2999, Some(1.5)),
            (3000, None),
        ] {
            assert_eq!(starvation_floor_multiple(games, &p), multiple, "{games}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const GPUS: [&str; 8] = [
            "GH200", "H100", "A100", "A10", "RTX_4090", "CPU", "L40S", "mystery",
        ];

        /// GPU index, load, ephemeral, healthy, VRAM, data lag.
        type NodeSpec = (usize, f64, bool, bool, Option<f64>, f64);

        fn arb_node() -> impl Strategy<Value = NodeSpec> {
            (
                0..GPUS.len(),
                0.0..=1.0f64,
                any::<bool>(),
                prop::bool::weighted(0.8),
                prop::option::of(0.0..200.0f64),
                0.0..1000.0f64,
            )
        }

        fn build(specs: &[NodeSpec]) -> Vec<NodeState> {
            specs
                .iter()
                .enumerate()
                .map(|(i, &(g, load, eph, healthy, vram, lag))| NodeState {
                    name: format!("node-{i}"),
                    gpu: GpuTable::default().profile(GPUS[g]),
                    gpu_memory_gb: vram,
                    load,
                    ephemeral: eph,
                    healthy,
                    data_lag_seconds: lag,
                })
                .collect()
        }

        fn arb_configs() -> impl Strategy<Value = Vec<(usize, f64, u64)>> {
            prop::collection::vec((0..12usize, -5.0..3000.0f64, 0..20_000u64), 0..12)
        }

        fn ranked_and_tracked(
            raw: &[(usize, f64, u64)],
        ) -> (Vec<RankedConfig>, Vec<TrackedConfig>) {
            let all = ConfigKey::all();
            let mut seen = std::collections::HashSet::new();
            let mut ranked = Vec::new();
            let mut tracked = Vec::new();
            for &(c, score, games) in raw {
                if seen.insert(c) {
                    ranked.push(RankedConfig {
                        config: all[c],
                        score,
                    });
                    tracked.push(TrackedConfig {
                        config: all[c],
                        game_count: games,
                    });
                }
            }
            (ranked, tracked)
        }

        proptest! {
            #[test]
            fn per_plan_never_exceeds_caps_nor_feeds_unhealthy_nodes(
                specs in prop::collection::vec(arb_node(), 0..12),
                raw in arb_configs(),
                health in 0.3..=1.0f64,
            ) {
                let nodes = build(&specs);
                let (ranked, tracked) = ranked_and_tracked(&raw);
                let mut req = request(&ranked, &tracked, &nodes, NodeCapScope::PerPlan);
                req.cluster_health = health;
                let policy = AllocationPolicy::default();
                let a = allocate(&req, &policy);
                for (total, node) in a.node_totals(nodes.len()).iter().zip(&nodes) {
                    prop_assert!(*total <= node.gpu.games_cap, "{} got {}", node.name, total);
                    if !node.healthy {
                        prop_assert_eq!(*total, 0);
                    }
                }
                for c in &a.configs {
                    for n in &c.nodes {
                        prop_assert!(n.games > 0);
                        if c.config.board.is_large() {
                            prop_assert!(nodes[n.node].fits_large_boards(policy.large_board_min_vram_gb));
                        }
                    }
                }
                prop_assert!(a.estimated_cost_usd(&nodes).is_finite());
                prop_assert_eq!(allocate(&req, &policy), a);
            }

            #[test]
            fn per_config_never_feeds_unhealthy_nodes(
                specs in prop::collection::vec(arb_node(), 0..12),
                raw in arb_configs(),
            ) {
                let nodes = build(&specs);
                let (ranked, tracked) = ranked_and_tracked(&raw);
                let req = request(&ranked, &tracked, &nodes, NodeCapScope::PerConfig);
                let a = allocate(&req, &AllocationPolicy::default());
                for (total, node) in a.node_totals(nodes.len()).iter().zip(&nodes) {
                    if !node.healthy {
                        prop_assert_eq!(*total, 0);
                    }
                }
                prop_assert_eq!(allocate(&req, &AllocationPolicy::default()), a);
            }
        }
    }
}
