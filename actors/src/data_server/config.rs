//! The `data_server` config section: where the data server listens and what it serves, plus the knobs of the
//! data-server monitor that keeps it up, so the whole section lives in one place.
//!
//! Defaults are the numbers of shared/domain/sync.md ("Data server and its monitor"). It does no I/O; turning it into
//! [`ServerOptions`] resolves category directories against `root` without touching the disk.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::server::ServerOptions;
use crate::runtime::circuit_breaker::BreakerConfig;

/// Settings of the data server and of its monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataServerConfig {
    /// Run the data server (and its monitor) on this node.
    pub enabled: bool,
    /// Address the data server listens on (`host:port`). Peers reach this node's files here.
    pub bind: String,
    /// Directory holding the data; relative category directories are resolved under it.
    pub root: PathBuf,
    /// Categories served, each a name mapped to a directory (relative to `root`, or absolute). Only these are served.
    pub categories: BTreeMap<String, PathBuf>,
    /// HTTP worker threads; several, so `/health` answers while large files stream.
    pub workers: usize,
    /// A file modified more recently than this is left out of the inventory until the next one (it may still be
    /// being written).
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    /// Monitor: how often `/health` is polled.
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    /// Monitor: how long one `/health` poll may take before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
    /// Monitor: failed health checks in a row after which a (hung) server is killed and restarted.
    pub failed_checks_before_restart: u32,
    /// Monitor: delay before the first restart after an exit; doubles on each restart in a row.
    #[serde(with = "humantime_serde")]
    pub restart_backoff_initial: Duration,
    /// Monitor: upper bound of the restart delay.
    #[serde(with = "humantime_serde")]
    pub restart_backoff_max: Duration,
    /// Monitor: more restarts than this within `restart_window` open the circuit.
    pub max_restarts: u32,
    /// Monitor: the window in which restarts are counted.
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    /// Monitor: how long an open circuit stops restarts before one half-open attempt.
    #[serde(with = "humantime_serde")]
    pub circuit_recovery: Duration,
    /// Monitor: on stop, time between SIGTERM and SIGKILL.
    #[serde(with = "humantime_serde")]
    pub stop_grace: Duration,
}

impl Default for DataServerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: "127.0.0.1:8766".to_string(),
            root: PathBuf::from("data"),
            categories: default_categories(),
            workers: 4,
            settle: Duration::from_secs(2),
            health_interval: Duration::from_secs(5),
            health_timeout: Duration::from_secs(2),
            failed_checks_before_restart: 3,
            restart_backoff_initial: Duration::from_millis(100),
            restart_backoff_max: Duration::from_secs(30),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            circuit_recovery: Duration::from_secs(60),
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// `games`, `models` and `training`, each in the directory of the same name.
pub fn default_categories() -> BTreeMap<String, PathBuf> {
    ["games", "models", "training"]
        .into_iter()
        .map(|name| (name.to_string(), PathBuf::from(name)))
        .collect()
}

/// True when `name` can be a category: non-empty, ASCII letters, digits, `_`, `-` or `.`, and not `.`/`..`.
pub fn is_valid_category_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

/// What is wrong with category `name` served from `dir` (empty when fine): the name's characters, and a relative
/// `dir` that climbs out of the root with `..` (an absolute `dir` is an explicit choice and allowed). The one
/// rule for the config section and for `data-server --category`.
pub fn category_problems(name: &str, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    if !is_valid_category_name(name) {
        problems.push(format!(
            "{name:?}: names use letters, digits, '_', '-' or '.' only"
        ));
    }
    if dir.as_os_str().is_empty() {
        problems.push("the directory is empty (expected e.g. games)".to_string());
    } else if dir.is_relative() && dir.components().any(|c| matches!(c, Component::ParentDir)) {
        problems.push(format!("{dir:?} must not leave the root with '..'"));
    }
    problems
}

