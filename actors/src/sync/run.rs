//! Carries out one sync cycle on plain threads (blocking I/O, never on the actor's thread): reads the peers'
//! inventories in parallel, plans each operation with [`plan`](super::plan), and runs its transfers on at most
//! `max_concurrent` worker threads, each file driven through the chain by [`FileAttempts`]. Every decision is the
//! policies'; this file only does what they return, logs one event per transport attempt and fills the report.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::budget::{Breakers, Budget, FailureKind, FileAttempts, Step, SyncError};
use super::config::{Role, SyncConfig, TransportKind};
use super::install::{
    is_partial_name, remove_stale_temps, temp_path, verify_and_install, version_key, Expected,
    RenamedDirs,
};
use super::metrics::sync_metrics;
use super::plan::{self, DiffRules, LocalFile, Peer, PullOp, Transfer, Version};
use super::report::{
    AttemptReport, CycleReport, FileOutcome, FileReport, GaveUp, OperationReport, FILES_KEPT,
};
use super::transport::http::fetch_checksum;
use super::transport::{self, Cancel, FetchRequest, Transport};
use crate::data_server::checksum::ChecksumCache;
use crate::data_server::inventory::{unix_seconds, Inventory, InventoryEntry};
use crate::pressure::PressureGate;
use crate::runtime::circuit_breaker::Jitter;
use crate::runtime::restart_policy::jitter_sample;
use crate::tree_watch::{Listings, WalkWatch};

/// The largest inventory read (about a million files).
const MAX_INVENTORY_BYTES: u64 = 256 << 20;
/// How often a waiting transfer looks at the cancel flag.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Only one cycle runs at a time in a process, even across restarts of the actor.
static CYCLE_LOCK: Mutex<()> = Mutex::new(());

/// Where this node keeps what it pulls.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Category → directory (the data server's category directories, so pulled files are served too).
    pub categories: BTreeMap<String, PathBuf>,
    /// Where corrupt databases go.
    pub quarantine: PathBuf,
}

/// What every cycle of one actor incarnation shares.
pub struct Runner {
    pub config: SyncConfig,
    pub node: String,
    pub roles: Vec<Role>,
    pub peers: Vec<Peer>,
    pub layout: Layout,
    pub breakers: Mutex<Breakers>,
    pub transports: Vec<Box<dyn Transport>>,
    pub checksums: ChecksumCache,
    pub pressure: PressureGate,
    /// What the last cycles saw (peers' inventories, local listings), reused while unchanged.
    pub seen: Seen,
}

/// What a cycle with nothing to do reuses from the last: each peer's inventory with its ETag (asked again with
/// `If-None-Match`, so an unchanged peer answers 304 and sends no list), and each operation's local listing while
/// no file under `<category dir>/<peer>/` changed (crate::tree_watch). Rebuilt whenever in doubt.
#[derive(Default)]
pub struct Seen {
    inventories: Mutex<BTreeMap<String, (String, Arc<Inventory>)>>,
    held: Mutex<HeldListings>,
    /// Per (peer, category): the file versions given up on (dead-lettered or quarantined), skipped until the
    /// peer lists another version or the dead letter is replayed ([`Runner::retry_file`]).
    given_up: Mutex<BTreeMap<(String, String), BTreeMap<String, Version>>>,
}

#[derive(Default)]
struct HeldListings {
    listings: Listings<(String, String)>,
    scans: BTreeMap<(String, String), LocalScan>,
}

/// How one file ended: its report, a dead letter if it was given up after its integrity retry, and the games
/// it brought (config, count) for a games file.
struct FileDone {
    file: FileReport,
    gave_up: Option<GaveUp>,
    games: Option<(String, u64)>,
    /// The version fetched, when it is not to be fetched again (dead-lettered or quarantined).
    skip_from_now: Option<Version>,
}

impl FileDone {
    /// A file that ended without games, dead letter or skip.
    fn only(file: FileReport) -> FileDone {
        FileDone {
            file,
            gave_up: None,
            games: None,
            skip_from_now: None,
        }
    }
}

