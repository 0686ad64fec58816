//! placeholder during bootstrap
pub mod data_server;
pub mod process;
pub mod runtime;
