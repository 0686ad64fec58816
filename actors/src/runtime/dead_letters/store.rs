//! `DeadLetterStore`: the durable, bounded SQLite table of dead letters.
//!
//! Durability: WAL journal with `synchronous=FULL`, so an insert that returned `Ok` was written and synced and
//! survives `kill -9`. Sharing: every write runs in an `IMMEDIATE` transaction and the connection waits on a busy
//! file (`busy_timeout`), so the daemon and the CLI can open the same file at once. Ids come from `AUTOINCREMENT` and
//! are never reused, so a replay by id cannot hit a different message after eviction.
//!
//! The rules (backoff, abandon, purge eligibility) come from `policy.rs`; this file only stores and queries.
//! Replay is at-least-once: a row stays pending until the caller marks it recovered or records the failure.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::config::DeadLetterConfig;
use super::policy::{purge_cutoff_ms, PurgeScope, RetryPolicy};
use super::record::{
    unix_ms, DeadLetter, DeadLetterCounts, DeadLetterPage, DeadLetterStatus, NewDeadLetter,
};

/// Schema version written by this build.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a write waits for another process holding the file before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const COLUMNS: &str =
    "id, at_ms, actor, msg, payload, error, correlation_id, retries, status, updated_at_ms, next_retry_at_ms";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms            INTEGER NOT NULL,
    actor            TEXT    NOT NULL,
    msg              TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    error            TEXT    NOT NULL,
    correlation_id   TEXT    NOT NULL,
    retries          INTEGER NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'recovered', 'abandoned')),
    updated_at_ms    INTEGER NOT NULL,
    next_retry_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS dead_letters_due ON dead_letters (status, next_retry_at_ms);
CREATE INDEX IF NOT EXISTS dead_letters_settled ON dead_letters (status, updated_at_ms);
";

/// Failures of the dead-letter store; each names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The parent folder could not be created.
    #[error("cannot create folder {dir} for the dead-letter store: {source}; check permissions or set dead_letters.path")]
    CreateDir {
        /// The folder.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file could not be opened or is not a usable SQLite database.
    #[error(
        "cannot open dead-letter store {path}: {source}; if the file is damaged, move it aside and restart to begin an empty store"
    )]
    Open {
        /// The store file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer build.
    #[error(
        "dead-letter store {path} has schema version {found}, newer than this build's {supported}; upgrade coordinator or set dead_letters.path to another file"
    )]
    SchemaTooNew {
        /// The store file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Version this build writes.
        supported: i64,
    },
    /// A statement failed.
    #[error("dead-letter store {path}: {operation} failed: {source}; check disk space, permissions and that the file is not damaged")]
    Query {
        /// The store file.
        path: PathBuf,
        /// What was being done (`insert`, `list`, ...).
        operation: &'static str,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A row could not be decoded (payload not JSON, unknown status).
    #[error(
        "dead-letter store {path}: row {id} is damaged ({detail}); purge it or move the file aside"
    )]
    CorruptRow {
        /// The store file.
        path: PathBuf,
        /// The row id.
        id: i64,
        /// What was wrong.
        detail: String,
    },
    /// No row has this id.
    #[error(
        "no dead letter with id {id} in {path}; see the ids with `coordinator dead-letters list`"
    )]
    NotFound {
        /// The store file.
        path: PathBuf,
        /// The id asked for.
        id: i64,
    },
    /// A damaged store could not be moved aside (so no fresh store can take its place).
    #[error("dead-letter store {path} is damaged ({reason}) and could not be moved aside to {aside}: {source}; move it away by hand or set dead_letters.path")]
    MoveAside {
        /// The store file.
        path: PathBuf,
        /// Where it was to go.
        aside: PathBuf,
        /// Why it is considered damaged.
        reason: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `max_entries` of zero would refuse every dead letter.
    #[error(
        "dead-letter store {path}: max_entries is 0; set dead_letters.max_entries to at least 1"
    )]
    ZeroCapacity {
        /// The store file.
        path: PathBuf,
    },
}

/// Rows removed by an insert to stay within `max_entries`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Recovered or abandoned rows removed (removed first).
    pub settled: u64,
    /// Pending rows removed (only when no settled rows were left): messages lost, worth a warning.
    pub pending: u64,
}

impl Evicted {
    /// All rows removed.
    pub fn total(&self) -> u64 {
        self.settled + self.pending
    }

    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

/// A store opened by [`DeadLetterStore::open_checked`].
#[derive(Debug)]
pub struct Opened {
    /// The store, ready for writes.
    pub store: DeadLetterStore,
    /// Set when a damaged file was moved aside and replaced.
    pub damaged: Option<Damaged>,
}

/// What [`DeadLetterStore::open_checked`] did with a damaged store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// The store file (now a fresh store).
    pub path: PathBuf,
    /// Where the damaged file went.
    pub moved_to: PathBuf,
    /// What was wrong with it.
    pub reason: String,
    /// Rows copied from it into the fresh store.
    pub salvaged: usize,
}

/// `<path>.damaged-<YYYYMMDDTHHMMSSZ>`.
fn aside_path(path: &Path, now: SystemTime) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".damaged-{stamp}"));
    PathBuf::from(name)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Renames the store and its `-wal`/`-shm` companions.
fn move_aside(path: &Path, aside: &Path) -> std::io::Result<()> {
    std::fs::rename(path, aside)?;
    for suffix in ["-wal", "-shm"] {
        let companion = with_suffix(path, suffix);
        if companion.exists() {
            std::fs::rename(&companion, with_suffix(aside, suffix))?;
        }
    }
    Ok(())
}

