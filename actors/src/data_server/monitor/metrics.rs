//! The monitor's Prometheus metrics, registered once in the process-wide registry rendered at `/metrics`:
//! `coordinator_data_server_up`, `coordinator_data_server_restarts_total`, `coordinator_data_server_circuit_open`.

use std::sync::OnceLock;

use prometheus::{IntCounter, IntGauge};

use crate::runtime::metrics::registry;

/// The monitor's metrics.
pub struct MonitorMetrics {
    /// 1 while the local data server answers `/health`, else 0.
    pub up: IntGauge,
    /// Restarts of the data server process.
    pub restarts: IntCounter,
    /// 1 while the restart circuit is open (or half-open), else 0.
    pub circuit_open: IntGauge,
}

/// The metrics (registered on first use).
pub fn monitor_metrics() -> &'static MonitorMetrics {
    static METRICS: OnceLock<MonitorMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let up = IntGauge::new(
            "coordinator_data_server_up",
            "1 while the local data server answers /health",
        )
        .unwrap_or_else(|e| panic!("metric coordinator_data_server_up: {e}"));
        let restarts = IntCounter::new(
            "coordinator_data_server_restarts_total",
            "Restarts of the local data server process",
        )
        .unwrap_or_else(|e| panic!("metric coordinator_data_server_restarts_total: {e}"));
        let circuit_open = IntGauge::new(
            "coordinator_data_server_circuit_open",
            "1 while the data server's restart circuit is open",
        )
        .unwrap_or_else(|e| panic!("metric coordinator_data_server_circuit_open: {e}"));
        let _ = registry().register(Box::new(up.clone()));
        let _ = registry().register(Box::new(restarts.clone()));
        let _ = registry().register(Box::new(circuit_open.clone()));
        MonitorMetrics {
            up,
            restarts,
            circuit_open,
        }
    })
}
