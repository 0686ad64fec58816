//! The dead-letter actor: the thin shell around the durable [`DeadLetterStore`].
//!
//! It stores letters from the whole tree (acknowledged only once written and synced), answers queries for the API
//! and CLI, replays due letters on a timer under the retry policy (backoff doubling from `backoff_base`, abandoned
//! after `max_retries` or `abandon_after`), purges old recovered/abandoned letters, and keeps the pending-count
//! gauge and health level. Its own logging is rate-limited: the first `log_first` letters one line each, then a
//! summary every `log_summary_every`.
//!
//! Replay runs through the directory (actors by name): the stored payload is decoded into the actor's message type
//! and asked with a deadline; the outcome comes back as [`ReplayFinished`], which marks the record recovered, or
//! counts the failure (retry count + 1) — a failing replay is never stored as a new letter, so it cannot loop.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::config::DeadLetterConfig;
use super::policy::{DeadLetterHealth, LogDecision, LogLimiter, RetryPolicy};
use super::record::{DeadLetter, DeadLetterPage, DeadLetterStatus, NewDeadLetter};
use super::store::DeadLetterStore;
use crate::runtime::ids::{CorrelationId, MessageMeta};
use crate::runtime::metrics;
use crate::runtime::{ActorRef, Behavior, Ctx, Directory, HandlerError, Handles, Message};

/// Stores one undeliverable message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreDeadLetter(pub NewDeadLetter);
impl Message for StoreDeadLetter {
    type Reply = i64;
    const NAME: &'static str = "StoreDeadLetter";
}

/// Lists letters, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListDeadLetters {
    pub limit: usize,
    pub status: Option<DeadLetterStatus>,
}
impl Message for ListDeadLetters {
    type Reply = DeadLetterPage;
    const NAME: &'static str = "ListDeadLetters";
}

/// One letter by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetDeadLetter {
    pub id: i64,
}
impl Message for GetDeadLetter {
    type Reply = Option<DeadLetter>;
    const NAME: &'static str = "GetDeadLetter";
}

/// The outcome of a replay (from the API or the actor's own retry timer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayFinished {
    pub id: i64,
    /// `None` on success, else why it failed again.
    pub error: Option<String>,
}
impl Message for ReplayFinished {
    type Reply = Option<DeadLetter>;
    const NAME: &'static str = "ReplayFinished";
}

/// Removes recovered and abandoned letters older than `older_than` (zero: all of them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgeDeadLetters {
    #[serde(with = "humantime_serde")]
    pub older_than: Duration,
}
impl Message for PurgeDeadLetters {
    type Reply = usize;
    const NAME: &'static str = "PurgeDeadLetters";
}

/// Timer tick: replay due letters, purge old ones, refresh the gauge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterMaintenance;
impl Message for DeadLetterMaintenance {
    type Reply = ();
    const NAME: &'static str = "DeadLetterMaintenance";
}

/// The dead-letter actor. See the module doc.
pub struct DeadLetterActor {
    config: DeadLetterConfig,
    store: DeadLetterStore,
    directory: Arc<OnceLock<Directory>>,
    limiter: LogLimiter,
    policy: RetryPolicy,
    health: DeadLetterHealth,
    replaying: std::collections::HashSet<i64>,
}

impl DeadLetterActor {
    /// Opens the store (a failure here is a crash: the supervisor retries with backoff and escalates).
    pub fn new(config: DeadLetterConfig, directory: Arc<OnceLock<Directory>>) -> Self {
        let store = match DeadLetterStore::open_with_config(&config) {
            Ok(store) => store,
            Err(e) => panic!("dead-letter store unavailable: {e}"),
        };
        let limiter = LogLimiter::from_config(&config);
        let policy = RetryPolicy::from_config(&config);
        DeadLetterActor {
            config,
            store,
            directory,
            limiter,
            policy,
            health: DeadLetterHealth::Ok,
            replaying: Default::default(),
        }
    }

    /// The sink's route into this actor: a plain `try_send` that hands the letter back when the mailbox cannot take it
    /// (never through the dead-letter path itself, which would recurse).
    pub fn offer(
        target: &ActorRef<DeadLetterActor>,
        letter: NewDeadLetter,
    ) -> Result<(), Box<NewDeadLetter>> {
        target
            .try_tell_raw(StoreDeadLetter(letter))
            .map_err(|StoreDeadLetter(l)| Box::new(l))
    }

    fn refresh_gauge(&mut self) {
        if let Ok(counts) = self.store.counts() {
            metrics::runtime()
                .dead_letters_pending
                .set(counts.pending as i64);
            let health = DeadLetterHealth::from_pending(
                counts.pending,
                self.config.warn_pending,
                self.config.unhealthy_pending,
            );
            if health != self.health {
                match health {
                    DeadLetterHealth::Ok => tracing::info!(
                        pending = counts.pending,
                        "dead letters back under the warning level"
                    ),
                    DeadLetterHealth::Warn => tracing::warn!(
                        pending = counts.pending,
                        "many dead letters pending; see `coordinator dead-letters list`"
                    ),
                    DeadLetterHealth::Unhealthy => tracing::error!(
                        pending = counts.pending,
                        "dead letters piling up: the store is unhealthy; inspect, replay or purge"
                    ),
                }
                self.health = health;
            }
        }
    }

