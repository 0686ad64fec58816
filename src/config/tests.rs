//! Tests of the loader against a stand-in config with nested sections, durations, sizes, enums, bools, lists and
//! options: error location and wording, collecting every error, env overrides and their warnings.

use std::path::Path;
use std::time::Duration;

use actors::units::ByteSize;
use serde::{Deserialize, Serialize};

use super::validate::{validate_under, FieldError, Validate};
use super::{load, load_str, to_yaml, ConfigErrors, Loaded};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TestConfig {
    node: NodeSection,
    sync: SyncSection,
    api: ApiSection,
    cluster: ClusterSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct NodeSection {
    name: String,
    role: Role,
    cores: Option<u32>,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            name: "local".into(),
            role: Role::Worker,
            cores: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Role {
    Worker,
    Coordinator,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SyncSection {
    enabled: bool,
    #[serde(with = "humantime_serde")]
    interval: Duration,
    chunk: ByteSize,
    max_attempts: u32,
    ratio: f64,
    transports: Vec<String>,
    retry: RetrySection,
}

impl Default for SyncSection {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(300),
            chunk: ByteSize::mib(64),
            max_attempts: 3,
            ratio: 0.5,
            transports: vec!["http".into(), "rsync".into()],
            retry: RetrySection::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RetrySection {
    #[serde(with = "humantime_serde")]
    backoff: Duration,
    jitter: bool,
}

impl Default for RetrySection {
    fn default() -> Self {
        Self {
            backoff: Duration::from_secs(1),
            jitter: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ApiSection {
    bind: String,
    debug_endpoints: bool,
    token: Option<String>,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8765".into(),
            debug_endpoints: false,
            token: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ClusterSection {
    nodes: Vec<PeerEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerEntry {
    name: String,
    #[serde(default = "default_port")]
    port: u16,
}

fn default_port() -> u16 {
    8766
}

impl Validate for SyncSection {
    fn validate(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.interval < Duration::from_secs(1) {
            problems.push(FieldError::new("interval", "must be at least 1s"));
        }
        if !(1..=10).contains(&self.max_attempts) {
            problems.push(FieldError::new("max_attempts", "must be between 1 and 10"));
        }
        problems
    }
}

impl Validate for ClusterSection {
    fn validate(&self) -> Vec<FieldError> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.port == 0)
            .map(|(i, _)| FieldError::new(format!("nodes[{i}].port"), "must not be 0"))
            .collect()
    }
}

impl Validate for TestConfig {
    fn validate(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        validate_under(&mut problems, "sync", &self.sync);
        validate_under(&mut problems, "cluster", &self.cluster);
        problems
    }
}

const FILE: &str = "config.yaml";

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(text: &str, vars: Vec<(String, String)>) -> Loaded<TestConfig> {
    match load_str::<TestConfig, _>(text, Path::new(FILE), vars) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

fn errors(text: &str) -> ConfigErrors {
    match load_str::<TestConfig, _>(text, Path::new(FILE), no_env()) {
        Ok(loaded) => panic!("expected errors, loaded {:?}", loaded.config),
        Err(errors) => errors,
    }
}

fn lines(errors: &ConfigErrors) -> Vec<String> {
    errors.to_string().lines().map(str::to_string).collect()
}

const FULL: &str = "\
node:
  name: gh200-1
  role: coordinator
  cores: 64
sync:
  enabled: false
  interval: 30s
  chunk: 1GiB
  max_attempts: 5
  ratio: 0.75
  transports: [http]
  retry:
    backoff: 2s
    jitter: false
api:
  token: secret
cluster:
  nodes:
    - name: a
    - name: b
      port: 9000
";

#[test]
fn full_file_loads_every_kind_of_value() {
    let loaded = ok(FULL, no_env());
    let config = loaded.config;
    assert_eq!(
        config.node,
        NodeSection {
            name: "gh200-1".into(),
            role: Role::Coordinator,
            cores: Some(64)
        }
    );
    assert!(!config.sync.enabled);
    assert_eq!(config.sync.interval, Duration::from_secs(30));
    assert_eq!(config.sync.chunk, ByteSize::gib(1));
    assert_eq!(config.sync.max_attempts, 5);
    assert_eq!(config.sync.ratio, 0.75);
    assert_eq!(config.sync.transports, vec!["http".to_string()]);
    assert_eq!(
        config.sync.retry,
        RetrySection {
            backoff: Duration::from_secs(2),
            jitter: false
        }
    );
    assert_eq!(
        config.api,
        ApiSection {
            token: Some("secret".into()),
            ..ApiSection::default()
        }
    );
    assert_eq!(
        config.cluster.nodes[1],
        PeerEntry {
            name: "b".into(),
            port: 9000
        }
    );
    assert_eq!(config.cluster.nodes[0].port, 8766);
    assert!(loaded.warnings.is_empty());
    assert_eq!(loaded.source, Path::new(FILE));
}

#[test]
fn empty_and_partial_files_take_defaults() {
    assert_eq!(ok("", no_env()).config, TestConfig::default());
    assert_eq!(
        ok("# only a comment\n", no_env()).config,
        TestConfig::default()
    );
    assert_eq!(
        ok("sync:\n  # every key commented out\napi:\n", no_env()).config,
        TestConfig::default()
    );
    let partial = ok("sync:\n  interval: 1m\n", no_env()).config;
    assert_eq!(partial.sync.interval, Duration::from_secs(60));
    assert_eq!(partial.sync.chunk, ByteSize::mib(64));
    assert_eq!(partial.node, NodeSection::default());
}

#[test]
fn resolved_config_round_trips_through_yaml() {
    let config = ok(FULL, no_env()).config;
    let text = to_yaml(&config).unwrap();
    assert!(text.contains("interval: 30s"), "{text}");
    assert!(text.contains("chunk: 1GiB"), "{text}");
    assert_eq!(ok(&text, no_env()).config, config);
}

#[test]
fn unknown_top_level_key_names_line_column_and_sections() {
    let errors = errors("node:\n  name: a\nsnyc:\n  interval: 5m\n");
    assert_eq!(
        lines(&errors),
        ["config.yaml:3:1: unknown field `snyc`, expected one of `node`, `sync`, `api`, `cluster`"]
    );
}

#[test]
fn unknown_nested_key_points_at_the_key() {
    let errors = errors("sync:\n  interval: 5m\n  retry:\n    backof: 2s\n");
    let error = &errors.errors()[0];
    assert_eq!((error.line, error.column), (Some(4), Some(5)));
    assert_eq!(error.path.as_deref(), Some("sync.retry.backof"), "{error}");
    assert!(
        error
            .message
            .starts_with("unknown field `backof`, expected `backoff` or `jitter`"),
        "{}",
        error.message
    );
}

#[test]
fn bad_duration_says_what_a_duration_looks_like() {
    let errors = errors("sync:\n  enabled: true\n  interval: 5x\n");
    assert_eq!(
        lines(&errors),
        ["config.yaml:3:13: sync.interval: invalid duration \"5x\" (expected a duration like 30s, 5m, 1h)"]
    );
}

#[test]
fn bad_size_says_what_a_size_looks_like() {
    let errors = errors("sync:\n  chunk: 12XB\n");
    let error = &errors.errors()[0];
    assert_eq!(
        (error.line, error.column, error.path.as_deref()),
        (Some(2), Some(10), Some("sync.chunk"))
    );
    assert!(
        error
            .message
            .contains("invalid size \"12XB\" (expected a size like 512KB, 64MiB, 1GiB"),
        "{error}"
    );
}

#[test]
fn bad_enum_lists_the_variants() {
    let errors = errors("node:\n  role: boss\n");
    let error = &errors.errors()[0];
    assert_eq!(
        (error.line, error.path.as_deref()),
        (Some(2), Some("node.role"))
    );
    assert_eq!(
        error.message,
        "unknown variant `boss`, expected `worker` or `coordinator`"
    );
}

#[test]
fn type_mismatches_name_the_expected_type() {
    let cases = [
        (
            "sync:\n  max_attempts: many\n",
            "sync.max_attempts",
            "expected a whole number, 0 or more",
        ),
        (
            "sync:\n  enabled: maybe\n",
            "sync.enabled",
            "expected a boolean (true or false)",
        ),
        (
            "sync:\n  transports: http\n",
            "sync.transports",
            "expected a list",
        ),
        ("sync: 5\n", "sync", "expected a mapping of keys"),
        (
            "cluster:\n  nodes:\n    - port: 1\n",
            "cluster.nodes[0]",
            "missing field `name`",
        ),
    ];
    for (text, path, expected) in cases {
        let errors = errors(text);
        assert_eq!(errors.errors().len(), 1, "{errors}");
        let error = &errors.errors()[0];
        assert_eq!(error.path.as_deref(), Some(path), "{error}");
        assert!(error.message.contains(expected), "{text:?}: {error}");
        assert!(error.line.is_some(), "{error}");
    }
}

#[test]
fn syntax_error_is_one_error_with_its_line() {
    let errors = errors("sync:\n  interval: 5m\n   enabled: [true\n");
    assert_eq!(
        errors.to_string(),
        "config.yaml:3:11: malformed YAML: mapping values are not allowed in this context"
    );
    assert_eq!(errors.errors().len(), 1, "{errors}");
    let error = &errors.errors()[0];
    assert!(error.line.is_some_and(|line| line >= 2), "{error}");
    assert!(error.message.starts_with("malformed YAML"), "{error}");
    assert!(error.to_string().starts_with("config.yaml:"), "{error}");
}

#[test]
fn non_mapping_document_is_refused() {
    let errors = errors("- a\n- b\n");
    assert_eq!(lines(&errors), ["config.yaml:1:1: expected a mapping of sections (node, sync, api, cluster), found a list"]);
}

#[test]
fn several_errors_in_several_sections_are_all_reported_in_file_order() {
    let text = "\
node:
  role: boss
bogus: 1
sync:
  interval: soon
api:
  debug_endpoints: perhaps
cluster:
  nodes:
    - name: a
      prot: 1
";
    let errors = errors(text);
    let found: Vec<(Option<usize>, Option<&str>)> = errors
        .errors()
        .iter()
        .map(|e| (e.line, e.path.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (Some(2), Some("node.role")),
            (Some(3), None),
            (Some(5), Some("sync.interval")),
            (Some(7), Some("api.debug_endpoints")),
            (Some(11), Some("cluster.nodes[0].prot")),
        ],
        "{errors}"
    );
    assert_eq!(errors.to_string().lines().count(), 5);
}

#[test]
fn several_errors_in_one_section_are_each_reported_at_their_key() {
    let text = "\
sync:
  interval: soon
  enabled: perhaps
  bogus: 1
  max_attempts: 3
";
    let found: Vec<(Option<usize>, Option<usize>, Option<String>)> = errors(text)
        .errors()
        .iter()
        .map(|e| (e.line, e.column, e.path.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (Some(2), Some(13), Some("sync.interval".to_string())),
            (Some(3), Some(12), Some("sync.enabled".to_string())),
            (Some(4), Some(3), Some("sync.bogus".to_string())),
        ]
    );
}

#[test]
fn validation_problems_are_all_reported_with_their_place() {
    let text = "sync:\n  interval: 0s\n  max_attempts: 0\ncluster:\n  nodes:\n    - name: a\n      port: 0\n";
    assert_eq!(
        lines(&errors(text)),
        [
            "config.yaml:2:3: sync.interval: must be at least 1s",
            "config.yaml:3:3: sync.max_attempts: must be between 1 and 10",
            "config.yaml:7:7: cluster.nodes[0].port: must not be 0",
        ]
    );
}

#[test]
fn validation_problem_of_a_default_value_points_at_its_section() {
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Strict {
        sync: SyncSection,
    }
    impl Validate for Strict {
        fn validate(&self) -> Vec<FieldError> {
            vec![FieldError::new("sync.ratio", "must be 1")]
        }
    }
    let errors =
        load_str::<Strict, _>("sync:\n  enabled: true\n", Path::new(FILE), no_env()).unwrap_err();
    assert_eq!(errors.to_string(), "config.yaml:1:1: sync.ratio: must be 1");
    let errors = load_str::<Strict, _>("", Path::new(FILE), no_env()).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "config.yaml: sync.ratio: must be 1",
        "not in the file at all: no line"
    );
}

#[test]
fn parse_errors_and_validation_problems_come_out_of_one_run() {
    let text = "\
node:
  role: boss
sync:
  interval: 0s
  max_attempts: 0
cluster:
  nodes:
    - name: a
      port: 0
";
    let found: Vec<(Option<usize>, Option<String>)> = errors(text)
        .errors()
        .iter()
        .map(|e| (e.line, e.path.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (Some(2), Some("node.role".to_string())),
            (Some(4), Some("sync.interval".to_string())),
            (Some(5), Some("sync.max_attempts".to_string())),
            (Some(9), Some("cluster.nodes[0].port".to_string())),
        ]
    );
}

#[test]
fn a_check_that_read_a_broken_section_is_dropped() {
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Across {
        node: NodeSection,
        sync: SyncSection,
    }
    impl Validate for Across {
        fn validate(&self) -> Vec<FieldError> {
            vec![
                FieldError::new("sync.interval", "judges node's default").also("node.role"),
                FieldError::new("sync.max_attempts", "own problem"),
            ]
        }
    }
    let text = "node:\n  role: boss\nsync:\n  max_attempts: 0\n";
    let errors = load_str::<Across, _>(text, Path::new(FILE), no_env()).unwrap_err();
    let paths: Vec<_> = errors
        .errors()
        .iter()
        .filter_map(|e| e.path.clone())
        .collect();
    assert_eq!(paths, ["node.role", "sync.max_attempts"], "{errors}");
}

#[test]
fn a_flag_set_value_is_validated_and_named() {
    let text = "sync:\n  max_attempts: 3\n";
    let errors =
        super::loader::load_str_with::<TestConfig, _>(text, Path::new(FILE), no_env(), |c| {
            c.sync.max_attempts = 0;
            vec![("sync.max_attempts".into(), "--attempts".into())]
        })
        .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "config.yaml: sync.max_attempts: must be between 1 and 10 (value set by --attempts)"
    );
}

#[test]
fn env_overrides_apply_on_top_of_the_file() {
    let vars = env(&[
        ("COORDINATOR_SYNC__INTERVAL", "45s"),
        ("coordinator_sync__chunk", "128MiB"),
        ("COORDINATOR_SYNC__MAX_ATTEMPTS", "7"),
        ("COORDINATOR_SYNC__RATIO", "0.9"),
        ("COORDINATOR_SYNC__RETRY__BACKOFF", "10s"),
        ("COORDINATOR_SYNC__TRANSPORTS", "[rsync, aria2c]"),
        ("COORDINATOR_NODE__ROLE", "worker"),
        ("COORDINATOR_NODE__CORES", "8"),
        ("COORDINATOR_API__TOKEN", "t0k"),
        ("COORDINATOR_CLUSTER__NODES__1__PORT", "9100"),
        ("PATH", "/usr/bin"),
        ("COORDINATOR_CONFIG", "other.yaml"),
    ]);
    let loaded = ok(FULL, vars);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    assert_eq!(config.sync.interval, Duration::from_secs(45));
    assert_eq!(config.sync.chunk, ByteSize::mib(128));
    assert_eq!(config.sync.max_attempts, 7);
    assert_eq!(config.sync.ratio, 0.9);
    assert_eq!(config.sync.retry.backoff, Duration::from_secs(10));
    assert_eq!(
        config.sync.transports,
        vec!["rsync".to_string(), "aria2c".to_string()]
    );
    assert_eq!(config.node.role, Role::Worker);
    assert_eq!(config.node.cores, Some(8));
    assert_eq!(config.api.token.as_deref(), Some("t0k"));
    assert_eq!(config.cluster.nodes[1].port, 9100);
    assert!(!config.sync.enabled, "untouched keys keep the file's value");
}

#[test]
fn env_booleans_accept_the_usual_words() {
    for (word, expected) in [
        ("true", true),
        ("1", true),
        ("YES", true),
        ("on", true),
        ("False", false),
        ("0", false),
        ("no", false),
        ("OFF", false),
    ] {
        let loaded = ok(
            "",
            env(&[
                ("COORDINATOR_API__DEBUG_ENDPOINTS", word),
                ("COORDINATOR_SYNC__RETRY__JITTER", word),
            ]),
        );
        assert!(loaded.warnings.is_empty(), "{word}: {:?}", loaded.warnings);
        assert_eq!(loaded.config.api.debug_endpoints, expected, "{word}");
        assert_eq!(loaded.config.sync.retry.jitter, expected, "{word}");
    }
}

#[test]
fn bad_env_values_warn_naming_variable_value_and_value_kept() {
    let vars = env(&[
        ("COORDINATOR_API__DEBUG_ENDPOINTS", "maybe"),
        ("COORDINATOR_SYNC__INTERVAL", "5x"),
        ("COORDINATOR_SYNC__MAX_ATTEMPTS", "-2"),
        ("COORDINATOR_NODE__ROLE", "boss"),
        ("COORDINATOR_SYNC__CHUNK", "lots"),
        ("COORDINATOR_SYNC__RATIO", "0.25"),
    ]);
    let loaded = ok("sync:\n  interval: 5m\n", vars);
    let shown: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "COORDINATOR_API__DEBUG_ENDPOINTS=\"maybe\": invalid boolean (expected true/false, 1/0, yes/no or on/off); keeping api.debug_endpoints = false",
            "COORDINATOR_NODE__ROLE=\"boss\": unknown variant `boss`, expected `worker` or `coordinator`; keeping node.role = worker",
            "COORDINATOR_SYNC__CHUNK=\"lots\": invalid size \"lots\" (expected a size like 512KB, 64MiB, 1GiB or a plain byte count); keeping sync.chunk = 64MiB",
            "COORDINATOR_SYNC__INTERVAL=\"5x\": invalid duration \"5x\" (expected a duration like 30s, 5m, 1h); keeping sync.interval = 5m",
            "COORDINATOR_SYNC__MAX_ATTEMPTS=\"-2\": invalid value: integer `-2`, expected a whole number, 0 or more; keeping sync.max_attempts = 3",
        ]
    );
    let config = loaded.config;
    assert_eq!(config.sync.interval, Duration::from_secs(300));
    assert_eq!(
        config.sync.ratio, 0.25,
        "the good override next to bad ones is applied"
    );
    assert!(!config.api.debug_endpoints);
}

#[test]
fn unknown_env_keys_warn_and_are_ignored() {
    let vars = env(&[
        ("COORDINATOR_SYNC__INTERVALL", "30s"),
        ("COORDINATOR_NOPE__X", "1"),
        ("COORDINATOR_SYNC__INTERVAL__DEEPER", "1"),
        ("COORDINATOR_CLUSTER__NODES__3__PORT", "1"),
        ("COORDINATOR_SYNC_INTERVAL", "30s"),
    ]);
    let loaded = ok(FULL, vars);
    assert_eq!(loaded.warnings.len(), 5, "{:#?}", loaded.warnings);
    let shown = |var: &str| -> String {
        let warning = loaded
            .warnings
            .iter()
            .find(|w| w.var == var)
            .unwrap_or_else(|| panic!("no warning for {var}"));
        assert_eq!(warning.kept, None, "{warning}");
        warning.to_string()
    };
    let cases = [
        (
            "COORDINATOR_CLUSTER__NODES__3__PORT",
            "=\"1\": no config key `cluster.nodes[3].port` (cluster.nodes is a list of 2 items",
        ),
        (
            "COORDINATOR_NOPE__X",
            "=\"1\": no config key `nope.x` (sections: node, sync, api, cluster); ignored",
        ),
        (
            "COORDINATOR_SYNC__INTERVAL__DEEPER",
            ": no config key `sync.interval.deeper` (sync.interval is a single value",
        ),
        (
            "COORDINATOR_SYNC__INTERVALL",
            ": no config key `sync.intervall` (sync has: enabled, interval,",
        ),
        (
            "COORDINATOR_SYNC_INTERVAL",
            ": not an override: put `__` between section and key, e.g. COORDINATOR_SYNC__INTERVAL",
        ),
    ];
    for (var, expected) in cases {
        let text = shown(var);
        assert!(text.starts_with(var) && text.contains(expected), "{text}");
        assert!(text.ends_with("; ignored"), "{text}");
    }
    assert_eq!(loaded.config, ok(FULL, no_env()).config);
}

#[test]
fn validation_of_an_env_value_names_the_variable() {
    let errors = load_str::<TestConfig, _>(
        "",
        Path::new(FILE),
        env(&[("COORDINATOR_SYNC__MAX_ATTEMPTS", "50")]),
    )
    .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "config.yaml: sync.max_attempts: must be between 1 and 10 (value set by COORDINATOR_SYNC__MAX_ATTEMPTS)"
    );
}

#[test]
fn missing_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let errors = load::<TestConfig, _>(&path, no_env()).unwrap_err();
    let text = errors.to_string();
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    assert!(text.contains("config file not found"), "{text}");
}

#[test]
fn file_on_disk_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, FULL).unwrap();
    let loaded = load::<TestConfig, _>(&path, no_env()).unwrap();
    assert_eq!(loaded.source, path);
    assert_eq!(loaded.config.node.name, "gh200-1");
}
