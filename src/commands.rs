//! The commands other than `run`'s tree. Each returns `Ok(())` or its failure (`BadInput` or a runtime error);
//! `main` prints the failure and maps it to the exit code.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command, LogFormat};
use crate::config::{self, Config};
use crate::failure::BadInput;
use crate::{daemon, telemetry};

pub fn dispatch(cli: Cli) -> Result<()> {
    let Cli {
        log_format,
        log_level,
        command,
    } = cli;
    match command {
        Command::Run { config, node } => run(&config, node, log_format, log_level),
        Command::CheckConfig {
            config,
            node,
            strict,
        } => check_config(&config, node.as_deref(), strict),
        Command::Status { api, json } => {
            init_cli_logging(log_format, log_level)?;
            crate::client::status(api, json)
        }
        Command::DeadLetters {
            api,
            config,
            json,
            action,
        } => {
            init_cli_logging(log_format, log_level)?;
            crate::client::dead_letters(api, &config, json, action)
        }
        Command::Sync {
            once,
            peer,
            api,
            config,
        } => crate::client::sync_once(once, peer, api, &config),
        Command::Plan {
            state,
            schema,
            config,
        } => match state {
            Some(state) if !schema => crate::plan_cmd::run(&state, config.as_deref()),
            _ => crate::client::emit(crate::plan_cmd::SCHEMA),
        },
        Command::DataServer {
            root,
            bind,
            categories,
            node,
            workers,
            settle,
            test_hook_hang_health_after,
        } => {
            // Its own lines (where it listens, what it serves) are info: that is what an operator starting it
            // by hand wants to see.
            init_logging(log_format, log_level, "info")?;
            data_server(
                root,
                bind,
                categories,
                node,
                workers,
                settle.into(),
                test_hook_hang_health_after.map(Into::into),
            )
        }
        Command::Demo { nodes, dir, debug } => {
            crate::demo::run(nodes, &dir, crate::demo::DemoOptions { debug })
        }
        Command::ConfigReference => crate::client::emit(&config::reference::markdown()),
        Command::SelfplayDemo(args) => crate::selfplay_cmd::run(args),
    }
}

/// Logging for the client commands: warnings and errors unless `--log-level` says otherwise.
fn init_cli_logging(format: Option<LogFormat>, level: Option<String>) -> Result<()> {
    init_logging(format, level, "warn")
}

/// A bad `--log-level` is bad input, as it is for `run`.
fn init_logging(format: Option<LogFormat>, level: Option<String>, default: &str) -> Result<()> {
    telemetry::init(
        format.unwrap_or_default(),
        level.as_deref().unwrap_or(default),
    )
    .map_err(|e| BadInput::flag("--log-level", format!("{e:#}")))
}

fn env_vars() -> impl Iterator<Item = (String, String)> {
    config::process_env()
}

fn run(
    path: &std::path::Path,
    node: Option<String>,
    format: Option<LogFormat>,
    level: Option<String>,
) -> Result<()> {
    let loaded = config::load_config(path, env_vars(), node.as_deref()).map_err(|errors| {
        BadInput::report(format!(
            "{errors}\nconfig is invalid; fix the errors above (coordinator check-config --config {} lists them)",
            path.display()
        ))
    })?;
    let config: Config = loaded.config;
    // Read once; no child process (data server, jobs) may inherit it. Nothing else runs yet.
    config::secrets::forget_secret_env();
    let format = format.unwrap_or(config.logging.format);
    let level = level.unwrap_or_else(|| config.logging.level.clone());
    init_logging(Some(format), Some(level), "info")?;
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "config override ignored");
    }
    let node = config.node.name.clone();
    tracing::info!(config = %loaded.source.display(), %node, "starting coordinator");
    match daemon::run(config, node)? {
        daemon::Outcome::Clean => Ok(()),
        daemon::Outcome::RootGaveUp(reason) => {
            anyhow::bail!("the root supervisor gave up ({reason}); the tree is stopped")
        }
    }
}

fn check_config(path: &std::path::Path, node: Option<&str>, strict: bool) -> Result<()> {
    match config::load_config(path, env_vars(), node) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            if strict && !loaded.warnings.is_empty() {
                return Err(BadInput::flag(
                    "--strict",
                    format!(
                        "{} ignored COORDINATOR_* override(s); fix or unset them",
                        loaded.warnings.len()
                    ),
                ));
            }
            let yaml = config::to_yaml(&config::secrets::redacted(&loaded.config))
                .context("cannot print the resolved config")?;
            crate::client::emit(&format!(
                "# resolved config from {} (defaults filled, COORDINATOR_* applied)\n{yaml}",
                loaded.source.display()
            ))
        }
        Err(errors) => Err(BadInput::report(errors)),
    }
}

fn data_server(
    root: std::path::PathBuf,
    bind: String,
    categories: Vec<String>,
    node: Option<String>,
    workers: usize,
    settle: Duration,
    hang_after: Option<Duration>,
) -> Result<()> {
    use actors::data_server::config::parse_category;
    use actors::data_server::server::{run_standalone, ServerOptions};
    // A missing root is a typo more often than a wish: refuse it instead of serving an empty new directory.
    if !root.is_dir() {
        let why = match root.exists() {
            true => "is not a directory",
            false => "no such directory",
        };
        return Err(BadInput::flag(
            "--root",
            format!(
                "{}: {why} (create it, or pass the directory that holds the categories)",
                root.display()
            ),
        ));
    }
    let mut options = ServerOptions::new(root, node.unwrap_or_else(|| "local".to_string()));
    options.bind = bind;
    options.workers = workers.max(1);
    options.settle = settle;
    options.test_hook_hang_health_after = hang_after;
    if !categories.is_empty() {
        options.categories.clear();
        for item in categories {
            let (name, dir) = parse_category(&item).map_err(|e| BadInput::flag("--category", e))?;
            options.categories.insert(name, dir);
        }
    }
    let root = std::fs::canonicalize(&options.root).unwrap_or_else(|_| options.root.clone());
    let serves = options
        .category_dirs()
        .iter()
        .map(|(name, dir)| format!("{name}={}", dir.display()))
        .collect::<Vec<_>>()
        .join(", ");
    tracing::info!(root = %root.display(), categories = %serves, bind = %options.bind, node = %options.node, "data server starting");
    run_standalone(options).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
