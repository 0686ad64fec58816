//! The data-server monitor against real processes on 127.0.0.1: restart after `kill -9`, a hung server killed and
//! replaced, a crash loop opening and later closing the circuit, a port already in use, an actor crash, and a stop
//! that leaves no process behind. Every wait has a deadline.
//!
//! The server process is the `data_server` example of this crate. `cargo test -p actors` builds it; when running
//! only this test (`--test data_server_monitor`), build it first: `cargo build -p actors --example data_server`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::data_server::monitor::actor::HEALTH_CHECK;
use actors::data_server::monitor::{
    monitor_child, monitor_child_options, DataServerMonitor, DataServerState, DataServerStatus,
    MonitorSnapshot, MonitorState, ServerCommand, StateListener,
};
use actors::data_server::DataServerConfig;
use actors::runtime::circuit_breaker::BreakerState;
use actors::runtime::{
    ActorRef, ChildOptions, DeadLetterSink, Drill, HealthBoard, HealthStatus, RootHandle,
    SupervisorOptions, SupervisorSpec, WorkerSpec,
};

const NAME: &str = "data_server_monitor";
const ASK: Duration = Duration::from_secs(2);
const LONG: Duration = Duration::from_secs(15);

fn example_server() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join("data_server");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p actors --example data_server` (or `cargo test -p actors`) first",
        path.display()
    );
    path
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").to_string()
}

/// Small, fast settings for tests.
fn test_config(root: &Path, bind: String) -> DataServerConfig {
    DataServerConfig {
        bind,
        root: root.to_path_buf(),
        workers: 2,
        health_interval: Duration::from_millis(200),
        health_timeout: Duration::from_millis(150),
        failed_checks_before_restart: 3,
        restart_backoff_initial: Duration::from_millis(50),
        restart_backoff_max: Duration::from_millis(400),
        max_restarts: 5,
        restart_window: Duration::from_secs(60),
        circuit_recovery: Duration::from_secs(1),
        stop_grace: Duration::from_secs(1),
        ..DataServerConfig::default()
    }
}

struct Running {
    root: RootHandle,
    monitor: ActorRef<DataServerMonitor>,
    states: Arc<Mutex<Vec<DataServerState>>>,
    health: HealthBoard,
    _sink: DeadLetterSink,
}

async fn start(config: DataServerConfig, command: ServerCommand) -> Running {
    init_logs();
    let sink = DeadLetterSink::new();
    let states: Arc<Mutex<Vec<DataServerState>>> = Arc::default();
    let recorded = states.clone();
    let on_state: StateListener = Arc::new(move |state| recorded.lock().unwrap().push(state));
    let options = monitor_child_options(ChildOptions::default(), &config);
    let spec = WorkerSpec::<DataServerMonitor>::new(NAME, options, &sink);
    let monitor = spec.actor_ref();
    let health = HealthBoard::new();
    let child = monitor_child(
        spec,
        config,
        "node-test".to_string(),
        command,
        on_state,
        health.clone(),
    );
    let mut root = SupervisorSpec::new("root", SupervisorOptions::default())
        .child(child)
        .start_root();
    tokio::time::timeout(LONG, root.started())
        .await
        .expect("tree started in time");
    Running {
        root,
        monitor,
        states,
        health,
        _sink: sink,
    }
}

async fn status(monitor: &ActorRef<DataServerMonitor>) -> MonitorSnapshot {
    monitor
        .ask(DataServerStatus, ASK)
        .await
        .expect("monitor answers its status")
}

/// Polls the status until `accept` holds, failing after `within`.
async fn wait_status(
    monitor: &ActorRef<DataServerMonitor>,
    within: Duration,
    what: &str,
    accept: impl Fn(&MonitorSnapshot) -> bool,
) -> MonitorSnapshot {
    let deadline = Instant::now() + within;
    loop {
        let snapshot = status(monitor).await;
        if accept(&snapshot) {
            return snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "not {what} within {within:?}: {snapshot:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_up(monitor: &ActorRef<DataServerMonitor>) -> u32 {
    let snapshot = wait_status(monitor, LONG, "up", |s| s.state == MonitorState::Up).await;
    snapshot.pid.expect("an up server has a pid")
}

async fn health_answers(bind: &str) -> bool {
    let client = awc::Client::default();
    let request = client
        .get(format!("http://{bind}/health"))
        .force_close()
        .timeout(Duration::from_millis(300))
        .send();
    matches!(
        tokio::time::timeout(Duration::from_millis(400), request).await,
        Ok(Ok(response)) if response.status().is_success()
    )
}

/// True while `pid` exists and is not a zombie.
fn is_running(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    exists && !zombie
}

async fn wait_gone(pid: u32) {
    let deadline = Instant::now() + LONG;
    while is_running(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stop(running: &Running) {
    assert!(
        tokio::time::timeout(LONG, running.root.shutdown())
            .await
            .expect("shutdown in time"),
        "tree stopped within its budget"
    );
}

/// Writes `script` as an executable shell script at `path`, atomically (write, then rename).
fn write_script(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, script).expect("write script");
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&temporary, path).expect("rename script");
}

#[actix_rt::test]
async fn kill_9_of_the_server_brings_a_new_one_up_within_2_s() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bind = free_address();
    let config = test_config(dir.path(), bind.clone());
    let running = start(config, ServerCommand::new(example_server(), vec![])).await;
    let first = wait_up(&running.monitor).await;
    assert!(health_answers(&bind).await);

    // SAFETY: sending SIGKILL to the server process this test's monitor started.
    assert_eq!(
        unsafe { libc::kill(first as libc::pid_t, libc::SIGKILL) },
        0
    );
    let killed_at = Instant::now();
    loop {
        let snapshot = status(&running.monitor).await;
        let replaced = snapshot.pid.is_some_and(|pid| pid != first);
        if replaced && health_answers(&bind).await {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(2),
            "no new server answered /health within 2 s: {snapshot:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!is_running(first));
    let snapshot = wait_up(&running.monitor).await;
    let status = status(&running.monitor).await;
    assert_eq!(status.restarts, 1);
    let last_exit = status.last_exit.expect("exit recorded");
    assert_eq!(last_exit.pid, first);
    assert_eq!(
        serde_json::to_value(last_exit.ended).expect("json")["signal"],
        libc::SIGKILL
    );
    let states: Vec<(bool, MonitorState)> = running
        .states
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.up, s.state))
        .collect();
    assert_eq!(
        states,
        [
            (true, MonitorState::Up),
            (false, MonitorState::Down),
            (true, MonitorState::Up)
        ]
    );
    let metrics = actors::runtime::metrics::render();
    for name in [
        "coordinator_data_server_up",
        "coordinator_data_server_restarts_total",
        "coordinator_data_server_circuit_open",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    stop(&running).await;
    wait_gone(snapshot).await;
}

#[actix_rt::test]
async fn a_hung_server_is_killed_and_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bind = free_address();
    let config = test_config(dir.path(), bind.clone());
    let command = ServerCommand::new(example_server(), vec![])
        .with_extra_args(["--test-hook-hang-health-after", "1s"]);
    let running = start(config, command).await;
    let first = wait_up(&running.monitor).await;
    let replaced = wait_status(&running.monitor, LONG, "replaced", |s| {
        s.restarts >= 1 && s.pid.is_some_and(|pid| pid != first)
    })
    .await;
    wait_gone(first).await;
    let error = replaced.last_error.unwrap_or_default();
    assert!(
        error.contains("health checks failed in a row"),
        "last error: {error}"
    );
    let states = running.states.lock().unwrap().clone();
    assert!(
        states
            .iter()
            .any(|s| !s.up && s.state == MonitorState::Down),
        "subscribers were told it went down: {states:?}"
    );
    let second = wait_up(&running.monitor).await;
    assert_ne!(second, first);
    stop(&running).await;
    wait_gone(second).await;
}

#[actix_rt::test]
async fn a_crash_loop_opens_the_circuit_and_a_later_good_start_closes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("server.sh");
    write_script(
        &script,
        "#!/bin/sh\necho 'crashing on purpose' >&2\nexit 3\n",
    );
    let bind = free_address();
    let config = DataServerConfig {
        max_restarts: 3,
        restart_backoff_initial: Duration::from_millis(20),
        restart_backoff_max: Duration::from_millis(100),
        ..test_config(&dir.path().join("data"), bind.clone())
    };
    let running = start(config, ServerCommand::new(&script, vec![])).await;
    let open = wait_status(&running.monitor, LONG, "circuit open", |s| {
        s.state == MonitorState::CircuitOpen
    })
    .await;
    assert_eq!(open.restarts, 3, "more than 3 restarts open the circuit");
    assert_eq!(open.circuit.state, BreakerState::Open);
    assert_eq!(open.pid, None);
    let last_exit = open.last_exit.expect("exit recorded");
    assert_eq!(last_exit.stderr_tail, ["crashing on purpose"]);
    assert!(open
        .last_error
        .unwrap_or_default()
        .contains("exited with code 3"));
    assert_eq!(
        running.states.lock().unwrap().last().map(|s| s.state),
        Some(MonitorState::CircuitOpen)
    );
    let check = running.health.get(HEALTH_CHECK).expect("check published");
    assert_eq!(check.status, HealthStatus::Failing, "{}", check.detail);
    assert!(check.detail.contains("circuit open"), "{}", check.detail);

    let server = example_server();
    write_script(
        &script,
        &format!("#!/bin/sh\nexec '{}' \"$@\"\n", server.display()),
    );
    let closed = wait_status(&running.monitor, LONG, "up again", |s| {
        s.state == MonitorState::Up
    })
    .await;
    assert_eq!(closed.circuit.state, BreakerState::Closed);
    assert_eq!(closed.restarts, 4, "one half-open attempt");
    assert!(health_answers(&bind).await);
    let check = running.health.get(HEALTH_CHECK).expect("check published");
    assert_eq!(check.status, HealthStatus::Ok, "{}", check.detail);
    assert_eq!(
        running.states.lock().unwrap().last().map(|s| s.state),
        Some(MonitorState::Up)
    );
    stop(&running).await;
    wait_gone(closed.pid.expect("pid")).await;
}

#[actix_rt::test]
async fn a_program_that_does_not_exist_is_a_failed_start_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DataServerConfig {
        max_restarts: 2,
        ..test_config(dir.path(), free_address())
    };
    let running = start(
        config,
        ServerCommand::new("/nonexistent/coordinator-data-server", vec![]),
    )
    .await;
    let open = wait_status(&running.monitor, LONG, "circuit open", |s| {
        s.state == MonitorState::CircuitOpen
    })
    .await;
    let error = open.last_error.unwrap_or_default();
    assert!(
        error.contains("/nonexistent/coordinator-data-server"),
        "{error}"
    );
    assert_eq!(
        running.monitor.shared().restarts(),
        0,
        "the actor never crashed"
    );
    stop(&running).await;
}

#[actix_rt::test]
async fn a_port_in_use_is_a_clear_error_and_the_server_comes_up_once_it_is_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let bind = squatter.local_addr().expect("addr").to_string();
    let config = test_config(dir.path(), bind.clone());
    let running = start(config, ServerCommand::new(example_server(), vec![])).await;
    let failing = wait_status(&running.monitor, LONG, "reporting the taken port", |s| {
        s.restarts >= 2
            && s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("already in use"))
    })
    .await;
    let error = failing.last_error.unwrap_or_default();
    assert!(error.contains(&bind), "names the address: {error}");
    assert_ne!(failing.state, MonitorState::Up);
    assert_eq!(
        running.monitor.shared().restarts(),
        0,
        "the actor never crashed"
    );

    drop(squatter);
    let pid = wait_up(&running.monitor).await;
    assert!(health_answers(&bind).await);
    stop(&running).await;
    wait_gone(pid).await;
}

#[actix_rt::test]
async fn stop_leaves_no_process_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bind = free_address();
    let running = start(
        test_config(dir.path(), bind.clone()),
        ServerCommand::new(example_server(), vec![]),
    )
    .await;
    let pid = wait_up(&running.monitor).await;
    stop(&running).await;
    // A graceful stop reaps the server before the monitor reports stopped; the bounded wait only covers the
    // runtime cutting the stop hook short (then the keeper task still stops and reaps it).
    let deadline = Instant::now() + LONG;
    loop {
        // SAFETY: kill with signal 0 only checks for existence.
        let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
        let error = std::io::Error::last_os_error().raw_os_error();
        if result == -1 && error == Some(libc::ESRCH) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "data server {pid} survived the monitor's stop (kill(pid, 0) = {result}, errno {error:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!health_answers(&bind).await);
    assert_eq!(
        running.states.lock().unwrap().last().map(|s| s.state),
        Some(MonitorState::Stopped)
    );
}

#[actix_rt::test]
async fn a_crash_of_the_monitor_kills_its_server_and_the_new_incarnation_starts_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bind = free_address();
    let running = start(
        test_config(dir.path(), bind.clone()),
        ServerCommand::new(example_server(), vec![]),
    )
    .await;
    let first = wait_up(&running.monitor).await;
    running
        .root
        .directory
        .arm_drill(NAME, Drill::Panic)
        .expect("drill armed");
    wait_gone(first).await;
    let second = wait_status(&running.monitor, LONG, "up with a new server", |s| {
        s.state == MonitorState::Up && s.pid.is_some_and(|pid| pid != first)
    })
    .await
    .pid
    .expect("pid");
    assert!(running.monitor.shared().restarts() >= 1);
    assert!(health_answers(&bind).await);
    stop(&running).await;
    wait_gone(second).await;
}
