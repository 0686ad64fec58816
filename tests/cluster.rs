//! A real cluster on loopback (issue 12): `coordinator demo` starts one planner and two workers as real daemons;
//! the planner hands jobs to the workers' daemons, which run them and report back; `status` on each node says who
//! plans; Ctrl-C stops every node and leaves no process behind.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{command, request};

/// The `api_url` of every node in the demo's cluster file, in order (planner first).
fn api_urls(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("cluster.yaml")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("api_url: ").map(str::to_string))
        .collect()
}

/// POST `body` as JSON; the status and body text.
fn post_json(url: &str, body: &str) -> (u16, String) {
    let call = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(body);
    match call {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

fn json(url: &str) -> Option<serde_json::Value> {
    match request("GET", url, None) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// Processes whose working directory is under `dir` (the demo's daemons, data servers and jobs).
fn processes_under(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_planner_hands_jobs_to_worker_daemons_and_ctrl_c_stops_them_all() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let child = command(tmp.path())
        .args(["demo", "--nodes", "3", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let mut demo = Demo(child);

    // Every node answers /health.
    let deadline = Instant::now() + Duration::from_secs(60);
    let urls = loop {
        let urls = api_urls(&dir);
        if urls.len() == 3
            && urls.iter().all(|u| {
                matches!(
                    request("GET", &format!("{u}/health"), None),
                    Ok((200 | 503, _))
                )
            })
        {
            break urls;
        }
        assert!(Instant::now() < deadline, "demo nodes did not come up");
        assert!(demo.0.try_wait().unwrap().is_none(), "demo exited early");
        std::thread::sleep(Duration::from_millis(200));
    };

    // The planner's job table shows jobs succeeded on both workers; the workers say they received them.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let jobs = json(&format!("{}/jobs", urls[0])).unwrap_or_default();
        let done = |node: &str| jobs["nodes"][node]["succeeded"].as_u64().unwrap_or(0);
        if done("worker-1") >= 1 && done("worker-2") >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no job finished on both workers in time; planner's jobs: {jobs}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let planner = json(&format!("{}/status", urls[0])).expect("planner status");
    assert_eq!(planner["scheduler"]["cluster"]["plans"], true, "{planner}");
    for (url, name) in urls[1..].iter().zip(["worker-1", "worker-2"]) {
        let status = json(&format!("{url}/status")).expect("worker status");
        let cluster = &status["scheduler"]["cluster"];
        assert_eq!(cluster["plans"], false, "{status}");
        assert_eq!(cluster["planner"], "train-1");
        assert!(
            cluster["jobs_received"].as_u64().unwrap_or(0) >= 1,
            "{status}"
        );
        assert!(cluster["planner_last_heard_ago_s"].as_f64().is_some());
        let games = std::fs::read_dir(dir.join(name).join("data/games/hex8_2p"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(games >= 1, "{name} wrote no game file");
        // A worker makes no plan of its own.
        let plan = json(&format!("{url}/plan")).expect("worker plan");
        assert_eq!(plan["plans"], 0, "{name} planned: {plan}");
    }

    // Ctrl-C: every node stops cleanly, the demo exits 0, nothing is left running.
    unsafe { libc::kill(demo.0.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "demo did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut err) = demo.0.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(0), "demo stderr:\n{stderr}");
    assert!(stderr.contains("train-1 stopped"), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_under(&dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes left under the demo dir: {:?}",
            processes_under(&dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_daemon_refuses_jobs_from_a_node_that_is_not_its_planner() {
    let api = common::free_port();
    let data = common::free_port();
    let peer = common::free_port();
    let config = common::test_config(
        api,
        data,
        &format!(
            "cluster:\n  planner: boss\n  nodes:\n    - name: test-node\n      roles: [selfplay]\n    - name: boss\n      api_url: http://127.0.0.1:{peer}\n      roles: [training]\n"
        ),
    );
    let daemon = common::Daemon::start(&config);
    let body = serde_json::json!({
        "planner": "intruder",
        "job": {"id": "hex8_2p-x-1", "config_key": "hex8_2p", "board": "hex8", "players": 2, "games": 1,
                "budget": 64, "output": "x.db", "max_moves": 50, "think_time_ms": 0, "randomness": 0.1,
                "seed": 1, "node": "test-node"}
    })
    .to_string();
    let (code, text) = post_json(&format!("{}/jobs", daemon.api), &body);
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("boss"), "{text}");
    let (code, text) = post_json(&format!("{}/jobs", daemon.api), "{\"nope\": 1}");
    assert_eq!(code, 400, "{text}");
    let (code, _) =
        request("GET", &format!("{}/jobs/unknown-job", daemon.api), None).expect("answer");
    assert_eq!(code, 404);
}
