//! The dead-letter actor: the thin shell around the durable [`DeadLetterStore`], its [`Spill`] and its
//! [`DeadLetterQueue`].
//!
//! Letters reach it through the queue (never its mailbox, see `queue.rs`): it takes them in batches, stores each
//! batch in one synced transaction and logs "stored" only after the commit. A batch the store refuses (disk full,
//! corrupt page, file locked past the busy timeout) goes to the spill file with the original actor, message and
//! payload; a letter never wraps another. While the store fails, it is retried with backoff (the spill is moved
//! into it first, when it works again); at `store_max_failures` failures in a row the actor escalates: it crashes
//! so its supervisor restarts it, counted against the supervisor's intensity like any failing child. The store's
//! state is published as the `dead_letters` health check, in `/status` (through [`DeadLetterShared`]) and in the
//! metrics. At shutdown it stops last (first child of the root): its `stopping` hook closes the queue and stores
//! or spills everything still in it.
//!
//! Replay is one command, [`ReplayDeadLetter`], used by the API and by the timed replay alike, with one in-flight
//! set: a letter is replayed at most once at a time. Replay runs through the directory (actors by name): the stored
//! payload is decoded into the actor's message type and asked with a deadline. A message whose work finishes later
//! (declared with `replayable_with_outcome`, like a replayed job) is only accepted by that answer; its outcome comes
//! back as [`ReplayFinished`] keyed by the letter id. Success marks the same letter recovered; a failure gives it
//! retries + 1 and, past `max_retries` or `abandon_after`, abandoned: a failing replay never becomes a new letter.
//! Logging is rate-limited: the first `log_first` letters (and evictions) one line each, then a summary every
//! `log_summary_every`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::config::DeadLetterConfig;
use super::policy::{
    health_check, may_replay, HealthInputs, LogDecision, LogLimiter, ReplayRefused, RetryPolicy,
    StoreHealth, StoreVerdict,
};
use super::queue::DeadLetterQueue;
use super::record::{unix_ms, DeadLetter, DeadLetterPage, DeadLetterStatus, NewDeadLetter};
use super::spill::{spill_path_for, Spill, SpillError};
use super::store::{DeadLetterStore, Evicted, StoreError};
use crate::runtime::directory::ReplayAck;
use crate::runtime::health::{HealthBoard, HealthCheck, HealthStatus};
use crate::runtime::ids::{CorrelationId, MessageMeta};
use crate::runtime::metrics;
use crate::runtime::{Behavior, Ctx, DeadLetterSink, Directory, HandlerError, Handles, Message};

/// The name of the health check this actor publishes.
pub const HEALTH_CHECK: &str = "dead_letters";

/// Letters taken from the queue per batch (one transaction, one sync).
const BATCH: usize = 256;

// None of this actor's messages becomes a dead letter when it fails: the failure is the store's state (health
// check, `/status`), and a letter about a letter (or about a query) is never worth keeping.

/// Wake-up: letters are waiting in the queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainDeadLetters;
impl Message for DrainDeadLetters {
    type Reply = ();
    const NAME: &'static str = "DrainDeadLetters";
    const DEAD_LETTER_ON_FAILURE: bool = false;
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
    const DEAD_LETTER_ON_FAILURE: bool = false;
}

/// One letter by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetDeadLetter {
    pub id: i64,
}
impl Message for GetDeadLetter {
    type Reply = Option<DeadLetter>;
    const NAME: &'static str = "GetDeadLetter";
    const DEAD_LETTER_ON_FAILURE: bool = false;
}

/// Replays one letter (the API, the CLI and the timed replay all go through this).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayDeadLetter {
    pub id: i64,
    /// Replay a recovered or abandoned letter too.
    pub force: bool,
}
impl Message for ReplayDeadLetter {
    type Reply = Result<ReplayTicket, ReplayDenied>;
    const NAME: &'static str = "ReplayDeadLetter";
    const DEAD_LETTER_ON_FAILURE: bool = false;
}

/// A started replay: its result arrives on `result` within `wait`.
#[derive(Debug)]
pub struct ReplayTicket {
    pub result: oneshot::Receiver<ReplayResult>,
    pub wait: Duration,
}

