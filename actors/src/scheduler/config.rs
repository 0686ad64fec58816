//! `SchedulerPolicyConfig`: every weight, threshold and table of the selfplay scheduler's pure
//! policy, with the numbers of `shared/domain/scheduler.md` as defaults.
//!
//! It is a tree of small structs, one per concern (priority, dynamic weights, budget, targets,
//! allocation, GPU table, per-node job targets), so the YAML reads like the domain file. The
//! `///` on each field is its user documentation. This module holds data only; the formulas
//! live in the sibling modules that take these structs by reference.

use serde::{Deserialize, Serialize};

use super::board::BoardType;

/// A value per player count (2, 3, 4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerPlayers<T> {
    /// Value for 2-player games.
    #[serde(rename = "2p")]
    pub two: T,
    /// Value for 3-player games.
    #[serde(rename = "3p")]
    pub three: T,
    /// Value for 4-player games.
    #[serde(rename = "4p")]
    pub four: T,
}

impl<T: Copy> PerPlayers<T> {
    /// The value for `players`; counts above 4 use the 4-player value, below 3 the 2-player one.
    pub fn get(&self, players: u8) -> T {
        match players {
            0..=2 => self.two,
            3 => self.three,
            _ => self.four,
        }
    }
}

/// A value per board type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerBoard<T> {
    /// Value for hex8.
    pub hex8: T,
    /// Value for square8.
    pub square8: T,
    /// Value for square19.
    pub square19: T,
    /// Value for hexagonal.
    pub hexagonal: T,
}

impl<T: Copy> PerBoard<T> {
    /// The value for `board`.
    pub fn get(&self, board: BoardType) -> T {
        match board {
            BoardType::Hex8 => self.hex8,
            BoardType::Square8 => self.square8,
            BoardType::Square19 => self.square19,
            BoardType::Hexagonal => self.hexagonal,
        }
    }
}

/// Inclusive bounds a dynamic weight is clamped to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Lowest allowed value.
    pub min: f64,
    /// Highest allowed value.
    pub max: f64,
}

impl Bounds {
    const fn new(min: f64, max: f64) -> Self {
        Bounds { min, max }
    }

    /// `value` clamped into `[min, max]`.
    pub fn clamp(&self, value: f64) -> f64 {
        value.max(self.min).min(self.max)
    }
}

/// The whole pure policy of the selfplay scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerPolicyConfig {
    /// Priority score: weights, factor shapes and multipliers.
    pub priority: PriorityPolicy,
    /// How weights follow cluster state (recomputed every 60 s by the actor), and their bounds.
    pub dynamic_weights: DynamicWeightPolicy,
    /// MCTS search budget per config.
    pub budget: BudgetPolicy,
    /// Target games, samples per game and games needed.
    pub targets: TargetGamesPolicy,
    /// Allocation of games across nodes.
    pub allocation: AllocationPolicy,
    /// GPU table: capacity weight, games cap per plan and price per hour.
    pub gpus: GpuTable,
    /// Per-node target of concurrent jobs.
    pub target_jobs: TargetJobsPolicy,
}

// ---------------------------------------------------------------------------------------------
// Priority
// ---------------------------------------------------------------------------------------------

/// Weights of the additive priority terms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorityWeights {
    /// Weight of the staleness factor (0-1).
    pub staleness: f64,
    /// Weight of the Elo velocity factor (0-1).
    pub velocity: f64,
    /// Weight of "training is waiting for data".
    pub training: f64,
    /// Weight of `exploration_boost - 1`.
    pub exploration: f64,
    /// Weight of `curriculum_weight - 1`.
    pub curriculum: f64,
    /// Weight of the improvement boost.
    pub improvement: f64,
    /// Weight of the data deficit factor (0-1).
    pub data_deficit: f64,
    /// Weight of `quality - quality baseline`.
    pub quality: f64,
    /// Weight of the value-of-information score (0-1).
    pub voi: f64,
    /// Weight of `1 - diversity`.
    pub diversity: f64,
    /// Weight of `cluster boost - 1`.
    pub cluster: f64,
}

impl Default for PriorityWeights {
    fn default() -> Self {
        PriorityWeights {
            staleness: 0.30,
            velocity: 0.10,
            training: 0.15,
            exploration: 0.10,
            curriculum: 0.10,
            improvement: 0.08,
            data_deficit: 0.10,
            quality: 0.05,
            voi: 0.02,
            diversity: 0.10,
            cluster: 0.15,
        }
    }
}

/// Everything the priority score uses besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorityPolicy {
    /// Base weights of the additive terms (the dynamic weights start from these).
    pub weights: PriorityWeights,
    /// Shape of the staleness factor.
    pub staleness: StalenessPolicy,
    /// Shape of the velocity term and the velocity multiplier.
    pub velocity: VelocityPolicy,
    /// Quality baseline and degradation penalty.
    pub quality: QualityPolicy,
    /// Data deficit targets.
    pub data_deficit: DataDeficitPolicy,
    /// Value-of-information normalisation and shares.
    pub voi: VoiPolicy,
    /// Elo defaults and the Elo-gap multiplier.
    pub elo: EloPolicy,
    /// Cluster-wide game count boost tiers.
    pub cluster_boost: ClusterBoostPolicy,
    /// Priority override tiers and their multipliers.
    pub override_tiers: OverrideTierPolicy,
    /// Player-count multipliers.
    pub players: PlayerMultiplierPolicy,
    /// Data starvation tiers (multipliers on the score).
    pub starvation: StarvationPolicy,
    /// Curriculum normalisation: when the raw weights of all 12 configs (a config without one counting 1.0) sum
    /// to more than `curriculum_tolerance` away from 12, every weight is multiplied by `1 + (12 / sum - 1) * this`.
    pub curriculum_normalisation: f64,
    /// How far from 12 the raw curriculum weights may sum before they are normalised.
    pub curriculum_tolerance: f64,
    /// Number of opponent types; diversity = distinct opponent types seen / this.
    pub diversity_opponent_types: u32,
    /// Architecture boost = this x the highest architecture weight of the config.
    pub architecture_boost_scale: f64,
}

