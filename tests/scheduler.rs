//! The daemon on the repository's config.yaml (ports moved to free ones) runs demo selfplay jobs to completion,
//! and the game counts in `/plan` move; with short jobs, a node holds its target concurrency and the plan's share
//! is played (issue 8).

mod common;

use std::time::Duration;

use common::{free_port, test_config, Daemon};

#[test]
fn default_config_runs_demo_jobs_and_game_counts_move() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml")).unwrap();
    let text = text
        .replace("127.0.0.1:8765", &format!("127.0.0.1:{}", free_port()))
        .replace("127.0.0.1:8766", &format!("127.0.0.1:{}", free_port()));
    let daemon = Daemon::start(&text);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, plan) = daemon.get("/plan");
        assert_eq!(code, 200, "{plan}");
        let total: u64 = plan["game_counts"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|v| v.as_u64())
            .sum();
        if total > 0 {
            assert!(plan["plan"]["total_games"].as_u64().unwrap() > 0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no games after 60 s: {plan}\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, jobs) = daemon.get("/jobs");
    let history = jobs["history"].as_array().unwrap();
    assert!(
        history.iter().any(|j| j["status"]["status"] == "succeeded"),
        "{jobs}"
    );
    let games_dir = daemon.path().join("data/games");
    let files: Vec<_> = walk(&games_dir);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "db")),
        "{files:?}"
    );
    assert!(!files
        .iter()
        .any(|f| f.file_name().unwrap().to_string_lossy().ends_with(".tmp")));
}

/// config.yaml with free ports, JSON logs and short demo jobs (5 ms per move, at most 10 moves: about a second per job).
fn short_config() -> String {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml")).unwrap();
    assert!(
        text.contains("think_time: 10ms"),
        "config.yaml changed: {text}"
    );
    text.replace("127.0.0.1:8765", &format!("127.0.0.1:{}", free_port()))
        .replace("127.0.0.1:8766", &format!("127.0.0.1:{}", free_port()))
        .replace("think_time: 10ms", "think_time: 5ms\n    max_moves: 10")
        .replace("format: pretty", "format: json")
}