/// Why a replay did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayDenied {
    #[error("no dead letter with id {0}")]
    NotFound(i64),
    #[error(transparent)]
    Refused(#[from] ReplayRefused),
    #[error("the tree is still starting; try again in a moment")]
    NotReady,
    #[error("dead-letter store unavailable: {0}")]
    Store(String),
}

/// What a replay came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayResult {
    /// The message was handled (for a deferred replay: only accepted so far).
    pub replayed: bool,
    /// The work reports its outcome later (a job); the letter stays pending until then.
    pub awaiting_outcome: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// The letter after the replay.
    pub dead_letter: Option<DeadLetter>,
}

/// The answer of the target actor to a replayed message (from the replay task).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayAnswered {
    pub id: i64,
    pub result: Result<ReplayAck, String>,
}
impl Message for ReplayAnswered {
    type Reply = ();
    const NAME: &'static str = "ReplayAnswered";
    const DEAD_LETTER_ON_FAILURE: bool = false;
}

/// The outcome of replayed work that finished after it was accepted (a replayed job), keyed by the letter id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayFinished {
    pub id: i64,
    /// `None` on success, else why it failed again.
    pub error: Option<String>,
}
impl Message for ReplayFinished {
    type Reply = Option<DeadLetter>;
    const NAME: &'static str = "ReplayFinished";
    const DEAD_LETTER_ON_FAILURE: bool = false;
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
    const DEAD_LETTER_ON_FAILURE: bool = false;
}

/// Timer tick: drain the queue, move the spill into a working store, replay due letters, purge old ones, expire
/// replays whose outcome did not come, refresh the gauges and the health check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterMaintenance;
impl Message for DeadLetterMaintenance {
    type Reply = ();
    const NAME: &'static str = "DeadLetterMaintenance";
    const DEAD_LETTER_ON_FAILURE: bool = false;
}

/// What `/status` shows of the dead letters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterSnapshot {
    /// `ok` while the store takes writes, `failing` while it does not.
    pub store: String,
    /// Store writes failed in a row.
    pub store_failures: u32,
    /// The last store error, while failing.
    pub store_error: Option<String>,
    /// Pending rows in the store (last known).
    pub pending: u64,
    /// Letters waiting in the spill file.
    pub spilled: u64,
    /// Letters waiting in the queue.
    pub queued: u64,
    /// Replays in flight.
    pub replaying: u64,
    /// The spill file.
    pub spill_path: String,
}

/// What outlives one incarnation of the actor: the queue, the spill, the store's failure state, the health board
/// and the `/status` snapshot. Built once by the daemon; cheap to clone.
#[derive(Clone)]
pub struct DeadLetterShared {
    pub queue: DeadLetterQueue,
    pub spill: Spill,
    pub health: HealthBoard,
    store_health: Arc<Mutex<StoreHealth>>,
    snapshot: Arc<Mutex<DeadLetterSnapshot>>,
}

impl DeadLetterShared {
    /// Opens the spill beside the configured store and makes the queue. Fails when the spill cannot be opened.
    pub fn new(config: &DeadLetterConfig, health: HealthBoard) -> Result<Self, SpillError> {
        let spill = Spill::open(spill_path_for(&config.path), config.spill_max_bytes.0)?;
        Ok(DeadLetterShared {
            queue: DeadLetterQueue::new(config.queue_capacity),
            snapshot: Arc::new(Mutex::new(DeadLetterSnapshot {
                store: "ok".into(),
                spill_path: spill.path().display().to_string(),
                spilled: spill.len(),
                ..Default::default()
            })),
            spill,
            health,
            store_health: Arc::new(Mutex::new(StoreHealth::from_config(config))),
        })
    }

    /// Routes `sink` into this queue, with the spill as its fallback.
    pub fn install(&self, sink: &DeadLetterSink) {
        let queue = self.queue.clone();
        sink.install(move |letter| queue.offer(letter));
        sink.install_spill(self.spill.clone());
    }

