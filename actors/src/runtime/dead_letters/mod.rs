//! Durable dead letters: every message that could not be handled is stored, bounded, retried and purged by rule.
//!
//! Layout:
//! - [`record`]: the stored row (`DeadLetter`), what a caller hands in (`NewDeadLetter`), statuses and the JSON shape
//!   of the control API.
//! - [`config`]: `DeadLetterConfig`, the `dead_letters` config section with the domain numbers as defaults.
//! - [`policy`]: pure rules with injected time: backoff, retry/abandon, purge eligibility, health level, log limiter.
//! - [`store`]: the SQLite store (WAL, `synchronous=FULL`), safe to open from the daemon and the CLI at once;
//!   checked at open (`quick_check`), a damaged file moved aside and its readable rows salvaged.
//! - [`spill`]: the bounded, fsynced JSON-lines fallback for letters the store (or the queue) cannot take.
//! - [`queue`]: the bounded hand-over from the whole tree to the actor (letters never travel in its mailbox).
//! - [`actor`]: the thin actor shell: stores letters, answers queries, replays due letters, purges old ones.

pub mod actor;
pub mod config;
pub mod policy;
pub mod queue;
pub mod record;
pub mod spill;
pub mod store;

pub use actor::{
    DeadLetterActor, DeadLetterMaintenance, DeadLetterShared, DeadLetterSnapshot, DrainDeadLetters,
    GetDeadLetter, ListDeadLetters, PurgeDeadLetters, ReplayDeadLetter, ReplayDenied,
    ReplayFinished, ReplayResult, ReplayTicket,
};
pub use config::DeadLetterConfig;
pub use policy::{LogDecision, LogLimiter, ReplayOutcome, ReplayRefused, RetryPolicy, StoreHealth};
pub use queue::DeadLetterQueue;
pub use record::{DeadLetter, DeadLetterCounts, DeadLetterPage, DeadLetterStatus, NewDeadLetter};
pub use spill::{Spill, SpillError};
pub use store::{DeadLetterStore, Evicted, StoreError};
