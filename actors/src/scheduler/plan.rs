//! The plan dry run: the cluster-state JSON of `coordinator plan` in, priorities, budgets and the
//! allocation out (`shared/design/contract.md`, "Plan state JSON").
//!
//! Input structs mirror the contract field for field (`deny_unknown_fields`; every field but
//! `config`/`name` optional, with the contract's defaults). Errors name the JSON path of the
//! problem (`configs[2].config: unknown board "hexx" (expected one of ...)`). The output
//! serializes exactly to the contract's shape; `allocation` keeps insertion order: configs in
//! allocation order (score descending, starvation-floor additions after), nodes in assignment
//! order (cost efficiency descending). The actor calls [`config_priorities`] and
//! [`crate::scheduler::allocation::allocate`] on its own state; `plan` is the same path over JSON.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::allocation::{
    allocate, is_ephemeral_name, AllocationRequest, NodeState, RankedConfig, TrackedConfig,
};
use super::board::ConfigKey;
use super::budget::{config_budget, target_games, Intensity, INTENSITY_NAMES};
use super::config::{NodeCapScope, PriorityWeights, SchedulerPolicyConfig};
use super::priority::{
    elo_uncertainty, normalised_curriculum_weights, priority_score, PrioritySignals,
};
use super::weights::{cluster_signals, dynamic_weights, ClusterLoad};

/// The plan state (input of `coordinator plan`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanState {
    /// Base games per config (default: the policy's, 500).
    #[serde(default)]
    pub games_per_config: Option<u64>,
    /// Cluster health 0-1 (default 1.0).
    #[serde(default)]
    pub cluster_health: Option<f64>,
    /// Node cap scope (default: the policy's, `per_plan`).
    #[serde(default)]
    pub node_cap_scope: Option<NodeCapScope>,
    /// Configs with their signals.
    #[serde(default)]
    pub configs: Vec<PlanConfigState>,
    /// Nodes.
    #[serde(default)]
    pub nodes: Vec<PlanNodeState>,
    /// Memory pressure: plan nothing (default false).
    #[serde(default)]
    pub memory_constrained: bool,
    /// Backpressure pause: plan nothing (default false).
    #[serde(default)]
    pub backpressure_paused: bool,
    /// Spawn rate multiplier; below 1 scales games per config down (default 1.0).
    #[serde(default)]
    pub spawn_rate_multiplier: Option<f64>,
    /// Ask for dynamic weights following this cluster load (and the configs' Elos); absent: the static
    /// `scheduler.policy.priority.weights`.
    #[serde(default)]
    pub dynamic_weights: Option<ClusterLoad>,
}

/// One config of the plan state.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfigState {
    /// Config key, e.g. `hex8_2p`.
    pub config: ConfigKey,
    /// Games known (default 0).
    #[serde(default)]
    pub game_count: u64,
    /// Games across the cluster (default 0).
    #[serde(default)]
    pub cluster_game_count: u64,
    /// Current Elo (default: the policy's fallback, 1500).
    #[serde(default)]
    pub elo: Option<f64>,
    /// Elo per day (default 0).
    #[serde(default)]
    pub elo_velocity_per_day: f64,
    /// Elo per hour (default 0).
    #[serde(default)]
    pub elo_velocity_per_hour: f64,
    /// Hours since new data (default: the policy's fallback, 168).
    #[serde(default)]
    pub staleness_hours: Option<f64>,
    /// The raw curriculum weight (default 1.0); normalised over all 12 configs, those absent counting 1.0.
    #[serde(default = "one")]
    pub curriculum_weight: f64,
    /// Exploration boost (default 1.0).
    #[serde(default = "one")]
    pub exploration_boost: f64,
    /// Training waits for data (default false).
    #[serde(default)]
    pub training_pending: bool,
    /// Data quality 0-1 (default: the policy's baseline, 0.7).
    #[serde(default)]
    pub quality: Option<f64>,
    /// Improvement boost (default 0).
    #[serde(default)]
    pub improvement_boost: f64,
    /// Momentum multiplier (default 1.0).
    #[serde(default = "one")]
    pub momentum: f64,
    /// Opponent diversity 0-1 (default 0).
    #[serde(default)]
    pub diversity: f64,
    /// Intensity name (default `normal`).
    #[serde(default = "normal")]
    pub intensity: String,
    /// Given score: replaces the computed one in the output and the allocation.
    #[serde(default)]
    pub score: Option<f64>,
}

fn one() -> f64 {
    1.0
}

fn normal() -> String {
    "normal".to_string()
}

/// One node of the plan state.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanNodeState {
    /// Node name (unique).
    pub name: String,
    /// GPU model: a GPU table name or one as `nvidia-smi` reports it (default `unknown`).
    #[serde(default = "unknown_gpu")]
    pub gpu: String,
    /// GPU memory in GB (default unknown).
    #[serde(default)]
    pub gpu_memory_gb: Option<f64>,
    /// GPU load 0-1 (default 0).
    #[serde(default)]
    pub load: f64,
    /// Ephemeral node (default: from the name, e.g. `vast-`).
    #[serde(default)]
    pub ephemeral: Option<bool>,
    /// Healthy (default true).
    #[serde(default = "yes")]
    pub healthy: bool,
    /// Data lag in seconds (default 0).
    #[serde(default)]
    pub data_lag_seconds: f64,
    /// Price per hour (default: the GPU table's).
    #[serde(default)]
    pub cost_per_hour: Option<f64>,
    /// The node's spawn-rate multiplier, from its resource optimizer (default 1). Below 1 its games cap per
    /// plan shrinks by it (at least one game), so a node under GPU memory or utilization pressure gets fewer games.
    #[serde(default)]
    pub rate_multiplier: Option<f64>,
}