    /// The current `/status` snapshot.
    pub fn snapshot(&self) -> DeadLetterSnapshot {
        let mut snapshot = self
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        snapshot.queued = self.queue.len() as u64;
        snapshot.spilled = self.spill.len();
        snapshot
    }

    /// After the tree stopped: closes the queue and spills whatever is still in it (an actor that never ran its
    /// `stopping` hook). Returns how many letters were spilled.
    pub fn flush_after_shutdown(&self, sink: &DeadLetterSink) -> usize {
        let left = self.queue.close();
        let n = left.len();
        for letter in left {
            sink.spill(letter);
        }
        n
    }

    fn store_health(&self) -> std::sync::MutexGuard<'_, StoreHealth> {
        self.store_health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct InFlight {
    deadline: Instant,
    waiters: Vec<oneshot::Sender<ReplayResult>>,
    awaiting_outcome: bool,
}

/// Letters taken from the queue but not yet committed: spilled if dropped uncommitted (a panic while storing).
struct InHand<'a> {
    letters: Vec<NewDeadLetter>,
    sink: &'a DeadLetterSink,
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        for letter in self.letters.drain(..) {
            self.sink.spill(letter);
        }
    }
}

/// The dead-letter actor. See the module doc.
pub struct DeadLetterActor {
    config: DeadLetterConfig,
    store: DeadLetterStore,
    shared: DeadLetterShared,
    sink: DeadLetterSink,
    directory: Arc<OnceLock<Directory>>,
    limiter: LogLimiter,
    evict_limiter: LogLimiter,
    policy: RetryPolicy,
    replaying: HashMap<i64, InFlight>,
    pending: Option<u64>,
    last_status: HealthStatus,
}

impl DeadLetterActor {
    /// Opens (and checks) the store. A store that cannot be opened is an error for the factory, which the
    /// supervisor treats as a failed start (restart with backoff, escalation).
    pub fn new(
        config: DeadLetterConfig,
        shared: DeadLetterShared,
        sink: DeadLetterSink,
        directory: Arc<OnceLock<Directory>>,
    ) -> Result<Self, StoreError> {
        let opened = DeadLetterStore::open_checked(&config, SystemTime::now())?;
        if let Some(damaged) = &opened.damaged {
            tracing::error!(store = %damaged.path.display(), moved_to = %damaged.moved_to.display(), reason = %damaged.reason, salvaged = damaged.salvaged, "dead-letter store was damaged: moved aside and replaced by a fresh store holding the rows still readable; inspect the damaged file");
        }
        let limiter = LogLimiter::from_config(&config);
        let evict_limiter = LogLimiter::from_config(&config);
        let policy = RetryPolicy::from_config(&config);
        Ok(DeadLetterActor {
            config,
            store: opened.store,
            shared,
            sink,
            directory,
            limiter,
            evict_limiter,
            policy,
            replaying: HashMap::new(),
            pending: None,
            last_status: HealthStatus::Ok,
        })
    }

    /// Stores what waits in the queue, batch by batch; spills what the store refuses. `Err` to escalate.
    fn drain_queue(&mut self, ctx_progress: &dyn Fn()) -> Result<(), HandlerError> {
        loop {
            let letters = self.shared.queue.take(BATCH);
            if letters.is_empty() {
                return Ok(());
            }
            self.store_or_spill(letters)?;
            ctx_progress();
        }
    }

    /// Stores `letters` in one transaction, or spills them when the store is failing or refuses them.
    fn store_or_spill(&mut self, letters: Vec<NewDeadLetter>) -> Result<(), HandlerError> {
        let sink = self.sink.clone();
        let mut in_hand = InHand {
            letters,
            sink: &sink,
        };
        if !self.shared.store_health().should_try(Instant::now()) {
            return Ok(()); // the store is waiting out its backoff: dropping `in_hand` spills every letter
        }
        if !self.shared.spill.is_empty() {
            self.move_spill_into_store()?;
            if self.shared.store_health().is_failing() {
                return Ok(());
            }
        }
        let batch: Vec<(NewDeadLetter, i64)> = in_hand
            .letters
            .iter()
            .map(|l| (l.clone(), unix_ms(SystemTime::now())))
            .collect();
        match self.store.insert_batch(batch, SystemTime::now()) {
            Ok((ids, evicted)) => {
                let letters = std::mem::take(&mut in_hand.letters);
                drop(in_hand);
                self.store_recovered();
                metrics::runtime()
                    .dead_letters_stored
                    .inc_by(ids.len() as u64);
                for (id, letter) in ids.into_iter().zip(letters) {
                    self.log_stored(id, &letter);
                }
                self.note_evicted(evicted);
                Ok(())
            }
            Err(error) => {
                drop(in_hand);
                self.store_failed(&error.to_string())
            }
        }
    }