    fn start_replay(&mut self, letter: DeadLetter, ctx: &mut Ctx<'_, Self>) {
        let Some(directory) = self.directory.get().cloned() else {
            return;
        };
        if !self.replaying.insert(letter.id) {
            return;
        }
        let meta = MessageMeta {
            retries: letter.retries + 1,
            replay_of: Some(letter.id),
            ..MessageMeta::with_correlation(
                CorrelationId::parse(&letter.correlation_id).unwrap_or_default(),
            )
        };
        let timeout = self.config.replay_timeout;
        let id = letter.id;
        ctx.spawn(async move {
            let result = directory
                .replay(&letter.actor, &letter.msg, letter.payload, meta, timeout)
                .await;
            ReplayFinished {
                id,
                error: result.err().map(|e| e.to_string()),
            }
        });
    }
}

impl Behavior for DeadLetterActor {
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.refresh_gauge();
        ctx.every(self.config.maintenance_every, || DeadLetterMaintenance);
    }

    fn stopping(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Option<futures::future::LocalBoxFuture<'static, ()>> {
        self.limiter.set_quiet(true);
        None
    }
}

impl Handles<StoreDeadLetter> for DeadLetterActor {
    fn handle(
        &mut self,
        msg: &StoreDeadLetter,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<i64, HandlerError> {
        let now = SystemTime::now();
        let (letter, evicted) = self
            .store
            .insert(msg.0.clone(), now)
            .map_err(|e| HandlerError::fail(format!("dead letter not stored: {e}")))?;
        metrics::runtime().dead_letters_stored.inc();
        if !evicted.is_empty() {
            metrics::runtime()
                .dead_letters_evicted
                .inc_by(evicted.total());
            if evicted.pending > 0 {
                tracing::warn!(evicted_pending = evicted.pending, max_entries = self.config.max_entries, "dead-letter store full of pending letters; the oldest pending were removed (raise dead_letters.max_entries or purge)");
            }
        }
        match self.limiter.on_event(Instant::now()) {
            LogDecision::Log => tracing::warn!(
                id = letter.id, actor = %letter.actor, msg = %letter.msg, error = %letter.error,
                correlation_id = %letter.correlation_id, "dead letter stored; inspect with `coordinator dead-letters show {}`", letter.id
            ),
            LogDecision::Summary { suppressed } => tracing::warn!(suppressed, "more dead letters stored since the last summary; see `coordinator dead-letters list`"),
            LogDecision::Suppress => {}
        }
        self.refresh_gauge();
        Ok(letter.id)
    }
}

impl Handles<ListDeadLetters> for DeadLetterActor {
    fn handle(
        &mut self,
        msg: &ListDeadLetters,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<DeadLetterPage, HandlerError> {
        self.store
            .list(msg.limit, 0, msg.status)
            .map_err(|e| HandlerError::fail(e.to_string()))
    }
}

impl Handles<GetDeadLetter> for DeadLetterActor {
    fn handle(
        &mut self,
        msg: &GetDeadLetter,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<Option<DeadLetter>, HandlerError> {
        self.store
            .get(msg.id)
            .map_err(|e| HandlerError::fail(e.to_string()))
    }
}

impl Handles<ReplayFinished> for DeadLetterActor {
    fn handle(
        &mut self,
        msg: &ReplayFinished,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<Option<DeadLetter>, HandlerError> {
        self.replaying.remove(&msg.id);
        let now = SystemTime::now();
        let result = match &msg.error {
            None => {
                tracing::info!(
                    id = msg.id,
                    "dead letter replayed successfully; marked recovered"
                );
                self.store.mark_recovered(msg.id, now).map(Some)
            }
            Some(error) => {
                let updated = self
                    .store
                    .record_failed_replay(msg.id, error, now, &self.policy)
                    .map(Some);
                if let Ok(Some(letter)) = &updated {
                    tracing::warn!(id = msg.id, retries = letter.retries, status = %letter.status, %error, "replay failed again; letter kept with its retry count");
                }
                updated
            }
        };
        self.refresh_gauge();
        result.map_err(|e| HandlerError::fail(e.to_string()))
    }
}

impl Handles<PurgeDeadLetters> for DeadLetterActor {
    fn handle(
        &mut self,
        msg: &PurgeDeadLetters,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<usize, HandlerError> {
        let purged = self
            .store
            .purge(msg.older_than, SystemTime::now())
            .map_err(|e| HandlerError::fail(e.to_string()))?;
        tracing::info!(purged, older_than = %humantime::format_duration(msg.older_than), "purged recovered and abandoned dead letters");
        self.refresh_gauge();
        Ok(purged)
    }
}

impl Handles<DeadLetterMaintenance> for DeadLetterActor {
    fn handle(
        &mut self,
        _msg: &DeadLetterMaintenance,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        let now = SystemTime::now();
        if let Some(suppressed) = self.limiter.due_summary(Instant::now()) {
            tracing::warn!(
                suppressed,
                "dead letters stored since the last summary; see `coordinator dead-letters list`"
            );
        }
        match self.store.purge(self.config.purge_after, now) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                purged = n,
                "purged old recovered and abandoned dead letters"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "purge of old dead letters failed; retrying at the next maintenance")
            }
        }
        match self.store.due_for_retry(now, 16) {
            Ok(due) => {
                for letter in due {
                    self.start_replay(letter, ctx);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read due dead letters; retrying at the next maintenance")
            }
        }
        self.refresh_gauge();
        Ok(())
    }
}
