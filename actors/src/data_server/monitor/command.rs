//! The command line that starts a data server process: the program (the daemon's own executable in production, a
//! test binary in tests), its leading arguments (`data-server`), the flags made from the config, and any extra
//! arguments (tests pass the hidden `--test-hook-hang-health-after`). Pure: it builds arguments, runs nothing.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::data_server::config::DataServerConfig;

/// Why the monitor cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The daemon could not find its own executable to run `data-server` with.
    #[error("cannot find the coordinator executable to start the data server: {source}; run the daemon from an existing file")]
    CurrentExe {
        /// The OS error.
        source: std::io::Error,
    },
}

/// How to start the data server: `program args… --root R --bind B --node N --workers W --settle S [--category name=dir]… extra_args…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before the generated flags (`["data-server"]` for the coordinator binary).
    pub args: Vec<String>,
    /// Arguments after the generated flags.
    pub extra_args: Vec<String>,
}

impl ServerCommand {
    /// `program args…` with no extra arguments.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            program: program.into(),
            args,
            extra_args: Vec::new(),
        }
    }

    /// This executable with `data-server`: what the daemon runs.
    pub fn current_exe() -> Result<Self, MonitorError> {
        let program =
            std::env::current_exe().map_err(|source| MonitorError::CurrentExe { source })?;
        Ok(Self::new(program, vec!["data-server".to_string()]))
    }

    /// The same command with `extra` appended after the generated flags.
    pub fn with_extra_args(mut self, extra: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.extra_args.extend(extra.into_iter().map(Into::into));
        self
    }

    /// Every argument after the program, for `config` on node `node`.
    pub fn arguments(&self, config: &DataServerConfig, node: &str) -> Vec<OsString> {
        let mut out: Vec<OsString> = self.args.iter().map(OsString::from).collect();
        out.extend(server_flags(config, node));
        out.extend(self.extra_args.iter().map(OsString::from));
        out
    }
}

/// The flags of `data-server` for `config` on node `node` (categories as `name=dir`, dir as configured).
pub fn server_flags(config: &DataServerConfig, node: &str) -> Vec<OsString> {
    let mut flags: Vec<OsString> = vec![
        "--root".into(),
        config.root.clone().into_os_string(),
        "--bind".into(),
        config.bind.clone().into(),
        "--node".into(),
        node.into(),
        "--workers".into(),
        config.workers.to_string().into(),
        "--settle".into(),
        humantime::format_duration(config.settle).to_string().into(),
    ];
    for (name, dir) in &config.categories {
        let mut pair = OsString::from(format!("{name}="));
        pair.push(dir.as_os_str());
        flags.push("--category".into());
        flags.push(pair);
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn arguments_are_leading_args_then_flags_then_extras() {
        let config = DataServerConfig {
            root: PathBuf::from("/srv/data"),
            bind: "127.0.0.1:8000".to_string(),
            workers: 3,
            categories: BTreeMap::from([
                ("games".to_string(), PathBuf::from("games")),
                ("models".to_string(), PathBuf::from("/abs/models")),
            ]),
            ..DataServerConfig::default()
        };
        let command = ServerCommand::new("/bin/coordinator", vec!["data-server".to_string()])
            .with_extra_args(["--test-hook-hang-health-after", "2s"]);
        let expected = [
            "data-server",
            "--root",
            "/srv/data",
            "--bind",
            "127.0.0.1:8000",
            "--node",
            "node-a",
            "--workers",
            "3",
            "--settle",
            "2s",
            "--category",
            "games=games",
            "--category",
            "models=/abs/models",
            "--test-hook-hang-health-after",
            "2s",
        ];
        assert_eq!(
            command.arguments(&config, "node-a"),
            expected.iter().map(OsString::from).collect::<Vec<_>>()
        );
    }

    #[test]
    fn current_exe_runs_data_server() {
        let command = ServerCommand::current_exe().expect("test binary exists");
        assert_eq!(command.args, ["data-server"]);
        assert!(command.program.is_absolute());
        assert!(command.extra_args.is_empty());
    }
}
