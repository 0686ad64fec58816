//! Black-box tests of issue 11 item 1: `check-config` catches what `run` would reject, all at once, each error at
//! its own line and column; what `check-config` accepts, `run` starts; `--strict` fails on ignored overrides.

mod common;

use std::time::Duration;

use common::{assert_code, command, free_port, run_with_timeout, test_config, Daemon};

const T: Duration = Duration::from_secs(30);

fn in_dir(config: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let mut c = command(dir.path());
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run_with_timeout(c, T)
}

/// Six different problems, one per line of interest: a parse error, a log filter, a cross-section name, a
/// cross-section address, a range and a negative weight.
const SIX: &str = "\
node:
  name: ghost
cluster:
  nodes:
    - name: a
    - name: b
supervision:
  within: 5x
api:
  bind: 127.0.0.1:19100
logging:
  level: loud
data_server:
  bind: 127.0.0.1:19100
  workers: 0
scheduler:
  policy:
    priority:
      weights:
        staleness: -0.5
";

#[test]
fn six_errors_are_all_reported_each_at_its_own_line_and_column() {
    let expected = [
        "config.yaml:2:3: node.name:",
        "config.yaml:8:11: supervision.within: invalid duration",
        "config.yaml:12:3: logging.level:",
        "config.yaml:14:3: data_server.bind: 127.0.0.1:19100 is also api.bind",
        "config.yaml:15:3: data_server.workers: must be at least 1",
        "config.yaml:20:9: scheduler.policy.priority.weights.staleness:",
    ];
    for args in [&["check-config"][..], &["run"][..]] {
        let out = in_dir(SIX, args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let reported: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("config.yaml:"))
            .collect();
        assert_eq!(reported.len(), 6, "{args:?}: {err}");
        for (line, prefix) in reported.iter().zip(expected) {
            assert!(
                line.starts_with(prefix),
                "{args:?}: {line:?} should start with {prefix:?}"
            );
        }
    }
}

#[test]
fn configs_check_config_accepts_also_start_under_run() {
    type Edit = fn(String) -> String;
    let cases: [(&str, Edit); 6] = [
        ("the test defaults", |text| text),
        ("a cluster naming this node", |text| {
            text + "cluster:\n  nodes:\n    - name: other\n    - name: test-node\n"
        }),
        ("a directive list as log level", |text| {
            text.replace("  level: info\n", "  level: actors=debug,info\n")
        }),
        ("no data server, so the API may take its port", |text| {
            let data = text.split("data_server:\n  bind: ").nth(1).unwrap();
            let data = data.lines().next().unwrap().to_string();
            let api = text
                .split("api:\n  bind: ")
                .nth(1)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_string();
            text.replace(&api, &data)
                .replace("  root: data\n", "  root: data\n  enabled: false\n")
        }),
        ("a token and a zero weight", |text| {
            text.replace(
                "  debug_endpoints: true\n",
                "  debug_endpoints: true\n  token: s3cret\n",
            ) + "scheduler:\n  policy:\n    priority:\n      weights:\n        voi: 0\n"
        }),
        ("no scheduler, sync or resources", |text| {
            text + "scheduler:\n  enabled: false\nsync:\n  enabled: false\nresources:\n  enabled: false\n"
        }),
    ];
    for (name, edit) in cases {
        let text = edit(test_config(free_port(), free_port(), ""));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), &text).unwrap();
        let mut c = command(dir.path());
        c.args(["check-config"]);
        let out = run_with_timeout(c, T);
        assert_code(&out, 0, format!("{name}: check-config"));
        let mut daemon = Daemon::start_in(dir, &text);
        daemon.signal(libc::SIGTERM);
        let status = daemon
            .wait_exit(T)
            .unwrap_or_else(|| panic!("{name}: no exit"));
        assert_eq!(status.code(), Some(0), "{name}: {}", daemon.logs());
    }
}

#[test]
fn strict_fails_on_an_ignored_override_and_plain_check_does_not() {
    let text = test_config(free_port(), free_port(), "");
    let bad = [("COORDINATOR_SUPERVISION__MAX_RESTARTS", "lots")];
    let plain = in_dir(&text, &["check-config"], &bad);
    assert_eq!(plain.status.code(), Some(0));
    let strict = in_dir(&text, &["check-config", "--strict"], &bad);
    assert_eq!(strict.status.code(), Some(2));
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains("COORDINATOR_SUPERVISION__MAX_RESTARTS") && err.contains("--strict"),
        "{err}"
    );
    let good = [("COORDINATOR_SUPERVISION__MAX_RESTARTS", "7")];
    let clean = in_dir(&text, &["check-config", "--strict"], &good);
    assert_code(&clean, 0, "strict with a good override");
}

#[test]
fn node_outside_the_cluster_is_the_same_error_for_check_config_and_run() {
    let text = "cluster:\n  nodes:\n    - name: a\n";
    let out = in_dir(text, &["check-config", "--node", "zz"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node.name: \"zz\" is not in cluster.nodes (known: a)")
            && err.contains("--node"),
        "{err}"
    );
    let run = in_dir(text, &["run", "--node", "zz"], &[]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("node.name: \"zz\" is not in cluster.nodes")
    );
    let default_name = in_dir(text, &["check-config"], &[]);
    assert_eq!(
        default_name.status.code(),
        Some(2),
        "node.name defaults to local, not in the cluster"
    );
    let ok = in_dir(text, &["check-config", "--node", "a"], &[]);
    assert_code(&ok, 0, "--node a");
}

/// The example cluster file of docs/examples is valid for every node it lists, strictly (the docs tell operators
/// to start from it).
#[test]
fn the_example_cluster_file_checks_clean_for_every_node() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/cluster-3-nodes.yaml"
    );
    let text = std::fs::read_to_string(path).expect("docs/examples/cluster-3-nodes.yaml");
    let value: serde_yaml::Value = serde_yaml::from_str(&text).expect("the example is YAML");
    let names: Vec<String> = value["cluster"]["nodes"]
        .as_sequence()
        .expect("cluster.nodes")
        .iter()
        .filter_map(|n| n["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in &names {
        let out = in_dir(
            &text,
            &[
                "check-config",
                "--config",
                "config.yaml",
                "--strict",
                "--node",
                name,
            ],
            &[],
        );
        assert_code(&out, 0, format!("check-config --strict --node {name}"));
    }
}
