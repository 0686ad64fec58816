//! `coordinator demo`: a local cluster of real daemons on loopback, for trying the product and for the cluster
//! tests. One training node that plans (`train-1`) and N-1 selfplay workers (`worker-1`, …), each a real
//! `coordinator run` child process with its own ports and its own directory `DIR/<node>/` (data, state, logs),
//! all reading one generated cluster file `DIR/cluster.yaml`. A node that exits on its own is started again with
//! the same command line after a doubling delay ([`RestartPolicy`]), as a service manager would; Ctrl-C (or
//! SIGTERM) stops them all cleanly.
//!
//! The cluster file and the restart decisions are pure ([`cluster_file`], [`NodeRestarts`]) so their shape is
//! unit-tested; the shell only picks ports, writes files, starts, watches, restarts and stops the children.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use actors::runtime::backoff::Exponential;
use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

/// Largest cluster the demo starts (each node is a daemon, a data server and its jobs on this machine).
pub const MAX_NODES: usize = 16;
/// How long a node may take from start to a 200 on `/health`.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long each node may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(40);
/// How often the demo looks for nodes that exited and restarts that are due.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// What the demo is asked to set up besides the nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemoOptions {
    /// `--debug`: the fault-drill routes on every node (`api.debug_endpoints: true`) and a 10 s watchdog, so a
    /// hang drill is caught within seconds (the chaos test drives the cluster this way).
    pub debug: bool,
}

/// When a node that exited on its own is started again (systemd's `Restart=on-failure`): after `backoff`
/// (doubling per restart in a row), the count of restarts in a row forgotten once a node has run for
/// `healthy_after`. A node that exited 0 was stopped on purpose (SIGTERM) and stays down; one that exited 2 (a
/// bad config or flag) too: another start cannot help, its log says what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub backoff: Exponential,
    pub healthy_after: Duration,
}

impl Default for RestartPolicy {
    /// 1 s doubling to 30 s, reset after 60 s of running: systemd's `RestartSec` idea with the supervisor's
    /// backoff shape (shared/domain/resources-and-lifecycle.md).
    fn default() -> Self {
        RestartPolicy {
            backoff: Exponential::new(Duration::from_secs(1), Duration::from_secs(30)),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// What to do about a node that exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterExit {
    /// Start it again after this delay.
    Restart(Duration),
    /// Leave it down, for this reason.
    LeaveDown(&'static str),
}

/// The restart count of one node (pure; the caller passes how long the node ran).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeRestarts {
    /// Restarts since the demo started.
    pub total: u32,
    /// Restarts in a row without `healthy_after` of running between them: the backoff step.
    in_a_row: u32,
}

impl NodeRestarts {
    /// The node exited with `code` (`None`: killed by a signal) after running for `ran_for`.
    pub fn exited(
        &mut self,
        policy: &RestartPolicy,
        code: Option<i32>,
        ran_for: Duration,
    ) -> AfterExit {
        match code {
            Some(0) => return AfterExit::LeaveDown("it stopped cleanly (exit 0), as asked"),
            Some(c) if c == i32::from(crate::failure::EXIT_BAD_INPUT) => {
                return AfterExit::LeaveDown("its config or flags are bad (exit 2)")
            }
            _ => {}
        }
        if ran_for >= policy.healthy_after {
            self.in_a_row = 0;
        }
        let delay = policy.backoff.delay(self.in_a_row);
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.total = self.total.saturating_add(1);
        AfterExit::Restart(delay)
    }
}

/// One node of the demo cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoNode {
    pub name: String,
    pub roles: Vec<&'static str>,
    pub api_port: u16,
    pub data_port: u16,
}

impl DemoNode {
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn data_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.data_port)
    }
}

/// The demo's nodes with their ports: `train-1` (training, plans) first, then `worker-1..`; a one-node demo is
/// a single machine that does both. `ports` yields two ports per node (API, then data server).
pub fn demo_nodes(count: usize, mut ports: impl FnMut() -> u16) -> Vec<DemoNode> {
    (0..count)
        .map(|i| {
            let (name, roles) = match (i, count) {
                (0, 1) => ("train-1".to_string(), vec!["selfplay", "training"]),
                (0, _) => ("train-1".to_string(), vec!["training"]),
                (i, _) => (format!("worker-{i}"), vec!["selfplay"]),
            };
            DemoNode {
                name,
                roles,
                api_port: ports(),
                data_port: ports(),
            }
        })
        .collect()
}

