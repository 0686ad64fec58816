//! The priority score of one config: which board/player config should get self-play games next.
//!
//! Score = (sum of weighted additive terms) x exploration boost x momentum x velocity multiplier
//! x Elo-gap factor x override-tier multiplier x player multiplier x cascade x starvation
//! multiplier (`shared/domain/scheduler.md`, "Priority formula"). Every function here is pure:
//! the signals come in a [`PrioritySignals`], the weights and shapes from the policy config.

use serde::Serialize;

use super::board::ConfigKey;
use super::config::{
    ClusterBoostPolicy, DataDeficitPolicy, EloPolicy, PriorityPolicy, PriorityWeights,
    StalenessPolicy, StarvationPolicy, VelocityPolicy, VoiPolicy,
};

/// Everything known about one config when its priority is computed.
#[derive(Debug, Clone, PartialEq)]
pub struct PrioritySignals {
    /// The config.
    pub config: ConfigKey,
    /// Hours since the config last got new games.
    pub staleness_hours: f64,
    /// Elo per day (feeds the additive velocity term).
    pub elo_velocity_per_day: f64,
    /// Elo per hour (sets the velocity multiplier).
    pub elo_velocity_per_hour: f64,
    /// Training is waiting for this config's data.
    pub training_pending: bool,
    /// Exploration boost (1.0 = none); also a multiplier.
    pub exploration_boost: f64,
    /// Curriculum weight after [`normalised_curriculum_weights`] (1.0 = neutral).
    pub curriculum_weight: f64,
    /// Improvement boost (its producers emit -0.10..+0.15; not clamped).
    pub improvement_boost: f64,
    /// Architecture boost (0.30 x the highest architecture weight; 0 = none).
    pub architecture_boost: f64,
    /// Data quality 0-1.
    pub quality: f64,
    /// Penalty added by QUALITY_DEGRADED (<= 0).
    pub quality_penalty: f64,
    /// Momentum multiplier (its producers emit 0.5..1.5; not clamped).
    pub momentum: f64,
    /// Games this node knows of.
    pub game_count: u64,
    /// Games across the cluster.
    pub cluster_game_count: u64,
    /// Current Elo.
    pub current_elo: f64,
    /// Elo uncertainty.
    pub elo_uncertainty: f64,
    /// Elo the config aims for.
    pub target_elo: f64,
    /// Opponent diversity 0-1.
    pub diversity: f64,
    /// Cascade training multiplier (1.0 = none).
    pub cascade: f64,
}

impl PrioritySignals {
    /// Signals of a config with `game_count` games and nothing else known: the policy's
    /// fallbacks (staleness, Elo), uncertainty derived from the game count, and neutral values
    /// for the rest (architecture 0, quality penalty 0, cascade 1.0, target Elo from the policy).
    pub fn with_defaults(config: ConfigKey, game_count: u64, policy: &PriorityPolicy) -> Self {
        PrioritySignals {
            config,
            staleness_hours: policy.staleness.fallback_hours,
            elo_velocity_per_day: 0.0,
            elo_velocity_per_hour: 0.0,
            training_pending: false,
            exploration_boost: 1.0,
            curriculum_weight: 1.0,
            improvement_boost: 0.0,
            architecture_boost: 0.0,
            quality: policy.quality.baseline,
            quality_penalty: 0.0,
            momentum: 1.0,
            game_count,
            cluster_game_count: 0,
            current_elo: policy.elo.fallback_elo,
            elo_uncertainty: elo_uncertainty(game_count, &policy.elo),
            target_elo: policy.elo.target_elo,
            diversity: 0.0,
            cascade: 1.0,
        }
    }
}

/// Data starvation tier of a config, by game count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StarvationTier {
    /// Fewest games: the largest multiplier.
    Ultra,
    /// Second tier.
    Emergency,
    /// Third tier.
    Critical,
    /// Mildest tier.
    Warning,
}

impl StarvationTier {
    /// `ULTRA`, `EMERGENCY`, `CRITICAL` or `WARNING`.
    pub fn name(self) -> &'static str {
        match self {
            StarvationTier::Ultra => "ULTRA",
            StarvationTier::Emergency => "EMERGENCY",
            StarvationTier::Critical => "CRITICAL",
            StarvationTier::Warning => "WARNING",
        }
    }
}