/// What the transfers of one cycle share besides the runner.
#[derive(Default)]
struct CycleFiles {
    /// Directories the local scan found holding partial downloads (only there can a stale temp need removing).
    temp_dirs: BTreeSet<PathBuf>,
    /// Directories files were installed into, fsynced once when the transfers are done.
    renamed: RenamedDirs,
    /// At most `sync.max_concurrent` fetches at once (a file being verified and flushed holds none).
    transfer_slots: Slots,
}

/// A counting semaphore for plain threads.
#[derive(Default)]
struct Slots {
    free: Mutex<usize>,
    freed: std::sync::Condvar,
}

/// One slot of [`Slots`], given back when dropped.
struct Slot<'a>(&'a Slots);

impl Slots {
    fn set(&self, count: usize) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) = count;
    }

    /// Waits for a free slot. Every holder gives its slot back within its attempt's limits (a fetch ends at its
    /// stall timeout, budget or cancel), so this wait is bounded by them.
    fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// One cycle's request.
#[derive(Debug, Clone)]
pub struct CycleRequest {
    pub id: u64,
    pub trigger: String,
    /// Only these peers (all when `None`).
    pub peers: Option<BTreeSet<String>>,
}

impl Runner {
    /// A runner with fresh breakers (their retry timing jittered by `jitter`), the transports of the config's
    /// chain, an empty checksum cache and nothing seen yet.
    pub fn new(
        config: SyncConfig,
        node: String,
        roles: Vec<Role>,
        peers: Vec<Peer>,
        layout: Layout,
        pressure: PressureGate,
        jitter: Jitter,
    ) -> Runner {
        Runner {
            breakers: Mutex::new(Breakers::new(&config, jitter)),
            transports: transport::chain(&config),
            config,
            node,
            roles,
            peers,
            layout,
            checksums: ChecksumCache::new(1),
            pressure,
            seen: Seen::default(),
        }
    }

    /// The transports of the chain, in order (those whose program is missing already left out).
    fn chain(&self) -> Vec<TransportKind> {
        self.transports.iter().map(|t| t.kind()).collect()
    }

    fn transport(&self, kind: TransportKind) -> Option<&dyn Transport> {
        self.transports
            .iter()
            .find(|t| t.kind() == kind)
            .map(|t| t.as_ref())
    }

    fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// Runs one cycle to its end (or until `cancel`). Blocking.
    pub fn run_cycle(&self, request: &CycleRequest, cancel: &Cancel) -> CycleReport {
        let _one_at_a_time = CYCLE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let mut report = CycleReport::not_run(request.id, &request.trigger, "");
        report.error = None;
        report.peers = request.peers.as_ref().map(|p| p.iter().cloned().collect());
        let mut ops = Vec::new();
        for op in plan::operations(
            &self.node,
            &self.roles,
            &self.peers,
            &self.config.pulls,
            None,
        ) {
            if request
                .peers
                .as_ref()
                .is_none_or(|only| only.contains(&op.peer))
            {
                ops.push(op);
            }
        }
        let peer_names: BTreeSet<String> = ops.iter().map(|o| o.peer.clone()).collect();
        self.seen
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .listings
            .refresh(SystemTime::now());
        // The local files are listed while the peers' inventories are on their way.
        let (inventories, mut scans) = std::thread::scope(|scope| {
            let inventories = scope.spawn(|| self.inventories(&peer_names));
            let scans: Vec<LocalScan> = ops.iter().map(|op| self.scan_local(op)).collect();
            let inventories = inventories.join().unwrap_or_else(|_| {
                peer_names
                    .iter()
                    .map(|name| {
                        let reason = (
                            "failed".to_string(),
                            "inventory thread panicked".to_string(),
                        );
                        (name.clone(), Err(reason))
                    })
                    .collect()
            });
            (inventories, scans)
        });
        let mut jobs = VecDeque::new();
        let mut operations: Vec<OperationReport> = Vec::new();
        let mut budgets = Vec::new();
        let mut files = CycleFiles::default();
        for (op, scan) in ops.iter().zip(scans.iter_mut()) {
            files.temp_dirs.extend(scan.temp_dirs.iter().cloned());
            let mut op_report = OperationReport {
                peer: op.peer.clone(),
                category: op.category.clone(),
                outcome: "ok".into(),
                planned: 0,
                installed: 0,
                skipped: 0,
                failed: 0,
                bytes: 0,
                duration_ms: 0,
                error: None,
                files: Vec::new(),
            };
            match inventories.get(&op.peer) {
                Some(Ok(inventory)) => {
                    let plan = self.plan_operation(op, &inventory.files, scan);
                    op_report.planned = plan.transfers.len();
                    op_report.skipped = plan.skipped.len();
                    let budget = Arc::new(Budget::new(Instant::now(), &self.config.budget));
                    budgets.push(budget.clone());
                    for transfer in plan.transfers {
                        jobs.push_back((operations.len(), transfer, budget.clone()));
                    }
                }
                Some(Err((outcome, error))) => {
                    op_report.outcome = outcome.clone();
                    op_report.error = Some(error.clone());
                }
                None => {
                    op_report.outcome = "skipped".into();
                    op_report.error = Some("no inventory".into());
                }
            }
            operations.push(op_report);
        }
        self.keep_scans(&ops, scans);
        let results = self.run_transfers(jobs, cancel, &files);
        files.renamed.sync();
        for (
            index,
            FileDone {
                file,
                gave_up,
                games,
                skip_from_now,
            },
        ) in results
        {
            let op = &ops[index];
            self.remember_given_up(&op.peer, &op.category, &file.path, skip_from_now);
            let op = &mut operations[index];
            op.bytes += file.bytes;
            match file.outcome {
                FileOutcome::Installed => op.installed += 1,
                FileOutcome::Unchanged | FileOutcome::Deferred => {}
                FileOutcome::Failed | FileOutcome::Quarantined => op.failed += 1,
            }
            if let Some((config, n)) = games {
                *report.games.entry(config).or_default() += n;
            }
            if let Some(gave_up) = gave_up {
                report.gave_up.push(gave_up);
            }
            if op.files.len() < FILES_KEPT && (!file.attempts.is_empty() || file.error.is_some()) {
                op.files.push(file);
            }
        }
        let elapsed = started.elapsed();
        for (op, report_op) in ops.iter().zip(operations.iter_mut()) {
            report_op.duration_ms = elapsed.as_millis() as u64;
            if report_op.failed > 0 && report_op.outcome == "ok" {
                report_op.outcome = "failed".into();
                report_op.error = report_op
                    .files
                    .iter()
                    .find_map(|f| f.error.clone())
                    .or(Some(format!("{} files failed", report_op.failed)));
            }
            sync_metrics()
                .operation_duration
                .with_label_values(&[&op.peer, &op.category, &report_op.outcome])
                .observe(elapsed.as_secs_f64());
        }
        report.bytes = operations.iter().map(|o| o.bytes).sum();
        report.installed = operations.iter().map(|o| o.installed).sum();
        report.cancelled = cancel.is_cancelled();
        report.ok = !report.cancelled && operations.iter().all(|o| o.outcome == "ok");
        report.operations = operations;
        report.duration_ms = started.elapsed().as_millis() as u64;
        report
    }