    /// Moves the spilled letters into the store (one transaction), if it works.
    fn move_spill_into_store(&mut self) -> Result<(), HandlerError> {
        let store = &mut self.store;
        let result = self.shared.spill.drain_into(|batch| {
            let rows = batch.into_iter().map(|s| (s.letter, s.at_ms)).collect();
            store.insert_batch(rows, SystemTime::now()).map(|_| ())
        });
        match result {
            Ok(drained) => {
                for line in &drained.damaged {
                    tracing::warn!(line = %line, "a line of the dead-letter spill file is damaged (torn write?); it is skipped and kept only in this log line");
                }
                if drained.moved > 0 {
                    metrics::runtime()
                        .dead_letters_stored
                        .inc_by(drained.moved as u64);
                    tracing::info!(moved = drained.moved, spill = %self.shared.spill.path().display(), "spilled dead letters moved into the store");
                }
                self.store_recovered();
                Ok(())
            }
            Err(error) => self.store_failed(&error.to_string()),
        }
    }

    fn store_recovered(&mut self) {
        if self.shared.store_health().on_success() {
            tracing::info!(store = %self.store.path().display(), "dead-letter store takes writes again; spilled letters are moved into it");
        }
        metrics::runtime().dead_letter_store_up.set(1);
    }

    /// Records a failed store write; `Err` (a crash) once failures reach the limit.
    fn store_failed(&mut self, error: &str) -> Result<(), HandlerError> {
        metrics::runtime().dead_letter_store_failures.inc();
        metrics::runtime().dead_letter_store_up.set(0);
        let verdict = self.shared.store_health().on_failure(error, Instant::now());
        match verdict {
            StoreVerdict::RetryAfter { after } => {
                tracing::warn!(store = %self.store.path().display(), %error, retry_in_ms = after.as_millis() as u64, spill = %self.shared.spill.path().display(), "dead-letter store refused a write; letters go to the spill file, store retried after backoff");
                self.refresh();
                Ok(())
            }
            StoreVerdict::Escalate { failures } => {
                tracing::error!(store = %self.store.path().display(), %error, failures, spill = %self.shared.spill.path().display(), "dead-letter store failed too many writes in a row; letters stay in the spill file and the actor restarts to reopen the store");
                self.refresh();
                Err(HandlerError::crash(format!(
                    "dead-letter store failed {failures} writes in a row: {error}"
                )))
            }
        }
    }

    fn log_stored(&mut self, id: i64, letter: &NewDeadLetter) {
        match self.limiter.on_event(Instant::now()) {
            LogDecision::Log => tracing::warn!(
                id, actor = %letter.actor, msg = %letter.msg, error = %letter.error,
                correlation_id = %letter.correlation_id, "dead letter stored; inspect with `coordinator dead-letters show {}`", id
            ),
            LogDecision::Summary { suppressed } => tracing::warn!(suppressed, "more dead letters stored since the last summary; see `coordinator dead-letters list`"),
            LogDecision::Suppress => {}
        }
    }