fn unknown_gpu() -> String {
    "unknown".to_string()
}

fn yes() -> bool {
    true
}

/// One row of `priorities`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanPriority {
    /// Config key.
    pub config: ConfigKey,
    /// Priority score (computed, or the given one).
    pub score: f64,
    /// Starvation tier name, or `""`.
    pub starvation: &'static str,
    /// Search budget of its jobs.
    pub budget: u32,
    /// Target games to the target Elo.
    pub target_games: u64,
}

/// `{config: {node: games}}` in insertion order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanAllocation(pub Vec<(ConfigKey, Vec<(String, u64)>)>);

struct NodeMap<'a>(&'a [(String, u64)]);

impl Serialize for NodeMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (node, games) in self.0 {
            map.serialize_entry(node, games)?;
        }
        map.end()
    }
}

impl Serialize for PlanAllocation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (config, nodes) in &self.0 {
            map.serialize_entry(config, &NodeMap(nodes))?;
        }
        map.end()
    }
}

/// The plan (output of `coordinator plan`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanOutput {
    /// Configs by score, descending (ties keep input order).
    pub priorities: Vec<PlanPriority>,
    /// Games per config per node.
    pub allocation: PlanAllocation,
    /// Sum of the allocation.
    pub total_games: u64,
    /// Dollars for the batch (sum over nodes of games / GPU cap x $/h).
    pub estimated_cost_usd: f64,
}

/// Bad plan input, with the JSON path of the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanInputError {
    /// The JSON does not parse into the plan state.
    #[error("{path}: {message} (line {line}, column {column})")]
    Json {
        /// JSON path (`.` for the document itself).
        path: String,
        /// What is wrong.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A value parses but is out of range or inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// JSON path.
        path: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

fn invalid(path: String, message: impl Into<String>) -> PlanInputError {
    PlanInputError::Invalid {
        path,
        message: message.into(),
    }
}

/// Parses the plan state JSON, naming the path of any problem.
pub fn parse_plan_state(text: &str) -> Result<PlanState, PlanInputError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let state: PlanState = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = (inner.line(), inner.column());
        let full = inner.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        PlanInputError::Json {
            path,
            message,
            line,
            column,
        }
    })?;
    de.end().map_err(|inner| PlanInputError::Json {
        path: ".".to_string(),
        message: "trailing characters after the plan state".to_string(),
        line: inner.line(),
        column: inner.column(),
    })?;
    validate(&state)?;
    Ok(state)
}

fn check_range(path: String, value: f64, min: f64, max: f64) -> Result<(), PlanInputError> {
    if value.is_finite() && value >= min && value <= max {
        Ok(())
    } else {
        Err(invalid(path, format!("{value} is outside {min}..={max}")))
    }
}

fn check_non_negative(path: String, value: f64) -> Result<(), PlanInputError> {
    check_range(path, value, 0.0, f64::MAX)
}

fn check_finite(path: String, value: f64) -> Result<(), PlanInputError> {
    check_range(path, value, f64::MIN, f64::MAX)
}