/// The rows still readable in a damaged store: in id order until the first unreadable one, then from the top
/// down to it (so one bad page in the middle loses only what is on it).
fn salvage_rows(path: &Path) -> Vec<RawRow> {
    let Ok(conn) = Connection::open(path) else {
        return Vec::new();
    };
    let read = |order: &str, bound: Option<i64>| -> Vec<RawRow> {
        let sql = match bound {
            None => format!("SELECT {COLUMNS} FROM dead_letters ORDER BY id {order}"),
            Some(_) => {
                format!("SELECT {COLUMNS} FROM dead_letters WHERE id > ?1 ORDER BY id {order}")
            }
        };
        let mut rows = Vec::new();
        let Ok(mut statement) = conn.prepare(&sql) else {
            return rows;
        };
        let query = match bound {
            None => statement.query([]),
            Some(b) => statement.query([b]),
        };
        let Ok(mut cursor) = query else {
            return rows;
        };
        while let Ok(Some(row)) = cursor.next() {
            match RawRow::read(row) {
                Ok(raw) => rows.push(raw),
                Err(_) => break,
            }
        }
        rows
    };
    let mut rows = read("ASC", None);
    let last = rows.last().map(|r| r.id).unwrap_or(i64::MIN);
    let mut tail = read("DESC", Some(last));
    tail.reverse();
    rows.extend(tail);
    rows
}

/// The durable dead-letter table. One per process; writes take `&mut self`.
#[derive(Debug)]
pub struct DeadLetterStore {
    conn: Connection,
    path: PathBuf,
    max_entries: u64,
    policy: RetryPolicy,
}

/// A row as SQLite holds it, before decoding payload and status.
struct RawRow {
    id: i64,
    at_ms: i64,
    actor: String,
    msg: String,
    payload: String,
    error: String,
    correlation_id: String,
    retries: i64,
    status: String,
    updated_at_ms: i64,
    next_retry_at_ms: Option<i64>,
}

impl RawRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            at_ms: row.get(1)?,
            actor: row.get(2)?,
            msg: row.get(3)?,
            payload: row.get(4)?,
            error: row.get(5)?,
            correlation_id: row.get(6)?,
            retries: row.get(7)?,
            status: row.get(8)?,
            updated_at_ms: row.get(9)?,
            next_retry_at_ms: row.get(10)?,
        })
    }

    fn decode(self, path: &Path) -> Result<DeadLetter, StoreError> {
        let corrupt = |detail: String| StoreError::CorruptRow {
            path: path.to_path_buf(),
            id: self.id,
            detail,
        };
        let payload = serde_json::from_str(&self.payload)
            .map_err(|e| corrupt(format!("payload is not JSON: {e}")))?;
        let status = self.status.parse().map_err(|e| corrupt(format!("{e}")))?;
        let retries = u32::try_from(self.retries)
            .map_err(|_| corrupt(format!("retries {} out of range", self.retries)))?;
        Ok(DeadLetter {
            id: self.id,
            at_ms: self.at_ms,
            actor: self.actor,
            msg: self.msg,
            payload,
            error: self.error,
            correlation_id: self.correlation_id,
            retries,
            status,
            updated_at_ms: self.updated_at_ms,
            next_retry_at_ms: self.next_retry_at_ms,
        })
    }
}

impl DeadLetterStore {
    /// Open (or create, with its parent folders) the store at `path`, keeping at most `max_entries` rows and using
    /// the default retry policy for new rows.
    pub fn open(path: impl AsRef<Path>, max_entries: u64) -> Result<Self, StoreError> {
        Self::open_with_policy(path, max_entries, RetryPolicy::default())
    }

    /// Open the store described by the `dead_letters` config section.
    pub fn open_with_config(config: &DeadLetterConfig) -> Result<Self, StoreError> {
        Self::open_with_policy(
            &config.path,
            config.max_entries,
            RetryPolicy::from_config(config),
        )
    }

