//! The shape of the supervision tree and its status snapshot for `/status` and `coordinator status`.
//!
//! The shape is fixed when the tree is built; the snapshot reads each node's shared status without messaging any
//! actor, so it answers even while an actor is hung.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::child::{ChildKind, ChildShared, ChildState, FailureRecord};

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
        if self.shared.kind == ChildKind::Worker {
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
