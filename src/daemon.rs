//! `coordinator run`: builds the supervision tree from the config, serves the control API, and waits for
//! SIGINT/SIGTERM (stop everything in reverse order, exit 0) or for the root supervisor to give up (exit 1).
//!
//! Tree (start order; stop is the reverse):
//! `root` → `dead_letters`, `data_server_monitor`, `sync`, `scheduler`, `resources`.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actors::data_server::monitor::actor::{
    monitor_child, monitor_child_options, DataServerMonitor, StateListener,
};
use actors::data_server::monitor::command::ServerCommand;
use actors::data_server::monitor::policy::DataServerState;
use actors::pressure::PressureGate;
use actors::resources::cluster::ClusterFigures;
use actors::resources::{OptimizerSetup, ResourceOptimizer};
use actors::runtime::dead_letters::{
    DeadLetterActor, DeadLetterShared, DeadLetterStore, DrainDeadLetters, ReplayFinished,
    SpillError, StoreError,
};
use actors::runtime::ActorRef;
use actors::runtime::{
    DeadLetterSink, Directory, HealthBoard, RootExit, SupervisorSpec, WorkerSpec,
};
use actors::scheduler::actor::{
    CapacityUpdate, NewGames, NewGamesAvailable, NewGamesHook, RunJob, SchedulerActor,
};
use actors::sync::actor::{GamesReceived, SyncActor, SyncSetup};
use actors::sync::board::SyncBoard;
use actors::sync::messages::{LocalGamesWritten, PullFile};
use actors::sync::plan::Peer;
use actors::sync::run::Layout;
use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};

use crate::api::{self, ApiState, SyncApi};
use crate::config::Config;