    /// Open the configured store after checking it: a zero-length file, one SQLite cannot open, or one failing
    /// `PRAGMA quick_check` is moved aside (`<path>.damaged-<UTC timestamp>`, with its `-wal`/`-shm`), the rows still
    /// readable are copied into a fresh store at `path`, and [`Opened::damaged`] says what happened so the caller
    /// logs an error naming both files. Fails only when the store cannot be opened or moved aside at all.
    pub fn open_checked(config: &DeadLetterConfig, now: SystemTime) -> Result<Opened, StoreError> {
        let path = config.path.clone();
        let policy = RetryPolicy::from_config(config);
        let reason = match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == 0 => Some("the file is empty (zero length)".to_string()),
            _ => None,
        };
        let reason = match reason {
            Some(reason) => reason,
            None => match Self::open_with_policy(&path, config.max_entries, policy) {
                Ok(store) => match store.quick_check() {
                    Ok(()) => {
                        return Ok(Opened {
                            store,
                            damaged: None,
                        })
                    }
                    Err(reason) => reason,
                },
                // Only a file SQLite says is damaged is moved aside; a full disk, a lock or missing permissions
                // is a failure to open (retried by the supervisor), never a reason to replace the store.
                Err(StoreError::Open { source, .. }) if is_damage(&source) => source.to_string(),
                Err(other) => return Err(other),
            },
        };
        let aside = aside_path(&path, now);
        move_aside(&path, &aside).map_err(|source| StoreError::MoveAside {
            path: path.clone(),
            aside: aside.clone(),
            reason: reason.clone(),
            source,
        })?;
        let salvaged_rows = salvage_rows(&aside);
        let mut store = Self::open_with_policy(&path, config.max_entries, policy)?;
        let salvaged = salvaged_rows.len();
        store.write("copy salvaged rows", |tx, _| {
            for raw in &salvaged_rows {
                tx.execute(
                    &format!("INSERT OR IGNORE INTO dead_letters ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                    params![
                        raw.id, raw.at_ms, raw.actor, raw.msg, raw.payload, raw.error, raw.correlation_id,
                        raw.retries, raw.status, raw.updated_at_ms, raw.next_retry_at_ms
                    ],
                )?;
            }
            Ok(())
        })?;
        Ok(Opened {
            store,
            damaged: Some(Damaged {
                path,
                moved_to: aside,
                reason,
                salvaged,
            }),
        })
    }

    /// `PRAGMA quick_check`: `Err(what it found)` unless the file is consistent.
    pub fn quick_check(&self) -> Result<(), String> {
        let mut statement = self
            .conn
            .prepare("PRAGMA quick_check")
            .map_err(|e| format!("quick_check failed: {e}"))?;
        let rows: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| format!("quick_check failed: {e}"))?;
        match rows.as_slice() {
            [only] if only == "ok" => Ok(()),
            [] => Err("quick_check returned nothing".to_string()),
            found => Err(format!(
                "quick_check found: {}",
                found.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            )),
        }
    }

    /// Open with an explicit retry policy (used to schedule the first automatic replay of new rows).
    pub fn open_with_policy(
        path: impl AsRef<Path>,
        max_entries: u64,
        policy: RetryPolicy,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if max_entries == 0 {
            return Err(StoreError::ZeroCapacity { path });
        }
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let open_error = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        // journal_mode answers with the mode in force; reading it is also the first access, which fails on a file
        // that is not a database.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "dead-letter store could not switch to WAL; continuing with synced writes");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        let found = Self::create_schema(&mut conn).map_err(open_error)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(Self {
            conn,
            path,
            max_entries,
            policy,
        })
    }

    /// Create tables if absent and return the schema version in the file.
    fn create_schema(conn: &mut Connection) -> rusqlite::Result<i64> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        let found: Option<i64> =
            tx.query_row("SELECT MAX(version) FROM schema_version", [], |row| {
                row.get(0)
            })?;
        let version = match found {
            Some(version) => version,
            None => {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )?;
                SCHEMA_VERSION
            }
        };
        tx.commit()?;
        Ok(version)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The row limit.
    pub fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// The retry policy used for new rows.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    fn query_error(&self, operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.path.clone(),
            operation,
            source,
        }
    }

    /// Store a dead letter as pending, synced to disk before returning. When the table then exceeds `max_entries`,
    /// the oldest recovered/abandoned rows are removed first, then the oldest pending ones (never the new row).
    pub fn insert(
        &mut self,
        new: NewDeadLetter,
        now: SystemTime,
    ) -> Result<(DeadLetter, Evicted), StoreError> {
        let record = self.new_record(new, unix_ms(now), now);
        let (id, evicted) = self.write("insert", |tx, max_entries| {
            let id = Self::insert_row(tx, &record)?;
            let evicted = Self::evict_over_limit(tx, max_entries, id)?;
            Ok((id, evicted))
        })?;
        Ok((DeadLetter { id, ..record }, evicted))
    }

    /// Store a batch of letters (spilled earlier at their `at_ms`) in one transaction: all or none, synced.
    pub fn insert_batch(
        &mut self,
        batch: Vec<(NewDeadLetter, i64)>,
        now: SystemTime,
    ) -> Result<(Vec<i64>, Evicted), StoreError> {
        let records: Vec<DeadLetter> = batch
            .into_iter()
            .map(|(new, at_ms)| self.new_record(new, at_ms, now))
            .collect();
        self.write("insert spilled letters", |tx, max_entries| {
            let mut ids = Vec::with_capacity(records.len());
            for record in &records {
                ids.push(Self::insert_row(tx, record)?);
            }
            let evicted = match ids.last() {
                Some(&last) => Self::evict_over_limit(tx, max_entries, last)?,
                None => Evicted::default(),
            };
            Ok((ids, evicted))
        })
    }

    fn new_record(&self, new: NewDeadLetter, at_ms: i64, now: SystemTime) -> DeadLetter {
        DeadLetter {
            id: 0,
            at_ms,
            actor: new.actor,
            msg: new.msg,
            payload: new.payload,
            error: new.error,
            correlation_id: new.correlation_id,
            retries: new.retries,
            status: DeadLetterStatus::Pending,
            updated_at_ms: unix_ms(now),
            next_retry_at_ms: self.policy.first_retry_at(new.retries, now),
        }
    }

    fn insert_row(tx: &rusqlite::Transaction<'_>, record: &DeadLetter) -> rusqlite::Result<i64> {
        tx.execute(
            "INSERT INTO dead_letters (at_ms, actor, msg, payload, error, correlation_id, retries, status,
             updated_at_ms, next_retry_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                record.at_ms,
                record.actor,
                record.msg,
                record.payload.to_string(),
                record.error,
                record.correlation_id,
                record.retries,
                record.status.as_str(),
                record.updated_at_ms,
                record.next_retry_at_ms,
            ],
        )?;
        Ok(tx.last_insert_rowid())
    }

    /// A replay of pending row `id` started: its next automatic replay moves to `until` (the replay's deadline),
    /// so a replay whose outcome never comes (the daemon stopped meanwhile) is tried again after it, not at once.
    pub fn mark_replay_started(&mut self, id: i64, until: SystemTime) -> Result<(), StoreError> {
        self.write("mark replay started", |tx, _| {
            tx.execute(
                "UPDATE dead_letters SET next_retry_at_ms = ?2 WHERE id = ?1 AND status = 'pending'",
                params![id, unix_ms(until)],
            )
        })?;
        Ok(())
    }

    fn evict_over_limit(
        tx: &rusqlite::Transaction<'_>,
        max_entries: u64,
        keep_id: i64,
    ) -> rusqlite::Result<Evicted> {
        let total: i64 = tx.query_row("SELECT COUNT(*) FROM dead_letters", [], |row| row.get(0))?;
        let excess = total.saturating_sub(i64::try_from(max_entries).unwrap_or(i64::MAX));
        if excess <= 0 {
            return Ok(Evicted::default());
        }
        let settled = tx.execute(
            "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE status != 'pending' AND id != ?1
             ORDER BY id LIMIT ?2)",
            params![keep_id, excess],
        )? as i64;
        let pending = if settled < excess {
            tx.execute(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE status = 'pending' AND id != ?1
                 ORDER BY id LIMIT ?2)",
                params![keep_id, excess - settled],
            )? as i64
        } else {
            0
        };
        Ok(Evicted {
            settled: settled as u64,
            pending: pending as u64,
        })
    }

    /// Run `body` in an IMMEDIATE transaction (takes the write lock up front, waiting up to `BUSY_TIMEOUT`).
    fn write<T>(
        &mut self,
        operation: &'static str,
        body: impl FnOnce(&rusqlite::Transaction<'_>, u64) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let wrap = |source| StoreError::Query {
            path: path.clone(),
            operation,
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(wrap)?;
        let value = body(&tx, self.max_entries).map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        Ok(value)
    }

    /// One dead letter, or `None` when no row has this id.
    pub fn get(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM dead_letters WHERE id = ?1"),
                [id],
                RawRow::read,
            )
            .optional()
            .map_err(self.query_error("get"))?;
        raw.map(|raw| raw.decode(&self.path)).transpose()
    }

    /// One page of dead letters, newest first, optionally of one status, with the total matching.
    pub fn list(
        &self,
        limit: usize,
        offset: usize,
        status: Option<DeadLetterStatus>,
    ) -> Result<DeadLetterPage, StoreError> {
        let filter = status.map(DeadLetterStatus::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM dead_letters WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2 OFFSET ?3"
            ))
            .map_err(self.query_error("list"))?;
        let raws = statement
            .query_map(params![filter, limit, offset], RawRow::read)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.query_error("list"))?;
        let dead_letters = raws
            .into_iter()
            .map(|raw| raw.decode(&self.path))
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM dead_letters WHERE (?1 IS NULL OR status = ?1)",
                [filter],
                |row| row.get(0),
            )
            .map_err(self.query_error("count"))?;
        Ok(DeadLetterPage {
            dead_letters,
            total: total.max(0) as u64,
        })
    }

    /// Rows per status.
    pub fn counts(&self) -> Result<DeadLetterCounts, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT status, COUNT(*) FROM dead_letters GROUP BY status")
            .map_err(self.query_error("counts"))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.query_error("counts"))?;
        let mut counts = DeadLetterCounts::default();
        for (status, count) in rows {
            let count = count.max(0) as u64;
            match status.parse() {
                Ok(DeadLetterStatus::Pending) => counts.pending = count,
                Ok(DeadLetterStatus::Recovered) => counts.recovered = count,
                Ok(DeadLetterStatus::Abandoned) => counts.abandoned = count,
                Err(e) => {
                    return Err(StoreError::CorruptRow {
                        path: self.path.clone(),
                        id: -1,
                        detail: e.to_string(),
                    })
                }
            }
        }
        Ok(counts)
    }

    /// Mark a row recovered after a successful replay; it no longer retries and is purged after `purge_after`.
    pub fn mark_recovered(&mut self, id: i64, now: SystemTime) -> Result<DeadLetter, StoreError> {
        let changed = self.write("mark recovered", |tx, _| {
            tx.execute(
                "UPDATE dead_letters SET status = 'recovered', updated_at_ms = ?2, next_retry_at_ms = NULL WHERE id = ?1",
                params![id, unix_ms(now)],
            )
        })?;
        self.after_update(id, changed)
    }

    /// Record a failed replay: retries + 1, the new error, then pending with the next backoff or abandoned, as
    /// `policy` decides. Never loops: each failure moves the row one step towards abandoned.
    pub fn record_failed_replay(
        &mut self,
        id: i64,
        error: &str,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Result<DeadLetter, StoreError> {
        // Read and update in one write transaction, so a replay recorded at the same time by another process
        // (daemon and CLI) cannot be lost: each failure counts once.
        let path = self.path.clone();
        let decided = self.write("record failed replay", |tx, _| {
            let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE id = ?1");
            let Some(raw) = tx.query_row(&sql, [id], RawRow::read).optional()? else {
                return Ok(Err(StoreError::NotFound { path: path.clone(), id }));
            };
            let current = match raw.decode(&path) {
                Ok(current) => current,
                Err(error) => return Ok(Err(error)),
            };
            let outcome = policy.after_failed_replay(&current, now);
            tx.execute(
                "UPDATE dead_letters SET retries = ?2, status = ?3, error = ?4, updated_at_ms = ?5, next_retry_at_ms = ?6
                 WHERE id = ?1",
                params![id, outcome.retries, outcome.status.as_str(), error, unix_ms(now), outcome.next_retry_at_ms],
            )?;
            Ok(Ok(DeadLetter {
                retries: outcome.retries,
                status: outcome.status,
                error: error.to_string(),
                updated_at_ms: unix_ms(now),
                next_retry_at_ms: outcome.next_retry_at_ms,
                ..current
            }))
        })?;
        decided
    }

    fn after_update(&self, id: i64, changed: usize) -> Result<DeadLetter, StoreError> {
        let not_found = || StoreError::NotFound {
            path: self.path.clone(),
            id,
        };
        if changed == 0 {
            return Err(not_found());
        }
        self.get(id)?.ok_or_else(not_found)
    }

    /// Remove recovered and abandoned rows whose last change is at least `older_than` before `now`; pending rows stay.
    pub fn purge(&mut self, older_than: Duration, now: SystemTime) -> Result<usize, StoreError> {
        self.purge_scoped(older_than, now, PurgeScope::Settled)
    }

    /// Like [`purge`](Self::purge), with pending rows included when `scope` says so (an explicit operator choice).
    pub fn purge_scoped(
        &mut self,
        older_than: Duration,
        now: SystemTime,
        scope: PurgeScope,
    ) -> Result<usize, StoreError> {
        let cutoff = purge_cutoff_ms(older_than, now);
        let include_pending = scope == PurgeScope::IncludingPending;
        self.write("purge", |tx, _| {
            tx.execute(
                "DELETE FROM dead_letters WHERE updated_at_ms <= ?1 AND (?2 OR status != 'pending')",
                params![cutoff, include_pending],
            )
        })
    }

    /// Pending rows whose automatic replay is due at `now`, earliest first (never recovered or abandoned rows).
    pub fn due_for_retry(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM dead_letters WHERE status = 'pending' AND next_retry_at_ms IS NOT NULL
                 AND next_retry_at_ms <= ?1 ORDER BY next_retry_at_ms, id LIMIT ?2"
            ))
            .map_err(self.query_error("due for retry"))?;
        let raws = statement
            .query_map(
                params![unix_ms(now), i64::try_from(limit).unwrap_or(i64::MAX)],
                RawRow::read,
            )
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.query_error("due for retry"))?;
        raws.into_iter().map(|raw| raw.decode(&self.path)).collect()
    }
}

