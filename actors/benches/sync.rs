//! Sync benchmark (issue 9), not a test: every row from one run, on loopback.
//! - Pull of a set of two large files and many 100 KiB files from a data server: the sync runner's `http`
//!   transport (what a cycle does: inventory, checksums, verified installs), beside `rsync -a` over ssh (a
//!   throwaway sshd on loopback), `aria2c` and `curl` fetching the same files; each tool into a fresh directory
//!   after `sync(2)` (so none waits on another's unwritten pages), `SYNC_BENCH_ROUNDS` rounds (default 2) in
//!   alternating order, the best of each tool's rounds reported beside every round.
//! - A cycle with nothing to do on a set of small files, beside rsync's no-op run on the same set.
//! - Convergence: game files renamed into a worker's games directory one every 200 ms while the training side runs
//!   cycles back to back (what a stream of the worker's notices triggers); from each rename to its install, p50/p99,
//!   at the default `data_server.settle` (2 s) and at 0.2 s; files renamed into place are offered before they
//!   settle, so the settle is no floor for them.
//! - The data server beside nginx (Debian's package, `sendfile on`, started here on 127.0.0.1 with a generated
//!   config) on one 512 MiB file and on 200 files of 100 KiB (curl to /dev/null, median of 11 each, alternating),
//!   and the data server's `/health` p99 while 8 downloads of the large file run.
//!
//! Run: `cargo bench -p actors --bench sync`. Env: `SYNC_BENCH_BIG_MIB` (each of the two large files, default
//! 256), `SYNC_BENCH_SMALL` (100 KiB files, default 5000), `SYNC_BENCH_NOOP` (files of the no-op set, default
//! 10000), `SYNC_BENCH_CONVERGE` (files per convergence run, default 50), `SYNC_BENCH_SERVE_MIB` (the large file
//! served beside nginx, default 512), `SYNC_BENCH_ROUNDS`. Goals (issue 9): http pull at least as fast as rsync and aria2c; a no-op
//! cycle at most 1/10 of rsync's; convergence p50 ≤ 2 s, p99 ≤ 5 s; the data server at least as fast as nginx on
//! both sets, `/health` p99 under 50 ms during 8 downloads.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actors::data_server::{BackgroundServer, ServerOptions};
use actors::sync::run::Runner;

#[path = "../tests/support/one_peer.rs"]
mod one_peer;

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
    server_settled(root, Duration::ZERO)
}

fn server_settled(root: &Path, settle: Duration) -> BackgroundServer {
    let mut options = ServerOptions::new(root, "src");
    options.bind = "127.0.0.1:0".to_string();
    options.settle = settle;
    BackgroundServer::start(options).expect("data server")
}

fn runner(data_url: &str, dest: &Path) -> Runner {
    one_peer::runner(data_url, dest, Duration::from_secs(3600))
}

fn cycle(runner: &Runner, id: u64) -> (Duration, usize, u64, bool) {
    let started = Instant::now();
    let report = one_peer::cycle(runner, id);
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
    let rounds = env_number("SYNC_BENCH_ROUNDS", 2).max(1) as usize;
    println!(
        "## pull of {} MiB: 2 × {big_mib} MiB + {small} × 100 KiB (loopback, one run: {rounds} rounds, order reversed each round, dirty pages flushed before each tool, best of the rounds)\n",
        total >> 20
    );
    let files = files_of(&src.join("games"));
    let tools = ["http", "rsync", "aria2", "curl"];
    let mut times: BTreeMap<&str, Vec<(Duration, bool)>> = BTreeMap::new();
    for round in 0..rounds {
        let mut order = tools.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for tool in order {
            // No tool pays for another's unwritten pages (an fsync waits for the journal that carries them).
            // SAFETY: sync(2) takes no arguments.
            unsafe { libc::sync() };
            let dest = work.path().join(format!("{tool}-{round}"));
            let result = match tool {
                "http" => {
                    let (took, installed, _, ok) = cycle(&runner(&url, &dest), 1);
                    Some((took, ok && installed == small + 2))
                }
                "rsync" => ssh.as_ref().map(|(_sshd, shell)| {
                    let mut command = Command::new("rsync");
                    command
                        .args(["-a", "-e", shell])
                        .arg(format!("root@127.0.0.1:{}/", src.join("games").display()))
                        .arg(&dest);
                    timed(command)
                }),
                "aria2" => Some(aria2_pull(work.path(), &url, &files, &dest)),
                _ => Some(curl_pull(work.path(), &url, &files, &dest)),
            };
            if let Some(result) = result {
                times.entry(tool).or_default().push(result);
            }
        }
    }
    println!("| tool | best time | throughput | every round | result |\n|---|---|---|---|---|");
    for (tool, name) in [
        (
            "http",
            "sync http transport (4 transfers, verified, fsynced)",
        ),
        ("rsync", "rsync -a over ssh"),
        ("aria2", "aria2c -j 4 -x 4 -s 4"),
        ("curl", "curl --parallel --parallel-max 4"),
    ] {
        let Some(runs) = times.get(tool) else {
            println!("| {name} | not run: /usr/sbin/sshd missing | | | |");
            continue;
        };
        let best = runs.iter().map(|(took, _)| *took).min().unwrap_or_default();
        let every: Vec<String> = runs
            .iter()
            .map(|(took, _)| format!("{:.2}", took.as_secs_f64()))
            .collect();
        let ok = runs.iter().all(|(_, ok)| *ok);
        println!(
            "| {name} | {:.2} s | {} | {} s | {} |",
            best.as_secs_f64(),
            rate(total, best),
            every.join(", "),
            if ok { "ok" } else { "FAILED" }
        );
    }

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

    let converge = env_number("SYNC_BENCH_CONVERGE", 50) as usize;
    println!("\n## convergence: rename on the worker → installed on the training node, {converge} files (one run)\n");
    println!("| data_server.settle | p50 | p99 | max |\n|---|---|---|---|");
    for settle in [Duration::from_secs(2), Duration::from_millis(200)] {
        let (p50, p99, max) = convergence(
            &work.path().join(format!("converge-{}", settle.as_millis())),
            settle,
            converge,
        );
        println!(
            "| {:.1} s | {p50:.3} s | {p99:.3} s | {max:.3} s |",
            settle.as_secs_f64()
        );
    }

    let serve_mib = env_number("SYNC_BENCH_SERVE_MIB", 512) as usize;
    serve_beside_nginx(&work.path().join("serve"), serve_mib);
}

