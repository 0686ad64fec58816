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
use actors::sync::config::{default_roles, Role, SyncConfig};
use serde::{Deserialize, Serialize};

use crate::cli::LogFormat;

use super::validate::{extend_under, pairs, sentences, validate_under, FieldError, Validate};

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
    /// The one node that plans for the whole cluster: it alone runs the allocation and hands every node its jobs
    /// through that node's control API; the other daemons run what they are given and plan nothing. Default: the
    /// first node whose roles include `training`, else the first node.
    pub planner: Option<String>,
    /// Every node of the cluster (this one included). Empty: a single-machine cluster of just `node.name`.
    pub nodes: Vec<ClusterNode>,
}

impl ClusterConfig {
    /// The node that plans: `planner` when set, else the first training node, else the first node; `this_node`
    /// itself in a single-machine cluster (no `nodes`).
    pub fn planner_name(&self, this_node: &str) -> String {
        if let Some(planner) = self.planner.as_deref().filter(|p| !p.trim().is_empty()) {
            return planner.to_string();
        }
        self.nodes
            .iter()
            .find(|n| n.roles.contains(&Role::Training))
            .or_else(|| self.nodes.first())
            .map_or_else(|| this_node.to_string(), |n| n.name.clone())
    }
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
    /// GPU model as in the scheduler's GPU table (`GH200`, `H100`, `RTX_4090`, `CPU`, …). `unknown` (the
    /// default): the model the node's `nvidia-smi` reports (`NVIDIA GH200 480GB` → `GH200`), CPU-only when it
    /// reports none. An explicit name wins over the measured one; a mismatch is a warning naming both.
    pub gpu: String,
    /// GPU memory in GB (0: unknown).
    pub gpu_memory_gb: f64,
    /// CPU cores (0: unknown).
    pub cpu_cores: u32,
    /// Spot/ephemeral machine (may vanish at any time).
    pub ephemeral: bool,
    /// What the node does: `selfplay` (gets selfplay jobs, produces games) and/or `training` (pulls the
    /// cluster's games, produces models). A single-machine cluster (no `nodes`) is both.
    pub roles: Vec<Role>,
}

impl Default for ClusterNode {
    fn default() -> Self {
        ClusterNode {
            name: String::new(),
            api_url: None,
            data_url: None,
            ssh: None,
            gpu: "unknown".to_string(),
            gpu_memory_gb: 0.0,
            cpu_cores: 0,
            ephemeral: false,
            roles: default_roles(),
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
}

impl Validate for SupervisionConfig {
    fn validate(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.backoff_jitter) {
            out.push(FieldError::new(
                "backoff_jitter",
                format!(
                    "{} is outside 0..1 (a fraction, e.g. 0.1)",
                    self.backoff_jitter
                ),
            ));
        }
        if self.backoff_initial > self.backoff_max {
            out.push(FieldError::new(
                "backoff_initial",
                "must not exceed supervision.backoff_max",
            ));
        }
        if self.mailbox_capacity == 0 {
            out.push(FieldError::new("mailbox_capacity", "must be at least 1"));
        }
        if self.watchdog_deadline < self.watchdog_check_every {
            out.push(FieldError::new(
                "watchdog_deadline",
                "must be at least supervision.watchdog_check_every",
            ));
        }
        if self.watchdog_check_every.is_zero() {
            out.push(FieldError::new(
                "watchdog_check_every",
                "must be above 0 (e.g. 1s)",
            ));
        }
        out
    }
}

/// The control API.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the control API.
    pub enabled: bool,
    /// Address to listen on (`host:port`). Keep it on loopback or a private network.
    pub bind: String,
    /// When set, every request except `GET /health` and `GET /metrics` needs `Authorization: Bearer <token>`.
    /// Printed as `<redacted>`; removed from the environment of every child process.
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

/// Like the derived `Debug`, with the token shown as `<redacted>`.
impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("enabled", &self.enabled)
            .field("bind", &self.bind)
            .field(
                "token",
                &self.token.as_ref().map(|_| super::secrets::REDACTED),
            )
            .field("debug_endpoints", &self.debug_endpoints)
            .finish()
    }
}

