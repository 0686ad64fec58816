//! placeholder during bootstrap
pub mod runtime;
pub mod units;