/// Parses a `--category` value, `name=dir`, and checks it with [`category_problems`].
pub fn parse_category(item: &str) -> Result<(String, PathBuf), String> {
    let Some((name, dir)) = item.split_once('=') else {
        return Err(format!("{item:?}: expected name=dir, e.g. games=games"));
    };
    let (name, dir) = (name.trim().to_string(), PathBuf::from(dir.trim()));
    let problems = category_problems(&name, &dir);
    if !problems.is_empty() {
        return Err(format!("{item:?}: {}", problems.join("; ")));
    }
    Ok((name, dir))
}

impl DataServerConfig {
    /// Every problem with these settings, each naming its key (empty when valid). Pure: no disk access.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "data_server.bind: {:?} is not an address like 127.0.0.1:8766",
                self.bind
            ));
        }
        if self.categories.is_empty() {
            problems.push("data_server.categories: at least one category is needed".to_string());
        }
        for (name, dir) in &self.categories {
            for problem in category_problems(name, dir) {
                problems.push(format!("data_server.categories.{name}: {problem}"));
            }
        }
        if self.workers == 0 {
            problems.push("data_server.workers: must be at least 1".to_string());
        }
        if self.health_timeout >= self.health_interval {
            problems.push(
                "data_server.health_timeout: must be shorter than health_interval".to_string(),
            );
        }
        if self.failed_checks_before_restart == 0 {
            problems
                .push("data_server.failed_checks_before_restart: must be at least 1".to_string());
        }
        if self.restart_backoff_initial > self.restart_backoff_max {
            problems.push(
                "data_server.restart_backoff_initial: must not exceed restart_backoff_max"
                    .to_string(),
            );
        }
        if self.restart_window.is_zero() {
            problems.push("data_server.restart_window: must be longer than 0s".to_string());
        }
        problems
    }

    /// Directory of each category: relative ones joined to `root`.
    pub fn category_dirs(&self) -> BTreeMap<String, PathBuf> {
        self.categories
            .iter()
            .map(|(name, dir)| (name.clone(), join_under(&self.root, dir)))
            .collect()
    }

    /// The options the server process runs with, for node `node` (categories stay relative; the server joins them
    /// to `root`).
    pub fn server_options(&self, node: &str) -> ServerOptions {
        ServerOptions {
            root: self.root.clone(),
            bind: self.bind.clone(),
            categories: self.categories.clone(),
            node: node.to_string(),
            workers: self.workers,
            settle: self.settle,
            test_hook_hang_health_after: None,
        }
    }

    /// The monitor's circuit: opens after more than `max_restarts`, stays open `circuit_recovery`.
    pub fn breaker_config(&self) -> BreakerConfig {
        BreakerConfig::with_threshold_and_recovery(
            self.max_restarts.saturating_add(1),
            self.circuit_recovery,
        )
    }
}

