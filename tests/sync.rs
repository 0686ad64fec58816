//! Issue 9: the sync coordinator, black-box. Real daemons (a training node and a selfplay node) syncing over http
//! on loopback, and a fake peer data server (in this file) for the faults a real one does not produce on demand:
//! a connection cut mid-file, a peer that accepts and never answers, bytes that do not match the inventory,
//! a corrupt database, a slow transfer interrupted by SIGTERM. Every wait has a deadline.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{command, free_port, run_with_timeout, Daemon};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------------------
// Config helpers

struct Node {
    name: &'static str,
    api: u16,
    data: u16,
    roles: &'static str,
    ssh: Option<String>,
}

fn cluster_yaml(nodes: &[&Node]) -> String {
    let mut out = String::from("cluster:\n  nodes:\n");
    for n in nodes {
        out.push_str(&format!(
            "    - name: {}\n      api_url: http://127.0.0.1:{}\n      data_url: http://127.0.0.1:{}\n      roles: {}\n      gpu: H100\n",
            n.name, n.api, n.data, n.roles
        ));
        if let Some(ssh) = &n.ssh {
            out.push_str(&format!("      ssh: {ssh}\n"));
        }
    }
    out
}

fn node_config(me: &Node, cluster: &[&Node], sync_extra: &str) -> String {
    format!(
        r#"node:
  name: {name}
{cluster}supervision:
  shutdown_timeout: 3s
  watchdog_deadline: 5s
  watchdog_check_every: 200ms
dead_letters:
  path: state/dead_letters.db
api:
  bind: 127.0.0.1:{api}
logging:
  format: json
  level: info
data_server:
  bind: 127.0.0.1:{data}
  root: data
scheduler:
  enabled: false
resources:
  enabled: false
sync:
  interval: 1h
  min_free_disk: 1MiB
{transports}{sync_extra}"#,
        name = me.name,
        cluster = cluster_yaml(cluster),
        transports = if sync_extra.contains("  transports:") {
            ""
        } else {
            "  transports: [http]\n"
        },
        api = me.api,
        data = me.data,
    )
}

fn node(name: &'static str, roles: &'static str) -> Node {
    Node {
        name,
        api: free_port(),
        data: free_port(),
        roles,
        ssh: None,
    }
}

fn start(me: &Node, cluster: &[&Node], sync_extra: &str, prepare: impl FnOnce(&Path)) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    prepare(dir.path());
    Daemon::start_in(dir, &node_config(me, cluster, sync_extra))
}

/// Writes a real games database of `games` games with the daemon's own selfplay stand-in.
fn write_games(file: &Path, games: u32, seed: u64) {
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut cmd = command(file.parent().unwrap());
    cmd.args([
        "selfplay-demo",
        "--board",
        "hex8",
        "--players",
        "2",
        "--games",
        &games.to_string(),
        "--out",
        file.to_str().unwrap(),
        "--think-time-ms",
        "0",
        "--seed",
        &seed.to_string(),
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "selfplay-demo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    age(file);
}

/// Writes `content` to `file` with an mtime a minute ago (older than data_server.settle).
fn write_old(file: &Path, content: &[u8]) {
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, content).unwrap();
    age(file);
}

/// Sets `file`'s mtime a minute back, so the next inventory lists it (data_server.settle).
fn age(file: &Path) {
    std::fs::File::options()
        .write(true)
        .open(file)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(60)))
        .expect("age the file");
}