fn validate(state: &PlanState) -> Result<(), PlanInputError> {
    if state.games_per_config == Some(0) {
        return Err(invalid("games_per_config".into(), "must be at least 1"));
    }
    if let Some(health) = state.cluster_health {
        check_range("cluster_health".into(), health, 0.0, 1.0)?;
    }
    if let Some(load) = state.dynamic_weights {
        check_range(
            "dynamic_weights.idle_gpu_fraction".into(),
            load.idle_gpu_fraction,
            0.0,
            1.0,
        )?;
    }
    if let Some(m) = state.spawn_rate_multiplier {
        check_non_negative("spawn_rate_multiplier".into(), m)?;
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in state.configs.iter().enumerate() {
        let at = |field: &str| format!("configs[{i}].{field}");
        if !seen.insert(c.config) {
            return Err(invalid(
                at("config"),
                format!("duplicate config {}; list each config once", c.config),
            ));
        }
        if let Some(elo) = c.elo {
            check_finite(at("elo"), elo)?;
        }
        if let Some(h) = c.staleness_hours {
            check_non_negative(at("staleness_hours"), h)?;
        }
        if let Some(q) = c.quality {
            check_range(at("quality"), q, 0.0, 1.0)?;
        }
        check_range(at("diversity"), c.diversity, 0.0, 1.0)?;
        check_non_negative(at("curriculum_weight"), c.curriculum_weight)?;
        check_non_negative(at("exploration_boost"), c.exploration_boost)?;
        check_non_negative(at("momentum"), c.momentum)?;
        check_finite(at("elo_velocity_per_day"), c.elo_velocity_per_day)?;
        check_finite(at("elo_velocity_per_hour"), c.elo_velocity_per_hour)?;
        check_finite(at("improvement_boost"), c.improvement_boost)?;
        if let Some(score) = c.score {
            check_finite(at("score"), score)?;
        }
        if Intensity::from_name(&c.intensity).is_none() {
            return Err(invalid(
                at("intensity"),
                format!(
                    "unknown intensity \"{}\" (expected one of {INTENSITY_NAMES})",
                    c.intensity
                ),
            ));
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, n) in state.nodes.iter().enumerate() {
        let at = |field: &str| format!("nodes[{i}].{field}");
        if n.name.trim().is_empty() {
            return Err(invalid(at("name"), "node name is empty"));
        }
        if !names.insert(n.name.as_str()) {
            return Err(invalid(
                at("name"),
                format!("duplicate node \"{}\"; names must be unique", n.name),
            ));
        }
        check_range(at("load"), n.load, 0.0, 1.0)?;
        check_non_negative(at("data_lag_seconds"), n.data_lag_seconds)?;
        if let Some(gb) = n.gpu_memory_gb {
            check_non_negative(at("gpu_memory_gb"), gb)?;
        }
        if let Some(cost) = n.cost_per_hour {
            check_non_negative(at("cost_per_hour"), cost)?;
        }
        if let Some(m) = n.rate_multiplier {
            check_non_negative(at("rate_multiplier"), m)?;
        }
    }
    Ok(())
}

/// A config's state as the priority step sees it: signals after curriculum normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigState {
    /// Priority signals.
    pub signals: PrioritySignals,
    /// Intensity multiplier of its search budget.
    pub intensity: f64,
    /// Given score, replacing the computed one.
    pub score_override: Option<f64>,
}

/// One config as the planner takes it, in domain types. `coordinator plan` builds it from a [`PlanConfigState`]
/// (the JSON), the scheduler actor from what it has counted; both then go through [`plan_input`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigInput {
    /// The config.
    pub config: ConfigKey,
    /// Games known.
    pub game_count: u64,
    /// Games across the cluster.
    pub cluster_game_count: u64,
    /// Current Elo (`None`: the policy's fallback).
    pub elo: Option<f64>,
    /// Elo per day.
    pub elo_velocity_per_day: f64,
    /// Elo per hour.
    pub elo_velocity_per_hour: f64,
    /// Hours since new data (`None`: the policy's fallback).
    pub staleness_hours: Option<f64>,
    /// The raw curriculum weight; [`normalised_curriculum_weights`] runs over all 12 configs in [`plan_input`].
    pub curriculum_weight: f64,
    /// Exploration boost.
    pub exploration_boost: f64,
    /// Training waits for data.
    pub training_pending: bool,
    /// Data quality 0-1 (`None`: the policy's baseline).
    pub quality: Option<f64>,
    /// Improvement boost (not clamped).
    pub improvement_boost: f64,
    /// Momentum multiplier (not clamped).
    pub momentum: f64,
    /// Opponent diversity 0-1.
    pub diversity: f64,
    /// Intensity of its search budget.
    pub intensity: Intensity,
    /// Given score, replacing the computed one.
    pub score: Option<f64>,
}

impl ConfigInput {
    /// A config with `game_count` games and neutral signals (the plan state's defaults).
    pub fn neutral(config: ConfigKey, game_count: u64) -> Self {
        ConfigInput {
            config,
            game_count,
            cluster_game_count: 0,
            elo: None,
            elo_velocity_per_day: 0.0,
            elo_velocity_per_hour: 0.0,
            staleness_hours: None,
            curriculum_weight: 1.0,
            exploration_boost: 1.0,
            training_pending: false,
            quality: None,
            improvement_boost: 0.0,
            momentum: 1.0,
            diversity: 0.0,
            intensity: Intensity::Normal,
            score: None,
        }
    }
}

impl From<&PlanConfigState> for ConfigInput {
    fn from(c: &PlanConfigState) -> Self {
        ConfigInput {
            config: c.config,
            game_count: c.game_count,
            cluster_game_count: c.cluster_game_count,
            elo: c.elo,
            elo_velocity_per_day: c.elo_velocity_per_day,
            elo_velocity_per_hour: c.elo_velocity_per_hour,
            staleness_hours: c.staleness_hours,
            curriculum_weight: c.curriculum_weight,
            exploration_boost: c.exploration_boost,
            training_pending: c.training_pending,
            quality: c.quality,
            improvement_boost: c.improvement_boost,
            momentum: c.momentum,
            diversity: c.diversity,
            // `validate` refused unknown names; the fallback keeps this total.
            intensity: Intensity::from_name(&c.intensity).unwrap_or(Intensity::Normal),
            score: c.score,
        }
    }
}

