//! How many self-play jobs one node should run at once.
//!
//! A hardware limit by GPU class (from CPU cores, GPU count and a cap), then adjustments from the
//! node's live utilisation: busy GPUs or CPUs step down, headroom ramps up by at most two jobs
//! over what runs now, disk and memory pressure cap it, and the backpressure factor scales it.
//! Also the number of distinct configs a node should mix, by VRAM. Pure: the resource optimizer
//! supplies the numbers.

use super::config::{HardwareLimit, TargetJobsPolicy};

/// The hardware classes of the limit table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardwareClass {
    /// GH200.
    Gh200,
    /// H100, H200.
    H100,
    /// A100, L40, L40S.
    A100,
    /// RTX 5090.
    Rtx5090,
    /// A10, RTX 4090, RTX 3090.
    Consumer,
    /// RTX 4060, RTX 3060, A40.
    Small,
    /// A GPU not in the table.
    UnknownGpu,
    /// No GPU.
    CpuOnly,
}

impl HardwareClass {
    /// The class of a GPU name (`None`, empty or `CPU` is CPU-only).
    pub fn of(gpu: Option<&str>) -> HardwareClass {
        let name: String = gpu
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect();
        let has = |part: &str| name.contains(part);
        if name.is_empty() || name == "CPU" || name == "NONE" {
            HardwareClass::CpuOnly
        } else if has("GH200") {
            HardwareClass::Gh200
        } else if has("H100") || has("H200") {
            HardwareClass::H100
        } else if has("A100") || has("L40") {
            HardwareClass::A100
        } else if has("5090") {
            HardwareClass::Rtx5090
        } else if has("4090") || has("3090") || name.ends_with("A10") || has("A10G") {
            HardwareClass::Consumer
        } else if has("4060") || has("3060") || has("A40") {
            HardwareClass::Small
        } else {
            HardwareClass::UnknownGpu
        }
    }
}

/// What the resource optimizer knows about a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeResources {
    /// GPU model name; `None` for CPU-only nodes.
    pub gpu: Option<String>,
    /// Number of GPUs.
    pub gpu_count: u32,
    /// CPU cores; 0 when unknown.
    pub cpu_cores: u32,
    /// Total memory in GB; 0 when unknown.
    pub memory_gb: f64,
    /// GPU utilisation %, if measured.
    pub gpu_util_pct: Option<f64>,
    /// GPU memory use %, if measured.
    pub gpu_mem_pct: Option<f64>,
    /// CPU utilisation %, if measured.
    pub cpu_pct: Option<f64>,
    /// Disk use % of the data volume.
    pub disk_pct: f64,
    /// Memory use %.
    pub memory_pct: f64,
    /// Jobs running now.
    pub current_jobs: u32,
}

impl NodeResources {
    /// A node with the given hardware and nothing measured yet.
    pub fn idle(gpu: Option<&str>, gpu_count: u32, cpu_cores: u32, memory_gb: f64) -> Self {
        NodeResources {
            gpu: gpu.map(str::to_string),
            gpu_count,
            cpu_cores,
            memory_gb,
            gpu_util_pct: None,
            gpu_mem_pct: None,
            cpu_pct: None,
            disk_pct: 0.0,
            memory_pct: 0.0,
            current_jobs: 0,
        }
    }
}

/// Cluster-wide conditions that stop or scale work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobConditions {
    /// Emergency stop in force.
    pub emergency: bool,
    /// Backpressure asked to stop.
    pub backpressure_stop: bool,
    /// Backpressure scaling 0-1 (1 = none).
    pub backpressure_factor: f64,
}

impl Default for JobConditions {
    fn default() -> Self {
        JobConditions {
            emergency: false,
            backpressure_stop: false,
            backpressure_factor: 1.0,
        }
    }
}

fn limited(limit: &HardwareLimit, cores: u32, gpus: u32) -> u32 {
    if cores == 0 {
        return limit.fallback;
    }
    let mut jobs = (f64::from(cores) * limit.cpu_fraction).trunc() as u32;
    if let Some(per_gpu) = limit.per_gpu {
        jobs = jobs.min(per_gpu.saturating_mul(gpus.max(1)));
    }
    if let Some(cap) = limit.cap {
        jobs = jobs.min(cap);
    }
    jobs
}

