//! Dynamic priority weights: the base weights bent by cluster state, then clamped to bounds.
//!
//! Idle GPUs raise the weight of staleness, data deficit and diversity (make data); busy GPUs and
//! a deep training queue lower staleness; many configs at the target Elo lower velocity; a high
//! average Elo raises the curriculum weight. The actor recomputes these every 60 s; this module
//! only knows the formula.

use serde::{Deserialize, Serialize};

use super::config::{DynamicWeightPolicy, PriorityWeights};

/// The cluster state the weights follow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClusterSignals {
    /// Share of GPUs with nothing to do, 0-1.
    pub idle_gpu_fraction: f64,
    /// Training runs waiting.
    pub training_queue_depth: u32,
    /// Share of configs at or above the target Elo, 0-1.
    pub configs_at_target_fraction: f64,
    /// Mean Elo over the configs.
    pub average_elo: f64,
}

impl Default for ClusterSignals {
    fn default() -> Self {
        ClusterSignals {
            idle_gpu_fraction: 0.0,
            training_queue_depth: 0,
            configs_at_target_fraction: 0.0,
            average_elo: 1500.0,
        }
    }
}

/// The cluster state a plan can ask its weights to follow (`dynamic_weights` in the plan state JSON); the Elo
/// figures come from the state's configs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterLoad {
    /// Share of GPUs (nodes) with nothing to do, 0-1.
    pub idle_gpu_fraction: f64,
    /// Training runs waiting.
    pub training_queue_depth: u32,
}

/// The signals for `load` and the configs' Elos (`target_elo`: the priority policy's).
pub fn cluster_signals(load: ClusterLoad, elos: &[f64], target_elo: f64) -> ClusterSignals {
    let n = elos.len().max(1) as f64;
    ClusterSignals {
        idle_gpu_fraction: load.idle_gpu_fraction.clamp(0.0, 1.0),
        training_queue_depth: load.training_queue_depth,
        configs_at_target_fraction: elos.iter().filter(|e| **e >= target_elo).count() as f64 / n,
        average_elo: if elos.is_empty() {
            ClusterSignals::default().average_elo
        } else {
            elos.iter().sum::<f64>() / n
        },
    }
}

/// Weights for `cluster`, starting from `base`.
pub fn dynamic_weights(
    base: &PriorityWeights,
    cluster: &ClusterSignals,
    policy: &DynamicWeightPolicy,
) -> PriorityWeights {
    let bounds = &policy.bounds;
    let very_idle = cluster.idle_gpu_fraction > policy.idle_high;
    let busy = cluster.idle_gpu_fraction < policy.idle_low;

    let mut staleness = base.staleness;
    if very_idle {
        staleness *= policy.idle_high_staleness;
    } else if busy {
        staleness *= policy.idle_low_staleness;
    }
    if cluster.training_queue_depth > policy.training_queue_high {
        staleness *= policy.training_queue_staleness;
    }

    let mut velocity = base.velocity;
    if cluster.configs_at_target_fraction > policy.at_target_share_high {
        velocity *= policy.at_target_velocity;
    }

    let mut curriculum = base.curriculum;
    if cluster.average_elo > policy.elo_high {
        curriculum *= policy.elo_high_curriculum;
    } else if cluster.average_elo > policy.elo_medium {
        curriculum *= policy.elo_medium_curriculum;
    }

    let (mut data_deficit, mut diversity) = (base.data_deficit, base.diversity);
    if very_idle {
        data_deficit *= policy.idle_high_data_deficit;
        diversity *= policy.idle_high_diversity;
    }

    PriorityWeights {
        staleness: bounds.staleness.clamp(staleness),
        velocity: bounds.velocity.clamp(velocity),
        training: bounds.training.clamp(base.training),
        exploration: bounds.exploration.clamp(base.exploration),
        curriculum: bounds.curriculum.clamp(curriculum),
        improvement: bounds.improvement.clamp(base.improvement),
        data_deficit: bounds.data_deficit.clamp(data_deficit),
        quality: bounds.quality.clamp(base.quality),
        voi: bounds.voi.clamp(base.voi),
        diversity: bounds.diversity.clamp(diversity),
        cluster: base.cluster,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "got {actual}, expected {expected}"
        );
    }

    fn weights_for(cluster: ClusterSignals) -> PriorityWeights {
        dynamic_weights(
            &PriorityWeights::default(),
            &cluster,
            &DynamicWeightPolicy::default(),
        )
    }

    #[test]
    fn scenario_6_default_cluster() {
        let w = weights_for(ClusterSignals::default());
        close(w.staleness, 0.21);
        close(w.data_deficit, 0.15);
        close(w.voi, 0.10);
        close(w.improvement, 0.10);
        close(w.velocity, 0.10);
        close(w.training, 0.15);
        close(w.quality, 0.05);
        close(w.curriculum, 0.10);
        close(w.diversity, 0.10);
        close(w.cluster, 0.15);
    }

    #[test]
    fn scenario_6_idle_cluster() {
        let w = weights_for(ClusterSignals {
            idle_gpu_fraction: 0.6,
            ..ClusterSignals::default()
        });
        close(w.staleness, 0.45);
        close(w.diversity, 0.13);
        close(w.data_deficit, 0.15);
    }

    #[test]
    fn scenario_6_high_average_elo() {
        let w = weights_for(ClusterSignals {
            average_elo: 1900.0,
            ..ClusterSignals::default()
        });
        close(w.curriculum, 0.18);
        let medium = weights_for(ClusterSignals {
            average_elo: 1600.0,
            ..ClusterSignals::default()
        });
        close(medium.curriculum, 0.13);
    }

    #[test]
    fn queue_and_target_share_lower_their_weights_within_bounds() {
        let w = weights_for(ClusterSignals {
            idle_gpu_fraction: 0.3,
            training_queue_depth: 11,
            configs_at_target_fraction: 0.8,
            average_elo: 1500.0,
        });
        close(w.staleness, 0.18);
        close(w.velocity, 0.10);
        let clamped = weights_for(ClusterSignals {
            idle_gpu_fraction: 0.05,
            training_queue_depth: 11,
            ..ClusterSignals::default()
        });
        close(clamped.staleness, 0.15);
    }

    #[test]
    fn signals_from_load_and_elos() {
        let s = cluster_signals(
            ClusterLoad {
                idle_gpu_fraction: 0.6,
                training_queue_depth: 2,
            },
            &[2000.0, 2100.0, 1600.0, 1500.0],
            2000.0,
        );
        close(s.idle_gpu_fraction, 0.6);
        close(s.configs_at_target_fraction, 0.5);
        close(s.average_elo, 1800.0);
        assert_eq!(s.training_queue_depth, 2);
        assert_eq!(
            cluster_signals(ClusterLoad::default(), &[], 2000.0),
            ClusterSignals::default()
        );
    }

    #[test]
    fn cluster_weight_is_unclamped() {
        let base = PriorityWeights {
            cluster: 3.0,
            ..PriorityWeights::default()
        };
        let w = dynamic_weights(
            &base,
            &ClusterSignals::default(),
            &DynamicWeightPolicy::default(),
        );
        close(w.cluster, 3.0);
    }
}
