//! `coordinator selfplay-demo`: the built-in stand-in for a selfplay engine (see actors::jobs::demo). Prints one
//! JSON line `{"games_written":N,"output":...}` that the job executors verify against the file.

use std::process::ExitCode;

use actors::jobs::demo::{run_selfplay_demo, DemoArgs};
use actors::scheduler::board::BoardType;
use anyhow::Result;

use crate::cli::Command;
use crate::commands::EXIT_BAD_INPUT;

pub fn run(command: Command) -> Result<ExitCode> {
    let Command::SelfplayDemo {
        board,
        players,
        games,
        out,
        budget,
        seed,
        max_moves,
        think_time_ms,
        randomness,
    } = command
    else {
        anyhow::bail!("selfplay-demo called with another command");
    };
    let board: BoardType = match board.parse() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: --board: {e}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    if !(2..=4).contains(&players) {
        eprintln!("error: --players {players}: expected 2, 3 or 4");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    if !(0.0..=1.0).contains(&randomness) {
        eprintln!("error: --randomness {randomness}: expected a fraction from 0 to 1");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    let args = DemoArgs {
        board: board.name().to_string(),
        cells: board.cells(),
        players,
        games,
        out,
        budget,
        seed,
        max_moves,
        think_time_ms,
        randomness,
    };
    match run_selfplay_demo(args) {
        Ok(report) => {
            println!("{}", report.to_json_line());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: selfplay-demo: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
