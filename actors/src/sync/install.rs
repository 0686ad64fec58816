//! Integrity and installation of a fetched file: size and sha256 checked against the peer's, `.db` files checked
//! with SQLite's `PRAGMA integrity_check`, fsync, then an atomic rename into place. The directory is fsynced
//! after the rename, or, for a run of files, once per directory at its end ([`RenamedDirs`]): the file itself is
//! always durable before its final name exists.
//! A file under a final name is always complete and verified; a mismatch deletes the temp file; a corrupt
//! database goes to quarantine with a warning.
//!
//! Temp files are hidden (`.<name>.<key>.partial` beside the destination), so the data server never lists them
//! and a later attempt or cycle resumes them; `key` names the remote version, so a stale prefix of another version
//! is never resumed.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::data_server::checksum::sha256_file;
use crate::sync::budget::FailureKind;

/// The temp path of `dest` for the remote version `key` (its sha256 prefix, else its size).
pub fn temp_path(dest: &Path, key: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.{key}.partial"))
}

/// The version key of a remote file.
pub fn version_key(sha256: Option<&str>, size: u64) -> String {
    match sha256 {
        Some(sum) => sum.chars().take(16).collect(),
        None => format!("s{size}"),
    }
}

/// True for the names of this module's temp files (and aria2c's control file beside one).
pub fn is_partial_name(name: &str) -> bool {
    name.ends_with(".partial") || name.ends_with(".partial.aria2")
}

/// Deletes temp files of `dest` for other versions than `keep` (left by an older version's interrupted pull).
pub fn remove_stale_temps(dest: &Path, keep: &Path) {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for item in listing.flatten() {
        let file_name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        if file_name.starts_with(&prefix) && is_partial_name(&file_name) && path != keep {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The directories files were renamed into during a run of installs, each fsynced once by [`RenamedDirs::sync`].
#[derive(Debug, Default)]
pub struct RenamedDirs(Mutex<BTreeSet<PathBuf>>);

impl RenamedDirs {
    fn note(&self, dir: &Path) {
        let mut dirs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !dirs.contains(dir) {
            dirs.insert(dir.to_path_buf());
        }
    }

    /// Fsyncs every noted directory (making its renames durable) and forgets them; a failure is logged.
    pub fn sync(&self) {
        let dirs = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in dirs {
            if let Err(error) = File::open(&dir).and_then(|d| d.sync_all()) {
                tracing::warn!(dir = %dir.display(), %error, "cannot fsync a directory after installing into it; the installed files are complete, a crash now may only lose their names");
            }
        }
    }
}

/// Starts the disk writeback of `len` bytes of `file` from `offset` without waiting for it (Linux
/// `sync_file_range`), so the fsync before install does not wait for a whole large file. Only a hint: the fsync
/// still decides durability, and a failure here is ignored.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return;
    }
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is owned by `file` and open.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// What must hold of a fetched file.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub size: u64,
    /// The peer's sha256; `None` only when the peer could not give one (then rsync's own checksum is trusted).
    pub sha256: Option<&'a str>,
}

/// Why a file was not installed: the kind decides what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallFailure {
    pub kind: FailureKind,
    pub reason: String,
    /// Where a corrupt database was moved.
    pub quarantined: Option<PathBuf>,
}

fn failure(kind: FailureKind, reason: String) -> InstallFailure {
    InstallFailure {
        kind,
        reason,
        quarantined: None,
    }
}

/// `PRAGMA integrity_check` of a SQLite file: `Ok` or the first problems it reports.
pub fn sqlite_integrity(path: &Path) -> Result<(), String> {
    let db = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open as SQLite: {e}"))?;
    let answer: Result<Vec<String>, _> =
        db.prepare("PRAGMA integrity_check")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect()
            });
    match answer {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(()),
        Ok(lines) => Err(lines.into_iter().take(3).collect::<Vec<_>>().join("; ")),
        Err(e) => Err(e.to_string()),
    }
}