/// Everything one plan needs, in domain types (see [`ConfigInput`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput {
    /// Base games per config (`None`: the policy's).
    pub games_per_config: Option<u64>,
    /// Cluster health 0-1 (`None`: 1.0).
    pub cluster_health: Option<f64>,
    /// Node cap scope (`None`: the policy's).
    pub node_cap_scope: Option<NodeCapScope>,
    /// Configs, in input order (ties keep it).
    pub configs: Vec<ConfigInput>,
    /// Nodes, in input order.
    pub nodes: Vec<PlanNodeState>,
    /// Memory pressure: plan nothing.
    pub memory_constrained: bool,
    /// Backpressure pause: plan nothing.
    pub backpressure_paused: bool,
    /// Spawn rate multiplier (`None`: 1.0).
    pub spawn_rate_multiplier: Option<f64>,
    /// Weights of the additive priority terms (static from the policy, or dynamic from the cluster).
    pub weights: PriorityWeights,
}

impl PlanState {
    /// The domain input of this (validated) state: the policy's static weights, or dynamic ones when the state
    /// has `dynamic_weights`.
    pub fn to_input(&self, policy: &SchedulerPolicyConfig) -> PlanInput {
        PlanInput {
            games_per_config: self.games_per_config,
            cluster_health: self.cluster_health,
            node_cap_scope: self.node_cap_scope,
            configs: self.configs.iter().map(ConfigInput::from).collect(),
            nodes: self.nodes.clone(),
            memory_constrained: self.memory_constrained,
            backpressure_paused: self.backpressure_paused,
            spawn_rate_multiplier: self.spawn_rate_multiplier,
            weights: match self.dynamic_weights {
                None => policy.priority.weights,
                Some(load) => {
                    let p = &policy.priority;
                    let elos: Vec<f64> = self
                        .configs
                        .iter()
                        .map(|c| c.elo.unwrap_or(p.elo.fallback_elo))
                        .collect();
                    let signals = cluster_signals(load, &elos, p.elo.target_elo);
                    dynamic_weights(&p.weights, &signals, &policy.dynamic_weights)
                }
            },
        }
    }
}

