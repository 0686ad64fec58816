//! The actor runtime: pieces that know nothing of selfplay, sync or HTTP routes.
//!
//! Layout:
//! - [`circuit_breaker`]: the pure Closed/Open/HalfOpen state machine shared by sync and the data-server monitor.

pub mod circuit_breaker;
