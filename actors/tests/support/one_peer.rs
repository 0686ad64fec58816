//! A sync runner on node `dst` (training) pulling the `games` category from one peer `src` over http, for the
//! tests and the sync benchmark that drive cycles by hand. Included with `#[path]` by each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use actors::pressure::PressureGate;
use actors::runtime::circuit_breaker::Jitter;
use actors::sync::config::{BudgetConfig, Role, SyncConfig, TransportKind};
use actors::sync::plan::Peer;
use actors::sync::report::CycleReport;
use actors::sync::run::{CycleRequest, Layout, Runner};
use actors::sync::transport::Cancel;

/// The runner, installing under `dest/games/src/`, each operation's budget `budget_total`.
pub fn runner(data_url: &str, dest: &Path, budget_total: Duration) -> Runner {
    let config = SyncConfig {
        transports: vec![TransportKind::Http],
        min_free_disk: actors::units::ByteSize::mib(1),
        budget: BudgetConfig {
            total: budget_total,
            ..Default::default()
        },
        ..SyncConfig::default()
    };
    Runner::new(
        config,
        "dst".into(),
        vec![Role::Training],
        vec![Peer {
            name: "src".into(),
            roles: vec![Role::Selfplay],
            data_url: Some(data_url.to_string()),
            api_url: None,
            ssh: None,
        }],
        Layout {
            categories: BTreeMap::from([("games".to_string(), dest.join("games"))]),
            quarantine: dest.join("quarantine"),
        },
        PressureGate::new(),
        Jitter::Fixed(0.0),
    )
}

/// One cycle against `src`, to its end.
pub fn cycle(runner: &Runner, id: u64) -> CycleReport {
    runner.run_cycle(
        &CycleRequest {
            id,
            trigger: "by hand".into(),
            peers: Some(BTreeSet::from(["src".to_string()])),
        },
        &Cancel::new(),
    )
}
