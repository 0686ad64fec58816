//! The resource optimizer, black-box (issue 10): with `resources.disk_critical_percent` below the data root's
//! current use the daemon starts no job and reports the pressure in `/status`, `/health` and `/metrics`; a
//! second run with the threshold raised above it starts jobs again. The second run also reads GPUs from a fake
//! `nvidia-smi` that prints the real reply format.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{command, free_port, request, test_config};

const FAKE_SMI: &str = "#!/bin/sh\n\
printf '0, NVIDIA H100 80GB HBM3, 35, 20345, 81559\\n1, NVIDIA H100 80GB HBM3, 41, 30120, 81559\\n'\n";

/// `resources` thresholds above any use of this machine's disks and memory.
const NO_PRESSURE: &str = "  disk_warning_percent: 99.9\n  disk_critical_percent: 100\n  memory_warning_percent: 99.9\n  memory_critical_percent: 100\n";

/// An executable `fake-nvidia-smi` in `dir` that runs `script` (a shell script).
fn fake_smi(dir: &std::path::Path, script: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let smi = dir.join("fake-nvidia-smi");
    std::fs::write(&smi, script).unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    smi
}

/// The daemon's config with `scheduler` and `resources` sections: `scheduler` as given, `resources` sampling every
/// 300 ms plus `resources` (indented keys).
fn config_with(api: u16, data: u16, scheduler: &str, resources: &str) -> String {
    test_config(
        api,
        data,
        &format!("scheduler:\n  enabled: true\n  interval: 1s\n{scheduler}resources:\n  interval: 300ms\n{resources}"),
    )
}

fn config(api: u16, data: u16, resources: &str) -> String {
    config_with(
        api,
        data,
        "  max_games_per_job: 5\n  jobs:\n    output_dir: data/games\n    logs_dir: state/jobs\n    max_concurrent_per_node: 2\n",
        resources,
    )
}

struct Run {
    child: std::process::Child,
    api: String,
    log: std::path::PathBuf,
}

