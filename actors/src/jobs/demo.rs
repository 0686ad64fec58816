//! The built-in stand-in for a selfplay engine (`coordinator selfplay-demo`): plays synthetic, seeded games and
//! writes them atomically as a SQLite games database, so the default config produces real files end to end. Also
//! [`count_games`], which executors use to check what a job really wrote.
//!
//! Games format (SQLite, like the original's games databases):
//! - `games(id INTEGER PRIMARY KEY, board TEXT, players INTEGER, winner INTEGER, moves INTEGER, budget INTEGER,
//!   seed INTEGER, created_at INTEGER)`: one row per game; `winner` is 1-based, `moves` the number of plies,
//!   `seed` the job's seed, `created_at` Unix seconds.
//! - `moves(game_id INTEGER, ply INTEGER, player INTEGER, cell INTEGER, PRIMARY KEY (game_id, ply))`: ply from 0,
//!   player 1-based (players move in turn), cell an index in `0..cells`, distinct within a game.
//! - `meta(key TEXT PRIMARY KEY, value TEXT)`: the run's parameters (`think_time_ms` and `randomness` are recorded).
//!
//! Pacing: every move takes `think_time_ms` (the demo sleeps that long per ply, game by game), so G games of mean
//! length L take about G x L x think time, like an engine that thinks that long per move; 0 plays at full speed.
//!
//! A game is `L` distinct random cells with `L` uniform in `1..=min(max_moves, cells)`, and a random winner; the
//! same arguments and seed give the same games. The file appears only complete: it is built as `.<name>.tmp` in the
//! same directory, fsynced, renamed over `out`, and the directory fsynced; on any error the temp file is removed and
//! an existing `out` is left untouched.
//!
//! [`count_games`] also reads JSON lines (one game per non-empty line), the other format a custom engine may write.
//! It knows nothing of board names beyond the text it is given (the board parser lives with the scheduler).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags};

use super::outcome::GamesReport;

/// The first 16 bytes of every SQLite 3 database.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What to play.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoArgs {
    /// Board name, recorded as is (e.g. `hex8`).
    pub board: String,
    /// Cells of the board (hex8 61, square8 64, square19 361, hexagonal 469).
    pub cells: u32,
    /// Players, 2-4.
    pub players: u8,
    /// Games to play, at least 1.
    pub games: u32,
    /// The database to write.
    pub out: PathBuf,
    /// Search budget, recorded per game.
    pub budget: u32,
    /// Seed of the random generator.
    pub seed: u64,
    /// Longest game in moves, at least 1.
    pub max_moves: u32,
    /// Time each move takes (the demo sleeps it per ply); recorded in `meta`.
    pub think_time_ms: u32,
    /// Recorded in `meta`; 0-1.
    pub randomness: f64,
}

/// What was written: the report line the CLI prints.
pub type DemoReport = GamesReport;

