//! Game counts that survive a restart: the per-config history the scheduler keeps in its state file, and the count
//! of the games already under its games root.
//!
//! At start the scheduler loads its state file (`scheduler.state_file`, JSON: per config the games counted and when
//! the config last got games) and counts the games under `scheduler.jobs.output_dir/<config>/` (each file through
//! [`count_games`]: the demo engine's SQLite `games` table, or JSON lines). A config's count is the larger of the
//! two: the state file also holds games played on peers and synced from elsewhere, the disk scan covers a lost or
//! older state file. A file that cannot be read is a warning and counts 0; so is a directory that is not a config.
//! The state file is written atomically (temp file, fsync, rename) after every change.
//!
//! [`merge`] is pure; [`load`], [`save`] and [`scan_games_root`] do the I/O and nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::board::ConfigKey;
use crate::jobs::demo::count_games;

/// The state file's current format version.
pub const STATE_VERSION: u32 = 1;

/// What the scheduler remembers of one config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigHistory {
    /// Games counted for the config (local, remote and synced).
    pub games: u64,
    /// When the config last got games, Unix milliseconds.
    pub last_selfplay_unix_ms: Option<u64>,
}

impl ConfigHistory {
    /// `last_selfplay_unix_ms` as a time.
    pub fn last_selfplay(&self) -> Option<SystemTime> {
        self.last_selfplay_unix_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }
}

/// Unix milliseconds of `at` (0 before the epoch).
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerState {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// Per config key.
    pub configs: BTreeMap<ConfigKey, ConfigHistory>,
}

/// Errors of the state file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Reading or writing failed.
    #[error("scheduler state file {path:?}: could not {action}: {source}; check the state directory is writable")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a scheduler state.
    #[error("scheduler state file {path:?} is not valid ({message}); move it aside to start the counts from the games on disk")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads the state file; `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<SchedulerState>, HistoryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HistoryError::Io {
                path: path.to_path_buf(),
                action: "read it",
                source,
            })
        }
    };
    let state: SchedulerState = serde_json::from_str(&text).map_err(|e| HistoryError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if state.version != STATE_VERSION {
        return Err(HistoryError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "version {} (this coordinator reads {STATE_VERSION})",
                state.version
            ),
        });
    }
    Ok(Some(state))
}

/// Writes the state file atomically: a temp file beside it, fsynced, renamed over it.
pub fn save(path: &Path, state: &SchedulerState) -> Result<(), HistoryError> {
    let io = |action: &'static str| {
        move |source| HistoryError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("create its directory"))?;
    }
    let mut temp = path.as_os_str().to_os_string();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let text = serde_json::to_vec_pretty(state).unwrap_or_default();
    std::fs::write(&temp, text).map_err(io("write its temp file"))?;
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync its temp file"))?;
    std::fs::rename(&temp, path).map_err(io("rename its temp file over it"))
}

/// What a scan of the games root found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Games per config.
    pub games: BTreeMap<ConfigKey, u64>,
    /// Files counted.
    pub files: u64,
    /// What could not be read, one line each (path and why); each counted 0.
    pub unreadable: Vec<String>,
}

/// Counts the games under `root/<config>/`. Hidden files (temp files being written) and SQLite journals are
/// skipped; a missing root is an empty scan.
pub fn scan_games_root(root: &Path) -> ScanResult {
    let mut out = ScanResult::default();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(config) = name.parse::<ConfigKey>() else {
            out.unreadable.push(format!(
                "{}: not a config directory (expected names like hex8_2p); skipped",
                dir.display()
            ));
            continue;
        };
        let files = match std::fs::read_dir(&dir) {
            Ok(files) => files,
            Err(e) => {
                out.unreadable.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        for file in files.flatten() {
            let path = file.path();
            let file_name = file.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') || file_name.ends_with("-journal") || !path.is_file() {
                continue;
            }
            match count_games(&path) {
                Ok(games) => {
                    *out.games.entry(config).or_default() += games;
                    out.files += 1;
                }
                Err(e) => out.unreadable.push(e.to_string()),
            }
        }
    }
    out
}

