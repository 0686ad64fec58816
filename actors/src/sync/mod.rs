//! The sync coordinator: every node's data where it is needed, within a time budget, verified, and visible
//! (issue 9; shared/domain/sync.md).
//!
//! Layout:
//! - [`config`]: the `sync` section (pull rules, budget, transports, breakers, rhythm and limits) and node roles.
//! - [`plan`]: pure planning: which (peer, category) operations run, and the inventory diff into transfers.
//! - [`budget`]: pure time budget, retries with backoff, the fallback chain and the per-(peer, transport) breakers.
pub mod budget;
pub mod config;
pub mod install;
pub mod plan;
pub mod transport;
