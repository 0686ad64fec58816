//! The sync coordinator: every node's data where it is needed, within a time budget, verified, and visible
//! (issue 9; shared/domain/sync.md).
//!
//! Layout:
//! - [`config`]: the `sync` section (pull rules, budget, transports, breakers, rhythm and limits) and node roles.
//! - [`plan`]: pure planning: which (peer, category) operations run, and the inventory diff into transfers.
//! - [`budget`]: pure time budget, retries with backoff, the fallback chain and the per-(peer, transport) breakers.
//! - [`policy`]: pure cycle scheduling: interval, coalesced notices, queue bound, watchdog deadline, health.
//! - [`transport`]: the `Transport` trait and the http, rsync and aria2 transports (blocking, on transfer threads).
//! - [`install`]: size/sha256/SQLite checks, quarantine, fsync and atomic rename.
//! - [`run`]: carries out one cycle on plain threads (inventories, plan, transfers, attempt events, report).
//! - [`report`]: what a cycle reports (`/sync`, `POST /sync/run`, `sync --once`).
//! - [`board`]: the shared view `GET /sync` reads without messaging the actor.
//! - [`messages`], [`actor`]: the actor shell and what it handles.
//! - [`metrics`]: `coordinator_sync_*` in the process registry.

pub mod actor;
pub mod board;
pub mod budget;
pub mod config;
pub mod install;
pub mod messages;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod report;
pub mod run;
pub mod transport;
