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
    /// Validate the config file and COORDINATOR_* overrides as `run` would; print the resolved config or every error.
    CheckConfig {
        /// Config file.
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
        /// Check as `run --node NAME` would (the node must be in a non-empty `cluster.nodes`).
        #[arg(long)]
        node: Option<String>,
        /// Also fail (exit 2) when a COORDINATOR_* override was ignored, for CI of a deployment repository.
        #[arg(long)]
        strict: bool,
    },
    /// Show the supervision tree, jobs, last sync and data-server state of a running daemon.
    Status {
        /// Control API base URL or bare `host:port` (default: from ./config.yaml `api.bind`, else 127.0.0.1:8765).
        #[arg(long)]
        api: Option<String>,
        /// Print the API's JSON (status plus the jobs, plan and sync sections) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and act on the dead-letter store (through the daemon, or directly when none runs).
    DeadLetters {
        /// Control API base URL or bare `host:port` (default: from the config's `api.bind`).
        #[arg(long, global = true)]
        api: Option<String>,
        /// Config file (for the API address and the store path when no daemon runs).
        #[arg(long, global = true, default_value = "config.yaml")]
        config: PathBuf,
        /// Print the API's JSON instead of a table, for scripts.
        #[arg(long, global = true)]
        json: bool,
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
        /// The cluster-state JSON (`-` = stdin); its fields are in docs/operations.md and `--schema`.
        #[arg(long, required_unless_present = "schema")]
        state: Option<PathBuf>,
        /// Print the JSON Schema of the cluster-state JSON instead of planning.
        #[arg(long, conflicts_with = "state")]
        schema: bool,
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
    /// A local cluster of N real daemons on loopback (one training node that plans, the rest selfplay workers),
    /// each with its own ports and directory DIR/<node>/, until Ctrl-C.
    Demo {
        /// Nodes in the cluster (1 to 16): train-1, then worker-1, worker-2, ...
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Directory of the cluster file and of each node's data, state and logs.
        #[arg(long, default_value = "demo")]
        dir: PathBuf,
        /// Turn on the fault-drill routes (`api.debug_endpoints`) and a 10 s watchdog on every node, for
        /// trying failures by hand.
        #[arg(long)]
        debug: bool,
    },
    /// Print the generated key reference of docs/configuration.md (every key, default, env var).
    ConfigReference,
    /// Built-in stand-in for a selfplay engine: plays synthetic games and writes them atomically.
    SelfplayDemo(crate::selfplay_cmd::SelfplayDemoArgs),
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
    /// Re-send a stored message to its actor (needs the running daemon). Recovered and abandoned letters are
    /// refused unless `--force`.
    Replay {
        id: i64,
        /// Replay a recovered or abandoned letter too.
        #[arg(long)]
        force: bool,
    },
    /// Remove recovered and abandoned letters (older than DUR, e.g. 7d; default: all of them).
    Purge {
        #[arg(long)]
        older_than: Option<humantime::Duration>,
    },
}
