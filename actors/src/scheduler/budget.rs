//! Search budgets, target games and games needed for one config.
//!
//! The MCTS search budget grows with Elo (stronger models deserve deeper search) and stays small
//! while a config has few games; an intensity multiplier scales it, and large boards are capped so
//! one game does not take an hour. Target games say how much data a config still needs to reach
//! the target Elo; games needed turns a sample target into games. Pure functions of the policy.

use super::board::ConfigKey;
use super::config::{BudgetPolicy, IntensityMultipliers, TargetGamesPolicy};

/// How hard a config is being pushed (from the training feedback loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intensity {
    /// 1.75x by default.
    Intensive,
    /// 1.5x by default.
    HotPath,
    /// 1.5x by default.
    High,
    /// 1.25x by default.
    Accelerated,
    /// 1.0x.
    Normal,
    /// 0.75x by default.
    Reduced,
    /// 0.5x by default.
    Paused,
}

/// The intensity names accepted by [`Intensity::from_name`].
pub const INTENSITY_NAMES: &str = "intensive, hot_path, high, accelerated, normal, reduced, paused";

impl Intensity {
    /// Parses `hot_path`, `HOT-PATH`, ...; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Intensity> {
        let key: String = name
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        Some(match key.as_str() {
            "intensive" => Intensity::Intensive,
            "hotpath" => Intensity::HotPath,
            "high" => Intensity::High,
            "accelerated" => Intensity::Accelerated,
            "normal" => Intensity::Normal,
            "reduced" => Intensity::Reduced,
            "paused" => Intensity::Paused,
            _ => return None,
        })
    }

    /// The multiplier of this intensity.
    pub fn multiplier(self, table: &IntensityMultipliers) -> f64 {
        match self {
            Intensity::Intensive => table.intensive,
            Intensity::HotPath => table.hot_path,
            Intensity::High => table.high,
            Intensity::Accelerated => table.accelerated,
            Intensity::Normal => table.normal,
            Intensity::Reduced => table.reduced,
            Intensity::Paused => table.paused,
        }
    }
}

/// Multiplier of an intensity reported by name; unknown names get the `unknown` multiplier.
pub fn intensity_multiplier(name: &str, table: &IntensityMultipliers) -> f64 {
    Intensity::from_name(name).map_or(table.unknown, |i| i.multiplier(table))
}

/// Budget from the Elo and games tables, before intensity and caps.
pub fn base_budget(game_count: u64, elo: f64, policy: &BudgetPolicy) -> u32 {
    let by_elo = policy
        .by_elo
        .iter()
        .find(|row| elo >= row.min_elo)
        .map_or(policy.below_elo_table, |row| row.budget);
    if elo >= policy.games_table_below_elo {
        return by_elo;
    }
    policy
        .by_games
        .iter()
        .find(|row| game_count < row.below_games)
        .map_or(by_elo, |row| row.budget)
}

/// Budget with the intensity multiplier, truncated, then clamped to `[min, max]`.
pub fn search_budget(game_count: u64, elo: f64, intensity: f64, policy: &BudgetPolicy) -> u32 {
    let scaled = (f64::from(base_budget(game_count, elo, policy)) * intensity).trunc();
    scaled.clamp(f64::from(policy.min_budget), f64::from(policy.max_budget)) as u32
}

/// Large-board cap, or `None` for small boards.
pub fn large_board_cap(config: ConfigKey, game_count: u64, policy: &BudgetPolicy) -> Option<u32> {
    if !config.board.is_large() {
        return None;
    }
    let base = if game_count < policy.large_board_cap_below_games {
        policy.large_board_cap_early
    } else {
        policy.large_board_cap
    };
    let factor = policy.large_board_player_factor.get(config.players);
    let cap = (f64::from(base) * factor).trunc() as u32;
    Some(cap.max(policy.large_board_cap_floor))
}

/// The budget a job of `config` runs with: search budget, then the large-board cap.
pub fn config_budget(
    config: ConfigKey,
    game_count: u64,
    elo: f64,
    intensity: f64,
    policy: &BudgetPolicy,
) -> u32 {
    let budget = search_budget(game_count, elo, intensity, policy);
    large_board_cap(config, game_count, policy).map_or(budget, |cap| budget.min(cap))
}

/// Games still wanted for `config` to reach the target Elo, capped.
pub fn target_games(config: ConfigKey, elo: f64, policy: &TargetGamesPolicy) -> u64 {
    let gap = (policy.target_elo - elo).max(0.0);
    let target = gap
        * policy.games_per_elo
        * policy.board_multiplier.get(config.board)
        * policy.player_multiplier.get(config.players);
    (target.trunc() as u64).min(policy.max_target_games)
}

