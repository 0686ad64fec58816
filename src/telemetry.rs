//! Logging setup: `tracing` to stderr, pretty for people or one JSON object per line for machines.
//!
//! JSON lines carry `timestamp`, `level`, `target`, `fields` and the span list, so every message span
//! (`actor`, `msg`, `id`, `correlation_id`) is on each line logged inside it.

use anyhow::{Context, Result};
use tracing_subscriber::{fmt, EnvFilter};

use crate::cli::LogFormat;

/// Installs the global subscriber. `level` is a level or an EnvFilter directive list.
pub fn init(format: LogFormat, level: &str) -> Result<()> {
    let filter = EnvFilter::try_new(level).with_context(|| {
        format!("invalid log level {level:?} (expected e.g. info, debug, or actors=debug,info)")
    })?;
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Pretty => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(false)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("could not install the log subscriber: {e}"))?;
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
