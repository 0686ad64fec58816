//! `coordinator selfplay-demo`: the built-in stand-in for a selfplay engine (see actors::jobs::demo). Prints one
//! JSON line `{"games_written":N,"output":...}` that the job executors verify against the file.

use std::path::PathBuf;

use actors::jobs::demo::{run_selfplay_demo, DemoArgs};
use actors::scheduler::board::BoardType;
use anyhow::{Context, Result};

use crate::client::emit;
use crate::failure::BadInput;

/// The flags of `selfplay-demo` (the job command template of `scheduler.jobs.command` fills them).
#[derive(Debug, clap::Args)]
pub struct SelfplayDemoArgs {
    /// Board: hex8, square8, square19 or hexagonal.
    #[arg(long)]
    pub board: String,
    /// Players per game: 2, 3 or 4.
    #[arg(long)]
    pub players: u8,
    /// Games to play.
    #[arg(long)]
    pub games: u32,
    /// Output file (SQLite), written atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// MCTS simulations per move (the scheduler's budget).
    #[arg(long, default_value_t = 800)]
    pub budget: u32,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most moves per game.
    #[arg(long, default_value_t = 500)]
    pub max_moves: u32,
    /// Time each move takes, in ms (the demo sleeps it per move, like an engine thinking); 0: full speed.
    #[arg(long, default_value_t = 0)]
    pub think_time_ms: u32,
    /// Share of random moves, a fraction from 0 to 1.
    #[arg(long, default_value_t = 0.1)]
    pub randomness: f64,
}

pub fn run(args: SelfplayDemoArgs) -> Result<()> {
    let board: BoardType = args
        .board
        .parse()
        .map_err(|e| BadInput::flag("--board", e))?;
    let players = args.players;
    if !(2..=4).contains(&players) {
        return Err(BadInput::flag(
            "--players",
            format!("{players}: expected 2, 3 or 4"),
        ));
    }
    let randomness = args.randomness;
    if !(0.0..=1.0).contains(&randomness) {
        return Err(BadInput::flag(
            "--randomness",
            format!("{randomness}: expected a fraction from 0 to 1"),
        ));
    }
    let demo = DemoArgs {
        board: board.name().to_string(),
        cells: board.cells(),
        players,
        games: args.games,
        out: args.out,
        budget: args.budget,
        seed: args.seed,
        max_moves: args.max_moves,
        think_time_ms: args.think_time_ms,
        randomness,
    };
    let report = run_selfplay_demo(demo).context("selfplay-demo")?;
    emit(&format!("{}\n", report.to_json_line()))
}