/// Errors of the demo engine and of counting games.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// An argument out of range.
    #[error("invalid selfplay-demo argument {field}: {problem}")]
    InvalidArgs {
        /// The argument.
        field: &'static str,
        /// What is wrong and expected.
        problem: String,
    },
    /// A filesystem step failed.
    #[error("could not {action} {path:?}: {source}; check the directory exists and is writable")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("sqlite failed on {path:?} while {action}: {source}")]
    Sqlite {
        /// What was being done.
        action: &'static str,
        /// The database.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A JSON-lines games file has a line that is not JSON.
    #[error("{path:?} line {line} is not a JSON game record; the file is not a games file or is corrupt")]
    BadJsonLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DemoError + 'a {
    move |source| DemoError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn sql<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(rusqlite::Error) -> DemoError + 'a {
    move |source| DemoError::Sqlite {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// One synthetic game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoGame {
    /// 1-based winner.
    pub winner: u8,
    /// Cells played, in order (player of ply `i` is `i % players + 1`).
    pub cells: Vec<u32>,
}

impl DemoArgs {
    fn check(&self) -> Result<(), DemoError> {
        let invalid = |field, problem: &str| {
            Err(DemoError::InvalidArgs {
                field,
                problem: problem.to_string(),
            })
        };
        if self.board.trim().is_empty() {
            return invalid("board", "is empty; give a board name such as hex8");
        }
        if self.cells == 0 {
            return invalid("cells", "must be at least 1");
        }
        if !(2..=4).contains(&self.players) {
            return invalid("players", "must be 2, 3 or 4");
        }
        if self.games == 0 {
            return invalid("games", "must be at least 1");
        }
        if self.max_moves == 0 {
            return invalid("max_moves", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.randomness) {
            return invalid("randomness", "must be between 0 and 1");
        }
        if self.out.file_name().is_none() {
            return invalid("out", "must name a file");
        }
        Ok(())
    }
}

/// Play the games of `args` in memory (pure and deterministic for a seed).
pub fn play_games(args: &DemoArgs) -> Vec<DemoGame> {
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let longest = args.max_moves.min(args.cells).max(1);
    let mut board: Vec<u32> = (0..args.cells).collect();
    (0..args.games)
        .map(|_| {
            let length = rng.u32(1..=longest) as usize;
            // Partial Fisher-Yates: the first `length` cells become a uniform random distinct sequence.
            for i in 0..length {
                let j = rng.usize(i..board.len());
                board.swap(i, j);
            }
            DemoGame {
                winner: rng.u8(1..=args.players.max(1)),
                cells: board[..length].to_vec(),
            }
        })
        .collect()
}

/// How long `game` takes to play: `think_time_ms` per ply.
pub fn think_time(args: &DemoArgs, game: &DemoGame) -> std::time::Duration {
    std::time::Duration::from_millis(u64::from(args.think_time_ms)) * game.cells.len() as u32
}

/// Removes the temp file unless disarmed (the rename happened).
struct TempFile {
    path: Option<PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(journal_of(&path));
        }
    }
}

fn journal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push("-journal");
    PathBuf::from(name)
}

/// Play the games of `args` and write them atomically to `args.out`. Returns what was written.
pub fn run_selfplay_demo(args: DemoArgs) -> Result<DemoReport, DemoError> {
    args.check()?;
    let out = &args.out;
    let dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp_path = dir.join(format!(".{name}.tmp"));
    if temp_path.exists() {
        // Left by a run that died: it is ours to replace.
        std::fs::remove_file(&temp_path).map_err(io("remove stale temp file", &temp_path))?;
    }
    let mut temp = TempFile {
        path: Some(temp_path.clone()),
    };
    let games = play_games(&args);
    for game in &games {
        std::thread::sleep(think_time(&args, game));
    }
    write_database(&temp_path, &args, &games)?;
    File::open(&temp_path)
        .and_then(|file| file.sync_all())
        .map_err(io("fsync", &temp_path))?;
    std::fs::rename(&temp_path, out).map_err(io("rename the temp file onto", out))?;
    temp.path = None;
    // Make the rename itself durable.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", &dir))?;
    Ok(DemoReport {
        games_written: games.len() as u64,
        output: out.clone(),
    })
}

