//! The coordinator's library: an actor runtime on actix and the actors that keep a self-play cluster busy.
//!
//! Layout:
//! - `runtime`: supervision tree, panic capture, dead letters, traced envelopes, breakers, metrics (nothing
//!   domain-specific).
//! - `process`: child processes owned by the daemon (own process group, parent-death signal, SIGTERM then SIGKILL).
//! - `data_server`: the file server process (`coordinator data-server`) and its configuration.
//! - `scheduler`: the selfplay scheduler's pure policy (boards, priorities, budgets, allocation) and the plan dry run.
//! - `jobs`: selfplay jobs: command templates, local and SSH executors, the job table, the demo engine.
//! - `logging`: log lines for operators (JSON or text), span fields copied at open and formatted only
//!   for lines written.
//! - `pressure`: the gate the resource optimizer closes under disk or memory pressure; jobs and pulls check it.
//! - `resources`: the resource optimizer: measurements, the job-target controller, pressure, the cluster view.
//! - `sync`: the sync coordinator: pull planning, budgets, transports, the actor that moves files between nodes.
//! - `tree_watch`: whether a directory tree changed since it was listed (inotify), so large listings are reused.
//! - `units`: byte sizes in config (`64MiB`).
//! - `placeholder`: the stand-in for actors whose issues are not built yet.

pub mod data_server;
pub mod jobs;
pub mod logging;
pub mod placeholder;
pub mod pressure;
pub mod process;
pub mod resources;
pub mod runtime;
pub mod scheduler;
pub mod sync;
pub mod tree_watch;
pub mod units;
