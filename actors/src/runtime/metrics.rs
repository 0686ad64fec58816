//! The runtime's Prometheus metrics: messages handled and failed per actor and type, restarts, dead letters.
//!
//! One process-wide registry ([`registry`]); domain actors register their own metrics in it too, and the control
//! API renders it at `/metrics`.

use std::sync::OnceLock;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Metrics owned by the runtime.
pub struct RuntimeMetrics {
    pub messages_handled: IntCounterVec,
    pub messages_failed: IntCounterVec,
    pub restarts: IntCounterVec,
    pub abandoned_threads: IntCounterVec,
    pub dead_letters_stored: IntCounter,
    pub dead_letters_pending: IntGauge,
    pub dead_letters_evicted: IntCounter,
    /// Letters written to the spill file (store failing, queue full or closed).
    pub dead_letters_spilled: IntCounter,
    /// Letters neither stored nor spilled (kept only in an error log line).
    pub dead_letters_lost: IntCounter,
    /// Letters waiting in the spill file.
    pub dead_letters_spill_pending: IntGauge,
    /// 1 while the dead-letter store takes writes, 0 while it fails.
    pub dead_letter_store_up: IntGauge,
    /// Failed writes to the dead-letter store.
    pub dead_letter_store_failures: IntCounter,
}

fn build(registry: &Registry) -> RuntimeMetrics {
    fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let c = IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}"));
        let _ = r.register(Box::new(c.clone()));
        c
    }
    fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
        let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
        let _ = r.register(Box::new(c.clone()));
        c
    }
    let pending = IntGauge::new(
        "coordinator_dead_letters_pending",
        "Dead letters waiting for replay or purge",
    )
    .unwrap_or_else(|e| panic!("metric: {e}"));
    let _ = registry.register(Box::new(pending.clone()));
    fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
        let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
        let _ = r.register(Box::new(g.clone()));
        g
    }
    RuntimeMetrics {
        messages_handled: counter_vec(
            registry,
            "coordinator_messages_handled_total",
            "Messages handled successfully, per actor and message type",
            &["actor", "msg"],
        ),
        messages_failed: counter_vec(
            registry,
            "coordinator_messages_failed_total",
            "Messages whose handler failed or panicked, per actor and message type",
            &["actor", "msg"],
        ),
        restarts: counter_vec(
            registry,
            "coordinator_restarts_total",
            "Restarts per actor",
            &["actor"],
        ),
        abandoned_threads: counter_vec(
            registry,
            "coordinator_abandoned_threads_total",
            "Threads left behind because a handler blocked them; a fresh instance took over on a fresh thread",
            &["actor"],
        ),
        dead_letters_stored: counter(
            registry,
            "coordinator_dead_letters_total",
            "Dead letters stored",
        ),
        dead_letters_pending: pending,
        dead_letters_evicted: counter(
            registry,
            "coordinator_dead_letters_evicted_total",
            "Dead letters removed to keep the store within max_entries",
        ),
        dead_letters_spilled: counter(
            registry,
            "coordinator_dead_letters_spilled_total",
            "Dead letters written to the spill file because the store or its queue could not take them",
        ),
        dead_letters_lost: counter(
            registry,
            "coordinator_dead_letters_lost_total",
            "Dead letters neither stored nor spilled (kept only in an error log line)",
        ),
        dead_letters_spill_pending: gauge(
            registry,
            "coordinator_dead_letters_spill_pending",
            "Dead letters waiting in the spill file to be moved into the store",
        ),
        dead_letter_store_up: gauge(
            registry,
            "coordinator_dead_letter_store_up",
            "1 while the dead-letter store takes writes, 0 while it fails",
        ),
        dead_letter_store_failures: counter(
            registry,
            "coordinator_dead_letter_store_failures_total",
            "Failed writes to the dead-letter store",
        ),
    }
}

/// The process-wide registry rendered at `/metrics`.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::new)
}

/// Registers `metric` in the process-wide registry and hands it back (a name registered twice keeps the first).
/// The one way every module adds its metrics to `/metrics`.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(metric: C) -> C {
    let _ = registry().register(Box::new(metric.clone()));
    metric
}

/// The runtime's metrics (registered on first use).
pub fn runtime() -> &'static RuntimeMetrics {
    static METRICS: OnceLock<RuntimeMetrics> = OnceLock::new();
    METRICS.get_or_init(|| build(registry()))
}

/// Renders every registered metric in the Prometheus text format.
pub fn render() -> String {
    let encoder = prometheus::TextEncoder::new();
    encoder
        .encode_to_string(&registry().gather())
        .unwrap_or_else(|e| format!("# metrics encoding failed: {e}\n"))
}
