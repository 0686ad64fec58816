//! Durable dead letters: every message that could not be handled is stored, bounded, retried and purged by rule.
//!
//! Layout:
//! - [`record`]: the stored row (`DeadLetter`), what a caller hands in (`NewDeadLetter`), statuses and the JSON shape
//!   of the control API.
//! - [`config`]: `DeadLetterConfig`, the `dead_letters` config section with the domain numbers as defaults.
//! - [`policy`]: pure rules with injected time: backoff, retry/abandon, purge eligibility, health level, log limiter.
//! - [`store`]: the SQLite store (WAL, `synchronous=FULL`), safe to open from the daemon and the CLI at once.
//!
//! - [`actor`]: the thin actor shell: stores letters, answers queries, replays due letters, purges old ones.

pub mod actor;
pub mod config;
pub mod policy;
pub mod record;
pub mod store;

pub use actor::{
    DeadLetterActor, DeadLetterMaintenance, GetDeadLetter, ListDeadLetters, PurgeDeadLetters,
    ReplayFinished, StoreDeadLetter,
};
pub use config::DeadLetterConfig;
pub use policy::{DeadLetterHealth, LogDecision, LogLimiter, ReplayOutcome, RetryPolicy};
pub use record::{DeadLetter, DeadLetterCounts, DeadLetterPage, DeadLetterStatus, NewDeadLetter};
pub use store::{DeadLetterStore, Evicted, StoreError};
