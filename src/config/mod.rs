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
    loader::load_str_with::<Config, _>(&text, path, env, |config| match node {
        Some(node) => {
            config.node.name = node.to_string();
            vec![("node.name".to_string(), "--node".to_string())]
        }
        None => Vec::new(),
    })
}

#[cfg(test)]
mod tests;
