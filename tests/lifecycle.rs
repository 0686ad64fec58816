//! Black-box drills of the runtime through the real binary: panic drill, escalation, kill -9 durability of dead
//! letters, SIGTERM shutdown time, bad config. Every wait has a deadline; everything is on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::{find_node, free_port, test_config, Daemon};

#[test]
fn panic_drill_restarts_the_actor_keeps_its_queue_and_dead_letters_the_in_flight_message() {
    let daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    let before = daemon.get("/status").1["actors"]["resources"]["handled"]
        .as_u64()
        .unwrap();
    let (code, _) = daemon.post("/debug/fail/resources?mode=panic");
    assert_eq!(code, 202);
    // Queue 50 pings right behind the panicking one.
    let (code, body) = daemon.post("/debug/ping/resources?count=50");
    assert_eq!(code, 202, "{body}");
    let status = daemon.wait_status(
        "50 queued pings handled after the restart",
        Duration::from_secs(10),
        |s| s["actors"]["resources"]["handled"].as_u64().unwrap_or(0) >= before + 50,
    );
    let node = find_node(&status["tree"], "resources").unwrap();
    assert_eq!(node["restarts"], 1, "{node}");
    assert_eq!(node["state"], "running");
    assert!(node["last_failure"]["reason"]
        .as_str()
        .unwrap()
        .contains("fault drill: panic"));

    let (_, letters) = daemon.get("/dead-letters?limit=10");
    let list = letters["dead_letters"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{letters}");
    assert_eq!(list[0]["actor"], "resources");
    assert_eq!(list[0]["msg"], "Ping");
    assert_eq!(list[0]["status"], "pending");
    assert!(list[0]["correlation_id"].as_str().unwrap().len() == 16);
    assert!(
        daemon.logs().contains("\"correlation_id\""),
        "JSON logs carry the message span"
    );
}

#[test]
fn error_drill_is_a_dead_letter_and_no_restart() {
    let daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    assert_eq!(daemon.post("/debug/fail/sync?mode=error").0, 202);
    daemon.wait_status("error recorded", Duration::from_secs(5), |s| {
        s["actors"]["sync"]["failed"] == 1
    });
    let (_, status) = daemon.get("/status");
    assert_eq!(find_node(&status["tree"], "sync").unwrap()["restarts"], 0);
    let (_, letters) = daemon.get("/dead-letters");
    assert_eq!(letters["total"], 1);
}

#[test]
fn hang_drill_is_caught_by_the_watchdog() {
    let daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    assert_eq!(daemon.post("/debug/fail/scheduler?mode=hang").0, 202);
    let status = daemon.wait_status("watchdog restart", Duration::from_secs(10), |s| {
        find_node(&s["tree"], "scheduler")
            .is_some_and(|n| n["restarts"] == 1 && n["state"] == "running")
    });
    let node = find_node(&status["tree"], "scheduler").unwrap();
    assert!(
        node["last_failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("watchdog"),
        "{node}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, letters) = daemon.get("/dead-letters");
        if letters["total"] == 1 {
            assert!(letters["dead_letters"][0]["error"]
                .as_str()
                .unwrap()
                .contains("stopped making progress"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hung message not dead-lettered: {letters}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn debug_endpoints_are_404_unless_enabled() {
    let config = test_config(free_port(), free_port(), "")
        .replace("debug_endpoints: true", "debug_endpoints: false");
    let daemon = Daemon::start(&config);
    assert_eq!(daemon.post("/debug/fail/sync?mode=panic").0, 404);
    let (_, status) = daemon.get("/status");
    assert_eq!(find_node(&status["tree"], "sync").unwrap()["restarts"], 0);
}

#[test]
fn repeated_panics_escalate_and_the_daemon_exits_1() {
    let mut daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    for _ in 0..4 {
        // max_restarts is 3 in the test config: the 4th restart in the window makes the root give up.
        let (code, _) = daemon.post("/debug/fail/resources?mode=panic");
        if code != 202 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .expect("daemon exits after the root gives up");
    assert_eq!(status.code(), Some(1), "log:\n{}", daemon.logs());
    assert!(daemon.logs().contains("restart intensity exceeded"));
}

#[test]
fn dead_letters_survive_kill_9() {
    let api = free_port();
    let config = test_config(api, free_port(), "");
    let mut daemon = Daemon::start(&config);
    assert_eq!(daemon.post("/debug/fail/sync?mode=error").0, 202);
    daemon.wait_status("letter stored", Duration::from_secs(5), |s| {
        s["actors"]["dead_letters"]["handled"].as_u64().unwrap_or(0) >= 1
    });
    let (_, before) = daemon.get("/dead-letters");
    assert_eq!(before["total"], 1);
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(Duration::from_secs(5)).expect("killed");

    // The CLI reads the store directly while no daemon runs.
    let out = common::run_with_timeout(
        {
            let mut c = common::command(daemon.path());
            c.args(["dead-letters", "list"]);
            c
        },
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("sync") && listing.contains("Ping"),
        "{listing}"
    );

    // And a restarted daemon lists it too.
    let dir = std::mem::replace(&mut daemon.dir, tempfile::tempdir().unwrap());
    drop(daemon);
    let restarted = Daemon::start_in(dir, &config);
    let (_, after) = restarted.get("/dead-letters");
    assert_eq!(after["total"], 1, "{after}");
    assert_eq!(
        after["dead_letters"][0]["id"],
        before["dead_letters"][0]["id"]
    );
}

#[test]
fn sigterm_stops_cleanly_within_the_shutdown_time() {
    let mut daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    let started = Instant::now();
    daemon.signal(libc::SIGTERM);
    // 5 children x shutdown_timeout 3 s is the bound; idle actors stop at once.
    let status = daemon
        .wait_exit(Duration::from_secs(16))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.logs());
    let logs = daemon.logs();
    assert!(logs.contains("shutdown complete"), "{logs}");
    // Reverse start order: resources stops before dead_letters.
    let resources = logs
        .find("\"child\":\"resources\"")
        .expect("resources stop logged");
    let dead_letters = logs
        .rfind("\"child\":\"dead_letters\"")
        .expect("dead_letters stop logged");
    assert!(resources < dead_letters);
    eprintln!("SIGTERM to exit: {:?}", started.elapsed());
}

#[test]
fn token_guards_non_get_requests() {
    let config = test_config(free_port(), free_port(), "").replace(
        "debug_endpoints: true",
        "debug_endpoints: true\n  token: s3cret",
    );
    let daemon = Daemon::start(&config);
    assert_eq!(daemon.post("/dead-letters/purge").0, 401);
    let (code, _) = common::request(
        "POST",
        &format!("{}/dead-letters/purge", daemon.api),
        Some("wrong"),
    )
    .unwrap();
    assert_eq!(code, 401);
    let (code, body) = common::request(
        "POST",
        &format!("{}/dead-letters/purge", daemon.api),
        Some("s3cret"),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(daemon.get("/health").0, 200, "GET needs no token");
}

#[test]
fn metrics_are_valid_prometheus_text() {
    let daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    assert_eq!(daemon.post("/debug/fail/sync?mode=error").0, 202);
    daemon.wait_status("failure counted", Duration::from_secs(5), |s| {
        s["actors"]["sync"]["failed"] == 1
    });
    // The work itself is there too, once the scheduler has started its first jobs.
    let fetch = || {
        ureq::get(&format!("{}/metrics", daemon.api))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut body = fetch();
    while !body.contains("coordinator_jobs_running{node=\"test-node\"}") {
        assert!(
            std::time::Instant::now() < deadline,
            "coordinator_jobs_running never appeared:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
        body = fetch();
    }
    for metric in [
        "coordinator_messages_handled_total",
        "coordinator_messages_failed_total{actor=\"sync\",msg=\"Ping\"} 1",
        "coordinator_dead_letters_total",
        "coordinator_dead_letters_pending",
    ] {
        assert!(body.contains(metric), "{metric} missing:\n{body}");
    }
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        panic!("promtool is missing: install Debian's prometheus package (.ci/test does, as root)");
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits non-zero for lint problems too; only real parse errors fail this test.
    assert!(
        !report.contains("error while linting") && !report.to_lowercase().contains("parse error"),
        "{report}"
    );
}

#[test]
fn replay_through_the_cli_recovers_a_dead_letter_and_status_prints_the_tree() {
    let daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    assert_eq!(daemon.post("/debug/fail/resources?mode=panic").0, 202);
    daemon.wait_status("letter stored", Duration::from_secs(5), |s| {
        s["actors"]["dead_letters"]["handled"].as_u64().unwrap_or(0) >= 1
    });
    let (_, letters) = daemon.get("/dead-letters");
    let id = letters["dead_letters"][0]["id"].as_i64().unwrap();
    let cli = |args: &[&str]| {
        let mut c = common::command(daemon.path());
        c.args(args).args(["--api", &daemon.api]);
        common::run_with_timeout(c, Duration::from_secs(20))
    };
    let out = cli(&["dead-letters", "replay", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, letter) = daemon.get(&format!("/dead-letters/{id}"));
    assert_eq!(letter["status"], "recovered", "{letter}");
    assert_eq!(
        letter["retries"], 0,
        "a successful replay does not count as a retry: {letter}"
    );

    let out = cli(&["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "root",
        "dead_letters",
        "data_server_monitor",
        "sync",
        "scheduler",
        "resources",
    ] {
        assert!(text.contains(name), "{name} missing from status:\n{text}");
    }
    // The tree is a table: the panicked actor's row shows one restart and the drill as its last failure.
    let row = text
        .lines()
        .find(|l| l.contains("resources") && l.contains("fault drill: panic"))
        .unwrap_or_else(|| panic!("no resources row with its failure:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(4), Some(&"1"), "restarts column: {row}");

    let (code, body) = daemon.get("/dead-letters/999999");
    assert_eq!(code, 404, "{body}");
    let (code, body) = daemon.get("/dead-letters?limit=abc");
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    let (code, _) = daemon.post("/dead-letters/purge?older_than=soon");
    assert_eq!(code, 400);
}
