//! Black-box tests of the dead-letter path through the real binary (issue 13, items 1-4 and 9): a full disk, a
//! damaged store at start, a replayed job that keeps failing, and SIGTERM during a hang and during a burst. Every
//! letter is counted: in the store, in the spill file, or lost (the goal is 0 lost). Every wait has a deadline.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{find_node, free_port, test_config, Daemon};

const DEFAULT_DL_SECTION: &str = "dead_letters:\n  path: state/dead_letters.db\n";

/// The test config with its `dead_letters` section replaced by `section`.
fn config_with(section: &str, extra: &str) -> String {
    let config = test_config(free_port(), free_port(), extra);
    assert!(config.contains(DEFAULT_DL_SECTION));
    config.replace(DEFAULT_DL_SECTION, section)
}

/// Rows of the store at `db` matching `filter` (through the sqlite3 CLI).
fn count_rows(db: &Path, filter: &str) -> u64 {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(format!("SELECT COUNT(*) FROM dead_letters WHERE {filter}"))
        .output()
        .expect("sqlite3 is installed (HELPERS.md lists it)");
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("sqlite3 count: {e}: {:?}", out))
}

/// Letters in the spill file beside the store at `db` that match `needle` (a JSON fragment).
fn count_spilled(db: &Path, needle: &str) -> u64 {
    let mut path = db.as_os_str().to_os_string();
    path.push(".spill.jsonl");
    std::fs::read_to_string(PathBuf::from(path))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count() as u64
}

/// How many letters the daemon's log says were handed to the dead-letter route for `actor`: a failed handler
/// (inside the message span of that actor) or an undeliverable message to it.
fn letters_sent_in_log(log: &str, actor: &str) -> u64 {
    let span = format!("\"actor\":\"{actor}\"");
    log.lines()
        .filter(|l| l.contains(&span))
        .filter(|l| {
            l.contains("handler failed; message stored as a dead letter")
                || l.contains("message not delivered; stored as a dead letter")
        })
        .count() as u64
}

/// SIGTERM, a clean exit, then the letters of `sync` counted and printed: every one in the store or the spill.
/// Returns how many were sent (handed to the dead-letter route, from the log).
fn sigterm_and_tally(daemon: &mut Daemon, what: &str) -> u64 {
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(40));
    let log = daemon.logs();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "log tail:\n{tail}");
    let db = daemon.path().join("state/dead_letters.db");
    let sent = letters_sent_in_log(&log, "sync");
    let stored = count_rows(&db, "actor = 'sync'");
    let spilled = count_spilled(&db, "\"actor\":\"sync\"");
    let lost = sent.saturating_sub(stored + spilled);
    println!("{what}: sent {sent}, stored {stored}, spilled {spilled}, lost {lost}");
    assert_eq!(lost, 0, "log tail:\n{tail}");
    assert_eq!(stored + spilled, sent, "nothing counted twice");
    assert!(
        !log.contains("kept in this log line only"),
        "no letter only in a log line"
    );
    sent
}

