//! The config file's top level and the sections owned by the daemon itself (`node`, `cluster`, `supervision`,
//! `api`, `logging`) plus the placeholders of sections whose actors are not built yet. Actor sections
//! (`dead_letters`, `data_server`, `scheduler`, `resources`, …) are defined beside their actors in the `actors`
//! crate.
//!
//! Every field's `///` doc is its user documentation (docs/configuration.md repeats it with the default and the
//! env var); defaults are the numbers of shared/domain.

use std::net::SocketAddr;
use std::time::Duration;

use actors::data_server::config::DataServerConfig;
use actors::resources::ResourcesConfig;
use actors::runtime::dead_letters::DeadLetterConfig;
use actors::runtime::{BackoffConfig, ChildOptions, RestartType, Strategy, SupervisorOptions};
use actors::scheduler::settings::SchedulerConfig;
use serde::{Deserialize, Serialize};

use crate::cli::LogFormat;

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub cluster: ClusterConfig,
    pub supervision: SupervisionConfig,
    pub dead_letters: DeadLetterConfig,
    pub api: ApiConfig,
    pub logging: LoggingConfig,
    pub data_server: DataServerConfig,
    pub sync: SyncConfig,
    pub scheduler: SchedulerConfig,
    pub resources: ResourcesConfig,
}

/// This node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's name: in logs, `/status`, inventories, and as the default of `run --node`.
    pub name: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "local".to_string(),
        }
    }
}

/// The cluster this node belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Every node of the cluster (this one included). Empty: a single-machine cluster of just `node.name`.
    pub nodes: Vec<ClusterNode>,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterNode {
    /// Unique node name (the `--node` value on that machine).
    pub name: String,
    /// Base URL of the node's control API, e.g. `http://10.0.0.5:8765`.
    pub api_url: Option<String>,
    /// Base URL of the node's data server, e.g. `http://10.0.0.5:8766`.
    pub data_url: Option<String>,
    /// `user@host` for SSH (rsync transport and remote selfplay jobs); none: not reachable over SSH.
    pub ssh: Option<String>,
    /// GPU model as in the scheduler's GPU table (`GH200`, `H100`, `RTX_4090`, `CPU`, …).
    pub gpu: String,
    /// GPU memory in GB (0: unknown).
    pub gpu_memory_gb: f64,
    /// CPU cores (0: unknown).
    pub cpu_cores: u32,
    /// Spot/ephemeral machine (may vanish at any time).
    pub ephemeral: bool,
}

impl Default for ClusterNode {
    fn default() -> Self {
        ClusterNode {
            name: String::new(),
            api_url: None,
            data_url: None,
            ssh: None,
            gpu: "CPU".to_string(),
            gpu_memory_gb: 0.0,
            cpu_cores: 0,
            ephemeral: false,
        }
    }
}

/// How the supervision tree restarts and stops actors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// Which children restart with a failed one: `one_for_one`, `one_for_all` or `rest_for_one`.
    pub strategy: Strategy,
    /// More restarts than this within `within` make a supervisor give up (the root giving up exits with code 1).
    pub max_restarts: u32,
    /// The window in which restarts are counted.
    #[serde(with = "humantime_serde")]
    pub within: Duration,
    /// First delay before restarting a failed child; doubles per restart in a row.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Upper bound of the restart delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Random spread of each delay, as a fraction (0.1 = ±10 %).
    pub backoff_jitter: f64,
    /// A child that ran this long without failing starts again from `backoff_initial`.
    #[serde(with = "humantime_serde")]
    pub backoff_reset_after: Duration,
    /// How long each actor may take to stop gracefully before it is aborted.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// An actor that shows no progress for this long is treated as failed and restarted.
    #[serde(with = "humantime_serde")]
    pub watchdog_deadline: Duration,
    /// How often supervisors check heartbeats.
    #[serde(with = "humantime_serde")]
    pub watchdog_check_every: Duration,
    /// Mailbox bound of every actor; a message to a full mailbox becomes a dead letter.
    pub mailbox_capacity: usize,
    /// How long the control API waits for an actor's answer.
    #[serde(with = "humantime_serde")]
    pub ask_timeout: Duration,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            strategy: Strategy::OneForOne,
            max_restarts: 5,
            within: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            backoff_jitter: 0.1,
            backoff_reset_after: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(10),
            watchdog_deadline: Duration::from_secs(30),
            watchdog_check_every: Duration::from_secs(1),
            mailbox_capacity: 1024,
            ask_timeout: Duration::from_secs(5),
        }
    }
}

