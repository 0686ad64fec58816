//! Config loading machinery for the daemon, generic over the config type.
//!
//! Layout:
//! - [`loader`]: reads the YAML file, reports every error with file, line, column, field path and expected form,
//!   applies `COORDINATOR_*` overrides, runs semantic validation; returns `Loaded<T>` or `ConfigErrors`.
//! - [`env`]: the one parser for `COORDINATOR_<SECTION>__<KEY>` overrides (bad values become warnings).
//! - [`yaml`]: serde_yaml helpers: read one section only, find the line of a field path, clean serde messages.
//! - [`report`]: the error and warning types and their one-line display.
//! - [`validate`]: the `Validate` hook sections implement for range checks.
//! - [`secrets`]: `api.token` redacted in output and removed from the environment children inherit.
//!
//! - [`sections`]: the daemon's `Config` (top level and its own sections); actor sections live with their actors.

pub mod env;
pub mod loader;
pub mod reference;
pub mod report;
pub mod secrets;
pub mod sections;
pub mod validate;
pub mod yaml;

#[allow(unused_imports)]
pub use loader::{load, load_str, process_env, to_yaml, Loaded, ENV_PREFIX};
#[allow(unused_imports)]
pub use report::{ConfigError, ConfigErrors, ConfigWarning};
pub use sections::Config;
pub use validate::{FieldError, Validate};

/// Loads the daemon's config file with `env` as the `COORDINATOR_*` overrides.
pub fn load_config(
    path: &std::path::Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded<Config>, ConfigErrors> {
    load::<Config, _>(path, env)
}

#[cfg(test)]
mod tests;