/// Files renamed into a worker's games directory every 200 ms while the training side runs cycles back to back:
/// seconds from each rename to its install (p50, p99, max).
fn convergence(dir: &Path, settle: Duration, count: usize) -> (f64, f64, f64) {
    let src = dir.join("src");
    let games = src.join("games");
    std::fs::create_dir_all(&games).expect("mkdir");
    let data = server_settled(&src, settle);
    let dest = dir.join("dst");
    let runner = runner(&format!("http://{}", data.address()), &dest);
    let installed_at = |index: usize| dest.join(format!("games/src/g{index:03}.bin"));
    let renamed: Mutex<Vec<Instant>> = Mutex::new(Vec::new());
    let mut took = vec![None; count];
    // A worker's data server has listed its directories long before games arrive.
    cycle(&runner, 0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for index in 0..count {
                let temp = games.join(format!(".g{index:03}.bin.tmp"));
                std::fs::write(&temp, format!("game {index}\n").repeat(200)).expect("write game");
                // Noted before the rename: a cycle may install the file before this thread runs again.
                renamed.lock().expect("lock").push(Instant::now());
                std::fs::rename(&temp, games.join(format!("g{index:03}.bin")))
                    .expect("rename game");
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut id = 0;
        while took.iter().any(Option::is_none) && Instant::now() < deadline {
            id += 1;
            cycle(&runner, id);
            let done = Instant::now();
            let renamed = renamed.lock().expect("lock").clone();
            for (index, at) in renamed.iter().enumerate() {
                if took[index].is_none() && installed_at(index).exists() {
                    took[index] = Some(done.duration_since(*at).as_secs_f64());
                }
            }
        }
    });
    let mut took: Vec<f64> = took
        .into_iter()
        .map(|t| t.unwrap_or(f64::INFINITY))
        .collect();
    took.sort_by(f64::total_cmp);
    let pick = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.99), took[took.len() - 1])
}

