//! The sync actor's messages: requests from the API and the daemon (a peer's notice, an operator's run, local
//! games written, the local data server's state), a dead-lettered file's replay, and the actor's own events
//! (timer, a cycle's end).

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::report::CycleReport;
use crate::runtime::Message;

/// Command: peer `peer` has new files; pull from it soon (`POST /sync/notify?peer=NAME`). Refused when the
/// queue is full or the peer is unknown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifySync {
    pub peer: String,
}

impl Message for NotifySync {
    type Reply = Result<(), String>;
    const NAME: &'static str = "NotifySync";
}

/// Command: run one cycle now (`POST /sync/run`, `sync --once`), for one peer or all. The reply is where the
/// cycle's report will come.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSync {
    pub peer: Option<String>,
}

impl Message for RunSync {
    type Reply = Result<oneshot::Receiver<CycleReport>, String>;
    const NAME: &'static str = "RunSync";
}

/// Event: the local scheduler's job wrote games (tell the training nodes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalGamesWritten {
    pub config: String,
    pub games: u64,
}

impl Message for LocalGamesWritten {
    type Reply = ();
    const NAME: &'static str = "LocalGamesWritten";
}

/// Command: pull this file again (the dead letter of a file that failed its integrity check twice; replaying
/// it runs a cycle for its peer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullFile {
    pub peer: String,
    pub category: String,
    pub path: String,
}

impl Message for PullFile {
    type Reply = ();
    const NAME: &'static str = "PullFile";
}

/// Timer: a cycle may be due, or a running one past its deadline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncWoke;

impl Message for SyncWoke {
    type Reply = ();
    const NAME: &'static str = "SyncWoke";
}

/// Timer: refresh the gauges that move with time (`seconds_since_last_successful_sync`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncTick;

impl Message for SyncTick {
    type Reply = ();
    const NAME: &'static str = "SyncTick";
}

/// Event: cycle `id` ended (from its runner thread).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CycleFinished {
    pub id: u64,
    pub report: CycleReport,
}

impl Message for CycleFinished {
    type Reply = ();
    const NAME: &'static str = "CycleFinished";
}