/// Priorities of `configs`, sorted by score descending (ties keep input order).
pub fn config_priorities(
    configs: &[ConfigState],
    weights: &PriorityWeights,
    policy: &SchedulerPolicyConfig,
) -> Vec<PlanPriority> {
    let p = &policy.priority;
    let mut rows: Vec<PlanPriority> = configs
        .iter()
        .map(|c| {
            let s = &c.signals;
            let breakdown = priority_score(s, weights, p);
            PlanPriority {
                config: s.config,
                score: c.score_override.unwrap_or(breakdown.score),
                starvation: breakdown.starvation.map_or("", |t| t.name()),
                budget: config_budget(
                    s.config,
                    s.game_count,
                    s.current_elo,
                    c.intensity,
                    &policy.budget,
                ),
                target_games: target_games(s.config, s.current_elo, &policy.targets),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    rows
}

/// The priority step's view of `configs`: curriculum weights normalised over all 12 configs, fallbacks filled in.
pub fn config_states(configs: &[ConfigInput], policy: &SchedulerPolicyConfig) -> Vec<ConfigState> {
    let p = &policy.priority;
    let raw: Vec<(ConfigKey, f64)> = configs
        .iter()
        .map(|c| (c.config, c.curriculum_weight))
        .collect();
    let curriculum = normalised_curriculum_weights(&raw, p);
    configs
        .iter()
        .zip(curriculum)
        .map(|(c, curriculum_weight)| ConfigState {
            signals: PrioritySignals {
                staleness_hours: c.staleness_hours.unwrap_or(p.staleness.fallback_hours),
                elo_velocity_per_day: c.elo_velocity_per_day,
                elo_velocity_per_hour: c.elo_velocity_per_hour,
                training_pending: c.training_pending,
                exploration_boost: c.exploration_boost,
                curriculum_weight,
                improvement_boost: c.improvement_boost,
                quality: c.quality.unwrap_or(p.quality.baseline),
                momentum: c.momentum,
                cluster_game_count: c.cluster_game_count,
                current_elo: c.elo.unwrap_or(p.elo.fallback_elo),
                elo_uncertainty: elo_uncertainty(c.game_count, &p.elo),
                diversity: c.diversity,
                ..PrioritySignals::with_defaults(c.config, c.game_count, p)
            },
            intensity: c.intensity.multiplier(&policy.budget.intensity),
            score_override: c.score,
        })
        .collect()
}

/// Resolves the plan's nodes against the GPU table.
pub fn plan_nodes(nodes: &[PlanNodeState], policy: &SchedulerPolicyConfig) -> Vec<NodeState> {
    nodes
        .iter()
        .map(|n| {
            let mut gpu = policy.gpus.profile(&n.gpu);
            if let Some(cost) = n.cost_per_hour.filter(|c| *c > 0.0) {
                gpu.cost_per_hour = cost;
            }
            if let Some(m) = n.rate_multiplier.filter(|m| *m < 1.0) {
                gpu.games_cap = ((gpu.games_cap as f64 * m.max(0.0)).trunc() as u64).max(1);
            }
            NodeState {
                name: n.name.clone(),
                gpu,
                gpu_memory_gb: n.gpu_memory_gb,
                load: n.load,
                ephemeral: n.ephemeral.unwrap_or_else(|| {
                    is_ephemeral_name(&n.name, &policy.allocation.ephemeral_markers)
                }),
                healthy: n.healthy,
                data_lag_seconds: n.data_lag_seconds,
            }
        })
        .collect()
}

/// The plan for a parsed state, with the policy's static weights.
pub fn plan(state: &PlanState, policy: &SchedulerPolicyConfig) -> PlanOutput {
    plan_input(&state.to_input(policy), policy)
}

/// The plan for `input`: priorities, then the allocation (the one path of `coordinator plan` and the actor).
pub fn plan_input(input: &PlanInput, policy: &SchedulerPolicyConfig) -> PlanOutput {
    let configs = config_states(&input.configs, policy);
    let priorities = config_priorities(&configs, &input.weights, policy);
    let nodes = plan_nodes(&input.nodes, policy);
    let ranked: Vec<RankedConfig> = priorities
        .iter()
        .map(|p| RankedConfig {
            config: p.config,
            score: p.score,
        })
        .collect();
    let tracked: Vec<TrackedConfig> = configs
        .iter()
        .map(|c| TrackedConfig {
            config: c.signals.config,
            game_count: c.signals.game_count,
        })
        .collect();
    let request = AllocationRequest {
        ranked: &ranked,
        tracked: &tracked,
        nodes: &nodes,
        games_per_config: input
            .games_per_config
            .unwrap_or(policy.allocation.games_per_config),
        cluster_health: input.cluster_health.unwrap_or(1.0),
        scope: input
            .node_cap_scope
            .unwrap_or(policy.allocation.node_cap_scope),
        memory_constrained: input.memory_constrained,
        backpressure_paused: input.backpressure_paused,
        spawn_rate_multiplier: input.spawn_rate_multiplier.unwrap_or(1.0),
    };
    let allocation = allocate(&request, &policy.allocation);
    PlanOutput {
        priorities,
        total_games: allocation.total_games(),
        estimated_cost_usd: allocation.estimated_cost_usd(&nodes),
        allocation: PlanAllocation(allocation.by_node_name(&nodes)),
    }
}

/// Parses `text` and plans it: what `coordinator plan --state FILE` prints.
pub fn plan_from_json(
    text: &str,
    policy: &SchedulerPolicyConfig,
) -> Result<PlanOutput, PlanInputError> {
    let state = parse_plan_state(text)?;
    Ok(plan(&state, policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(state: serde_json::Value) -> PlanOutput {
        plan_from_json(&state.to_string(), &SchedulerPolicyConfig::default()).unwrap()
    }

    fn error(text: &str) -> String {
        plan_from_json(text, &SchedulerPolicyConfig::default())
            .unwrap_err()
            .to_string()
    }

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-6,
            "got {actual}, expected {expected}"
        );
    }

    #[test]
    fn scenario_1_through_plan() {
        // The bare formula's inputs (fresh data, full diversity); uncertainty comes from 0 games.
        let config = |c: &str| json!({"config": c, "staleness_hours": 0.0, "diversity": 1.0});
        let out =
            run(json!({"configs": [config("hex8_3p"), config("hex8_4p"), config("hex8_2p")]}));
        let scores: Vec<(String, f64)> = out
            .priorities
            .iter()
            .map(|p| (p.config.to_string(), p.score))
            .collect();
        assert_eq!(scores[0].0, "hex8_2p");
        close(scores[0].1, 2754.0);
        assert_eq!(scores[1].0, "hex8_3p");
        close(scores[1].1, 344.25);
        assert_eq!(scores[2].0, "hex8_4p");
        close(scores[2].1, 275.4);
        assert!(out.priorities.iter().all(|p| p.starvation == "ULTRA"));
        assert_eq!(out.priorities[0].budget, 64);
        assert_eq!(out.priorities[0].target_games, 200_000);
        assert_eq!(out.total_games, 0);
    }

    fn scenario_10(
        scope: &str,
        gh200_healthy: bool,
        health: f64,
        listed: &[&str],
    ) -> serde_json::Value {
        let all = [
            ("hex8_2p", 20_000, 0.2),
            ("square8_2p", 9_000, -1.0),
            ("hexagonal_3p", 6_000, 0.1),
            ("square19_4p", 400, 3.0),
        ];
        let configs: Vec<_> = all
            .iter()
            .map(|(c, games, score)| {
                if listed.contains(c) {
                    json!({"config": c, "game_count": games, "score": score})
                } else {
                    // Tracked by the starvation floor but never preferred by score.
                    json!({"config": c, "game_count": games, "score": -1e9})
                }
            })
            .collect();
        json!({
            "games_per_config": 500, "cluster_health": health, "node_cap_scope": scope,
            "configs": configs,
            "nodes": [
                {"name": "gh200-1", "gpu": "GH200", "load": 0.0, "healthy": gh200_healthy},
                {"name": "h100-a", "gpu": "H100", "load": 0.2},
                {"name": "vast-4090", "gpu": "RTX_4090", "load": 0.5}
            ]
        })
    }

    #[test]
    fn scenario_10_through_plan_per_config() {
        let all = ["hex8_2p", "square8_2p", "hexagonal_3p", "square19_4p"];
        let out = run(scenario_10("per_config", true, 1.0, &all));
        let text = serde_json::to_string(&out.allocation).unwrap();
        assert_eq!(
            text,
            r#"{"square19_4p":{"gh200-1":976,"h100-a":651},"hex8_2p":{"gh200-1":195,"vast-4090":150},"hexagonal_3p":{"gh200-1":167,"h100-a":111},"square8_2p":{"gh200-1":100}}"#
        );
        assert_eq!(out.total_games, 2350);
        close(out.estimated_cost_usd, 0.5033 + 1.27 + 0.16875);
        let per_plan = run(scenario_10("per_plan", true, 1.0, &all));
        assert_eq!(per_plan.allocation, out.allocation);
    }

    #[test]
    fn scenario_11_through_plan() {
        // Unlisted configs get a very low given score; their -1e9 x 500 games clamps to 100
        // each, so this checks only the listed and starved configs.
        let out = run(scenario_10("per_config", false, 0.5, &["hex8_2p"]));
        let hex8 = out
            .allocation
            .0
            .iter()
            .find(|(c, _)| c.to_string() == "hex8_2p")
            .unwrap();
        assert_eq!(hex8.1, vec![("vast-4090".to_string(), 150)]);
    }

    #[test]
    fn output_has_exactly_the_contract_fields() {
        let out = run(json!({
            "configs": [{"config": "hex8_2p"}],
            "nodes": [{"name": "gh200-1", "gpu": "GH200", "gpu_memory_gb": 96}]
        }));
        let value = serde_json::to_value(&out).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4);
        for key in [
            "priorities",
            "allocation",
            "total_games",
            "estimated_cost_usd",
        ] {
            assert!(value.get(key).is_some(), "{key}");
        }
        let row = value["priorities"][0].as_object().unwrap();
        let mut fields: Vec<&str> = row.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["budget", "config", "score", "starvation", "target_games"]
        );
        assert_eq!(value["allocation"]["hex8_2p"]["gh200-1"], 2000);
    }

    #[test]
    fn contract_example_parses_with_all_fields() {
        let text = r#"{"games_per_config": 500, "cluster_health": 1.0, "node_cap_scope": "per_plan",
 "configs": [{"config": "hex8_2p", "game_count": 0, "cluster_game_count": 0, "elo": 1500.0,
   "elo_velocity_per_day": 0.0, "elo_velocity_per_hour": 0.0, "staleness_hours": 168.0,
   "curriculum_weight": 1.0, "exploration_boost": 1.0, "training_pending": false, "quality": 0.7,
   "improvement_boost": 0.0, "momentum": 1.0, "diversity": 0.0, "intensity": "normal", "score": null}],
 "nodes": [{"name": "gh200-1", "gpu": "GH200", "gpu_memory_gb": 96, "load": 0.0, "ephemeral": false,
   "healthy": true, "data_lag_seconds": 0}]}"#;
        let explicit = plan_from_json(text, &SchedulerPolicyConfig::default()).unwrap();
        let defaults = run(
            json!({"configs": [{"config": "hex8_2p"}], "nodes": [{"name": "gh200-1", "gpu": "GH200", "gpu_memory_gb": 96}]}),
        );
        assert_eq!(explicit, defaults);
        // Defaults: staleness 168 (0.3), deficit 0.1, VOI 0.02, diversity 0.1, cluster 0.15.
        close(
            explicit.priorities[0].score,
            0.67 * 0.85 * 2.0 * 12.0 * 500.0,
        );
    }

    #[test]
    fn bad_input_names_the_json_path() {
        let cases = [
            (
                r#"{"configs":[{"config":"hex8_2p"},{"config":"hex8_3p"},{"config":"hexx_2p"}]}"#,
                "configs[2].config: unknown board \"hexx\" (expected one of hex8, square8",
            ),
            (
                r#"{"configs":[{"config":"hex8_5p"}]}"#,
                "configs[0].config: config key \"hex8_5p\": player count 5 is outside 2-4",
            ),
            (
                r#"{"configs":[{"config":"hex_2p"}]}"#,
                "configs[0].config: board \"hex\" is ambiguous",
            ),
            (
                r#"{"configs":[{"config":"hex8_2p","game_count":-5}]}"#,
                "configs[0].game_count: invalid value: integer `-5`",
            ),
            (
                r#"{"configs":[{"config":"hex8_2p","games":5}]}"#,
                "configs[0].games: unknown field `games`",
            ),
            (
                r#"{"nodes":[{"name":"a","gpu":"H100","colour":"red"}]}"#,
                "nodes[0].colour: unknown field `colour`",
            ),
            (r#"{"nodez":[]}"#, "nodez: unknown field `nodez`"),
            (
                r#"{"configs":[{"game_count":1}]}"#,
                "configs[0]: missing field `config`",
            ),
            (
                r#"{"node_cap_scope":"global"}"#,
                "node_cap_scope: unknown variant `global`",
            ),
            (
                r#"{"nodes":[{"name":"a","load":1.5}]}"#,
                "nodes[0].load: 1.5 is outside 0..=1",
            ),
            (
                r#"{"nodes":[{"name":"a"},{"name":"a"}]}"#,
                "nodes[1].name: duplicate node \"a\"",
            ),
            (
                r#"{"configs":[{"config":"hex8_2p"},{"config":"HEX8-2P"}]}"#,
                "configs[1].config: duplicate config hex8_2p",
            ),
            (
                r#"{"configs":[{"config":"hex8_2p","intensity":"turbo"}]}"#,
                "configs[0].intensity: unknown intensity \"turbo\"",
            ),
            (
                r#"{"cluster_health": 2}"#,
                "cluster_health: 2 is outside 0..=1",
            ),
            (
                r#"{"games_per_config": 0}"#,
                "games_per_config: must be at least 1",
            ),
            (r#"{"configs": [}"#, "configs"),
        ];
        for (text, expected) in cases {
            let err = error(text);
            assert!(
                err.starts_with(expected),
                "input {text}\n got: {err}\nwant: {expected}"
            );
        }
        assert!(error("{} x").contains("trailing"));
    }

    #[test]
    fn given_score_replaces_the_computed_one_but_not_budget_or_tier() {
        let out = run(json!({"configs": [
            {"config": "hex8_2p", "game_count": 50, "elo": 1200, "score": -3.5},
            {"config": "square8_2p", "game_count": 20000}
        ]}));
        let hex8 = out
            .priorities
            .iter()
            .find(|p| p.config.to_string() == "hex8_2p")
            .unwrap();
        assert_eq!(hex8.score, -3.5);
        assert_eq!(hex8.starvation, "ULTRA");
        assert_eq!(hex8.budget, 64);
        assert_eq!(out.priorities.last().unwrap().config.to_string(), "hex8_2p");
    }

    #[test]
    fn curriculum_weight_is_raw_and_normalised_over_all_twelve_configs() {
        // Fresh data and full diversity leave the curriculum term easy to see: (w - 1) x 0.10.
        let config = |c: &str, w: f64| {
            json!({"config": c, "staleness_hours": 0.0, "diversity": 1.0, "game_count": 10000,
                   "cluster_game_count": 20000, "elo": 1700.0, "curriculum_weight": w})
        };
        let out = run(json!({"configs": [config("hex8_2p", 2.0), config("hex8_3p", 1.0)]}));
        let neutral = run(json!({"configs": [config("hex8_2p", 1.0), config("hex8_3p", 1.0)]}));
        let scale = 1.0 + (12.0 / 13.0 - 1.0) * 0.5;
        // hex8_2p multiplier 0.85 x 1.6 x 12; hex8_3p 0.85 x 1.6 x 1.5.
        let score = |out: &PlanOutput, c: &str| {
            out.priorities
                .iter()
                .find(|p| p.config.to_string() == c)
                .unwrap()
                .score
        };
        let rel = |a: f64, b: f64| assert!(((a - b) / b).abs() < 1e-9, "{a} vs {b}");
        rel(
            score(&out, "hex8_2p") - score(&neutral, "hex8_2p"),
            (2.0 * scale - 1.0) * 0.10 * 0.85 * 1.6 * 12.0,
        );
        rel(
            score(&out, "hex8_3p") - score(&neutral, "hex8_3p"),
            (scale - 1.0) * 0.10 * 0.85 * 1.6 * 1.5,
        );
        // All 12 given, summing to 12.008: used as they are.
        let configs: Vec<_> = ConfigKey::all()
            .iter()
            .enumerate()
            .map(|(i, k)| config(&k.to_string(), if i == 0 { 1.008 } else { 1.0 }))
            .collect();
        let banded = run(json!({ "configs": configs }));
        let first = ConfigKey::all()[0].to_string();
        let configs: Vec<_> = ConfigKey::all()
            .iter()
            .map(|k| config(&k.to_string(), 1.0))
            .collect();
        let flat = run(json!({ "configs": configs }));
        let multiplier = if first.ends_with("_2p") { 12.0 } else { 1.5 } * 0.85 * 1.6;
        rel(
            score(&banded, &first) - score(&flat, &first),
            0.008 * 0.10 * multiplier,
        );
    }

    #[test]
    fn static_weights_unless_the_state_asks_for_dynamic_ones() {
        let config = json!({"config": "hex8_2p", "game_count": 10000, "cluster_game_count": 20000,
                            "elo": 1700.0, "staleness_hours": 4.0, "diversity": 1.0});
        let fixed = run(json!({"configs": [config]}));
        let busy = run(json!({"configs": [config], "dynamic_weights": {"idle_gpu_fraction": 0.0}}));
        let idle = run(json!({"configs": [config], "dynamic_weights": {"idle_gpu_fraction": 0.6}}));
        // Staleness is the only live term besides deficit/VOI: 0.30 static, 0.21 busy, 0.45 idle (scenario 6);
        // idle also raises the deficit weight to 0.15 (x1.4 = 0.14, clamped up) and diversity (unused here).
        let m = 0.85 * 1.6 * 12.0;
        // Uncertainty from 10000 games: max(30, 300 / 100) = 30.
        let voi = 0.4 * 0.1 + 0.3 * 0.6 + 0.3 * 0.03;
        let rel = |a: f64, b: f64| assert!(((a - b) / b).abs() < 1e-9, "{a} vs {b}");
        rel(
            fixed.priorities[0].score,
            (0.30 + 0.9 * 0.10 + 0.02 * voi) * m,
        );
        rel(
            busy.priorities[0].score,
            (0.21 + 0.9 * 0.15 + 0.10 * voi) * m,
        );
        rel(
            idle.priorities[0].score,
            (0.45 + 0.9 * 0.15 + 0.10 * voi) * m,
        );
        assert!(error(r#"{"dynamic_weights": {"idle_gpu_fraction": 2}}"#)
            .starts_with("dynamic_weights.idle_gpu_fraction: 2 is outside"));
        assert!(error(r#"{"dynamic_weights": {"idle": 1}}"#)
            .starts_with("dynamic_weights.idle: unknown field"));
    }

    #[test]
    fn ties_keep_input_order() {
        let out = run(json!({"configs": [
            {"config": "square8_3p", "score": 1.0},
            {"config": "hex8_2p", "score": 1.0},
            {"config": "hexagonal_4p", "score": 2.0}
        ]}));
        let order: Vec<String> = out
            .priorities
            .iter()
            .map(|p| p.config.to_string())
            .collect();
        assert_eq!(order, ["hexagonal_4p", "square8_3p", "hex8_2p"]);
    }

    #[test]
    fn plan_is_deterministic() {
        let state = scenario_10("per_plan", true, 0.8, &["hex8_2p", "square19_4p"]);
        let a = serde_json::to_string(&run(state.clone())).unwrap();
        let b = serde_json::to_string(&run(state)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn ephemeral_defaults_from_the_name() {
        let state = PlanState {
            nodes: vec![PlanNodeState {
                name: "runpod-7".into(),
                gpu: "A10".into(),
                gpu_memory_gb: None,
                load: 0.0,
                ephemeral: None,
                healthy: true,
                data_lag_seconds: 0.0,
                cost_per_hour: Some(0.2),
                rate_multiplier: None,
            }],
            ..serde_json::from_str("{}").unwrap()
        };
        let nodes = plan_nodes(&state.nodes, &SchedulerPolicyConfig::default());
        assert!(nodes[0].ephemeral);
        assert_eq!(nodes[0].gpu.cost_per_hour, 0.2);
        assert_eq!(nodes[0].gpu.games_cap, 400);
    }

    #[test]
    fn a_node_rate_multiplier_below_1_shrinks_its_games_cap() {
        let out = run(json!({
            "configs": [{"config": "hex8_2p", "score": 3.0}],
            "nodes": [{"name": "hot", "gpu": "GH200", "rate_multiplier": 0.3},
                      {"name": "cool", "gpu": "GH200", "rate_multiplier": 1.5}]
        }));
        let shares = &out.allocation.0[0].1;
        let of = |node: &str| {
            shares
                .iter()
                .find(|(n, _)| n == node)
                .map_or(0, |(_, g)| *g)
        };
        assert!(of("hot") <= 600, "GH200 cap 2000 × 0.3: {shares:?}");
        assert!(of("cool") > of("hot"), "{shares:?}");
        assert!(error(r#"{"nodes":[{"name":"n","rate_multiplier":-1}]}"#)
            .contains("nodes[0].rate_multiplier"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const GPUS: [&str; 3] = ["GH200", "H100", "RTX_4090"];

        proptest! {
            #[test]
            fn scores_are_finite_and_plans_are_deterministic(
                configs in prop::collection::vec(((0..12usize, 0..100_000u64, 0..50_000u64, 0.0..3000.0f64,
                    -200.0..200.0f64, -20.0..20.0f64), (0.0..1000.0f64, 0.0..=1.0f64, 0.5..3.0f64,
                    any::<bool>(), 0.0..=1.0f64, -0.2..0.2f64, 0.0..2.0f64)), 0..12),
                loads in prop::collection::vec(0.0..=1.0f64, 0..6),
            ) {
                let all = ConfigKey::all();
                let mut seen = std::collections::HashSet::new();
                let configs: Vec<_> = configs.into_iter().filter(|(a, _)| seen.insert(a.0)).map(|(a, b)| json!({
                    "config": all[a.0].to_string(), "game_count": a.1, "cluster_game_count": a.2,
                    "elo": a.3, "elo_velocity_per_day": a.4, "elo_velocity_per_hour": a.5,
                    "staleness_hours": b.0, "quality": b.1, "exploration_boost": b.2,
                    "training_pending": b.3, "diversity": b.4, "improvement_boost": b.5,
                    "curriculum_weight": b.6,
                })).collect();
                let nodes: Vec<_> = loads.iter().enumerate().map(|(i, load)| json!({
                    "name": format!("n{i}"), "gpu": GPUS[i % 3], "load": load
                })).collect();
                let state = json!({"configs": configs, "nodes": nodes});
                let out = run(state.clone());
                for p in &out.priorities {
                    prop_assert!(p.score.is_finite(), "{:?}", p);
                }
                prop_assert!(out.estimated_cost_usd.is_finite());
                prop_assert_eq!(serde_json::to_string(&run(state)).unwrap(), serde_json::to_string(&out).unwrap());
            }
        }
    }
}
