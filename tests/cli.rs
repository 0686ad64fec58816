//! Black-box tests of the commands: bad config and flags exit 2 naming the problem; `plan` input/output;
//! `data-server` standalone; `selfplay-demo`. Every wait has a deadline.

mod common;

use std::time::Duration;

use common::{command, run_with_timeout};

const T: Duration = Duration::from_secs(30);

fn run_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut c = command(dir);
    c.args(args);
    run_with_timeout(c, T)
}

#[test]
fn malformed_yaml_exits_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "node:\n  name: a\napi:\n  bind: [unclosed\n",
    )
    .unwrap();
    for args in [&["check-config"][..], &["run"][..]] {
        let out = run_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("config.yaml:"), "{err}");
        assert!(
            err.contains(":4:") || err.contains(":5:"),
            "names the line: {err}"
        );
    }
}

#[test]
fn every_error_is_reported_with_field_and_expected_form() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "node:\n  name: a\nsupervision:\n  within: 5x\napi:\n  bindd: 127.0.0.1:1\nbogus: 1\nsupervision_extra: 2\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("supervision.within"), "{err}");
    assert!(err.contains("config.yaml:4:"), "{err}");
    assert!(err.contains("bindd"), "{err}");
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn check_config_prints_the_resolved_config_and_env_warnings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"),
        dir.path().join("config.yaml"),
    )
    .unwrap();
    let mut c = command(dir.path());
    c.args(["check-config"])
        .env("COORDINATOR_API__DEBUG_ENDPOINTS", "yes")
        .env("COORDINATOR_SUPERVISION__MAX_RESTARTS", "lots");
    let out = run_with_timeout(c, T);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        yaml.contains("debug_endpoints: true"),
        "bool word applied: {yaml}"
    );
    assert!(
        yaml.contains("max_restarts: 5"),
        "bad value keeps the default"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("COORDINATOR_SUPERVISION__MAX_RESTARTS") && err.contains("lots"),
        "{err}"
    );
}

