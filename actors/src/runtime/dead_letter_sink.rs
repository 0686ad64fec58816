//! Where the runtime puts messages that could not be handled.
//!
//! The sink is a late-bound handle: every cell and actor reference holds a clone from the start, and the
//! dead-letter route installs itself once it exists. A letter the route cannot take (not installed yet, queue full
//! or closed at shutdown) goes to the spill file, synced before `store` returns; only when the spill cannot take it
//! either (none configured, full, or its disk failing) is the letter logged at error level with its whole payload
//! and counted as lost (`coordinator_dead_letters_lost_total`), so nothing disappears silently.
//!
//! The sink also carries replay outcomes that arrive after a replayed message was accepted (a replayed job that
//! finished later), keyed by the letter id.

use std::sync::{Arc, OnceLock};

use super::dead_letters::record::{unix_ms, NewDeadLetter};
use super::dead_letters::spill::Spill;
use super::metrics;

/// Hands the letter back (boxed) when it cannot take it.
type StoreFn = Box<dyn Fn(NewDeadLetter) -> Result<(), Box<NewDeadLetter>> + Send + Sync>;
/// Reports the outcome of replayed dead letter `id` (`Err(reason)` when the replayed work failed).
type OutcomeFn = Box<dyn Fn(i64, Result<(), String>) -> bool + Send + Sync>;

#[derive(Default)]
struct Inner {
    target: OnceLock<StoreFn>,
    spill: OnceLock<Spill>,
    outcome: OnceLock<OutcomeFn>,
}

/// Late-bound route to the dead-letter store.
#[derive(Clone, Default)]
pub struct DeadLetterSink {
    inner: Arc<Inner>,
}

impl DeadLetterSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the store function (once; later calls are ignored). It hands the letter back when it cannot take it.
    pub fn install(
        &self,
        store: impl Fn(NewDeadLetter) -> Result<(), Box<NewDeadLetter>> + Send + Sync + 'static,
    ) {
        let _ = self.inner.target.set(Box::new(store));
    }

    /// Installs the spill file used when the route cannot take a letter (once).
    pub fn install_spill(&self, spill: Spill) {
        let _ = self.inner.spill.set(spill);
    }

    /// Installs where replay outcomes go (once). The function answers `false` when it could not deliver.
    pub fn install_outcome(
        &self,
        report: impl Fn(i64, Result<(), String>) -> bool + Send + Sync + 'static,
    ) {
        let _ = self.inner.outcome.set(Box::new(report));
    }

    /// Stores a letter: through the route, else the spill file, else (counted as lost) a full log line.
    pub fn store(&self, letter: NewDeadLetter) {
        let letter = match self.inner.target.get() {
            Some(store) => match store(letter) {
                Ok(()) => return,
                Err(letter) => *letter,
            },
            None => letter,
        };
        self.spill(letter);
    }

    /// Writes a letter straight to the spill file (the route is bypassed: the dead-letter actor itself failed
    /// while storing it). Falls back to a counted, logged loss when the spill cannot take it.
    pub fn spill(&self, letter: NewDeadLetter) {
        let error = match self.inner.spill.get() {
            Some(spill) => match spill.append(&letter, unix_ms(std::time::SystemTime::now())) {
                Ok(()) => {
                    metrics::runtime().dead_letters_spilled.inc();
                    return;
                }
                Err(e) => e.to_string(),
            },
            None => "no spill file configured".to_string(),
        };
        metrics::runtime().dead_letters_lost.inc();
        tracing::error!(
            actor = %letter.actor,
            msg = %letter.msg,
            correlation_id = %letter.correlation_id,
            error = %letter.error,
            payload = %letter.payload,
            spill_error = %error,
            "dead letter could not be stored or spilled; it is kept in this log line only"
        );
    }

    /// Reports the outcome of a replay of dead letter `id` that completed after it was accepted.
    pub fn replay_outcome(&self, id: i64, outcome: Result<(), String>) {
        let delivered = self
            .inner
            .outcome
            .get()
            .is_some_and(|report| report(id, outcome.clone()));
        if !delivered {
            tracing::warn!(id, ok = outcome.is_ok(), "replay outcome could not reach the dead-letter actor; the letter counts as failed when its replay deadline passes");
        }
    }
}

impl std::fmt::Debug for DeadLetterSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterSink")
            .field("installed", &self.inner.target.get().is_some())
            .field(
                "spill",
                &self.inner.spill.get().map(|s| s.path().to_path_buf()),
            )
            .finish()
    }
}
