//! What loading a config reports: `ConfigError` (fatal, one per problem, located), `ConfigErrors` (all of them,
//! one per line), and `ConfigWarning` (an env override that was dropped, naming the variable, the value and the
//! value kept).

use std::fmt;
use std::path::PathBuf;

/// One problem in the config, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Field path like `sync.interval` or `cluster.nodes[0].name`, when the problem belongs to a field.
    pub path: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
}

impl ConfigError {
    /// An error about the whole file (unreadable, not a mapping).
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            path: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `config.yaml:12:5: sync.interval: invalid duration "5x" (expected a duration like 30s, 5m, 1h)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors.
    #[allow(dead_code)] // API for sections' own Validate impls and tests
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, error) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// An env override that was not applied; the rest of the config is unaffected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The variable, e.g. `COORDINATOR_SYNC__INTERVAL`.
    pub var: String,
    /// Its value as given.
    pub value: String,
    /// The field it names, when it names one (`sync.interval`).
    pub path: Option<String>,
    /// The value kept instead (from the file or the default), when the field exists.
    pub kept: Option<String>,
    /// Why it was dropped.
    pub reason: String,
}

impl fmt::Display for ConfigWarning {
    /// `COORDINATOR_SYNC__INTERVAL="5x": invalid duration "5x" (...); keeping sync.interval = 5m`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}; ", self.var, self.value, self.reason)?;
        match (&self.path, &self.kept) {
            (Some(path), Some(kept)) => write!(f, "keeping {path} = {kept}"),
            _ => f.write_str("ignored"),
        }
    }
}