/// `POST /dead-letters/{id}/replay` of `letter` (an entry of `GET /dead-letters`), which must be accepted.
fn replay_letter(daemon: &Daemon, letter: &Value) {
    let id = letter["id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or(letter["id"].to_string());
    let (status, answer) = common::request(
        "POST",
        &format!("{}/dead-letters/{id}/replay", daemon.api),
        None,
    )
    .expect("replay");
    assert!(status < 300, "{status} {answer}");
}

/// `coordinator sync --once` against `daemon`; (exit code, report).
fn sync_once(daemon: &Daemon, peer: Option<&str>) -> (i32, Value) {
    let mut cmd = command(daemon.path());
    cmd.args(["sync", "--once", "--api", &daemon.api]);
    if let Some(peer) = peer {
        cmd.args(["--peer", peer]);
    }
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let report = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (out.status.code().unwrap_or(-1), report)
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `games` operation of a cycle report.
fn games_operation(report: &Value) -> &Value {
    report["operations"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["category"] == "games"))
        .unwrap_or_else(|| panic!("no games operation: {report:#}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Files under `dir` whose name ends in `.partial` (hidden temp downloads), recursively.
fn partials(dir: &Path) -> Vec<PathBuf> {
    walk_files(dir)
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(".partial"))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Two real daemons

#[test]
fn a_training_node_pulls_a_workers_games_and_the_worker_pulls_models() {
    let trainer = node("trainer", "[training]");
    let worker = node("worker", "[selfplay]");
    let cluster = [&trainer, &worker];
    let worker_daemon = start(&worker, &cluster, "", |dir| {
        write_games(&dir.join("data/games/hex8_2p/hex8_2p-0001.db"), 3, 1);
    });
    let trainer_daemon = start(&trainer, &cluster, "", |dir| {
        write_old(&dir.join("data/models/hex8_2p.onnx"), &[7u8; 100_000]);
        // A file of the same name from another worker must survive beside the pulled one.
        write_games(&dir.join("data/games/hex8_2p/hex8_2p-0001.db"), 1, 9);
    });

    let (code, report) = sync_once(&trainer_daemon, None);
    assert_eq!(
        code,
        0,
        "report: {report:#}\nlog:\n{}",
        trainer_daemon.logs()
    );
    // The trainer's first interval cycle (a second after it starts) may have pulled it just before this one:
    // exactly one cycle installed it, and that cycle's report is the one read below.
    let (_, view) = trainer_daemon.get("/sync");
    let cycles = view["cycles"].as_array().expect("cycles").clone();
    let installed: u64 = cycles
        .iter()
        .map(|c| c["installed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(installed, 1, "{view:#}");
    let report = cycles
        .into_iter()
        .find(|c| c["installed"] == 1)
        .expect("the cycle that installed it");
    let pulled = trainer_daemon
        .path()
        .join("data/games/worker/hex8_2p/hex8_2p-0001.db");
    let source = worker_daemon
        .path()
        .join("data/games/hex8_2p/hex8_2p-0001.db");
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&source).unwrap()
    );
    assert!(trainer_daemon
        .path()
        .join("data/games/hex8_2p/hex8_2p-0001.db")
        .exists());
    assert_eq!(report["games"]["hex8_2p"], 3, "{report:#}");
    let games_op = games_operation(&report);
    assert_eq!(games_op["peer"], "worker");
    let attempt = &games_op["files"][0]["attempts"][0];
    assert_eq!(attempt["transport"], "http");
    assert_eq!(attempt["success"], true);
    assert!(attempt["bytes"].as_u64().unwrap() > 0);

    // Nothing to do the second time: same size and sha256.
    let (code, again) = sync_once(&trainer_daemon, Some("worker"));
    assert_eq!(code, 0, "{again:#}");
    assert_eq!(again["installed"], 0, "{again:#}");
    assert_eq!(again["bytes"], 0, "{again:#}");

    // A changed file replaces the old copy.
    write_games(&source, 5, 2);
    let (code, changed) = sync_once(&trainer_daemon, None);
    assert_eq!(code, 0, "{changed:#}");
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&source).unwrap()
    );

    // A notice from the worker makes the trainer pull within about a second.
    let second = worker_daemon
        .path()
        .join("data/games/hex8_2p/hex8_2p-0002.db");
    write_games(&second, 2, 3);
    let noticed = Instant::now();
    let (status, _) = trainer_daemon.post("/sync/notify?peer=worker");
    assert_eq!(status, 202);
    let target = trainer_daemon
        .path()
        .join("data/games/worker/hex8_2p/hex8_2p-0002.db");
    wait_for("the noticed file", Duration::from_secs(10), || {
        target.exists()
    });
    assert!(
        noticed.elapsed() < Duration::from_secs(5),
        "{:?}",
        noticed.elapsed()
    );
    let (status, _) = trainer_daemon.post("/sync/notify?peer=nobody");
    assert_eq!(status, 400);

    // The worker pulls models from the training node.
    let (code, models) = sync_once(&worker_daemon, None);
    assert_eq!(code, 0, "{models:#}\n{}", worker_daemon.logs());
    assert_eq!(
        std::fs::read(
            worker_daemon
                .path()
                .join("data/models/trainer/hex8_2p.onnx")
        )
        .unwrap(),
        vec![7u8; 100_000]
    );

    // What an operator sees.
    let (status, view) = trainer_daemon.get("/sync");
    assert_eq!(status, 200);
    assert_eq!(view["node"], "trainer");
    assert!(view["cycles"].as_array().unwrap().len() >= 3, "{view:#}");
    assert!(view["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["peer"] == "worker" && b["transport"] == "http" && b["state"] == "closed"));
    assert!(view["last_successful_sync"].is_string(), "{view:#}");
    let (_, metrics) =
        common::request("GET", &format!("{}/metrics", trainer_daemon.api), None).unwrap();
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for name in [
        "coordinator_sync_bytes_total{",
        "coordinator_sync_attempts_total{",
        "coordinator_sync_operation_duration_seconds_bucket{",
        "coordinator_sync_seconds_since_last_successful_sync",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let (_, status) = trainer_daemon.get("/status");
    assert!(
        status["sync"]["last_successful_sync"].is_string(),
        "{status:#}"
    );
    let (_, health) = trainer_daemon.get("/health");
    assert_eq!(health["checks"]["sync"]["status"], "ok", "{health:#}");
    let logs = trainer_daemon.logs();
    let attempt_line = logs
        .lines()
        .find(|l| l.contains("sync transport attempt succeeded"))
        .expect("attempt event");
    for field in [
        "sync_operation",
        "transport",
        "transport_attempt",
        "success",
        "error",
        "duration_ms",
        "bytes",
        "fallback_to",
    ] {
        assert!(
            attempt_line.contains(&format!("\"{field}\"")),
            "{field}: {attempt_line}"
        );
    }
}

#[test]
fn games_a_workers_jobs_write_reach_the_training_node_through_its_notice() {
    let trainer = node("trainer", "[training]");
    let worker = node("worker", "[selfplay]");
    let cluster = [&trainer, &worker];
    // The worker plans and runs the demo jobs; the trainer's interval is an hour, so only a notice moves games.
    let trainer_config =
        node_config(&trainer, &cluster, "").replace("cluster:\n", "cluster:\n  planner: worker\n");
    let trainer_daemon = Daemon::start_in(tempfile::tempdir().unwrap(), &trainer_config);
    let worker_config = node_config(&worker, &cluster, "")
        .replace("cluster:\n", "cluster:\n  planner: worker\n")
        .replace(
        "scheduler:\n  enabled: false\n",
        "scheduler:\n  enabled: true\n  interval: 30s\n  max_games_per_job: 3\n  jobs:\n    output_dir: data/games\n    logs_dir: state/jobs\n",
    );
    let worker_daemon = Daemon::start_in(tempfile::tempdir().unwrap(), &worker_config);
    let pulled = trainer_daemon.path().join("data/games/worker");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let files: Vec<PathBuf> = walk_files(&pulled)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "db"))
            .collect();
        if let Some(file) = files.first() {
            let relative = file.strip_prefix(&pulled).unwrap();
            let source = worker_daemon.path().join("data/games").join(relative);
            assert_eq!(
                std::fs::read(file).unwrap(),
                std::fs::read(&source).unwrap()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no games reached the trainer\nworker:\n{}\ntrainer:\n{}",
            worker_daemon.logs(),
            trainer_daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(trainer_daemon
        .logs()
        .contains("peer has new files; pulling from it soon"));
}

/// Every file under `dir`, recursively.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return out;
    };
    for item in listing.flatten() {
        let path = item.path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn an_unreachable_peer_opens_its_circuit_and_others_are_unaffected() {
    let trainer = node("trainer", "[training]");
    let worker = node("worker", "[selfplay]");
    let dead = node("dead", "[selfplay]"); // nothing listens on its ports
    let cluster = [&trainer, &worker, &dead];
    let _worker_daemon = start(&worker, &cluster, "", |dir| {
        write_old(&dir.join("data/games/a.jsonl"), b"{}\n");
    });
    let extra = "  http:\n    breaker:\n      failure_threshold: 2\n      recovery: 1h\n      max_recovery: 1h\n";
    let trainer_daemon = start(&trainer, &cluster, extra, |_| {});
    for round in 0..3 {
        let (code, report) = sync_once(&trainer_daemon, None);
        assert_eq!(
            code, 1,
            "round {round}: a failed operation exits 1: {report:#}"
        );
        let ops = report["operations"].as_array().unwrap();
        let dead_ops: Vec<&Value> = ops.iter().filter(|o| o["peer"] == "dead").collect();
        let worker_ops: Vec<&Value> = ops.iter().filter(|o| o["peer"] == "worker").collect();
        assert!(
            worker_ops.iter().all(|o| o["outcome"] == "ok"),
            "{report:#}"
        );
        if round < 2 {
            assert!(
                dead_ops.iter().all(|o| o["outcome"] == "failed"),
                "{report:#}"
            );
        } else {
            assert!(
                dead_ops
                    .iter()
                    .all(|o| o["outcome"] == "skipped" && o["error"] == "circuit open"),
                "{report:#}"
            );
        }
    }
    assert!(trainer_daemon
        .path()
        .join("data/games/worker/a.jsonl")
        .exists());
    let (_, view) = trainer_daemon.get("/sync");
    assert!(
        view["breakers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["peer"] == "dead" && b["state"] == "open"),
        "{view:#}"
    );
    assert!(trainer_daemon
        .logs()
        .contains("circuit open; peer skipped this cycle"));
}

// ---------------------------------------------------------------------------------------------------------
// A fake peer data server

#[derive(Clone, Copy, PartialEq)]
enum Serve {
    /// Answer `Range` requests properly.
    Normal,
    /// Send this many bytes of the body, then close the connection (a peer killed mid-transfer).
    CutAfter(usize),
    /// Accept, read the request, never answer.
    Hang,
    /// Send the body with its first byte flipped (content not matching the inventory).
    Flip,
    /// Send 4 KiB every 100 ms.
    Trickle,
    /// Send one byte a second: the attempt stays alive (bytes keep arriving) but never ends.
    Drip,
}

struct FakePeer {
    port: u16,
    mode: Arc<Mutex<Serve>>,
    file_requests: Arc<AtomicUsize>,
    ranges: Arc<Mutex<Vec<Option<u64>>>>,
}

impl FakePeer {
    /// Serves `files` (category, path, content) as node `name`.
    fn start(name: &str, files: Vec<(&str, &str, Vec<u8>)>, mode: Serve) -> FakePeer {
        Self::start_on(0, name, files, mode)
    }

    /// Like [`FakePeer::start`], on a chosen loopback port (a peer that comes up where nothing listened).
    fn start_on(port: u16, name: &str, files: Vec<(&str, &str, Vec<u8>)>, mode: Serve) -> FakePeer {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let file_requests = Arc::new(AtomicUsize::new(0));
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let files: Arc<Vec<(String, String, Vec<u8>)>> = Arc::new(
            files
                .into_iter()
                .map(|(c, p, b)| (c.to_string(), p.to_string(), b))
                .collect(),
        );
        let name = name.to_string();
        {
            let (mode, file_requests, ranges) =
                (mode.clone(), file_requests.clone(), ranges.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let (mode, files, file_requests, ranges, name) = (
                        mode.clone(),
                        files.clone(),
                        file_requests.clone(),
                        ranges.clone(),
                        name.clone(),
                    );
                    std::thread::spawn(move || {
                        // Copied out first: a guard kept for the whole (slow) answer would hold up every
                        // other connection.
                        let mode = *mode.lock().unwrap();
                        let _ = serve(stream, &name, &files, mode, &file_requests, &ranges);
                    });
                }
            });
        }
        FakePeer {
            port,
            mode,
            file_requests,
            ranges,
        }
    }

    fn set(&self, mode: Serve) {
        *self.mode.lock().unwrap() = mode;
    }
}

fn serve(
    stream: TcpStream,
    name: &str,
    files: &[(String, String, Vec<u8>)],
    mode: Serve,
    file_requests: &AtomicUsize,
    ranges: &Mutex<Vec<Option<u64>>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = value.trim().trim_end_matches('-').parse::<u64>().ok();
        }
    }
    let mut out = stream;
    let respond =
        |out: &mut TcpStream, status: &str, extra: &str, body: &[u8]| -> std::io::Result<()> {
            write!(
                out,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                body.len()
            )?;
            out.write_all(body)
        };
    if path == "/inventory.json" {
        let entries: Vec<Value> = files
            .iter()
            .map(|(c, p, b)| serde_json::json!({"category": c, "path": p, "size": b.len(), "mtime": now_unix() - 10.0, "sha256": sha256_hex(b)}))
            .collect();
        let body = serde_json::json!({"node": name, "generated_at": "2026-01-01T00:00:00Z", "files": entries}).to_string();
        return respond(
            &mut out,
            "200 OK",
            "Content-Type: application/json\r\n",
            body.as_bytes(),
        );
    }
    let Some((_, _, content)) = files
        .iter()
        .find(|(c, p, _)| path == format!("/files/{c}/{p}"))
    else {
        return respond(&mut out, "404 Not Found", "", b"{}");
    };
    file_requests.fetch_add(1, Ordering::SeqCst);
    ranges.lock().unwrap().push(range);
    let start = range.unwrap_or(0) as usize;
    let body = &content[start.min(content.len())..];
    let (status, extra) = if range.is_some() {
        (
            "206 Partial Content",
            format!(
                "Content-Range: bytes {start}-{}/{}\r\n",
                content.len().saturating_sub(1),
                content.len()
            ),
        )
    } else {
        ("200 OK", String::new())
    };
    match mode {
        Serve::Normal => respond(&mut out, status, &extra, body),
        Serve::Hang => {
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        }
        Serve::CutAfter(n) => {
            write!(
                out,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                body.len()
            )?;
            out.write_all(&body[..n.min(body.len())])?;
            out.flush()?;
            out.shutdown(std::net::Shutdown::Both)
        }
        Serve::Flip => {
            let mut flipped = body.to_vec();
            if let Some(first) = flipped.first_mut() {
                *first ^= 0xFF;
            }
            respond(&mut out, status, &extra, &flipped)
        }
        Serve::Trickle => {
            write!(
                out,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                body.len()
            )?;
            for chunk in body.chunks(4096) {
                out.write_all(chunk)?;
                out.flush()?;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        Serve::Drip => {
            write!(
                out,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                body.len()
            )?;
            for byte in body.iter().take(120) {
                out.write_all(&[*byte])?;
                out.flush()?;
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        }
    }
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The config of a training node whose only peer is the fake one at `port`.
fn trainer_config_with_fake_peer(port: u16, sync_extra: &str) -> String {
    let trainer = node("trainer", "[training]");
    let fake = Node {
        name: "fake",
        api: free_port(),
        data: port,
        roles: "[selfplay]",
        ssh: None,
    };
    node_config(&trainer, &[&trainer, &fake], sync_extra)
}

/// A training node whose only peer is the fake one at `port`.
fn trainer_with_fake_peer(port: u16, sync_extra: &str) -> Daemon {
    Daemon::start_in(
        tempfile::tempdir().expect("tempdir"),
        &trainer_config_with_fake_peer(port, sync_extra),
    )
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_transfer_cut_mid_file_leaves_nothing_under_the_final_name_and_resumes() {
    let content = pattern(4 << 20);
    let peer = FakePeer::start(
        "fake",
        vec![("games", "big.bin", content.clone())],
        Serve::CutAfter(1 << 20),
    );
    let extra = "  budget:\n    attempts: 1\n";
    let daemon = trainer_with_fake_peer(peer.port, extra);
    let final_path = daemon.path().join("data/games/fake/big.bin");
    let (code, report) = sync_once(&daemon, None);
    assert_eq!(code, 1, "{report:#}");
    assert!(!final_path.exists(), "nothing under the final name");
    let kept = partials(&daemon.path().join("data/games"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    let have = std::fs::metadata(&kept[0]).unwrap().len();
    assert!(have > 0 && have < content.len() as u64, "{have}");

    peer.set(Serve::Normal);
    let (code, report) = sync_once(&daemon, None);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(std::fs::read(&final_path).unwrap(), content);
    let remainder = content.len() as u64 - have;
    let chunk = 64 * 1024;
    let fetched = report["bytes"].as_u64().unwrap();
    assert!(
        fetched <= remainder + chunk,
        "fetched {fetched}, remainder {remainder}"
    );
    assert_eq!(
        peer.ranges.lock().unwrap().last().copied().flatten(),
        Some(have)
    );
    assert!(partials(&daemon.path().join("data/games")).is_empty());
}

#[test]
fn a_peer_that_never_answers_ends_within_the_budget() {
    let peer = FakePeer::start("fake", vec![("games", "a.bin", pattern(1000))], Serve::Hang);
    let extra = "  budget:\n    total: 3s\n    per_attempt: 1s\n    backoff_initial: 200ms\n    backoff_max: 1s\n";
    let daemon = trainer_with_fake_peer(peer.port, extra);
    let started = Instant::now();
    let (code, report) = sync_once(&daemon, None);
    assert_eq!(code, 1, "{report:#}");
    let file = &report["operations"][0]["files"][0];
    let took = file["duration_ms"].as_u64().unwrap();
    assert!(
        took <= 4000,
        "the file's operation took {took} ms, budget 3 s: {report:#}"
    );
    let error = file["error"].as_str().unwrap();
    assert!(
        error.contains("budget exhausted") || error.contains("all transports failed"),
        "{error}"
    );
    assert!(error.contains("http attempt 1"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(!daemon.path().join("data/games/fake/a.bin").exists());
}

#[test]
fn flipped_bytes_are_never_installed_retried_once_then_dead_lettered() {
    let peer = FakePeer::start(
        "fake",
        vec![("games", "a.bin", pattern(200_000))],
        Serve::Flip,
    );
    let daemon = trainer_with_fake_peer(peer.port, "");
    let (code, report) = sync_once(&daemon, None);
    assert_eq!(code, 1, "{report:#}");
    assert!(!daemon.path().join("data/games/fake/a.bin").exists());
    assert_eq!(
        peer.file_requests.load(Ordering::SeqCst),
        2,
        "one try and one retry"
    );
    let error = report["operations"][0]["files"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("sha256 mismatch"), "{error}");
    assert!(
        partials(&daemon.path().join("data/games")).is_empty(),
        "the temp file is deleted"
    );
    let (_, letters) = daemon.get("/dead-letters");
    let letters = letters["dead_letters"].as_array().unwrap().clone();
    let letter = letters
        .iter()
        .find(|l| l["actor"] == "sync" && l["msg"] == "PullFile")
        .unwrap_or_else(|| panic!("no PullFile dead letter: {letters:?}"))
        .clone();

    // The same bad version is not fetched again (no dead letter per cycle), and the cycle is not a failure.
    let (code, report) = sync_once(&daemon, None);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["operations"][0]["skipped"], 1, "{report:#}");
    assert_eq!(peer.file_requests.load(Ordering::SeqCst), 2);
    let (_, after) = daemon.get("/dead-letters");
    assert_eq!(after["total"], letters.len(), "{after:#}");

    // Replaying the dead letter fetches it again (and, still flipped, fails the same way).
    replay_letter(&daemon, &letter);
    wait_for("the replayed pull", Duration::from_secs(30), || {
        peer.file_requests.load(Ordering::SeqCst) == 4
    });
}

/// A loopback HTTP/1.1 proxy in front of a real data server that flips the first body byte of every `/files/`
/// response while `flip` is set (requests and responses one after the other per connection, as ureq sends them).
struct FlippingProxy {
    port: u16,
    flip: Arc<std::sync::atomic::AtomicBool>,
    file_requests: Arc<AtomicUsize>,
}

impl FlippingProxy {
    fn start(upstream: u16) -> FlippingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let flip = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let file_requests = Arc::new(AtomicUsize::new(0));
        let (flip_in, count_in) = (flip.clone(), file_requests.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (flip, count) = (flip_in.clone(), count_in.clone());
                std::thread::spawn(move || {
                    let _ = Self::relay(client, upstream, &flip, &count);
                });
            }
        });
        FlippingProxy {
            port,
            flip,
            file_requests,
        }
    }

    fn head(reader: &mut impl BufRead) -> std::io::Result<Option<String>> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            head.push_str(&line);
            if line == "\r\n" {
                return Ok(Some(head));
            }
        }
    }

    fn relay(
        client: TcpStream,
        upstream: u16,
        flip: &std::sync::atomic::AtomicBool,
        count: &AtomicUsize,
    ) -> std::io::Result<()> {
        client.set_read_timeout(Some(Duration::from_secs(30)))?;
        let server = TcpStream::connect(("127.0.0.1", upstream))?;
        server.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut from_client = BufReader::new(client.try_clone()?);
        let mut from_server = BufReader::new(server.try_clone()?);
        let (mut to_client, mut to_server) = (client, server);
        while let Some(request) = Self::head(&mut from_client)? {
            let is_file = request
                .split_whitespace()
                .nth(1)
                .is_some_and(|p| p.starts_with("/files/"));
            if is_file {
                count.fetch_add(1, Ordering::SeqCst);
            }
            to_server.write_all(request.as_bytes())?;
            let Some(response) = Self::head(&mut from_server)? else {
                return Ok(());
            };
            let length = response
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            std::io::Read::read_exact(&mut from_server, &mut body)?;
            if is_file && flip.load(Ordering::SeqCst) {
                if let Some(first) = body.first_mut() {
                    *first ^= 0x01;
                }
            }
            to_client.write_all(response.as_bytes())?;
            to_client.write_all(&body)?;
        }
        Ok(())
    }
}

#[test]
fn a_byte_flipped_in_transit_by_a_proxy_is_never_installed_retried_once_then_dead_lettered() {
    let trainer = node("trainer", "[training]");
    let worker = node("worker", "[selfplay]");
    let content = pattern(300_000);
    let worker_daemon = start(&worker, &[&trainer, &worker], "", |dir| {
        write_old(&dir.join("data/games/a.bin"), &content);
    });
    let proxy = FlippingProxy::start(worker.data);
    // The trainer reaches the worker's real data server only through the proxy.
    let worker_via_proxy = Node {
        name: worker.name,
        api: worker.api,
        data: proxy.port,
        roles: worker.roles,
        ssh: None,
    };
    let trainer_daemon = start(&trainer, &[&trainer, &worker_via_proxy], "", |_| {});
    let (code, report) = sync_once(&trainer_daemon, None);
    assert_eq!(code, 1, "{report:#}");
    let pulled = trainer_daemon.path().join("data/games/worker/a.bin");
    assert!(!pulled.exists(), "a flipped file is never installed");
    assert_eq!(
        proxy.file_requests.load(Ordering::SeqCst),
        2,
        "one try and one retry"
    );
    let error = games_operation(&report)["files"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("sha256 mismatch"), "{report:#}");
    assert!(partials(&trainer_daemon.path().join("data/games")).is_empty());
    let (_, letters) = trainer_daemon.get("/dead-letters");
    let letter = letters["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["actor"] == "sync" && l["msg"] == "PullFile")
        .unwrap_or_else(|| panic!("no PullFile dead letter: {letters:#}"))
        .clone();

    // The path heals; replaying the letter pulls the file intact.
    proxy.flip.store(false, Ordering::SeqCst);
    replay_letter(&trainer_daemon, &letter);
    wait_for("the replayed pull", Duration::from_secs(30), || {
        pulled.exists()
    });
    assert_eq!(std::fs::read(&pulled).unwrap(), content);
    drop(worker_daemon);
}

#[test]
fn a_corrupt_database_is_quarantined_not_installed() {
    let mut db = b"SQLite format 3\0".to_vec();
    db.extend(vec![0xABu8; 8192 - db.len()]);
    let peer = FakePeer::start("fake", vec![("games", "bad.db", db.clone())], Serve::Normal);
    let daemon = trainer_with_fake_peer(peer.port, "");
    let (code, report) = sync_once(&daemon, None);
    assert_eq!(code, 1, "{report:#}");
    assert!(!daemon.path().join("data/games/fake/bad.db").exists());
    let quarantine = daemon.path().join("data/quarantine/games/fake");
    let moved: Vec<_> = std::fs::read_dir(&quarantine)
        .expect("quarantine dir")
        .flatten()
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(std::fs::read(moved[0].path()).unwrap(), db);
    assert_eq!(
        report["operations"][0]["files"][0]["outcome"],
        "quarantined"
    );
    assert!(daemon
        .logs()
        .contains("corrupt database moved to quarantine"));
    // Not fetched and quarantined again by later cycles while the peer lists the same version.
    let (code, report) = sync_once(&daemon, None);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["operations"][0]["skipped"], 1, "{report:#}");
    assert_eq!(
        std::fs::read_dir(&quarantine).expect("quarantine").count(),
        1
    );
}

#[test]
fn sigterm_mid_transfer_exits_in_time_with_no_partial_file_under_a_final_name() {
    let peer = FakePeer::start(
        "fake",
        vec![("games", "slow.bin", pattern(2 << 20))],
        Serve::Trickle,
    );
    let mut daemon = trainer_with_fake_peer(peer.port, "");
    let api = daemon.api.clone();
    std::thread::spawn(move || {
        let _ = common::request("POST", &format!("{api}/sync/run"), None);
    });
    let games = daemon.path().join("data/games");
    wait_for("a partial download", Duration::from_secs(15), || {
        partials(&games)
            .iter()
            .any(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
    });
    let stopping = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(15)).expect("exited");
    assert_eq!(status.code(), Some(0), "{}", daemon.logs());
    // shutdown_timeout is 3 s per actor; the whole stop stays well within a few of them.
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
    assert!(!games.join("fake/slow.bin").exists());
}

// ---------------------------------------------------------------------------------------------------------
// rsync over a real sshd, aria2c

/// `sync.rsync` settings reaching the test sshd with its generated key, files under `remote_root`.
fn rsync_extra(dir: &Path, port: u16, remote_root: &Path, transports: &str) -> String {
    format!(
        "  transports: {transports}\n  budget:\n    attempts: 1\n  rsync:\n    remote_root: {root}\n    ssh_args: [\"-p\", \"{port}\", \"-i\", \"{key}\", \"-o\", \"UserKnownHostsFile={known}\", \"-o\", \"IdentitiesOnly=yes\"]\n",
        root = remote_root.display(),
        key = dir.join("client_key").display(),
        known = dir.join("known_hosts").display(),
    )
}

#[test]
fn rsync_over_real_ssh_takes_over_when_http_is_cut() {
    let ssh_dir = tempfile::tempdir().unwrap();
    let (_sshd, ssh_port) = common::sshd::start_sshd(ssh_dir.path());
    let content = pattern(3 << 20);
    // The peer's files on "its" disk, reached over ssh; its data server (fake) lists them but cuts downloads.
    let remote_root = ssh_dir.path().join("peer-data");
    write_old(&remote_root.join("games/hex8_2p/big.bin"), &content);
    let peer = FakePeer::start(
        "fake",
        vec![("games", "hex8_2p/big.bin", content.clone())],
        Serve::CutAfter(100_000),
    );
    let trainer = node("trainer", "[training]");
    let fake = Node {
        name: "fake",
        api: free_port(),
        data: peer.port,
        roles: "[selfplay]",
        ssh: Some("root@127.0.0.1".to_string()),
    };
    let extra = rsync_extra(ssh_dir.path(), ssh_port, &remote_root, "[http, rsync]");
    let daemon = start(&trainer, &[&trainer, &fake], &extra, |_| {});
    let (code, report) = sync_once(&daemon, None);
    assert_eq!(code, 0, "{report:#}\n{}", daemon.logs());
    assert_eq!(
        std::fs::read(daemon.path().join("data/games/fake/hex8_2p/big.bin")).unwrap(),
        content
    );
    let attempts = report["operations"][0]["files"][0]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(attempts[0]["transport"], "http");
    assert_eq!(attempts[0]["success"], false);
    assert_eq!(attempts[0]["fallback_to"], "rsync");
    assert_eq!(attempts[1]["transport"], "rsync");
    assert_eq!(attempts[1]["success"], true, "{attempts:?}");
    // The http failure a fallback saved is a warning, never an error.
    let logs = daemon.logs();
    assert!(logs
        .lines()
        .any(|l| l.contains("\"level\":\"WARN\"") && l.contains("sync transport attempt failed")));
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("\"level\":\"ERROR\"") && l.contains("sync_operation")),
        "{logs}"
    );
    // accept-new recorded the host key (hashed or not, per the system's ssh_config).
    let known = std::fs::read_to_string(ssh_dir.path().join("known_hosts")).unwrap_or_default();
    assert!(known.contains("ssh-ed25519"), "{known}");
}

#[test]
fn aria2c_pulls_from_a_real_data_server_and_verifies_the_sha256() {
    let trainer = node("trainer", "[training]");
    let worker = node("worker", "[selfplay]");
    let cluster = [&trainer, &worker];
    let content = pattern(5 << 20);
    let _worker_daemon = start(&worker, &cluster, "", |dir| {
        write_old(&dir.join("data/games/big.bin"), &content);
    });
    let extra = "  transports: [aria2]\n  aria2:\n    connections: 4\n    split: 4\n";
    let daemon = start(&trainer, &cluster, extra, |_| {});
    let (code, report) = sync_once(&daemon, None);
    assert_eq!(code, 0, "{report:#}\n{}", daemon.logs());
    assert_eq!(
        std::fs::read(daemon.path().join("data/games/worker/big.bin")).unwrap(),
        content
    );
    let attempt = &report["operations"][0]["files"][0]["attempts"][0];
    assert_eq!(attempt["transport"], "aria2");
    assert_eq!(attempt["success"], true);
    assert!(partials(&daemon.path().join("data/games")).is_empty());
    let (_, view) = daemon.get("/sync");
    assert_eq!(view["transports"], serde_json::json!(["aria2"]));
}

// ---------------------------------------------------------------------------------------------------------
// Faults against real daemons, the watchdog, the queue bound, health and the free-disk reserve

/// Writes a `mib` MiB file of 1 MiB patterned blocks, each stamped with its index (a resume at a wrong offset
/// cannot pass the sha256), aged past data_server.settle; returns its sha256.
fn write_big(file: &Path, mib: u64) -> String {
    use sha2::{Digest, Sha256};
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).unwrap());
    let mut block = pattern(1 << 20);
    let mut hasher = Sha256::new();
    for i in 0..mib {
        block[..8].copy_from_slice(&i.to_le_bytes());
        hasher.update(&block);
        out.write_all(&block).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    age(file);
    hex::encode(hasher.finalize())
}

/// The sha256 of a file, streamed.
fn sha256_of(file: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(file).unwrap(), &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// True once `pid` no longer runs (gone, or a zombie nobody has reaped yet).
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// `POST path` on a thread, with a deadline long enough for a cycle that waits behind another.
fn post_in_background(
    daemon: &Daemon,
    path: &str,
) -> std::thread::JoinHandle<Result<(u16, Value), String>> {
    let url = format!("{}{path}", daemon.api);
    std::thread::spawn(move || common::request_within("POST", &url, None, Duration::from_secs(60)))
}

/// Asserts a health check's status and that its detail says `says`.
fn assert_check(check: &Value, status: &str, says: &str) {
    assert_eq!(check["status"], status, "{check:#}");
    assert!(
        check["detail"].as_str().is_some_and(|d| d.contains(says)),
        "{check:#}"
    );
}

/// The value of the unlabelled metric `name` in a `/metrics` text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_real_peer_killed_mid_transfer_leaves_nothing_under_the_final_name_and_the_next_cycle_resumes()
{
    let trainer = node("trainer", "[training]");
    let worker = node("worker", "[selfplay]");
    let cluster = [&trainer, &worker];
    let mib = 256;
    let mut source_sha = String::new();
    let mut worker_daemon = start(&worker, &cluster, "", |dir| {
        source_sha = write_big(&dir.join("data/games/big.bin"), mib);
    });
    let server_pid = common::data_server_pid(&worker_daemon);
    // The trainer's first interval cycle (a second after it starts) pulls the file.
    let trainer_daemon = start(&trainer, &cluster, "", |_| {});
    let games = trainer_daemon.path().join("data/games");
    let final_path = games.join("worker/big.bin");
    wait_for("the pull to be under way", Duration::from_secs(30), || {
        partials(&games)
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
    });
    // Freeze the data server (no further byte), then kill -9 the daemon and its data server.
    unsafe {
        libc::kill(server_pid, libc::SIGSTOP);
    }
    worker_daemon.signal(libc::SIGKILL);
    unsafe {
        libc::kill(server_pid, libc::SIGKILL);
    }
    worker_daemon
        .wait_exit(Duration::from_secs(10))
        .expect("the worker daemon died");
    wait_for(
        "the data server to be gone",
        Duration::from_secs(10),
        || process_gone(server_pid),
    );
    let status = trainer_daemon.wait_status(
        "the interrupted cycle to end",
        Duration::from_secs(30),
        |s| s["sync"]["running_cycle"].is_null() && s["sync"]["consecutive_failed_cycles"] == 1,
    );
    assert_eq!(status["sync"]["health"]["status"], "degraded", "{status:#}");
    assert!(!final_path.exists(), "nothing under the final name");
    let kept = partials(&games);
    assert_eq!(kept.len(), 1, "the partial download is kept: {kept:?}");
    let have = std::fs::metadata(&kept[0]).unwrap().len();
    let total = mib << 20;
    assert!(have > 0 && have < total, "kept {have} of {total}");
    let (_, view) = trainer_daemon.get("/sync");
    let interrupted = &view["cycles"][0];
    assert_eq!(interrupted["ok"], false, "{interrupted:#}");
    let games_op = games_operation(interrupted);
    assert_eq!(games_op["outcome"], "failed", "{games_op:#}");
    assert_eq!(games_op["files"][0]["outcome"], "failed", "{games_op:#}");

    // The worker comes back on the same ports and data; the next cycle resumes the kept prefix.
    let dir = std::mem::replace(&mut worker_daemon.dir, tempfile::tempdir().unwrap());
    let config = std::fs::read_to_string(dir.path().join("config.yaml")).unwrap();
    drop(worker_daemon);
    let _worker_daemon = Daemon::start_in(dir, &config);
    let (code, report) = sync_once(&trainer_daemon, Some("worker"));
    assert_eq!(code, 0, "{report:#}\n{}", trainer_daemon.logs());
    assert_eq!(report["installed"], 1, "{report:#}");
    let remainder = total - have;
    let chunk = 64 * 1024;
    let games_op = games_operation(&report);
    let attempts = games_op["files"][0]["attempts"].as_array().unwrap();
    let fetched: u64 = attempts.iter().map(|a| a["bytes"].as_u64().unwrap()).sum();
    assert!(
        fetched <= remainder + chunk,
        "the resumed attempt fetched {fetched} bytes, remainder {remainder}: {attempts:?}"
    );
    assert!(
        fetched >= remainder,
        "fetched {fetched} < remainder {remainder}"
    );
    assert_eq!(report["bytes"].as_u64(), Some(fetched), "{report:#}");
    assert_eq!(sha256_of(&final_path), source_sha);
    assert!(partials(&games).is_empty());
}

#[test]
fn a_cycle_past_its_deadline_is_cancelled_and_counted_a_full_queue_refuses_and_the_next_cycle_runs()
{
    let content = pattern(64 * 1024);
    let peer = FakePeer::start(
        "fake",
        vec![("games", "slow.bin", content.clone())],
        Serve::Drip,
    );
    let extra = "  cycle_deadline: 3s\n  queue_capacity: 1\n";
    let daemon = trainer_with_fake_peer(peer.port, extra);
    let games = daemon.path().join("data/games");
    let final_path = games.join("fake/slow.bin");

    // The first interval cycle (a second after start) gets one byte a second: alive, never done.
    let status = daemon.wait_status(
        "the first cycle to stall and end",
        Duration::from_secs(30),
        |s| s["sync"]["stalled_cycles"] == 1 && s["sync"]["running_cycle"].is_null(),
    );
    assert_eq!(status["sync"]["consecutive_failed_cycles"], 1, "{status:#}");
    assert_check(&status["sync"]["health"], "degraded", "stalled");
    assert!(!final_path.exists(), "nothing under the final name");
    let logs = daemon.logs();
    assert!(
        logs.lines().any(|l| l.contains("\"level\":\"WARN\"")
            && l.contains("sync cycle stalled past its deadline")),
        "{logs}"
    );
    let metrics = daemon.metrics();
    assert!(
        metrics.contains("coordinator_sync_cycles_total{outcome=\"stalled\"} 1"),
        "{metrics}"
    );
    let (_, view) = daemon.get("/sync");
    assert_eq!(view["cycles"][0]["cancelled"], true, "{view:#}");
    assert_eq!(view["cycles"][0]["ok"], false, "{view:#}");

    // A run starts the next cycle at once (it drips too); one more waits (queue_capacity 1); the third is
    // refused visibly.
    let first = post_in_background(&daemon, "/sync/run");
    daemon.wait_status("the run's cycle", Duration::from_secs(15), |s| {
        !s["sync"]["running_cycle"].is_null()
    });
    let second = post_in_background(&daemon, "/sync/run");
    daemon.wait_status("the queued run", Duration::from_secs(15), |s| {
        s["sync"]["pending_runs"] == 1
    });
    let (code, refused) = daemon.post("/sync/run");
    assert_eq!(code, 503, "{refused:#}");
    assert!(
        refused["error"].as_str().unwrap().contains("queue full"),
        "{refused:#}"
    );
    let (_, status) = daemon.get("/status");
    assert_eq!(status["sync"]["refused_requests"], 1, "{status:#}");
    assert_eq!(
        metric(&daemon.metrics(), "coordinator_sync_refused_total"),
        Some(1.0)
    );
    assert!(daemon.logs().contains("sync request refused"));

    // The peer recovers once the running cycle's download drips; that cycle still stalls (its connection keeps
    // dripping), the queued one resumes and installs the file.
    wait_for(
        "the second cycle's download",
        Duration::from_secs(15),
        || peer.file_requests.load(Ordering::SeqCst) >= 2,
    );
    peer.set(Serve::Normal);
    let (code, report) = first.join().unwrap().expect("first run answered");
    assert_eq!(code, 200, "{report:#}");
    assert_eq!(report["cancelled"], true, "{report:#}\n{}", daemon.logs());
    let (code, report) = second.join().unwrap().expect("second run answered");
    assert_eq!(code, 200, "{report:#}");
    assert_eq!(report["ok"], true, "{report:#}\n{}", daemon.logs());
    assert_eq!(report["installed"], 1, "{report:#}");
    assert_eq!(std::fs::read(&final_path).unwrap(), content);
    assert!(partials(&games).is_empty());
    let (_, status) = daemon.get("/status");
    assert_eq!(status["sync"]["stalled_cycles"], 2, "{status:#}");
    assert_eq!(status["sync"]["consecutive_failed_cycles"], 0, "{status:#}");
    assert_eq!(status["sync"]["health"]["status"], "ok", "{status:#}");
}

#[test]
fn five_failed_cycles_in_a_row_make_sync_unhealthy_and_one_success_heals_it() {
    let trainer = node("trainer", "[training]");
    let down = node("fake", "[selfplay]"); // nothing listens on its data port until later
    let extra = "  http:\n    breaker:\n      failure_threshold: 1000\n";
    let config = node_config(&trainer, &[&trainer, &down], extra)
        .replace("  interval: 1h\n", "  interval: 700ms\n");
    // Sync may be failing before the daemon is first asked: wait for the API, not for a 200 from /health.
    let daemon = Daemon::start_unhealthy(&config);
    let expected = |failures: u64| match failures {
        0 => "ok",
        1..=4 => "degraded",
        _ => "failing",
    };
    let mut seen_degraded = false;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, status) = daemon.get("/status");
        let sync = &status["sync"];
        let failures = sync["consecutive_failed_cycles"].as_u64().unwrap();
        assert_eq!(
            sync["health"]["status"],
            expected(failures),
            "after {failures} failed cycles: {sync:#}"
        );
        seen_degraded |= expected(failures) == "degraded";
        if failures >= 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "5 failed cycles not reached: {sync:#}\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen_degraded, "degraded before failing");
    let (code, health) = daemon.get("/health");
    assert_eq!(code, 503, "{health:#}");
    assert_check(
        &health["checks"]["sync"],
        "failing",
        "sync cycles in a row failed",
    );
    let metrics = daemon.metrics();
    assert_eq!(metric(&metrics, "coordinator_sync_healthy"), Some(0.0));
    assert!(
        metric(&metrics, "coordinator_sync_consecutive_failed_cycles").is_some_and(|n| n >= 5.0),
        "{metrics}"
    );

    // The peer comes up where nothing listened: the next cycle succeeds and sync is healthy again.
    let _peer = FakePeer::start_on(
        down.data,
        "fake",
        vec![("games", "a.bin", pattern(1000))],
        Serve::Normal,
    );
    let status = daemon.wait_status("a successful cycle", Duration::from_secs(30), |s| {
        s["sync"]["consecutive_failed_cycles"] == 0
    });
    assert_eq!(status["sync"]["health"]["status"], "ok", "{status:#}");
    assert!(status["sync"]["last_successful_sync"].is_string());
    let (code, health) = daemon.get("/health");
    assert_eq!(code, 200, "{health:#}");
    assert_eq!(health["checks"]["sync"]["status"], "ok", "{health:#}");
    assert_eq!(
        metric(&daemon.metrics(), "coordinator_sync_healthy"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &daemon.metrics(),
            "coordinator_sync_consecutive_failed_cycles"
        ),
        Some(0.0)
    );
    assert!(daemon.path().join("data/games/fake/a.bin").exists());
    // One critical event each way, not one per failed cycle.
    let logs = daemon.logs();
    let unhealthy: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("sync unhealthy"))
        .collect();
    assert_eq!(unhealthy.len(), 1, "{unhealthy:?}");
    assert!(
        unhealthy[0].contains("\"level\":\"ERROR\""),
        "{}",
        unhealthy[0]
    );
    assert!(logs.contains("sync healthy again after a successful cycle"));
}

#[test]
fn games_pulled_from_a_worker_reach_the_training_nodes_scheduler_counts() {
    let trainer = node("trainer", "[training]");
    let worker = node("worker", "[selfplay]");
    let cluster = [&trainer, &worker];
    let _worker_daemon = start(&worker, &cluster, "", |dir| {
        write_games(&dir.join("data/games/hex8_2p/hex8_2p-0001.db"), 3, 1);
    });
    // The trainer's scheduler runs (the worker plans), so it keeps per-config game counts.
    let config = node_config(&trainer, &cluster, "")
        .replace("cluster:\n", "cluster:\n  planner: worker\n")
        .replace(
            "scheduler:\n  enabled: false\n",
            "scheduler:\n  enabled: true\n",
        );
    let trainer_daemon = Daemon::start_in(tempfile::tempdir().unwrap(), &config);
    let counted = |daemon: &Daemon| {
        let (_, plan) = daemon.get("/plan");
        plan["game_counts"]["hex8_2p"].as_u64().unwrap_or(0)
    };
    let (code, report) = sync_once(&trainer_daemon, Some("worker"));
    assert_eq!(code, 0, "{report:#}");
    // The pull was this cycle's or the first interval cycle's (a second after start): one of them counted 3.
    assert!(trainer_daemon
        .path()
        .join("data/games/worker/hex8_2p/hex8_2p-0001.db")
        .exists());
    let (_, view) = trainer_daemon.get("/sync");
    assert!(
        view["cycles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["games"]["hex8_2p"] == 3),
        "{view:#}"
    );
    wait_for("the scheduler's count", Duration::from_secs(10), || {
        counted(&trainer_daemon) == 3
    });
    // Nothing new: the count stays.
    let (code, _) = sync_once(&trainer_daemon, Some("worker"));
    assert_eq!(code, 0);
    assert_eq!(counted(&trainer_daemon), 3);
}

#[test]
fn a_pull_that_would_leave_less_than_the_reserve_free_is_skipped_with_a_warning() {
    let peer = FakePeer::start(
        "fake",
        vec![("games", "a.bin", pattern(10_000))],
        Serve::Normal,
    );
    let config = trainer_config_with_fake_peer(peer.port, "")
        .replace("  min_free_disk: 1MiB\n", "  min_free_disk: 1000TiB\n");
    let daemon = Daemon::start_in(tempfile::tempdir().unwrap(), &config);
    let (code, report) = sync_once(&daemon, None);
    // Skipped, not failed: the pull waits for disk space (the resources actor reports the pressure).
    assert_eq!(code, 0, "{report:#}");
    let file = &report["operations"][0]["files"][0];
    assert_eq!(file["outcome"], "deferred", "{report:#}");
    assert!(
        file["error"]
            .as_str()
            .unwrap()
            .contains("not enough free disk"),
        "{report:#}"
    );
    assert_eq!(
        peer.file_requests.load(Ordering::SeqCst),
        0,
        "nothing fetched"
    );
    assert!(!daemon.path().join("data/games/fake/a.bin").exists());
    assert!(partials(&daemon.path().join("data/games")).is_empty());
    let logs = daemon.logs();
    assert!(
        logs.lines().any(|l| l.contains("\"level\":\"WARN\"")
            && l.contains("not enough free disk")
            && l.contains("needed_bytes")),
        "{logs}"
    );
}