struct Nginx(Child);
impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers (a killed master leaves them running, holding the
        // port and every inherited descriptor).
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// nginx on a free loopback port serving `root` (`sendfile on`), `None` when it does not start.
fn nginx(dir: &Path, root: &Path) -> Option<(Nginx, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    std::fs::create_dir_all(dir.join("temp")).ok()?;
    let config = format!(
        "user root;\nworker_processes 2;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n\
           client_body_temp_path {d}/temp/body;\n  proxy_temp_path {d}/temp/proxy;\n  fastcgi_temp_path {d}/temp/fastcgi;\n\
           uwsgi_temp_path {d}/temp/uwsgi;\n  scgi_temp_path {d}/temp/scgi;\n\
           server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }}\n}}\n",
        d = dir.display(),
        root = root.display()
    );
    std::fs::write(dir.join("nginx.conf"), config).ok()?;
    let child = Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let guard = Nginx(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((guard, port))
}

/// Seconds one curl run takes to fetch `urls` (keep-alive, one after the other) to /dev/null.
/// `aria2c` fetching `files` from the data server at `url` into `dest`.
fn aria2_pull(work: &Path, url: &str, files: &[String], dest: &Path) -> (Duration, bool) {
    let mut list = String::new();
    for file in files {
        list.push_str(&format!("{url}/files/games/{file}\n  out={file}\n"));
    }
    let list_path = work.join("aria2.txt");
    std::fs::write(&list_path, list).expect("write list");
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
        .arg(format!("--input-file={}", list_path.display()));
    timed(command)
}

/// `curl --parallel` fetching `files` from the data server at `url` into `dest`.
fn curl_pull(work: &Path, url: &str, files: &[String], dest: &Path) -> (Duration, bool) {
    let mut config = String::new();
    for file in files {
        config.push_str(&format!(
            "url = \"{url}/files/games/{file}\"\noutput = \"{}\"\n",
            dest.join(file).display()
        ));
    }
    let config_path = work.join("curl.txt");
    std::fs::write(&config_path, config).expect("write config");
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
        .arg(&config_path);
    timed(command)
}

fn curl_all(dir: &Path, name: &str, urls: &[String]) -> f64 {
    let mut config = String::new();
    for url in urls {
        config.push_str(&format!("url = \"{url}\"\noutput = \"/dev/null\"\n"));
    }
    let list = dir.join(format!("{name}.curl"));
    std::fs::write(&list, config).expect("write curl config");
    let mut command = Command::new("curl");
    command.args(["-s", "-f", "-K"]).arg(&list);
    let (took, ok) = timed(command);
    assert!(ok, "curl {name} failed");
    took.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The data server beside nginx on the same files, then `/health` under 8 downloads.
fn serve_beside_nginx(dir: &Path, big_mib: usize) {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("games/small")).expect("mkdir");
    let block: Vec<u8> = (0..(1 << 20))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut file = std::fs::File::create(root.join("games/big.bin")).expect("create");
    for m in 0..big_mib {
        let mut chunk = block.clone();
        chunk[0] = m as u8;
        file.write_all(&chunk).expect("write");
    }
    drop(file);
    for index in 0..200 {
        let mut content = block[..100 * 1024].to_vec();
        content[..8].copy_from_slice(&(index as u64).to_le_bytes());
        std::fs::write(root.join(format!("games/small/s{index:03}.bin")), &content).expect("write");
    }
    let data = server(&root);
    let ours = format!("http://{}/files", data.address());
    println!("\n## data server beside nginx (sendfile on), same files, one run (median of 11, alternating)\n");
    let Some((_nginx, port)) = nginx(&dir.join("nginx"), &root) else {
        println!("nginx not run: /usr/sbin/nginx missing or did not start");
        return;
    };
    let theirs = format!("http://127.0.0.1:{port}");
    let big = |base: &str| vec![format!("{base}/games/big.bin")];
    let small = |base: &str| {
        (0..200)
            .map(|i| format!("{base}/games/small/s{i:03}.bin"))
            .collect::<Vec<_>>()
    };
    let (mut ours_big, mut nginx_big, mut ours_small, mut nginx_small) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..11 {
        ours_big.push(curl_all(dir, "ours-big", &big(&ours)));
        nginx_big.push(curl_all(dir, "nginx-big", &big(&theirs)));
        ours_small.push(curl_all(dir, "ours-small", &small(&ours)));
        nginx_small.push(curl_all(dir, "nginx-small", &small(&theirs)));
    }
    let (ours_big, nginx_big, ours_small, nginx_small) = (
        median(ours_big),
        median(nginx_big),
        median(ours_small),
        median(nginx_small),
    );
    println!("| what | data server | nginx | ratio (ours / nginx, goal ≤ 1) |\n|---|---|---|---|");
    println!(
        "| one {big_mib} MiB file | {ours_big:.3} s | {nginx_big:.3} s | {:.2} |",
        ours_big / nginx_big
    );
    println!(
        "| 200 files of 100 KiB | {ours_small:.3} s | {nginx_small:.3} s | {:.2} |",
        ours_small / nginx_small
    );

    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut latencies = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut command = Command::new("curl");
                    command
                        .args(["-s", "-f", "-o", "/dev/null"])
                        .arg(format!("{ours}/games/big.bin"));
                    let _ = timed(command);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        let health = format!("http://{}/health", data.address());
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            let started = Instant::now();
            let ok = agent.get(&health).call().is_ok();
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(ok, "/health failed under load");
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "\n/health during 8 downloads of the {big_mib} MiB file: n={} p50={:.2} ms p99={:.2} ms (goal p99 < 50 ms)",
        latencies.len(),
        pick(0.5),
        pick(0.99)
    );
}
