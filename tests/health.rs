//! `/health` tells the truth (issue 13 item 5): it turns degraded and failing under the conditions an operator can
//! drive from outside, and back to ok. Every wait has a deadline; everything is on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::{data_server_pid, find_node, free_port, test_config, Daemon};
use serde_json::Value;

/// Polls `/health` until `cond(code, body)` holds or `timeout` passes.
fn wait_health(
    daemon: &Daemon,
    what: &str,
    timeout: Duration,
    cond: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let deadline = Instant::now() + timeout;
    loop {
        let (code, body) = daemon.get("/health");
        if cond(code, &body) {
            return (code, body);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last /health {code}: {body}\nlog:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn health_is_ok_with_one_check_per_child_and_no_placeholder_is_left() {
    let daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    let (code, body) = wait_health(&daemon, "ok", Duration::from_secs(15), |_, b| {
        b["status"] == "ok"
    });
    assert_eq!(code, 200);
    for name in [
        "tree.root",
        "tree.dead_letters",
        "tree.data_server_monitor",
        "tree.sync",
        "tree.scheduler",
        "tree.resources",
        "data_server",
    ] {
        let check = &body["checks"][name];
        assert_eq!(check["status"], "ok", "{name}: {body}");
        assert!(check["detail"].is_string(), "{name}: {body}");
    }
    // Every actor of the tree is built now: none is a placeholder, in /health or in /status.
    for name in ["tree.sync", "tree.resources"] {
        let detail = body["checks"][name]["detail"].as_str().unwrap();
        assert!(!detail.contains("PLACEHOLDER"), "{name}: {detail}");
    }
    let (_, status) = daemon.get("/status");
    for name in ["sync", "scheduler", "resources"] {
        assert_eq!(
            find_node(&status["tree"], name).unwrap()["kind"],
            "worker",
            "{name}"
        );
    }
}

#[test]
fn a_data_server_circuit_opened_by_kill_9_makes_health_failing_until_it_comes_back() {
    let extra = "  max_restarts: 1\n  restart_window: 60s\n  restart_backoff_initial: 100ms\n  circuit_recovery: 4s\n";
    let config = test_config(free_port(), free_port(), "").replace(
        "data_server:\n  bind:",
        &format!("data_server:\n{extra}  bind:"),
    );
    let daemon = Daemon::start(&config);
    wait_health(&daemon, "ok", Duration::from_secs(15), |_, b| {
        b["status"] == "ok"
    });

    // First kill: one restart is allowed; /health is failing while it is down, degraded or ok as it comes back.
    let first = data_server_pid(&daemon);
    unsafe { libc::kill(first, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = loop {
        let (_, status) = daemon.get("/status");
        let pid = status["data_server"]["pid"].as_i64().unwrap_or(0) as i32;
        if status["data_server"]["state"] == "up" && pid != first && pid != 0 {
            break pid;
        }
        assert!(Instant::now() < deadline, "no second server: {status}");
        std::thread::sleep(Duration::from_millis(25));
    };

    // Second kill within the window: the circuit opens and the node is failing (503) with the reason.
    unsafe { libc::kill(second, libc::SIGKILL) };
    let (code, body) = wait_health(
        &daemon,
        "failing with the circuit open",
        Duration::from_secs(10),
        |_, b| {
            b["checks"]["data_server"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("circuit open"))
        },
    );
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "failing");
    assert_eq!(body["checks"]["data_server"]["status"], "failing");
    assert_eq!(
        body["checks"]["tree.data_server_monitor"]["status"], "ok",
        "the monitor actor itself is fine: {body}"
    );

    // After the open period one attempt brings it back: ok again.
    let (code, body) = wait_health(&daemon, "ok again", Duration::from_secs(20), |_, b| {
        b["status"] == "ok"
    });
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["checks"]["data_server"]["status"], "ok");
}

#[test]
fn a_child_backing_off_after_a_panic_makes_health_degraded_then_ok() {
    let config = test_config(free_port(), free_port(), "")
        .replace("backoff_initial: 10ms", "backoff_initial: 3s")
        .replace("backoff_max: 200ms", "backoff_max: 3s");
    let daemon = Daemon::start(&config);
    wait_health(&daemon, "ok", Duration::from_secs(15), |_, b| {
        b["status"] == "ok"
    });
    assert_eq!(daemon.post("/debug/fail/resources?mode=panic").0, 202);
    // The child goes through `restarting` (degraded too) to `backing_off` for the 3 s backoff: wait for the latter.
    let (code, body) = wait_health(&daemon, "degraded", Duration::from_secs(5), |_, b| {
        b["status"] == "degraded"
            && b["checks"]["tree.resources"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("backing off"))
    });
    assert_eq!(code, 200, "degraded still answers 200: {body}");
    let check = &body["checks"]["tree.resources"];
    assert_eq!(check["status"], "degraded", "{body}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains("backing off") && detail.contains("fault drill: panic"),
        "{detail}"
    );
    let (code, body) = wait_health(
        &daemon,
        "ok after the restart",
        Duration::from_secs(15),
        |_, b| b["status"] == "ok",
    );
    assert_eq!(code, 200);
    assert!(
        body["checks"]["tree.resources"]["detail"]
            .as_str()
            .unwrap()
            .contains("restarted once"),
        "{body}"
    );
}

#[test]
fn a_block_drill_is_recovered_on_a_fresh_thread_with_its_queue_and_counted() {
    let mut daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    let before = daemon.get("/status").1["actors"]["resources"]["handled"]
        .as_u64()
        .unwrap();
    assert_eq!(daemon.post("/debug/fail/resources?mode=block").0, 202);
    // Queued behind the blocked handler; the fresh instance must handle every one.
    let (code, body) = daemon.post("/debug/ping/resources?count=50");
    assert_eq!(code, 202, "{body}");
    let blocked = Instant::now();
    let status = daemon.wait_status(
        "the 50 queued pings handled by the fresh instance",
        Duration::from_secs(15),
        |s| {
            s["actors"]["resources"]["handled"].as_u64().unwrap_or(0) >= before + 50
                && find_node(&s["tree"], "resources").is_some_and(|n| n["state"] == "running")
        },
    );
    eprintln!("block drill recovered in {:?}", blocked.elapsed());
    let node = find_node(&status["tree"], "resources").unwrap();
    assert_eq!(node["abandoned_threads"], 1, "{node}");
    assert_eq!(node["restarts"], 1, "{node}");
    assert!(
        node["last_failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("blocked its thread"),
        "{node}"
    );
    let metrics = daemon.metrics();
    assert!(
        metrics.contains("coordinator_abandoned_threads_total{actor=\"resources\"} 1"),
        "{metrics}"
    );
    let (code, health) = daemon.get("/health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["checks"]["tree.resources"]["status"], "degraded");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, letters) = daemon.get("/dead-letters");
        let found = letters["dead_letters"].as_array().is_some_and(|list| {
            list.iter().any(|l| {
                l["actor"] == "resources"
                    && l["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("fault drill: block"))
            })
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "blocked message not stored: {letters}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The blocked thread does not hold up a clean shutdown.
    daemon.signal(libc::SIGTERM);
    let exit = daemon
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert_eq!(exit.code(), Some(0), "log:\n{}", daemon.logs());
}
