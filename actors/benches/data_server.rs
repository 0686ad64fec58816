//! Data-server benchmark (issue 3), not a test: `/health` latency while 8 clients download large files at full
//! speed, and the throughput of one download against reading the same file locally, both measured in this run.
//! Two minimal loopback servers run beside it (`sendfile`, and read+write through a buffer) so the report shows
//! how much of the gap to a local read is the loopback TCP path itself and how much is the data server.
//!
//! Run: `cargo bench -p actors --bench data_server` (env: `BENCH_SECONDS`, default 10; `BENCH_FILE_MIB`, default 256).
//! Goals (issue 3): `/health` p99 under 50 ms under load; download throughput within 80 % of local read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::data_server::{BackgroundServer, ServerOptions};

const FILES: usize = 4;
const DOWNLOADERS: usize = 8;
const BUFFER: usize = 256 * 1024;
const HEALTH_PAUSE: Duration = Duration::from_millis(10);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = env_number("BENCH_SECONDS", 10);
    let file_mib = env_number("BENCH_FILE_MIB", 256) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let games = dir.path().join("games");
    std::fs::create_dir_all(&games).expect("mkdir");
    let block: Vec<u8> = (0..(1 << 20))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for index in 0..FILES {
        let mut file = std::fs::File::create(games.join(format!("big{index}.db"))).expect("create");
        for _ in 0..file_mib {
            file.write_all(&block).expect("write");
        }
    }
    let mut options = ServerOptions::new(dir.path(), "bench");
    options.bind = "127.0.0.1:0".to_string();
    let workers = options.workers;
    let server = BackgroundServer::start(options).expect("server starts");
    let address = server.address();
    println!(
        "data server bench: {FILES} files x {file_mib} MiB, {workers} workers, {} CPUs",
        cpus()
    );

    let idle = health_latencies(address, Duration::from_secs(2), &AtomicBool::new(false));
    report_latency("/health idle", &idle);

    let stop = Arc::new(AtomicBool::new(false));
    let downloaded = Arc::new(AtomicU64::new(0));
    let downloaders: Vec<_> = (0..DOWNLOADERS)
        .map(|client| {
            let (stop, downloaded) = (stop.clone(), downloaded.clone());
            std::thread::spawn(move || {
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/files/games/big{}.db", (client + round) % FILES);
                    match download(address, &path, &stop) {
                        Ok(bytes) => downloaded.fetch_add(bytes, Ordering::Relaxed),
                        Err(error) => panic!("download {path}: {error}"),
                    };
                    round += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let before = downloaded.load(Ordering::Relaxed);
    let loaded = health_latencies(
        address,
        Duration::from_secs(seconds),
        &AtomicBool::new(false),
    );
    let moved = downloaded.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for downloader in downloaders {
        downloader.join().expect("downloader");
    }
    report_latency(&format!("/health under {DOWNLOADERS} downloads"), &loaded);
    println!(
        "aggregate download throughput under load: {:.0} MiB/s over {:.1} s",
        mib(moved) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    // Single transfers of one file, side by side, median of 3 each: reading it locally, two minimal loopback
    // servers (the kernel's `sendfile`, the fastest a loopback TCP transfer goes on this machine; and a plain
    // read-and-write loop), and the data server. Same client code, same buffer, same file warm in the page cache.
    let file = games.join("big0.db");
    let never = AtomicBool::new(false);
    let sendfile_server = RawServer::start(file.clone(), RawCopy::Sendfile);
    let userspace_server = RawServer::start(file.clone(), RawCopy::ReadWrite);
    let (mut local, mut sendfile, mut userspace, mut served) = (vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        local.push(timed(|| read_local(&file)));
        sendfile.push(timed(|| {
            download(sendfile_server.address, "/raw", &never).expect("sendfile download")
        }));
        userspace.push(timed(|| {
            download(userspace_server.address, "/raw", &never).expect("read-write download")
        }));
        served.push(timed(|| {
            download(address, "/files/games/big0.db", &never).expect("download")
        }));
    }
    let (local, sendfile, userspace, served) = (
        median(local),
        median(sendfile),
        median(userspace),
        median(served),
    );
    println!("single transfer of {file_mib} MiB (median of 3), MiB/s and ratio to local read:");
    for (label, rate) in [
        ("local read", local),
        ("loopback ceiling: sendfile server", sendfile),
        ("loopback: read+write server", userspace),
        ("data server download", served),
    ] {
        println!("  {label:<36} {rate:>7.0} MiB/s  {:.2}", rate / local);
    }
    println!(
        "download / local read ratio: {:.2} (goal >= 0.80); download / loopback ceiling: {:.2}",
        served / local,
        served / sendfile
    );
    server.stop().expect("server stops");
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Poll `/health` (new connection each time, like the monitor) until `length` passes; latencies in ms.
fn health_latencies(address: SocketAddr, length: Duration, stop: &AtomicBool) -> Vec<f64> {
    let until = Instant::now() + length;
    let mut latencies = Vec::new();
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let response = request(address, "/health").expect("health request");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "health answered {}",
            String::from_utf8_lossy(&response)
        );
        std::thread::sleep(HEALTH_PAUSE);
    }
    latencies
}

fn report_latency(label: &str, latencies: &[f64]) {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        sorted.len(),
        pick(0.50),
        pick(0.99),
        sorted.last().copied().unwrap_or_default()
    );
}

fn request(address: SocketAddr, path: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(response)
}

/// Download `path` to nowhere, counting body bytes; stops early when `stop` is set.
fn download(address: SocketAddr, path: &str, stop: &AtomicBool) -> std::io::Result<u64> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut buffer = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        let read = stream.read(&mut buffer)?;
        if read == 0 || stop.load(Ordering::Relaxed) {
            return Ok(total + read as u64);
        }
        total += read as u64;
    }
}

fn read_local(path: &Path) -> u64 {
    let mut file = std::fs::File::open(path).expect("open");
    let mut buffer = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer).expect("read");
        if read == 0 {
            return total;
        }
        total += read as u64;
    }
}

/// MiB/s of one run of `work`, which returns the bytes it moved.
fn timed(work: impl FnOnce() -> u64) -> f64 {
    let started = Instant::now();
    let bytes = work();
    mib(bytes) / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// How a [`RawServer`] moves the file to the socket.
#[derive(Clone, Copy)]
enum RawCopy {
    /// `std::io::copy` from a file to a TCP stream, which Linux's std does with `sendfile` (no user-space copy).
    Sendfile,
    /// A 64 KiB buffer read from the file and written to the socket.
    ReadWrite,
}

/// A minimal HTTP/1.1 server on 127.0.0.1 that answers every connection with the one file: the reference the
/// data server is measured against. It serves until the bench process ends.
struct RawServer {
    address: SocketAddr,
}

impl RawServer {
    fn start(file: std::path::PathBuf, copy: RawCopy) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind raw server");
        let address = listener.local_addr().expect("raw server address");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let Ok(mut source) = std::fs::File::open(&file) else {
                    continue;
                };
                let size = source.metadata().map(|m| m.len()).unwrap_or(0);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
                );
                if stream.write_all(head.as_bytes()).is_err() {
                    continue;
                }
                let _ = match copy {
                    RawCopy::Sendfile => std::io::copy(&mut source, &mut stream).map(|_| ()),
                    RawCopy::ReadWrite => copy_through_buffer(&mut source, &mut stream),
                };
            }
        });
        RawServer { address }
    }
}

fn copy_through_buffer(source: &mut std::fs::File, sink: &mut TcpStream) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = source.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        sink.write_all(&buffer[..read])?;
    }
}
