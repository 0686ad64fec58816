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
//! - `plan_cmd`, `selfplay_cmd`: `coordinator plan` and `coordinator selfplay-demo`, each with its own flags.
//! - `client`, `render`: the CLI side of the API, and its text for people (tables, humane durations).
//! - `failure`: how a command fails (`BadInput` or a runtime error).
//!
//! `main` alone maps outcomes to exit codes: 0 success (also `--help`), 1 runtime failure (root gave up, API
//! address in use, unreachable daemon, failed operation), 2 bad input (config, flags, plan state) or an unusable
//! environment (a dead-letter store that cannot be opened: restarting cannot help).

mod api;
mod cli;
mod client;
mod commands;
mod config;
mod daemon;
mod demo;
mod failure;
mod plan_cmd;
mod render;
mod selfplay_cmd;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; a bad flag is bad input.
            let _ = e.print();
            return match e.use_stderr() {
                true => ExitCode::from(failure::EXIT_BAD_INPUT),
                false => ExitCode::SUCCESS,
            };
        }
    };
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let (code, text) = failure::exit_code(&error);
            eprintln!("{text}");
            ExitCode::from(code)
        }
    }
}
