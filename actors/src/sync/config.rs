//! The `sync` config section: what flows where (`pulls`), the time budget, the transports and their breakers, the
//! cycle's rhythm and limits. Defaults are the numbers of shared/domain/sync.md. Pure: no I/O.
//!
//! Node roles (`selfplay`, `training`) are declared on `cluster.nodes[].roles`; [`Role`] is defined here because
//! the pull rules are written in terms of it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::circuit_breaker::BreakerConfig;
use crate::units::ByteSize;

/// What a node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs selfplay jobs (the scheduler allocates games only to these) and produces games.
    Selfplay,
    /// Trains on the cluster's games and produces models.
    Training,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Selfplay => "selfplay",
            Role::Training => "training",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles of a node listed without `roles`.
pub fn default_roles() -> Vec<Role> {
    vec![Role::Selfplay]
}

/// Which nodes a pull rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleFilter {
    /// Nodes with the `selfplay` role.
    Selfplay,
    /// Nodes with the `training` role.
    Training,
    /// Every node.
    Any,
}

impl RoleFilter {
    /// True when a node with `roles` matches.
    pub fn matches(self, roles: &[Role]) -> bool {
        match self {
            RoleFilter::Any => true,
            RoleFilter::Selfplay => roles.contains(&Role::Selfplay),
            RoleFilter::Training => roles.contains(&Role::Training),
        }
    }
}

/// One pull rule: nodes matching `to` pull `category` from every other node matching `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRule {
    /// The data-server category pulled (`games`, `models`, `training`, …).
    pub category: String,
    /// Pull from nodes with this role (`selfplay`, `training` or `any`).
    pub from: RoleFilter,
    /// Applies on nodes with this role (`selfplay`, `training` or `any`).
    pub to: RoleFilter,
}

/// A training node pulls `games` and `training` from every selfplay node; every node pulls `models` from the
/// training nodes.
pub fn default_pulls() -> Vec<PullRule> {
    let rule = |category: &str, from, to| PullRule {
        category: category.to_string(),
        from,
        to,
    };
    vec![
        rule("games", RoleFilter::Selfplay, RoleFilter::Training),
        rule("training", RoleFilter::Selfplay, RoleFilter::Training),
        rule("models", RoleFilter::Training, RoleFilter::Any),
    ]
}

/// A transport of the fallback chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// This project's HTTP client against the peer's data server (`Range` resume, sha256 verified).
    Http,
    /// `rsync` over `ssh` to `cluster.nodes[].ssh`.
    Rsync,
    /// `aria2c` against the peer's data server (used only when `aria2c` is on PATH).
    Aria2,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Http => "http",
            TransportKind::Rsync => "rsync",
            TransportKind::Aria2 => "aria2",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The time budget of one sync operation (one category from one peer) and the retries inside a transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Everything one operation may take: attempts, retries, backoff and fallbacks. Nothing new starts once spent.
    #[serde(with = "humantime_serde")]
    pub total: Duration,
    /// An attempt ends when no byte has arrived for this long (a moving transfer is not cut).
    #[serde(with = "humantime_serde")]
    pub per_attempt: Duration,
    /// Attempts per transport (the first plus retries) for transient failures.
    pub attempts: u32,
    /// Delay before the first retry; doubles per retry.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Upper bound of the retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Random spread of each retry delay, as a fraction (0.1 = ±10 %).
    pub backoff_jitter: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            total: Duration::from_secs(300),
            per_attempt: Duration::from_secs(30),
            attempts: 3,
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(30),
            backoff_jitter: 0.1,
        }
    }
}

/// The original's skip rules, per category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SkipRules {
    /// Remote files older than this (by mtime) are not pulled, per category (`games: 168h`).
    #[serde(with = "humantime_map")]
    pub max_age: BTreeMap<String, Duration>,
    /// Categories whose files are pulled once: a file already held is kept even if the remote one changed.
    pub keep_existing: Vec<String>,
    /// Do not pull files whose first path segment names a cluster node: copies a peer itself pulled from
    /// another node (each node pulls from the source instead).
    pub skip_relayed: bool,
}

impl Default for SkipRules {
    fn default() -> Self {
        let week = Duration::from_secs(168 * 3600);
        SkipRules {
            max_age: [("games".to_string(), week), ("training".to_string(), week)]
                .into_iter()
                .collect(),
            keep_existing: vec!["training".to_string()],
            skip_relayed: true,
        }
    }
}