/// Verifies `temp` against `expected` (`computed_sha256`: the transport's own hash of it, if any), fsyncs it, then
/// moves it to `dest` atomically. The directory is fsynced now, or noted in `renamed` to be fsynced once at the
/// end of a run. A `.db` failing its integrity check goes to `quarantine` (`<name>.<unix seconds>`).
pub fn verify_and_install(
    temp: &Path,
    dest: &Path,
    expected: &Expected<'_>,
    computed_sha256: Option<&str>,
    quarantine: &Path,
    renamed: Option<&RenamedDirs>,
) -> Result<(), InstallFailure> {
    let io = |what: &str, e: std::io::Error| {
        failure(
            FailureKind::Transient,
            format!("{what} {}: {e}", temp.display()),
        )
    };
    let size = std::fs::metadata(temp)
        .map_err(|e| io("cannot stat", e))?
        .len();
    if size != expected.size {
        let _ = std::fs::remove_file(temp);
        return Err(failure(
            FailureKind::Integrity,
            format!(
                "size mismatch: got {size} bytes, the peer announced {}",
                expected.size
            ),
        ));
    }
    if let Some(want) = expected.sha256 {
        let got = match computed_sha256 {
            Some(sum) => sum.to_string(),
            None => sha256_file(temp).map_err(|e| io("cannot hash", e))?,
        };
        if !got.eq_ignore_ascii_case(want) {
            let _ = std::fs::remove_file(temp);
            return Err(failure(
                FailureKind::Integrity,
                format!("sha256 mismatch: got {got}, the peer announced {want}"),
            ));
        }
    }
    if dest.extension().is_some_and(|e| e == "db") {
        if let Err(problem) = sqlite_integrity(temp) {
            let stamp = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let name = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = quarantine.join(format!("{name}.{stamp}"));
            let moved =
                std::fs::create_dir_all(quarantine).and_then(|()| std::fs::rename(temp, &target));
            if moved.is_err() {
                let _ = std::fs::remove_file(temp);
            }
            return Err(InstallFailure {
                kind: FailureKind::Corrupt,
                reason: format!("PRAGMA integrity_check failed: {problem}"),
                quarantined: moved.ok().map(|()| target),
            });
        }
    }
    File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("cannot fsync", e))?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("cannot create the directory of", e))?;
    }
    std::fs::rename(temp, dest).map_err(|e| io("cannot rename", e))?;
    if let Some(parent) = dest.parent() {
        match renamed {
            Some(dirs) => dirs.note(parent),
            None => {
                let _ = File::open(parent).and_then(|d| d.sync_all());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_server::checksum::sha256_reader;

    fn setup(content: &[u8]) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("w1/games/a.bin");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let temp = temp_path(&dest, "k");
        std::fs::write(&temp, content).unwrap();
        let quarantine = dir.path().join("quarantine");
        (dir, dest, temp, quarantine)
    }

    #[test]
    fn a_verified_file_is_renamed_into_place() {
        let (_dir, dest, temp, quarantine) = setup(b"hello");
        let sum = sha256_reader(&b"hello"[..]).unwrap();
        let expected = Expected {
            size: 5,
            sha256: Some(&sum),
        };
        verify_and_install(&temp, &dest, &expected, None, &quarantine, None).expect("installed");
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert!(!temp.exists());
    }

    #[test]
    fn a_run_of_installs_fsyncs_each_directory_once_at_its_end() {
        let (_dir, dest, temp, quarantine) = setup(b"hello");
        let sum = sha256_reader(&b"hello"[..]).unwrap();
        let expected = Expected {
            size: 5,
            sha256: Some(&sum),
        };
        let renamed = RenamedDirs::default();
        verify_and_install(&temp, &dest, &expected, None, &quarantine, Some(&renamed))
            .expect("installed");
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        let noted: Vec<PathBuf> = renamed.0.lock().unwrap().iter().cloned().collect();
        assert_eq!(noted, [dest.parent().unwrap().to_path_buf()]);
        renamed.sync();
        assert!(renamed.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_mismatch_deletes_the_temp_file_and_installs_nothing() {
        let (_dir, dest, temp, quarantine) = setup(b"hellp");
        let sum = sha256_reader(&b"hello"[..]).unwrap();
        let expected = Expected {
            size: 5,
            sha256: Some(&sum),
        };
        let failure =
            verify_and_install(&temp, &dest, &expected, None, &quarantine, None).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Integrity);
        assert!(
            failure.reason.contains("sha256 mismatch"),
            "{}",
            failure.reason
        );
        assert!(!temp.exists() && !dest.exists());
        let (_dir, dest, temp, quarantine) = setup(b"hell");
        let expected = Expected {
            size: 5,
            sha256: Some(&sum),
        };
        let failure =
            verify_and_install(&temp, &dest, &expected, None, &quarantine, None).unwrap_err();
        assert!(
            failure.reason.contains("size mismatch"),
            "{}",
            failure.reason
        );
        assert!(!temp.exists() && !dest.exists());
    }

    #[test]
    fn a_corrupt_database_is_quarantined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.db");
        {
            let db = rusqlite::Connection::open(&good).unwrap();
            db.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
                .unwrap();
        }
        assert_eq!(sqlite_integrity(&good), Ok(()));
        let mut bytes = std::fs::read(&good).unwrap();
        // Garbage over the second page (the table's b-tree page).
        for b in &mut bytes[4096..4096 + 200] {
            *b = 0xAB;
        }
        let dest = dir.path().join("w1/bad.db");
        let temp = temp_path(&dest, "k");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&temp, &bytes).unwrap();
        let sum = sha256_reader(&bytes[..]).unwrap();
        let expected = Expected {
            size: bytes.len() as u64,
            sha256: Some(&sum),
        };
        let quarantine = dir.path().join("quarantine");
        let failure =
            verify_and_install(&temp, &dest, &expected, Some(&sum), &quarantine, None).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Corrupt);
        let moved = failure.quarantined.expect("quarantined");
        assert!(moved.starts_with(&quarantine) && moved.exists());
        assert!(!dest.exists() && !temp.exists());
    }

    #[test]
    fn temp_names_are_hidden_and_stale_versions_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("a.db");
        let old = temp_path(&dest, "old");
        let new = temp_path(&dest, &version_key(Some("0123456789abcdef0123"), 9));
        assert_eq!(new.file_name().unwrap(), ".a.db.0123456789abcdef.partial");
        assert_eq!(version_key(None, 9), "s9");
        std::fs::write(&old, b"x").unwrap();
        std::fs::write(&new, b"y").unwrap();
        std::fs::write(dir.path().join("other.db"), b"z").unwrap();
        remove_stale_temps(&dest, &new);
        assert!(!old.exists() && new.exists() && dir.path().join("other.db").exists());
        assert!(crate::data_server::inventory::is_temporary_name(
            &new.file_name().unwrap().to_string_lossy()
        ));
    }
}
