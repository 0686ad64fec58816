//! `coordinator plan --state FILE`: the scheduler's dry run. Reads a cluster-state JSON (`-` = stdin), prints
//! priorities, budgets and the allocation as JSON. Bad input exits 2 with the JSON path of the problem.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use actors::scheduler::config::SchedulerPolicyConfig;
use actors::scheduler::plan::plan_from_json;
use anyhow::{Context, Result};

use crate::commands::EXIT_BAD_INPUT;
use crate::config;

pub fn run(state: &Path, config_path: Option<&Path>) -> Result<ExitCode> {
    let policy = match config_path {
        None => SchedulerPolicyConfig::default(),
        Some(path) => match config::load_config(path, config::process_env(), None) {
            Ok(loaded) => loaded.config.scheduler.policy,
            Err(errors) => {
                eprintln!("{errors}");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        },
    };
    let text = if state == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the plan state from stdin")?;
        text
    } else {
        match std::fs::read_to_string(state) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: --state {}: {e}", state.display());
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        }
    };
    match plan_from_json(&text, &policy) {
        Ok(output) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&output).context("cannot print the plan")?
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: plan state {}: {e}", state.display());
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}
