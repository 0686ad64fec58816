//! Where the runtime puts messages that could not be handled.
//!
//! The sink is a late-bound handle: every cell and actor reference holds a clone from the start, and the
//! dead-letter actor installs itself once it runs. Until then (or if it is gone) a letter is logged at error level
//! with its whole payload, so nothing disappears silently.

use std::sync::{Arc, OnceLock};

use super::dead_letters::record::NewDeadLetter;

/// Hands the letter back (boxed) when it cannot take it.
type StoreFn = Box<dyn Fn(NewDeadLetter) -> Result<(), Box<NewDeadLetter>> + Send + Sync>;

/// Late-bound route to the dead-letter store.
#[derive(Clone, Default)]
pub struct DeadLetterSink {
    target: Arc<OnceLock<StoreFn>>,
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
        let _ = self.target.set(Box::new(store));
    }

    /// Stores a letter; logs it in full if the store cannot take it.
    pub fn store(&self, letter: NewDeadLetter) {
        let letter = match self.target.get() {
            Some(store) => match store(letter) {
                Ok(()) => return,
                Err(letter) => *letter,
            },
            None => letter,
        };
        tracing::error!(
            actor = %letter.actor,
            msg = %letter.msg,
            correlation_id = %letter.correlation_id,
            error = %letter.error,
            payload = %letter.payload,
            "dead-letter store unavailable; letter kept in this log line only"
        );
    }
}

impl std::fmt::Debug for DeadLetterSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterSink")
            .field("installed", &self.target.get().is_some())
            .finish()
    }
}