impl SupervisionConfig {
    pub fn supervisor_options(&self) -> SupervisorOptions {
        SupervisorOptions {
            strategy: self.strategy,
            max_restarts: self.max_restarts,
            within: self.within,
            backoff: BackoffConfig {
                initial: self.backoff_initial,
                max: self.backoff_max,
                jitter: self.backoff_jitter,
                reset_after: self.backoff_reset_after,
            },
            watchdog_check_every: self.watchdog_check_every,
            start_timeout: Duration::from_secs(30),
        }
    }

    pub fn child_options(&self) -> ChildOptions {
        ChildOptions {
            restart: RestartType::Permanent,
            shutdown_timeout: self.shutdown_timeout,
            mailbox_capacity: self.mailbox_capacity,
            watchdog: Some(self.watchdog_deadline),
            dedicated_thread: true,
        }
    }

    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.backoff_jitter) {
            out.push((
                "supervision.backoff_jitter".into(),
                format!(
                    "{} is outside 0..1 (a fraction, e.g. 0.1)",
                    self.backoff_jitter
                ),
            ));
        }
        if self.backoff_initial > self.backoff_max {
            out.push((
                "supervision.backoff_initial".into(),
                "must not exceed supervision.backoff_max".into(),
            ));
        }
        if self.mailbox_capacity == 0 {
            out.push((
                "supervision.mailbox_capacity".into(),
                "must be at least 1".into(),
            ));
        }
        if self.watchdog_deadline < self.watchdog_check_every {
            out.push((
                "supervision.watchdog_deadline".into(),
                "must be at least supervision.watchdog_check_every".into(),
            ));
        }
        if self.watchdog_check_every.is_zero() {
            out.push((
                "supervision.watchdog_check_every".into(),
                "must be above 0 (e.g. 1s)".into(),
            ));
        }
        out
    }
}

/// The control API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the control API.
    pub enabled: bool,
    /// Address to listen on (`host:port`). Keep it on loopback or a private network.
    pub bind: String,
    /// When set, every non-GET request needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Serve `/debug/fail/{actor}` and `/debug/ping/{actor}` (fault drills). Off in production.
    pub debug_endpoints: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            bind: "127.0.0.1:8765".to_string(),
            token: None,
            debug_endpoints: false,
        }
    }
}

impl ApiConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.bind.parse::<SocketAddr>().is_err() {
            out.push((
                "api.bind".into(),
                format!(
                    "{:?} is not host:port (expected e.g. 127.0.0.1:8765)",
                    self.bind
                ),
            ));
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            out.push((
                "api.token".into(),
                "is empty: remove the key or set a secret".into(),
            ));
        }
        out
    }

    /// The API's base URL as clients reach it.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.bind)
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `pretty` (for people) or `json` (one object per line).
    pub format: LogFormat,
    /// Level or filter: `info`, `debug`, `actors=debug,info`, …
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Pretty,
            level: "info".to_string(),
        }
    }
}

impl LoggingConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        match tracing_subscriber::EnvFilter::try_new(&self.level) {
            Ok(_) => vec![],
            Err(e) => vec![(
                "logging.level".into(),
                format!(
                    "{:?}: {e} (expected e.g. info, debug, actors=debug,info)",
                    self.level
                ),
            )],
        }
    }
}