fn join_under(root: &Path, dir: &Path) -> PathBuf {
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        root.join(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_domain_numbers() {
        let config = DataServerConfig::default();
        assert!(config.enabled);
        assert_eq!(config.bind, "127.0.0.1:8766");
        assert_eq!(config.root, PathBuf::from("data"));
        assert_eq!(
            config.categories.keys().collect::<Vec<_>>(),
            ["games", "models", "training"]
        );
        let durations = [
            (config.health_interval, 5_000),
            (config.health_timeout, 2_000),
            (config.restart_backoff_initial, 100),
            (config.restart_backoff_max, 30_000),
            (config.restart_window, 60_000),
            (config.circuit_recovery, 60_000),
            (config.stop_grace, 5_000),
            (config.settle, 2_000),
        ];
        for (actual, millis) in durations {
            assert_eq!(actual, Duration::from_millis(millis));
        }
        assert_eq!(config.failed_checks_before_restart, 3);
        assert_eq!(config.max_restarts, 5);
        assert!(config.workers > 1);
        assert!(config.problems().is_empty(), "{:?}", config.problems());
    }

    #[test]
    fn reads_humantime_and_keeps_defaults_for_missing_keys() {
        let config: DataServerConfig = serde_json::from_str(
            r#"{"bind": "0.0.0.0:9000", "health_interval": "10s", "categories": {"games": "/srv/games"}}"#,
        )
        .expect("valid");
        assert_eq!(config.bind, "0.0.0.0:9000");
        assert_eq!(config.health_interval, Duration::from_secs(10));
        assert_eq!(config.health_timeout, Duration::from_secs(2));
        assert_eq!(config.category_dirs()["games"], PathBuf::from("/srv/games"));
        let round_trip: DataServerConfig =
            serde_json::from_value(serde_json::to_value(&config).expect("serializes"))
                .expect("round trips");
        assert_eq!(round_trip, config);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(serde_json::from_str::<DataServerConfig>(r#"{"port": 8766}"#).is_err());
    }

    #[test]
    fn category_dirs_resolve_under_root() {
        let config = DataServerConfig {
            root: PathBuf::from("/data"),
            ..Default::default()
        };
        let dirs = config.category_dirs();
        assert_eq!(dirs["games"], PathBuf::from("/data/games"));
        assert_eq!(dirs["training"], PathBuf::from("/data/training"));
        let options = config.server_options("node-a");
        assert_eq!(options.node, "node-a");
        assert_eq!(options.categories, config.categories);
        assert_eq!(options.category_dirs(), dirs);
        assert_eq!(options.test_hook_hang_health_after, None);
    }

    #[test]
    fn problems_name_each_bad_key() {
        let mut config = DataServerConfig {
            bind: "localhost".to_string(),
            workers: 0,
            health_timeout: Duration::from_secs(10),
            failed_checks_before_restart: 0,
            restart_backoff_initial: Duration::from_secs(60),
            restart_window: Duration::ZERO,
            ..Default::default()
        };
        config
            .categories
            .insert("../x".to_string(), PathBuf::from("x"));
        config
            .categories
            .insert("escape".to_string(), PathBuf::from("../outside"));
        let problems = config.problems();
        for key in [
            "bind",
            "workers",
            "health_timeout",
            "failed_checks_before_restart",
            "restart_backoff_initial",
            "restart_window",
            "categories.../x",
            "categories.escape",
        ] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&format!("data_server.{key}"))),
                "{key}: {problems:?}"
            );
        }
    }

    #[test]
    fn category_flags_parse_or_name_the_problem() {
        type Case = (
            &'static str,
            Result<(&'static str, &'static str), &'static str>,
        );
        let table: [Case; 8] = [
            ("games=games", Ok(("games", "games"))),
            (" models = sub/models ", Ok(("models", "sub/models"))),
            ("abs=/srv/models", Ok(("abs", "/srv/models"))),
            ("games", Err("expected name=dir")),
            ("games=../../etc", Err("must not leave the root")),
            ("games=a/../../b", Err("must not leave the root")),
            ("a b=x", Err("names use letters")),
            ("games=", Err("the directory is empty")),
        ];
        for (item, expected) in table {
            match (parse_category(item), expected) {
                (Ok((name, dir)), Ok((want_name, want_dir))) => {
                    assert_eq!(
                        (name.as_str(), dir),
                        (want_name, PathBuf::from(want_dir)),
                        "{item}"
                    )
                }
                (Err(error), Err(want)) => assert!(error.contains(want), "{item}: {error}"),
                (got, _) => panic!("{item}: {got:?}"),
            }
        }
    }

    #[test]
    fn category_names() {
        let table = [
            ("games", true),
            ("my-data_1.v2", true),
            ("", false),
            (".", false),
            ("..", false),
            ("a/b", false),
            ("a b", false),
            ("é", false),
        ];
        for (name, valid) in table {
            assert_eq!(is_valid_category_name(name), valid, "{name:?}");
        }
    }

    #[test]
    fn breaker_opens_after_more_than_max_restarts() {
        let breaker = DataServerConfig::default().breaker_config();
        assert_eq!(breaker.failure_threshold, 6);
        assert_eq!(breaker.recovery, Duration::from_secs(60));
    }
}