/// The `http` transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpTransportConfig {
    /// How long connecting to a peer's data server may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Bytes read and written per step (and the most a resumed transfer re-fetches).
    pub chunk: ByteSize,
    /// The circuit breaker of each peer's `http` transport.
    pub breaker: BreakerConfig,
}

impl Default for HttpTransportConfig {
    fn default() -> Self {
        HttpTransportConfig {
            connect_timeout: Duration::from_secs(10),
            chunk: ByteSize::kib(64),
            breaker: BreakerConfig::http(),
        }
    }
}

/// The `rsync` transport (over ssh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RsyncTransportConfig {
    /// The rsync program.
    pub program: PathBuf,
    /// The ssh program rsync runs.
    pub ssh_program: PathBuf,
    /// Extra `ssh` arguments (e.g. `["-p", "2222", "-i", "/path/key"]`), after the fixed options
    /// (BatchMode, ConnectTimeout 10, ServerAliveInterval 5, StrictHostKeyChecking=accept-new).
    pub ssh_args: Vec<String>,
    /// The peers' data directory as seen over ssh (relative to the login directory, or absolute); a file of
    /// category C is at `<remote_root>/<C>/<path>`.
    pub remote_root: String,
    /// The circuit breaker of each peer's `rsync` transport.
    pub breaker: BreakerConfig,
}

impl Default for RsyncTransportConfig {
    fn default() -> Self {
        RsyncTransportConfig {
            program: PathBuf::from("rsync"),
            ssh_program: PathBuf::from("ssh"),
            ssh_args: Vec::new(),
            remote_root: "data".to_string(),
            breaker: BreakerConfig::rsync(),
        }
    }
}

/// The `aria2` transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Aria2TransportConfig {
    /// The aria2c program; the transport is skipped when it is not found.
    pub program: PathBuf,
    /// Connections per server (`--max-connection-per-server`).
    pub connections: u32,
    /// Pieces per file (`--split`).
    pub split: u32,
    /// Smallest piece (`--min-split-size`).
    pub min_split_size: ByteSize,
    /// The circuit breaker of each peer's `aria2` transport.
    pub breaker: BreakerConfig,
}

impl Default for Aria2TransportConfig {
    fn default() -> Self {
        Aria2TransportConfig {
            program: PathBuf::from("aria2c"),
            connections: 16,
            split: 16,
            min_split_size: ByteSize::mib(1),
            breaker: BreakerConfig::aria2(),
        }
    }
}

/// The sync coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Run the sync coordinator on this node.
    pub enabled: bool,
    /// Time between sync cycles.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Random spread of the interval, as a fraction (0.1 = ±10 %).
    pub interval_jitter: f64,
    /// A cycle still running after this long is cancelled and counted as stalled.
    #[serde(with = "humantime_serde")]
    pub cycle_deadline: Duration,
    /// This many failed cycles in a row mark sync unhealthy.
    pub unhealthy_after_failed_cycles: u32,
    /// How long reading a peer's `/inventory.json` may take.
    #[serde(with = "humantime_serde")]
    pub inventory_timeout: Duration,
    /// File transfers running at once.
    pub max_concurrent: usize,
    /// Pending sync requests (notices, runs) that may wait; more are refused visibly.
    pub queue_capacity: usize,
    /// A peer's notice starts a pull after this delay, so notices arriving together make one pull.
    #[serde(with = "humantime_serde")]
    pub notify_delay: Duration,
    /// Early cycles (notices, new games) start at least this long apart.
    #[serde(with = "humantime_serde")]
    pub min_gap: Duration,
    /// After local games are written, tell each training node (`POST /sync/notify`).
    pub notify_peers: bool,
    /// How long a notice to a peer may take.
    #[serde(with = "humantime_serde")]
    pub notify_timeout: Duration,
    /// Free disk kept on the destination beyond a file's size; a pull that would go below is skipped.
    pub min_free_disk: ByteSize,
    /// Cycles kept for `GET /sync`.
    pub history: usize,
    /// What each node pulls from which nodes.
    pub pulls: Vec<PullRule>,
    /// The original's skip rules.
    pub skip: SkipRules,
    /// The fallback chain, tried in order for each file (`http`, `rsync`, `aria2`).
    pub transports: Vec<TransportKind>,
    /// The time budget of each operation.
    pub budget: BudgetConfig,
    /// The `http` transport.
    pub http: HttpTransportConfig,
    /// The `rsync` transport.
    pub rsync: RsyncTransportConfig,
    /// The `aria2` transport.
    pub aria2: Aria2TransportConfig,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            enabled: true,
            interval: Duration::from_secs(60),
            interval_jitter: 0.1,
            cycle_deadline: Duration::from_secs(600),
            unhealthy_after_failed_cycles: 5,
            inventory_timeout: Duration::from_secs(5),
            max_concurrent: 4,
            queue_capacity: 64,
            notify_delay: Duration::from_millis(200),
            min_gap: Duration::from_secs(2),
            notify_peers: true,
            notify_timeout: Duration::from_secs(5),
            min_free_disk: ByteSize::gib(1),
            history: 20,
            pulls: default_pulls(),
            skip: SkipRules::default(),
            transports: vec![TransportKind::Http, TransportKind::Rsync],
            budget: BudgetConfig::default(),
            http: HttpTransportConfig::default(),
            rsync: RsyncTransportConfig::default(),
            aria2: Aria2TransportConfig::default(),
        }
    }
}

