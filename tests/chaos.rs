//! Chaos under load (issue 12 item 4): `coordinator demo --nodes 3 --debug` plays and syncs while this test
//! injects, in an order and on targets drawn from a seed, the runtime drills (panic, error, hang on random actors
//! of random nodes), `kill -9` of data servers, of a whole worker daemon and of the planner (the demo restarts
//! them), a peer that stalls (its data server SIGSTOPped, then SIGCONT) and a full disk on one worker (a real
//! 1 MiB tmpfs on a watched directory, filled to ENOSPC, then emptied).
//!
//! Each fault must show as a restart, a dead letter or a health change, and every node must be healthy again
//! before the next one (the time that takes is its recovery time). At the end: no game file lost, duplicated or
//! corrupt on the training node; nothing left running under the demo dir after Ctrl-C; each daemon's VmRSS within
//! 20 % of its level after a warm-up (a restarted daemon against its own warm-up).
//!
//! `CHAOS_SEED` picks the schedule (default [`DEFAULT_SEED`]; the test prints it); `CHAOS_SUMMARY` names a file
//! that receives the summary table too. The mount needs root, as tests/dead_letters.rs (.ci/test runs as root).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    daemon_pid, get_json, health, rss_kib, wait_games_on_trainer, worker_games, Demo, Node,
};
use common::{find_node, request};

const DEFAULT_SEED: u64 = 12;
/// How long a daemon runs before its resident memory is taken as its level.
const WARM_UP: Duration = Duration::from_secs(25);
/// How long every node may take to be healthy again after a fault.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(90);
/// How long a fault may take to show.
const EVIDENCE_DEADLINE: Duration = Duration::from_secs(45);
const ACTORS: [&str; 5] = [
    "dead_letters",
    "data_server_monitor",
    "sync",
    "scheduler",
    "resources",
];

/// splitmix64: a small, fixed generator, so one seed gives one schedule on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn between(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(lo_ms + self.next() % (hi_ms - lo_ms + 1))
    }
}

#[derive(Debug, Clone)]
enum Fault {
    Drill {
        node: usize,
        actor: &'static str,
        mode: &'static str,
    },
    KillDataServer {
        node: usize,
    },
    KillDaemon {
        node: usize,
    },
    Stall {
        node: usize,
        hold: Duration,
    },
    FullDisk {
        node: usize,
        hold: Duration,
    },
}

impl Fault {
    fn kind(&self) -> String {
        match self {
            Fault::Drill { mode, .. } => format!("drill {mode}"),
            Fault::KillDataServer { .. } => "kill -9 data server".into(),
            Fault::KillDaemon { node: 0 } => "kill -9 planner".into(),
            Fault::KillDaemon { .. } => "kill -9 worker".into(),
            Fault::Stall { .. } => "stalled peer".into(),
            Fault::FullDisk { .. } => "full disk".into(),
        }
    }

    fn node(&self) -> usize {
        match self {
            Fault::Drill { node, .. }
            | Fault::KillDataServer { node }
            | Fault::KillDaemon { node }
            | Fault::Stall { node, .. }
            | Fault::FullDisk { node, .. } => *node,
        }
    }
}

/// The faults in the order the seed gives: every kind at least once, drills on random actors of random nodes.
fn schedule(rng: &mut Rng, nodes: usize, disk_node: usize) -> Vec<(Duration, Fault)> {
    let worker = |rng: &mut Rng| 1 + rng.below(nodes - 1);
    let mut faults = vec![
        Fault::KillDataServer {
            node: rng.below(nodes),
        },
        Fault::KillDataServer {
            node: rng.below(nodes),
        },
        Fault::KillDaemon { node: worker(rng) },
        Fault::KillDaemon { node: 0 },
        Fault::Stall {
            node: worker(rng),
            hold: rng.between(20_000, 24_000),
        },
        Fault::FullDisk {
            node: disk_node,
            hold: rng.between(6_000, 10_000),
        },
    ];
    for mode in ["panic", "error", "hang", "panic", "error", "hang"] {
        // A failed handler of the dead-letter actor is not a letter (no letter about letters): error drills go
        // to the others.
        let actors: &[&'static str] = if mode == "error" {
            &ACTORS[1..]
        } else {
            &ACTORS
        };
        faults.push(Fault::Drill {
            node: rng.below(nodes),
            actor: actors[rng.below(actors.len())],
            mode,
        });
    }
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.below(i + 1));
    }
    faults
        .into_iter()
        .map(|f| (rng.between(500, 2_500), f))
        .collect()
}

