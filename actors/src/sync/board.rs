//! What `GET /sync` shows, kept outside the actor so the API reads it without messaging (it answers while a
//! cycle runs): the last cycles with every attempt, the breakers' states, the counters and the local data
//! server's state. The actor writes it; the API takes snapshots.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::budget::BreakerView;
use super::config::{Role, TransportKind};
use super::report::CycleReport;
use super::run::Runner;
use crate::data_server::monitor::policy::DataServerState;
use crate::runtime::HealthCheck;

/// The counters and states the actor publishes after each change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    pub running_cycle: Option<u64>,
    pub consecutive_failed_cycles: u32,
    pub stalled_cycles: u64,
    pub refused_requests: u64,
    pub pending_peers: usize,
    pub pending_runs: usize,
    /// RFC 3339 time of the last ok cycle.
    pub last_successful_sync: Option<String>,
    pub seconds_since_last_successful_sync: Option<f64>,
    pub local_data_server: Option<DataServerState>,
    pub pressure_paused: Option<String>,
    pub health: Option<HealthCheck>,
}

/// `GET /sync`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncSnapshot {
    pub node: String,
    pub roles: Vec<Role>,
    pub transports: Vec<TransportKind>,
    #[serde(flatten)]
    pub state: SyncState,
    pub breakers: Vec<BreakerView>,
    /// Latest first.
    pub cycles: Vec<CycleReport>,
}

#[derive(Default)]
struct Inner {
    state: SyncState,
    cycles: VecDeque<CycleReport>,
    runner: Option<Arc<Runner>>,
}

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct SyncBoard {
    inner: Arc<RwLock<Inner>>,
}

impl SyncBoard {
    pub fn new() -> SyncBoard {
        SyncBoard::default()
    }

    pub(crate) fn set_runner(&self, runner: Arc<Runner>) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).runner = Some(runner);
    }

    pub(crate) fn set_state(&self, state: SyncState) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).state = state;
    }

    pub(crate) fn push_cycle(&self, report: CycleReport, keep: usize) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.cycles.push_front(report);
        inner.cycles.truncate(keep.max(1));
    }

    /// What `GET /sync` answers.
    pub fn snapshot(&self) -> SyncSnapshot {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (node, roles, transports, breakers) = match &inner.runner {
            Some(runner) => (
                runner.node.clone(),
                runner.roles.clone(),
                runner.transports.iter().map(|t| t.kind()).collect(),
                runner
                    .breakers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .snapshot(now),
            ),
            None => (String::new(), Vec::new(), Vec::new(), Vec::new()),
        };
        SyncSnapshot {
            node,
            roles,
            transports,
            state: inner.state.clone(),
            breakers,
            cycles: inner.cycles.iter().cloned().collect(),
        }
    }
}
