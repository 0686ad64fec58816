//! placeholder during bootstrap
pub mod scheduler;