/// True for SQLite errors that mean the file itself is damaged (not a database, or corrupt), as opposed to an
/// environment that keeps it from being opened now (disk full, locked, no permission, I/O error).
fn is_damage(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_a_damaged_file_counts_as_damage_not_a_full_disk_or_a_lock() {
        use rusqlite::ffi;
        let failure = |code| rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
        assert!(is_damage(&failure(ffi::SQLITE_CORRUPT)));
        assert!(is_damage(&failure(ffi::SQLITE_NOTADB)));
        for code in [
            ffi::SQLITE_FULL,
            ffi::SQLITE_BUSY,
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_PERM,
        ] {
            assert!(!is_damage(&failure(code)), "code {code}");
        }
    }

    use super::*;
    use crate::runtime::dead_letters::policy::is_purgeable;
    use crate::runtime::dead_letters::record::from_unix_ms;

    const T0: i64 = 1_700_000_000_000;
    const SEC: i64 = 1000;

    fn at(ms: i64) -> SystemTime {
        from_unix_ms(ms)
    }

    fn letter(n: u32) -> NewDeadLetter {
        NewDeadLetter {
            actor: "sync".into(),
            msg: "StartSync".into(),
            payload: serde_json::json!({"n": n, "peer": "gh200-1", "nested": [1, 2, {"x": null}]}),
            error: format!("failure {n}"),
            correlation_id: format!("corr-{n}"),
            retries: 0,
        }
    }

    fn temp_store(max_entries: u64) -> (tempfile::TempDir, DeadLetterStore) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            DeadLetterStore::open(dir.path().join("state/dead_letters.db"), max_entries).unwrap();
        (dir, store)
    }

    #[test]
    fn insert_then_get_and_list_round_trip() {
        let (_dir, mut store) = temp_store(100);
        let (stored, evicted) = store.insert(letter(1), at(T0)).unwrap();
        assert!(evicted.is_empty());
        assert_eq!(stored.status, DeadLetterStatus::Pending);
        assert_eq!(
            stored.next_retry_at_ms,
            Some(T0 + 60 * SEC),
            "first automatic replay after backoff_base"
        );
        assert_eq!(store.get(stored.id).unwrap(), Some(stored.clone()));
        assert_eq!(store.get(stored.id + 100).unwrap(), None);
        let (second, _) = store.insert(letter(2), at(T0 + SEC)).unwrap();
        let page = store.list(10, 0, None).unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(
            page.dead_letters,
            vec![second.clone(), stored.clone()],
            "newest first"
        );
        let page = store.list(1, 1, None).unwrap();
        assert_eq!((page.total, page.dead_letters), (2, vec![stored]));
        assert!(store.path().ends_with("state/dead_letters.db"));
    }

    #[test]
    fn list_filters_by_status_and_counts_each() {
        let (_dir, mut store) = temp_store(100);
        let ids: Vec<i64> = (0..5)
            .map(|n| store.insert(letter(n), at(T0)).unwrap().0.id)
            .collect();
        store.mark_recovered(ids[0], at(T0 + SEC)).unwrap();
        store.mark_recovered(ids[1], at(T0 + SEC)).unwrap();
        let strict = RetryPolicy {
            max_retries: 1,
            ..RetryPolicy::default()
        };
        store
            .record_failed_replay(ids[2], "again", at(T0 + SEC), &strict)
            .unwrap();
        assert_eq!(
            store.counts().unwrap(),
            DeadLetterCounts {
                pending: 2,
                recovered: 2,
                abandoned: 1
            }
        );
        let recovered = store
            .list(10, 0, Some(DeadLetterStatus::Recovered))
            .unwrap();
        assert_eq!(recovered.total, 2);
        assert_eq!(
            recovered
                .dead_letters
                .iter()
                .map(|d| d.id)
                .collect::<Vec<_>>(),
            vec![ids[1], ids[0]]
        );
        assert_eq!(
            store
                .list(10, 0, Some(DeadLetterStatus::Abandoned))
                .unwrap()
                .dead_letters[0]
                .id,
            ids[2]
        );
    }

    #[test]
    fn bound_evicts_oldest_settled_first_then_oldest_pending() {
        let (_dir, mut store) = temp_store(4);
        let ids: Vec<i64> = (0..4)
            .map(|n| store.insert(letter(n), at(T0 + n as i64)).unwrap().0.id)
            .collect();
        // ids[0] pending (oldest), ids[1] and ids[2] settled, ids[3] pending.
        store.mark_recovered(ids[2], at(T0 + 10)).unwrap();
        let strict = RetryPolicy {
            max_retries: 1,
            ..RetryPolicy::default()
        };
        store
            .record_failed_replay(ids[1], "gone", at(T0 + 10), &strict)
            .unwrap();

        let (fifth, evicted) = store.insert(letter(4), at(T0 + 20)).unwrap();
        assert_eq!(
            evicted,
            Evicted {
                settled: 1,
                pending: 0
            }
        );
        assert_eq!(
            store.get(ids[1]).unwrap(),
            None,
            "oldest settled row goes first"
        );
        assert!(
            store.get(ids[0]).unwrap().is_some(),
            "older pending row is kept while settled rows remain"
        );

        let (_, evicted) = store.insert(letter(5), at(T0 + 21)).unwrap();
        assert_eq!(
            evicted,
            Evicted {
                settled: 1,
                pending: 0
            }
        );
        assert_eq!(store.get(ids[2]).unwrap(), None);

        let (sixth, evicted) = store.insert(letter(6), at(T0 + 22)).unwrap();
        assert_eq!(
            evicted,
            Evicted {
                settled: 0,
                pending: 1
            }
        );
        assert_eq!(
            store.get(ids[0]).unwrap(),
            None,
            "then the oldest pending row"
        );
        assert!(store.get(fifth.id).unwrap().is_some());
        assert!(
            store.get(sixth.id).unwrap().is_some(),
            "the new row is never evicted"
        );
        assert_eq!(store.counts().unwrap().total(), 4);
    }

    #[test]
    fn ids_are_never_reused_after_eviction() {
        let (_dir, mut store) = temp_store(1);
        let first = store.insert(letter(1), at(T0)).unwrap().0.id;
        let (second, evicted) = store.insert(letter(2), at(T0)).unwrap();
        assert_eq!(evicted.pending, 1);
        assert!(second.id > first);
        store
            .purge_scoped(Duration::ZERO, at(T0 + SEC), PurgeScope::IncludingPending)
            .unwrap();
        assert!(store.insert(letter(3), at(T0)).unwrap().0.id > second.id);
    }

    #[test]
    fn purge_removes_only_old_settled_rows_unless_pending_included() {
        let (_dir, mut store) = temp_store(100);
        let week = Duration::from_secs(7 * 86_400);
        let week_ms = 7 * 86_400 * SEC;
        let old_recovered = store.insert(letter(0), at(T0)).unwrap().0.id;
        store.mark_recovered(old_recovered, at(T0)).unwrap();
        let young_recovered = store.insert(letter(1), at(T0)).unwrap().0.id;
        store.mark_recovered(young_recovered, at(T0 + SEC)).unwrap();
        let strict = RetryPolicy {
            max_retries: 1,
            ..RetryPolicy::default()
        };
        let old_abandoned = store.insert(letter(2), at(T0)).unwrap().0.id;
        store
            .record_failed_replay(old_abandoned, "x", at(T0), &strict)
            .unwrap();
        let old_pending = store.insert(letter(3), at(T0)).unwrap().0.id;

        let now = at(T0 + week_ms);
        let before: Vec<DeadLetter> = store.list(100, 0, None).unwrap().dead_letters;
        let expected: Vec<i64> = before
            .iter()
            .filter(|d| is_purgeable(d, week, now, PurgeScope::Settled))
            .map(|d| d.id)
            .collect();
        assert_eq!(store.purge(week, now).unwrap(), 2);
        let mut gone = vec![old_recovered, old_abandoned];
        gone.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(expected, gone, "SQL and the pure rule agree");
        for id in gone {
            assert_eq!(store.get(id).unwrap(), None);
        }
        assert!(store.get(young_recovered).unwrap().is_some());
        assert!(
            store.get(old_pending).unwrap().is_some(),
            "pending rows stay"
        );
        assert_eq!(
            store
                .purge_scoped(week, now, PurgeScope::IncludingPending)
                .unwrap(),
            1
        );
        assert_eq!(store.get(old_pending).unwrap(), None);
        assert_eq!(
            store.counts().unwrap(),
            DeadLetterCounts {
                pending: 0,
                recovered: 1,
                abandoned: 0
            }
        );
    }

    #[test]
    fn failed_replays_back_off_then_abandon_and_leave_the_due_list() {
        let (_dir, mut store) = temp_store(100);
        let policy = RetryPolicy::default();
        let id = store.insert(letter(1), at(T0)).unwrap().0.id;
        assert!(store
            .due_for_retry(at(T0 + 59 * SEC), 10)
            .unwrap()
            .is_empty());
        let mut now = T0 + 60 * SEC;
        for (retries, wait_s) in [(1, 120), (2, 240), (3, 480), (4, 960)] {
            let due = store.due_for_retry(at(now), 10).unwrap();
            assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id]);
            let row = store
                .record_failed_replay(id, &format!("fail {retries}"), at(now), &policy)
                .unwrap();
            assert_eq!(
                (row.retries, row.status),
                (retries, DeadLetterStatus::Pending)
            );
            assert_eq!(row.error, format!("fail {retries}"));
            assert_eq!(
                store.get(id).unwrap().as_ref(),
                Some(&row),
                "returned row is what was stored"
            );
            assert_eq!(row.next_retry_at_ms, Some(now + wait_s * SEC));
            assert!(store
                .due_for_retry(at(now + wait_s * SEC - 1), 10)
                .unwrap()
                .is_empty());
            now += wait_s * SEC;
        }
        let row = store
            .record_failed_replay(id, "fail 5", at(now), &policy)
            .unwrap();
        assert_eq!(
            (row.retries, row.status, row.next_retry_at_ms),
            (5, DeadLetterStatus::Abandoned, None)
        );
        assert!(store
            .due_for_retry(at(now + 100 * 3600 * SEC), 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn recovered_rows_are_never_due_and_unknown_ids_are_not_found() {
        let (_dir, mut store) = temp_store(100);
        let ids: Vec<i64> = (0..3)
            .map(|n| store.insert(letter(n), at(T0 + n as i64)).unwrap().0.id)
            .collect();
        let recovered = store.mark_recovered(ids[1], at(T0 + SEC)).unwrap();
        assert_eq!(
            (recovered.status, recovered.next_retry_at_ms),
            (DeadLetterStatus::Recovered, None)
        );
        assert_eq!(recovered.updated_at_ms, T0 + SEC);
        let due: Vec<i64> = store
            .due_for_retry(at(T0 + 3600 * SEC), 10)
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(due, vec![ids[0], ids[2]]);
        assert_eq!(
            store.due_for_retry(at(T0 + 3600 * SEC), 1).unwrap().len(),
            1
        );
        assert!(matches!(
            store.mark_recovered(999, at(T0)),
            Err(StoreError::NotFound { id: 999, .. })
        ));
        let err = store
            .record_failed_replay(999, "x", at(T0), &RetryPolicy::default())
            .unwrap_err();
        assert!(
            err.to_string().contains("no dead letter with id 999"),
            "{err}"
        );
    }

    #[test]
    fn rows_whose_retries_are_spent_wait_for_an_operator() {
        let (_dir, mut store) = temp_store(100);
        let (row, _) = store
            .insert(
                NewDeadLetter {
                    retries: 5,
                    ..letter(1)
                },
                at(T0),
            )
            .unwrap();
        assert_eq!(
            (row.status, row.next_retry_at_ms),
            (DeadLetterStatus::Pending, None)
        );
        assert!(store
            .due_for_retry(at(T0 + 86_400 * SEC), 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn insert_survives_drop_without_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl.db");
        let mut store = DeadLetterStore::open(&path, 10).unwrap();
        let (stored, _) = store.insert(letter(7), at(T0)).unwrap();
        std::mem::forget(store); // no destructor, no close: like a crash of this process's handle
        let reopened = DeadLetterStore::open(&path, 10).unwrap();
        assert_eq!(reopened.get(stored.id).unwrap(), Some(stored));
    }

    /// Child half of `insert_survives_kill_9`: only acts when the parent test sets the variable.
    #[test]
    fn kill_9_child() {
        let Ok(path) = std::env::var("DEAD_LETTER_KILL9_PATH") else {
            return;
        };
        let mut store = DeadLetterStore::open(&path, 10).unwrap();
        let (stored, _) = store.insert(letter(9), at(T0)).unwrap();
        println!("stored id {}", stored.id);
        // SAFETY: kill on our own pid with SIGKILL; nothing after it runs.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }

    #[test]
    fn insert_survives_kill_9() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl.db");
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe)
            .args([
                "--exact",
                "runtime::dead_letters::store::tests::kill_9_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DEAD_LETTER_KILL9_PATH", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "child did not finish in 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "child must die by SIGKILL, got {status:?}"
        );
        let store = DeadLetterStore::open(&path, 10).unwrap();
        let page = store.list(10, 0, None).unwrap();
        assert_eq!(page.total, 1);
        assert_eq!(page.dead_letters[0].payload["n"], 9);
    }

    #[test]
    fn two_handles_on_one_file_see_each_other_and_write_concurrently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl.db");
        let mut daemon = DeadLetterStore::open(&path, 1000).unwrap();
        let cli = DeadLetterStore::open(&path, 1000).unwrap();
        let id = daemon.insert(letter(1), at(T0)).unwrap().0.id;
        assert!(cli.get(id).unwrap().is_some());
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut store = DeadLetterStore::open(&path, 1000).unwrap();
                    for n in 0..50 {
                        store.insert(letter(w * 100 + n), at(T0)).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(cli.counts().unwrap().pending, 101);
    }

    #[test]
    fn corrupt_file_gives_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl.db");
        std::fs::write(&path, "this is not a sqlite database\n".repeat(100)).unwrap();
        let err = DeadLetterStore::open(&path, 10).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("move it aside"), "{text}");
    }

    #[test]
    fn zero_capacity_and_unwritable_folder_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            DeadLetterStore::open(dir.path().join("a.db"), 0),
            Err(StoreError::ZeroCapacity { .. })
        ));
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let err = DeadLetterStore::open(blocker.join("sub/dl.db"), 10).unwrap_err();
        assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl.db");
        drop(DeadLetterStore::open(&path, 10).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        drop(conn);
        let err = DeadLetterStore::open(&path, 10).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew {
                    found: 99,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn damaged_row_is_reported_with_its_id() {
        let (dir, mut store) = temp_store(10);
        let id = store.insert(letter(1), at(T0)).unwrap().0.id;
        let conn = Connection::open(dir.path().join("state/dead_letters.db")).unwrap();
        conn.execute(
            "UPDATE dead_letters SET payload = 'not json' WHERE id = ?1",
            [id],
        )
        .unwrap();
        let err = store.get(id).unwrap_err();
        assert!(
            matches!(err, StoreError::CorruptRow { id: row, .. } if row == id),
            "{err:?}"
        );
    }

    fn checked_config(dir: &Path) -> DeadLetterConfig {
        DeadLetterConfig {
            path: dir.join("state/dead_letters.db"),
            ..DeadLetterConfig::default()
        }
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn checked_open_keeps_a_healthy_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = checked_config(dir.path());
        let mut store = DeadLetterStore::open_with_config(&config).unwrap();
        store.insert(letter(1), at(T0)).unwrap();
        drop(store);
        let opened = DeadLetterStore::open_checked(&config, at(T0)).unwrap();
        assert_eq!(opened.damaged, None);
        assert_eq!(opened.store.counts().unwrap().pending, 1);
    }

    #[test]
    fn a_zero_length_store_is_moved_aside_not_silently_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let config = checked_config(dir.path());
        std::fs::create_dir_all(config.path.parent().unwrap()).unwrap();
        std::fs::write(&config.path, b"").unwrap();
        let opened = DeadLetterStore::open_checked(&config, at(T0)).unwrap();
        let damaged = opened.damaged.expect("zero-length store is reported");
        assert!(damaged.reason.contains("zero length"), "{}", damaged.reason);
        assert_eq!(damaged.salvaged, 0);
        assert!(damaged.moved_to.exists());
        assert!(
            damaged
                .moved_to
                .display()
                .to_string()
                .contains("dead_letters.db.damaged-20231114T221320Z"),
            "{}",
            damaged.moved_to.display()
        );
        assert_eq!(opened.store.counts().unwrap().total(), 0);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let config = checked_config(dir.path());
        std::fs::create_dir_all(config.path.parent().unwrap()).unwrap();
        std::fs::write(&config.path, "this is not a sqlite database\n".repeat(100)).unwrap();
        let opened = DeadLetterStore::open_checked(&config, at(T0)).unwrap();
        let damaged = opened.damaged.expect("reported");
        assert!(damaged.moved_to.exists());
        let names = files_in(config.path.parent().unwrap());
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("dead_letters.db.damaged-")),
            "{names:?}"
        );
    }

    #[test]
    fn a_corrupt_page_is_found_and_the_readable_rows_salvaged() {
        let dir = tempfile::tempdir().unwrap();
        let config = checked_config(dir.path());
        let mut store = DeadLetterStore::open_with_config(&config).unwrap();
        let big = "x".repeat(600);
        for n in 0..200 {
            let mut l = letter(n);
            l.error = format!("{n} {big}");
            store.insert(l, at(T0)).unwrap();
        }
        drop(store); // last connection: checkpoints the WAL into the file
        let pages = std::fs::metadata(&config.path).unwrap().len() / 4096;
        assert!(pages > 20, "store has {pages} pages");
        // Two pages of noise in the middle of the table, like a bad sector.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&config.path)
            .unwrap();
        use std::io::{Seek, SeekFrom, Write};
        file.seek(SeekFrom::Start(4096 * 10)).unwrap();
        let noise: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        file.write_all(&noise).unwrap();
        drop(file);
        let opened = DeadLetterStore::open_checked(&config, at(T0)).unwrap();
        let damaged = opened.damaged.expect("quick_check finds the corrupt page");
        assert!(
            damaged.salvaged > 100 && damaged.salvaged < 200,
            "salvaged {}",
            damaged.salvaged
        );
        let page = opened.store.list(1000, 0, None).unwrap();
        assert_eq!(page.total as usize, damaged.salvaged);
        assert!(
            page.dead_letters.iter().any(|d| d.payload["n"] == 199),
            "rows after the bad page are kept"
        );
        assert!(
            page.dead_letters.iter().any(|d| d.payload["n"] == 0),
            "rows before it too"
        );
        assert!(opened.store.quick_check().is_ok());
    }

    #[test]
    fn a_batch_is_stored_whole_with_its_own_times() {
        let (_dir, mut store) = temp_store(100);
        let (ids, evicted) = store
            .insert_batch(vec![(letter(1), T0 - 5000), (letter(2), T0 - 4000)], at(T0))
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert!(evicted.is_empty());
        let first = store.get(ids[0]).unwrap().unwrap();
        assert_eq!(first.at_ms, T0 - 5000);
        assert_eq!(first.payload, letter(1).payload);
        store
            .mark_replay_started(ids[0], at(T0 + 3600 * SEC))
            .unwrap();
        assert_eq!(
            store.get(ids[0]).unwrap().unwrap().next_retry_at_ms,
            Some(T0 + 3600 * SEC)
        );
    }
}
