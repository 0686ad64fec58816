//! What a sync cycle reports: per operation (one category from one peer) its files, bytes, duration and outcome,
//! and per file every transport attempt. `GET /sync`, `POST /sync/run` and `coordinator sync --once` show it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::TransportKind;

/// One transport attempt (the fields of its structured log event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    pub transport: TransportKind,
    /// 1-based attempt on this transport; 0 when it was skipped (circuit open).
    pub transport_attempt: u32,
    pub success: bool,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub bytes: u64,
    /// The transport tried next if this one failed.
    pub fallback_to: Option<TransportKind>,
}

/// How a planned file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOutcome {
    /// Verified and renamed into place.
    Installed,
    /// The peer's checksum equals the held copy: nothing fetched.
    Unchanged,
    /// Not started: pressure gate closed, not enough free disk, or the cycle was cancelled first.
    Deferred,
    /// Given up this cycle (retried next cycle, or a dead letter after an integrity failure).
    Failed,
    /// A corrupt database, moved to quarantine.
    Quarantined,
}

/// One planned file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    pub path: String,
    pub outcome: FileOutcome,
    pub bytes: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub attempts: Vec<AttemptReport>,
}

/// One operation: one category from one peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationReport {
    pub peer: String,
    pub category: String,
    /// `ok`, `failed` (a file or the listing failed) or `skipped` (peer not listed: circuit open, no data_url).
    pub outcome: String,
    /// Files the plan fetched (new or changed).
    pub planned: usize,
    pub installed: usize,
    /// Files listed but not fetched (unchanged, skip rules).
    pub skipped: usize,
    pub failed: usize,
    pub bytes: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// Files with at least one attempt or a problem (at most [`FILES_KEPT`]).
    pub files: Vec<FileReport>,
}

/// Files kept per operation in a report.
pub const FILES_KEPT: usize = 100;

/// A file given up after its integrity retry: the actor stores it as a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaveUp {
    pub peer: String,
    pub category: String,
    pub path: String,
    pub error: String,
}

/// One cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleReport {
    pub id: u64,
    /// Why it ran: `interval`, `notice from P`, `run`, …
    pub trigger: String,
    /// Only this peer, when the trigger named one.
    pub peers: Option<Vec<String>>,
    pub started_at: String,
    pub duration_ms: u64,
    /// No operation failed.
    pub ok: bool,
    /// Cancelled by shutdown or the cycle's watchdog.
    pub cancelled: bool,
    /// Set when the cycle could not run at all.
    pub error: Option<String>,
    pub operations: Vec<OperationReport>,
    /// Games installed per config (`hex8_2p` → n), also told to the scheduler.
    pub games: BTreeMap<String, u64>,
    pub bytes: u64,
    pub installed: usize,
    pub gave_up: Vec<GaveUp>,
}

impl CycleReport {
    /// A cycle that did not run (or whose runner vanished).
    pub fn not_run(id: u64, trigger: &str, error: impl Into<String>) -> CycleReport {
        CycleReport {
            id,
            trigger: trigger.to_string(),
            peers: None,
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            duration_ms: 0,
            ok: false,
            cancelled: false,
            error: Some(error.into()),
            operations: Vec::new(),
            games: BTreeMap::new(),
            bytes: 0,
            installed: 0,
            gave_up: Vec::new(),
        }
    }

    /// One line for logs and the health detail.
    pub fn summary(&self) -> String {
        if let Some(error) = &self.error {
            return format!("cycle {} did not run: {error}", self.id);
        }
        let failed: Vec<String> = self
            .operations
            .iter()
            .filter(|o| o.outcome != "ok")
            .map(|o| {
                format!(
                    "{} {} {}{}",
                    o.category,
                    o.peer,
                    o.outcome,
                    o.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let mut text = format!(
            "cycle {}: {} operations, {} files installed, {} bytes",
            self.id,
            self.operations.len(),
            self.installed,
            self.bytes
        );
        if self.cancelled {
            text.push_str(", cancelled");
        }
        if !failed.is_empty() {
            text.push_str(&format!("; not ok: {}", failed.join(", ")));
        }
        text
    }
}
