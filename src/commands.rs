//! The commands other than `run`'s tree: each returns an exit code; `main` prints errors.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command, LogFormat};
use crate::config::{self, Config};
use crate::{daemon, telemetry};

/// Exit code for bad input (config, flags, plan state).
pub const EXIT_BAD_INPUT: u8 = 2;

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let Cli {
        log_format,
        log_level,
        command,
    } = cli;
    match command {
        Command::Run { config, node } => run(&config, node, log_format, log_level),
        Command::CheckConfig { config } => check_config(&config),
        Command::Status { api, json } => {
            init_cli_logging(log_format, log_level);
            crate::client::status(api, json)
        }
        Command::DeadLetters {
            api,
            config,
            action,
        } => {
            init_cli_logging(log_format, log_level);
            crate::client::dead_letters(api, &config, action)
        }
        Command::Sync {
            once,
            peer,
            api,
            config,
        } => crate::client::sync_once(once, peer, api, &config),
        Command::Plan { state, config } => crate::plan_cmd::run(&state, config.as_deref()),
        Command::DataServer {
            root,
            bind,
            categories,
            node,
            workers,
            settle,
            test_hook_hang_health_after,
        } => {
            init_cli_logging(log_format, log_level);
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
        Command::ConfigReference => {
            print!("{}", config::reference::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::SelfplayDemo { .. } => crate::selfplay_cmd::run(command),
    }
}

fn init_cli_logging(format: Option<LogFormat>, level: Option<String>) {
    let _ = telemetry::init(
        format.unwrap_or_default(),
        level.as_deref().unwrap_or("warn"),
    );
}

fn env_vars() -> impl Iterator<Item = (String, String)> {
    config::process_env()
}

fn run(
    path: &std::path::Path,
    node: Option<String>,
    format: Option<LogFormat>,
    level: Option<String>,
) -> Result<ExitCode> {
    let loaded = match config::load_config(path, env_vars()) {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("config is invalid; fix the errors above (coordinator check-config --config {} lists them)", path.display());
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let config: Config = loaded.config;
    let format = format.unwrap_or(config.logging.format);
    let level = level.unwrap_or_else(|| config.logging.level.clone());
    if let Err(e) = telemetry::init(format, &level) {
        eprintln!("error: --log-level: {e:#}");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "config override ignored");
    }
    let node = node.unwrap_or_else(|| config.node.name.clone());
    if !config.cluster.nodes.is_empty() && !config.cluster.nodes.iter().any(|n| n.name == node) {
        let known: Vec<&str> = config
            .cluster
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        eprintln!(
            "error: --node {node:?} is not in cluster.nodes (known: {})",
            known.join(", ")
        );
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    tracing::info!(config = %loaded.source.display(), %node, "starting coordinator");
    match daemon::run(config, node)? {
        daemon::Outcome::Clean => Ok(ExitCode::SUCCESS),
        daemon::Outcome::RootGaveUp(_) => Ok(ExitCode::from(1)),
    }
}

fn check_config(path: &std::path::Path) -> Result<ExitCode> {
    match config::load_config(path, env_vars()) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            let yaml =
                config::to_yaml(&loaded.config).context("cannot print the resolved config")?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "# resolved config from {} (defaults filled, COORDINATOR_* applied)",
                loaded.source.display()
            )?;
            out.write_all(yaml.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
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
) -> Result<ExitCode> {
    use actors::data_server::server::{run_standalone, ServerOptions};
    let mut options = ServerOptions::new(root, node.unwrap_or_else(|| "local".to_string()));
    options.bind = bind;
    options.workers = workers.max(1);
    options.settle = settle;
    options.test_hook_hang_health_after = hang_after;
    if !categories.is_empty() {
        options.categories.clear();
        for item in categories {
            let Some((name, dir)) = item.split_once('=') else {
                eprintln!("error: --category {item:?}: expected name=dir, e.g. games=games");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            };
            options
                .categories
                .insert(name.trim().to_string(), dir.trim().into());
        }
    }
    run_standalone(options).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}