    /// Each peer's inventory (in parallel, each under `inventory_timeout`), or why not: (`skipped`|`failed`,
    /// reason). An open `http` circuit skips the peer; a failed listing counts against it.
    fn inventories(
        &self,
        peers: &BTreeSet<String>,
    ) -> BTreeMap<String, Result<Arc<Inventory>, (String, String)>> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = peers
                .iter()
                .map(|name| (name.clone(), scope.spawn(move || self.inventory(name))))
                .collect();
            handles
                .into_iter()
                .map(|(name, handle)| {
                    let result = handle.join().unwrap_or_else(|_| {
                        Err(("failed".into(), "inventory thread panicked".into()))
                    });
                    (name, result)
                })
                .collect()
        })
    }

    fn inventory(&self, name: &str) -> Result<Arc<Inventory>, (String, String)> {
        let Some(peer) = self.peer(name) else {
            return Err(("skipped".into(), "not in cluster.nodes".into()));
        };
        let Some(data_url) = peer.data_url.as_deref() else {
            tracing::warn!(peer = %name, "peer has no data_url; its files cannot be listed (set cluster.nodes[].data_url)");
            return Err(("skipped".into(), "no data_url".into()));
        };
        let now = Instant::now();
        let allowed = self
            .breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name, TransportKind::Http)
            .allow(now)
            .is_allowed();
        if !allowed {
            tracing::info!(peer = %name, transport = "http", "circuit open; peer skipped this cycle");
            return Err(("skipped".into(), "circuit open".into()));
        }
        let url = format!("{}/inventory.json", data_url.trim_end_matches('/'));
        let timeout = self.config.inventory_timeout;
        let last = self
            .seen
            .inventories
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let mut request = ureq::AgentBuilder::new()
            .timeout(timeout)
            .redirects(0)
            .build()
            .get(&url);
        if let Some((etag, _)) = &last {
            request = request.set("If-None-Match", etag);
        }
        let result = request
            .call()
            .map_err(|e| transport::http::classify(&e).1)
            .and_then(|response| match (response.status(), &last) {
                (304, Some((_, inventory))) => Ok(inventory.clone()),
                (200, _) => {
                    let etag = response.header("ETag").map(str::to_string);
                    // Read whole, then parsed from memory: serde_json's reader path is several times slower.
                    let mut body = Vec::new();
                    response
                        .into_reader()
                        .take(MAX_INVENTORY_BYTES)
                        .read_to_end(&mut body)
                        .map_err(|e| format!("reading the inventory: {e}"))?;
                    let inventory = Arc::new(
                        serde_json::from_slice::<Inventory>(&body)
                            .map_err(|e| format!("bad inventory: {e}"))?,
                    );
                    let mut seen = self
                        .seen
                        .inventories
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    match etag {
                        Some(etag) => seen.insert(name.to_string(), (etag, inventory.clone())),
                        None => seen.remove(name),
                    };
                    Ok(inventory)
                }
                (status, _) => Err(format!(
                    "answered {status} {}; expected 200 with the inventory",
                    response.status_text()
                )),
            });
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let breaker = breakers.get(name, TransportKind::Http);
        match result {
            Ok(inventory) => {
                breaker.on_success(Instant::now());
                Ok(inventory)
            }
            Err(error) => {
                breaker.on_failure(Instant::now());
                tracing::warn!(peer = %name, %url, %error, "cannot read the peer's inventory; skipping it this cycle");
                Err(("failed".into(), format!("GET {url}: {error}")))
            }
        }
    }

    /// The local files of `op` (under `<category dir>/<peer>/`): the last cycle's listing while nothing there
    /// changed, else a new walk.
    fn scan_local(&self, op: &PullOp) -> LocalScan {
        let Some(dir) = self.layout.categories.get(&op.category) else {
            return LocalScan::default();
        };
        let key = (op.peer.clone(), op.category.clone());
        let mut held = self.seen.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.listings.fresh(&key, SystemTime::now()).is_ok() {
            if let Some(scan) = held.scans.remove(&key) {
                return scan;
            }
        }
        let root = dir.join(&op.peer);
        let mut found = LocalScan::default();
        let mut rebuild = held.listings.rebuild(key, &root);
        scan(&root, &op.peer, &mut found, 0, &mut rebuild);
        rebuild.finish(None);
        found
    }

    /// Notes how `path` of `peer`'s `category` ended: a version given up on is skipped from now on, anything
    /// else (`None`) forgets it.
    fn remember_given_up(&self, peer: &str, category: &str, path: &str, version: Option<Version>) {
        let mut given_up = self.seen.given_up.lock().unwrap_or_else(|e| e.into_inner());
        let key = (peer.to_string(), category.to_string());
        match version {
            Some(version) => {
                given_up
                    .entry(key)
                    .or_default()
                    .insert(path.to_string(), version);
            }
            None => {
                if let Some(paths) = given_up.get_mut(&key) {
                    paths.remove(path);
                }
            }
        }
    }

    /// Lets the next cycle fetch `path` of `peer`'s `category` again even if its version was given up on (a
    /// dead letter replayed).
    pub fn retry_file(&self, peer: &str, category: &str, path: &str) {
        self.remember_given_up(peer, category, path, None);
    }

    /// Keeps this cycle's local listings (with the sums the diff looked up) for the next one.
    fn keep_scans(&self, ops: &[PullOp], scans: Vec<LocalScan>) {
        let mut held = self.seen.held.lock().unwrap_or_else(|e| e.into_inner());
        for (op, scan) in ops.iter().zip(scans) {
            held.scans
                .insert((op.peer.clone(), op.category.clone()), scan);
        }
    }

    /// `op`'s local files (`scan`) hashed where the diff needs it, then the diff.
    fn plan_operation(
        &self,
        op: &PullOp,
        remote: &[InventoryEntry],
        scan: &mut LocalScan,
    ) -> plan::OpPlan {
        let Some(dir) = self.layout.categories.get(&op.category) else {
            tracing::warn!(category = %op.category, "category not in data_server.categories; nothing pulled for it");
            return plan::OpPlan::default();
        };
        let LocalScan {
            files: local,
            stats,
            ..
        } = scan;
        let cluster: BTreeSet<String> = self.peers.iter().map(|p| p.name.clone()).collect();
        let given_up = self
            .seen
            .given_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(op.peer.clone(), op.category.clone()))
            .cloned()
            .unwrap_or_default();
        let rules = DiffRules {
            skip: &self.config.skip,
            cluster_nodes: &cluster,
            now_unix: unix_seconds(SystemTime::now()),
            given_up: &given_up,
        };
        for path in plan::files_to_hash(op, remote, local, &rules) {
            let (Some(file), Some(mtime)) = (local.get_mut(&path), stats.get(&path)) else {
                continue;
            };
            let full = dir.join(&path);
            match self.checksums.checksum_blocking(&full, file.size, *mtime) {
                Ok(sum) => file.sha256 = Some(sum),
                Err(error) => {
                    tracing::debug!(path = %full.display(), %error, "cannot hash a held file; it is fetched again")
                }
            }
        }
        plan::diff(op, remote, local, &rules)
    }

    /// Runs `jobs` (operation index, transfer, its operation's budget) on twice `max_concurrent` threads, at most
    /// `max_concurrent` of them fetching at once.
    fn run_transfers(
        &self,
        jobs: VecDeque<(usize, Transfer, Arc<Budget>)>,
        cancel: &Cancel,
        files: &CycleFiles,
    ) -> Vec<(usize, FileDone)> {
        // Twice as many threads as fetch slots: while one thread flushes a verified file to disk (fsync), another
        // fetches with its slot.
        files.transfer_slots.set(self.config.max_concurrent.max(1));
        let workers = (2 * self.config.max_concurrent.max(1)).min(jobs.len());
        let queue = Mutex::new(jobs);
        let results = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some((index, transfer, budget)) = job else {
                        return;
                    };
                    let done = self.run_file(&transfer, &budget, cancel, files);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((index, done));
                });
            }
        });
        results.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// One file through the chain.
    fn run_file(
        &self,
        transfer: &Transfer,
        budget: &Budget,
        cancel: &Cancel,
        files: &CycleFiles,
    ) -> FileDone {
        let started = Instant::now();
        let mut file = FileReport {
            path: transfer.remote_path.clone(),
            outcome: FileOutcome::Deferred,
            bytes: 0,
            duration_ms: 0,
            error: None,
            attempts: Vec::new(),
        };
        let operation = format!(
            "pull {} {} from {}",
            transfer.category, transfer.remote_path, transfer.peer
        );
        let finish = |mut file: FileReport| {
            file.duration_ms = started.elapsed().as_millis() as u64;
            file
        };
        let Some(peer) = self.peer(&transfer.peer) else {
            file.error = Some("peer not in cluster.nodes".into());
            return FileDone::only(finish(file));
        };
        if cancel.is_cancelled() {
            file.error = Some("cycle cancelled before the transfer started".into());
            return FileDone::only(finish(file));
        }
        if let Some(reason) = self.pressure.reason() {
            tracing::info!(sync_operation = %operation, %reason, "pressure gate closed; pull deferred to a later cycle");
            file.error = Some(format!("pressure gate closed: {reason}"));
            return FileDone::only(finish(file));
        }
        let Some(dir) = self.layout.categories.get(&transfer.category) else {
            file.error = Some("category not configured here".into());
            return FileDone::only(finish(file));
        };
        let dest = dir.join(&transfer.dest_path);
        if let Err(short) = plan::check_free_disk(
            free_bytes(&dest),
            transfer.size,
            self.config.min_free_disk.0,
        ) {
            tracing::warn!(sync_operation = %operation, free_bytes = short.free, needed_bytes = short.needed, "not enough free disk for this file plus sync.min_free_disk; skipped, retried next cycle");
            file.error = Some(short.to_string());
            return FileDone::only(finish(file));
        }
        // The sha256 the file must have: the inventory's, else the peer's /checksum.
        let mut expected_sha = transfer.sha256.clone().map(|s| s.to_ascii_lowercase());
        if expected_sha.is_none() {
            if let Some(data_url) = peer.data_url.as_deref() {
                match fetch_checksum(
                    data_url,
                    &transfer.category,
                    &transfer.remote_path,
                    self.config.inventory_timeout.max(
                        self.config
                            .budget
                            .per_attempt
                            .min(budget.remaining(Instant::now())),
                    ),
                ) {
                    Ok((sum, size)) if size == transfer.size => expected_sha = Some(sum),
                    Ok((_, size)) => {
                        file.error = Some(format!(
                            "the file changed on the peer ({} → {size} bytes); pulled next cycle",
                            transfer.size
                        ));
                        return FileDone::only(finish(file));
                    }
                    Err(failure) => {
                        tracing::info!(sync_operation = %operation, error = %failure.reason, "peer gave no checksum; rsync's own checksum is trusted if it is used")
                    }
                }
            }
        }
        if let (Some(want), Some(held)) = (&expected_sha, &transfer.unchanged_if) {
            if want.eq_ignore_ascii_case(held) {
                file.outcome = FileOutcome::Unchanged;
                return FileDone::only(finish(file));
            }
        }
        let temp = temp_path(&dest, &version_key(expected_sha.as_deref(), transfer.size));
        if let Some(parent) = dest.parent() {
            if let Err(error) = std::fs::create_dir_all(parent) {
                file.outcome = FileOutcome::Failed;
                file.error = Some(format!("cannot create {}: {error}", parent.display()));
                return FileDone::only(finish(file));
            }
        }
        if dest.parent().is_some_and(|d| files.temp_dirs.contains(d)) {
            remove_stale_temps(&dest, &temp);
        }
        let games_before = if transfer.category == "games" && transfer.replaces {
            crate::jobs::demo::count_games(&dest).unwrap_or(0)
        } else {
            0
        };
        let mut attempts = FileAttempts::new(&transfer.peer, &self.chain(), &self.config.budget);
        let expected = Expected {
            size: transfer.size,
            sha256: expected_sha.as_deref(),
        };
        let result = loop {
            let step = {
                let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
                attempts.next(Instant::now(), budget, &mut breakers)
            };
            match step {
                Step::Done(result) => break result,
                Step::Skipped { transport } => {
                    let fallback = attempts.fallback_after(transport);
                    tracing::info!(sync_operation = %operation, transport = %transport, transport_attempt = 0u32, success = false, error = "circuit open", duration_ms = 0u64, bytes = 0u64, fallback_to = %fallback.map_or("none", |t| t.as_str()), "circuit open; transport skipped");
                    file.attempts.push(AttemptReport {
                        transport,
                        transport_attempt: 0,
                        success: false,
                        error: Some("circuit open".into()),
                        duration_ms: 0,
                        bytes: 0,
                        fallback_to: fallback,
                    });
                }
                Step::Wait { until } => {
                    while Instant::now() < until && !cancel.is_cancelled() {
                        std::thread::sleep(
                            WAIT_SLICE.min(until.saturating_duration_since(Instant::now())),
                        );
                    }
                    if cancel.is_cancelled() {
                        break Err(SyncError::Cancelled {
                            tried: super::budget::TriedList(attempts.tried().to_vec()),
                        });
                    }
                }
                Step::Attempt {
                    transport,
                    attempt,
                    limits,
                } => {
                    let attempt_started = Instant::now();
                    let outcome = match self.transport(transport) {
                        None => Err((
                            FailureKind::Unavailable,
                            format!("{transport} is not available here"),
                            0,
                        )),
                        Some(t) => {
                            let request = FetchRequest {
                                peer,
                                transfer,
                                temp: &temp,
                                expected_sha256: expected_sha.as_deref(),
                                limits,
                                cancel,
                            };
                            let fetched = {
                                let _slot = files.transfer_slots.take();
                                t.fetch(&request)
                            };
                            match fetched {
                                Ok(fetched) => match verify_and_install(
                                    &temp,
                                    &dest,
                                    &expected,
                                    fetched.sha256.as_deref(),
                                    &self
                                        .layout
                                        .quarantine
                                        .join(&transfer.category)
                                        .join(&transfer.peer),
                                    Some(&files.renamed),
                                ) {
                                    Ok(()) => Ok(fetched.bytes),
                                    Err(failure) => {
                                        if let Some(to) = &failure.quarantined {
                                            tracing::warn!(sync_operation = %operation, quarantined = %to.display(), error = %failure.reason, "corrupt database moved to quarantine; not installed");
                                        }
                                        Err((failure.kind, failure.reason, fetched.bytes))
                                    }
                                },
                                Err(failure) => Err((failure.kind, failure.reason, failure.bytes)),
                            }
                        }
                    };
                    let duration_ms = attempt_started.elapsed().as_millis() as u64;
                    let bytes = match &outcome {
                        Ok(bytes) => *bytes,
                        Err((_, _, bytes)) => *bytes,
                    };
                    file.bytes += bytes;
                    let fallback = attempts.fallback_after(transport);
                    let metrics = sync_metrics();
                    let label = if outcome.is_ok() {
                        "success"
                    } else {
                        "failure"
                    };
                    metrics
                        .attempts
                        .with_label_values(&[&transfer.peer, transport.as_str(), label])
                        .inc();
                    metrics
                        .bytes
                        .with_label_values(&[&transfer.peer, transport.as_str(), label])
                        .inc_by(bytes);
                    match &outcome {
                        Ok(_) => {
                            tracing::info!(sync_operation = %operation, transport = %transport, transport_attempt = attempt, success = true, error = "", duration_ms, bytes, fallback_to = "none", "sync transport attempt succeeded")
                        }
                        Err((kind, reason, _)) => {
                            tracing::warn!(sync_operation = %operation, transport = %transport, transport_attempt = attempt, success = false, error = %reason, duration_ms, bytes, fallback_to = %fallback.map_or("none", |t| t.as_str()), failure = %crate::logging::serde_name(kind), "sync transport attempt failed; the budget decides what comes next (retry, next transport or give up)")
                        }
                    }
                    file.attempts.push(AttemptReport {
                        transport,
                        transport_attempt: attempt,
                        success: outcome.is_ok(),
                        error: outcome.as_ref().err().map(|(_, reason, _)| reason.clone()),
                        duration_ms,
                        bytes,
                        fallback_to: if outcome.is_ok() { None } else { fallback },
                    });
                    let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
                    attempts.record(
                        Instant::now(),
                        transport,
                        outcome.map_err(|(kind, reason, _)| (kind, reason)),
                        &mut breakers,
                        jitter_sample(),
                    );
                }
            }
        };
        let mut gave_up = None;
        let mut games = None;
        let mut skip_from_now = None;
        match result {
            Ok(_) => {
                file.outcome = FileOutcome::Installed;
                if transfer.category == "games" {
                    let now = crate::jobs::demo::count_games(&dest).unwrap_or(0);
                    games = Some((
                        plan::config_of_games_path(&transfer.remote_path),
                        now.saturating_sub(games_before),
                    ));
                }
            }
            Err(error) => {
                file.error = Some(error.to_string());
                file.outcome = match error {
                    SyncError::Corrupt { .. } => FileOutcome::Quarantined,
                    SyncError::Cancelled { .. } => FileOutcome::Deferred,
                    _ => FileOutcome::Failed,
                };
                match &error {
                    SyncError::Cancelled { .. } => {
                        tracing::info!(sync_operation = %operation, "transfer cancelled; its partial download is kept hidden for resuming")
                    }
                    SyncError::Corrupt { .. } => {
                        skip_from_now = Some(Version::of_transfer(transfer));
                    }
                    SyncError::Integrity { .. } => {
                        skip_from_now = Some(Version::of_transfer(transfer));
                        tracing::error!(sync_operation = %operation, %error, "file failed its integrity check twice; stored as a dead letter, not fetched again until the peer changes it or the letter is replayed");
                        gave_up = Some(GaveUp {
                            peer: transfer.peer.clone(),
                            category: transfer.category.clone(),
                            path: transfer.remote_path.clone(),
                            error: error.to_string(),
                        });
                    }
                    _ => {
                        tracing::error!(sync_operation = %operation, %error, "file not pulled this cycle; the next cycle tries again")
                    }
                }
            }
        }
        FileDone {
            file: finish(file),
            gave_up,
            games,
            skip_from_now,
        }
    }
}

