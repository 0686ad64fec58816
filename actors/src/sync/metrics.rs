//! The sync coordinator's Prometheus metrics, in the process-wide registry rendered at `/metrics`:
//! - `coordinator_sync_bytes_total{peer,transport,outcome}`: bytes received per transport attempt outcome;
//! - `coordinator_sync_attempts_total{peer,transport,outcome}`: transport attempts (`success`/`failure`);
//! - `coordinator_sync_operation_duration_seconds{peer,category,outcome}`: one operation (category from peer);
//! - `coordinator_sync_cycles_total{outcome}`: cycles `ok`, `failed`, `stalled` (past the watchdog deadline);
//! - `coordinator_sync_seconds_since_last_successful_sync`: since the last ok cycle (since start before one);
//! - `coordinator_sync_consecutive_failed_cycles`, `coordinator_sync_healthy` (0 after 5 failed cycles);
//! - `coordinator_sync_refused_total`: requests refused because the queue was full.

use std::sync::OnceLock;

use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};

/// See the module doc.
pub struct SyncMetrics {
    pub bytes: IntCounterVec,
    pub attempts: IntCounterVec,
    pub operation_duration: HistogramVec,
    pub cycles: IntCounterVec,
    pub seconds_since_last_success: Gauge,
    pub consecutive_failed_cycles: IntGauge,
    pub healthy: IntGauge,
    pub refused: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    name: &str,
    metric: Result<T, prometheus::Error>,
) -> T {
    crate::runtime::metrics::register(metric.unwrap_or_else(|e| panic!("metric {name}: {e}")))
}

/// The metrics (registered on first use).
pub fn sync_metrics() -> &'static SyncMetrics {
    static METRICS: OnceLock<SyncMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let labels = ["peer", "transport", "outcome"];
        SyncMetrics {
            bytes: register("coordinator_sync_bytes_total", IntCounterVec::new(
                Opts::new("coordinator_sync_bytes_total", "Bytes received by sync, per peer, transport and attempt outcome"),
                &labels,
            )),
            attempts: register("coordinator_sync_attempts_total", IntCounterVec::new(
                Opts::new("coordinator_sync_attempts_total", "Sync transport attempts, per peer, transport and outcome"),
                &labels,
            )),
            operation_duration: register("coordinator_sync_operation_duration_seconds", HistogramVec::new(
                HistogramOpts::new("coordinator_sync_operation_duration_seconds", "Duration of sync operations (one category from one peer)")
                    .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0]),
                &["peer", "category", "outcome"],
            )),
            cycles: register("coordinator_sync_cycles_total", IntCounterVec::new(
                Opts::new("coordinator_sync_cycles_total", "Sync cycles by outcome (ok, failed, stalled)"),
                &["outcome"],
            )),
            seconds_since_last_success: register("coordinator_sync_seconds_since_last_successful_sync", Gauge::new(
                "coordinator_sync_seconds_since_last_successful_sync",
                "Seconds since the last sync cycle that succeeded (since the start before the first)",
            )),
            consecutive_failed_cycles: register("coordinator_sync_consecutive_failed_cycles", IntGauge::new(
                "coordinator_sync_consecutive_failed_cycles",
                "Sync cycles in a row that failed or stalled",
            )),
            healthy: register("coordinator_sync_healthy", IntGauge::new(
                "coordinator_sync_healthy",
                "1 while sync is healthy (fewer failed cycles in a row than sync.unhealthy_after_failed_cycles)",
            )),
            refused: register("coordinator_sync_refused_total", IntCounter::new(
                "coordinator_sync_refused_total",
                "Sync requests refused because the queue was full",
            )),
        }
    })
}
