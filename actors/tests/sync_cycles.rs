//! Cycles of the sync runner against a real data server on loopback, where the last cycle's listings are reused:
//! every change on either side (a new or changed file at the peer, a held copy removed or altered here) is still
//! seen by the next cycle, and a cycle with nothing to do installs nothing.

use std::path::Path;
use std::time::{Duration, SystemTime};

use actors::data_server::{BackgroundServer, ServerOptions};
use actors::sync::run::Runner;

#[path = "support/one_peer.rs"]
mod one_peer;

/// Runs one cycle; (installed, ok).
fn cycle(runner: &Runner, id: u64) -> (usize, bool) {
    let report = one_peer::cycle(runner, id);
    if !report.ok {
        eprintln!(
            "cycle {id}: {}",
            serde_json::to_string(&report).unwrap_or_default()
        );
    }
    (report.installed, report.ok)
}

fn old_mtime(path: &Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(60)))
        .expect("set mtime");
}

#[test]
fn every_change_on_either_side_reaches_the_next_cycle_while_unchanged_cycles_install_nothing() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    let games = src.join("games");
    std::fs::create_dir_all(games.join("sub")).expect("mkdir");
    for name in ["a.bin", "b.bin", "sub/c.bin"] {
        std::fs::write(games.join(name), format!("games of {name}")).expect("write");
    }
    let mut options = ServerOptions::new(&src, "src");
    options.bind = "127.0.0.1:0".to_string();
    options.settle = Duration::ZERO;
    let server = BackgroundServer::start(options).expect("data server");
    let dest = work.path().join("dst");
    let runner = one_peer::runner(
        &format!("http://{}", server.address()),
        &dest,
        Duration::from_secs(300),
    );
    let held = dest.join("games/src");

    assert_eq!(cycle(&runner, 1), (3, true));
    assert_eq!(cycle(&runner, 2), (0, true), "the installs were seen");
    assert_eq!(cycle(&runner, 3), (0, true), "nothing changed");

    std::fs::remove_file(held.join("b.bin")).expect("remove");
    assert_eq!(cycle(&runner, 4), (1, true), "a held copy removed here");
    assert_eq!(
        std::fs::read(held.join("b.bin")).expect("b"),
        b"games of b.bin"
    );

    // Same size, other content, older mtime: only its sum tells it apart.
    std::fs::write(held.join("sub/c.bin"), b"games of sub/X.bin").expect("write");
    old_mtime(&held.join("sub/c.bin"));
    assert_eq!(cycle(&runner, 5), (1, true), "a held copy altered here");
    assert_eq!(
        std::fs::read(held.join("sub/c.bin")).expect("c"),
        b"games of sub/c.bin"
    );

    std::fs::write(games.join("sub/d.bin"), b"new games").expect("write");
    assert_eq!(cycle(&runner, 6), (1, true), "a new file at the peer");
    std::fs::write(games.join("a.bin"), b"changed at the peer").expect("write");
    assert_eq!(cycle(&runner, 7), (1, true), "a changed file at the peer");
    assert_eq!(
        std::fs::read(held.join("a.bin")).expect("a"),
        b"changed at the peer"
    );
    assert_eq!(cycle(&runner, 8), (0, true));
    assert_eq!(cycle(&runner, 9), (0, true));
}

/// A peer that lists `count` files and sends each slowly, counting how many downloads it serves at once.
struct SlowPeer {
    address: std::net::SocketAddr,
    most_at_once: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowPeer {
    fn start(count: usize, each_takes: Duration) -> SlowPeer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let mtime = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64()
            - 60.0;
        let content = |index: usize| format!("file {index}\n").repeat(100).into_bytes();
        let files: Vec<serde_json::Value> = (0..count)
            .map(|index| {
                let body = content(index);
                serde_json::json!({
                    "category": "games", "path": format!("f{index:03}.bin"), "size": body.len(),
                    "mtime": mtime, "sha256": actors::data_server::checksum::sha256_reader(&body[..]).unwrap(),
                })
            })
            .collect();
        let inventory = serde_json::json!({"node": "src", "generated_at": "2026-01-01T00:00:00Z", "files": files})
            .to_string();
        let now = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let most = most_at_once.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (inventory, now, most) = (inventory.clone(), now.clone(), most.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                    }
                    let body = match path.strip_prefix("/files/games/f") {
                        Some(rest) => {
                            let index: usize = rest.trim_end_matches(".bin").parse().unwrap_or(0);
                            let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(at_once, Ordering::SeqCst);
                            std::thread::sleep(each_takes);
                            now.fetch_sub(1, Ordering::SeqCst);
                            content(index)
                        }
                        None => inventory.into_bytes(),
                    };
                    let mut out = stream;
                    let _ = write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = out.write_all(&body);
                });
            }
        });
        SlowPeer {
            address,
            most_at_once,
        }
    }
}

#[test]
fn at_most_max_concurrent_files_are_fetched_at_once() {
    let peer = SlowPeer::start(24, Duration::from_millis(150));
    let work = tempfile::tempdir().expect("tempdir");
    let runner = one_peer::runner(
        &format!("http://{}", peer.address),
        work.path(),
        Duration::from_secs(300),
    );
    assert_eq!(runner.config.max_concurrent, 4, "the default");
    assert_eq!(cycle(&runner, 1), (24, true));
    let most = peer.most_at_once.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "{most} downloads at once; expected parallel fetches, never more than sync.max_concurrent (4)"
    );
}