/// The tier for `game_count`, or `None` when the config is not starved.
pub fn starvation_tier(game_count: u64, policy: &StarvationPolicy) -> Option<StarvationTier> {
    [
        (policy.ultra, StarvationTier::Ultra),
        (policy.emergency, StarvationTier::Emergency),
        (policy.critical, StarvationTier::Critical),
        (policy.warning, StarvationTier::Warning),
    ]
    .into_iter()
    .find(|(tier, _)| game_count < tier.below_games)
    .map(|(_, tier)| tier)
}

/// Score multiplier of the starvation tier (1.0 when not starved).
pub fn starvation_multiplier(game_count: u64, policy: &StarvationPolicy) -> f64 {
    match starvation_tier(game_count, policy) {
        Some(StarvationTier::Ultra) => policy.ultra.multiplier,
        Some(StarvationTier::Emergency) => policy.emergency.multiplier,
        Some(StarvationTier::Critical) => policy.critical.multiplier,
        Some(StarvationTier::Warning) => policy.warning.multiplier,
        None => 1.0,
    }
}

/// Elo uncertainty from the game count: `max(floor, scale / sqrt(games))`, `scale` at 0 games.
pub fn elo_uncertainty(game_count: u64, policy: &EloPolicy) -> f64 {
    if game_count == 0 {
        return policy.uncertainty_scale;
    }
    (policy.uncertainty_scale / (game_count as f64).sqrt()).max(policy.uncertainty_floor)
}

/// Staleness factor 0-1.
pub fn staleness_factor(hours: f64, policy: &StalenessPolicy) -> f64 {
    if hours < policy.fresh_hours {
        return 0.0;
    }
    if hours > policy.max_hours {
        return 1.0;
    }
    let span = policy.stale_hours - policy.fresh_hours;
    if span <= 0.0 {
        return 1.0;
    }
    ((hours - policy.fresh_hours) / span).min(1.0)
}

/// Additive velocity factor `1 - e^(-v / s)` for Elo/day `v`, `s = max_velocity / 3` exactly (0 when `v <= 0`).
pub fn velocity_factor(elo_per_day: f64, policy: &VelocityPolicy) -> f64 {
    if elo_per_day <= 0.0 {
        return 0.0;
    }
    let scale = policy.max_velocity / 3.0;
    1.0 - (-elo_per_day / scale).exp()
}

/// Velocity multiplier from Elo/hour.
pub fn velocity_multiplier(elo_per_hour: f64, policy: &VelocityPolicy) -> f64 {
    if elo_per_hour < 0.0 {
        policy.regressing_multiplier
    } else if elo_per_hour == 0.0 {
        policy.flat_multiplier
    } else {
        policy.positive_base
            + policy.positive_saturating
                * (1.0 - (-elo_per_hour / policy.positive_hour_scale).exp())
            + policy.positive_linear * (elo_per_hour / policy.positive_linear_full).min(1.0)
    }
}

/// Data deficit factor `max(0, 1 - games / target)` against an explicit target.
pub fn data_deficit_factor(game_count: u64, target_games: u64) -> f64 {
    if target_games == 0 {
        return 0.0;
    }
    (1.0 - game_count as f64 / target_games as f64).max(0.0)
}

/// The deficit target of a board size.
pub fn data_deficit_target(is_large: bool, policy: &DataDeficitPolicy) -> u64 {
    if is_large {
        policy.large_board_target_games
    } else {
        policy.target_games
    }
}

/// Expected uncertainty reduction per game: `unc / sqrt(games)`, `unc` at 0 games.
pub fn info_gain_per_game(elo_uncertainty: f64, game_count: u64) -> f64 {
    if game_count == 0 {
        elo_uncertainty
    } else {
        elo_uncertainty / (game_count as f64).sqrt()
    }
}

/// Value-of-information score 0-1 from uncertainty, Elo gap and info gain per game.
pub fn voi_score(uncertainty: f64, elo_gap: f64, info_gain: f64, policy: &VoiPolicy) -> f64 {
    policy.uncertainty_share * (uncertainty / policy.max_uncertainty).min(1.0)
        + policy.gap_share * (elo_gap / policy.max_gap).min(1.0)
        + policy.info_share * (info_gain / policy.max_info_gain).min(1.0)
}