/// What [`scan`] fills.
#[derive(Default)]
pub(crate) struct LocalScan {
    files: BTreeMap<String, LocalFile>,
    stats: BTreeMap<String, SystemTime>,
    /// Directories holding partial downloads.
    temp_dirs: BTreeSet<PathBuf>,
}

/// Every regular file under `dir` (not temp files), keyed `<prefix>/<relative path>`, with its mtime; and the
/// directories holding partial downloads.
fn scan(dir: &Path, prefix: &str, out: &mut LocalScan, depth: usize, watch: &mut dyn WalkWatch) {
    if depth > crate::data_server::inventory::MAX_DEPTH {
        return;
    }
    watch.dir(dir);
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for item in listing.flatten() {
        let Some(name) = item.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if plan::is_unfinished_name(&name) {
            if is_partial_name(&name) {
                out.temp_dirs.insert(dir.to_path_buf());
            }
            continue;
        }
        let Ok(metadata) = item.metadata() else {
            continue;
        };
        let key = format!("{prefix}/{name}");
        if metadata.is_dir() {
            scan(&item.path(), &key, out, depth + 1, watch);
        } else if metadata.is_file() {
            if let Ok(mtime) = metadata.modified() {
                out.stats.insert(key.clone(), mtime);
            }
            out.files.insert(
                key,
                LocalFile {
                    size: metadata.len(),
                    sha256: None,
                },
            );
        }
    }
}

/// Free bytes on the filesystem that holds `path` (its nearest existing ancestor).
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut probe = path;
    while !probe.exists() {
        probe = probe.parent()?;
    }
    let probe = if probe.as_os_str().is_empty() {
        Path::new(".")
    } else {
        probe
    };
    let c_path = std::ffi::CString::new(probe.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we own; the path is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_finds_the_nearest_existing_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("a/b/c.db");
        assert!(free_bytes(&deep).is_some_and(|n| n > 0));
    }
}
