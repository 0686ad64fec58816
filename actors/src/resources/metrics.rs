//! The optimizer's Prometheus metrics, registered once in the process-wide registry rendered at `/metrics`.

use std::sync::OnceLock;

use prometheus::{Gauge, GaugeVec, IntCounter, IntGauge, IntGaugeVec, Opts};

use super::policy::{PressureLevel, ResourcesReport};
use crate::runtime::metrics::register;

/// The optimizer's metrics.
pub struct ResourceMetrics {
    /// `coordinator_resources_utilization_percent{kind}`: cpu, gpu, gpu_memory, memory, disk (fullest watched).
    pub utilization: GaugeVec,
    /// `coordinator_resources_job_target{node}`: the job target sent to the scheduler.
    pub job_target: IntGaugeVec,
    /// `coordinator_resources_hardware_cap`: this node's hardware cap.
    pub hardware_cap: IntGauge,
    /// `coordinator_resources_paused`: 1 while new jobs and sync pulls are paused.
    pub paused: IntGauge,
    /// `coordinator_resources_pressure_level`: 0 ok, 1 warning, 2 critical.
    pub pressure_level: IntGauge,
    /// `coordinator_resources_rate_games_per_hour`: negotiated rate for the default request.
    pub rate: Gauge,
    /// `coordinator_resources_spawn_rate_multiplier`: that rate over the default request (the plan's input).
    pub spawn_rate_multiplier: Gauge,
    /// `coordinator_resources_sample_cpu_seconds`: CPU time of the last OS sample.
    pub sample_cpu_seconds: Gauge,
    /// `coordinator_resources_samples_total`.
    pub samples: IntCounter,
    /// `coordinator_resources_cluster_nodes{state}`: peers in the view / left it.
    pub cluster_nodes: IntGaugeVec,
}

/// The metrics (registered on first use).
pub fn resource_metrics() -> &'static ResourceMetrics {
    static METRICS: OnceLock<ResourceMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let fail = |name: &str, e: prometheus::Error| -> ! { panic!("metric {name}: {e}") };
        ResourceMetrics {
            utilization: register(
                GaugeVec::new(
                    Opts::new(
                        "coordinator_resources_utilization_percent",
                        "Utilization of this node by kind (cpu, gpu, gpu_memory, memory, disk = fullest watched)",
                    ),
                    &["kind"],
                )
                .unwrap_or_else(|e| fail("coordinator_resources_utilization_percent", e)),
            ),
            job_target: register(
                IntGaugeVec::new(
                    Opts::new(
                        "coordinator_resources_job_target",
                        "Concurrent selfplay jobs the optimizer asks the scheduler to run, per node",
                    ),
                    &["node"],
                )
                .unwrap_or_else(|e| fail("coordinator_resources_job_target", e)),
            ),
            hardware_cap: register(
                IntGauge::new(
                    "coordinator_resources_hardware_cap",
                    "This node's hardware cap of concurrent jobs",
                )
                .unwrap_or_else(|e| fail("coordinator_resources_hardware_cap", e)),
            ),
            paused: register(
                IntGauge::new(
                    "coordinator_resources_paused",
                    "1 while disk or memory pressure pauses new selfplay jobs and sync pulls",
                )
                .unwrap_or_else(|e| fail("coordinator_resources_paused", e)),
            ),
            pressure_level: register(
                IntGauge::new(
                    "coordinator_resources_pressure_level",
                    "Disk/memory pressure: 0 ok, 1 warning, 2 critical",
                )
                .unwrap_or_else(|e| fail("coordinator_resources_pressure_level", e)),
            ),
            rate: register(
                Gauge::new(
                    "coordinator_resources_rate_games_per_hour",
                    "Games per hour this node can take for the default request",
                )
                .unwrap_or_else(|e| fail("coordinator_resources_rate_games_per_hour", e)),
            ),
            spawn_rate_multiplier: register(
                Gauge::new(
                    "coordinator_resources_spawn_rate_multiplier",
                    "This node's negotiated rate over the default request; below 1 the plan thins its games per config",
                )
                .unwrap_or_else(|e| fail("coordinator_resources_spawn_rate_multiplier", e)),
            ),
            sample_cpu_seconds: register(
                Gauge::new(
                    "coordinator_resources_sample_cpu_seconds",
                    "CPU time of the last OS sample (CPU, memory, load, disks)",
                )
                .unwrap_or_else(|e| fail("coordinator_resources_sample_cpu_seconds", e)),
            ),
            samples: register(
                IntCounter::new(
                    "coordinator_resources_samples_total",
                    "Rounds of measurements taken",
                )
                .unwrap_or_else(|e| fail("coordinator_resources_samples_total", e)),
            ),
            cluster_nodes: register(
                IntGaugeVec::new(
                    Opts::new(
                        "coordinator_resources_cluster_nodes",
                        "Peers in the cluster view (state=in_view) and out of it (state=left)",
                    ),
                    &["state"],
                )
                .unwrap_or_else(|e| fail("coordinator_resources_cluster_nodes", e)),
            ),
        }
    })
}

impl ResourceMetrics {
    /// Sets the gauges from a report.
    pub fn record(&self, report: &ResourcesReport, peer_targets: &[(String, u32)]) {
        let f = &report.figures;
        let kinds = [
            ("cpu", f.cpu_percent),
            ("gpu", f.gpu_utilization_percent),
            ("gpu_memory", f.gpu_memory_percent),
            ("memory", f.memory_percent),
            ("disk", f.disk_percent),
        ];
        for (kind, value) in kinds {
            match value {
                Some(v) => self.utilization.with_label_values(&[kind]).set(v),
                None => {
                    let _ = self.utilization.remove_label_values(&[kind]);
                }
            }
        }
        self.job_target
            .with_label_values(&[f.node.as_str()])
            .set(i64::from(report.controller.target_jobs));
        for (node, jobs) in peer_targets {
            self.job_target
                .with_label_values(&[node.as_str()])
                .set(i64::from(*jobs));
        }
        self.hardware_cap
            .set(i64::from(report.controller.hardware_cap));
        self.paused.set(i64::from(report.pressure.paused));
        self.pressure_level.set(match report.pressure.level {
            PressureLevel::Ok => 0,
            PressureLevel::Warning => 1,
            PressureLevel::Critical => 2,
        });
        self.rate.set(report.controller.rate_games_per_hour);
        self.spawn_rate_multiplier
            .set(report.controller.spawn_rate_multiplier);
    }
}
