//! The coordinator's library: an actor runtime on actix and the actors that keep a self-play cluster busy.
//!
//! Layout:
//! - `runtime`: supervision tree, panic capture, dead letters, traced envelopes, metrics (nothing domain-specific).

pub mod runtime;