/// Cluster boost `cb` for the cluster-wide game count.
pub fn cluster_boost(cluster_game_count: u64, policy: &ClusterBoostPolicy) -> f64 {
    policy
        .tiers
        .iter()
        .find(|tier| cluster_game_count < tier.below_games)
        .map_or(policy.otherwise, |tier| tier.multiplier)
}

/// Elo-gap factor: `mature_factor` at or above the target, else `min(max, 1 + gap / scale)`.
pub fn elo_gap_factor(current_elo: f64, target_elo: f64, policy: &EloPolicy) -> f64 {
    if current_elo >= target_elo {
        return policy.mature_factor;
    }
    (1.0 + (target_elo - current_elo) / policy.gap_scale).min(policy.max_gap_factor)
}

/// Override tier of a canonical config (the static table by player count).
pub fn static_override_tier(config: ConfigKey, policy: &PriorityPolicy) -> i8 {
    policy.override_tiers.static_tiers.get(config.players)
}

/// Override tier from live state; the original used it only for keys outside its static table.
pub fn dynamic_override_tier(game_count: u64, elo: f64, policy: &PriorityPolicy) -> i8 {
    let tiers = &policy.override_tiers;
    if elo >= policy.elo.target_elo {
        3
    } else if game_count < tiers.dynamic_urgent_below_games {
        -1
    } else if game_count < tiers.dynamic_critical_below_games
        || elo < tiers.dynamic_critical_below_elo
    {
        0
    } else if elo < tiers.dynamic_high_below_elo {
        1
    } else {
        2
    }
}

/// Player multiplier: the tier-0 multiplier for tier 0, else by player count.
pub fn player_multiplier(players: u8, tier: i8, policy: &PriorityPolicy) -> f64 {
    if tier == 0 {
        policy.players.tier0_multiplier
    } else {
        policy.players.by_players.get(players)
    }
}

/// The score and how it came about.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PriorityBreakdown {
    /// Sum of the weighted additive terms.
    pub additive: f64,
    /// Product of every multiplier.
    pub multiplier: f64,
    /// `additive x multiplier`.
    pub score: f64,
    /// Starvation tier, if any.
    pub starvation: Option<StarvationTier>,
    /// Override tier used.
    pub override_tier: i8,
}

/// Sum of the weighted additive terms.
pub fn additive_terms(s: &PrioritySignals, w: &PriorityWeights, p: &PriorityPolicy) -> f64 {
    let staleness = staleness_factor(s.staleness_hours, &p.staleness) * w.staleness;
    let velocity = velocity_factor(s.elo_velocity_per_day, &p.velocity) * w.velocity;
    let training = if s.training_pending { w.training } else { 0.0 };
    let exploration = (s.exploration_boost - 1.0) * w.exploration;
    let curriculum = (s.curriculum_weight - 1.0) * w.curriculum;
    // Not clamped: the original's producers keep it in -0.10..0.15, the formula takes it as given.
    let improvement = s.improvement_boost * w.improvement;
    let quality = (s.quality - p.quality.baseline) * w.quality + s.quality_penalty;
    let deficit_target = data_deficit_target(s.config.board.is_large(), &p.data_deficit);
    let deficit = data_deficit_factor(s.game_count, deficit_target) * w.data_deficit;
    let gap = (s.target_elo - s.current_elo).max(0.0);
    let info = info_gain_per_game(s.elo_uncertainty, s.game_count);
    let voi = voi_score(s.elo_uncertainty, gap, info, &p.voi) * w.voi;
    let diversity = (1.0 - s.diversity) * w.diversity;
    let cluster = (cluster_boost(s.cluster_game_count, &p.cluster_boost) - 1.0) * w.cluster;
    staleness
        + velocity
        + training
        + exploration
        + curriculum
        + improvement
        + s.architecture_boost
        + quality
        + deficit
        + voi
        + diversity
        + cluster
}

