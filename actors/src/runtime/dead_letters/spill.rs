//! `Spill`: the bounded, fsynced fallback for dead letters the store cannot take (disk full, corrupt page, file
//! locked past the busy timeout, mailbox full, actor gone at shutdown).
//!
//! A JSON-lines file beside the store (`<store>.spill.jsonl`), one [`SpilledLetter`] per line, each appended and
//! synced (`fdatasync`) before `append` returns. Bounded by `max_bytes`; the space is reserved up front with
//! `fallocate(KEEP_SIZE)` where the filesystem supports it, so appends still succeed when the disk fills up after
//! the daemon started. The dead-letter actor moves the lines into the store once the store works again
//! ([`Spill::drain_into`]), then empties the file. Shared by the sink (any thread) and the actor: one mutex.
//!
//! A line that does not parse (a write torn by `kill -9`) is skipped when draining and reported to the caller, who
//! logs it with its text. Nothing here knows about SQLite: the caller passes the function that stores a batch.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::record::NewDeadLetter;

/// One line of the spill file: the original letter (never a wrapper around it) and when it was spilled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpilledLetter {
    /// When it was spilled, unix ms (kept as the letter's time when it reaches the store).
    pub at_ms: i64,
    /// The original letter.
    #[serde(flatten)]
    pub letter: NewDeadLetter,
}

/// Why a spill write or read failed.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The file could not be opened, written or synced.
    #[error("dead-letter spill file {path}: {operation} failed: {source}; free disk space or check permissions")]
    Io {
        /// The spill file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The letter does not fit in what is left of `spill_max_bytes`.
    #[error("dead-letter spill file {path} is full ({used} of {max} bytes; this letter needs {needed}); raise dead_letters.spill_max_bytes or fix the store")]
    Full {
        /// The spill file.
        path: PathBuf,
        /// Bytes in use.
        used: u64,
        /// The bound.
        max: u64,
        /// Bytes the letter needs.
        needed: u64,
    },
}

/// What [`Spill::drain_into`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Drained {
    /// Letters handed to the store.
    pub moved: usize,
    /// Lines that did not parse (skipped), with their text.
    pub damaged: Vec<String>,
}

struct SpillFile {
    file: File,
    /// Bytes of letters in the file (its length).
    used: u64,
    /// Letters in the file.
    count: u64,
}

/// The spill file. Cheap to clone; every clone writes the same file under one lock.
#[derive(Clone)]
pub struct Spill {
    path: PathBuf,
    max_bytes: u64,
    inner: Arc<Mutex<SpillFile>>,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("path", &self.path)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// The spill file that belongs to the store at `store`: `<store>.spill.jsonl`.
pub fn spill_path_for(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_os_string();
    name.push(".spill.jsonl");
    PathBuf::from(name)
}

impl Spill {
    /// Opens (or creates) the spill file at `path`, bounded by `max_bytes`, and reserves its space.
    pub fn open(path: impl AsRef<Path>, max_bytes: u64) -> Result<Spill, SpillError> {
        let path = path.as_ref().to_path_buf();
        let io = |operation| {
            let path = path.clone();
            move |source| SpillError::Io {
                path,
                operation,
                source,
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("create folder"))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io("open"))?;
        let used = file.metadata().map_err(io("stat"))?.len();
        let count = count_lines(&file).map_err(io("read"))?;
        let spill = Spill {
            path,
            max_bytes,
            inner: Arc::new(Mutex::new(SpillFile { file, used, count })),
        };
        spill.reserve();
        Ok(spill)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Letters waiting in the file.
    pub fn len(&self) -> u64 {
        self.lock().count
    }

    /// Whether no letter waits in the file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpillFile> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves the file's space up to `max_bytes` without changing its length, so appends need no new blocks.
    /// Best effort: a filesystem without `fallocate` (or a disk already full) just gets no reservation.
    fn reserve(&self) {
        let guard = self.lock();
        let len = i64::try_from(self.max_bytes).unwrap_or(i64::MAX);
        // SAFETY: fallocate on a file descriptor we own; no memory is passed.
        let rc =
            unsafe { libc::fallocate(guard.file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!(path = %self.path.display(), max_bytes = self.max_bytes, %error, "could not reserve space for the dead-letter spill file; it works without the reservation");
        }
    }

    /// Appends one letter and syncs it to disk before returning.
    pub fn append(&self, letter: &NewDeadLetter, at_ms: i64) -> Result<(), SpillError> {
        let line = SpilledLetter {
            at_ms,
            letter: letter.clone(),
        };
        let mut text = serde_json::to_string(&line).unwrap_or_else(|e| {
            // A payload that does not encode is already replaced by `dead_letter_for`; keep the rest.
            format!(
                "{{\"at_ms\":{at_ms},\"actor\":{:?},\"msg\":{:?},\"payload\":null,\"error\":{:?},\"correlation_id\":{:?},\"retries\":{}}}",
                letter.actor, letter.msg, format!("{}; spill encoding failed: {e}", letter.error), letter.correlation_id, letter.retries
            )
        });
        text.push('\n');
        let mut guard = self.lock();
        let needed = text.len() as u64;
        if guard.used + needed > self.max_bytes {
            return Err(SpillError::Full {
                path: self.path.clone(),
                used: guard.used,
                max: self.max_bytes,
                needed,
            });
        }
        let io = |operation| {
            let path = self.path.clone();
            move |source| SpillError::Io {
                path,
                operation,
                source,
            }
        };
        let before = guard.used;
        let written = guard
            .file
            .write_all(text.as_bytes())
            .and_then(|()| guard.file.sync_data());
        if let Err(source) = written {
            // Cut a partial line so the file stays line-aligned.
            let _ = guard.file.set_len(before);
            return Err(io("append")(source));
        }
        guard.used += needed;
        guard.count += 1;
        Ok(())
    }

    /// Hands every spilled letter to `store` in one batch; when it succeeds, the file is emptied (and its space
    /// reserved again). When `store` fails, the file is left as it was and the error returned.
    pub fn drain_into<E>(
        &self,
        store: impl FnOnce(Vec<SpilledLetter>) -> Result<(), E>,
    ) -> Result<Drained, E> {
        let mut guard = self.lock();
        if guard.count == 0 && guard.used == 0 {
            return Ok(Drained::default());
        }
        let (letters, damaged) = match read_lines(&guard.file) {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot read the dead-letter spill file; trying again at the next maintenance");
                return Ok(Drained::default());
            }
        };
        let moved = letters.len();
        if moved > 0 {
            store(letters)?;
        }
        // Emptied only after the store committed: a crash in between leaves duplicates, never losses.
        if let Err(error) = guard.file.set_len(0).and_then(|()| guard.file.sync_all()) {
            tracing::warn!(path = %self.path.display(), %error, "spilled letters are in the store but the spill file could not be emptied; they may be stored twice");
        }
        guard.used = 0;
        guard.count = 0;
        drop(guard);
        self.reserve();
        Ok(Drained { moved, damaged })
    }
}

fn count_lines(file: &File) -> std::io::Result<u64> {
    let mut reader = BufReader::new(file.try_clone()?);
    reader.seek(SeekFrom::Start(0))?;
    let mut count = 0;
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line)? > 0 {
        if line.ends_with(b"\n") {
            count += 1;
        }
        line.clear();
    }
    Ok(count)
}

fn read_lines(file: &File) -> std::io::Result<(Vec<SpilledLetter>, Vec<String>)> {
    let mut reader = BufReader::new(file.try_clone()?);
    reader.seek(SeekFrom::Start(0))?;
    let mut letters = Vec::new();
    let mut damaged = Vec::new();
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line)? > 0 {
        let text = String::from_utf8_lossy(&line).trim().to_string();
        line.clear();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<SpilledLetter>(&text) {
            Ok(letter) => letters.push(letter),
            Err(_) => damaged.push(text),
        }
    }
    Ok((letters, damaged))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::runtime::dead_letters::record::sample_letter as letter;

