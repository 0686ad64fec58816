//! The selfplay scheduler's pure policy: which config to play, how hard to search, and where.
//!
//! Layout (pure: no actix, no I/O, no clock; except `actor`, and `history`'s load/save/scan):
//! - `board`: [`board::BoardType`] and [`board::ConfigKey`], the one parser for board names.
//! - `config`: [`config::SchedulerPolicyConfig`], every weight, threshold and table with the
//!   domain numbers as defaults.
//! - `priority`: the priority score of one config (additive terms, multipliers, starvation tiers).
//! - `weights`: dynamic weights that follow cluster state, clamped to bounds.
//! - `budget`: search budgets, the large-board cap, target games and games needed.
//! - `allocation`: games per config per node (capacity, cost, GPU caps, health, floors, 3p/4p
//!   minimums), with the per-plan node cap fix.
//! - `availability`: nodes whose jobs keep failing leave the plan for a doubling while (a breaker per node).
//! - `dispatch`: from a plan to its jobs: fill each node's free slots until its share is played, then replan.
//! - `history`: game counts across restarts (state file, games already on disk); the one module here with I/O.
//! - `jobs_health`: the `jobs` health check from the last job attempts and the nodes out of the plan.
//! - `target_jobs`: how many jobs a node should run at once.
//! - `metrics`: jobs running, finished by outcome, and games written, in `/metrics`.
//! - `plan`: the `coordinator plan` dry run: the plan state JSON in, the plan JSON out.

pub mod actor;
pub mod allocation;
pub mod availability;
pub mod board;
pub mod budget;
pub mod config;
pub mod dispatch;
pub mod history;
pub mod jobs_health;
pub mod metrics;
pub mod plan;
pub mod priority;
pub mod settings;
pub mod target_jobs;
pub mod weights;