impl Run {
    fn start(dir: &std::path::Path, text: &str, api: u16, log_name: &str) -> Run {
        std::fs::write(dir.join("config.yaml"), text).unwrap();
        let log = dir.join(log_name);
        let child = command(dir)
            .args(["run", "--config", "config.yaml"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn daemon");
        Run {
            child,
            api: format!("http://127.0.0.1:{api}"),
            log,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        request("GET", &format!("{}{path}", self.api), None).ok()
    }

    fn get_text(&self, path: &str) -> String {
        ureq::get(&format!("{}{path}", self.api))
            .timeout(Duration::from_secs(10))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default()
    }

    /// Polls `GET path` until `cond` holds, within `timeout`.
    fn wait(
        &mut self,
        path: &str,
        what: &str,
        timeout: Duration,
        cond: impl Fn(u16, &serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daemon exited early with {status}; log:\n{}", self.logs());
            }
            let last = self.get(path);
            if let Some((code, body)) = &last {
                if cond(*code, body) {
                    return body.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last {path}: {last:?}\nlog:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(
                Instant::now() < deadline,
                "daemon did not stop; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn jobs_started(jobs: &serde_json::Value) -> usize {
    jobs["running"].as_array().map_or(0, Vec::len) + jobs["history"].as_array().map_or(0, Vec::len)
}

#[test]
fn disk_pressure_pauses_new_jobs_and_a_higher_threshold_resumes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (api, data) = (free_port(), free_port());

    // Run 1: critical at 1 % (any real disk is fuller): paused from the first sample on.
    let text = config(
        api,
        data,
        "  disk_warning_percent: 0.5\n  disk_critical_percent: 1\n",
    );
    let mut run = Run::start(dir.path(), &text, api, "run1.log");
    let status = run.wait(
        "/status",
        "pressure in /status",
        Duration::from_secs(30),
        |code, s| code == 200 && s["resources"]["pressure"]["paused"] == true,
    );
    let resources = &status["resources"];
    assert_eq!(resources["pressure"]["level"], "critical", "{resources}");
    let reasons = resources["pressure"]["reasons"].to_string();
    assert!(reasons.contains("critical 1%"), "{reasons}");
    assert!(
        resources["figures"]["disk_percent"].as_f64().unwrap() > 1.0,
        "{resources}"
    );
    assert!(
        resources["sample"]["disks"].as_array().unwrap().len() >= 3,
        "{resources}"
    );
    let health = run.wait(
        "/health",
        "resources failing in /health",
        Duration::from_secs(10),
        |code, h| code == 503 && h["checks"]["resources"]["status"] == "failing",
    );
    let detail = health["checks"]["resources"]["detail"].as_str().unwrap();
    assert!(detail.contains("paused"), "{detail}");
    // The scheduler replans every second and would start jobs at once; none may start.
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        let (_, jobs) = run.get("/jobs").expect("/jobs");
        assert_eq!(
            jobs_started(&jobs),
            0,
            "a job started under pressure: {jobs}\nlog:\n{}",
            run.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, plan) = run.get("/plan").expect("/plan");
    assert!(
        plan["plans"].as_u64().unwrap() >= 1,
        "the scheduler planned (no job of its plan may start): {plan}"
    );
    let metrics = run.get_text("/metrics");
    assert!(
        metrics.contains("coordinator_resources_paused 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coordinator_resources_pressure_level 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coordinator_resources_utilization_percent{kind=\"disk\"}"),
        "{metrics}"
    );
    assert!(
        run.logs()
            .contains("new selfplay jobs and sync pulls are paused"),
        "{}",
        run.logs()
    );
    run.stop();
    assert!(
        !dir.path().join("data/games").exists() || walk_count(&dir.path().join("data/games")) == 0,
        "no games written under pressure"
    );

    // Run 2: the same node with the threshold above any use, and GPUs from a fake nvidia-smi.
    let smi = fake_smi(dir.path(), FAKE_SMI);
    let text = config(
        api,
        data,
        &format!("{NO_PRESSURE}  gpu_command: {}\n", smi.display()),
    );
    let mut run = Run::start(dir.path(), &text, api, "run2.log");
    let jobs = run.wait(
        "/jobs",
        "jobs to start again",
        Duration::from_secs(60),
        |code, j| code == 200 && jobs_started(j) > 0,
    );
    assert!(jobs_started(&jobs) > 0);
    let status = run.wait(
        "/status",
        "GPU figures in /status",
        Duration::from_secs(10),
        |_, s| s["resources"]["gpu"]["source"] == "nvidia-smi",
    );
    let resources = &status["resources"];
    assert_eq!(resources["pressure"]["paused"], false, "{resources}");
    assert_eq!(resources["figures"]["gpu_count"], 2, "{resources}");
    assert_eq!(
        resources["figures"]["gpu_name"], "NVIDIA H100 80GB HBM3",
        "{resources}"
    );
    assert_eq!(resources["controller"]["steers"], "gpu", "{resources}");
    assert!(resources["controller"]["target_jobs"].as_u64().unwrap() >= 1);
    let (_, health) = run.get("/health").expect("/health");
    assert_eq!(health["checks"]["resources"]["status"], "ok", "{health}");
    let metrics = run.get_text("/metrics");
    assert!(
        metrics.contains("coordinator_resources_paused 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coordinator_resources_utilization_percent{kind=\"gpu\"} 38"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coordinator_resources_job_target{node=\"test-node\"}"),
        "{metrics}"
    );
    run.stop();
}

fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_count(&p)
            } else {
                1
            }
        })
        .sum()
}

/// The cluster view: a peer that answers is in `/status` with its figures; one that never answers leaves the
/// view after `stale_after` and gets no games in the plan.
#[test]
fn a_silent_peer_leaves_the_view_and_the_plan() {
    use common::Daemon;
    let b_api = free_port();
    let silent = free_port(); // nothing listens here
                              // GPUs from a fake nvidia-smi (35 % and 41 % busy), so every node's load is known whatever else this machine
                              // is doing (without GPUs the load would be this busy test machine's CPU).
    let tools = tempfile::tempdir().unwrap();
    let smi = fake_smi(tools.path(), FAKE_SMI);
    let extra = format!(
        r#"cluster:
  nodes:
    - name: test-node
      gpu: H100
    - name: peer-b
      api_url: http://127.0.0.1:{b_api}
      gpu: H100
    - name: peer-c
      api_url: http://127.0.0.1:{silent}
      gpu: H100
scheduler:
  interval: 1s
  max_games_per_job: 5
  jobs:
    output_dir: data/games
    logs_dir: state/jobs
resources:
  interval: 300ms
  gpu_command: {smi}
  cluster:
    stale_after: 2s
    poll_timeout: 1s
"#,
        smi = smi.display()
    );
    // peer-b reads the same cluster file: a worker of test-node (the planner), so the jobs it is handed run.
    let b = Daemon::start(
        &test_config(b_api, free_port(), &extra)
            .replace("node:\n  name: test-node\n", "node:\n  name: peer-b\n"),
    );
    let a = Daemon::start(&test_config(free_port(), free_port(), &extra));
    let status = a.wait_status("peer-c out of the view", Duration::from_secs(30), |s| {
        let cluster = &s["resources"]["cluster"];
        cluster[0]["node"] == "peer-b"
            && cluster[0]["in_view"] == true
            && cluster[0]["figures"]["node"] == "peer-b"
            && cluster[1]["node"] == "peer-c"
            && cluster[1]["in_view"] == false
    });
    let c = &status["resources"]["cluster"][1];
    assert!(c["error"].as_str().unwrap_or("").contains("failed"), "{c}");
    assert!(
        status["resources"]["cluster"][0]["figures"]["cpu_cores"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // Plans made after it left give it nothing.
    std::thread::sleep(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, plan) = a.get("/plan");
        let allocation = plan["plan"]["allocation"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let to_c = allocation
            .values()
            .any(|shares| shares.get("peer-c").is_some());
        if !allocation.is_empty() && !to_c {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "want games for peer-b (in the view) and none for peer-c (left it): {plan}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        a.logs().contains("it leaves the cluster view"),
        "{}",
        a.logs()
    );
    let metrics = request("GET", &format!("{}/metrics", a.api), None)
        .unwrap()
        .1;
    let text = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("coordinator_resources_cluster_nodes{state=\"left\"} 1"),
        "{text}"
    );
    drop(b);
}

/// The negotiated rate reaches the plan, and the GPU model comes from nvidia-smi: a node whose config names no GPU
/// and whose (fake) `nvidia-smi` reports a GH200 is planned and capped as a GH200; when its GPU memory climbs to
/// 95 % its spawn-rate multiplier drops to 0.3 (`/status`, `/metrics`) and the next plan is made with it
/// (`/plan`), giving out fewer games than the plan before it.
#[test]
fn gpu_memory_pressure_thins_the_plan_and_the_measured_gpu_model_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let (api, data) = (free_port(), free_port());
    let reply = dir.path().join("smi-reply.txt");
    let write_reply = |memory_used_mib: u32| {
        // Written whole then renamed: the fake never prints half a reply.
        let tmp = dir.path().join("smi-reply.tmp");
        std::fs::write(
            &tmp,
            format!("0, NVIDIA GH200 480GB, 70, {memory_used_mib}, 97871\n"),
        )
        .unwrap();
        std::fs::rename(&tmp, &reply).unwrap();
    };
    write_reply(48_000); // 49 %: multiplier 1 at 70 % utilization
    let smi = fake_smi(
        dir.path(),
        &format!("#!/bin/sh\ncat '{}'\n", reply.display()),
    );
    // One config, and jobs that write their games at once, so plans are played (and replaced) within seconds.
    let scheduler = r#"  configs: [hex8_2p]
  max_games_per_job: 100000
  jobs:
    output_dir: data/games
    logs_dir: state/jobs
    max_concurrent_per_node: 1
    command: ["/bin/sh", "-c", "sleep 0.3; mkdir -p \"$(dirname \"$1\")\"; i=0; while [ $i -lt \"$2\" ]; do echo '{{}}'; i=$((i+1)); done > \"$1\"", "job", "{output}", "{games}"]
"#;
    let resources = format!("{NO_PRESSURE}  gpu_command: {}\n", smi.display());
    let text = config_with(api, data, scheduler, &resources);
    let mut run = Run::start(dir.path(), &text, api, "run.log");
    let multiplier = |v: &serde_json::Value| v["spawn_rate_multiplier"].as_f64();
    let close = |v: Option<f64>, want: f64| v.is_some_and(|m| (m - want).abs() < 1e-6);
    let plan = run.wait(
        "/plan",
        "a plan made with the GH200's full rate",
        Duration::from_secs(60),
        |code, p| {
            code == 200 && close(multiplier(p), 1.0) && p["plan"]["total_games"].as_u64() > Some(0)
        },
    );
    let full = plan["plan"]["total_games"].as_u64().unwrap();
    assert!(
        full > 500,
        "planned as a GH200 (games cap 2000), not with the unknown row's cap of 500: {plan}"
    );
    let status = run.wait(
        "/status",
        "the measured GPU model",
        Duration::from_secs(10),
        |_, s| s["resources"]["controller"]["gpu_model"] == "GH200",
    );
    let controller = &status["resources"]["controller"];
    assert_eq!(controller["gpu_model_source"], "measured", "{controller}");

    write_reply(93_000); // 95 %: GPU memory critical, × 0.3
    let status = run.wait(
        "/status",
        "the lower multiplier in /status",
        Duration::from_secs(30),
        |_, s| close(multiplier(&s["resources"]["controller"]), 0.3),
    );
    assert!(
        close(
            status["resources"]["figures"]["rate_multiplier"].as_f64(),
            0.3
        ),
        "{status}"
    );
    let plan = run.wait(
        "/plan",
        "a plan made with the lower multiplier",
        Duration::from_secs(60),
        |code, p| code == 200 && close(multiplier(p), 0.3),
    );
    let thinned = plan["plan"]["total_games"].as_u64().unwrap();
    assert!(
        thinned <= 600 && thinned < full,
        "under GPU memory pressure the GH200's cap shrinks to 2000 × 0.3: {thinned} vs {full}; {plan}"
    );
    let (_, status) = run.get("/status").expect("/status");
    assert!(
        close(multiplier(&status["scheduler"]), 0.3),
        "{}",
        status["scheduler"]
    );
    let metrics = run.get_text("/metrics");
    assert!(
        metrics.contains("coordinator_resources_spawn_rate_multiplier 0.3"),
        "{metrics}"
    );
    run.stop();
}
