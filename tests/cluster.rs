//! A real cluster on loopback (issue 12): `coordinator demo` starts one planner and two workers as real daemons;
//! the planner hands jobs to the workers' daemons, which run them and report back; `status` on each node says who
//! plans; games converge on the training node and models on the workers, byte for byte; Ctrl-C stops every node
//! and leaves no process behind.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::cluster::{get_json, wait_games_on_trainer, worker_games, write_atomically, Demo};
use common::{command, request, run_with_timeout};

/// GET `url`, its JSON body when it answered 200.
fn json(url: &str) -> Option<serde_json::Value> {
    match request("GET", url, None) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
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

#[test]
fn the_planner_hands_jobs_to_worker_daemons_and_ctrl_c_stops_them_all() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut demo = Demo::start(tmp.path(), 3, &[]);
    let planner = demo.nodes[0].clone();

    // The planner's job table shows jobs succeeded on both workers; the workers say they received them.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let jobs = get_json(&planner, "/jobs").unwrap_or_default();
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
    let status = get_json(&planner, "/status").expect("planner status");
    assert_eq!(status["scheduler"]["cluster"]["plans"], true, "{status}");
    for worker in &demo.nodes[1..] {
        let status = get_json(worker, "/status").expect("worker status");
        let cluster = &status["scheduler"]["cluster"];
        assert_eq!(cluster["plans"], false, "{status}");
        assert_eq!(cluster["planner"], "train-1");
        assert!(
            cluster["jobs_received"].as_u64().unwrap_or(0) >= 1,
            "{status}"
        );
        assert!(cluster["planner_last_heard_ago_s"].as_f64().is_some());
        let games = std::fs::read_dir(worker.dir.join("data/games/hex8_2p"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(games >= 1, "{} wrote no game file", worker.name);
        // A worker makes no plan of its own.
        let plan = get_json(worker, "/plan").expect("worker plan");
        assert_eq!(plan["plans"], 0, "{} planned: {plan}", worker.name);
    }

    // Ctrl-C: every node stops cleanly, the demo exits 0, nothing is left running.
    let status = demo.interrupt(Duration::from_secs(60));
    let stderr = demo.stderr_text();
    assert_eq!(status.code(), Some(0), "demo stderr:\n{stderr}");
    assert!(stderr.contains("train-1 stopped"), "{stderr}");
    demo.assert_nothing_left(Duration::from_secs(10));
}

#[test]
fn games_reach_the_training_node_once_and_intact_and_models_reach_every_worker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut demo = Demo::start(tmp.path(), 3, &[]);
    let trainer = demo.nodes[0].clone();
    let workers = demo.nodes[1..].to_vec();

    // The workers play jobs the planner dispatched: wait for a few settled files on each.
    let deadline = Instant::now() + Duration::from_secs(120);
    let snapshot = loop {
        let games = worker_games(&workers);
        if games.values().all(|files| files.len() >= 3) {
            break games;
        }
        assert!(
            Instant::now() < deadline,
            "workers did not write 3 game files each in time: {games:?}\nplanner jobs: {}",
            get_json(&trainer, "/jobs").unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let jobs = get_json(&trainer, "/jobs").expect("planner jobs");
    for w in &workers {
        assert!(
            jobs["nodes"][&w.name]["succeeded"].as_u64().unwrap_or(0) >= 1,
            "{} ran no job of the planner: {jobs}",
            w.name
        );
    }

    // A model written on the training node (temp + rename), as a trainer would publish it.
    let model: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write_atomically(&trainer.dir.join("data/models/hex8_2p-v1.bin"), &model);

    // Every snapshot file reaches the training node intact and once; the model reaches every worker intact.
    let trainer_games = trainer.dir.join("data/games");
    wait_games_on_trainer(&trainer, &workers, &snapshot, Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(120);
    for w in &workers {
        let copy = w.dir.join("data/models/train-1/hex8_2p-v1.bin");
        while std::fs::read(&copy).ok().as_ref() != Some(&model) {
            assert!(
                Instant::now() < deadline,
                "the model did not reach {} intact; its sync: {}",
                w.name,
                get_json(w, "/sync").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    // Time from a game file written on a worker (its mtime) to its install on the training node (the rename
    // sets the copy's ctime), for docs/performance.md.
    let mut lags: Vec<f64> = snapshot
        .iter()
        .flat_map(|(worker, files)| files.keys().map(move |rel| (worker, rel)))
        .filter_map(|(worker, rel)| {
            let written =
                std::fs::metadata(demo.node(worker).dir.join("data/games").join(rel)).ok()?;
            let installed = std::fs::metadata(trainer_games.join(worker).join(rel)).ok()?;
            let written = written
                .modified()
                .ok()?
                .duration_since(UNIX_EPOCH)
                .ok()?
                .as_secs_f64();
            let installed = installed.ctime() as f64 + installed.ctime_nsec() as f64 / 1e9;
            Some(installed - written)
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let pick = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "game file written on a worker -> installed on the training node: {} files, p50 {:.1} s, p99 {:.1} s",
        lags.len(),
        pick(0.5),
        pick(0.99)
    );

    // `coordinator status` (the CLI) against each node shows every section.
    for node in &demo.nodes {
        let mut cmd = command(tmp.path());
        cmd.args(["status", "--api", &node.api]);
        let out = run_with_timeout(cmd, Duration::from_secs(30));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "status {}: {}",
            node.name,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with(&format!("node {}", node.name)), "{text}");
        for section in [
            "├─ scheduler",
            "└─ resources",
            "\ndata server\n",
            "\nresources\n",
            "\nsync\n",
            "\njobs\n",
        ] {
            assert!(
                text.contains(section),
                "{}: no {section:?} in:\n{text}",
                node.name
            );
        }
    }

    let status = demo.interrupt(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "demo stderr:\n{}",
        demo.stderr_text()
    );
    demo.assert_nothing_left(Duration::from_secs(10));
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
