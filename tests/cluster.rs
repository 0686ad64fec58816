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

/// A daemon config for node `name` of a planner + one worker cluster.
fn member_config(name: &str, api: u16, data: u16, cluster: &str, scheduler: &str) -> String {
    common::test_config(api, data, &format!("{cluster}{scheduler}"))
        .replace("name: test-node", &format!("name: {name}"))
}

/// The ids of the jobs running on the daemon at `api` (from its `/jobs`).
fn running_ids(api: &str) -> Vec<String> {
    json(&format!("{api}/jobs"))
        .and_then(|jobs| {
            jobs["running"].as_array().map(|r| {
                r.iter()
                    .filter_map(|j| j["id"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// How job `id` ended in the `/jobs` history of the daemon at `api` (`succeeded`, `failed`, ...), if it did.
fn ended(api: &str, id: &str) -> Option<String> {
    let jobs = json(&format!("{api}/jobs"))?;
    jobs["history"].as_array()?.iter().find_map(|j| {
        (j["id"] == id).then(|| j["status"]["status"].as_str().unwrap_or("?").to_string())
    })
}

/// The job ids of a `GET /jobs/handed-over` answer.
fn held_ids(listed: &serde_json::Value) -> Vec<&str> {
    listed["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["job"]["id"].as_str())
        .collect()
}

#[test]
fn a_planner_killed_and_restarted_adopts_the_jobs_its_workers_still_run() {
    let (boss_api, boss_data, w_api, w_data) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let cluster = format!(
        "cluster:\n  planner: boss\n  nodes:\n    - name: boss\n      roles: [training]\n      api_url: http://127.0.0.1:{boss_api}\n      data_url: http://127.0.0.1:{boss_data}\n    - name: w1\n      roles: [selfplay]\n      api_url: http://127.0.0.1:{w_api}\n      data_url: http://127.0.0.1:{w_data}\n      gpu: unknown\n"
    );
    // Jobs long enough to be running across the planner's death: a few games, slow moves.
    let scheduler = "scheduler:\n  enabled: true\n  max_games_per_job: 3\n  jobs:\n    think_time: 150ms\n    max_concurrent_per_node: 1\n    dispatch:\n      poll_every: 200ms\n      reconcile_every: 1s\n";
    let worker = common::Daemon::start(&member_config("w1", w_api, w_data, &cluster, scheduler));
    let boss_config = member_config("boss", boss_api, boss_data, &cluster, scheduler);
    let mut boss = common::Daemon::start(&boss_config);

    // A job handed over and running on the worker.
    let deadline = Instant::now() + Duration::from_secs(60);
    let handed = loop {
        let ids = running_ids(&worker.api);
        if !ids.is_empty() {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "no job running on the worker; planner log:\n{}",
            boss.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // kill -9 of the planner; the worker goes on; the planner comes back in the same directory.
    let _ = boss.child.kill();
    let _ = boss.child.wait();
    let (code, listed) = worker.get("/jobs/handed-over");
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["planner"], "boss");
    let listed_ids = held_ids(&listed);
    assert!(
        handed.iter().all(|id| listed_ids.contains(&id.as_str())),
        "{handed:?} not all in {listed}"
    );
    let dir = std::mem::replace(&mut boss.dir, tempfile::tempdir().expect("tempdir"));
    drop(boss);
    let boss = common::Daemon::start_in(dir, &boss_config);

    // The restarted planner adopts the job and collects its end from the worker; nothing was withdrawn.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all_ended = handed.iter().all(|id| ended(&boss.api, id).is_some());
        if all_ended {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted planner did not collect {handed:?}; planner log:\n{}",
            boss.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for id in &handed {
        assert_eq!(
            ended(&worker.api, id).as_deref(),
            Some("succeeded"),
            "{id} on the worker"
        );
        assert_eq!(
            ended(&boss.api, id).as_deref(),
            Some("succeeded"),
            "{id} on the planner"
        );
    }
    let (_, status) = boss.get("/status");
    let cluster = &status["scheduler"]["cluster"];
    assert!(
        cluster["jobs_adopted"].as_u64().unwrap_or(0) >= handed.len() as u64,
        "{cluster}"
    );
    assert_eq!(cluster["workers_unreconciled"], serde_json::json!([]));
    // Its end seen, the job is no longer listed as held for the planner.
    let (_, listed) = worker.get("/jobs/handed-over");
    let still = held_ids(&listed);
    assert!(
        handed.iter().all(|id| !still.contains(&id.as_str())),
        "{listed}"
    );
    // The planner refuses the worker's question.
    let (code, _) = boss.get("/jobs/handed-over");
    assert_eq!(code, 409);
}
