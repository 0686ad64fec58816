//! Logging setup: `tracing` to stderr, pretty for people or one JSON object per line for machines.
//!
//! The lines themselves are `actors::logging`'s job (the same layer the runtime benchmark measures). JSON lines
//! carry `timestamp`, `level`, `fields`, `target`, `span` and `spans`, so every message span (`actor`, `msg`, `id`,
//! `correlation_id`) is on each line logged inside it.

use anyhow::Result;

use crate::cli::LogFormat;

/// Installs the global subscriber. `level` is a level or an EnvFilter directive list.
pub fn init(format: LogFormat, level: &str) -> Result<()> {
    let format = match format {
        LogFormat::Pretty => actors::logging::LogFormat::Pretty,
        LogFormat::Json => actors::logging::LogFormat::Json,
    };
    actors::logging::install(format, level, std::io::stderr)?;
    install_panic_hook();
    Ok(())
}

/// Panics are captured by the runtime and logged there with their actor; the hook adds the location, as a log
/// line instead of raw stderr text, so JSON logs stay one object per line.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%location, panic = %payload, "panic");
    }));
}
