//! The monitor's messages: the `/status` query, and the events its own spawned work reports back (a server
//! process ended, a `/health` poll answered, a timer fired). The state it publishes to subscribers,
//! [`DataServerState`], is a message too, so the daemon can forward it to the sync coordinator unchanged.

use serde::{Deserialize, Serialize};

use super::policy::{DataServerState, ExitReport, MonitorSnapshot};
use crate::runtime::Message;

/// Query: the monitor's status for `/status` (pid, state, restarts, circuit, last exit and error).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataServerStatus;

impl Message for DataServerStatus {
    type Reply = MonitorSnapshot;
    const NAME: &'static str = "DataServerStatus";
}

/// Event: server process `run_id` (`pid`) ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataServerExited {
    /// Which start of the server this was.
    pub run_id: u64,
    /// Its process id.
    pub pid: u32,
    /// How it ended and its last stderr lines.
    pub exit: ExitReport,
}

impl Message for DataServerExited {
    type Reply = ();
    const NAME: &'static str = "DataServerExited";
}

/// Event: a `/health` poll of server `run_id` answered (`error: None`) or failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthChecked {
    /// Which start of the server was polled.
    pub run_id: u64,
    /// Why the poll failed, if it did.
    pub error: Option<String>,
}

impl Message for HealthChecked {
    type Reply = ();
    const NAME: &'static str = "HealthChecked";
}

/// Timer: something the policy scheduled (a health check, a restart, the end of an open circuit) may be due.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MonitorWoke;

impl Message for MonitorWoke {
    type Reply = ();
    const NAME: &'static str = "MonitorWoke";
}

impl Message for DataServerState {
    type Reply = ();
    const NAME: &'static str = "DataServerState";
}