/// The hardware limit before live adjustments.
pub fn hardware_limit(node: &NodeResources, policy: &TargetJobsPolicy) -> u32 {
    let cores = node.cpu_cores;
    let gpus = node.gpu_count;
    match HardwareClass::of(node.gpu.as_deref()) {
        HardwareClass::Gh200 => limited(&policy.gh200, cores, gpus),
        HardwareClass::H100 => limited(&policy.h100, cores, gpus),
        HardwareClass::A100 => limited(&policy.a100, cores, gpus),
        HardwareClass::Rtx5090 => limited(&policy.rtx5090, cores, gpus),
        HardwareClass::Consumer => limited(&policy.consumer, cores, gpus),
        HardwareClass::Small => limited(&policy.small, cores, gpus),
        HardwareClass::UnknownGpu => {
            let by_cpu = (f64::from(cores) * policy.unknown_cpu_fraction).trunc() as u32;
            by_cpu.min(policy.unknown_cap).max(policy.unknown_min)
        }
        HardwareClass::CpuOnly => {
            if cores >= policy.cpu_big_cores && node.memory_gb >= policy.cpu_big_memory_gb {
                limited(&policy.cpu_big, cores, 1)
            } else if cores >= policy.cpu_medium_cores {
                limited(&policy.cpu_medium, cores, 1)
            } else {
                (cores / policy.cpu_small_divisor.max(1))
                    .min(policy.cpu_small_cap)
                    .max(policy.cpu_small_min)
            }
        }
    }
}

/// Concurrent jobs `node` should run.
pub fn target_jobs(
    node: &NodeResources,
    conditions: &JobConditions,
    policy: &TargetJobsPolicy,
) -> u32 {
    let low_memory = node.memory_gb > 0.0 && node.memory_gb < policy.min_memory_gb;
    if conditions.emergency || conditions.backpressure_stop || low_memory {
        return 0;
    }
    let mut target = hardware_limit(node, policy);
    if node.gpu_util_pct.is_some_and(|u| u > policy.gpu_busy_pct) {
        target = target
            .saturating_sub(policy.gpu_busy_step)
            .max(policy.busy_floor);
    }
    if node.cpu_pct.is_some_and(|u| u > policy.cpu_busy_pct) {
        target = target
            .saturating_sub(policy.cpu_busy_step)
            .max(policy.busy_floor);
    }
    let headroom = matches!(
        (node.gpu_util_pct, node.gpu_mem_pct, node.cpu_pct),
        (Some(g), Some(m), Some(c))
            if g < policy.headroom_gpu_pct && m < policy.headroom_gpu_mem_pct && c < policy.headroom_cpu_pct
    );
    if headroom {
        target = target.min(node.current_jobs.saturating_add(policy.headroom_ramp));
    }
    if node.disk_pct >= policy.disk_warning_pct {
        target = target.min(policy.disk_warning_cap);
    }
    if node.memory_pct >= policy.memory_warning_pct {
        target = target.min(policy.memory_warning_cap);
    }
    let scaled =
        (f64::from(target) * conditions.backpressure_factor.clamp(0.0, 1.0)).trunc() as u32;
    scaled.max(policy.min_jobs)
}

