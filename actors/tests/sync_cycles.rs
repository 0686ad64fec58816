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