fn wait_until(what: &str, timeout: Duration, daemon: &Daemon, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn error_drill(daemon: &Daemon, actor: &str) {
    let (code, body) = daemon.post(&format!("/debug/fail/{actor}?mode=error"));
    assert_eq!(code, 202, "{body}");
}

/// Paced error drills: each waits until the actor counted its failure, so each makes exactly one letter.
fn paced_error_drills(daemon: &Daemon, actor: &str, n: u64) {
    let start = daemon.get("/status").1["actors"][actor]["failed"]
        .as_u64()
        .unwrap_or(0);
    for i in 1..=n {
        error_drill(daemon, actor);
        daemon.wait_status("drill failure counted", Duration::from_secs(10), |s| {
            s["actors"][actor]["failed"].as_u64().unwrap_or(0) >= start + i
        });
    }
}

fn health_check(daemon: &Daemon) -> serde_json::Value {
    daemon
        .try_get("/health")
        .map(|(_, body)| body["checks"]["dead_letters"].clone())
        .unwrap_or_default()
}

/// A temp dir with a 2 MiB tmpfs at `mnt` holding the store `mnt/dl.db`, and its `dead_letters` section (a
/// 256 KiB spill plus `settings`, YAML lines indented by two).
fn store_on_tmpfs(settings: &str) -> (tempfile::TempDir, common::Tmpfs, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let tmpfs = common::Tmpfs::mount(&mnt, "2m");
    let db = mnt.join("dl.db");
    let section = format!(
        "dead_letters:\n  path: {}\n  spill_max_bytes: 256KiB\n  {settings}\n",
        db.display()
    );
    (dir, tmpfs, mnt, section)
}

#[test]
fn a_full_disk_spills_letters_without_a_loop_and_moves_them_into_the_store_when_space_returns() {
    let (dir, _tmpfs, mnt, section) = store_on_tmpfs(
        "maintenance_every: 300ms\n  store_retry_base: 100ms\n  store_retry_max: 400ms\n  store_max_failures: 100000",
    );
    let daemon = Daemon::start_in(dir, &config_with(&section, ""));
    paced_error_drills(&daemon, "sync", 1);
    wait_until(
        "first letter stored",
        Duration::from_secs(10),
        &daemon,
        || daemon.get("/dead-letters").1["total"] == 1,
    );

    common::fill_disk(&mnt.join("filler"));
    paced_error_drills(&daemon, "sync", 20);
    let status = daemon.wait_status(
        "store failing and letters spilled",
        Duration::from_secs(15),
        |s| {
            s["dead_letters"]["store"] == "failing"
                && s["dead_letters"]["spilled"].as_u64().unwrap_or(0) >= 1
        },
    );
    let check = health_check(&daemon);
    assert_eq!(check["status"], "degraded", "{check} / {status}");
    let (_, metrics) = common::request("GET", &format!("{}/metrics", daemon.api), None).unwrap();
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("coordinator_dead_letter_store_up 0"),
        "{metrics}"
    );
    // Let the failing store be retried for a while: bounded work, no loop of letters about letters.
    std::thread::sleep(Duration::from_secs(2));
    let log = daemon.logs();
    let refusals = log.matches("dead-letter store refused a write").count();
    assert!(
        refusals < 100,
        "{refusals} store failures logged in ~3 s: the store is retried with backoff, not in a loop"
    );
    assert!(
        !log.contains("StoreDeadLetter"),
        "no letter about a letter: {log}"
    );

    std::fs::remove_file(mnt.join("filler")).unwrap();
    daemon.wait_status("spill moved into the store", Duration::from_secs(20), |s| {
        s["dead_letters"]["store"] == "ok" && s["dead_letters"]["spilled"] == 0
    });
    let (code, page) = daemon.get("/dead-letters?limit=100");
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["total"], 21, "every letter reached the store: {page}");
    for letter in page["dead_letters"].as_array().unwrap() {
        assert_eq!(letter["actor"], "sync", "{letter}");
        assert_eq!(
            letter["msg"], "Ping",
            "the original message, never a wrapper: {letter}"
        );
        assert!(letter.to_string().len() < 2000, "{letter}");
    }
    wait_until("health ok again", Duration::from_secs(10), &daemon, || {
        health_check(&daemon)["status"] == "ok"
    });
    let out = {
        let mut c = common::command(daemon.path());
        c.args(["dead-letters", "list", "--api", &daemon.api]);
        common::run_with_timeout(c, Duration::from_secs(20))
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_corrupt_page_and_a_zero_length_store_are_moved_aside_and_salvaged_at_start() {
    // A store with enough letters to span many pages, then noise written over two pages in the middle.
    let config = config_with(DEFAULT_DL_SECTION, "");
    let mut daemon = Daemon::start(&config);
    paced_error_drills(&daemon, "sync", 150);
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(30)).is_some());
    let dir = std::mem::replace(&mut daemon.dir, tempfile::tempdir().unwrap());
    drop(daemon);
    let db = dir.path().join("state/dead_letters.db");
    assert_eq!(count_rows(&db, "1"), 150);
    let pages = std::fs::metadata(&db).unwrap().len() / 4096;
    assert!(pages > 8, "store has {pages} pages");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        file.seek(SeekFrom::Start(4096 * 5)).unwrap();
        let noise: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        file.write_all(&noise).unwrap();
    }
    let daemon = Daemon::start_in(dir, &config);
    let (code, page) = daemon.get("/dead-letters?limit=1000");
    assert_eq!(code, 200, "{page}");
    let salvaged = page["total"].as_u64().unwrap();
    assert!(salvaged > 0 && salvaged < 150, "salvaged {salvaged} of 150");
    let log = daemon.logs();
    let line = log
        .lines()
        .find(|l| l.contains("dead-letter store was damaged"))
        .unwrap_or_else(|| panic!("an error names both files:\n{log}"));
    assert!(line.contains("\"level\":\"ERROR\""), "{line}");
    assert!(line.contains("dead_letters.db.damaged-"), "{line}");
    assert!(
        line.contains("quick_check") || line.contains("malformed"),
        "{line}"
    );
    let aside: Vec<String> = std::fs::read_dir(daemon.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| {
            n.starts_with("dead_letters.db.damaged-")
                && !n.ends_with("-wal")
                && !n.ends_with("-shm")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    println!(
        "corrupt page: 150 letters, {salvaged} salvaged, damaged file state/{}",
        aside[0]
    );

    // A zero-length store is not silently re-created either.
    let zero = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(zero.path().join("state")).unwrap();
    std::fs::write(zero.path().join("state/dead_letters.db"), b"").unwrap();
    let daemon = Daemon::start_in(zero, &config_with(DEFAULT_DL_SECTION, ""));
    let log = daemon.logs();
    let line = log
        .lines()
        .find(|l| l.contains("dead-letter store was damaged"))
        .unwrap_or_else(|| panic!("zero-length store reported:\n{log}"));
    assert!(line.contains("zero length"), "{line}");
    assert_eq!(daemon.get("/dead-letters").1["total"], 0);
}

#[test]
fn a_store_that_cannot_be_opened_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("blocker"),
        "a file where a folder should be",
    )
    .unwrap();
    let config = config_with("dead_letters:\n  path: blocker/sub/dl.db\n", "");
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let mut cmd = common::command(dir.path());
    cmd.args(["run", "--config", "config.yaml"]);
    let out = common::run_with_timeout(cmd, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dead_letters.path"), "{stderr}");
    assert!(stderr.contains("blocker"), "{stderr}");
}