/// The cluster file every node of the demo reads (each picks itself with `--node`). Paths are relative: each
/// daemon runs in its own `DIR/<node>/`. Short intervals, so a person sees games move within a minute.
pub fn cluster_file(nodes: &[DemoNode], options: DemoOptions) -> String {
    let mut text = String::from(
        "# Generated by `coordinator demo`: a local cluster on loopback. Each node runs\n\
         #   coordinator run --config ../cluster.yaml --node <name>\n\
         # in its own directory beside this file. Every key is documented in docs/configuration.md.\n\
         node:\n  name: train-1\n\ncluster:\n  planner: train-1\n  nodes:\n",
    );
    for node in nodes {
        let _ = write!(
            text,
            "    - name: {}\n      api_url: {}\n      data_url: {}\n      roles: [{}]\n      gpu: unknown\n",
            node.name,
            node.api_url(),
            node.data_url(),
            node.roles.join(", ")
        );
    }
    text.push_str(
        "\ndead_letters:\n  path: state/dead_letters.db\n\
         \nlogging:\n  format: json\n  level: info\n\
         \ndata_server:\n  root: data\n\
         \nsync:\n  enabled: true\n  interval: 15s\n\
         \nscheduler:\n  enabled: true\n  interval: 15s\n  max_games_per_job: 20\n  jobs:\n    output_dir: data/games\n    logs_dir: state/jobs\n    max_concurrent_per_node: 2\n    think_time: 10ms\n\
         \nresources:\n  enabled: true\n  interval: 5s\n",
    );
    if options.debug {
        text.push_str(
            "\n# --debug: fault drills (POST /debug/fail/{actor}) and a short watchdog\n\
             api:\n  debug_endpoints: true\n\
             \nsupervision:\n  watchdog_deadline: 10s\n",
        );
    }
    text
}

