//! The pressure gate: whether this node may start new work (selfplay jobs, sync pulls) right now.
//!
//! The resource optimizer closes it at disk or memory critical and opens it again below warning; the scheduler
//! checks it before starting a job and sync before starting a pull. It is a shared flag rather than a message so
//! a check costs one atomic load and never waits on the optimizer. Work already running is not stopped, and
//! nothing is deleted: the gate only holds back what would start next.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Shared, cheap to clone; every clone sees the same state. Open (work may start) by default.
#[derive(Debug, Clone, Default)]
pub struct PressureGate {
    inner: Arc<GateInner>,
}

#[derive(Debug, Default)]
struct GateInner {
    paused: AtomicBool,
    reason: RwLock<Option<String>>,
}

impl PressureGate {
    pub fn new() -> PressureGate {
        PressureGate::default()
    }

    /// Holds back new work, saying why (shown in `/status` and logs by whoever reads it).
    pub fn pause(&self, reason: impl Into<String>) {
        *self.inner.reason.write().unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
        self.inner.paused.store(true, Ordering::Release);
    }

    /// Lets new work start again.
    pub fn resume(&self) {
        self.inner.paused.store(false, Ordering::Release);
        *self.inner.reason.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// True while new work must not start.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::Acquire)
    }

    /// Why new work is held back, while it is.
    pub fn reason(&self) -> Option<String> {
        if !self.is_paused() {
            return None;
        }
        self.inner
            .reason
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_by_default_and_shared_between_clones() {
        let gate = PressureGate::new();
        let reader = gate.clone();
        assert!(!reader.is_paused());
        assert_eq!(reader.reason(), None);
        gate.pause("disk /data at 96% (critical 95%)");
        assert!(reader.is_paused());
        assert_eq!(
            reader.reason().as_deref(),
            Some("disk /data at 96% (critical 95%)")
        );
        gate.resume();
        assert!(!reader.is_paused());
        assert_eq!(reader.reason(), None);
    }
}