/// PLACEHOLDER section: data sync is a later issue. Only switches its placeholder actor on or off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Run the sync actor (a placeholder that does no transfers yet).
    pub enabled: bool,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig { enabled: true }
    }
}

impl super::Validate for Config {
    fn validate(&self) -> Vec<super::FieldError> {
        self.problems()
            .into_iter()
            .map(|(path, message)| super::FieldError::new(path, message))
            .collect()
    }
}

impl Config {
    /// Directories whose disk use the resource optimizer watches: the data server's categories, the jobs'
    /// output directory, the dead-letter store's directory and `resources.data_roots`, each once.
    pub fn watched_roots(&self) -> Vec<std::path::PathBuf> {
        let mut roots: Vec<std::path::PathBuf> = Vec::new();
        let candidates = self
            .data_server
            .category_dirs()
            .into_values()
            .chain(std::iter::once(self.scheduler.jobs.output_dir.clone()))
            .chain(
                self.dead_letters
                    .path
                    .parent()
                    .map(|p| {
                        if p.as_os_str().is_empty() {
                            std::path::Path::new(".")
                        } else {
                            p
                        }
                    })
                    .map(std::path::Path::to_path_buf),
            )
            .chain(self.resources.data_roots.iter().cloned());
        for root in candidates {
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        roots
    }

    /// The peers whose `/status` the resource optimizer polls: every other node with an `api_url`.
    pub fn resource_peers(&self, this_node: &str) -> Vec<actors::resources::actor::PeerEndpoint> {
        self.cluster
            .nodes
            .iter()
            .filter(|n| n.name != this_node)
            .filter_map(|n| {
                Some(actors::resources::actor::PeerEndpoint {
                    name: n.name.clone(),
                    api_url: n.api_url.clone()?,
                })
            })
            .collect()
    }

    /// The scheduler's view of the cluster: `cluster.nodes`, or just this node when the list is empty.
    pub fn scheduler_nodes(&self, this_node: &str) -> Vec<actors::scheduler::actor::SchedulerNode> {
        use actors::scheduler::actor::SchedulerNode;
        if self.cluster.nodes.is_empty() {
            return vec![SchedulerNode {
                name: this_node.to_string(),
                gpu: "unknown".to_string(),
                gpu_memory_gb: None,
                ephemeral: false,
                ssh: None,
                local: true,
            }];
        }
        self.cluster
            .nodes
            .iter()
            .map(|n| SchedulerNode {
                name: n.name.clone(),
                gpu: n.gpu.clone(),
                gpu_memory_gb: (n.gpu_memory_gb > 0.0).then_some(n.gpu_memory_gb),
                ephemeral: n.ephemeral,
                ssh: n.ssh.clone(),
                local: n.name == this_node,
            })
            .collect()
    }

    /// Semantic checks across sections: every problem as (field path, what is wrong and expected).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.node.name.trim().is_empty() {
            out.push((
                "node.name".into(),
                "is empty (expected this node's name)".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, n) in self.cluster.nodes.iter().enumerate() {
            if n.name.trim().is_empty() {
                out.push((format!("cluster.nodes[{i}].name"), "is empty".into()));
            } else if !seen.insert(n.name.clone()) {
                out.push((
                    format!("cluster.nodes[{i}].name"),
                    format!("{:?} appears twice (names must be unique)", n.name),
                ));
            }
        }
        out.extend(self.supervision.problems());
        out.extend(self.api.problems());
        out.extend(self.logging.problems());
        out.extend(
            self.data_server
                .problems()
                .into_iter()
                .map(|p| ("data_server".to_string(), p)),
        );
        out.extend(
            self.resources
                .problems()
                .into_iter()
                .map(|(path, p)| (format!("resources.{path}"), p)),
        );
        out.extend(
            self.scheduler
                .problems()
                .into_iter()
                .map(|(path, p)| (format!("scheduler.{path}"), p)),
        );
        out
    }
}
