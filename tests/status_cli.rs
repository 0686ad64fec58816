//! `coordinator status` and `dead-letters` as an operator and a script use them (issue 11, item 2): tables for
//! people, `--json` for scripts, a bare `host:port` for `--api`, and no panic when the reader goes away.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::{command, free_port, run_with_timeout, test_config, Daemon};

fn start() -> Daemon {
    Daemon::start(&test_config(free_port(), free_port(), ""))
}

#[test]
fn status_prints_tables_and_accepts_a_bare_host_port() {
    let daemon = start();
    let bare = daemon.api.trim_start_matches("http://").to_string();
    let mut cmd = command(daemon.path());
    cmd.args(["status", "--api", &bare]);
    let out = run_with_timeout(cmd, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("node test-node"), "{text}");
    assert!(text.contains("├─ dead_letters"), "{text}");
    assert!(text.contains("└─ resources"), "{text}");
    assert!(text.contains("\ndata server\n"), "{text}");
}

#[test]
fn status_json_is_one_document_with_the_sections() {
    let daemon = start();
    let mut cmd = command(daemon.path());
    cmd.args(["status", "--json", "--api", &daemon.api]);
    let out = run_with_timeout(cmd, Duration::from_secs(20));
    assert!(out.status.success());
    let value: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(value["node"], "test-node");
    assert!(value["tree"]["children"].is_array());
    assert!(value.get("jobs").is_some(), "jobs section: {value}");
}

#[test]
fn status_into_a_closed_pipe_exits_0() {
    let daemon = start();
    // The reader goes away before the report is written, as `| head -1` does once it has its line: the write
    // then fails with EPIPE (Rust ignores SIGPIPE), which used to panic with exit 101.
    let mut child = command(daemon.path())
        .args(["status", "--api", &daemon.api])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn status");
    drop(child.stdout.take().expect("stdout"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "status did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .ok();
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}

#[test]
fn dead_letters_list_json_is_machine_readable_also_without_a_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.yaml"),
        test_config(free_port(), free_port(), ""),
    )
    .unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["dead-letters", "list", "--json"]);
    let out = run_with_timeout(cmd, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["total"], 0);
    assert!(value["dead_letters"].as_array().is_some_and(Vec::is_empty));
}