impl Default for PriorityPolicy {
    fn default() -> Self {
        PriorityPolicy {
            weights: PriorityWeights::default(),
            staleness: StalenessPolicy::default(),
            velocity: VelocityPolicy::default(),
            quality: QualityPolicy::default(),
            data_deficit: DataDeficitPolicy::default(),
            voi: VoiPolicy::default(),
            elo: EloPolicy::default(),
            cluster_boost: ClusterBoostPolicy::default(),
            override_tiers: OverrideTierPolicy::default(),
            players: PlayerMultiplierPolicy::default(),
            starvation: StarvationPolicy::default(),
            curriculum_normalisation: 0.5,
            curriculum_tolerance: 0.01,
            diversity_opponent_types: 8,
            architecture_boost_scale: 0.30,
        }
    }
}

/// Staleness factor: 0 below `fresh_hours`, 1 above `max_hours`, else
/// `min(1, (h - fresh) / (stale - fresh))`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StalenessPolicy {
    /// Hours below which data is fresh (factor 0).
    pub fresh_hours: f64,
    /// Hours at which the factor reaches 1.
    pub stale_hours: f64,
    /// Hours above which the factor is 1 whatever the ramp says.
    pub max_hours: f64,
    /// Staleness assumed when a config has never produced data.
    pub fallback_hours: f64,
}

impl Default for StalenessPolicy {
    fn default() -> Self {
        StalenessPolicy {
            fresh_hours: 1.0,
            stale_hours: 4.0,
            max_hours: 168.0,
            fallback_hours: 168.0,
        }
    }
}

/// Velocity: additive term `1 - e^(-v / (max_velocity / 3))` (Elo/day), multiplier from Elo/hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VelocityPolicy {
    /// Elo/day at which the additive term is all but saturated: its scale is exactly `max_velocity / 3`.
    pub max_velocity: f64,
    /// Multiplier when Elo/hour is negative (regressing configs get more games).
    pub regressing_multiplier: f64,
    /// Multiplier when Elo/hour is exactly zero (plateau).
    pub flat_multiplier: f64,
    /// Base of the positive-velocity multiplier.
    pub positive_base: f64,
    /// Saturating part: `+ this * (1 - e^(-v / positive_hour_scale))`.
    pub positive_saturating: f64,
    /// Elo/hour scale of the saturating part.
    pub positive_hour_scale: f64,
    /// Linear part: `+ this * min(v / positive_linear_full, 1)`.
    pub positive_linear: f64,
    /// Elo/hour at which the linear part is full.
    pub positive_linear_full: f64,
    /// Shortest Elo history (hours) for an Elo/hour figure to count.
    pub min_history_hours: f64,
}

impl Default for VelocityPolicy {
    fn default() -> Self {
        VelocityPolicy {
            max_velocity: 100.0,
            regressing_multiplier: 1.3,
            flat_multiplier: 0.85,
            positive_base: 0.6,
            positive_saturating: 0.4,
            positive_hour_scale: 2.0,
            positive_linear: 0.2,
            positive_linear_full: 10.0,
            min_history_hours: 0.5,
        }
    }
}

/// Quality term: `(quality - baseline) * w + penalty`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityPolicy {
    /// Quality assumed when unknown, and the zero point of the term.
    pub baseline: f64,
    /// QUALITY_DEGRADED penalty: `-this * (threshold - q) / threshold`.
    pub degraded_penalty_scale: f64,
}

impl Default for QualityPolicy {
    fn default() -> Self {
        QualityPolicy {
            baseline: 0.7,
            degraded_penalty_scale: 0.2,
        }
    }
}

/// Data deficit factor `max(0, 1 - games / target)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataDeficitPolicy {
    /// Target games for small boards.
    pub target_games: u64,
    /// Target games for large boards.
    pub large_board_target_games: u64,
}

impl Default for DataDeficitPolicy {
    fn default() -> Self {
        DataDeficitPolicy {
            target_games: 100_000,
            large_board_target_games: 150_000,
        }
    }
}

/// Value of information: shares of uncertainty, Elo gap and information gain, each normalised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiPolicy {
    /// Uncertainty (Elo) at which the uncertainty part is full.
    pub max_uncertainty: f64,
    /// Elo gap at which the gap part is full.
    pub max_gap: f64,
    /// Information gain per game at which that part is full.
    pub max_info_gain: f64,
    /// Share of the uncertainty part.
    pub uncertainty_share: f64,
    /// Share of the Elo gap part.
    pub gap_share: f64,
    /// Share of the information gain part.
    pub info_share: f64,
}

impl Default for VoiPolicy {
    fn default() -> Self {
        VoiPolicy {
            max_uncertainty: 300.0,
            max_gap: 500.0,
            max_info_gain: 10.0,
            uncertainty_share: 0.4,
            gap_share: 0.3,
            info_share: 0.3,
        }
    }
}

/// Elo defaults, uncertainty and the Elo-gap multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EloPolicy {
    /// Elo assumed when none was reported.
    pub fallback_elo: f64,
    /// Elo the configs aim for (gap = max(0, target - elo)).
    pub target_elo: f64,
    /// Uncertainty at 0 games and numerator of `unc / sqrt(games)`.
    pub uncertainty_scale: f64,
    /// Lowest uncertainty.
    pub uncertainty_floor: f64,
    /// Elo-gap multiplier once the config reached `target_elo`.
    pub mature_factor: f64,
    /// Highest Elo-gap multiplier.
    pub max_gap_factor: f64,
    /// Elo gap that adds 1.0 to the multiplier (`1 + gap / this`).
    pub gap_scale: f64,
}

