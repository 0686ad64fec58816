//! Sync benchmark (issue 9), not a test: every row from one run, on loopback.
//! - Pull of a set of two large files and many 100 KiB files from a data server: the sync runner's `http`
//!   transport (what a cycle does: inventory, checksums, verified installs), beside `rsync -a` over ssh (a
//!   throwaway sshd on loopback), `aria2c` and `curl` fetching the same files.
//! - A cycle with nothing to do on a set of small files, beside rsync's no-op run on the same set.
//!
//! Run: `cargo bench -p actors --bench sync`. Env: `SYNC_BENCH_BIG_MIB` (each of the two large files, default
//! 256), `SYNC_BENCH_SMALL` (100 KiB files, default 5000), `SYNC_BENCH_NOOP` (files of the no-op set, default
//! 10000). Goals (issue 9): http pull at least as fast as rsync and aria2c; a no-op cycle at most 1/10 of rsync's.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actors::data_server::checksum::ChecksumCache;
use actors::data_server::{BackgroundServer, ServerOptions};
use actors::pressure::PressureGate;
use actors::runtime::circuit_breaker::Jitter;
use actors::sync::budget::Breakers;
use actors::sync::config::{Role, SyncConfig, TransportKind};
use actors::sync::plan::Peer;
use actors::sync::run::{CycleRequest, Layout, Runner};
use actors::sync::transport::{self, Cancel};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn write_set(root: &Path, big_mib: usize, small: usize) -> u64 {
    let games = root.join("games");
    std::fs::create_dir_all(games.join("small")).expect("mkdir");
    let block: Vec<u8> = (0..(1 << 20))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut total = 0;
    for index in 0..2 {
        let mut file =
            std::fs::File::create(games.join(format!("big{index}.bin"))).expect("create");
        for m in 0..big_mib {
            let mut chunk = block.clone();
            chunk[0] = m as u8;
            chunk[1] = index as u8;
            file.write_all(&chunk).expect("write");
        }
        total += (big_mib << 20) as u64;
    }
    for index in 0..small {
        let mut content = block[..100 * 1024].to_vec();
        content[..8].copy_from_slice(&(index as u64).to_le_bytes());
        std::fs::write(games.join(format!("small/f{index:05}.bin")), &content).expect("write");
        total += content.len() as u64;
    }
    total
}

fn server(root: &Path) -> BackgroundServer {
    let mut options = ServerOptions::new(root, "src");
    options.bind = "127.0.0.1:0".to_string();
    options.settle = Duration::ZERO;
    BackgroundServer::start(options).expect("data server")
}

fn runner(data_url: &str, dest: &Path) -> Runner {
    let config = SyncConfig {
        transports: vec![TransportKind::Http],
        min_free_disk: actors::units::ByteSize::mib(1),
        budget: actors::sync::config::BudgetConfig {
            total: Duration::from_secs(3600),
            ..Default::default()
        },
        ..SyncConfig::default()
    };
    Runner {
        breakers: Mutex::new(Breakers::new(&config, Jitter::Fixed(0.0))),
        transports: transport::chain(&config),
        config,
        node: "dst".into(),
        roles: vec![Role::Training],
        peers: vec![Peer {
            name: "src".into(),
            roles: vec![Role::Selfplay],
            data_url: Some(data_url.to_string()),
            api_url: None,
            ssh: None,
        }],
        layout: Layout {
            categories: BTreeMap::from([("games".to_string(), dest.join("games"))]),
            quarantine: dest.join("quarantine"),
        },
        checksums: ChecksumCache::new(1),
        pressure: PressureGate::new(),
    }
}

fn cycle(runner: &Runner, id: u64) -> (Duration, usize, u64, bool) {
    let started = Instant::now();
    let report = runner.run_cycle(
        &CycleRequest {
            id,
            trigger: "bench".into(),
            peers: Some(BTreeSet::from(["src".to_string()])),
        },
        &Cancel::new(),
    );
    (started.elapsed(), report.installed, report.bytes, report.ok)
}

struct Sshd(Child);
impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throwaway sshd on loopback and the ssh command line reaching it (`None` if sshd is not installed).
fn sshd(dir: &Path) -> Option<(Sshd, String)> {
    if !Path::new("/usr/sbin/sshd").exists() {
        return None;
    }
    std::fs::create_dir_all("/run/sshd").ok()?;
    std::fs::create_dir_all(dir).ok()?;
    for key in ["host_key", "client_key"] {
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key))
            .status()
            .ok()?;
    }
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let config = format!(
        "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         PermitRootLogin yes\nPidFile {d}/sshd.pid\n",
        d = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).ok()?;
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let shell = format!(
        "ssh -p {port} -i {key} -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known} -o IdentitiesOnly=yes",
        key = dir.join("client_key").display(),
        known = dir.join("known_hosts").display()
    );
    Some((Sshd(child), shell))
}

fn timed(mut command: Command) -> (Duration, bool) {
    let started = Instant::now();
    let ok = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    (started.elapsed(), ok)
}

fn files_of(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        for item in std::fs::read_dir(&dir).expect("list").flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if item.path().is_dir() {
                pending.push((item.path(), relative));
            } else {
                out.push(relative);
            }
        }
    }
    out.sort();
    out
}

fn rate(bytes: u64, took: Duration) -> String {
    format!(
        "{:.0} MiB/s",
        bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
    )
}