#[test]
fn a_node_holds_its_target_concurrency_until_the_plans_share_is_played() {
    let daemon = Daemon::start(&short_config());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut most_running = 0;
    let first_plan = loop {
        let (code, jobs) = daemon.get("/jobs");
        assert_eq!(code, 200, "{jobs}");
        most_running = most_running.max(jobs["running"].as_array().unwrap().len());
        // Plan 1 is current until played, then previous; it is done when every node played its share.
        let plan_1 = [&jobs["plan_progress"], &jobs["previous_plan_progress"]]
            .into_iter()
            .find(|p| p["plan"] == 1)
            .cloned();
        if let Some(plan) = plan_1 {
            let nodes = plan["nodes"].as_object().unwrap().clone();
            if !nodes.is_empty() && nodes.values().all(|n| n["played"] == n["planned"]) {
                break plan;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "plan 1 not played within 120 s (most running at once: {most_running}): {jobs}\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(
        most_running >= 2,
        "the node's target is 2 jobs at once, saw at most {most_running}"
    );
    let local = &first_plan["nodes"]["local"];
    let planned = local["planned"].as_u64().unwrap();
    assert!(
        planned >= 500,
        "config.yaml's plan gives local 500 games: {first_plan}"
    );
    assert_eq!(local["played"].as_u64(), Some(planned));
    assert_eq!(first_plan["played"], first_plan["planned"]);
    // The games are on disk and counted.
    let (_, plan) = daemon.get("/plan");
    assert!(counted_games(&plan) >= planned, "{plan}");
    assert!(
        plan["plans"].as_u64().unwrap() >= 2,
        "replanned once played: {plan}"
    );
    // Dynamic weights, computed when the counts were loaded (no job running: an idle cluster, staleness 0.30 x 1.5).
    assert_eq!(
        plan["weights_from"]["cluster"]["idle_gpu_fraction"], 1.0,
        "{plan}"
    );
    let staleness = plan["weights"]["staleness"].as_f64().unwrap();
    assert!((staleness - 0.45).abs() < 1e-9, "{plan}");
    let (_, status) = daemon.get("/status");
    let progress = &status["scheduler"]["plan_progress"]["nodes"]["local"];
    for field in ["planned", "played", "running"] {
        assert!(
            progress[field].is_u64(),
            "/status shows {field} per node: {status}"
        );
    }
    // The jobs' log lines carry their plan's correlation id.
    let correlation = first_plan["correlation_id"].as_str().unwrap().to_string();
    let started: Vec<String> = daemon
        .logs()
        .lines()
        .filter(|l| l.contains("\"job started\"") || l.contains("\"starting selfplay job\""))
        .map(str::to_string)
        .collect();
    assert!(
        started.iter().filter(|l| l.contains(&correlation)).count() >= 2 * (planned as usize / 50),
        "job start lines of plan 1 should carry {correlation}: {started:#?}"
    );
}

fn counted_games(plan: &serde_json::Value) -> u64 {
    plan["game_counts"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_u64())
        .sum()
}

#[test]
fn a_restart_keeps_the_game_counts() {
    let dir = tempfile::tempdir().unwrap();
    // A games file that cannot be read: a warning, not a crash.
    std::fs::create_dir_all(dir.path().join("data/games/hex8_2p")).unwrap();
    std::fs::write(
        dir.path().join("data/games/hex8_2p/broken.db"),
        b"not a games file\n",
    )
    .unwrap();
    let config = short_config();
    let mut daemon = Daemon::start_in(dir, &config);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let before = loop {
        let (_, plan) = daemon.get("/plan");
        let counted = counted_games(&plan);
        if counted >= 150 {
            break plan;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 150 games within 90 s: {plan}\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    daemon.signal(libc::SIGTERM);
    assert!(
        daemon.wait_exit(Duration::from_secs(30)).is_some(),
        "did not stop"
    );
    assert!(daemon.path().join("state/scheduler.json").exists());
    // Restart in the same directory with jobs too slow to finish during the check: any count is from before.
    let dir = std::mem::replace(&mut daemon.dir, tempfile::tempdir().unwrap());
    drop(daemon);
    let slow = config.replace("think_time: 5ms", "think_time: 2s");
    let daemon = Daemon::start_in(dir, &slow);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        let (_, plan) = daemon.get("/plan");
        if plan["plans"].as_u64().unwrap_or(0) >= 1 {
            break plan;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no plan after restart: {plan}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for (config, games) in before["game_counts"].as_object().unwrap() {
        let kept = after["game_counts"][config].as_u64().unwrap_or(0);
        assert!(
            kept >= games.as_u64().unwrap(),
            "{config}: {games} before the restart, {kept} after\nbefore: {before}\nafter: {after}"
        );
    }
    assert!(counted_games(&after) >= 150);
    let logs = daemon.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("games file not counted") && l.contains("broken.db")),
        "the unreadable file is a warning: {logs}"
    );
}

#[test]
fn an_unreachable_ssh_node_leaves_the_plan_after_its_failures_and_returns_after_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    common::sshd::keygen(&root.join("client_key"));
    // Nothing listens on this port yet: every job on `peer` fails to connect.
    let port = free_port();
    let extra = format!(
        r#"cluster:
  nodes:
    - name: test-node
      gpu: CPU
    - name: peer
      gpu: A10
      ssh: root@127.0.0.1
scheduler:
  interval: 1s
  max_games_per_job: 5
  node_availability:
    failures: 3
    out_for: 4s
  jobs:
    think_time: 0s
    max_moves: 10
    retry_backoff: 200ms
    ssh:
      remote_program: {bin}
      remote_dir: {root}
      options: [BatchMode=yes, ConnectTimeout=5, StrictHostKeyChecking=accept-new, "Port={port}",
        "IdentityFile={root}/client_key", "UserKnownHostsFile={root}/known_hosts", IdentitiesOnly=yes]
"#,
        bin = common::BIN,
        root = root.display(),
    );
    let config = test_config(free_port(), free_port(), &extra);
    let daemon = Daemon::start_in(dir, &config);
    let wait_plan = |what: &str, cond: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, plan) = daemon.get("/plan");
            if cond(&plan) {
                return plan;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {plan}\n{}",
                daemon.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let out = wait_plan("peer out of the plan", &|p| {
        p["nodes"]["peer"]["state"] == "out"
    });
    assert!(
        out["nodes"]["peer"]["back_in_s"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    // The plan made after it went out gives it nothing.
    let replanned = wait_plan("a plan without peer", &|p| {
        p["nodes"]["peer"]["state"] == "out"
            && p["plan"]["allocation"]
                .as_object()
                .is_some_and(|a| a.values().all(|nodes| nodes.get("peer").is_none()))
    });
    assert_eq!(replanned["plan"]["total_games"], 0, "{replanned}");
    let (_, status) = daemon.get("/status");
    assert_eq!(
        status["scheduler"]["nodes"]["peer"]["state"], "out",
        "{status}"
    );
    // One warning for the node, not a dead letter per job.
    let (_, letters) = daemon.get("/dead-letters");
    assert_eq!(letters["total"], 0, "{letters}");
    let logs = daemon.logs();
    let warnings = logs
        .lines()
        .filter(|l| l.contains("node out of the plan after failed jobs"))
        .count();
    assert_eq!(warnings, 1, "{logs}");
    // The peer comes up: after its out period it is tried again, and the first success brings it back.
    let _sshd = common::sshd::start_sshd_on(&root, port);
    let back = wait_plan("peer back", &|p| p["nodes"]["peer"]["state"] == "available");
    assert_eq!(back["nodes"]["peer"]["outages"], 0, "{back}");
    let (_, jobs) = daemon.get("/jobs");
    let peer_ok = jobs["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["node"] == "peer" && j["status"]["status"] == "succeeded");
    assert!(peer_ok, "{jobs}");
    let planned = wait_plan("peer planned again", &|p| {
        p["plan"]["allocation"]
            .as_object()
            .is_some_and(|a| a.values().any(|nodes| nodes.get("peer").is_some()))
    });
    assert!(planned["plan"]["total_games"].as_u64().unwrap() > 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