impl Default for EloPolicy {
    fn default() -> Self {
        EloPolicy {
            fallback_elo: 1500.0,
            target_elo: 2000.0,
            uncertainty_scale: 300.0,
            uncertainty_floor: 30.0,
            mature_factor: 0.3,
            max_gap_factor: 3.0,
            gap_scale: 500.0,
        }
    }
}

/// A tier keyed by "fewer than `below_games` games".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GamesTier {
    /// The tier applies below this many games.
    pub below_games: u64,
    /// The multiplier (or boost) of the tier.
    pub multiplier: f64,
}

/// Cluster-wide game count boost `cb`; the term is `(cb - 1) * w`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterBoostPolicy {
    /// Tiers checked in order; the first whose `below_games` exceeds the count wins.
    pub tiers: Vec<GamesTier>,
    /// Boost when no tier matches.
    pub otherwise: f64,
}

impl Default for ClusterBoostPolicy {
    fn default() -> Self {
        ClusterBoostPolicy {
            tiers: vec![
                GamesTier {
                    below_games: 1_000,
                    multiplier: 2.0,
                },
                GamesTier {
                    below_games: 5_000,
                    multiplier: 1.5,
                },
                GamesTier {
                    below_games: 10_000,
                    multiplier: 1.2,
                },
            ],
            otherwise: 1.0,
        }
    }
}

/// Priority override tiers (-1 most urgent .. 3 normal).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverrideTierPolicy {
    /// Multiplier of tier -1.
    pub tier_minus1: f64,
    /// Multiplier of tier 0 (critical).
    pub tier0: f64,
    /// Multiplier of tier 1 (high).
    pub tier1: f64,
    /// Multiplier of tier 2 (medium).
    pub tier2: f64,
    /// Multiplier of tier 3 (normal).
    pub tier3: f64,
    /// Static tier of each canonical config by player count.
    pub static_tiers: PerPlayers<i8>,
    /// Dynamic tier (non-canonical keys): -1 below this many games.
    pub dynamic_urgent_below_games: u64,
    /// Dynamic tier: 0 below this many games.
    pub dynamic_critical_below_games: u64,
    /// Dynamic tier: 0 below this Elo.
    pub dynamic_critical_below_elo: f64,
    /// Dynamic tier: 1 below this Elo, else 2 (3 at the target Elo).
    pub dynamic_high_below_elo: f64,
}

impl Default for OverrideTierPolicy {
    fn default() -> Self {
        OverrideTierPolicy {
            tier_minus1: 4.0,
            tier0: 3.0,
            tier1: 2.0,
            tier2: 1.25,
            tier3: 1.0,
            static_tiers: PerPlayers {
                two: 0,
                three: 2,
                four: 3,
            },
            dynamic_urgent_below_games: 100,
            dynamic_critical_below_games: 500,
            dynamic_critical_below_elo: 1700.0,
            dynamic_high_below_elo: 1800.0,
        }
    }
}

impl OverrideTierPolicy {
    /// Multiplier of `tier` (tiers outside -1..=3 count as 3).
    pub fn multiplier(&self, tier: i8) -> f64 {
        match tier {
            i8::MIN..=-1 => self.tier_minus1,
            0 => self.tier0,
            1 => self.tier1,
            2 => self.tier2,
            _ => self.tier3,
        }
    }
}

/// Player-count multipliers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlayerMultiplierPolicy {
    /// Multiplier for configs at override tier 0 (replaces the per-player one).
    pub tier0_multiplier: f64,
    /// Multiplier by player count otherwise.
    pub by_players: PerPlayers<f64>,
}

impl Default for PlayerMultiplierPolicy {
    fn default() -> Self {
        PlayerMultiplierPolicy {
            tier0_multiplier: 4.0,
            by_players: PerPlayers {
                two: 1.0,
                three: 1.2,
                four: 1.2,
            },
        }
    }
}

/// Data starvation tiers: a config below a tier's game count gets its multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StarvationPolicy {
    /// ULTRA tier.
    pub ultra: GamesTier,
    /// EMERGENCY tier.
    pub emergency: GamesTier,
    /// CRITICAL tier.
    pub critical: GamesTier,
    /// WARNING tier.
    pub warning: GamesTier,
}