/// Per config: the larger of the remembered and the scanned count, and the remembered last selfplay.
pub fn merge(
    state: Option<&SchedulerState>,
    scanned: &BTreeMap<ConfigKey, u64>,
) -> BTreeMap<ConfigKey, ConfigHistory> {
    let mut out: BTreeMap<ConfigKey, ConfigHistory> =
        state.map(|s| s.configs.clone()).unwrap_or_default();
    for (config, games) in scanned {
        let entry = out.entry(*config).or_default();
        entry.games = entry.games.max(*games);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ConfigKey {
        text.parse().unwrap()
    }

    fn demo(path: &Path, games: u32) {
        crate::jobs::demo::run_selfplay_demo(crate::jobs::demo::DemoArgs {
            board: "hex8".into(),
            cells: 61,
            players: 2,
            games,
            out: path.to_path_buf(),
            budget: 64,
            seed: 1,
            max_moves: 10,
            think_time_ms: 0,
            randomness: 0.1,
        })
        .unwrap();
    }

    #[test]
    fn merge_takes_the_larger_count_and_keeps_the_history() {
        let state = SchedulerState {
            version: STATE_VERSION,
            configs: [
                (
                    key("hex8_2p"),
                    ConfigHistory {
                        games: 700,
                        last_selfplay_unix_ms: Some(1_000),
                    },
                ),
                (
                    key("hex8_3p"),
                    ConfigHistory {
                        games: 10,
                        last_selfplay_unix_ms: Some(2_000),
                    },
                ),
            ]
            .into(),
        };
        let scanned = [
            (key("hex8_2p"), 500),
            (key("hex8_3p"), 50),
            (key("square8_2p"), 5),
        ]
        .into();
        let merged = merge(Some(&state), &scanned);
        assert_eq!(
            merged[&key("hex8_2p")].games,
            700,
            "remote games are remembered"
        );
        assert_eq!(merged[&key("hex8_3p")].games, 50, "the disk has more");
        assert_eq!(merged[&key("hex8_3p")].last_selfplay_unix_ms, Some(2_000));
        assert_eq!(
            merged[&key("square8_2p")],
            ConfigHistory {
                games: 5,
                last_selfplay_unix_ms: None
            }
        );
        assert_eq!(merge(None, &scanned)[&key("hex8_2p")].games, 500);
    }

    #[test]
    fn scan_counts_games_and_reports_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("games");
        assert_eq!(scan_games_root(&root), ScanResult::default(), "no root yet");
        std::fs::create_dir_all(root.join("hex8_2p")).unwrap();
        std::fs::create_dir_all(root.join("square8_3p")).unwrap();
        std::fs::create_dir_all(root.join("not-a-config")).unwrap();
        demo(&root.join("hex8_2p/a.db"), 7);
        demo(&root.join("hex8_2p/b.db"), 3);
        demo(&root.join("square8_3p/c.db"), 2);
        std::fs::write(root.join("hex8_2p/.d.db.tmp"), b"half written").unwrap();
        std::fs::write(root.join("hex8_2p/broken.db"), b"not json\n").unwrap();
        let scan = scan_games_root(&root);
        assert_eq!(scan.games[&key("hex8_2p")], 10);
        assert_eq!(scan.games[&key("square8_3p")], 2);
        assert_eq!(scan.files, 3);
        assert_eq!(scan.unreadable.len(), 2, "{:?}", scan.unreadable);
        assert!(scan.unreadable.iter().any(|l| l.contains("broken.db")));
        assert!(scan.unreadable.iter().any(|l| l.contains("not-a-config")));
    }

    #[test]
    fn state_file_round_trips_and_bad_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/scheduler.json");
        assert!(load(&path).unwrap().is_none());
        let state = SchedulerState {
            version: STATE_VERSION,
            configs: [(
                key("hexagonal_4p"),
                ConfigHistory {
                    games: 42,
                    last_selfplay_unix_ms: Some(unix_ms(SystemTime::now())),
                },
            )]
            .into(),
        };
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state.clone()));
        assert!(!dir.path().join("state/scheduler.json.tmp").exists());
        std::fs::write(&path, b"{").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("not valid") && err.contains("move it aside"),
            "{err}"
        );
        std::fs::write(&path, br#"{"version": 9, "configs": {}}"#).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("version 9"));
        let at = state.configs[&key("hexagonal_4p")].last_selfplay().unwrap();
        assert!(SystemTime::now().duration_since(at).unwrap() < Duration::from_secs(60));
    }
}
