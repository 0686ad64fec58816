//! `DeadLetterConfig`: the `dead_letters` config section, holding the domain numbers as defaults.
//!
//! Every field's `///` doc is its user documentation (docs/configuration.md). No behaviour here: the rules that use
//! these numbers are in `policy.rs`, the storage in `store.rs`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::ByteSize;

/// Durable store for messages that could not be handled, with retry, abandon and purge rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// SQLite file holding the dead letters; relative paths are resolved against the working directory. Created,
    /// with its parent folders, when absent.
    pub path: PathBuf,
    /// Most rows kept. When a new dead letter would exceed it, the oldest recovered or abandoned rows are removed
    /// first, then the oldest pending ones (logged as a warning).
    pub max_entries: u64,
    /// Automatic replays of one dead letter before it is abandoned.
    pub max_retries: u32,
    /// Wait before the first automatic replay; doubles after each failed replay.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest wait between automatic replays.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// A pending dead letter older than this is abandoned at its next failed replay.
    #[serde(with = "humantime_serde")]
    pub abandon_after: Duration,
    /// Recovered and abandoned dead letters older than this (since their last change) are purged.
    #[serde(with = "humantime_serde")]
    pub purge_after: Duration,
    /// Pending count at which health reports a warning.
    pub warn_pending: u64,
    /// Pending count above which health reports unhealthy.
    pub unhealthy_pending: u64,
    /// Dead letters logged one by one before logging switches to periodic summaries.
    pub log_first: u32,
    /// Period of the summary line ("N more dead letters stored") once `log_first` is reached.
    #[serde(with = "humantime_serde")]
    pub log_summary_every: Duration,
    /// How long one replay waits for the target actor's answer before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub replay_timeout: Duration,
    /// How often due letters are replayed, old ones purged, and the pending gauge refreshed.
    #[serde(with = "humantime_serde")]
    pub maintenance_every: Duration,
    /// How long a replay whose work reports its outcome later (a replayed selfplay job: until the job finished)
    /// may take before it counts as a failed replay.
    #[serde(with = "humantime_serde")]
    pub replay_outcome_timeout: Duration,
    /// Letters waiting for the dead-letter actor at most; beyond it (a burst, a hung actor) letters go straight to
    /// the spill file.
    pub queue_capacity: usize,
    /// Largest size of the spill file (`<path>.spill.jsonl`) that keeps letters the store cannot take; its space
    /// is reserved at start so it still takes letters on a full disk. A letter beyond it is only logged (and
    /// counted in `coordinator_dead_letters_lost_total`).
    pub spill_max_bytes: ByteSize,
    /// Store writes failing in a row before the dead-letter actor escalates (its supervisor restarts it) and
    /// `/health` reports the `dead_letters` check failing.
    pub store_max_failures: u32,
    /// Wait before retrying a failing store; doubles after each failure.
    #[serde(with = "humantime_serde")]
    pub store_retry_base: Duration,
    /// Longest wait between retries of a failing store.
    #[serde(with = "humantime_serde")]
    pub store_retry_max: Duration,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("state/dead_letters.db"),
            max_entries: 10_000,
            max_retries: 5,
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(3600),
            abandon_after: Duration::from_secs(168 * 3600),
            purge_after: Duration::from_secs(7 * 24 * 3600),
            warn_pending: 50,
            unhealthy_pending: 1000,
            log_first: 10,
            log_summary_every: Duration::from_secs(5 * 60),
            replay_timeout: Duration::from_secs(10),
            maintenance_every: Duration::from_secs(30),
            replay_outcome_timeout: Duration::from_secs(2 * 3600),
            queue_capacity: 10_000,
            spill_max_bytes: ByteSize::mib(16),
            store_max_failures: 5,
            store_retry_base: Duration::from_secs(1),
            store_retry_max: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_the_domain_numbers() {
        let config = DeadLetterConfig::default();
        assert_eq!(config.path, PathBuf::from("state/dead_letters.db"));
        assert_eq!(config.max_entries, 10_000);
        assert_eq!(config.max_retries, 5);
        assert_eq!(config.backoff_base, Duration::from_secs(60));
        assert_eq!(config.backoff_max, Duration::from_secs(3600));
        assert_eq!(config.abandon_after, Duration::from_secs(168 * 3600));
        assert_eq!(config.purge_after, Duration::from_secs(7 * 86_400));
        assert_eq!((config.warn_pending, config.unhealthy_pending), (50, 1000));
        assert_eq!(config.log_first, 10);
        assert_eq!(config.log_summary_every, Duration::from_secs(300));
    }

    #[test]
    fn defaults_round_trip_through_json_with_human_durations() {
        let config = DeadLetterConfig::default();
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["backoff_base"], "1m");
        assert_eq!(json["abandon_after"], "7days");
        let back: DeadLetterConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn partial_section_fills_defaults_and_unknown_keys_are_refused() {
        let config: DeadLetterConfig =
            serde_json::from_str(r#"{"max_retries": 3, "backoff_base": "30s"}"#).unwrap();
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.backoff_base, Duration::from_secs(30));
        assert_eq!(config.max_entries, 10_000);
        let err = serde_json::from_str::<DeadLetterConfig>(r#"{"max_retry": 3}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_retry`"),
            "{err}"
        );
    }
}
