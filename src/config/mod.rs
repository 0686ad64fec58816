//! Config loading machinery for the daemon, generic over the config type.
//!
//! Layout:
//! - [`loader`]: reads the YAML file, reports every error with file, line, column, field path and expected form,
//!   applies `COORDINATOR_*` overrides, runs semantic validation; returns `Loaded<T>` or `ConfigErrors`.
//! - [`env`]: the one parser for `COORDINATOR_<SECTION>__<KEY>` overrides (bad values become warnings).
//! - [`yaml`]: serde_yaml helpers: read one section only, find the line of a field path, clean serde messages.
//! - [`report`]: the error and warning types and their one-line display.
//! - [`validate`]: the `Validate` hook sections implement for range checks.
//!
//! The section structs themselves live with their actors; this module knows none of them.

pub mod env;
pub mod loader;
pub mod report;
pub mod validate;
pub mod yaml;

pub use loader::{load, load_str, process_env, to_yaml, Loaded, ENV_PREFIX};
pub use report::{ConfigError, ConfigErrors, ConfigWarning};
pub use validate::{FieldError, Validate};

#[cfg(test)]
mod tests;
