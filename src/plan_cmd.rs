//! `coordinator plan --state FILE`: the scheduler's dry run. Reads a cluster-state JSON (`-` = stdin), prints
//! priorities, budgets and the allocation as JSON. Bad input exits 2 with the JSON path of the problem.

use std::io::Read;
use std::path::Path;

use actors::scheduler::config::SchedulerPolicyConfig;
use actors::scheduler::plan::plan_from_json;
use anyhow::{Context, Result};

use crate::client::emit;
use crate::config;
use crate::failure::BadInput;

pub fn run(state: &Path, config_path: Option<&Path>) -> Result<()> {
    let policy = match config_path {
        None => SchedulerPolicyConfig::default(),
        Some(path) => match config::load_config(path, config::process_env(), None) {
            Ok(loaded) => loaded.config.scheduler.policy,
            Err(errors) => return Err(BadInput::report(errors)),
        },
    };
    let text = if state == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the plan state from stdin")?;
        text
    } else {
        std::fs::read_to_string(state)
            .map_err(|e| BadInput::flag(&format!("--state {}", state.display()), e))?
    };
    let output = plan_from_json(&text, &policy)
        .map_err(|e| BadInput::report(format!("error: plan state {}: {e}", state.display())))?;
    let json = serde_json::to_string_pretty(&output).context("cannot print the plan")?;
    emit(&format!("{json}\n"))
}