#[test]
fn a_permanently_failing_job_is_one_letter_replayed_until_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs.txt");
    let section = "dead_letters:\n  path: state/dead_letters.db\n  backoff_base: 1s\n  backoff_max: 2s\n  maintenance_every: 500ms\n  max_retries: 2\n";
    // Each run appends its job's output path, so runs are counted per job.
    let extra = format!(
        "scheduler:\n  interval: 1h\n  configs: [hex8_2p]\n  max_games_per_job: 100000\n  jobs:\n    command: [\"/bin/sh\", \"-c\", \"echo {{output}} >> {}; exit 3\"]\n    max_attempts: 1\n    max_concurrent_per_node: 1\n",
        runs.display()
    );
    let daemon = Daemon::start_in(dir, &config_with(section, &extra));
    let letters = || -> Vec<serde_json::Value> {
        let mut list: Vec<serde_json::Value> = daemon.get("/dead-letters?limit=1000").1
            ["dead_letters"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l["msg"] == "RunJob")
            .collect();
        list.sort_by_key(|l| l["id"].as_i64());
        list
    };
    // The first job's letter, followed until it is abandoned: one letter per job, its retries only rising.
    let mut first: Option<(i64, String)> = None;
    let mut seen_retries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let list = letters();
        let mut jobs: Vec<&str> = list
            .iter()
            .map(|l| l["payload"]["spec"]["id"].as_str().unwrap())
            .collect();
        jobs.sort_unstable();
        let before = jobs.len();
        jobs.dedup();
        assert_eq!(
            jobs.len(),
            before,
            "one letter per job, never a new one per replay: {list:?}"
        );
        if first.is_none() {
            first = list.first().map(|l| {
                (
                    l["id"].as_i64().unwrap(),
                    l["payload"]["spec"]["output"].as_str().unwrap().to_string(),
                )
            });
        }
        if let Some(letter) = first
            .as_ref()
            .and_then(|(id, _)| list.iter().find(|l| l["id"] == *id))
        {
            let retries = letter["retries"].as_u64().unwrap();
            if seen_retries.last() != Some(&retries) {
                seen_retries.push(retries);
            }
            if letter["status"] == "abandoned" {
                break;
            }
            assert_eq!(letter["status"], "pending", "never recovered: {letter}");
        }
        assert!(
            Instant::now() < deadline,
            "not abandoned in 40 s; retries seen {seen_retries:?}; log:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (id, output) = first.unwrap();
    // Settle: no further replays of an abandoned letter.
    std::thread::sleep(Duration::from_secs(4));
    let (_, letter) = daemon.get(&format!("/dead-letters/{id}"));
    assert_eq!(letter["retries"], 2, "{letter}");
    assert_eq!(letter["status"], "abandoned", "{letter}");
    // The error reads as a sentence, not a Rust structure.
    let error = letter["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("job failed 1 times; last: ") && !error.contains("Failed {"),
        "{letter}"
    );
    assert_eq!(seen_retries.last(), Some(&2));
    assert!(
        seen_retries.windows(2).all(|w| w[0] < w[1]),
        "retries only rise: {seen_retries:?}"
    );
    let ran = std::fs::read_to_string(daemon.path().join("runs.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.trim().ends_with(&output))
        .count();
    assert!(
        (1..=3).contains(&ran),
        "the job ran {ran} times; at most max_retries + 1 = 3"
    );
    println!("replay loop: job ran {ran} times, retries seen {seen_retries:?}, status abandoned");

    // Replaying an abandoned letter is refused unless forced.
    let (code, body) = daemon.post(&format!("/dead-letters/{id}/replay"));
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("force"), "{body}");
    let (code, body) = daemon.post(&format!("/dead-letters/{id}/replay?force=true"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["awaiting_outcome"], true, "{body}");
}

#[test]
fn a_recovered_letter_is_not_replayed_again_unless_forced() {
    let daemon = Daemon::start(&config_with(DEFAULT_DL_SECTION, ""));
    paced_error_drills(&daemon, "resources", 1);
    wait_until("letter stored", Duration::from_secs(10), &daemon, || {
        daemon.get("/dead-letters").1["total"] == 1
    });
    let id = daemon.get("/dead-letters").1["dead_letters"][0]["id"]
        .as_i64()
        .unwrap();
    let (code, body) = daemon.post(&format!("/dead-letters/{id}/replay"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["dead_letter"]["status"], "recovered", "{body}");
    let (code, body) = daemon.post(&format!("/dead-letters/{id}/replay"));
    assert_eq!(code, 409, "{body}");
    let out = {
        let mut c = common::command(daemon.path());
        c.args([
            "dead-letters",
            "replay",
            &id.to_string(),
            "--force",
            "--api",
            &daemon.api,
        ]);
        common::run_with_timeout(c, Duration::from_secs(20))
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = daemon.post(&format!("/dead-letters/{id}/replay?force=maybe"));
    assert_eq!(code, 400);
}

/// SIGTERM while the dead-letter actor hangs: the letters sent meanwhile are in the store or the spill.
#[test]
fn sigterm_during_a_dead_letter_hang_keeps_every_letter() {
    let section = "dead_letters:\n  path: state/dead_letters.db\n";
    // A long watchdog deadline, so the actor is still hung when SIGTERM comes.
    let config =
        config_with(section, "").replace("watchdog_deadline: 2s", "watchdog_deadline: 60s");
    let mut daemon = Daemon::start(&config);
    let (code, _) = daemon.post("/debug/fail/dead_letters?mode=hang");
    assert_eq!(code, 202);
    daemon.wait_status("dead_letters hung", Duration::from_secs(5), |s| {
        s["actors"]["dead_letters"]["mailbox"].as_u64().is_some()
    });
    paced_error_drills(&daemon, "sync", 5);
    let sent = sigterm_and_tally(&mut daemon, "hang");
    assert_eq!(sent, 5, "five error drills, five letters");
}

/// SIGTERM during an unpaced burst of error drills: every letter is in the store or the spill.
#[test]
fn sigterm_during_a_burst_of_error_drills_keeps_every_letter() {
    // A small queue, so the burst overflows it: the overflow must reach the spill file, not a log line. The store
    // holds more than the posters can send (4 x 5000), so no letter is evicted by `max_entries` (10 000 by default,
    // which a quiet machine's burst exceeds).
    let section =
        "dead_letters:\n  path: state/dead_letters.db\n  queue_capacity: 20\n  max_entries: 100000\n";
    let mut daemon = Daemon::start(&config_with(section, ""));
    let api = daemon.api.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let posters: Vec<_> = (0..4)
        .map(|_| {
            let api = api.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut posted = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && posted < 5000 {
                    match common::request(
                        "POST",
                        &format!("{api}/debug/fail/sync?mode=error"),
                        None,
                    ) {
                        Ok(_) => posted += 1,
                        Err(_) => break,
                    }
                }
                posted
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let metrics = common::request("GET", &format!("{api}/metrics"), None)
        .map(|(_, m)| m.as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let through_spill = metrics
        .lines()
        .find_map(|l| l.strip_prefix("coordinator_dead_letters_spilled_total "))
        .unwrap_or("?")
        .to_string();
    let sent = sigterm_and_tally(&mut daemon, "burst");
    println!("burst: {through_spill} letters went through the spill file before SIGTERM (then into the store)");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let posted: u64 = posters.into_iter().map(|p| p.join().unwrap()).sum();
    println!("burst: {posted} drills posted");
    assert!(sent > 50, "the burst made letters: {sent}");
}

#[test]
fn the_store_state_is_in_status() {
    let daemon = Daemon::start(&config_with(DEFAULT_DL_SECTION, ""));
    let (_, status) = daemon.get("/status");
    assert_eq!(status["dead_letters"]["store"], "ok", "{status}");
    assert!(status["dead_letters"]["spill_path"]
        .as_str()
        .unwrap()
        .ends_with("dead_letters.db.spill.jsonl"));
    assert!(find_node(&status["tree"], "dead_letters").is_some());
    wait_until(
        "dead_letters check published",
        Duration::from_secs(5),
        &daemon,
        || health_check(&daemon)["status"] == "ok",
    );
}

/// Another process holds the store's write lock longer than the 5 s busy timeout: the letter is spilled as the
/// original message (never a wrapper) and reaches the store once the lock is gone.
#[test]
fn a_store_locked_by_another_process_spills_the_original_letter() {
    let section = "dead_letters:\n  path: state/dead_letters.db\n  maintenance_every: 300ms\n  store_retry_base: 200ms\n  store_retry_max: 1s\n";
    // The dead-letter actor waits 5 s on the lock: a long watchdog deadline keeps that from counting as a hang.
    let config =
        config_with(section, "").replace("watchdog_deadline: 2s", "watchdog_deadline: 60s");
    let daemon = Daemon::start(&config);
    let db = daemon.path().join("state/dead_letters.db");
    let mut locker = Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sqlite3 is installed (HELPERS.md lists it)");
    {
        use std::io::Write;
        let stdin = locker.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN IMMEDIATE;\nINSERT INTO schema_version (version) VALUES (1);\n")
            .unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    paced_error_drills(&daemon, "sync", 1);
    let status = daemon.wait_status(
        "letter spilled while the store is locked",
        Duration::from_secs(20),
        |s| {
            s["dead_letters"]["spilled"].as_u64().unwrap_or(0) >= 1
                && s["dead_letters"]["store"] == "failing"
        },
    );
    assert!(
        status["dead_letters"]["store_error"]
            .as_str()
            .unwrap_or_default()
            .contains("locked"),
        "{status}"
    );
    assert_eq!(count_spilled(&db, "\"msg\":\"Ping\""), 1);
    {
        use std::io::Write;
        let stdin = locker.stdin.as_mut().unwrap();
        stdin.write_all(b"ROLLBACK;\n.quit\n").unwrap();
    }
    let _ = locker.wait();
    daemon.wait_status("spill moved into the store", Duration::from_secs(20), |s| {
        s["dead_letters"]["store"] == "ok" && s["dead_letters"]["spilled"] == 0
    });
    let (_, page) = daemon.get("/dead-letters");
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["dead_letters"][0]["actor"], "sync");
    assert_eq!(page["dead_letters"][0]["msg"], "Ping");
}

/// A store that keeps failing escalates after `store_max_failures`: `/health` fails (503) and the dead-letter actor
/// is restarted by its supervisor, while the letters stay in the spill file.
#[test]
fn a_store_failing_past_its_limit_fails_health_and_restarts_the_actor() {
    let (dir, _tmpfs, mnt, section) = store_on_tmpfs(
        "maintenance_every: 200ms\n  store_retry_base: 300ms\n  store_retry_max: 300ms\n  store_max_failures: 2",
    );
    let config = config_with(&section, "").replace("max_restarts: 3", "max_restarts: 1000");
    let daemon = Daemon::start_in(dir, &config);
    paced_error_drills(&daemon, "sync", 1);
    common::fill_disk(&mnt.join("filler"));
    paced_error_drills(&daemon, "sync", 5);
    wait_until(
        "dead_letters check failing",
        Duration::from_secs(20),
        &daemon,
        || health_check(&daemon)["status"] == "failing",
    );
    let (code, body) = daemon.try_get("/health").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body["checks"]["dead_letters"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("writes in a row"),
        "{body}"
    );
    let status = daemon.wait_status("dead_letters restarted", Duration::from_secs(20), |s| {
        find_node(&s["tree"], "dead_letters")
            .is_some_and(|n| n["restarts"].as_u64().unwrap_or(0) >= 1)
    });
    assert!(
        status["dead_letters"]["spilled"].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );
    std::fs::remove_file(mnt.join("filler")).unwrap();
    wait_until("health ok again", Duration::from_secs(20), &daemon, || {
        health_check(&daemon)["status"] == "ok"
    });
    assert_eq!(daemon.get("/dead-letters").1["total"], 6);
}

/// The eviction warning is rate-limited like the other dead-letter logs (it was one line per insert).
#[test]
fn the_eviction_warning_is_rate_limited() {
    let section =
        "dead_letters:\n  path: state/dead_letters.db\n  max_entries: 3\n  log_first: 2\n";
    let daemon = Daemon::start(&config_with(section, ""));
    paced_error_drills(&daemon, "sync", 25);
    wait_until("letters stored", Duration::from_secs(10), &daemon, || {
        let (_, metrics) =
            common::request("GET", &format!("{}/metrics", daemon.api), None).unwrap();
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("coordinator_dead_letters_evicted_total 22")
    });
    let warnings = daemon
        .logs()
        .matches("dead-letter store full of pending letters")
        .count();
    println!("eviction: 22 pending letters evicted, {warnings} warning lines");
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} eviction warnings for 22 evictions (log_first 2)"
    );
    assert_eq!(daemon.get("/dead-letters").1["total"], 3);
}

/// SIGTERM while another actor hangs on a message: that message is a dead letter too (it was dropped).
#[test]
fn sigterm_during_an_actor_hang_stores_the_message_it_hung_on() {
    let config = config_with(DEFAULT_DL_SECTION, "")
        .replace("watchdog_deadline: 2s", "watchdog_deadline: 60s");
    let mut daemon = Daemon::start(&config);
    let (code, _) = daemon.post("/debug/fail/sync?mode=hang");
    assert_eq!(code, 202);
    wait_until(
        "the hang drill fired",
        Duration::from_secs(10),
        &daemon,
        || daemon.logs().contains("fault drill: hang"),
    );
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(40));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        daemon.logs()
    );
    let db = daemon.path().join("state/dead_letters.db");
    let stored = count_rows(
        &db,
        "actor = 'sync' AND msg = 'Ping' AND error LIKE '%hang%'",
    );
    let spilled = count_spilled(&db, "\"actor\":\"sync\"");
    println!("actor hang at SIGTERM: stored {stored}, spilled {spilled}");
    assert_eq!(stored + spilled, 1, "log:\n{}", daemon.logs());
}

/// Without a daemon, `dead-letters list` says how many letters wait in the spill file.
#[test]
fn the_offline_list_mentions_spilled_letters() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state/dead_letters.db.spill.jsonl"),
        "{\"at_ms\":1,\"actor\":\"sync\",\"msg\":\"Ping\",\"payload\":null,\"error\":\"e\",\"correlation_id\":\"00000000000000aa\",\"retries\":0}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        config_with(DEFAULT_DL_SECTION, ""),
    )
    .unwrap();
    let mut cmd = common::command(dir.path());
    cmd.args([
        "dead-letters",
        "list",
        "--config",
        "config.yaml",
        "--api",
        "http://127.0.0.1:1",
    ]);
    let out = common::run_with_timeout(cmd, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 more letters wait in the spill file"),
        "{stderr}"
    );
}
