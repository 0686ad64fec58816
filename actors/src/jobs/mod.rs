//! Selfplay jobs: what a job is, how it runs (on this node or on a peer over SSH), how it ended, the bookkeeping of
//! queued, running and finished jobs, and the built-in demo engine. The planning (which jobs to make) lives in the
//! scheduler; this module only runs what it is given.
//!
//! Layout:
//! - [`spec`]: [`JobSpec`] and the command template rendering (argv, never a shell).
//! - [`config`]: [`JobsConfig`], the `jobs` settings (command, dirs, timeout, retries, concurrency, SSH).
//! - [`outcome`]: [`JobOutcome`] and the games report line a job prints last.
//! - [`run`]: log files and child supervision shared by the executors.
//! - [`local`]: [`LocalExecutor`], a job as a child process of this node.
//! - [`ssh`]: [`SshExecutor`], a job on a peer through the `ssh` client.
//! - [`remote`]: [`DaemonExecutor`], a job handed to a peer's daemon through its control API (the planner's way).
//! - [`executor`]: [`Executors`], dispatch of a job to the local or SSH executor by its node's placement.
//! - [`tracker`]: [`JobTracker`], the pure job table (per-node limits, retries, history, snapshot).
//! - [`demo`]: the `selfplay-demo` engine and [`count_games`].

pub mod config;
pub mod demo;
pub mod executor;
pub mod local;
pub mod outcome;
pub mod remote;
mod run;
pub mod spec;
pub mod ssh;
pub mod tracker;

pub use config::{JobsConfig, SshConfig};
pub use demo::{count_games, run_selfplay_demo, DemoArgs, DemoError, DemoReport};
pub use executor::{Executors, Placement};
pub use local::LocalExecutor;
pub use outcome::{GamesReport, JobOutcome, JobStatus};
pub use remote::{DaemonExecutor, DispatchConfig, DispatchRequest, RemoteJob, RemoteState};
pub use spec::{render, validate_template, JobSpec, SpecError};
pub use ssh::SshExecutor;
pub use tracker::{Decision, JobTracker, JobWhere, JobsSnapshot, Launch, TrackerLimits};