impl SyncConfig {
    /// The breaker settings of `transport`.
    pub fn breaker(&self, transport: TransportKind) -> &BreakerConfig {
        match transport {
            TransportKind::Http => &self.http.breaker,
            TransportKind::Rsync => &self.rsync.breaker,
            TransportKind::Aria2 => &self.aria2.breaker,
        }
    }

    /// Every problem as (key below `sync.`, what is wrong and expected). Pure.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |key: &str, message: String| out.push((key.to_string(), message));
        if self.interval.is_zero() {
            push("interval", "must be above 0 (e.g. 60s)".into());
        }
        for (key, jitter) in [
            ("interval_jitter", self.interval_jitter),
            ("budget.backoff_jitter", self.budget.backoff_jitter),
        ] {
            if !(0.0..=1.0).contains(&jitter) {
                push(
                    key,
                    format!("{jitter} is outside 0..1 (a fraction, e.g. 0.1)"),
                );
            }
        }
        if self.cycle_deadline.is_zero() {
            push("cycle_deadline", "must be above 0 (e.g. 600s)".into());
        }
        if self.unhealthy_after_failed_cycles == 0 {
            push("unhealthy_after_failed_cycles", "must be at least 1".into());
        }
        if self.max_concurrent == 0 {
            push("max_concurrent", "must be at least 1".into());
        }
        if self.queue_capacity == 0 {
            push("queue_capacity", "must be at least 1".into());
        }
        if self.history == 0 {
            push("history", "must be at least 1".into());
        }
        if self.transports.is_empty() {
            push(
                "transports",
                "is empty (expected a chain such as [http, rsync])".into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, transport) in self.transports.iter().enumerate() {
            if !seen.insert(*transport) {
                push(
                    &format!("transports[{i}]"),
                    format!("{transport} appears twice"),
                );
            }
        }
        for (i, rule) in self.pulls.iter().enumerate() {
            if !crate::data_server::config::is_valid_category_name(&rule.category) {
                push(
                    &format!("pulls[{i}].category"),
                    format!(
                        "{:?} is not a category name (letters, digits, '_', '-', '.')",
                        rule.category
                    ),
                );
            }
        }
        if self.budget.total.is_zero() {
            push("budget.total", "must be above 0 (e.g. 300s)".into());
        }
        if self.budget.per_attempt.is_zero() {
            push("budget.per_attempt", "must be above 0 (e.g. 30s)".into());
        }
        if self.budget.attempts == 0 {
            push("budget.attempts", "must be at least 1".into());
        }
        if self.budget.backoff_initial > self.budget.backoff_max {
            push(
                "budget.backoff_initial",
                "must not exceed budget.backoff_max".into(),
            );
        }
        if self.http.chunk.0 == 0 {
            push("http.chunk", "must be above 0 (e.g. 64KiB)".into());
        }
        if self.aria2.connections == 0 || self.aria2.split == 0 {
            push("aria2", "connections and split must be at least 1".into());
        }
        for (key, breaker) in [
            ("http.breaker", &self.http.breaker),
            ("rsync.breaker", &self.rsync.breaker),
            ("aria2.breaker", &self.aria2.breaker),
        ] {
            for problem in breaker.problems() {
                push(key, problem);
            }
        }
        out
    }
}

