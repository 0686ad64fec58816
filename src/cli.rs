//! Command-line interface (clap derive): the commands and flags of design/contract.md.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Keeps a self-play training cluster busy and its data moving: one supervision tree of actors per node.
#[derive(Debug, Parser)]
#[command(name = "coordinator", version, propagate_version = true)]
pub struct Cli {
    /// Log output format (overrides `logging.format` in the config).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log level or filter, e.g. `info`, `debug`, `actors=debug,info` (overrides `logging.level`).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground until SIGINT/SIGTERM.
    Run {
        /// Config file.
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
        /// Which node of `cluster.nodes` this process is (default: the config's `node.name`).
        #[arg(long)]
        node: Option<String>,
    },
    /// Validate the config file and COORDINATOR_* overrides; print the resolved config or every error.
    CheckConfig {
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
    },
    /// Show the supervision tree, jobs, last sync and data-server state of a running daemon.
    Status {
        /// Control API base URL (default: from ./config.yaml `api.bind`, else http://127.0.0.1:8765).
        #[arg(long)]
        api: Option<String>,
        /// Print the raw JSON instead of the tree.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and act on the dead-letter store (through the daemon, or directly when none runs).
    DeadLetters {
        /// Control API base URL (default: from the config's `api.bind`).
        #[arg(long, global = true)]
        api: Option<String>,
        /// Config file (for the API address and the store path when no daemon runs).
        #[arg(long, global = true, default_value = "config.yaml")]
        config: PathBuf,
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Run one sync cycle now through the running daemon and print its report (exit 1 if any operation failed).
    Sync {
        /// Run one cycle and exit (the only mode).
        #[arg(long)]
        once: bool,
        /// Only pull from this peer.
        #[arg(long)]
        peer: Option<String>,
        /// Control API base URL (default: from the config's `api.bind`).
        #[arg(long)]
        api: Option<String>,
        /// Config file (for the API address, the token and the cycle deadline).
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
    },
    /// Dry run of the scheduler: read a cluster-state JSON (`-` = stdin), print priorities, budgets, allocation.
    Plan {
        #[arg(long)]
        state: PathBuf,
        /// Config file whose `scheduler` section supplies weights and tables (default: built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The data server process (the monitor starts it; it also runs standalone).
    DataServer {
        /// Root directory; categories are its subdirectories unless given with --category.
        #[arg(long)]
        root: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8766")]
        bind: String,
        /// `name=dir` (dir relative to --root); repeatable. Default: games, models, training.
        #[arg(long = "category")]
        categories: Vec<String>,
        /// Node name reported in /inventory.json.
        #[arg(long)]
        node: Option<String>,
        /// HTTP worker threads.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Files modified within this long wait for a later inventory.
        #[arg(long, default_value = "2s")]
        settle: humantime::Duration,
        /// TEST HOOK ONLY: stop answering /health after this long (simulates a hung server in fault drills).
        #[arg(long, hide = true)]
        test_hook_hang_health_after: Option<humantime::Duration>,
    },
    /// Print the generated key reference of docs/configuration.md (every key, default, env var).
    #[command(hide = true)]
    ConfigReference,
    /// Built-in stand-in for a selfplay engine: plays synthetic games and writes them atomically.
    SelfplayDemo {
        #[arg(long)]
        board: String,
        #[arg(long)]
        players: u8,
        #[arg(long)]
        games: u32,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 800)]
        budget: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 500)]
        max_moves: u32,
        #[arg(long, default_value_t = 500)]
        think_time_ms: u32,
        #[arg(long, default_value_t = 0.1)]
        randomness: f64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// List dead letters, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one dead letter in full.
    Show { id: i64 },
    /// Re-send a stored message to its actor (needs the running daemon).
    Replay { id: i64 },
    /// Remove recovered and abandoned letters (older than DUR, e.g. 7d; default: all of them).
    Purge {
        #[arg(long)]
        older_than: Option<humantime::Duration>,
    },
}