/// How many distinct configs a node with `vram_gb` should mix.
pub fn max_distinct_configs(vram_gb: f64, policy: &TargetJobsPolicy) -> u32 {
    policy
        .distinct_configs_by_vram
        .iter()
        .find(|(min_gb, _)| vram_gb >= *min_gb)
        .map_or(1, |(_, configs)| *configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(node: &NodeResources) -> u32 {
        target_jobs(
            node,
            &JobConditions::default(),
            &TargetJobsPolicy::default(),
        )
    }

    #[test]
    fn scenario_12_target_jobs() {
        assert_eq!(jobs(&NodeResources::idle(Some("H100"), 1, 64, 512.0)), 32);
        assert_eq!(jobs(&NodeResources::idle(Some("RTX_4090"), 1, 24, 64.0)), 7);
        assert_eq!(jobs(&NodeResources::idle(None, 0, 8, 16.0)), 2);
        assert_eq!(jobs(&NodeResources::idle(Some("H100"), 1, 64, 2.0)), 0);
        let full_disk = NodeResources {
            disk_pct: 92.0,
            ..NodeResources::idle(Some("H100"), 1, 64, 512.0)
        };
        assert_eq!(jobs(&full_disk), 4);
    }

    #[test]
    fn hardware_table() {
        let p = TargetJobsPolicy::default();
        let cases = [
            (Some("GH200"), 1, 72, 57),
            (Some("GH200"), 1, 0, 48),
            (Some("H200"), 1, 128, 48),
            (Some("A100"), 1, 64, 25),
            (Some("L40S"), 1, 128, 32),
            (Some("RTX_5090"), 2, 256, 24),
            (Some("RTX_5090"), 8, 512, 64),
            (Some("RTX_3090"), 1, 128, 8),
            (Some("A10"), 2, 128, 16),
            (Some("RTX_4060"), 1, 64, 6),
            (Some("A40"), 4, 128, 16),
            (Some("TPUv9"), 1, 64, 8),
            (Some("TPUv9"), 1, 8, 4),
            (None, 0, 64, 16),
            (None, 0, 16, 6),
            (None, 0, 4, 2),
        ];
        for (gpu, gpus, cores, expected) in cases {
            let node = NodeResources::idle(gpu, gpus, cores, 128.0);
            assert_eq!(
                hardware_limit(&node, &p),
                expected,
                "{gpu:?} {gpus} {cores}"
            );
        }
        let medium_ram = NodeResources::idle(None, 0, 64, 32.0);
        assert_eq!(hardware_limit(&medium_ram, &p), 8);
    }

    #[test]
    fn live_adjustments() {
        let base = NodeResources::idle(Some("H100"), 1, 64, 512.0);
        let busy = NodeResources {
            gpu_util_pct: Some(90.0),
            gpu_mem_pct: Some(80.0),
            cpu_pct: Some(85.0),
            ..base.clone()
        };
        assert_eq!(jobs(&busy), 29);
        let headroom = NodeResources {
            gpu_util_pct: Some(10.0),
            gpu_mem_pct: Some(10.0),
            cpu_pct: Some(10.0),
            current_jobs: 3,
            ..base.clone()
        };
        assert_eq!(jobs(&headroom), 5);
        let memory = NodeResources {
            memory_pct: 96.0,
            ..base.clone()
        };
        assert_eq!(jobs(&memory), 2);
        let tiny = NodeResources {
            gpu_util_pct: Some(95.0),
            ..NodeResources::idle(None, 0, 4, 16.0)
        };
        assert_eq!(jobs(&tiny), 2);
        let p = TargetJobsPolicy::default();
        let half = JobConditions {
            backpressure_factor: 0.5,
            ..JobConditions::default()
        };
        assert_eq!(target_jobs(&base, &half, &p), 16);
        let crushed = JobConditions {
            backpressure_factor: 0.0,
            ..JobConditions::default()
        };
        assert_eq!(target_jobs(&base, &crushed, &p), 1);
        for stop in [
            JobConditions {
                emergency: true,
                ..JobConditions::default()
            },
            JobConditions {
                backpressure_stop: true,
                ..JobConditions::default()
            },
        ] {
            assert_eq!(target_jobs(&base, &stop, &p), 0);
        }
    }

    #[test]
    fn distinct_configs_by_vram() {
        let p = TargetJobsPolicy::default();
        for (vram, configs) in [
            (141.0, 3),
            (96.0, 3),
            (80.0, 2),
            (48.0, 2),
            (24.0, 1),
            (0.0, 1),
        ] {
            assert_eq!(max_distinct_configs(vram, &p), configs, "{vram}");
        }
    }
}