impl Default for StarvationPolicy {
    fn default() -> Self {
        StarvationPolicy {
            ultra: GamesTier {
                below_games: 500,
                multiplier: 500.0,
            },
            emergency: GamesTier {
                below_games: 1_500,
                multiplier: 100.0,
            },
            critical: GamesTier {
                below_games: 3_000,
                multiplier: 30.0,
            },
            warning: GamesTier {
                below_games: 5_000,
                multiplier: 3.0,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dynamic weights
// ---------------------------------------------------------------------------------------------

/// Bounds every dynamic weight is clamped to (`cluster` is unclamped).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightBounds {
    /// Bounds of the staleness weight.
    pub staleness: Bounds,
    /// Bounds of the velocity weight.
    pub velocity: Bounds,
    /// Bounds of the training weight.
    pub training: Bounds,
    /// Bounds of the exploration weight.
    pub exploration: Bounds,
    /// Bounds of the curriculum weight.
    pub curriculum: Bounds,
    /// Bounds of the improvement weight.
    pub improvement: Bounds,
    /// Bounds of the data deficit weight.
    pub data_deficit: Bounds,
    /// Bounds of the quality weight.
    pub quality: Bounds,
    /// Bounds of the VOI weight.
    pub voi: Bounds,
    /// Bounds of the diversity weight.
    pub diversity: Bounds,
}

impl Default for WeightBounds {
    fn default() -> Self {
        WeightBounds {
            staleness: Bounds::new(0.15, 0.50),
            velocity: Bounds::new(0.10, 0.30),
            training: Bounds::new(0.05, 0.20),
            exploration: Bounds::new(0.05, 0.20),
            curriculum: Bounds::new(0.05, 0.50),
            improvement: Bounds::new(0.10, 0.25),
            data_deficit: Bounds::new(0.15, 0.40),
            quality: Bounds::new(0.05, 0.25),
            voi: Bounds::new(0.10, 0.35),
            diversity: Bounds::new(0.05, 0.20),
        }
    }
}

/// How the weights follow cluster state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamicWeightPolicy {
    /// How often the scheduler recomputes the weights from the cluster state (`coordinator plan` uses the static
    /// `priority.weights` unless its state has `dynamic_weights`).
    #[serde(with = "humantime_serde")]
    pub interval: std::time::Duration,
    /// Clamp bounds.
    pub bounds: WeightBounds,
    /// Idle-GPU fraction above which GPUs count as very idle.
    pub idle_high: f64,
    /// Idle-GPU fraction below which GPUs count as busy.
    pub idle_low: f64,
    /// Staleness weight factor when very idle.
    pub idle_high_staleness: f64,
    /// Data deficit weight factor when very idle.
    pub idle_high_data_deficit: f64,
    /// Diversity weight factor when very idle.
    pub idle_high_diversity: f64,
    /// Staleness weight factor when busy.
    pub idle_low_staleness: f64,
    /// Training queue depth above which generation slows.
    pub training_queue_high: u32,
    /// Staleness weight factor when the training queue is deep.
    pub training_queue_staleness: f64,
    /// Share of configs at the target Elo above which velocity matters less.
    pub at_target_share_high: f64,
    /// Velocity weight factor then.
    pub at_target_velocity: f64,
    /// Average Elo above which the curriculum weight gets `elo_high_curriculum`.
    pub elo_high: f64,
    /// Curriculum factor above `elo_high`.
    pub elo_high_curriculum: f64,
    /// Average Elo above which the curriculum weight gets `elo_medium_curriculum`.
    pub elo_medium: f64,
    /// Curriculum factor above `elo_medium`.
    pub elo_medium_curriculum: f64,
}

impl Default for DynamicWeightPolicy {
    fn default() -> Self {
        DynamicWeightPolicy {
            interval: std::time::Duration::from_secs(60),
            bounds: WeightBounds::default(),
            idle_high: 0.5,
            idle_low: 0.1,
            idle_high_staleness: 1.5,
            idle_high_data_deficit: 1.4,
            idle_high_diversity: 1.3,
            idle_low_staleness: 0.7,
            training_queue_high: 10,
            training_queue_staleness: 0.6,
            at_target_share_high: 0.7,
            at_target_velocity: 0.6,
            elo_high: 1800.0,
            elo_high_curriculum: 1.8,
            elo_medium: 1500.0,
            elo_medium_curriculum: 1.3,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Budget and targets
// ---------------------------------------------------------------------------------------------

/// A budget for configs at or above an Elo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EloBudget {
    /// Applies at or above this Elo.
    pub min_elo: f64,
    /// Search budget.
    pub budget: u32,
}

/// A budget for configs with fewer games than a count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GamesBudget {
    /// Applies below this many games.
    pub below_games: u64,
    /// Search budget.
    pub budget: u32,
}

/// Intensity multipliers of the search budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntensityMultipliers {
    /// `intensive`.
    pub intensive: f64,
    /// `hot_path`.
    pub hot_path: f64,
    /// `high`.
    pub high: f64,
    /// `accelerated`.
    pub accelerated: f64,
    /// `normal`.
    pub normal: f64,
    /// `reduced`.
    pub reduced: f64,
    /// `paused`.
    pub paused: f64,
    /// Any other intensity name reported by a signal.
    pub unknown: f64,
}

impl Default for IntensityMultipliers {
    fn default() -> Self {
        IntensityMultipliers {
            intensive: 1.75,
            hot_path: 1.5,
            high: 1.5,
            accelerated: 1.25,
            normal: 1.0,
            reduced: 0.75,
            paused: 0.5,
            unknown: 1.0,
        }
    }
}

/// MCTS search budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetPolicy {
    /// Budget by Elo, checked top-down (first `min_elo` reached wins).
    pub by_elo: Vec<EloBudget>,
    /// Budget below every `by_elo` row.
    pub below_elo_table: u32,
    /// The games table applies only below this Elo.
    pub games_table_below_elo: f64,
    /// Budget by game count, checked in order (first `below_games` exceeding the count wins).
    pub by_games: Vec<GamesBudget>,
    /// Intensity multipliers (applied, truncated, then clamped).
    pub intensity: IntensityMultipliers,
    /// Lowest budget after the intensity multiplier.
    pub min_budget: u32,
    /// Highest budget after the intensity multiplier.
    pub max_budget: u32,
    /// Large-board cap below `large_board_cap_below_games` games.
    pub large_board_cap_early: u32,
    /// Games below which the early large-board cap applies.
    pub large_board_cap_below_games: u64,
    /// Large-board cap otherwise.
    pub large_board_cap: u32,
    /// Player factor of the large-board cap.
    pub large_board_player_factor: PerPlayers<f64>,
    /// Lowest large-board cap.
    pub large_board_cap_floor: u32,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy {
            by_elo: vec![
                EloBudget {
                    min_elo: 1800.0,
                    budget: 3200,
                },
                EloBudget {
                    min_elo: 1600.0,
                    budget: 1600,
                },
                EloBudget {
                    min_elo: 1400.0,
                    budget: 800,
                },
            ],
            below_elo_table: 800,
            games_table_below_elo: 1600.0,
            by_games: vec![
                GamesBudget {
                    below_games: 100,
                    budget: 64,
                },
                GamesBudget {
                    below_games: 500,
                    budget: 150,
                },
                GamesBudget {
                    below_games: 1000,
                    budget: 300,
                },
            ],
            intensity: IntensityMultipliers::default(),
            min_budget: 32,
            max_budget: 4800,
            large_board_cap_early: 400,
            large_board_cap_below_games: 500,
            large_board_cap: 800,
            large_board_player_factor: PerPlayers {
                two: 1.0,
                three: 0.8,
                four: 0.8,
            },
            large_board_cap_floor: 16,
        }
    }
}

