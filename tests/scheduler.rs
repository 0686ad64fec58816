//! The daemon on the repository's config.yaml (ports moved to free ones) runs demo selfplay jobs to completion,
//! and the game counts in `/plan` move.

mod common;

use std::time::Duration;

use common::{free_port, Daemon};

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