    fn note_evicted(&mut self, evicted: Evicted) {
        if evicted.is_empty() {
            return;
        }
        metrics::runtime()
            .dead_letters_evicted
            .inc_by(evicted.total());
        if evicted.pending == 0 {
            return;
        }
        match self.evict_limiter.on_event(Instant::now()) {
            LogDecision::Log => tracing::warn!(evicted_pending = evicted.pending, max_entries = self.config.max_entries, "dead-letter store full of pending letters; the oldest pending were removed (raise dead_letters.max_entries or purge)"),
            LogDecision::Summary { suppressed } => tracing::warn!(suppressed, max_entries = self.config.max_entries, "pending dead letters were removed to stay within max_entries since the last summary (raise dead_letters.max_entries or purge)"),
            LogDecision::Suppress => {}
        }
    }

    /// Refreshes the gauges, the `/status` snapshot and the health check.
    fn refresh(&mut self) {
        if !self.shared.store_health().is_failing() {
            if let Ok(counts) = self.store.counts() {
                self.pending = Some(counts.pending);
                metrics::runtime()
                    .dead_letters_pending
                    .set(counts.pending as i64);
            }
        }
        let spilled = self.shared.spill.len();
        metrics::runtime()
            .dead_letters_spill_pending
            .set(spilled as i64);
        let failing = self.shared.store_health().is_failing();
        metrics::runtime()
            .dead_letter_store_up
            .set(if failing { 0 } else { 1 });
        let (failures, past_limit, error) = {
            let store = self.shared.store_health();
            (
                store.failures(),
                store.past_limit(),
                store.last_error().map(str::to_string),
            )
        };
        let check: HealthCheck = health_check(HealthInputs {
            pending: self.pending,
            spilled,
            store_failures: failures,
            store_past_limit: past_limit,
            store_error: error.as_deref(),
            warn_pending: self.config.warn_pending,
            unhealthy_pending: self.config.unhealthy_pending,
        });
        if check.status != self.last_status {
            match check.status {
                HealthStatus::Ok => {
                    tracing::info!(detail = %check.detail, "dead letters healthy again")
                }
                HealthStatus::Degraded => {
                    tracing::warn!(detail = %check.detail, "dead letters degraded; see /health")
                }
                HealthStatus::Failing => {
                    tracing::error!(detail = %check.detail, "dead letters failing; see /health and docs/operations.md")
                }
            }
            self.last_status = check.status;
        }
        self.shared.health.set(HEALTH_CHECK, check);
        let mut snapshot = self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        snapshot.store = if failures > 0 { "failing" } else { "ok" }.to_string();
        snapshot.store_failures = failures;
        snapshot.store_error = error;
        snapshot.pending = self.pending.unwrap_or(0);
        snapshot.spilled = spilled;
        snapshot.replaying = self.replaying.len() as u64;
    }

    /// Starts a replay of `id` unless refused; the result goes to `waiter` (if any).
    fn start_replay(
        &mut self,
        id: i64,
        force: bool,
        waiter: Option<oneshot::Sender<ReplayResult>>,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), ReplayDenied> {
        let Some(directory) = self.directory.get().cloned() else {
            return Err(ReplayDenied::NotReady);
        };
        let letter = self
            .store
            .get(id)
            .map_err(|e| ReplayDenied::Store(e.to_string()))?
            .ok_or(ReplayDenied::NotFound(id))?;
        may_replay(&letter, self.replaying.contains_key(&id), force)?;
        let now = SystemTime::now();
        if let Err(e) = self
            .store
            .mark_replay_started(id, now + self.config.replay_outcome_timeout)
        {
            tracing::warn!(id, error = %e, "could not record that a replay started; it may be replayed again after a restart");
        }
        self.replaying.insert(
            id,
            InFlight {
                deadline: Instant::now() + self.config.replay_timeout + Duration::from_secs(1),
                waiters: waiter.into_iter().collect(),
                awaiting_outcome: false,
            },
        );
        let meta = MessageMeta {
            retries: letter.retries + 1,
            replay_of: Some(letter.id),
            ..MessageMeta::with_correlation(
                CorrelationId::parse(&letter.correlation_id).unwrap_or_default(),
            )
        };
        let timeout = self.config.replay_timeout;
        tracing::info!(id, actor = %letter.actor, msg = %letter.msg, correlation_id = %letter.correlation_id, retries = letter.retries, force, "replaying dead letter");
        ctx.spawn(async move {
            let result = directory
                .replay(&letter.actor, &letter.msg, letter.payload, meta, timeout)
                .await
                .map_err(|e| e.to_string());
            ReplayAnswered { id, result }
        });
        Ok(())
    }