fn row(name: &str, took: Duration, bytes: u64, ok: bool) {
    println!(
        "| {name} | {:.2} s | {} | {} |",
        took.as_secs_f64(),
        rate(bytes, took),
        if ok { "ok" } else { "FAILED" }
    );
}

fn main() {
    let big_mib = env_number("SYNC_BENCH_BIG_MIB", 256) as usize;
    let small = env_number("SYNC_BENCH_SMALL", 5000) as usize;
    let noop = env_number("SYNC_BENCH_NOOP", 10_000) as usize;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    let total = write_set(&src, big_mib, small);
    let data = server(&src);
    let url = format!("http://{}", data.address());
    let ssh = sshd(&work.path().join("ssh"));
    println!(
        "## pull of {} MiB: 2 × {big_mib} MiB + {small} × 100 KiB (loopback, one run)\n",
        total >> 20
    );
    println!("| tool | time | throughput | result |\n|---|---|---|---|");

    let dest = work.path().join("http");
    let http = runner(&url, &dest);
    let (took, installed, bytes, ok) = cycle(&http, 1);
    row(
        "sync http transport (4 transfers, verified)",
        took,
        bytes,
        ok && installed == small + 2,
    );

    if let Some((_sshd, shell)) = &ssh {
        let dest = work.path().join("rsync");
        let mut command = Command::new("rsync");
        command
            .args(["-a", "-e", shell])
            .arg(format!("root@127.0.0.1:{}/", src.join("games").display()))
            .arg(&dest);
        let (took, ok) = timed(command);
        row("rsync -a over ssh", took, total, ok);
    } else {
        println!("| rsync -a over ssh | not run: /usr/sbin/sshd missing | | |");
    }

    let files = files_of(&src.join("games"));
    let dest = work.path().join("aria2");
    let mut list = String::new();
    for file in &files {
        list.push_str(&format!("{url}/files/games/{file}\n  out={file}\n"));
    }
    std::fs::write(work.path().join("aria2.txt"), list).expect("write list");
    let mut command = Command::new("aria2c");
    command
        .args([
            "-j",
            "4",
            "-x",
            "4",
            "-s",
            "4",
            "--file-allocation=none",
            "--console-log-level=error",
            "--summary-interval=0",
        ])
        .arg(format!("--dir={}", dest.display()))
        .arg(format!(
            "--input-file={}",
            work.path().join("aria2.txt").display()
        ));
    let (took, ok) = timed(command);
    row("aria2c -j 4 -x 4 -s 4", took, total, ok);

    let dest = work.path().join("curl");
    let mut config = String::new();
    for file in &files {
        config.push_str(&format!(
            "url = \"{url}/files/games/{file}\"\noutput = \"{}\"\n",
            dest.join(file).display()
        ));
    }
    std::fs::write(work.path().join("curl.txt"), config).expect("write config");
    let mut command = Command::new("curl");
    command
        .args([
            "-s",
            "-f",
            "--create-dirs",
            "--parallel",
            "--parallel-max",
            "4",
            "-K",
        ])
        .arg(work.path().join("curl.txt"));
    let (took, ok) = timed(command);
    row("curl --parallel --parallel-max 4", took, total, ok);

    // No-op: a set of small files already held.
    let noop_src = work.path().join("noop-src");
    std::fs::create_dir_all(noop_src.join("games")).expect("mkdir");
    for index in 0..noop {
        std::fs::write(
            noop_src.join(format!("games/n{index:05}.bin")),
            index.to_le_bytes(),
        )
        .expect("write");
    }
    let noop_server = server(&noop_src);
    let noop_url = format!("http://{}", noop_server.address());
    let noop_dest = work.path().join("noop-http");
    let noop_runner = runner(&noop_url, &noop_dest);
    let (_, installed, _, ok) = cycle(&noop_runner, 1);
    assert!(ok && installed == noop, "setup pull: {installed} of {noop}");
    println!("\n## a cycle with nothing to do on {noop} held files (one run)\n");
    println!("| what | time |\n|---|---|");
    let (first, installed, _, ok) = cycle(&noop_runner, 2);
    println!(
        "| sync no-op cycle, first after the pull | {:.3} s{} |",
        first.as_secs_f64(),
        if ok && installed == 0 {
            ""
        } else {
            " (FAILED)"
        }
    );
    let (steady, installed, _, ok) = cycle(&noop_runner, 3);
    println!(
        "| sync no-op cycle, steady state | {:.3} s{} |",
        steady.as_secs_f64(),
        if ok && installed == 0 {
            ""
        } else {
            " (FAILED)"
        }
    );
    if let Some((_sshd, shell)) = &ssh {
        let dest: PathBuf = work.path().join("noop-rsync");
        let pull = |dest: &Path| {
            let mut command = Command::new("rsync");
            command
                .args(["-a", "-e", shell])
                .arg(format!(
                    "root@127.0.0.1:{}/",
                    noop_src.join("games").display()
                ))
                .arg(dest);
            timed(command)
        };
        let _ = pull(&dest);
        let (took, ok) = pull(&dest);
        println!(
            "| rsync -a over ssh, no-op | {:.3} s{} |",
            took.as_secs_f64(),
            if ok { "" } else { " (FAILED)" }
        );
        println!(
            "\nno-op ratio (steady sync / rsync): {:.3} (goal ≤ 0.1)",
            steady.as_secs_f64() / took.as_secs_f64()
        );
    }
    drop(noop_server);
    drop(data);
}
