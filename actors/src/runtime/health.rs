//! The health board: named checks that components publish and `/health` reads.
//!
//! Each component that can be unwell (the dead-letter store, the data server, jobs, sync, resources) owns one or
//! more named checks and sets them when its state changes; the control API reads a snapshot without messaging
//! any actor, so `/health` answers while an actor hangs. The board knows nothing of what a check means: the
//! component that sets it writes the detail an operator reads. The overall status is the worst check.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// How well one check (or the whole node) is doing. Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working as configured.
    Ok,
    /// Working, but something needs a look (a fallback is in use, a limit is near).
    Degraded,
    /// Not doing its job; `/health` answers 503.
    Failing,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Failing => "failing",
        }
    }

    /// The worse of two statuses.
    pub fn worst(self, other: HealthStatus) -> HealthStatus {
        self.max(other)
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named check's current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub status: HealthStatus,
    /// What an operator reads: what is wrong, or what was checked when all is well.
    pub detail: String,
}

impl HealthCheck {
    pub fn new(status: HealthStatus, detail: impl Into<String>) -> HealthCheck {
        HealthCheck {
            status,
            detail: detail.into(),
        }
    }

    pub fn ok(detail: impl Into<String>) -> HealthCheck {
        HealthCheck::new(HealthStatus::Ok, detail)
    }
}

/// Shared, cheap to clone; every clone sees the same checks.
#[derive(Debug, Clone, Default)]
pub struct HealthBoard {
    checks: Arc<RwLock<BTreeMap<String, HealthCheck>>>,
}

impl HealthBoard {
    pub fn new() -> HealthBoard {
        HealthBoard::default()
    }

    /// Sets (or replaces) the check `name`.
    pub fn set(&self, name: &str, check: HealthCheck) {
        let mut checks = self.checks.write().unwrap_or_else(|e| e.into_inner());
        match checks.get_mut(name) {
            Some(current) => *current = check,
            None => {
                checks.insert(name.to_string(), check);
            }
        }
    }

    /// Removes the check `name` (its component is gone or disabled).
    pub fn clear(&self, name: &str) {
        self.checks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// The check `name`, if set.
    pub fn get(&self, name: &str) -> Option<HealthCheck> {
        self.checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every check, by name.
    pub fn snapshot(&self) -> BTreeMap<String, HealthCheck> {
        self.checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The overall status of a set of checks: the worst of them, `Ok` when there are none.
pub fn overall<'a>(checks: impl IntoIterator<Item = &'a HealthCheck>) -> HealthStatus {
    checks
        .into_iter()
        .fold(HealthStatus::Ok, |worst, check| worst.worst(check.status))
}

/// What `/health` answers (contract: `{"status", "checks": {name: {status, detail}}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub checks: BTreeMap<String, HealthCheck>,
}

impl HealthReport {
    /// The report of `checks` (the tree's and the board's, merged by the caller). While the root supervisor is not
    /// running the node is failing whatever the checks say.
    pub fn new(root_running: bool, checks: BTreeMap<String, HealthCheck>) -> HealthReport {
        let worst = overall(checks.values());
        let status = if root_running {
            worst
        } else {
            HealthStatus::Failing
        };
        HealthReport { status, checks }
    }

    /// 200 for ok and degraded, 503 for failing.
    pub fn http_status(&self) -> u16 {
        match self.status {
            HealthStatus::Ok | HealthStatus::Degraded => 200,
            HealthStatus::Failing => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_is_the_worst_check() {
        let board = HealthBoard::new();
        assert_eq!(overall(board.snapshot().values()), HealthStatus::Ok);
        board.set("a", HealthCheck::ok("fine"));
        board.set("b", HealthCheck::new(HealthStatus::Degraded, "slow"));
        assert_eq!(overall(board.snapshot().values()), HealthStatus::Degraded);
        board.set("c", HealthCheck::new(HealthStatus::Failing, "down"));
        assert_eq!(overall(board.snapshot().values()), HealthStatus::Failing);
        board.clear("c");
        assert_eq!(overall(board.snapshot().values()), HealthStatus::Degraded);
    }

    #[test]
    fn set_replaces_and_clones_share() {
        let board = HealthBoard::new();
        let other = board.clone();
        board.set("x", HealthCheck::new(HealthStatus::Failing, "down"));
        other.set("x", HealthCheck::ok("up again"));
        assert_eq!(board.get("x"), Some(HealthCheck::ok("up again")));
        assert_eq!(board.snapshot().len(), 1);
    }

    #[test]
    fn report_is_503_only_when_failing_or_the_root_is_down() {
        let mut checks = BTreeMap::new();
        checks.insert("a".to_string(), HealthCheck::ok("fine"));
        let ok = HealthReport::new(true, checks.clone());
        assert_eq!((ok.status, ok.http_status()), (HealthStatus::Ok, 200));
        let root_down = HealthReport::new(false, checks.clone());
        assert_eq!(
            (root_down.status, root_down.http_status()),
            (HealthStatus::Failing, 503)
        );
        checks.insert(
            "b".to_string(),
            HealthCheck::new(HealthStatus::Degraded, "slow"),
        );
        let degraded = HealthReport::new(true, checks.clone());
        assert_eq!(
            (degraded.status, degraded.http_status()),
            (HealthStatus::Degraded, 200)
        );
        checks.insert(
            "c".to_string(),
            HealthCheck::new(HealthStatus::Failing, "down"),
        );
        let failing = HealthReport::new(true, checks);
        assert_eq!(
            (failing.status, failing.http_status()),
            (HealthStatus::Failing, 503)
        );
        let body = serde_json::to_value(&failing).unwrap();
        assert_eq!(body["status"], "failing");
        assert_eq!(body["checks"]["c"]["status"], "failing");
        assert_eq!(body["checks"]["c"]["detail"], "down");
    }

    #[test]
    fn status_names_match_the_contract() {
        assert_eq!(HealthStatus::Ok.to_string(), "ok");
        assert_eq!(HealthStatus::Degraded.to_string(), "degraded");
        assert_eq!(HealthStatus::Failing.to_string(), "failing");
        assert_eq!(
            serde_json::to_string(&HealthStatus::Degraded).unwrap(),
            "\"degraded\""
        );
    }
}