/// Target games, samples per game and games needed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetGamesPolicy {
    /// Elo the target-games formula aims for.
    pub target_elo: f64,
    /// Games per Elo point of gap.
    pub games_per_elo: f64,
    /// Board multiplier.
    pub board_multiplier: PerBoard<f64>,
    /// Player multiplier.
    pub player_multiplier: PerPlayers<f64>,
    /// Highest target.
    pub max_target_games: u64,
    /// Training samples produced per game.
    pub samples_per_game: PerBoard<PerPlayers<f64>>,
    /// Training samples wanted per config.
    pub target_samples: u64,
}

impl Default for TargetGamesPolicy {
    fn default() -> Self {
        TargetGamesPolicy {
            target_elo: 1900.0,
            games_per_elo: 500.0,
            board_multiplier: PerBoard {
                hex8: 1.0,
                square8: 1.2,
                square19: 2.0,
                hexagonal: 2.5,
            },
            player_multiplier: PerPlayers {
                two: 1.0,
                three: 1.5,
                four: 2.5,
            },
            max_target_games: 500_000,
            samples_per_game: PerBoard {
                hex8: PerPlayers {
                    two: 35.0,
                    three: 40.0,
                    four: 45.0,
                },
                square8: PerPlayers {
                    two: 40.0,
                    three: 50.0,
                    four: 55.0,
                },
                square19: PerPlayers {
                    two: 150.0,
                    three: 180.0,
                    four: 200.0,
                },
                hexagonal: PerPlayers {
                    two: 250.0,
                    three: 300.0,
                    four: 350.0,
                },
            },
            target_samples: 50_000,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Allocation
// ---------------------------------------------------------------------------------------------

/// Whether a node's games cap is shared by all configs of one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NodeCapScope {
    /// The node's cap covers the whole plan (the fix; default).
    #[default]
    PerPlan,
    /// The cap applies to each config separately (the original's behaviour, kept for comparison).
    PerConfig,
}

/// A starvation floor: configs below `below_games` get at least `multiple` x games per config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloorTier {
    /// Applies below this many games (a config with 0 games is below 1).
    pub below_games: u64,
    /// Minimum allocation as a multiple of games per config.
    pub multiple: f64,
}

/// Allocation of games across nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllocationPolicy {
    /// Base games per config per plan.
    pub games_per_config: u64,
    /// Smallest allocation to a node (smaller shares are dropped).
    pub min_games_per_allocation: u64,
    /// Games of a config = gpc x max(`min_score_factor`, `score_offset` + score).
    pub score_offset: f64,
    /// Lowest score factor.
    pub min_score_factor: f64,
    /// Nodes with available capacity at or below this get no work.
    pub min_node_capacity: f64,
    /// Ephemeral nodes (spot, vast, runpod) get small-board shares times this.
    pub ephemeral_small_board_factor: f64,
    /// Ephemeral nodes get large-board shares times this.
    pub ephemeral_large_board_factor: f64,
    /// Node name fragments that mark a node ephemeral.
    pub ephemeral_markers: Vec<String>,
    /// Large boards only go to nodes with unknown VRAM or at least this many GB.
    pub large_board_min_vram_gb: f64,
    /// Starvation floors, checked in order.
    pub starvation_floor: Vec<FloorTier>,
    /// 4p configs get at least this x gpc (taken from 2p donors).
    pub min_4p_multiple: f64,
    /// 3p configs get at least this x gpc (taken from 2p donors).
    pub min_3p_multiple: f64,
    /// 2p donors keep at least this x gpc.
    pub donor_keep_multiple: f64,
    /// Default node capacity scope.
    pub node_cap_scope: NodeCapScope,
}

impl Default for AllocationPolicy {
    fn default() -> Self {
        AllocationPolicy {
            games_per_config: 500,
            min_games_per_allocation: 100,
            score_offset: 0.5,
            min_score_factor: 0.1,
            min_node_capacity: 0.1,
            ephemeral_small_board_factor: 1.5,
            ephemeral_large_board_factor: 0.5,
            ephemeral_markers: ["vast-", "runpod-", "spot-", "ephemeral-"]
                .map(String::from)
                .to_vec(),
            large_board_min_vram_gb: 48.0,
            starvation_floor: vec![
                FloorTier {
                    below_games: 1,
                    multiple: 5.0,
                },
                FloorTier {
                    below_games: 500,
                    multiple: 3.0,
                },
                FloorTier {
                    below_games: 1_500,
                    multiple: 2.0,
                },
                FloorTier {
                    below_games: 3_000,
                    multiple: 1.5,
                },
            ],
            min_4p_multiple: 1.5,
            min_3p_multiple: 1.2,
            donor_keep_multiple: 0.7,
            node_cap_scope: NodeCapScope::PerPlan,
        }
    }
}

/// One GPU model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Name as reported (matched case-insensitively, ignoring `-`, `_`, spaces).
    pub name: String,
    /// Capacity weight; `None` takes the unknown row's.
    pub weight: Option<f64>,
    /// Games per plan (about an hour of play); `None` takes the unknown row's.
    pub games_cap: Option<u64>,
    /// Price in dollars per hour.
    pub cost_per_hour: f64,
}