    /// Settles replay `id`: recovered on success, else one more failed replay. Answers its waiters.
    fn settle(&mut self, id: i64, error: Option<String>) -> Option<DeadLetter> {
        let waiters = self
            .replaying
            .remove(&id)
            .map(|f| f.waiters)
            .unwrap_or_default();
        let now = SystemTime::now();
        let updated = match &error {
            None => self.store.mark_recovered(id, now),
            Some(error) => self
                .store
                .record_failed_replay(id, error, now, &self.policy),
        };
        let letter = match updated {
            Ok(letter) => {
                match &error {
                    None => tracing::info!(id, "replayed dead letter succeeded; marked recovered"),
                    Some(error) => {
                        tracing::warn!(id, retries = letter.retries, status = %letter.status, %error, "replay failed again; the same letter keeps its retry count")
                    }
                }
                Some(letter)
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "could not record the replay outcome; the letter stays as it was");
                None
            }
        };
        for waiter in waiters {
            let _ = waiter.send(ReplayResult {
                replayed: error.is_none(),
                awaiting_outcome: false,
                error: error.clone(),
                dead_letter: letter.clone(),
            });
        }
        self.refresh();
        letter
    }

    fn expire_replays(&mut self) {
        let now = Instant::now();
        let expired: Vec<(i64, bool)> = self
            .replaying
            .iter()
            .filter(|(_, f)| now >= f.deadline)
            .map(|(id, f)| (*id, f.awaiting_outcome))
            .collect();
        for (id, awaiting) in expired {
            let error = if awaiting {
                format!(
                    "replayed work reported no outcome within {}",
                    humantime::format_duration(self.config.replay_outcome_timeout)
                )
            } else {
                format!(
                    "no answer to the replay within {}",
                    humantime::format_duration(self.config.replay_timeout)
                )
            };
            self.settle(id, Some(error));
        }
    }
}

impl Behavior for DeadLetterActor {
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Err(e) = self.drain_queue(&|| ctx.progress()) {
            tracing::warn!(error = %e, "dead-letter store failing at start; letters go to the spill file");
        }
        self.refresh();
        ctx.every(self.config.maintenance_every, || DeadLetterMaintenance);
        if !self.shared.queue.is_empty() {
            let _ = ctx.myself().try_tell_raw(DrainDeadLetters);
        }
    }

    /// Stops last: closes the queue (later letters go to the spill) and stores or spills what it still holds.
    fn stopping(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Option<futures::future::LocalBoxFuture<'static, ()>> {
        self.limiter.set_quiet(true);
        self.evict_limiter.set_quiet(true);
        let left = self.shared.queue.close();
        let n = left.len();
        for chunk in left.chunks(BATCH) {
            if self.store_or_spill(chunk.to_vec()).is_err() {
                // Escalation is moot while stopping; the letters of this chunk are already spilled.
            }
        }
        let spilled = self.shared.spill.len();
        tracing::info!(
            drained = n,
            spilled,
            "dead-letter queue drained at shutdown"
        );
        None
    }
}

