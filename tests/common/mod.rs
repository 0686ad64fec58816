//! Helpers for black-box tests: the real `coordinator` binary in a temp dir, free loopback ports, `COORDINATOR_*`
//! cleared, and a deadline on every wait.
#![allow(dead_code)]

pub mod cluster;
pub mod sshd;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_coordinator");

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `coordinator` with a clean environment (no COORDINATOR_* from the caller) in `dir`.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("COORDINATOR_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs a command to completion within `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn coordinator");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "command timed out after {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A config for tests: free ports, state and data under the temp dir, fast supervision, debug endpoints on.
pub fn test_config(api_port: u16, data_port: u16, extra: &str) -> String {
    format!(
        r#"node:
  name: test-node
supervision:
  max_restarts: 3
  within: 30s
  backoff_initial: 10ms
  backoff_max: 200ms
  shutdown_timeout: 3s
  watchdog_deadline: 2s
  watchdog_check_every: 200ms
dead_letters:
  path: state/dead_letters.db
api:
  bind: 127.0.0.1:{api_port}
  debug_endpoints: true
logging:
  format: json
  level: info
data_server:
  bind: 127.0.0.1:{data_port}
  root: data
{extra}"#
    )
}

/// Disk and memory thresholds out of the host's way for daemons started by [`Daemon::start`]: a test that is not
/// about pressure must not see its jobs paused (or its `/health` degraded) because the machine running it has a
/// nearly full disk. Tests about pressure start the daemon with [`command`] and set their own thresholds.
pub const HOST_INDEPENDENT_PRESSURE: [(&str, &str); 4] = [
    ("COORDINATOR_RESOURCES__DISK_WARNING_PERCENT", "99.5"),
    ("COORDINATOR_RESOURCES__DISK_CRITICAL_PERCENT", "100"),
    ("COORDINATOR_RESOURCES__MEMORY_WARNING_PERCENT", "99.5"),
    ("COORDINATOR_RESOURCES__MEMORY_CRITICAL_PERCENT", "100"),
];

/// A running daemon; killed on drop.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub api: String,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon on `config_text` in a fresh temp dir and waits until `/health` answers 200.
    pub fn start(config_text: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, config_text)
    }

    pub fn start_in(dir: tempfile::TempDir, config_text: &str) -> Daemon {
        Self::start_in_with_env(dir, config_text, &[])
    }

    /// Like [`Daemon::start`], with `env` (e.g. `COORDINATOR_*` overrides) set for the daemon.
    pub fn start_with_env(config_text: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in_with_env(dir, config_text, env)
    }

    pub fn start_in_with_env(
        dir: tempfile::TempDir,
        config_text: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut daemon = Self::spawn_in(dir, config_text, env);
        daemon.wait_healthy(Duration::from_secs(20));
        daemon
    }

    /// Writes the config into `dir` and starts the daemon there, without waiting for anything.
    fn spawn_in(dir: tempfile::TempDir, config_text: &str, env: &[(&str, &str)]) -> Daemon {
        std::fs::write(dir.path().join("config.yaml"), config_text).expect("write config");
        let api = config_text
            .lines()
            .skip_while(|l| !l.starts_with("api:"))
            .find_map(|l| {
                l.trim()
                    .strip_prefix("bind: ")
                    .map(|b| format!("http://{b}"))
            })
            .expect("api.bind in test config");
        let log = dir.path().join("daemon.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = command(dir.path())
            .envs(env.iter().copied())
            .args(["run", "--config", "config.yaml"])
            .envs(HOST_INDEPENDENT_PRESSURE)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn daemon");
        Daemon {
            dir,
            child,
            api,
            log,
        }
    }

    /// Starts a daemon that is expected to report failing (`/health` 503, e.g. its data server cannot bind):
    /// waits only until the control API answers `/status`.
    pub fn start_unhealthy(config_text: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut daemon = Self::spawn_in(dir, config_text, &[]);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("daemon exited early with {status}; log:\n{}", daemon.logs());
            }
            if let Ok((200, _)) = daemon.try_get("/status") {
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "control API not up within 20 s; log:\n{}",
                daemon.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daemon exited early with {status}; log:\n{}", self.logs());
            }
            if let Ok((200, _)) = self.try_get("/health") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "daemon not healthy within {timeout:?}; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn try_get(&self, path: &str) -> Result<(u16, serde_json::Value), String> {
        request("GET", &format!("{}{path}", self.api), None)
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.logs()))
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        ureq::get(&format!("{}/metrics", self.api))
            .call()
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
            .into_string()
            .expect("metrics text")
    }

    pub fn post(&self, path: &str) -> (u16, serde_json::Value) {
        request("POST", &format!("{}{path}", self.api), None)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub fn signal(&self, signal: i32) {
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Waits for the daemon to exit within `timeout`; `None` if it did not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `cond` on `/status` until it holds or `timeout` passes.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, status) = self.get("/status");
            if cond(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status: {status}\nlog:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request on loopback with a 10 s deadline; any status is Ok.
pub fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
) -> Result<(u16, serde_json::Value), String> {
    request_within(method, url, token, Duration::from_secs(10))
}

/// [`request`] with its own deadline (e.g. a `POST /sync/run` waiting behind another cycle).
pub fn request_within(
    method: &str,
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(u16, serde_json::Value), String> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let mut req = agent.request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let text = resp.into_string().map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}

/// The pid of the daemon's data server, once `/status` says it is up.
pub fn data_server_pid(daemon: &Daemon) -> i32 {
    let status = daemon.wait_status("data server up", Duration::from_secs(15), |s| {
        s["data_server"]["state"] == "up"
    });
    status["data_server"]["pid"].as_i64().expect("pid") as i32
}

/// The node named `name` in a `/status` tree.
pub fn find_node<'a>(tree: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    if tree["name"] == name {
        return Some(tree);
    }
    tree["children"]
        .as_array()?
        .iter()
        .find_map(|c| find_node(c, name))
}

/// Asserts the exit code of `out`, showing `what` and its stderr when it differs.
pub fn assert_code(out: &Output, code: i32, what: impl std::fmt::Display) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small tmpfs, unmounted on drop (also when the test fails).
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Tmpfs {
                dir: dir.to_path_buf(),
            },
            Ok(out) => panic!(
                "this test needs a small tmpfs to fill up and could not mount one at {} (run it as root, as .ci/test does): {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!(
                "this test needs `mount -t tmpfs` (run it as root, as .ci/test does): {e}"
            ),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the filesystem of `path` until a write fails (ENOSPC).
pub fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("create filler");
    let block = vec![0u8; 4096];
    for _ in 0..100_000 {
        if file.write_all(&block).is_err() {
            return;
        }
    }
    panic!("the disk did not fill up after 400 MB");
}
