//! A stand-alone data server with the flags of `coordinator data-server`, for the monitor's tests (which cannot run
//! the root binary from the library crate) and for trying the server by hand:
//!
//! `cargo run -p actors --example data_server -- --root DIR [--bind ADDR] [--node N] [--workers W] [--settle DUR]
//!  [--category name=dir]… [--test-hook-hang-health-after 2s]`
//!
//! Flags are parsed by hand (the library has no clap). Errors go to stderr as `error: …` with exit code 1 (bind
//! errors) or 2 (bad flags), like the coordinator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use actors::data_server::ServerOptions;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match actors::data_server::run_standalone(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<ServerOptions, String> {
    let mut root = None;
    let mut options = ServerOptions::new("", "local");
    let mut categories = BTreeMap::new();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--root" => root = Some(PathBuf::from(value()?)),
            "--bind" => options.bind = value()?,
            "--node" => options.node = value()?,
            "--workers" => {
                options.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?
            }
            "--category" => {
                let pair = value()?;
                let (name, dir) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--category {pair:?}: use name=dir"))?;
                categories.insert(name.to_string(), PathBuf::from(dir));
            }
            "--settle" => {
                let text = value()?;
                options.settle = humantime::parse_duration(&text)
                    .map_err(|e| format!("--settle {text:?}: {e}"))?;
            }
            "--test-hook-hang-health-after" => {
                let text = value()?;
                let after = humantime::parse_duration(&text)
                    .map_err(|e| format!("--test-hook-hang-health-after {text:?}: {e}"))?;
                options.test_hook_hang_health_after = Some(after);
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    options.root = root.ok_or("--root is required")?;
    if !categories.is_empty() {
        options.categories = categories;
    }
    Ok(options)
}