impl Validate for ApiConfig {
    fn validate(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if self.bind.parse::<SocketAddr>().is_err() {
            out.push(FieldError::new(
                "bind",
                format!(
                    "{:?} is not host:port (expected e.g. 127.0.0.1:8765)",
                    self.bind
                ),
            ));
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            out.push(FieldError::new(
                "token",
                "is empty: remove the key or set a secret",
            ));
        }
        out
    }
}

impl ApiConfig {
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

impl Validate for LoggingConfig {
    fn validate(&self) -> Vec<FieldError> {
        match actors::logging::check_filter(&self.level) {
            Ok(()) => vec![],
            Err(error) => vec![FieldError::new("level", error.to_string())],
        }
    }
}

impl Validate for NodeConfig {
    fn validate(&self) -> Vec<FieldError> {
        if self.name.trim().is_empty() {
            return vec![FieldError::new(
                "name",
                "is empty (expected this node's name)",
            )];
        }
        vec![]
    }
}

impl Validate for ClusterConfig {
    fn validate(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.name.trim().is_empty() {
                out.push(FieldError::new(format!("nodes[{i}].name"), "is empty"));
            } else if !seen.insert(n.name.clone()) {
                out.push(FieldError::new(
                    format!("nodes[{i}].name"),
                    format!("{:?} appears twice (names must be unique)", n.name),
                ));
            }
            if self.nodes.len() > 1 && n.roles.is_empty() {
                out.push(FieldError::new(
                    format!("nodes[{i}].roles"),
                    "is empty (expected selfplay and/or training)",
                ));
            }
        }
        if let Some(planner) = &self.planner {
            if self.nodes.is_empty() {
                if planner.trim().is_empty() {
                    out.push(FieldError::new(
                        "planner",
                        "is empty (expected a node name, or leave it out)",
                    ));
                }
            } else if !self.nodes.iter().any(|n| &n.name == planner) {
                let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                out.push(FieldError::new(
                    "planner",
                    format!(
                        "{planner:?} is not in cluster.nodes (known: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        out
    }
}

/// The whole file: each section once (its own checks, paths prefixed here), then the checks across sections.
/// A section still on an older `problems()` shape is adapted in one line with `validate::pairs`/`sentences`.
impl Validate for Config {
    fn validate(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        validate_under(&mut out, "node", &self.node);
        validate_under(&mut out, "cluster", &self.cluster);
        validate_under(&mut out, "supervision", &self.supervision);
        validate_under(&mut out, "api", &self.api);
        validate_under(&mut out, "logging", &self.logging);
        extend_under(
            &mut out,
            "data_server",
            sentences("data_server", self.data_server.problems()),
        );
        extend_under(&mut out, "sync", pairs("sync", self.sync.problems()));
        extend_under(
            &mut out,
            "resources",
            pairs("resources", self.resources.problems()),
        );
        extend_under(
            &mut out,
            "scheduler",
            pairs("scheduler", self.scheduler.problems()),
        );
        out.extend(self.across_sections());
        out
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

    /// The GPU model `cluster.nodes` names for `this_node`; `unknown` (take the measured one) when it names none or
    /// the node is not listed.
    pub fn configured_gpu(&self, this_node: &str) -> String {
        self.cluster
            .nodes
            .iter()
            .find(|n| n.name == this_node)
            .map_or_else(|| "unknown".to_string(), |n| n.gpu.clone())
    }

    /// The roles of node `name`: its `roles` in `cluster.nodes`; both roles in a single-machine cluster (no
    /// `nodes`); none for a node not listed.
    pub fn node_roles(&self, name: &str) -> Vec<Role> {
        if self.cluster.nodes.is_empty() {
            return vec![Role::Selfplay, Role::Training];
        }
        self.cluster
            .nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.roles.clone())
            .unwrap_or_default()
    }

    /// The scheduler's view of the cluster: the nodes of `cluster.nodes` whose roles include `selfplay`, or just
    /// this node when the list is empty.
    pub fn scheduler_nodes(&self, this_node: &str) -> Vec<actors::scheduler::actor::SchedulerNode> {
        use actors::scheduler::actor::SchedulerNode;
        if self.cluster.nodes.is_empty() {
            return vec![SchedulerNode {
                name: this_node.to_string(),
                api_url: None,
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
            .filter(|n| n.roles.contains(&Role::Selfplay))
            .map(|n| SchedulerNode {
                name: n.name.clone(),
                api_url: n.api_url.clone(),
                gpu: n.gpu.clone(),
                gpu_memory_gb: (n.gpu_memory_gb > 0.0).then_some(n.gpu_memory_gb),
                ephemeral: n.ephemeral,
                ssh: n.ssh.clone(),
                local: n.name == this_node,
            })
            .collect()
    }

    /// One cluster file serves every node: this node (`node.name`) listens where its `api_url` and `data_url` say,
    /// unless the file or the environment set `api.bind` / `data_server.bind`. Returns (field, source) for each
    /// bind it set, so an error about it names the cluster entry.
    pub fn bind_from_cluster(&mut self, explicit: super::ExplicitBinds) -> Vec<(String, String)> {
        let mut set = Vec::new();
        let Some((i, entry)) = self
            .cluster
            .nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.name == self.node.name)
        else {
            return set;
        };
        if !explicit.api {
            if let Some(addr) = entry.api_url.as_deref().and_then(listen_address) {
                self.api.bind = addr;
                set.push((
                    "api.bind".to_string(),
                    format!("cluster.nodes[{i}].api_url"),
                ));
            }
        }
        if !explicit.data_server {
            if let Some(addr) = entry.data_url.as_deref().and_then(listen_address) {
                self.data_server.bind = addr;
                set.push((
                    "data_server.bind".to_string(),
                    format!("cluster.nodes[{i}].data_url"),
                ));
            }
        }
        set
    }

    /// This node's scheduler: its role (the cluster's planner plans, every other node is a worker) and the nodes
    /// it schedules (the planner: every selfplay node; a worker: itself only, for the jobs it is handed).
    pub fn scheduler_role(
        &self,
        this_node: &str,
    ) -> (
        actors::scheduler::actor::SchedulerRole,
        Vec<actors::scheduler::actor::SchedulerNode>,
    ) {
        use actors::scheduler::actor::SchedulerRole;
        let role = SchedulerRole::of(this_node, &self.cluster.planner_name(this_node));
        let mut nodes = self.scheduler_nodes(this_node);
        if !role.plans() {
            nodes.retain(|n| n.local);
            if nodes.is_empty() {
                // A worker without the selfplay role still answers the planner (with refusals it can explain).
                nodes = Config::default().scheduler_nodes(this_node);
            }
        }
        (role, nodes)
    }

    /// Checks that read more than one section; each names the other fields it read.
    fn across_sections(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let names: Vec<&str> = self.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        if !names.is_empty() && !names.contains(&self.node.name.as_str()) {
            out.push(
                FieldError::new(
                    "node.name",
                    format!(
                        "{:?} is not in cluster.nodes (known: {}); set node.name or pass --node to one of them",
                        self.node.name,
                        names.join(", ")
                    ),
                )
                .also("cluster.nodes"),
            );
        }
        if self.api.enabled && self.data_server.enabled {
            if let Some(addr) = same_listener(&self.api.bind, &self.data_server.bind) {
                out.push(
                    FieldError::new(
                        "data_server.bind",
                        format!("{addr} is also api.bind (the control API and the data server need different ports)"),
                    )
                    .also("api.bind"),
                );
            }
        }
        out
    }
}

/// The `host:port` a daemon listens on for a base URL such as `http://10.0.0.5:8765` (port 80 when the URL has
/// none); `None` for something that is not an `http://` URL.
pub fn listen_address(url: &str) -> Option<String> {
    let rest = url.trim().strip_prefix("http://")?;
    let authority = rest.split('/').next().filter(|a| !a.is_empty())?;
    if authority.contains('@') {
        return None;
    }
    let has_port = match authority.rfind(':') {
        Some(colon) => !authority.ends_with(']') && authority[colon + 1..].parse::<u16>().is_ok(),
        None => false,
    };
    Some(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

/// The address two `host:port` binds would both listen on (equal, or the same port with one on every
/// interface); port 0 (any free port) never clashes.
fn same_listener(a: &str, b: &str) -> Option<SocketAddr> {
    let (a, b) = (a.parse::<SocketAddr>().ok()?, b.parse::<SocketAddr>().ok()?);
    let clash = a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified());
    clash.then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, roles: &[Role]) -> ClusterNode {
        ClusterNode {
            name: name.to_string(),
            roles: roles.to_vec(),
            ..ClusterNode::default()
        }
    }

    fn paths(config: &Config) -> Vec<String> {
        config.validate().into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn listeners_clash_on_the_same_address_or_an_unspecified_host() {
        let cases = [
            ("127.0.0.1:8765", "127.0.0.1:8765", true),
            ("0.0.0.0:8765", "127.0.0.1:8765", true),
            ("127.0.0.1:8765", "0.0.0.0:8765", true),
            ("127.0.0.1:8765", "127.0.0.1:8766", false),
            ("127.0.0.1:8765", "10.0.0.1:8765", false),
            ("127.0.0.1:0", "127.0.0.1:0", false),
            ("nonsense", "127.0.0.1:8765", false),
        ];
        for (a, b, clash) in cases {
            assert_eq!(same_listener(a, b).is_some(), clash, "{a} {b}");
        }
    }

    #[test]
    fn the_planner_is_the_named_node_else_the_first_training_node_else_the_first() {
        let mut cluster = ClusterConfig::default();
        assert_eq!(cluster.planner_name("solo"), "solo");
        cluster.nodes = vec![
            node("w1", &[Role::Selfplay]),
            node("t1", &[Role::Training]),
            node("t2", &[Role::Training]),
        ];
        assert_eq!(cluster.planner_name("w1"), "t1");
        cluster.planner = Some("t2".into());
        assert_eq!(cluster.planner_name("w1"), "t2");
        cluster.nodes.retain(|n| n.name == "w1");
        cluster.planner = None;
        assert_eq!(cluster.planner_name("w1"), "w1");
    }

    #[test]
    fn a_node_listens_where_its_urls_say_unless_a_bind_is_set() {
        assert_eq!(
            listen_address("http://10.0.0.5:8765").as_deref(),
            Some("10.0.0.5:8765")
        );
        assert_eq!(
            listen_address("http://trainer:9000/").as_deref(),
            Some("trainer:9000")
        );
        assert_eq!(
            listen_address("http://trainer").as_deref(),
            Some("trainer:80")
        );
        assert_eq!(
            listen_address("http://[::1]:8765").as_deref(),
            Some("[::1]:8765")
        );
        assert_eq!(listen_address("https://x:1"), None);
        assert_eq!(listen_address("10.0.0.5:8765"), None);
        let mut config = Config::default();
        config.node.name = "w1".into();
        config.cluster.nodes = vec![ClusterNode {
            name: "w1".into(),
            api_url: Some("http://127.0.0.1:19001".into()),
            data_url: Some("http://127.0.0.1:19002".into()),
            ..ClusterNode::default()
        }];
        let mut derived = config.clone();
        let set = derived.bind_from_cluster(super::super::ExplicitBinds::default());
        assert_eq!(derived.api.bind, "127.0.0.1:19001");
        assert_eq!(derived.data_server.bind, "127.0.0.1:19002");
        assert_eq!(
            set[0],
            (
                "api.bind".to_string(),
                "cluster.nodes[0].api_url".to_string()
            )
        );
        let mut kept = config.clone();
        kept.bind_from_cluster(super::super::ExplicitBinds {
            api: true,
            data_server: false,
        });
        assert_eq!(kept.api.bind, Config::default().api.bind);
        assert_eq!(kept.data_server.bind, "127.0.0.1:19002");
    }

    #[test]
    fn the_planner_schedules_every_selfplay_node_and_a_worker_only_itself() {
        let mut config = Config::default();
        config.cluster.nodes = vec![
            node("t1", &[Role::Training]),
            node("w1", &[Role::Selfplay]),
            node("w2", &[Role::Selfplay]),
        ];
        let (role, nodes) = config.scheduler_role("t1");
        assert!(role.plans());
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["w1", "w2"]);
        let (role, nodes) = config.scheduler_role("w2");
        assert!(!role.plans());
        assert_eq!(nodes.len(), 1);
        assert!(nodes[0].local && nodes[0].name == "w2");
        let (_, lone) = Config::default().scheduler_role("local");
        assert!(lone[0].local);
    }

    #[test]
    fn a_planner_outside_the_cluster_is_an_error_naming_the_nodes() {
        let mut config = Config::default();
        config.node.name = "w1".into();
        config.cluster.nodes = vec![node("w1", &[Role::Selfplay]), node("t1", &[Role::Training])];
        config.cluster.planner = Some("t9".into());
        let problems = config.validate();
        let problem = problems
            .iter()
            .find(|p| p.path == "cluster.planner")
            .expect("planner problem");
        assert!(
            problem.message.contains("known: w1, t1"),
            "{}",
            problem.message
        );
        config.cluster.planner = Some("t1".into());
        assert!(paths(&config).is_empty(), "{:?}", paths(&config));
    }

    #[test]
    fn roles_default_to_selfplay_and_a_lone_node_is_both() {
        let config = Config::default();
        assert_eq!(config.node_roles("local"), [Role::Selfplay, Role::Training]);
        assert_eq!(ClusterNode::default().roles, [Role::Selfplay]);
    }

    #[test]
    fn the_scheduler_gets_only_selfplay_nodes() {
        let mut config = Config::default();
        config.cluster.nodes = vec![
            node("trainer", &[Role::Training]),
            node("w1", &[Role::Selfplay]),
            node("both", &[Role::Selfplay, Role::Training]),
        ];
        let names: Vec<String> = config
            .scheduler_nodes("trainer")
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["w1", "both"]);
        assert_eq!(config.node_roles("trainer"), [Role::Training]);
        assert!(config.node_roles("unlisted").is_empty());
        config.cluster.nodes[1].roles.clear();
        assert!(paths(&config).contains(&"cluster.nodes[1].roles".to_string()));
    }

    #[test]
    fn node_name_must_be_in_a_non_empty_cluster() {
        let mut config = Config::default();
        assert_eq!(
            paths(&config),
            Vec::<String>::new(),
            "empty cluster: any name"
        );
        config.cluster.nodes = vec![
            ClusterNode {
                name: "a".into(),
                ..ClusterNode::default()
            },
            ClusterNode {
                name: "b".into(),
                ..ClusterNode::default()
            },
        ];
        let problems = config.validate();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "node.name");
        assert!(
            problems[0].message.contains("known: a, b"),
            "{}",
            problems[0].message
        );
        assert_eq!(problems[0].related, ["cluster.nodes"]);
        config.node.name = "b".into();
        assert_eq!(paths(&config), Vec::<String>::new());
    }

    #[test]
    fn api_and_data_server_on_one_address_is_an_error_only_when_both_run() {
        let mut config = Config::default();
        config.data_server.bind = config.api.bind.clone();
        assert_eq!(paths(&config), ["data_server.bind"]);
        config.data_server.enabled = false;
        assert_eq!(paths(&config), Vec::<String>::new());
    }

    #[test]
    fn each_section_reports_under_its_own_name() {
        let mut config = Config::default();
        config.supervision.mailbox_capacity = 0;
        config.api.token = Some(" ".into());
        config.logging.level = "loud".into();
        config.data_server.workers = 0;
        config.scheduler.max_games_per_job = 0;
        config.scheduler.policy.priority.weights.voi = -1.0;
        config.node.name = String::new();
        assert_eq!(
            paths(&config),
            [
                "node.name",
                "supervision.mailbox_capacity",
                "api.token",
                "logging.level",
                "data_server.workers",
                "scheduler.max_games_per_job",
                "scheduler.policy.priority.weights.voi",
            ]
        );
    }
}
