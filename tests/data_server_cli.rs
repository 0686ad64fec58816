//! The standalone data server as an operator starts it (issue 11 item 4): it says at info where it listens and
//! what it serves, refuses a category that leaves `--root`, and refuses a missing root instead of creating it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{assert_code, command, free_port, run_with_timeout};

const T: Duration = Duration::from_secs(30);

#[test]
fn a_category_leaving_the_root_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("root")).unwrap();
    for category in ["games=../escape", "games=sub/../../escape"] {
        let mut c = command(dir.path());
        c.args(["data-server", "--root", "root", "--bind", "127.0.0.1:0"])
            .args(["--category", category]);
        let out = run_with_timeout(c, T);
        assert_code(&out, 2, category);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error: --category") && err.contains("must not leave the root"),
            "{category}: {err}"
        );
        assert!(!dir.path().join("escape").exists(), "{category}");
    }
}

#[test]
fn a_missing_root_is_refused_by_name_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.args([
        "data-server",
        "--root",
        "no-such-root",
        "--bind",
        "127.0.0.1:0",
    ]);
    let out = run_with_timeout(c, T);
    assert_code(&out, 2, "missing root");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: --root: no-such-root: no such directory"),
        "{err}"
    );
    assert!(!dir.path().join("no-such-root").exists());
}

#[test]
fn it_says_where_it_listens_and_what_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("root")).unwrap();
    let port = free_port();
    let mut c = command(dir.path());
    c.args(["data-server", "--root", "root", "--log-format", "json"])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(["--category", "games=games", "--category", "models=m"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let seen = json_lines(child.stderr.take().unwrap());
    let deadline = Instant::now() + T;
    let (mut starting, mut listening) = (None, None);
    while starting.is_none() || listening.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(value) = seen.recv_timeout(left) else {
            let _ = child.kill();
            panic!("no start lines within {T:?}: starting={starting:?} listening={listening:?}");
        };
        match value["fields"]["message"].as_str() {
            Some("data server starting") => starting = Some(value),
            Some("data server listening") => listening = Some(value),
            _ => {}
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let (starting, listening) = (starting.unwrap(), listening.unwrap());
    assert_eq!(starting["level"], "INFO");
    let categories = starting["fields"]["categories"].as_str().unwrap();
    assert!(
        categories.starts_with("games=")
            && categories.contains("root/games")
            && categories.contains("models="),
        "{categories}"
    );
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["fields"]["addr"], format!("127.0.0.1:{port}"));
}

/// Reads `stderr` lines as JSON into a channel.
fn json_lines(stderr: std::process::ChildStderr) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
            if lines.send(value).is_err() {
                break;
            }
        }
    });
    seen
}

#[test]
fn the_daemon_relays_the_data_servers_lines_at_their_own_level() {
    // The data server's port is taken: it logs where it starts (info) and fails with `error: ...` (error).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let data_port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_config(free_port(), data_port, "");
    std::fs::write(dir.path().join("config.yaml"), text).unwrap();
    let mut child = command(dir.path())
        .args(["run", "--config", "config.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = json_lines(child.stderr.take().unwrap());
    let deadline = Instant::now() + T;
    let (mut info, mut error) = (None, None);
    while info.is_none() || error.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = seen.recv_timeout(left) else {
            break;
        };
        if line["target"] != "data_server" {
            continue;
        }
        let message = line["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if message.contains("data server starting") {
            info = Some(line);
        } else if message.starts_with("error: ") && message.contains("already in use") {
            error = Some(line);
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let info = info.expect("the server's info line relayed");
    let error = error.expect("the server's error line relayed");
    assert_eq!(info["level"], "INFO", "{info}");
    assert_eq!(error["level"], "ERROR", "{error}");
    let message = info["fields"]["message"].as_str().unwrap();
    assert!(
        !message.starts_with("20"),
        "the relayed line drops the child's timestamp and level: {message}"
    );
}