/// The resolved numbers of a GPU model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuProfile {
    /// Capacity weight.
    pub weight: f64,
    /// Games per plan.
    pub games_cap: u64,
    /// Dollars per hour.
    pub cost_per_hour: f64,
}

/// The GPU table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuTable {
    /// Known GPU models.
    pub models: Vec<GpuSpec>,
    /// Weight of unknown models (and of models without one).
    pub unknown_weight: f64,
    /// Games cap of unknown models (and of models without one).
    pub unknown_games_cap: u64,
    /// Price of unknown models.
    pub unknown_cost_per_hour: f64,
}

impl Default for GpuTable {
    fn default() -> Self {
        let row = |name: &str, weight: Option<f64>, cap: Option<u64>, cost: f64| GpuSpec {
            name: name.to_string(),
            weight,
            games_cap: cap,
            cost_per_hour: cost,
        };
        GpuTable {
            models: vec![
                row("GH200", Some(2.4), Some(2000), 0.70),
                row("H200", Some(2.0), Some(1500), 3.50),
                row("H100", Some(2.0), Some(1500), 2.50),
                row("A100_80", Some(2.0), Some(1200), 1.80),
                row("A100", Some(1.0), Some(800), 1.10),
                row("A10", Some(0.6), Some(400), 0.60),
                row("RTX_4090", Some(0.6), Some(400), 0.45),
                row("RTX_3090", Some(0.6), Some(300), 0.30),
                row("CPU", Some(0.1), Some(50), 0.05),
                row("L40S", None, None, 1.20),
                row("RTX_5090", None, None, 0.80),
            ],
            unknown_weight: 1.0,
            unknown_games_cap: 500,
            unknown_cost_per_hour: 0.50,
        }
    }
}

fn gpu_key(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words of a GPU name, upper-cased: `NVIDIA A100-SXM4-80GB` → `NVIDIA`, `A100`, `SXM4`, `80GB`.
fn gpu_words(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect()
}

/// True for a configured `gpu` that names no model: empty or `unknown` (then the measured one is used).
pub fn gpu_unspecified(configured: &str) -> bool {
    matches!(gpu_key(configured).as_str(), "" | "unknown")
}

/// Where a node's GPU model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuModelSource {
    /// `cluster.nodes[].gpu` names it (an explicit name wins over the measured one).
    Configured,
    /// `nvidia-smi` reported it and the config says `unknown` (or nothing).
    Measured,
    /// Neither: the `unknown` row.
    Unknown,
}

/// The GPU model a node is planned and capped as (see [`GpuTable::choose`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuChoice {
    /// A row name of the table (`GH200`), or the name as given when no row matches it.
    pub model: String,
    pub source: GpuModelSource,
    /// Set when the configured model and the measured one differ: the warning to log, naming both.
    pub mismatch: Option<String>,
}

impl GpuTable {
    /// The table row a GPU name stands for, whether written as in the table (`RTX_4090`, `rtx 4090`) or as
    /// `nvidia-smi` reports it (`NVIDIA GeForce RTX 4090`, `NVIDIA GH200 480GB`, `NVIDIA A100-SXM4-80GB`).
    /// First the name itself (case, `-`, `_` and spaces ignored); then the row all of whose words are words of the
    /// name (a number word also matches itself followed by `GB`: `A100_80` matches `A100 80GB PCIe`), the row
    /// with the most words winning (`A100_80` over `A100`). `None` when no row fits (the unknown row applies).
    pub fn model_of(&self, name: &str) -> Option<&GpuSpec> {
        let key = gpu_key(name);
        if let Some(row) = self.models.iter().find(|m| gpu_key(&m.name) == key) {
            return Some(row);
        }
        let words = gpu_words(name);
        let has = |want: &str| {
            words.iter().any(|w| {
                w == want
                    || (want.bytes().all(|b| b.is_ascii_digit())
                        && w.strip_suffix("GB") == Some(want))
            })
        };
        self.models
            .iter()
            .filter_map(|m| {
                let want = gpu_words(&m.name);
                (!want.is_empty() && want.iter().all(|w| has(w))).then_some((want.len(), m))
            })
            .fold(None, |best: Option<(usize, &GpuSpec)>, (n, m)| match best {
                Some((b, _)) if b >= n => best,
                _ => Some((n, m)),
            })
            .map(|(_, m)| m)
    }

    /// The model of a node whose config says `configured` and whose `nvidia-smi` reports `measured` (the first
    /// GPU's name, `None` when nothing was measured). An explicit configured name wins; `unknown` (or empty) takes
    /// the measured one, mapped to its table row by [`Self::model_of`] (kept as reported when no row fits, so the
    /// hardware class can still read it). A configured name whose row differs from the measured one's is kept,
    /// with a warning naming both.
    pub fn choose(&self, configured: &str, measured: Option<&str>) -> GpuChoice {
        let row_name = |name: &str| {
            self.model_of(name)
                .map_or_else(|| name.trim().to_string(), |m| m.name.clone())
        };
        let measured = measured.map(str::trim).filter(|m| !m.is_empty());
        if gpu_unspecified(configured) {
            return match measured {
                Some(m) => GpuChoice {
                    model: row_name(m),
                    source: GpuModelSource::Measured,
                    mismatch: None,
                },
                None => GpuChoice {
                    model: "unknown".to_string(),
                    source: GpuModelSource::Unknown,
                    mismatch: None,
                },
            };
        }
        let model = row_name(configured);
        let mismatch = measured
            .map(|m| (m, row_name(m)))
            .filter(|(_, row)| gpu_key(row) != gpu_key(&model))
            .map(|(m, row)| {
                format!(
                    "cluster.nodes[].gpu is {configured} but nvidia-smi reports {m} ({row}); planning and capping the \
                     node as {model} (set gpu: unknown to use the measured model)"
                )
            });
        GpuChoice {
            model,
            source: GpuModelSource::Configured,
            mismatch,
        }
    }