    #[test]
    fn appends_survive_reopen_and_drain_empties_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = spill_path_for(&dir.path().join("dl.db"));
        assert!(path.ends_with("dl.db.spill.jsonl"));
        let spill = Spill::open(&path, 1 << 20).unwrap();
        for n in 0..3 {
            spill.append(&letter(n), 1000 + n as i64).unwrap();
        }
        drop(spill);
        let spill = Spill::open(&path, 1 << 20).unwrap();
        assert_eq!(spill.len(), 3);
        let mut got = Vec::new();
        let drained = spill
            .drain_into(|batch| {
                got = batch;
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(drained.moved, 3);
        assert_eq!(got[2].letter, letter(2));
        assert_eq!(got[2].at_ms, 1002);
        assert!(spill.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_failed_store_keeps_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path().join("s.jsonl"), 1 << 20).unwrap();
        spill.append(&letter(1), 1).unwrap();
        let err = spill.drain_into(|_| Err("disk full")).unwrap_err();
        assert_eq!(err, "disk full");
        assert_eq!(spill.len(), 1);
        let drained = spill.drain_into(|_| Ok::<(), ()>(())).unwrap();
        assert_eq!(drained.moved, 1);
    }

    #[test]
    fn the_bound_refuses_a_letter_that_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path().join("s.jsonl"), 300).unwrap();
        spill.append(&letter(1), 1).unwrap();
        let mut refused = None;
        for n in 2..10 {
            if let Err(e) = spill.append(&letter(n), 1) {
                refused = Some(e);
                break;
            }
        }
        let err = refused.expect("a 300-byte spill fills up");
        assert!(matches!(err, SpillError::Full { max: 300, .. }), "{err}");
        assert!(err.to_string().contains("spill_max_bytes"), "{err}");
        assert!(std::fs::metadata(spill.path()).unwrap().len() <= 300);
    }

    #[test]
    fn torn_lines_are_skipped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let spill = Spill::open(&path, 1 << 20).unwrap();
        spill.append(&letter(1), 1).unwrap();
        drop(spill);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"at_ms\":2,\"actor\":\"sy\n").unwrap();
        let spill = Spill::open(&path, 1 << 20).unwrap();
        let drained = spill.drain_into(|_| Ok::<(), ()>(())).unwrap();
        assert_eq!(drained.moved, 1);
        assert_eq!(
            drained.damaged,
            vec!["{\"at_ms\":2,\"actor\":\"sy".to_string()]
        );
    }

    #[test]
    fn lines_hold_the_original_letter_flat() {
        let line = serde_json::to_value(SpilledLetter {
            at_ms: 5,
            letter: letter(7),
        })
        .unwrap();
        assert_eq!(line["actor"], "sync");
        assert_eq!(line["msg"], "StartSync");
        assert_eq!(line["payload"]["n"], 7);
    }
}
