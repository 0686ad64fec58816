//! The data server as the daemon runs it: the monitor starts it, replaces it after `kill -9`, and no server
//! outlives the daemon, even when the daemon itself is killed with `kill -9`.

mod common;

use std::time::{Duration, Instant};

use common::{data_server_pid, free_port, test_config, Daemon};

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); check /proc state as well.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = state
        .split(") ")
        .nth(1)
        .is_some_and(|rest| !rest.starts_with('Z'));
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    exists && running
}

#[test]
fn kill_9_of_the_data_server_is_replaced_within_2_seconds() {
    let data_port = free_port();
    let daemon = Daemon::start(&test_config(free_port(), data_port, ""));
    let pid = data_server_pid(&daemon);
    let health = format!("http://127.0.0.1:{data_port}/health");
    assert_eq!(common::request("GET", &health, None).unwrap().0, 200);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let killed = Instant::now();
    loop {
        if let Ok((200, _)) = common::request("GET", &health, None) {
            let (_, status) = daemon.get("/status");
            let new_pid = status["data_server"]["pid"].as_i64().unwrap_or(0) as i32;
            if new_pid != 0 && new_pid != pid {
                break;
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "no new data server within 2 s; log:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("replaced in {:?}", killed.elapsed());
    let (_, status) = daemon.get("/status");
    assert!(
        status["data_server"]["restarts"].as_u64().unwrap() >= 1,
        "{status}"
    );
    let metrics = ureq::get(&format!("{}/metrics", daemon.api))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("coordinator_data_server_up 1"),
        "{metrics}"
    );
}

#[test]
fn no_data_server_outlives_the_daemon_even_after_kill_9() {
    let mut daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    let pid = data_server_pid(&daemon);
    assert!(alive(pid));
    daemon.signal(libc::SIGKILL);
    daemon
        .wait_exit(Duration::from_secs(5))
        .expect("daemon killed");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "data server {pid} survived kill -9 of the daemon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_the_data_server_too() {
    let mut daemon = Daemon::start(&test_config(free_port(), free_port(), ""));
    let pid = data_server_pid(&daemon);
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .expect("daemon exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        !alive(pid),
        "data server still running after a clean shutdown"
    );
}

#[test]
fn a_port_in_use_is_a_clear_error_not_a_crash_loop() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap().port();
    let daemon = Daemon::start(&test_config(free_port(), taken, ""));
    let status = daemon.wait_status("bind error reported", Duration::from_secs(15), |s| {
        s["data_server"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&taken.to_string()))
    });
    let error = status["data_server"]["last_error"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(error.contains("in use"), "{error}");
    let monitor = common::find_node(&status["tree"], "data_server_monitor").unwrap();
    assert_eq!(
        monitor["restarts"], 0,
        "the actor itself must not crash: {monitor}"
    );
    drop(blocker);
}