/// A free TCP port on 127.0.0.1 (bound, then released; the daemon binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// One node of the running demo: its process while it runs, when it is due back while it is down.
struct Running {
    node: DemoNode,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    started: Instant,
    restart_at: Option<Instant>,
    restarts: NodeRestarts,
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub fn run(count: usize, dir: &Path, options: DemoOptions) -> Result<()> {
    if !(1..=MAX_NODES).contains(&count) {
        return Err(crate::failure::BadInput::flag(
            "--nodes",
            format!("{count} is out of range (expected 1 to {MAX_NODES})"),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the demo's runtime")?;
    runtime.block_on(run_cluster(count, dir, options))
}

async fn run_cluster(count: usize, dir: &Path, options: DemoOptions) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--dir: cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("--dir: cannot resolve {}", dir.display()))?;
    let nodes = demo_nodes(count, free_port);
    let cluster = dir.join("cluster.yaml");
    std::fs::write(&cluster, cluster_file(&nodes, options))
        .with_context(|| format!("cannot write {}", cluster.display()))?;
    let exe = std::env::current_exe().context("cannot find the coordinator executable")?;

    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut running = Vec::new();
    for node in &nodes {
        let node_dir = dir.join(&node.name);
        let log = node_dir.join("logs").join("daemon.log");
        match start_node(&exe, &node_dir, &log, node) {
            Ok(child) => running.push(Running {
                node: node.clone(),
                dir: node_dir,
                log,
                child: Some(child),
                started: Instant::now(),
                restart_at: None,
                restarts: NodeRestarts::default(),
            }),
            Err(e) => {
                stop_all(&mut running).await;
                return Err(e);
            }
        }
    }
    for r in &mut running {
        if let Err(e) = wait_healthy(r).await {
            stop_all(&mut running).await;
            return Err(e);
        }
    }
    let _ = crate::client::emit(&format!("{}\n", summary(&running, &cluster)));

    let policy = RestartPolicy::default();
    let exit = loop {
        tokio::select! {
            _ = sigint.recv() => break "Ctrl-C",
            _ = sigterm.recv() => break "SIGTERM",
            _ = tokio::time::sleep(WATCH_EVERY) => {
                for r in &mut running {
                    watch_node(r, &exe, &policy);
                }
                if running.iter().all(|r| r.child.is_none() && r.restart_at.is_none()) {
                    bail!("every node of the demo is down for good; their logs are under {}", dir.display());
                }
            }
        }
    };
    eprintln!("demo: {exit} received; stopping the nodes");
    stop_all(&mut running).await;
    eprintln!(
        "demo: stopped; data, state and logs stay in {}",
        dir.display()
    );
    Ok(())
}

/// Notices that a node exited (and decides when it comes back), and starts it again once that time came.
fn watch_node(r: &mut Running, exe: &Path, policy: &RestartPolicy) {
    let now = Instant::now();
    if let Some(child) = &mut r.child {
        let Ok(Some(status)) = child.try_wait() else {
            return;
        };
        r.child = None;
        match r.restarts.exited(policy, status.code(), now - r.started) {
            AfterExit::Restart(delay) => {
                eprintln!(
                    "demo: {} exited ({status}); restarting it in {} (restart {}). Its log: {}",
                    r.node.name,
                    humantime::format_duration(delay),
                    r.restarts.total,
                    r.log.display()
                );
                r.restart_at = Some(now + delay);
            }
            AfterExit::LeaveDown(why) => eprintln!(
                "demo: {} exited ({status}) and stays down: {why}; the others go on. Its log: {}",
                r.node.name,
                r.log.display()
            ),
        }
        return;
    }
    if r.restart_at.is_some_and(|at| at <= now) {
        r.restart_at = None;
        r.started = now;
        match start_node(exe, &r.dir, &r.log, &r.node) {
            Ok(child) => r.child = Some(child),
            Err(e) => {
                // A start that failed counts as an exit right away: the next try waits longer.
                if let AfterExit::Restart(delay) = r.restarts.exited(policy, None, Duration::ZERO) {
                    eprintln!(
                        "demo: {}: {e:#}; trying again in {}",
                        r.node.name,
                        humantime::format_duration(delay)
                    );
                    r.restart_at = Some(now + delay);
                }
            }
        }
    }
}

/// Starts one node's daemon in `node_dir`, appending to its `log` (the same command line for a restart).
fn start_node(exe: &Path, node_dir: &Path, log: &Path, node: &DemoNode) -> Result<Child> {
    let logs = node_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = file
        .try_clone()
        .with_context(|| format!("cannot open {}", log.display()))?;
    let mut command = Command::new(exe);
    command
        .current_dir(node_dir)
        .args(["run", "--config", "../cluster.yaml", "--node", &node.name])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err);
    for (key, _) in crate::config::process_env() {
        command.env_remove(key);
    }
    actors::process::spawn_owned(&mut command)
        .with_context(|| format!("cannot start {}", node.name))
}

async fn wait_healthy(r: &mut Running) -> Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    let url = format!("{}/health", r.node.api_url());
    loop {
        if let Some(Ok(Some(status))) = r.child.as_mut().map(Child::try_wait) {
            bail!(
                "{} exited during start ({status}); the end of its log {}:\n{}",
                r.node.name,
                r.log.display(),
                log_tail(&r.log)
            );
        }
        let probe = url.clone();
        let answered = tokio::task::spawn_blocking(move || {
            match ureq::get(&probe).timeout(Duration::from_secs(2)).call() {
                Ok(resp) => resp.status(),
                Err(ureq::Error::Status(code, _)) => code,
                Err(ureq::Error::Transport(_)) => 0,
            }
        })
        .await;
        if matches!(answered, Ok(200)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer /health within {}s; the end of its log {}:\n{}",
                r.node.name,
                START_DEADLINE.as_secs(),
                r.log.display(),
                log_tail(&r.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

async fn stop_all(running: &mut [Running]) {
    let stops = running.iter_mut().filter_map(|r| {
        let name = &r.node.name;
        r.child.as_mut().map(|child| (name, child))
    });
    let stops = stops.map(|(name, child)| async move {
        match actors::process::terminate(child, STOP_GRACE).await {
            Ok(ended) => eprintln!("demo: {name} stopped ({ended})"),
            Err(e) => eprintln!("demo: {name} did not stop cleanly: {e}"),
        }
    });
    futures::future::join_all(stops).await;
}

fn summary(running: &[Running], cluster: &Path) -> String {
    let rows: Vec<Vec<String>> = running
        .iter()
        .map(|r| {
            vec![
                r.node.name.clone(),
                r.node.roles.join("+"),
                r.node.api_url(),
                r.node.data_url(),
                r.dir.display().to_string(),
            ]
        })
        .collect();
    format!(
        "demo cluster up: {} nodes, cluster file {}\n\n{}\nTry: coordinator status --api {}   (Ctrl-C stops every node)",
        running.len(),
        cluster.display(),
        crate::render::table(&["node", "roles", "api", "data", "dir"], &rows),
        running
            .first()
            .map(|r| r.node.api_url())
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> impl FnMut() -> u16 {
        let mut next = 20000;
        move || {
            next += 1;
            next
        }
    }

    #[test]
    fn one_training_node_plans_and_the_rest_play() {
        let nodes = demo_nodes(3, ports());
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["train-1", "worker-1", "worker-2"]);
        assert_eq!(nodes[0].roles, ["training"]);
        assert_eq!(nodes[1].roles, ["selfplay"]);
        assert_eq!((nodes[0].api_port, nodes[0].data_port), (20001, 20002));
        assert_eq!(nodes[2].api_url(), "http://127.0.0.1:20005");
        assert_eq!(demo_nodes(1, ports())[0].roles, ["selfplay", "training"]);
    }

    #[test]
    fn the_cluster_file_names_every_node_with_its_urls_and_roles() {
        let text = cluster_file(&demo_nodes(2, ports()), DemoOptions::default());
        assert!(text.contains("planner: train-1"), "{text}");
        assert!(text.contains("- name: worker-1\n      api_url: http://127.0.0.1:20003\n      data_url: http://127.0.0.1:20004\n      roles: [selfplay]"), "{text}");
        let value: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
        assert_eq!(
            value["cluster"]["nodes"].as_sequence().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn the_generated_files_load_as_a_valid_config_with_and_without_debug() {
        for debug in [false, true] {
            let text = cluster_file(&demo_nodes(3, ports()), DemoOptions { debug });
            let loaded = crate::config::load_str::<crate::config::Config, _>(
                &text,
                Path::new("cluster.yaml"),
                Vec::new(),
            )
            .unwrap_or_else(|e| panic!("debug {debug}: {e}\n{text}"));
            assert_eq!(loaded.config.api.debug_endpoints, debug, "{text}");
            let watchdog = loaded.config.supervision.watchdog_deadline;
            assert_eq!(watchdog == Duration::from_secs(10), debug, "{text}");
        }
    }

    #[test]
    fn a_node_comes_back_after_a_doubling_delay_reset_by_a_long_run() {
        let policy = RestartPolicy::default();
        let mut r = NodeRestarts::default();
        let short = Duration::from_secs(5);
        let delays: Vec<AfterExit> = (0..7).map(|_| r.exited(&policy, None, short)).collect();
        let secs = |s| AfterExit::Restart(Duration::from_secs(s));
        assert_eq!(
            delays,
            [
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(16),
                secs(30),
                secs(30)
            ]
        );
        assert_eq!(r.total, 7);
        // A run of `healthy_after` (exactly) forgets the restarts in a row; the total stays.
        assert_eq!(r.exited(&policy, Some(1), policy.healthy_after), secs(1));
        assert_eq!(r.exited(&policy, Some(1), short), secs(2));
        assert_eq!(r.total, 9);
    }

    #[test]
    fn a_node_with_a_bad_config_stays_down() {
        let policy = RestartPolicy::default();
        let mut r = NodeRestarts::default();
        assert!(matches!(
            r.exited(&policy, Some(2), Duration::from_secs(1)),
            AfterExit::LeaveDown(why) if why.contains("exit 2")
        ));
        assert!(matches!(
            r.exited(&policy, Some(0), Duration::ZERO),
            AfterExit::LeaveDown(why) if why.contains("exit 0")
        ));
        assert_eq!(r.total, 0);
        assert_eq!(
            r.exited(&policy, Some(1), Duration::ZERO),
            AfterExit::Restart(Duration::from_secs(1))
        );
    }
}
