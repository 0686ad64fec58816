//! `coordinator`: the daemon and its command-line tools.
//!
//! Layout:
//! - `cli`: the commands and flags (clap).
//! - `config`: the config file's sections, loading with line/column errors, `COORDINATOR_*` overrides.
//! - `telemetry`: logging setup (pretty or JSON lines) and the panic hook.
//! - `daemon`: `coordinator run`: builds the tree, serves the API, waits for signals.
//! - `api`: the control API routes.
//! - `demo`: `coordinator demo`, a local cluster of real daemons.
//! - `commands`: the other commands (check-config, status, dead-letters, data-server).
//! - `client`, `render`: the CLI side of the API, and its text for people (tables, humane durations).
//!
//! `main` alone maps outcomes to exit codes: 0 success, 1 runtime failure (root gave up, unreachable daemon),
//! 2 bad input (config, flags) or an unusable environment (a dead-letter store that cannot be opened).

mod api;
mod cli;
mod client;
mod commands;
mod config;
mod daemon;
mod demo;
mod plan_cmd;
mod render;
mod selfplay_cmd;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // An unusable dead-letter store is an environment problem (disk, permissions), not a crash that a
            // service manager's `Restart=on-failure` should loop on.
            if e.downcast_ref::<daemon::StoreUnusable>().is_some() {
                ExitCode::from(commands::EXIT_BAD_INPUT)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
