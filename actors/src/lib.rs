//! The coordinator's library: an actor runtime on actix and the actors that keep a self-play cluster busy.
//!
//! Layout:
//! - `runtime`: supervision tree, panic capture, dead letters, traced envelopes, breakers, metrics (nothing
//!   domain-specific).
//! - `process`: child processes owned by the daemon (own process group, parent-death signal, SIGTERM then SIGKILL).
//! - `data_server`: the file server process (`coordinator data-server`) and its configuration.
//! - `placeholder`: the stand-in for actors whose issues are not built yet.

pub mod data_server;
pub mod jobs;
pub mod placeholder;
pub mod process;
pub mod runtime;