/// What one node shows of its failures: its daemon, tree restarts per actor, dead letters, data server.
#[derive(Debug, Clone, Default)]
struct Seen {
    pid: Option<u32>,
    restarts: BTreeMap<String, u64>,
    dead_letters: u64,
    ds_pid: i64,
    ds_restarts: u64,
    ds_failed_checks: u64,
    health: String,
    resources_health: String,
}

fn observe(node: &Node) -> Seen {
    let mut seen = Seen {
        pid: daemon_pid(node),
        ..Seen::default()
    };
    if let Some(status) = get_json(node, "/status") {
        for actor in ACTORS {
            let restarts = find_node(&status["tree"], actor)
                .and_then(|n| n["restarts"].as_u64())
                .unwrap_or(0);
            seen.restarts.insert(actor.to_string(), restarts);
        }
        seen.ds_pid = status["data_server"]["pid"].as_i64().unwrap_or(0);
        seen.ds_restarts = status["data_server"]["restarts"].as_u64().unwrap_or(0);
        seen.ds_failed_checks = status["data_server"]["consecutive_failed_checks"]
            .as_u64()
            .unwrap_or(0);
    }
    if let Some(letters) = get_json(node, "/dead-letters?limit=1") {
        seen.dead_letters = letters["total"].as_u64().unwrap_or(0);
    }
    let (code, body) = health(node);
    seen.health = if code == 0 {
        "unreachable".into()
    } else {
        body["status"].as_str().unwrap_or("?").to_string()
    };
    seen.resources_health = body["checks"]["resources"]["status"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    seen
}

/// How a fault showed, if it did, comparing what the node shows now with what it showed before.
fn evidence(fault: &Fault, before: &Seen, now: &Seen, saw_down: bool) -> Option<String> {
    let restarted_daemon = now.pid.is_some() && now.pid != before.pid;
    match fault {
        Fault::Drill { mode, .. } if *mode == "error" => (now.dead_letters > before.dead_letters)
            .then(|| {
                format!(
                    "dead letter ({} -> {})",
                    before.dead_letters, now.dead_letters
                )
            }),
        Fault::Drill { actor, .. } => {
            let (b, n) = (before.restarts[*actor], now.restarts[*actor]);
            if !restarted_daemon && n > b {
                Some(format!("{actor} restarted ({b} -> {n})"))
            } else {
                restarted_daemon.then(|| "daemon restarted (root gave up)".to_string())
            }
        }
        Fault::KillDataServer { .. } => (!restarted_daemon
            && now.ds_restarts > before.ds_restarts
            && now.ds_pid != before.ds_pid)
            .then(|| {
                format!(
                    "data server restarted ({} -> {})",
                    before.ds_restarts, now.ds_restarts
                )
            }),
        Fault::KillDaemon { .. } => (restarted_daemon && saw_down && now.health == "ok")
            .then(|| "health unreachable, then ok from a new daemon".to_string()),
        Fault::Stall { .. } => (now.ds_restarts > before.ds_restarts).then(|| {
            format!(
                "data server restarted after failed health checks ({} -> {})",
                before.ds_restarts, now.ds_restarts
            )
        }),
        Fault::FullDisk { .. } => (now.resources_health == "failing")
            .then(|| "resources health failing (paused)".to_string()),
    }
}

fn signal(pid: i64, sig: i32) {
    assert!(pid > 0, "no pid to signal");
    // SAFETY: signalling a process of the demo (found by its working directory).
    unsafe { libc::kill(pid as i32, sig) };
}

/// Waits until every node answers `/health` with `ok`; how long it took.
fn wait_all_ok(demo: &Demo, since: Instant, what: &str) -> Duration {
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        let states: Vec<(String, String)> = demo
            .nodes
            .iter()
            .map(|n| (n.name.clone(), observe_health(n)))
            .collect();
        if states.iter().all(|(_, h)| h == "ok") {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "after {what}: not every node healthy again within {RECOVERY_DEADLINE:?}: {states:?}\n{}",
            demo.nodes
                .iter()
                .map(|n| format!("{}: {}", n.name, health(n).1))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn observe_health(node: &Node) -> String {
    match health(node) {
        (0, _) => "unreachable".into(),
        (_, body) => body["status"].as_str().unwrap_or("?").to_string(),
    }
}

/// One RSS sample of one node's daemon.
#[derive(Debug, Clone, Copy)]
struct RssSample {
    pid: u32,
    at: Instant,
    kib: u64,
}

/// Every node's RSS samples, by node name.
type Samples = Arc<Mutex<BTreeMap<String, Vec<RssSample>>>>;
/// (post-warm-up level, last sample) of a node's daemon, or why there is none yet.
type Levels = Result<(RssSample, RssSample), String>;

/// Samples every node's daemon RSS once a second until `stop`.
fn sample_rss(nodes: Vec<Node>, stop: Arc<AtomicBool>) -> (Samples, std::thread::JoinHandle<()>) {
    let samples: Samples = Arc::default();
    let out = samples.clone();
    let handle = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for node in &nodes {
                if let Some(pid) = daemon_pid(node) {
                    if let Some(kib) = rss_kib(pid) {
                        let sample = RssSample {
                            pid,
                            at: Instant::now(),
                            kib,
                        };
                        out.lock()
                            .unwrap()
                            .entry(node.name.clone())
                            .or_default()
                            .push(sample);
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    (samples, handle)
}

/// (post-warm-up level, last sample) of the daemon that runs last, or why there is none yet.
fn rss_levels(samples: &[RssSample]) -> Levels {
    let last = *samples.last().ok_or("no sample")?;
    let own: Vec<&RssSample> = samples.iter().filter(|s| s.pid == last.pid).collect();
    let first = own[0].at;
    let level = own
        .iter()
        .find(|s| s.at >= first + WARM_UP)
        .ok_or("still warming up")?;
    if last.at < level.at + Duration::from_secs(5) {
        return Err("too soon after its warm-up".into());
    }
    Ok((**level, last))
}

#[derive(Debug)]
struct Record {
    fault: Fault,
    node: String,
    evidence: Option<String>,
    recovered_in: Duration,
}

#[test]
fn the_cluster_survives_seeded_chaos_without_losing_a_game() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .unwrap_or_else(|e| panic!("CHAOS_SEED={s:?}: {e} (expected an integer)"))
        })
        .unwrap_or(DEFAULT_SEED);
    eprintln!("chaos: seed {seed} (set CHAOS_SEED to replay another)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut demo = Demo::start(tmp.path(), 3, &["--debug"]);
    let names: Vec<String> = demo.nodes.iter().map(|n| n.name.clone()).collect();
    let disk_node = 1 + rng.below(demo.nodes.len() - 1);
    let faults = schedule(&mut rng, demo.nodes.len(), disk_node);
    for (gap, fault) in &faults {
        eprintln!(
            "chaos: planned after {gap:?}: {} on {}",
            fault.kind(),
            names[fault.node()]
        );
    }
    // The full disk: a 1 MiB tmpfs on a watched directory of that worker (its data server's `training`
    // category, empty on a selfplay node), filled later.
    let disk_dir = demo.nodes[disk_node].dir.join("data/training");
    let _tmpfs = common::Tmpfs::mount(&disk_dir, "1m");

    let stop = Arc::new(AtomicBool::new(false));
    let (rss, sampler) = sample_rss(demo.nodes.clone(), stop.clone());

    // Warm-up: the cluster works undisturbed (jobs dispatched, games synced) and memory settles.
    let warm = Instant::now();
    wait_all_ok(&demo, warm, "start");
    std::thread::sleep(WARM_UP.saturating_sub(warm.elapsed()));
    let chaos_started = Instant::now();

    let mut records = Vec::new();
    for (gap, fault) in faults {
        std::thread::sleep(gap);
        let node = demo.nodes[fault.node()].clone();
        let before = observe(&node);
        let at = Instant::now();
        eprintln!(
            "chaos: {:>6.1}s {} on {}",
            chaos_started.elapsed().as_secs_f64(),
            fault.kind(),
            node.name
        );
        if let Fault::Drill { actor, .. } = &fault {
            eprintln!("chaos:         (actor {actor})");
        }
        let mut shown = None;
        let mut saw_down = false;
        let look = |shown: &mut Option<String>, saw_down: &mut bool| {
            let now = observe(&node);
            *saw_down |= now.health == "unreachable" || now.pid.is_none();
            if shown.is_none() {
                *shown = evidence(&fault, &before, &now, *saw_down);
            }
        };
        match &fault {
            Fault::Drill { actor, mode, .. } => {
                let (code, body) = request(
                    "POST",
                    &format!("{}/debug/fail/{actor}?mode={mode}", node.api),
                    None,
                )
                .unwrap_or_else(|e| panic!("drill on {}: {e}", node.name));
                assert_eq!(code, 202, "drill {mode} on {}/{actor}: {body}", node.name);
            }
            Fault::KillDataServer { .. } => signal(before.ds_pid, libc::SIGKILL),
            Fault::KillDaemon { .. } => {
                signal(i64::from(before.pid.expect("daemon pid")), libc::SIGKILL)
            }
            Fault::Stall { hold, .. } => {
                signal(before.ds_pid, libc::SIGSTOP);
                let until = Instant::now() + *hold;
                while Instant::now() < until {
                    look(&mut shown, &mut saw_down);
                    std::thread::sleep(Duration::from_millis(500));
                }
                // The monitor may have killed and replaced it meanwhile; a dead pid ignores SIGCONT.
                signal(before.ds_pid, libc::SIGCONT);
            }
            Fault::FullDisk { hold, .. } => {
                let filler = disk_dir.join(".filler");
                common::fill_disk(&filler);
                let until = Instant::now() + *hold;
                while Instant::now() < until
                    || (shown.is_none() && at.elapsed() < EVIDENCE_DEADLINE)
                {
                    look(&mut shown, &mut saw_down);
                    std::thread::sleep(Duration::from_millis(500));
                }
                std::fs::remove_file(&filler).expect("remove filler");
            }
        }
        while shown.is_none() && at.elapsed() < EVIDENCE_DEADLINE {
            look(&mut shown, &mut saw_down);
            std::thread::sleep(Duration::from_millis(250));
        }
        let recovered_in = wait_all_ok(&demo, at, &fault.kind());
        eprintln!(
            "chaos:         shown as: {}; every node ok after {:.1}s",
            shown.as_deref().unwrap_or("NOTHING"),
            recovered_in.as_secs_f64()
        );
        records.push(Record {
            fault,
            node: node.name.clone(),
            evidence: shown,
            recovered_in,
        });
    }
    let chaos_took = chaos_started.elapsed();

    // No game lost, duplicated or corrupt: every settled worker file reaches the training node intact, once.
    let trainer = demo.nodes[0].clone();
    let workers = demo.nodes[1..].to_vec();
    let snapshot = worker_games(&workers);
    let files_checked: usize = snapshot.values().map(BTreeMap::len).sum();
    wait_games_on_trainer(&trainer, &workers, &snapshot, Duration::from_secs(120));

    // Memory: each daemon against its own post-warm-up level.
    let rss_deadline = Instant::now() + WARM_UP + Duration::from_secs(30);
    let levels = loop {
        let samples = rss.lock().unwrap().clone();
        let levels: Vec<(String, Levels)> = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    rss_levels(samples.get(n).map_or(&[][..], Vec::as_slice)),
                )
            })
            .collect();
        if levels.iter().all(|(_, l)| l.is_ok()) {
            break levels;
        }
        assert!(Instant::now() < rss_deadline, "no RSS levels: {levels:?}");
        std::thread::sleep(Duration::from_secs(1));
    };
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();

    // Totals before the stop: dead letters and tree restarts as the nodes show them now.
    let finals: Vec<Seen> = demo.nodes.iter().map(observe).collect();
    let dead_letters: u64 = finals.iter().map(|s| s.dead_letters).sum();
    let stderr = demo.stderr_text();
    let daemon_restarts = stderr.matches("restarting it in").count();

    // Ctrl-C: the demo stops every node (restarted ones too) and nothing is left.
    let status = demo.interrupt(Duration::from_secs(90));
    assert_eq!(
        status.code(),
        Some(0),
        "demo stderr:\n{}",
        demo.stderr_text()
    );
    demo.assert_nothing_left(Duration::from_secs(15));

    // The summary table.
    let mut by_kind: BTreeMap<String, (usize, usize, Duration)> = BTreeMap::new();
    for r in &records {
        let e = by_kind.entry(r.fault.kind()).or_default();
        e.0 += 1;
        e.1 += usize::from(r.evidence.is_some());
        e.2 = e.2.max(r.recovered_in);
    }
    let actor_restarts: usize = records
        .iter()
        .filter(|r| {
            r.evidence
                .as_deref()
                .is_some_and(|e| e.contains(" restarted ("))
        })
        .count();
    let mut summary = format!(
        "chaos summary (seed {seed}, {} faults in {:.0} s)\n\n",
        records.len(),
        chaos_took.as_secs_f64()
    );
    let _ = writeln!(
        summary,
        "| fault | injected | shown | max time to recover |"
    );
    let _ = writeln!(summary, "|---|---|---|---|");
    for (kind, (n, shown, max)) in &by_kind {
        let _ = writeln!(
            summary,
            "| {kind} | {n} | {shown} | {:.1} s |",
            max.as_secs_f64()
        );
    }
    let max_recover = records
        .iter()
        .map(|r| r.recovered_in)
        .max()
        .unwrap_or_default();
    let _ = writeln!(summary);
    let _ = writeln!(summary, "| total | value |");
    let _ = writeln!(summary, "|---|---|");
    let _ = writeln!(
        summary,
        "| restarts seen (actors and data servers) | {actor_restarts} |"
    );
    let _ = writeln!(
        summary,
        "| daemon restarts by the demo | {daemon_restarts} |"
    );
    let _ = writeln!(summary, "| dead letters (all nodes) | {dead_letters} |");
    let _ = writeln!(summary, "| game files checked (sha256) | {files_checked} |");
    let _ = writeln!(
        summary,
        "| max time to recover | {:.1} s |",
        max_recover.as_secs_f64()
    );
    let _ = writeln!(summary);
    let _ = writeln!(
        summary,
        "| daemon | RSS after warm-up | RSS at the end | ratio |"
    );
    let _ = writeln!(summary, "|---|---|---|---|");
    for (name, level) in &levels {
        let (base, last) = level.as_ref().unwrap();
        let _ = writeln!(
            summary,
            "| {name} | {:.1} MiB | {:.1} MiB | {:.2} |",
            base.kib as f64 / 1024.0,
            last.kib as f64 / 1024.0,
            last.kib as f64 / base.kib as f64
        );
    }
    eprintln!("\n{summary}");
    if let Ok(path) = std::env::var("CHAOS_SUMMARY") {
        std::fs::write(&path, &summary).unwrap_or_else(|e| panic!("CHAOS_SUMMARY={path}: {e}"));
    }

    let unseen: Vec<String> = records
        .iter()
        .filter(|r| r.evidence.is_none())
        .map(|r| format!("{} on {}", r.fault.kind(), r.node))
        .collect();
    assert!(
        unseen.is_empty(),
        "faults that showed nowhere: {unseen:?}\n{summary}"
    );
    for (name, level) in &levels {
        let (base, last) = level.as_ref().unwrap();
        assert!(
            last.kib as f64 <= base.kib as f64 * 1.2,
            "{name}: RSS grew from {} KiB after its warm-up to {} KiB\n{summary}",
            base.kib,
            last.kib
        );
    }
}
