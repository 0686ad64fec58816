//! `coordinator demo` as the cluster tests drive it: start it in a temp dir, read its nodes from the cluster file,
//! list and hash a node's files, stop it with Ctrl-C and find what is left running under its directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::{command, request};

/// One node of the demo as its cluster file names it.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub api: String,
    pub data: String,
    /// `DIR/<name>`: the node's working directory.
    pub dir: PathBuf,
}

/// A running `coordinator demo`; killed on drop (its children die with their lifeline).
pub struct Demo {
    pub child: Child,
    pub dir: PathBuf,
    pub stderr: PathBuf,
    pub nodes: Vec<Node>,
}

impl Demo {
    /// Starts `coordinator demo --nodes N --dir <tmp>/demo [extra...]` and waits until every node answers
    /// `/health` 200.
    pub fn start(tmp: &Path, nodes: usize, extra: &[&str]) -> Demo {
        let dir = tmp.join("demo");
        let stderr = tmp.join("demo.stderr");
        let child = command(tmp)
            .args(["demo", "--nodes", &nodes.to_string(), "--dir"])
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("demo stderr file"))
            .spawn()
            .expect("spawn demo");
        let mut demo = Demo {
            child,
            dir,
            stderr,
            nodes: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            demo.nodes = cluster_nodes(&demo.dir);
            if demo.nodes.len() == nodes && demo.nodes.iter().all(|n| health(n).0 == 200) {
                return demo;
            }
            assert!(
                Instant::now() < deadline,
                "demo nodes did not come up; demo stderr:\n{}",
                demo.stderr_text()
            );
            assert!(
                demo.child.try_wait().unwrap().is_none(),
                "demo exited early:\n{}",
                demo.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Ctrl-C, then waits for the demo to exit (it stops every node); its exit status.
    pub fn interrupt(&mut self, timeout: Duration) -> ExitStatus {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "demo did not stop after Ctrl-C; stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to `timeout`) until no process has its working directory under the demo dir; panics naming
    /// what is left.
    pub fn assert_nothing_left(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !processes_under(&self.dir).is_empty() {
            assert!(
                Instant::now() < deadline,
                "processes left under the demo dir: {:?}",
                processes_under(&self.dir)
                    .iter()
                    .map(|pid| (pid, cmdline(*pid)))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nodes of the demo's cluster file, in order (planner first).
pub fn cluster_nodes(dir: &Path) -> Vec<Node> {
    let text = std::fs::read_to_string(dir.join("cluster.yaml")).unwrap_or_default();
    let mut nodes: Vec<Node> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- name: ") {
            nodes.push(Node {
                name: name.to_string(),
                api: String::new(),
                data: String::new(),
                dir: dir.join(name),
            });
        } else if let (Some(url), Some(n)) = (line.strip_prefix("api_url: "), nodes.last_mut()) {
            n.api = url.to_string();
        } else if let (Some(url), Some(n)) = (line.strip_prefix("data_url: "), nodes.last_mut()) {
            n.data = url.to_string();
        }
    }
    nodes.retain(|n| !n.api.is_empty() && !n.data.is_empty());
    nodes
}

/// `/health` of a node: its code (0 when it does not answer) and body.
pub fn health(node: &Node) -> (u16, serde_json::Value) {
    request("GET", &format!("{}/health", node.api), None).unwrap_or((0, serde_json::Value::Null))
}

/// `GET {api}{path}` when it answers 200.
pub fn get_json(node: &Node, path: &str) -> Option<serde_json::Value> {
    match request("GET", &format!("{}{path}", node.api), None) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// The files of `root` (recursively, hidden names and directories skipped: temp files are hidden) with their
/// sha256, keyed by the path relative to `root`. Only files last modified at least `settled` ago.
pub fn hashed_files(root: &Path, settled: Duration) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let now = SystemTime::now();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let old_enough = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= settled);
            if !meta.is_file() || !old_enough {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&path) {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, hex::encode(Sha256::digest(&bytes)));
            }
        }
    }
    out
}

/// Processes whose working directory is under `dir` (the demo's daemons, data servers and jobs).
pub fn processes_under(dir: &Path) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// The pid of the daemon (`coordinator run ... --node NAME`) running in `node.dir`, if one runs.
pub fn daemon_pid(node: &Node) -> Option<u32> {
    processes_under(&node.dir).into_iter().find(|pid| {
        let line = cmdline(*pid);
        std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == node.dir)
            && line.contains(" run ")
            && line.ends_with(&format!("--node {}", node.name))
    })
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Writes `bytes` to `path` as a reader never sees it half written: a hidden temp file beside it, then a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let temp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// The settled game files of every worker, keyed by worker name.
pub fn worker_games(workers: &[Node]) -> BTreeMap<String, BTreeMap<String, String>> {
    workers
        .iter()
        .map(|w| {
            let files = hashed_files(&w.dir.join("data/games"), Duration::from_secs(3));
            (w.name.clone(), files)
        })
        .collect()
}

/// What the training node holds of `snapshot` that is missing or differs (worker, path, why).
pub fn not_converged(
    trainer: &BTreeMap<String, String>,
    snapshot: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (worker, files) in snapshot {
        for (rel, sha) in files {
            match trainer.get(&format!("{worker}/{rel}")) {
                None => out.push(format!("{worker}/{rel}: missing")),
                Some(got) if got != sha => {
                    out.push(format!("{worker}/{rel}: sha256 {got} != {sha}"))
                }
                Some(_) => {}
            }
        }
    }
    out
}

/// Every game file the training node holds is one worker's file, under that worker's name, with the worker's
/// bytes; no content is held more often than the workers hold it (no file under two names).
pub fn assert_games_exactly_once(trainer: &BTreeMap<String, String>, workers: &[Node]) {
    let now: BTreeMap<String, BTreeMap<String, String>> = workers
        .iter()
        .map(|w| {
            (
                w.name.clone(),
                hashed_files(&w.dir.join("data/games"), Duration::ZERO),
            )
        })
        .collect();
    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    let mut made: BTreeMap<&str, usize> = BTreeMap::new();
    for files in now.values() {
        for sha in files.values() {
            *made.entry(sha).or_default() += 1;
        }
    }
    for (path, sha) in trainer {
        let (worker, rel) = path.split_once('/').unwrap_or(("", path));
        let original = now.get(worker).and_then(|f| f.get(rel));
        assert_eq!(
            original,
            Some(sha),
            "training node's games/{path} is not {worker}'s {rel} byte for byte"
        );
        *held.entry(sha).or_default() += 1;
    }
    for (sha, count) in held {
        assert!(
            count <= made.get(sha).copied().unwrap_or(0),
            "the training node holds the file with sha256 {sha} {count} times, more than the workers made it"
        );
    }
}

/// Waits (up to `timeout`) until the training node holds every file of `snapshot` intact, then checks it holds
/// each only once ([`assert_games_exactly_once`]). Asks it for a sync cycle now and then meanwhile.
pub fn wait_games_on_trainer(
    trainer: &Node,
    workers: &[Node],
    snapshot: &BTreeMap<String, BTreeMap<String, String>>,
    timeout: Duration,
) {
    let games = trainer.dir.join("data/games");
    let deadline = Instant::now() + timeout;
    let mut next_nudge = Instant::now() + Duration::from_secs(5);
    loop {
        let held = hashed_files(&games, Duration::ZERO);
        let missing = not_converged(&held, snapshot);
        if missing.is_empty() {
            assert_games_exactly_once(&held, workers);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "games not on the training node within {timeout:?}: {missing:?}\ntrainer sync: {}",
            get_json(trainer, "/sync").unwrap_or_default()
        );
        if Instant::now() > next_nudge {
            let _ = request("POST", &format!("{}/sync/run", trainer.api), None);
            next_nudge = Instant::now() + Duration::from_secs(5);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