/// A map of category → duration written with units (`168h`).
mod humantime_map {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<String, Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        map.iter()
            .map(|(k, v)| (k.clone(), humantime::format_duration(*v).to_string()))
            .collect::<BTreeMap<_, _>>()
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(deserializer)?;
        raw.into_iter()
            .map(|(k, v)| {
                humantime::parse_duration(&v)
                    .map(|d| (k.clone(), d))
                    .map_err(|e| {
                        serde::de::Error::custom(format!(
                            "{k}: {v:?} is not a duration like 168h ({e})"
                        ))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_domain_numbers() {
        let config = SyncConfig::default();
        assert_eq!(config.interval, Duration::from_secs(60));
        assert_eq!(config.cycle_deadline, Duration::from_secs(600));
        assert_eq!(config.unhealthy_after_failed_cycles, 5);
        assert_eq!(config.inventory_timeout, Duration::from_secs(5));
        assert_eq!(config.max_concurrent, 4);
        assert_eq!(config.min_gap, Duration::from_secs(2));
        assert_eq!(config.budget.total, Duration::from_secs(300));
        assert_eq!(config.budget.per_attempt, Duration::from_secs(30));
        assert_eq!(config.budget.attempts, 3);
        assert_eq!(config.budget.backoff_initial, Duration::from_secs(2));
        assert_eq!(config.budget.backoff_max, Duration::from_secs(30));
        assert_eq!(config.budget.backoff_jitter, 0.1);
        assert_eq!(
            config.transports,
            [TransportKind::Http, TransportKind::Rsync]
        );
        assert_eq!(config.http.breaker, BreakerConfig::http());
        assert_eq!(config.rsync.breaker, BreakerConfig::rsync());
        assert_eq!(config.aria2.breaker, BreakerConfig::aria2());
        assert_eq!(config.aria2.connections, 16);
        assert_eq!(config.aria2.split, 16);
        assert_eq!(
            config.skip.max_age["games"],
            Duration::from_secs(168 * 3600)
        );
        assert!(config.problems().is_empty(), "{:?}", config.problems());
    }

    #[test]
    fn round_trips_and_refuses_unknown_keys() {
        let config = SyncConfig::default();
        let value = serde_json::to_value(&config).expect("serializes");
        let back: SyncConfig = serde_json::from_value(value).expect("round trips");
        assert_eq!(back, config);
        assert!(serde_json::from_str::<SyncConfig>(r#"{"intervall": "1s"}"#).is_err());
        let partial: SyncConfig = serde_json::from_str(
            r#"{"interval": "5s", "transports": ["aria2", "http"], "skip": {"max_age": {"games": "1h"}}}"#,
        )
        .expect("valid");
        assert_eq!(partial.interval, Duration::from_secs(5));
        assert_eq!(
            partial.transports,
            [TransportKind::Aria2, TransportKind::Http]
        );
        assert_eq!(partial.skip.max_age["games"], Duration::from_secs(3600));
        assert!(partial.skip.skip_relayed);
    }

    #[test]
    fn problems_name_each_bad_key() {
        let config = SyncConfig {
            interval: Duration::ZERO,
            max_concurrent: 0,
            transports: vec![TransportKind::Http, TransportKind::Http],
            pulls: vec![PullRule {
                category: "../x".into(),
                from: RoleFilter::Any,
                to: RoleFilter::Any,
            }],
            budget: BudgetConfig {
                attempts: 0,
                backoff_initial: Duration::from_secs(60),
                ..BudgetConfig::default()
            },
            ..SyncConfig::default()
        };
        let keys: Vec<String> = config.problems().into_iter().map(|(k, _)| k).collect();
        for key in [
            "interval",
            "max_concurrent",
            "transports[1]",
            "pulls[0].category",
            "budget.attempts",
            "budget.backoff_initial",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key}: {keys:?}");
        }
    }

    #[test]
    fn role_filters() {
        let both = [Role::Selfplay, Role::Training];
        assert!(RoleFilter::Training.matches(&both));
        assert!(!RoleFilter::Training.matches(&[Role::Selfplay]));
        assert!(RoleFilter::Any.matches(&[]));
        assert!(RoleFilter::Selfplay.matches(&default_roles()));
    }
}
