//! The shape of the supervision tree and its status snapshot for `/status`, `/health` and `coordinator status`.
//!
//! The shape is fixed when the tree is built; the snapshot reads each node's shared status without messaging any
//! actor, so it answers even while an actor is hung. [`TreeStatus::health_checks`] turns a snapshot into one
//! health check per node (`tree.<name>`), a pure function of the states.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::child::{ChildKind, ChildShared, ChildState, FailureRecord};
use super::health::{HealthCheck, HealthStatus};

/// Prefix of the health checks made from the tree: `tree.root`, `tree.scheduler`, ...
pub const TREE_CHECK_PREFIX: &str = "tree.";

/// One node of the tree and its children, in start order.
#[derive(Debug, Clone)]
pub struct TreeShape {
    pub shared: Arc<ChildShared>,
    pub children: Vec<TreeShape>,
}

/// Status of one node (contract: name, kind, state, restarts, last_failure, children).
#[derive(Debug, Clone, Serialize)]
pub struct TreeStatus {
    pub name: String,
    pub kind: ChildKind,
    pub state: ChildState,
    pub restarts: u64,
    pub last_failure: Option<FailureRecord>,
    pub children: Vec<TreeStatus>,
}

/// Per-actor message counters (contract: handled, failed, mailbox).
#[derive(Debug, Clone, Serialize)]
pub struct ActorStats {
    pub handled: u64,
    pub failed: u64,
    pub mailbox: u64,
}

impl TreeStatus {
    /// One health check per node of the tree, named `tree.<name>`: running is ok, starting, restarting, backing
    /// off, stopping or stopped is degraded, failed is failing. A placeholder's detail says it does no work yet.
    pub fn health_checks(&self) -> BTreeMap<String, HealthCheck> {
        let mut out = BTreeMap::new();
        self.collect_checks(&mut out);
        out
    }

    fn collect_checks(&self, out: &mut BTreeMap<String, HealthCheck>) {
        out.insert(
            format!("{TREE_CHECK_PREFIX}{}", self.name),
            self.health_check(),
        );
        for child in &self.children {
            child.collect_checks(out);
        }
    }

    /// This node's own check (see [`TreeStatus::health_checks`]).
    pub fn health_check(&self) -> HealthCheck {
        let last = self
            .last_failure
            .as_ref()
            .map(|f| format!("; last failure at {}: {}", f.at, f.reason))
            .unwrap_or_default();
        let restarts = match self.restarts {
            0 => String::new(),
            1 => " (restarted once)".to_string(),
            n => format!(" (restarted {n} times)"),
        };
        let (status, detail) = match self.state {
            ChildState::Running => (HealthStatus::Ok, format!("running{restarts}")),
            ChildState::Starting => (HealthStatus::Degraded, "starting".to_string()),
            ChildState::Restarting => (
                HealthStatus::Degraded,
                format!("restarting with fresh state{restarts}{last}"),
            ),
            ChildState::BackingOff => (
                HealthStatus::Degraded,
                format!("backing off before its restart{restarts}{last}"),
            ),
            ChildState::Stopping => (HealthStatus::Degraded, "stopping".to_string()),
            ChildState::Stopped => (
                HealthStatus::Degraded,
                format!("stopped; its restart type does not restart it{last}"),
            ),
            ChildState::Failed => (
                HealthStatus::Failing,
                format!("failed and given up on{restarts}{last}"),
            ),
        };
        let detail = if self.kind == ChildKind::Placeholder {
            format!("{detail}; PLACEHOLDER: this actor does no work yet")
        } else {
            detail
        };
        HealthCheck::new(status, detail)
    }
}

impl TreeShape {
    pub fn status(&self) -> TreeStatus {
        TreeStatus {
            name: self.shared.name.clone(),
            kind: self.shared.kind,
            state: self.shared.state(),
            restarts: self.shared.restarts(),
            last_failure: self.shared.last_failure(),
            children: self.children.iter().map(TreeShape::status).collect(),
        }
    }

    /// Counters of every worker in the tree, by name.
    pub fn actor_stats(&self) -> BTreeMap<String, ActorStats> {
        let mut out = BTreeMap::new();
        self.collect_stats(&mut out);
        out
    }

    fn collect_stats(&self, out: &mut BTreeMap<String, ActorStats>) {
        if self.shared.kind.is_worker() {
            out.insert(
                self.shared.name.clone(),
                ActorStats {
                    handled: self.shared.handled(),
                    failed: self.shared.failed(),
                    mailbox: self.shared.mailbox_depth(),
                },
            );
        }
        for child in &self.children {
            child.collect_stats(out);
        }
    }

    /// Finds a node by name.
    pub fn find(&self, name: &str) -> Option<&TreeShape> {
        if self.shared.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        name: &str,
        kind: ChildKind,
        state: ChildState,
        children: Vec<TreeStatus>,
    ) -> TreeStatus {
        TreeStatus {
            name: name.to_string(),
            kind,
            state,
            restarts: 0,
            last_failure: None,
            children,
        }
    }

    #[test]
    fn each_state_maps_to_its_health() {
        let table = [
            (ChildState::Running, HealthStatus::Ok),
            (ChildState::Starting, HealthStatus::Degraded),
            (ChildState::Restarting, HealthStatus::Degraded),
            (ChildState::BackingOff, HealthStatus::Degraded),
            (ChildState::Stopping, HealthStatus::Degraded),
            (ChildState::Stopped, HealthStatus::Degraded),
            (ChildState::Failed, HealthStatus::Failing),
        ];
        for (state, expected) in table {
            let check = node("x", ChildKind::Worker, state, vec![]).health_check();
            assert_eq!(check.status, expected, "{state:?}: {}", check.detail);
            assert!(
                check.detail.contains(&state.as_str().replace('_', " ")),
                "{state:?}: {}",
                check.detail
            );
        }
    }

    #[test]
    fn one_check_per_node_named_after_it_with_the_last_failure() {
        let mut backing_off = node("sync", ChildKind::Worker, ChildState::BackingOff, vec![]);
        backing_off.restarts = 2;
        backing_off.last_failure = Some(FailureRecord {
            at: "2026-01-01T00:00:00.000Z".into(),
            reason: "panic: boom".into(),
        });
        let tree = node(
            "root",
            ChildKind::Supervisor,
            ChildState::Running,
            vec![
                node(
                    "dead_letters",
                    ChildKind::Worker,
                    ChildState::Running,
                    vec![],
                ),
                backing_off,
                node(
                    "resources",
                    ChildKind::Placeholder,
                    ChildState::Running,
                    vec![],
                ),
            ],
        );
        let checks = tree.health_checks();
        let names: Vec<&str> = checks.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "tree.dead_letters",
                "tree.resources",
                "tree.root",
                "tree.sync"
            ]
        );
        let sync = &checks["tree.sync"];
        assert_eq!(sync.status, HealthStatus::Degraded);
        assert!(sync.detail.contains("panic: boom"), "{}", sync.detail);
        assert!(sync.detail.contains("restarted 2 times"), "{}", sync.detail);
        let placeholder = &checks["tree.resources"];
        assert_eq!(placeholder.status, HealthStatus::Ok);
        assert!(
            placeholder.detail.contains("PLACEHOLDER"),
            "{}",
            placeholder.detail
        );
        assert!(!checks["tree.dead_letters"].detail.contains("PLACEHOLDER"));
    }
}