/// The dead-letter store (or its spill file) cannot be opened, or a damaged store not moved aside: an environment
/// problem, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum StoreUnusable {
    #[error("dead_letters.path: {0}")]
    Store(#[source] StoreError),
    #[error("dead_letters.path: {0}")]
    Spill(#[source] SpillError),
}

/// How the daemon ended.
pub enum Outcome {
    /// Stopped by a signal; every child stopped (or was aborted after its timeout).
    Clean,
    /// The root supervisor gave up.
    RootGaveUp(#[allow(dead_code)] String),
}

/// Runs the daemon until a signal or the root gives up.
pub fn run(config: Config, node: String) -> Result<Outcome> {
    let system = actix_rt::System::new();
    system.block_on(run_tree(config, node))
}

/// Every node of `cluster.nodes` as sync sees it.
fn sync_peers(config: &Config) -> Vec<Peer> {
    config
        .cluster
        .nodes
        .iter()
        .map(|n| Peer {
            name: n.name.clone(),
            roles: n.roles.clone(),
            data_url: n.data_url.clone(),
            api_url: n.api_url.clone(),
            ssh: n.ssh.clone(),
        })
        .collect()
}

async fn run_tree(config: Config, node: String) -> Result<Outcome> {
    let started = Instant::now();
    let sink = DeadLetterSink::new();
    // Components publish named checks here; `/health` reads them.
    let health = HealthBoard::new();
    // Closed by the resource optimizer under disk/memory pressure; the scheduler checks it before starting a job
    // and sync before each pull.
    // With the optimizer on it starts closed: no job starts before the disks have been measured once.
    let pressure = PressureGate::new();
    if config.resources.enabled {
        pressure.pause(format!(
            "resources: {}",
            actors::resources::policy::ResourcePolicy::FIRST_ROUND_REASON
        ));
    }
    let child_options = config.supervision.child_options();
    let roles = config.node_roles(&node);
    let role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    tracing::info!(%node, roles = %role_names.join(","), "node roles");

    // Check the store before anything runs: a damaged one is moved aside and salvaged (an error names both files);
    // one that cannot be opened at all ends the daemon with exit code 2 (an environment problem, see `main`).
    match DeadLetterStore::open_checked(&config.dead_letters, std::time::SystemTime::now()) {
        Ok(opened) => {
            if let Some(damaged) = opened.damaged {
                tracing::error!(store = %damaged.path.display(), moved_to = %damaged.moved_to.display(), reason = %damaged.reason, salvaged = damaged.salvaged, "dead-letter store was damaged: moved aside and replaced by a fresh store holding the rows still readable; inspect the damaged file");
            }
        }
        Err(e) => return Err(StoreUnusable::Store(e).into()),
    }
    let dl_shared = DeadLetterShared::new(&config.dead_letters, health.clone())
        .map_err(StoreUnusable::Spill)?;

    let directory_cell: Arc<OnceLock<Directory>> = Arc::new(OnceLock::new());
    let dl_spec = WorkerSpec::<DeadLetterActor>::new("dead_letters", child_options, &sink);
    let dl_ref = dl_spec.actor_ref();
    dl_shared.install(&sink);
    {
        let waker = dl_ref.clone();
        dl_shared.queue.on_wake(move || {
            // Not delivered (mailbox full): the next letter tries again; the maintenance tick drains too.
            waker.try_tell_raw(DrainDeadLetters).is_ok()
        });
        let reporter = dl_ref.clone();
        sink.install_outcome(move |id, outcome| {
            reporter
                .try_tell_raw(ReplayFinished {
                    id,
                    error: outcome.err(),
                })
                .is_ok()
        });
    }
    let dl_config = config.dead_letters.clone();
    let dl_directory = directory_cell.clone();
    let (factory_shared, factory_sink) = (dl_shared.clone(), sink.clone());
    let dl_child = dl_spec.try_factory(move || {
        DeadLetterActor::new(
            dl_config.clone(),
            factory_shared.clone(),
            factory_sink.clone(),
            dl_directory.clone(),
        )
    });

    let mut root =
        SupervisorSpec::new("root", config.supervision.supervisor_options()).child(dl_child);
    let scheduler_cell: Arc<OnceLock<ActorRef<SchedulerActor>>> = Arc::new(OnceLock::new());
    let sync_board = SyncBoard::new();
    let sync_spec = config.sync.enabled.then(|| {
        WorkerSpec::<SyncActor>::new("sync", child_options, &sink).replayable::<PullFile>()
    });
    let sync_ref = sync_spec.as_ref().map(|spec| spec.actor_ref());
    let mut monitor_ref = None;
    if config.data_server.enabled {
        // The standalone server refuses a missing root (a typo); the daemon creates its configured one, so
        // `run` works in a fresh checkout (`data/` is git-ignored).
        let data_root = &config.data_server.root;
        if !data_root.is_dir() {
            std::fs::create_dir_all(data_root).with_context(|| {
                format!("data_server.root: cannot create {}", data_root.display())
            })?;
            tracing::info!(root = %data_root.display(), "created the data server's root directory");
        }
        let options = monitor_child_options(child_options, &config.data_server);
        let spec = WorkerSpec::<DataServerMonitor>::new("data_server_monitor", options, &sink);
        monitor_ref = Some(spec.actor_ref());
        let command = ServerCommand::current_exe()
            .context("cannot find the coordinator executable to start the data server")?;
        let sync_for_state = sync_ref.clone();
        let on_state: StateListener = Arc::new(move |state: DataServerState| {
            tracing::info!(up = state.up, state = %actors::logging::serde_name(&state.state), bind = %state.bind, reason = %state.reason.as_deref().unwrap_or("-"), "local data server state changed");
            if let Some(sync) = &sync_for_state {
                // During shutdown sync stops before the monitor: a state it will never act on is not a dead letter.
                if matches!(
                    sync.shared().state(),
                    actors::runtime::ChildState::Stopping | actors::runtime::ChildState::Stopped
                ) {
                    return;
                }
                if let Err(error) = sync.tell(state) {
                    tracing::warn!(%error, "could not tell sync of the data server's state");
                }
            }
        });
        root = root.child(monitor_child(
            spec,
            config.data_server.clone(),
            node.clone(),
            command,
            on_state,
            health.clone(),
        ));
    }
    if let Some(spec) = sync_spec {
        let scheduler = scheduler_cell.clone();
        // Each game is counted once: the planner counts every job's games from its outcome, so only a node that
        // does not plan counts the games sync brings it.
        let planner_counts_outcomes = config.scheduler_role(&node).0.plans();
        let on_games: GamesReceived = Arc::new(move |config_key: &str, games: u64| {
            if planner_counts_outcomes {
                tracing::debug!(config = %config_key, games, "games received; the planner counted them from their jobs' outcomes");
                return;
            }
            let Some(scheduler) = scheduler.get() else {
                return;
            };
            match config_key.parse() {
                Ok(config) => {
                    if let Err(error) = scheduler.tell(NewGamesAvailable { config, games }) {
                        tracing::warn!(%error, "could not tell the scheduler of games received");
                    }
                }
                Err(error) => {
                    tracing::debug!(config = %config_key, %error, "games received for a file name that names no config; not counted")
                }
            }
        });
        let setup = SyncSetup {
            config: config.sync.clone(),
            node: node.clone(),
            roles: roles.clone(),
            peers: sync_peers(&config),
            layout: Layout {
                categories: config.data_server.category_dirs(),
                quarantine: config.data_server.root.join("quarantine"),
            },
            pressure: pressure.clone(),
            health: health.clone(),
            board: sync_board.clone(),
            on_games,
            token: config.api.token.clone(),
            notify_after: config.data_server.settle + Duration::from_millis(100),
            shutdown_timeout: child_options.shutdown_timeout,
        };
        root = root.child(spec.factory(move || SyncActor::new(setup.clone())));
    }
    let mut scheduler_ref = None;
    if config.scheduler.enabled {
        let spec = WorkerSpec::<SchedulerActor>::new("scheduler", child_options, &sink)
            .replayable_with_outcome::<RunJob>()
            .replayable::<NewGamesAvailable>()
            .replayable::<CapacityUpdate>()
            .replayable::<ClusterFigures>();
        scheduler_ref = Some(spec.actor_ref());
        let _ = scheduler_cell.set(spec.actor_ref());
        let scheduler_config = config.scheduler.clone();
        let (role, nodes) = config.scheduler_role(&node);
        tracing::info!(planner = %config.cluster.planner_name(&node), plans = role.plans(), "scheduler role");
        let token = config.api.token.clone();
        let this_node = node.clone();
        let self_exe = std::env::current_exe()
            .context("cannot find the coordinator executable for job commands")?;
        let scheduler_health = health.clone();
        let scheduler_pressure = pressure.clone();
        let sync_for_games = sync_ref.clone();
        let on_new_games: NewGamesHook = Arc::new(move |games: NewGames| {
            tracing::info!(config = %games.config, node = %games.node, games = games.games, path = %games.path.display(), "new games available");
            if let Some(sync) = &sync_for_games {
                let written = LocalGamesWritten {
                    config: games.config.clone(),
                    games: games.games,
                };
                if let Err(error) = sync.tell(written) {
                    tracing::warn!(%error, "could not tell sync of new games; training nodes pull at their next interval");
                }
            }
        });
        root = root.child(spec.factory(move || {
            SchedulerActor::new(
                scheduler_config.clone(),
                nodes.clone(),
                self_exe.clone(),
                on_new_games.clone(),
                scheduler_health.clone(),
                scheduler_pressure.clone(),
            )
            .with_role(role.clone(), &this_node, token.clone())
        }));
    }
    let mut resources_ref = None;
    if config.resources.enabled {
        let spec = WorkerSpec::<ResourceOptimizer>::new("resources", child_options, &sink);
        resources_ref = Some(spec.actor_ref());
        let setup = OptimizerSetup {
            config: config.resources.clone(),
            node: node.clone(),
            roots: config.watched_roots(),
            limits: config.scheduler.policy.target_jobs.clone(),
            gpus: config.scheduler.policy.gpus.clone(),
            gpu: config.configured_gpu(&node),
            initial_target: config.scheduler.jobs.max_concurrent_per_node,
            gate: pressure.clone(),
            health: health.clone(),
            scheduler: scheduler_ref.clone(),
            peers: config.resource_peers(&node),
            token: config.api.token.clone(),
            ask_timeout: config.supervision.ask_timeout,
        };
        root = root.child(spec.factory(move || ResourceOptimizer::new(setup.clone())));
    }

    let mut handle = root.start_root();
    let _ = directory_cell.set(handle.directory.clone());
    handle.started().await;
    tracing::info!(%node, elapsed_ms = started.elapsed().as_millis() as u64, "supervision tree started");

    let api_server = if config.api.enabled {
        let state = ApiState {
            node: node.clone(),
            started,
            tree: handle.tree.clone(),
            directory: handle.directory.clone(),
            dead_letters: dl_ref.clone(),
            dead_letter_status: dl_shared.clone(),
            scheduler: scheduler_ref.clone(),
            data_server: monitor_ref.clone(),
            resources: resources_ref.clone(),
            sync: sync_ref.clone().map(|actor| SyncApi {
                actor,
                board: sync_board.clone(),
                cycle_deadline: config.sync.cycle_deadline,
            }),
            health: health.clone(),
            token: config.api.token.clone(),
            debug_endpoints: config.api.debug_endpoints,
            ask_timeout: config.supervision.ask_timeout,
        };
        match api::start(&config.api.bind, state) {
            Ok(server) => {
                let server_handle = server.handle();
                actix_rt::spawn(server);
                Some(server_handle)
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "control API did not start; stopping the tree");
                handle.shutdown().await;
                return Err(e);
            }
        }
    } else {
        None
    };

    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let outcome = tokio::select! {
        _ = sigterm.recv() => { tracing::info!("SIGTERM received; shutting down"); Outcome::Clean }
        _ = sigint.recv() => { tracing::info!("SIGINT received; shutting down"); Outcome::Clean }
        exit = handle.exited() => {
            let RootExit::GaveUp { reason } = exit;
            tracing::error!(%reason, "root supervisor gave up; stopping and exiting with code 1 so the service manager takes over");
            Outcome::RootGaveUp(reason)
        }
    };
    let stopping = Instant::now();
    if let Some(server) = &api_server {
        // Stop taking requests first, finishing those in flight (bounded by the server's shutdown timeout).
        let _ = tokio::time::timeout(Duration::from_secs(3), server.stop(true)).await;
    }
    if !handle.shutdown().await {
        tracing::warn!(
            budget_ms = handle.shutdown_budget.as_millis() as u64,
            "tree did not stop within its shutdown budget; exiting anyway"
        );
    }
    let flushed = dl_shared.flush_after_shutdown(&sink);
    if flushed > 0 {
        tracing::warn!(
            flushed,
            spill = %dl_shared.spill.path().display(),
            "dead letters left in the queue after shutdown were written to the spill file; they are moved into the store at the next start"
        );
    }
    tracing::info!(
        elapsed_ms = stopping.elapsed().as_millis() as u64,
        "shutdown complete"
    );
    Ok(outcome)
}
