//! Config loading machinery for the daemon, generic over the config type.
//!
//! Layout:
//! - [`loader`]: reads the YAML file, reports every error with file, line, column, field path and expected form,
//!   applies `COORDINATOR_*` overrides, runs semantic validation; returns `Loaded<T>` or `ConfigErrors`.
//! - [`env`]: the one parser for `COORDINATOR_<SECTION>__<KEY>` overrides (bad values become warnings).
//! - [`yaml`]: serde_yaml helpers: read one section only, find the line of a field path, clean serde messages.
//! - [`report`]: the error and warning types and their one-line display.
//! - [`validate`]: THE validation API: `Validate` returns `FieldError`s with paths relative to the section,
//!   the parent prefixes them; adapters turn older `problems()` shapes into it in one line.
//!
//! - [`sections`]: the daemon's `Config` (top level and its own sections); actor sections live with their actors.

pub mod env;
pub mod loader;
pub mod reference;
pub mod report;
pub mod sections;
pub mod validate;
pub mod yaml;

#[allow(unused_imports)]
pub use loader::{load, load_str, process_env, to_yaml, Loaded, ENV_PREFIX};
#[allow(unused_imports)]
pub use report::{ConfigError, ConfigErrors, ConfigWarning};
pub use sections::Config;

/// Loads and validates the daemon's config file with `env` as the `COORDINATOR_*` overrides and `node` as the
/// `--node` flag (it replaces `node.name` before validation). `run` and `check-config` both load through here,
/// so a config `check-config` accepts is one `run` accepts.
pub fn load_config(
    path: &std::path::Path,
    env: impl IntoIterator<Item = (String, String)>,
    node: Option<&str>,
) -> Result<Loaded<Config>, ConfigErrors> {
    let text = loader::read(path)?;
    let env: Vec<(String, String)> = env.into_iter().collect();
    // A bind the file or the environment sets wins; otherwise a cluster node listens where its URLs say.
    let set = |field: &str, var: &str| {
        yaml::locate(&text, &yaml::parse_path(field)).is_some()
            || env.iter().any(|(k, _)| k.eq_ignore_ascii_case(var))
    };
    let explicit = ExplicitBinds {
        api: set("api.bind", "COORDINATOR_API__BIND"),
        data_server: set("data_server.bind", "COORDINATOR_DATA_SERVER__BIND"),
    };
    loader::load_str_with::<Config, _>(&text, path, env.clone(), |config| {
        let mut flags = Vec::new();
        if let Some(node) = node {
            config.node.name = node.to_string();
            flags.push(("node.name".to_string(), "--node".to_string()));
        }
        flags.extend(config.bind_from_cluster(explicit));
        flags
    })
}

/// Which listen addresses the file or the environment set (those are never taken from the cluster list).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExplicitBinds {
    pub api: bool,
    pub data_server: bool,
}

#[cfg(test)]
mod tests;