    /// The profile of `gpu`, a table name or a reported one (the unknown row for names no row fits).
    pub fn profile(&self, gpu: &str) -> GpuProfile {
        let row = self.model_of(gpu);
        GpuProfile {
            weight: row.and_then(|r| r.weight).unwrap_or(self.unknown_weight),
            games_cap: row
                .and_then(|r| r.games_cap)
                .unwrap_or(self.unknown_games_cap),
            cost_per_hour: row.map_or(self.unknown_cost_per_hour, |r| r.cost_per_hour),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Target jobs
// ---------------------------------------------------------------------------------------------

/// Hardware limit of one GPU class: `min(cpu * cpu_fraction, per_gpu * gpus, cap)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareLimit {
    /// Jobs per CPU core.
    pub cpu_fraction: f64,
    /// Jobs per GPU, if limited.
    pub per_gpu: Option<u32>,
    /// Absolute cap, if any.
    pub cap: Option<u32>,
    /// Limit when the CPU count is unknown.
    pub fallback: u32,
}

/// Per-node target of concurrent selfplay jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetJobsPolicy {
    /// Nodes with 0 < memory below this (GB) run nothing.
    pub min_memory_gb: f64,
    /// GH200.
    pub gh200: HardwareLimit,
    /// H100 and H200.
    pub h100: HardwareLimit,
    /// A100 and L40/L40S.
    pub a100: HardwareLimit,
    /// RTX 5090.
    pub rtx5090: HardwareLimit,
    /// A10, RTX 4090, RTX 3090.
    pub consumer: HardwareLimit,
    /// RTX 4060, RTX 3060, A40.
    pub small: HardwareLimit,
    /// Unknown GPUs: `max(unknown_min, min(cpu * unknown_cpu_fraction, unknown_cap))`.
    pub unknown_cpu_fraction: f64,
    /// Cap of unknown GPUs.
    pub unknown_cap: u32,
    /// Floor of unknown GPUs.
    pub unknown_min: u32,
    /// CPU-only big hosts (>= `cpu_big_cores` cores and >= `cpu_big_memory_gb`).
    pub cpu_big: HardwareLimit,
    /// Cores of a big CPU-only host.
    pub cpu_big_cores: u32,
    /// Memory (GB) of a big CPU-only host.
    pub cpu_big_memory_gb: f64,
    /// CPU-only medium hosts (>= `cpu_medium_cores`).
    pub cpu_medium: HardwareLimit,
    /// Cores of a medium CPU-only host.
    pub cpu_medium_cores: u32,
    /// Small CPU-only hosts: `max(cpu_small_min, min(cores / cpu_small_divisor, cpu_small_cap))`.
    pub cpu_small_divisor: u32,
    /// Cap of small CPU-only hosts.
    pub cpu_small_cap: u32,
    /// Floor of small CPU-only hosts.
    pub cpu_small_min: u32,
    /// GPU utilisation (%) above which the target drops by `gpu_busy_step`.
    pub gpu_busy_pct: f64,
    /// Step down when the GPU is busy.
    pub gpu_busy_step: u32,
    /// CPU utilisation (%) above which the target drops by `cpu_busy_step`.
    pub cpu_busy_pct: f64,
    /// Step down when the CPU is busy.
    pub cpu_busy_step: u32,
    /// Floor after the busy steps.
    pub busy_floor: u32,
    /// Headroom: GPU below this %.
    pub headroom_gpu_pct: f64,
    /// Headroom: GPU memory below this %.
    pub headroom_gpu_mem_pct: f64,
    /// Headroom: CPU below this %.
    pub headroom_cpu_pct: f64,
    /// With headroom, at most current jobs + this.
    pub headroom_ramp: u32,
    /// Disk use (%) at which the target is capped at `disk_warning_cap`.
    pub disk_warning_pct: f64,
    /// Cap under disk pressure.
    pub disk_warning_cap: u32,
    /// Memory use (%) at which the target is capped at `memory_warning_cap`.
    pub memory_warning_pct: f64,
    /// Cap under memory pressure.
    pub memory_warning_cap: u32,
    /// Lowest target when work is allowed at all.
    pub min_jobs: u32,
    /// Distinct configs per node by VRAM: (min GB, configs), checked top-down; else 1.
    pub distinct_configs_by_vram: Vec<(f64, u32)>,
}

impl Default for TargetJobsPolicy {
    fn default() -> Self {
        let limit = |cpu_fraction, per_gpu, cap, fallback| HardwareLimit {
            cpu_fraction,
            per_gpu,
            cap,
            fallback,
        };
        TargetJobsPolicy {
            min_memory_gb: 8.0,
            gh200: limit(0.8, None, None, 48),
            h100: limit(0.5, None, Some(48), 32),
            a100: limit(0.4, None, Some(32), 24),
            rtx5090: limit(0.3, Some(12), Some(64), 48),
            consumer: limit(0.3, Some(8), Some(32), 16),
            small: limit(0.25, Some(6), Some(16), 8),
            unknown_cpu_fraction: 0.2,
            unknown_cap: 8,
            unknown_min: 4,
            cpu_big: limit(0.5, None, Some(16), 16),
            cpu_big_cores: 32,
            cpu_big_memory_gb: 64.0,
            cpu_medium: limit(0.4, None, Some(8), 8),
            cpu_medium_cores: 16,
            cpu_small_divisor: 4,
            cpu_small_cap: 4,
            cpu_small_min: 2,
            gpu_busy_pct: 85.0,
            gpu_busy_step: 2,
            cpu_busy_pct: 80.0,
            cpu_busy_step: 1,
            busy_floor: 2,
            headroom_gpu_pct: 60.0,
            headroom_gpu_mem_pct: 75.0,
            headroom_cpu_pct: 60.0,
            headroom_ramp: 2,
            disk_warning_pct: 90.0,
            disk_warning_cap: 4,
            memory_warning_pct: 95.0,
            memory_warning_cap: 2,
            min_jobs: 1,
            distinct_configs_by_vram: vec![(96.0, 3), (80.0, 2), (48.0, 2)],
        }
    }
}

impl SchedulerPolicyConfig {
    /// Problems as (path under `policy`, what is wrong and expected): every priority weight and every weight bound
    /// must be a number of 0 or more (a negative weight would turn a reason to play a config into a reason not
    /// to), and each bound's `min` must not exceed its `max`. Read from the serialized form, so a weight added
    /// later is checked too.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let weights = serde_json::to_value(self.priority.weights).unwrap_or_default();
        for (name, value) in weights.as_object().into_iter().flatten() {
            if !value.as_f64().is_some_and(|w| w >= 0.0 && w.is_finite()) {
                out.push((
                    format!("priority.weights.{name}"),
                    format!("{value} is not a weight (expected a number of 0 or more, e.g. 0.1)"),
                ));
            }
        }
        let bounds = serde_json::to_value(self.dynamic_weights.bounds).unwrap_or_default();
        for (name, bound) in bounds.as_object().into_iter().flatten() {
            let min = bound.get("min").and_then(|v| v.as_f64()).unwrap_or(0.0);
            let max = bound.get("max").and_then(|v| v.as_f64()).unwrap_or(0.0);
            if min < 0.0 {
                out.push((
                    format!("dynamic_weights.bounds.{name}.min"),
                    format!("{min} is negative (expected a weight of 0 or more)"),
                ));
            }
            if min > max {
                out.push((
                    format!("dynamic_weights.bounds.{name}.min"),
                    format!("{min} exceeds max {max}"),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_has_no_problems() {
        assert_eq!(SchedulerPolicyConfig::default().problems(), vec![]);
    }

    #[test]
    fn negative_weights_and_inverted_bounds_are_named() {
        let mut policy = SchedulerPolicyConfig::default();
        policy.priority.weights.staleness = -0.5;
        policy.priority.weights.cluster = -1.0;
        policy.dynamic_weights.bounds.voi = Bounds::new(0.5, 0.1);
        policy.dynamic_weights.bounds.quality = Bounds::new(-0.1, 0.1);
        let paths: Vec<String> = policy
            .problems()
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(
            paths,
            [
                "priority.weights.cluster",
                "priority.weights.staleness",
                "dynamic_weights.bounds.quality.min",
                "dynamic_weights.bounds.voi.min",
            ]
        );
    }

    #[test]
    fn defaults_round_trip_through_json() {
        let policy = SchedulerPolicyConfig::default();
        let text = serde_json::to_string(&policy).unwrap();
        let back: SchedulerPolicyConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, policy);
        let empty: SchedulerPolicyConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, policy);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_str::<SchedulerPolicyConfig>(r#"{"allocation":{"gpc":1}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn a_configured_gpu_wins_and_a_mismatch_names_both() {
        let table = GpuTable::default();
        let gh200 = Some("NVIDIA GH200 480GB");
        for unspecified in ["unknown", "", "Unknown"] {
            let c = table.choose(unspecified, gh200);
            assert_eq!(
                (c.model.as_str(), c.source),
                ("GH200", GpuModelSource::Measured)
            );
            assert_eq!(c.mismatch, None);
        }
        let c = table.choose("unknown", None);
        assert_eq!(
            (c.model.as_str(), c.source),
            ("unknown", GpuModelSource::Unknown)
        );
        // Not in the table: kept as reported (the hardware class still reads it).
        let c = table.choose("unknown", Some("NVIDIA A40"));
        assert_eq!(c.model, "NVIDIA A40");
        // Explicit and agreeing: no warning.
        let c = table.choose("H100", Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(
            (c.model.as_str(), c.source),
            ("H100", GpuModelSource::Configured)
        );
        assert_eq!(c.mismatch, None);
        // Explicit and different: the configured one wins, the warning names both.
        let c = table.choose("h100", gh200);
        assert_eq!(
            (c.model.as_str(), c.source),
            ("H100", GpuModelSource::Configured)
        );
        let warning = c.mismatch.unwrap();
        assert!(
            warning.contains("h100")
                && warning.contains("NVIDIA GH200 480GB")
                && warning.contains("(GH200)"),
            "{warning}"
        );
        // Nothing measured (nvidia-smi absent): the configured name, no warning.
        assert_eq!(table.choose("A10", None).mismatch, None);
    }

    #[test]
    fn gpu_table_matches_the_domain_rows() {
        let table = GpuTable::default();
        let rows = [
            ("GH200", 2.4, 2000, 0.70),
            ("H200", 2.0, 1500, 3.50),
            ("H100", 2.0, 1500, 2.50),
            ("A100_80", 2.0, 1200, 1.80),
            ("A100", 1.0, 800, 1.10),
            ("A10", 0.6, 400, 0.60),
            ("RTX_4090", 0.6, 400, 0.45),
            ("rtx 3090", 0.6, 300, 0.30),
            ("CPU", 0.1, 50, 0.05),
            ("L40S", 1.0, 500, 1.20),
            ("RTX-5090", 1.0, 500, 0.80),
            ("TPUv9", 1.0, 500, 0.50),
        ];
        for (name, weight, cap, cost) in rows {
            let p = table.profile(name);
            assert_eq!(
                (p.weight, p.games_cap, p.cost_per_hour),
                (weight, cap, cost),
                "{name}"
            );
        }
    }
}