fn write_database(path: &Path, args: &DemoArgs, games: &[DemoGame]) -> Result<(), DemoError> {
    let mut db = Connection::open(path).map_err(sql("opening", path))?;
    db.execute_batch(
        "PRAGMA journal_mode = DELETE;
         PRAGMA synchronous = FULL;
         CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE games (id INTEGER PRIMARY KEY, board TEXT NOT NULL, players INTEGER NOT NULL,
             winner INTEGER, moves INTEGER NOT NULL, budget INTEGER NOT NULL, seed INTEGER NOT NULL,
             created_at INTEGER NOT NULL);
         CREATE TABLE moves (game_id INTEGER NOT NULL REFERENCES games(id), ply INTEGER NOT NULL,
             player INTEGER NOT NULL, cell INTEGER NOT NULL, PRIMARY KEY (game_id, ply));",
    )
    .map_err(sql("creating tables", path))?;
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let tx = db
        .transaction()
        .map_err(sql("starting a transaction", path))?;
    {
        let mut meta = tx
            .prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")
            .map_err(sql("preparing meta", path))?;
        let entries = [
            ("engine", "coordinator selfplay-demo".to_string()),
            ("board", args.board.clone()),
            ("cells", args.cells.to_string()),
            ("players", args.players.to_string()),
            ("games", args.games.to_string()),
            ("budget", args.budget.to_string()),
            ("seed", args.seed.to_string()),
            ("max_moves", args.max_moves.to_string()),
            ("think_time_ms", args.think_time_ms.to_string()),
            ("randomness", args.randomness.to_string()),
        ];
        for (key, value) in entries {
            meta.execute(params![key, value])
                .map_err(sql("writing meta", path))?;
        }
        let mut insert_game = tx
            .prepare(
                "INSERT INTO games (id, board, players, winner, moves, budget, seed, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(sql("preparing games", path))?;
        let mut insert_move = tx
            .prepare("INSERT INTO moves (game_id, ply, player, cell) VALUES (?1, ?2, ?3, ?4)")
            .map_err(sql("preparing moves", path))?;
        for (index, game) in games.iter().enumerate() {
            let id = index as i64 + 1;
            insert_game
                .execute(params![
                    id,
                    args.board,
                    args.players,
                    game.winner,
                    game.cells.len() as i64,
                    args.budget,
                    // SQLite integers are signed: store the seed's bits.
                    args.seed as i64,
                    created_at
                ])
                .map_err(sql("writing a game", path))?;
            for (ply, cell) in game.cells.iter().enumerate() {
                let player = (ply % usize::from(args.players)) as i64 + 1;
                insert_move
                    .execute(params![id, ply as i64, player, cell])
                    .map_err(sql("writing a move", path))?;
            }
        }
    }
    tx.commit().map_err(sql("committing", path))?;
    db.close().map_err(|(_, source)| DemoError::Sqlite {
        action: "closing",
        path: path.to_path_buf(),
        source,
    })
}

/// Games in a games file: rows of `games` in a SQLite database, or non-empty lines of a JSON-lines file (each must
/// be JSON).
pub fn count_games(path: &Path) -> Result<u64, DemoError> {
    let mut file = File::open(path).map_err(io("open games file", path))?;
    let mut magic = [0u8; 16];
    let mut read = 0;
    while read < magic.len() {
        let n = file
            .read(&mut magic[read..])
            .map_err(io("read games file", path))?;
        if n == 0 {
            break;
        }
        read += n;
    }
    if read == magic.len() && &magic == SQLITE_MAGIC {
        let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql("opening to count games", path))?;
        let count: i64 = db
            .query_row("SELECT COUNT(*) FROM games", [], |row| row.get(0))
            .map_err(sql("counting games", path))?;
        return Ok(count.max(0) as u64);
    }
    let file = File::open(path).map_err(io("open games file", path))?;
    let mut count = 0;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io("read games file", path))?;
        if line.trim().is_empty() {
            continue;
        }
        if serde_json::from_str::<serde_json::Value>(&line).is_err() {
            return Err(DemoError::BadJsonLine {
                path: path.to_path_buf(),
                line: index + 1,
            });
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boards of shared/domain/scheduler.md with their cell counts.
    const BOARDS: &[(&str, u32)] = &[
        ("hex8", 61),
        ("square8", 64),
        ("square19", 361),
        ("hexagonal", 469),
    ];

    fn args(dir: &Path, board: &str, cells: u32) -> DemoArgs {
        DemoArgs {
            board: board.to_string(),
            cells,
            players: 2,
            games: 5,
            out: dir.join("games").join(format!("{board}.db")),
            budget: 800,
            seed: 7,
            max_moves: 500,
            think_time_ms: 0,
            randomness: 0.1,
        }
    }

    fn dump(path: &Path) -> Vec<(i64, String, i64, i64, i64, i64, i64)> {
        let db = Connection::open(path).expect("open");
        let mut rows: Vec<_> = db
            .prepare(
                "SELECT id, board, players, winner, moves, budget, seed FROM games ORDER BY id",
            )
            .expect("prepare")
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        let moves: Vec<(i64, i64, i64, i64)> = db
            .prepare("SELECT game_id, ply, player, cell FROM moves ORDER BY game_id, ply")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        rows.push((moves.len() as i64, format!("{moves:?}"), 0, 0, 0, 0, 0));
        rows
    }

    #[test]
    fn every_board_writes_its_games_with_legal_looking_moves() {
        let dir = tempfile::tempdir().expect("tempdir");
        for &(board, cells) in BOARDS {
            for players in 2..=4u8 {
                let mut a = args(dir.path(), board, cells);
                a.players = players;
                a.max_moves = if cells > 100 { 1000 } else { 500 };
                let report = run_selfplay_demo(a.clone()).expect("demo");
                assert_eq!(report.games_written, 5);
                assert_eq!(report.output, a.out);
                assert_eq!(count_games(&a.out).expect("count"), 5);
                let db = Connection::open(&a.out).expect("open");
                let (min_cell, max_cell, bad_player): (i64, i64, i64) = db
                    .query_row(
                        "SELECT MIN(cell), MAX(cell), SUM(player < 1 OR player > ?1) FROM moves",
                        [players],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .expect("stats");
                assert!(min_cell >= 0 && max_cell < i64::from(cells), "{board}");
                assert_eq!(bad_player, 0);
                let repeated: i64 = db
                    .query_row(
                        "SELECT COUNT(*) FROM (SELECT game_id, cell FROM moves GROUP BY game_id, cell HAVING COUNT(*) > 1)",
                        [],
                        |r| r.get(0),
                    )
                    .expect("distinct");
                assert_eq!(repeated, 0, "{board}: a cell played twice in a game");
                let mismatched: i64 = db
                    .query_row(
                        "SELECT COUNT(*) FROM games g WHERE moves != (SELECT COUNT(*) FROM moves m WHERE m.game_id = g.id)
                         OR winner < 1 OR winner > players OR moves < 1 OR moves > ?1",
                        [a.max_moves.min(cells)],
                        |r| r.get(0),
                    )
                    .expect("consistent");
                assert_eq!(mismatched, 0, "{board}");
            }
        }
    }

    #[test]
    fn think_time_paces_every_move() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = DemoArgs {
            games: 3,
            max_moves: 4,
            think_time_ms: 25,
            ..args(dir.path(), "hex8", 61)
        };
        let games = play_games(&a);
        let plies: u32 = games.iter().map(|g| g.cells.len() as u32).sum();
        for game in &games {
            assert_eq!(
                think_time(&a, game),
                std::time::Duration::from_millis(25) * game.cells.len() as u32
            );
        }
        let started = std::time::Instant::now();
        run_selfplay_demo(a.clone()).unwrap();
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(25) * plies,
            "{plies} plies at 25 ms took {:?}",
            started.elapsed()
        );
        a.think_time_ms = 0;
        assert_eq!(think_time(&a, &games[0]), std::time::Duration::ZERO);
    }

    #[test]
    fn games_never_exceed_max_moves_or_the_board() {
        for (max_moves, cells) in [(1, 61), (3, 61), (500, 61), (10, 469), (2, 1)] {
            let a = DemoArgs {
                max_moves,
                cells,
                games: 50,
                ..args(Path::new("/unused"), "b", cells)
            };
            for game in play_games(&a) {
                assert!(!game.cells.is_empty());
                assert!(game.cells.len() as u32 <= max_moves.min(cells));
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_games_and_another_seed_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = args(dir.path(), "hex8", 61);
        a.games = 20;
        let first = dir.path().join("a.db");
        let second = dir.path().join("b.db");
        let third = dir.path().join("c.db");
        run_selfplay_demo(DemoArgs {
            out: first.clone(),
            ..a.clone()
        })
        .expect("a");
        run_selfplay_demo(DemoArgs {
            out: second.clone(),
            ..a.clone()
        })
        .expect("b");
        run_selfplay_demo(DemoArgs {
            out: third.clone(),
            seed: 8,
            ..a.clone()
        })
        .expect("c");
        assert_eq!(dump(&first), dump(&second));
        assert_ne!(dump(&first), dump(&third));
        assert_eq!(play_games(&a), play_games(&a));
    }

    #[test]
    fn a_failed_write_leaves_no_file_and_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The rename fails: `out` is a non-empty directory.
        let out = dir.path().join("games.db");
        std::fs::create_dir(&out).expect("dir");
        std::fs::write(out.join("keep"), "x").expect("write");
        let error = run_selfplay_demo(DemoArgs {
            out: out.clone(),
            ..args(dir.path(), "hex8", 61)
        })
        .expect_err("rename fails");
        assert!(matches!(error, DemoError::Io { .. }), "{error}");
        assert!(out.is_dir(), "the existing entry is untouched");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("games.db")]);
    }

    #[test]
    fn a_failed_rewrite_keeps_the_previous_file_and_a_stale_temp_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = args(dir.path(), "hex8", 61);
        run_selfplay_demo(a.clone()).expect("first");
        let before = std::fs::read(&a.out).expect("read");
        let error = run_selfplay_demo(DemoArgs {
            players: 9,
            ..a.clone()
        })
        .expect_err("invalid");
        assert!(error.to_string().contains("players"), "{error}");
        assert_eq!(std::fs::read(&a.out).expect("read"), before);
        // A temp file left by a crashed run does not block the next one.
        let temp = a.out.parent().expect("parent").join(".hex8.db.tmp");
        std::fs::write(&temp, "garbage").expect("stale");
        run_selfplay_demo(DemoArgs {
            games: 3,
            ..a.clone()
        })
        .expect("rewrite");
        assert_eq!(count_games(&a.out).expect("count"), 3);
        assert!(!temp.exists());
    }

    #[test]
    fn invalid_arguments_name_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = args(dir.path(), "hex8", 61);
        let cases: Vec<(DemoArgs, &str)> = vec![
            (
                DemoArgs {
                    board: " ".into(),
                    ..base.clone()
                },
                "board",
            ),
            (
                DemoArgs {
                    cells: 0,
                    ..base.clone()
                },
                "cells",
            ),
            (
                DemoArgs {
                    players: 1,
                    ..base.clone()
                },
                "players",
            ),
            (
                DemoArgs {
                    players: 5,
                    ..base.clone()
                },
                "players",
            ),
            (
                DemoArgs {
                    games: 0,
                    ..base.clone()
                },
                "games",
            ),
            (
                DemoArgs {
                    max_moves: 0,
                    ..base.clone()
                },
                "max_moves",
            ),
            (
                DemoArgs {
                    randomness: -0.1,
                    ..base.clone()
                },
                "randomness",
            ),
            (
                DemoArgs {
                    out: PathBuf::from("/"),
                    ..base.clone()
                },
                "out",
            ),
        ];
        for (a, field) in cases {
            match run_selfplay_demo(a) {
                Err(DemoError::InvalidArgs { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(!base.out.exists());
    }

    #[test]
    fn count_games_reads_json_lines_and_refuses_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jsonl = dir.path().join("g.jsonl");
        std::fs::write(&jsonl, "{\"winner\":1}\n\n{\"winner\":2}\n").expect("write");
        assert_eq!(count_games(&jsonl).expect("count"), 2);
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").expect("write");
        assert_eq!(count_games(&empty).expect("count"), 0);
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "{\"ok\":1}\nnot json\n").expect("write");
        match count_games(&garbage) {
            Err(DemoError::BadJsonLine { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            count_games(&dir.path().join("missing")),
            Err(DemoError::Io { .. })
        ));
        // A SQLite file without a games table is an error, not zero.
        let other_db = dir.path().join("other.db");
        Connection::open(&other_db)
            .expect("open")
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("create");
        assert!(matches!(
            count_games(&other_db),
            Err(DemoError::Sqlite { .. })
        ));
    }
}