impl Handles<DrainDeadLetters> for DeadLetterActor {
    fn handle(
        &mut self,
        _msg: &DrainDeadLetters,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        let result = self.drain_queue(&|| ctx.progress());
        self.refresh();
        result
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

impl Handles<ReplayDeadLetter> for DeadLetterActor {
    fn handle(
        &mut self,
        msg: &ReplayDeadLetter,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<Result<ReplayTicket, ReplayDenied>, HandlerError> {
        let (tx, rx) = oneshot::channel();
        let started = self.start_replay(msg.id, msg.force, Some(tx), ctx);
        self.refresh();
        Ok(started.map(|()| ReplayTicket {
            result: rx,
            wait: self.config.replay_timeout + Duration::from_secs(2),
        }))
    }
}

impl Handles<ReplayAnswered> for DeadLetterActor {
    fn handle(
        &mut self,
        msg: &ReplayAnswered,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        match &msg.result {
            Ok(ReplayAck::Handled) => {
                self.settle(msg.id, None);
            }
            Ok(ReplayAck::Accepted) => {
                let letter = self.store.get(msg.id).ok().flatten();
                if let Some(flight) = self.replaying.get_mut(&msg.id) {
                    flight.awaiting_outcome = true;
                    flight.deadline = Instant::now() + self.config.replay_outcome_timeout;
                    for waiter in flight.waiters.drain(..) {
                        let _ = waiter.send(ReplayResult {
                            replayed: true,
                            awaiting_outcome: true,
                            error: None,
                            dead_letter: letter.clone(),
                        });
                    }
                }
                tracing::info!(id = msg.id, "replayed message accepted; the letter stays pending until its work reports the outcome");
            }
            Err(error) => {
                self.settle(msg.id, Some(error.clone()));
            }
        }
        Ok(())
    }
}

impl Handles<ReplayFinished> for DeadLetterActor {
    fn handle(
        &mut self,
        msg: &ReplayFinished,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<Option<DeadLetter>, HandlerError> {
        Ok(self.settle(msg.id, msg.error.clone()))
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
        self.refresh();
        Ok(purged)
    }
}

impl Handles<DeadLetterMaintenance> for DeadLetterActor {
    fn handle(
        &mut self,
        _msg: &DeadLetterMaintenance,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), HandlerError> {
        if let Some(suppressed) = self.limiter.due_summary(Instant::now()) {
            tracing::warn!(
                suppressed,
                "dead letters stored since the last summary; see `coordinator dead-letters list`"
            );
        }
        if let Some(suppressed) = self.evict_limiter.due_summary(Instant::now()) {
            tracing::warn!(suppressed, max_entries = self.config.max_entries, "pending dead letters were removed to stay within max_entries since the last summary (raise dead_letters.max_entries or purge)");
        }
        self.drain_queue(&|| ctx.progress())?;
        if !self.shared.spill.is_empty() && self.shared.store_health().should_try(Instant::now()) {
            self.move_spill_into_store()?;
        }
        self.expire_replays();
        if !self.shared.store_health().is_failing() {
            let now = SystemTime::now();
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
                        if self.replaying.contains_key(&letter.id) {
                            continue;
                        }
                        if let Err(e) = self.start_replay(letter.id, false, None, ctx) {
                            tracing::debug!(id = letter.id, error = %e, "due dead letter not replayed now");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read due dead letters; retrying at the next maintenance")
                }
            }
        }
        self.refresh();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::runtime::dead_letters::record::sample_letter as letter;

    #[test]
    fn no_message_of_this_actor_ever_becomes_a_dead_letter() {
        let flags = [
            DrainDeadLetters::DEAD_LETTER_ON_FAILURE,
            ListDeadLetters::DEAD_LETTER_ON_FAILURE,
            GetDeadLetter::DEAD_LETTER_ON_FAILURE,
            ReplayDeadLetter::DEAD_LETTER_ON_FAILURE,
            ReplayAnswered::DEAD_LETTER_ON_FAILURE,
            ReplayFinished::DEAD_LETTER_ON_FAILURE,
            PurgeDeadLetters::DEAD_LETTER_ON_FAILURE,
            DeadLetterMaintenance::DEAD_LETTER_ON_FAILURE,
        ];
        assert_eq!(flags, [false; 8]);
    }

    #[test]
    fn letters_in_hand_are_spilled_when_storing_panics() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path().join("s.jsonl"), 1 << 20).unwrap();
        let sink = DeadLetterSink::new();
        sink.install_spill(spill.clone());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _in_hand = InHand {
                letters: vec![letter(1), letter(2)],
                sink: &sink,
            };
            panic!("store crashed mid-write");
        }));
        assert!(result.is_err());
        assert_eq!(spill.len(), 2);
        let mut got = Vec::new();
        spill
            .drain_into(|batch| {
                got = batch;
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(
            got[0].letter,
            letter(1),
            "the original letter, not a wrapper"
        );
    }
}