/// The full priority score of one config.
pub fn priority_score(
    s: &PrioritySignals,
    w: &PriorityWeights,
    p: &PriorityPolicy,
) -> PriorityBreakdown {
    let additive = additive_terms(s, w, p);
    let tier = static_override_tier(s.config, p);
    // Not clamped either (its producers keep it in 0.5..1.5).
    let multiplier = s.exploration_boost
        * s.momentum
        * velocity_multiplier(s.elo_velocity_per_hour, &p.velocity)
        * elo_gap_factor(s.current_elo, s.target_elo, &p.elo)
        * p.override_tiers.multiplier(tier)
        * player_multiplier(s.config.players, tier, p)
        * s.cascade
        * starvation_multiplier(s.game_count, &p.starvation);
    PriorityBreakdown {
        additive,
        multiplier,
        score: additive * multiplier,
        starvation: starvation_tier(s.game_count, &p.starvation),
        override_tier: tier,
    }
}

/// QUALITY_DEGRADED penalty: `-scale x (threshold - quality) / threshold` (0 at or above it).
pub fn quality_penalty(quality: f64, threshold: f64, p: &PriorityPolicy) -> f64 {
    if threshold <= 0.0 || quality >= threshold {
        return 0.0;
    }
    -p.quality.degraded_penalty_scale * (threshold - quality) / threshold
}

/// Architecture boost: `scale x` the highest architecture weight (0 when none).
pub fn architecture_boost(max_architecture_weight: f64, p: &PriorityPolicy) -> f64 {
    p.architecture_boost_scale * max_architecture_weight.max(0.0)
}

/// Diversity 0-1 from the number of distinct opponent types seen.
pub fn diversity_score(distinct_opponent_types: u32, p: &PriorityPolicy) -> f64 {
    if p.diversity_opponent_types == 0 {
        return 1.0;
    }
    (f64::from(distinct_opponent_types) / f64::from(p.diversity_opponent_types)).min(1.0)
}

/// Elo/hour counts for the velocity multiplier only over at least `min_history_hours`.
pub fn usable_elo_per_hour(elo_per_hour: f64, history_hours: f64, p: &PriorityPolicy) -> f64 {
    if history_hours >= p.velocity.min_history_hours {
        elo_per_hour
    } else {
        0.0
    }
}

/// The original's `_get_curriculum_weights`: the raw curriculum weights of the given configs, normalised over all
/// 12 configs (a config not given counts 1.0). Let `sum` be the 12 weights' total; only when `|sum - 12|` exceeds
/// `policy.curriculum_tolerance` is every weight multiplied by `1 + (12 / sum - 1) * policy.curriculum_normalisation`.
/// Returns the weights in input order (a config given twice counts once in the sum, its first weight).
pub fn normalised_curriculum_weights(
    raw: &[(ConfigKey, f64)],
    policy: &PriorityPolicy,
) -> Vec<f64> {
    let all = ConfigKey::all();
    let total = all.len() as f64;
    let sum: f64 = all
        .iter()
        .map(|key| raw.iter().find(|(k, _)| k == key).map_or(1.0, |(_, w)| *w))
        .sum();
    let factor = if (sum - total).abs() > policy.curriculum_tolerance && sum > 0.0 {
        1.0 + (total / sum - 1.0) * policy.curriculum_normalisation
    } else {
        1.0
    };
    raw.iter().map(|(_, w)| w * factor).collect()
}

