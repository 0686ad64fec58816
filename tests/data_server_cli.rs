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
    let stderr = child.stderr.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + T;
    let (mut starting, mut listening) = (None, None);
    while starting.is_none() || listening.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = seen.recv_timeout(left) else {
            let _ = child.kill();
            panic!("no start lines within {T:?}: starting={starting:?} listening={listening:?}");
        };
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
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