/// Training samples one game of `config` yields.
pub fn samples_per_game(config: ConfigKey, policy: &TargetGamesPolicy) -> f64 {
    policy
        .samples_per_game
        .get(config.board)
        .get(config.players)
}

/// Games needed to reach `target_samples`: `max(0, target - games x spg) / spg`, truncated.
pub fn games_needed(game_count: u64, samples_per_game: f64, target_samples: u64) -> u64 {
    if samples_per_game <= 0.0 {
        return 0;
    }
    let current = (game_count as f64 * samples_per_game).trunc();
    let remaining = (target_samples as f64 - current).max(0.0);
    (remaining / samples_per_game).trunc() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ConfigKey {
        text.parse().unwrap()
    }

    #[test]
    fn scenario_8_budget_tables() {
        let p = BudgetPolicy::default();
        let cases = [
            (50, 1200.0, 64),
            (100, 1400.0, 150),
            (500, 1400.0, 300),
            (1000, 1500.0, 800),
            (50, 2100.0, 3200),
            (800, 1650.0, 1600),
            (5000, 1300.0, 800),
            (5000, 1850.0, 3200),
        ];
        for (games, elo, budget) in cases {
            assert_eq!(
                search_budget(games, elo, 1.0, &p),
                budget,
                "({games}, {elo})"
            );
        }
    }

    #[test]
    fn scenario_8_intensity() {
        let p = BudgetPolicy::default();
        let t = &p.intensity;
        let cases = [
            (500, 1400.0, "hot_path", 450),
            (5000, 1700.0, "accelerated", 2000),
            (50, 1200.0, "paused", 32),
            (50, 2100.0, "intensive", 4800),
            (50, 2100.0, "mystery", 3200),
        ];
        for (games, elo, intensity, budget) in cases {
            let m = intensity_multiplier(intensity, t);
            assert_eq!(search_budget(games, elo, m, &p), budget, "{intensity}");
        }
        assert_eq!(Intensity::from_name("HOT-PATH"), Some(Intensity::HotPath));
        assert_eq!(Intensity::from_name("turbo"), None);
    }

    #[test]
    fn scenario_9_large_board_caps() {
        let p = BudgetPolicy::default();
        assert_eq!(
            config_budget(key("hexagonal_2p"), 150, 2100.0, 1.0, &p),
            400
        );
        assert_eq!(
            config_budget(key("hexagonal_4p"), 150, 2100.0, 1.0, &p),
            320
        );
        assert_eq!(
            config_budget(key("hexagonal_3p"), 3000, 2100.0, 1.0, &p),
            640
        );
        assert_eq!(
            config_budget(key("square19_2p"), 3000, 2100.0, 1.0, &p),
            800
        );
        assert_eq!(config_budget(key("hex8_2p"), 150, 2100.0, 1.0, &p), 3200);
        assert_eq!(large_board_cap(key("square8_4p"), 10, &p), None);
        let tiny = BudgetPolicy {
            large_board_cap_early: 10,
            ..BudgetPolicy::default()
        };
        assert_eq!(large_board_cap(key("square19_4p"), 10, &tiny), Some(16));
    }

    #[test]
    fn scenario_9_target_games() {
        let p = TargetGamesPolicy::default();
        assert_eq!(target_games(key("hex8_2p"), 1500.0, &p), 200_000);
        assert_eq!(target_games(key("hex8_2p"), 1900.0, &p), 0);
        assert_eq!(target_games(key("hex8_2p"), 2300.0, &p), 0);
        assert_eq!(target_games(key("square19_2p"), 1700.0, &p), 200_000);
        assert_eq!(target_games(key("hexagonal_4p"), 900.0, &p), 500_000);
        assert_eq!(target_games(key("square8_3p"), 1800.0, &p), 90_000);
    }

    #[test]
    fn samples_and_games_needed() {
        let p = TargetGamesPolicy::default();
        let table = [
            ("hex8", [35.0, 40.0, 45.0]),
            ("square8", [40.0, 50.0, 55.0]),
            ("square19", [150.0, 180.0, 200.0]),
            ("hexagonal", [250.0, 300.0, 350.0]),
        ];
        for (board, spg) in table {
            for (i, expected) in spg.iter().enumerate() {
                let config = key(&format!("{board}_{}p", i + 2));
                assert_eq!(samples_per_game(config, &p), *expected, "{config}");
            }
        }
        assert_eq!(games_needed(0, 35.0, 50_000), 1428);
        assert_eq!(games_needed(1000, 35.0, 50_000), 428);
        assert_eq!(games_needed(2000, 35.0, 50_000), 0);
        assert_eq!(games_needed(10, 0.0, 50_000), 0);
    }
}