/// Priorities of many configs at once, in input order.
pub fn priority_scores(
    signals: &[PrioritySignals],
    w: &PriorityWeights,
    p: &PriorityPolicy,
) -> Vec<PriorityBreakdown> {
    signals.iter().map(|s| priority_score(s, w, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::board::BoardType;

    fn key(text: &str) -> ConfigKey {
        text.parse().unwrap()
    }

    /// The bare formula's inputs of scenario 1 (the original's `PriorityInputs` defaults).
    fn bare(config: &str) -> PrioritySignals {
        let policy = PriorityPolicy::default();
        PrioritySignals {
            staleness_hours: 0.0,
            diversity: 1.0,
            elo_uncertainty: 200.0,
            ..PrioritySignals::with_defaults(key(config), 0, &policy)
        }
    }

    fn score(s: &PrioritySignals) -> f64 {
        let p = PriorityPolicy::default();
        priority_score(s, &p.weights, &p).score
    }

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-6,
            "got {actual}, expected {expected}"
        );
    }

    #[test]
    fn scenario_1_default_inputs() {
        for board in ["hex8", "square8"] {
            close(score(&bare(&format!("{board}_2p"))), 2726.8);
            close(score(&bare(&format!("{board}_3p"))), 340.85);
            close(score(&bare(&format!("{board}_4p"))), 272.68);
        }
    }

    #[test]
    fn scenario_1_with_derived_uncertainty_of_zero_games() {
        let p = PriorityPolicy::default();
        for (config, expected) in [("hex8_2p", 2754.0), ("hex8_3p", 344.25), ("hex8_4p", 275.4)] {
            let s = PrioritySignals {
                elo_uncertainty: elo_uncertainty(0, &p.elo),
                ..bare(config)
            };
            close(score(&s), expected);
        }
    }

    #[test]
    fn scenario_1_mature_config() {
        // games 10000, elo 1700, stale 4h, unc 3, cluster games 20000: 6.4252/0.8031/0.6425.
        let mature = |config: &str| PrioritySignals {
            game_count: 10_000,
            current_elo: 1700.0,
            staleness_hours: 4.0,
            elo_uncertainty: 3.0,
            cluster_game_count: 20_000,
            ..bare(config)
        };
        // Exact value of the formula; the domain file rounds it to 4 decimals.
        let base = (0.30 + 0.9 * 0.10 + 0.02 * (0.4 * 0.01 + 0.3 * 0.6 + 0.3 * 0.003)) * 0.85 * 1.6;
        for (config, mult, rounded) in [
            ("hex8_2p", 12.0, 6.4252),
            ("hex8_3p", 1.5, 0.8031),
            ("hex8_4p", 1.2, 0.6425),
        ] {
            let actual = score(&mature(config));
            close(actual, base * mult);
            assert!(
                (actual - rounded).abs() < 5e-5,
                "{config}: {actual} vs {rounded}"
            );
        }
    }

    #[test]
    fn scenario_3_staleness() {
        let custom = StalenessPolicy {
            fresh_hours: 1.0,
            stale_hours: 12.0,
            max_hours: 24.0,
            fallback_hours: 168.0,
        };
        for (hours, expected) in [(0.5, 0.0), (1.0, 0.0), (6.5, 0.5), (100.0, 1.0)] {
            close(staleness_factor(hours, &custom), expected);
        }
        let default = StalenessPolicy::default();
        for (hours, expected) in [
            (0.0, 0.0),
            (2.5, 0.5),
            (4.0, 1.0),
            (168.0, 1.0),
            (500.0, 1.0),
        ] {
            close(staleness_factor(hours, &default), expected);
        }
    }

    #[test]
    fn scenario_4_velocity_and_deficit() {
        let v = VelocityPolicy::default();
        assert!((velocity_factor(50.0, &v) - 0.777).abs() < 5e-4);
        assert!((velocity_factor(100.0, &v) - 0.950).abs() < 5e-4);
        close(
            velocity_factor(50.0, &v),
            1.0 - (-50.0f64 * 3.0 / 100.0).exp(),
        );
        close(velocity_factor(0.0, &v), 0.0);
        close(velocity_factor(-5.0, &v), 0.0);
        for (games, expected) in [(0, 1.0), (500, 0.5), (1500, 0.0)] {
            close(data_deficit_factor(games, 1000), expected);
        }
    }

    #[test]
    fn velocity_multiplier_shapes() {
        let v = VelocityPolicy::default();
        close(velocity_multiplier(-1.0, &v), 1.3);
        close(velocity_multiplier(0.0, &v), 0.85);
        close(
            velocity_multiplier(2.0, &v),
            0.6 + 0.4 * (1.0 - (-1.0f64).exp()) + 0.04,
        );
        close(
            velocity_multiplier(20.0, &v),
            0.6 + 0.4 * (1.0 - (-10.0f64).exp()) + 0.2,
        );
    }

    #[test]
    fn scenario_5_voi_and_info_gain() {
        let p = VoiPolicy::default();
        close(voi_score(300.0, 0.0, 0.0, &p), 0.4);
        close(voi_score(0.0, 500.0, 0.0, &p), 0.3);
        close(voi_score(0.0, 0.0, 10.0, &p), 0.3);
        close(voi_score(900.0, 900.0, 90.0, &p), 1.0);
        close(info_gain_per_game(100.0, 0), 100.0);
        close(info_gain_per_game(100.0, 100), 10.0);
    }

    #[test]
    fn scenario_7_starvation_tiers() {
        let p = StarvationPolicy::default();
        let cases = [
            (100, Some(StarvationTier::Ultra), 500.0),
            (800, Some(StarvationTier::Emergency), 100.0),
            (2000, Some(StarvationTier::Critical), 30.0),
            (4000, Some(StarvationTier::Warning), 3.0),
            (10000, None, 1.0),
        ];
        for (games, tier, mult) in cases {
            assert_eq!(starvation_tier(games, &p), tier, "{games}");
            close(starvation_multiplier(games, &p), mult);
        }
        assert_eq!(StarvationTier::Ultra.name(), "ULTRA");
    }

    #[test]
    fn uncertainty_follows_game_count() {
        let p = EloPolicy::default();
        close(elo_uncertainty(0, &p), 300.0);
        close(elo_uncertainty(1, &p), 300.0);
        close(elo_uncertainty(100, &p), 30.0);
        close(elo_uncertainty(25, &p), 60.0);
        close(elo_uncertainty(1_000_000, &p), 30.0);
    }

    #[test]
    fn cluster_boost_tiers() {
        let p = ClusterBoostPolicy::default();
        for (games, boost) in [
            (0, 2.0),
            (999, 2.0),
            (1000, 1.5),
            (4999, 1.5),
            (5000, 1.2),
            (10_000, 1.0),
        ] {
            close(cluster_boost(games, &p), boost);
        }
    }

    #[test]
    fn elo_gap_factor_and_tiers() {
        let p = PriorityPolicy::default();
        close(elo_gap_factor(2000.0, 2000.0, &p.elo), 0.3);
        close(elo_gap_factor(1500.0, 2000.0, &p.elo), 2.0);
        close(elo_gap_factor(0.0, 2000.0, &p.elo), 3.0);
        assert_eq!(static_override_tier(key("hex8_2p"), &p), 0);
        assert_eq!(static_override_tier(key("hex8_3p"), &p), 2);
        assert_eq!(static_override_tier(key("hex8_4p"), &p), 3);
        for (games, elo, tier) in [
            (10, 2100.0, 3),
            (10, 1500.0, -1),
            (300, 1900.0, 0),
            (1000, 1600.0, 0),
            (1000, 1750.0, 1),
            (1000, 1900.0, 2),
        ] {
            assert_eq!(dynamic_override_tier(games, elo, &p), tier, "{games} {elo}");
        }
        close(p.override_tiers.multiplier(-1), 4.0);
        close(player_multiplier(2, 0, &p), 4.0);
        close(player_multiplier(3, 2, &p), 1.2);
        close(player_multiplier(2, 3, &p), 1.0);
    }

    #[test]
    fn large_boards_use_the_large_deficit_target() {
        let p = PriorityPolicy::default();
        let small = PrioritySignals {
            game_count: 75_000,
            ..bare("hex8_2p")
        };
        let large = PrioritySignals {
            config: ConfigKey::new(BoardType::Hexagonal, 2).unwrap(),
            ..small.clone()
        };
        let diff = additive_terms(&large, &p.weights, &p) - additive_terms(&small, &p.weights, &p);
        close(diff, (0.5 - 0.25) * 0.10);
    }

    #[test]
    fn signal_helpers() {
        let p = PriorityPolicy::default();
        close(quality_penalty(0.35, 0.7, &p), -0.1);
        close(quality_penalty(0.8, 0.7, &p), 0.0);
        close(architecture_boost(0.5, &p), 0.15);
        close(diversity_score(4, &p), 0.5);
        close(diversity_score(12, &p), 1.0);
        close(usable_elo_per_hour(3.0, 0.25, &p), 0.0);
        close(usable_elo_per_hour(3.0, 0.5, &p), 3.0);
    }

    /// `actual` equals `expected` to 1e-9 relative (the bar for "equal to the original").
    fn same(actual: f64, expected: f64) {
        let scale = expected.abs().max(1e-300);
        assert!(
            ((actual - expected) / scale).abs() < 1e-9,
            "got {actual:.15}, expected {expected:.15}"
        );
    }

    #[test]
    fn velocity_scale_is_exactly_a_third_of_max_velocity() {
        let v = VelocityPolicy::default();
        same(velocity_factor(100.0, &v), 0.950212931632136);
        same(velocity_factor(100.0, &v), 1.0 - (-3.0f64).exp());
        // The rounded 33.33 was off in the 6th digit.
        let rounded = 1.0 - (-100.0f64 / 33.33).exp();
        assert!((rounded - 0.950212931632136).abs() > 1e-6);
    }

    fn weights(pairs: &[(&str, f64)]) -> Vec<(ConfigKey, f64)> {
        pairs.iter().map(|(k, w)| (key(k), *w)).collect()
    }

    #[test]
    fn curriculum_weights_summing_within_the_band_are_unchanged() {
        let p = PriorityPolicy::default();
        let mut all: Vec<(ConfigKey, f64)> =
            ConfigKey::all().into_iter().map(|k| (k, 1.0)).collect();
        all[0].1 = 1.008;
        let sum: f64 = all.iter().map(|(_, w)| w).sum();
        same(sum, 12.008);
        let out = normalised_curriculum_weights(&all, &p);
        for ((_, raw), normalised) in all.iter().zip(&out) {
            assert_eq!(raw, normalised, "12.008 is within 0.01 of 12: no scaling");
        }
        // Just outside the band: scaled.
        all[0].1 = 1.02;
        let out = normalised_curriculum_weights(&all, &p);
        same(out[0], 1.02 * (1.0 + (12.0 / 12.02 - 1.0) * 0.5));
    }

    #[test]
    fn curriculum_normalisation_pads_missing_configs_with_one() {
        let p = PriorityPolicy::default();
        let out =
            normalised_curriculum_weights(&weights(&[("hex8_2p", 2.0), ("square8_3p", 1.0)]), &p);
        // The other 10 configs count 1.0: sum 13, scale 1 + (12/13 - 1) * 0.5.
        let scale = 1.0 + (12.0 / 13.0 - 1.0) * 0.5;
        same(scale, 0.9615384615384616);
        same(out[0], 2.0 * scale);
        same(out[1], scale);
        // Over the given configs alone (the old rule) the scale would be 1 + (2/3 - 1) * 0.5: 2 % off.
        assert!((out[1] - (1.0 + (2.0 / 3.0 - 1.0) * 0.5)).abs() > 0.1);
        // Neutral weights, all or none given: untouched.
        assert!(normalised_curriculum_weights(&[], &p).is_empty());
        let neutral: Vec<_> = ConfigKey::all().into_iter().map(|k| (k, 1.0)).collect();
        assert!(normalised_curriculum_weights(&neutral, &p)
            .iter()
            .all(|w| *w == 1.0));
    }

    #[test]
    fn improvement_boost_and_momentum_are_not_clamped() {
        // The mature config of scenario 1 with improvement 0.5 and momentum 2.0 (outside their usual ranges).
        let s = PrioritySignals {
            game_count: 10_000,
            current_elo: 1700.0,
            staleness_hours: 4.0,
            elo_uncertainty: 3.0,
            cluster_game_count: 20_000,
            improvement_boost: 0.5,
            momentum: 2.0,
            ..bare("hex8_2p")
        };
        let base = 0.30 + 0.9 * 0.10 + 0.02 * (0.4 * 0.01 + 0.3 * 0.6 + 0.3 * 0.003);
        let multiplier = 0.85 * 1.6 * 12.0;
        same(score(&s), (base + 0.5 * 0.08) * 2.0 * multiplier);
        // The old clamps (0.15, 1.5) would have scored it much lower.
        let clamped = (base + 0.15 * 0.08) * 1.5 * multiplier;
        assert!(score(&s) > clamped * 1.4, "{} vs {clamped}", score(&s));
        // Below the usual ranges too.
        let low = PrioritySignals {
            improvement_boost: -0.5,
            momentum: 0.1,
            ..s.clone()
        };
        same(score(&low), (base - 0.5 * 0.08) * 0.1 * multiplier);
    }
}