#[test]
fn the_default_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"),
        dir.path().join("config.yaml"),
    )
    .unwrap();
    let out = run_in(dir.path(), &["check-config"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_node_flag_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "cluster:\n  nodes:\n    - name: a\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["run", "--node", "zz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zz"));
}

#[test]
fn bad_flag_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["run", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn plan_prints_the_contract_json() {
    let dir = tempfile::tempdir().unwrap();
    let state = r#"{"games_per_config": 500, "node_cap_scope": "per_config",
      "configs": [{"config": "hex8_2p", "game_count": 20000, "score": 0.2},
                  {"config": "square8_2p", "game_count": 9000, "score": -1.0},
                  {"config": "hexagonal_3p", "game_count": 6000, "score": 0.1},
                  {"config": "square19_4p", "game_count": 400, "score": 3.0}],
      "nodes": [{"name": "gh200-1", "gpu": "GH200", "load": 0.0},
                {"name": "h100-a", "gpu": "H100", "load": 0.2},
                {"name": "vast-4090", "gpu": "RTX_4090", "load": 0.5, "ephemeral": true}]}"#;
    std::fs::write(dir.path().join("state.json"), state).unwrap();
    let out = run_in(dir.path(), &["plan", "--state", "state.json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["total_games"], 2350, "{plan}");
    assert!((plan["estimated_cost_usd"].as_f64().unwrap() - 1.94).abs() < 0.01);
    assert_eq!(plan["allocation"]["hex8_2p"]["gh200-1"], 195);
    assert_eq!(plan["priorities"][0]["config"], "square19_4p");
    for p in plan["priorities"].as_array().unwrap() {
        for key in ["config", "score", "starvation", "budget", "target_games"] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
    }
}

#[test]
fn plan_rejects_bad_input_with_the_json_path() {
    let dir = tempfile::tempdir().unwrap();
    for (state, needle) in [
        (
            r#"{"configs": [{"config": "hex8_2p"}, {"config": "hexx_2p"}]}"#,
            "configs[1].config",
        ),
        (
            r#"{"configs": [{"config": "hex8_5p"}]}"#,
            "configs[0].config",
        ),
        (
            r#"{"configs": [{"config": "hex8_2p", "game_count": -3}]}"#,
            "configs[0].game_count",
        ),
        (r#"{"configs": [], "nodez": []}"#, "nodez"),
        (r#"{"configs": [{"config": "hex_2p"}]}"#, "hex"),
        ("not json", "line"),
    ] {
        std::fs::write(dir.path().join("state.json"), state).unwrap();
        let out = run_in(dir.path(), &["plan", "--state", "state.json"]);
        assert_eq!(out.status.code(), Some(2), "{state}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{state}: {err}");
    }
}

#[test]
fn plan_reads_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.args(["plan", "--state", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"configs":[{"config":"sq8_2p"}],"nodes":[{"name":"n","gpu":"H100"}]}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plan["priorities"][0]["config"], "square8_2p",
        "alias sq8 parsed by the one board parser"
    );
}

#[test]
fn selfplay_demo_writes_games_atomically_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(
        dir.path(),
        &[
            "selfplay-demo",
            "--board",
            "hex8",
            "--players",
            "3",
            "--games",
            "7",
            "--out",
            "g.db",
            "--seed",
            "5",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert_eq!(report["games_written"], 7);
    assert!(dir.path().join("g.db").exists());
    let bad = run_in(
        dir.path(),
        &[
            "selfplay-demo",
            "--board",
            "hex",
            "--players",
            "2",
            "--games",
            "1",
            "--out",
            "h.db",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("hexagonal"),
        "bare hex names both meanings"
    );
    assert!(!dir.path().join("h.db").exists());
}

#[test]
fn data_server_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("games")).unwrap();
    std::fs::write(dir.path().join("games/a.db"), b"0123456789").unwrap();
    let port = common::free_port();
    let mut c = command(dir.path());
    c.args([
        "data-server",
        "--root",
        ".",
        "--bind",
        &format!("127.0.0.1:{port}"),
        // a.db was written just now; a settle of 0 lists it at once.
        "--settle",
        "0s",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + T;
    while common::request("GET", &format!("{base}/health"), None).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "data server never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, inv) = common::request("GET", &format!("{base}/inventory.json"), None).unwrap();
    assert_eq!(code, 200);
    assert_eq!(inv["files"][0]["path"], "a.db");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "data server ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn configuration_doc_lists_every_key_with_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["config-reference"]);
    assert_eq!(out.status.code(), Some(0));
    let generated = String::from_utf8(out.stdout).unwrap();
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let start = doc
        .find("<!-- generated:start -->\n")
        .expect("start marker")
        + "<!-- generated:start -->\n".len();
    let end = doc.find("<!-- generated:end -->").expect("end marker");
    assert_eq!(
        &doc[start..end],
        generated,
        "docs/configuration.md is stale: regenerate its generated block with `coordinator config-reference`"
    );
    for key in [
        "supervision.max_restarts",
        "dead_letters.path",
        "api.token",
        "data_server.health_interval",
        "scheduler.jobs.command",
    ] {
        assert!(generated.contains(&format!("`{key}`")), "{key}");
    }
}

#[test]
fn api_address_in_use_exits_1_naming_it() {
    // The address is taken by another process: an environment problem, not a config one (check-config accepts
    // the file), so exit 1 like other runtime failures, after the tree has stopped.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_config(port, common::free_port(), "");
    std::fs::write(dir.path().join("config.yaml"), text).unwrap();
    assert_eq!(run_in(dir.path(), &["check-config"]).status.code(), Some(0));
    let out = run_in(dir.path(), &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: control API cannot listen on 127.0.0.1:")
            && last.contains("set api.bind"),
        "{err}"
    );
}

#[test]
fn help_lists_config_reference_and_help_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("config-reference"));
}

#[test]
fn a_log_level_that_is_not_a_level_is_bad_input_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::test_config(common::free_port(), common::free_port(), "");
    std::fs::write(dir.path().join("config.yaml"), text).unwrap();
    for args in [
        &["run", "--log-level", "loud"][..],
        &["status", "--log-level", "loud"][..],
        &["data-server", "--root", ".", "--log-level", "loud"][..],
    ] {
        let out = run_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error: --log-level") && err.contains("`loud`"),
            "{args:?}: {err}"
        );
    }
}
