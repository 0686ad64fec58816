//! Log output for operators: one line per event, JSON objects or plain text, each carrying the fields of every
//! span it happened in (above all the runtime's `message` span: actor, msg, id, correlation id).
//!
//! Why a layer of our own instead of tracing-subscriber's `fmt`: `fmt` renders a span's fields into a string that
//! grows as it is written, at the moment the span opens, whether or not anything is ever logged inside it. Every
//! handled message opens a span, so that was most of the runtime's per-message cost (about 0.5-1 µs; see
//! docs/performance.md). Here a span's field values are only copied when it opens (inline, no allocation for the
//! message span), and all formatting (values, timestamp, level, span list) is done only for events written.
//!
//! Layout:
//! - `render`: field values as JSON members or `key=value` text (pure, unit-tested).
//! - `capture`: a span's values copied at open and replayed into `render` when a line is written.
//! - `layer`: the `tracing_subscriber::Layer` that keeps captured span fields and writes event lines.
//!
//! Knows nothing of actors: the runtime only creates spans and events.

mod capture;
mod layer;
mod render;

pub use layer::LogLayer;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How each line looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-12-01T19:00:00.123456Z  INFO message{actor=sync msg=Tick id=9 correlation_id=..}: target: text k=v`
    Pretty,
    /// One JSON object per line: `timestamp`, `level`, `fields`, `target`, `span` (the innermost) and `spans`.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level or filter does not parse.
    #[error(
        "invalid log level {filter:?}: {reason} (expected e.g. info, debug, or actors=debug,info)"
    )]
    BadFilter { filter: String, reason: String },
    /// A global subscriber is already installed in this process.
    #[error("could not install the log subscriber: {0}")]
    AlreadyInstalled(String),
}

/// The layer alone, for composing with other layers (tests capture lines through `make_writer`).
pub fn layer<W>(format: LogFormat, make_writer: W) -> LogLayer<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    LogLayer::new(format, make_writer)
}

/// Installs the process-wide subscriber: `filter` (a level such as `info`, or an EnvFilter directive list such as
/// `actors=debug,info`), then this layer writing to `make_writer`. Records of the `log` crate are routed through
/// it too. The daemon and the runtime benchmark both set logging up here, so the benchmark measures what runs.
///
/// A plain level becomes a `LevelFilter`, which decides once per call site; only a directive list needs an
/// `EnvFilter`, whose per-span bookkeeping (a lock on every span enter, exit and close) costs on every message.
pub fn install<W>(format: LogFormat, filter: &str, make_writer: W) -> Result<(), LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    check_filter(filter)?;
    let log_layer = layer(format, make_writer);
    let installed = match filter.trim().parse::<LevelFilter>() {
        Ok(level) => tracing_subscriber::registry()
            .with(level)
            .with(log_layer)
            .try_init(),
        Err(_) => {
            let env_filter = EnvFilter::try_new(filter).map_err(|e| LoggingError::BadFilter {
                filter: filter.to_string(),
                reason: e.to_string(),
            })?;
            tracing_subscriber::registry()
                .with(env_filter)
                .with(log_layer)
                .try_init()
        }
    };
    installed.map_err(|e| LoggingError::AlreadyInstalled(e.to_string()))
}

/// Checks a level or filter the way [`install`] will use it, stricter than `EnvFilter`: a directive without `=`
/// must be a level (`trace`, `debug`, `info`, `warn`, `error`, `off`), because EnvFilter would read a mistyped
/// level such as `loud` as a target name and silently log nothing else; `target=level` needs a known level.
/// The config check and `--log-level` both come here, so what `check-config` accepts is what `run` installs.
pub fn check_filter(filter: &str) -> Result<(), LoggingError> {
    let bad = |reason: String| LoggingError::BadFilter {
        filter: filter.to_string(),
        reason,
    };
    let trimmed = filter.trim();
    if trimmed.is_empty() {
        return Err(bad("it is empty".to_string()));
    }
    if trimmed.parse::<LevelFilter>().is_ok() {
        return Ok(());
    }
    for directive in top_level_split(trimmed, ',') {
        let directive = directive.trim();
        if directive.is_empty() {
            continue;
        }
        let parts = top_level_split(directive, '=');
        let reason = match parts.as_slice() {
            [word] if word.parse::<LevelFilter>().is_err() => format!(
                "`{word}` is neither a level (trace, debug, info, warn, error, off) nor target=level"
            ),
            [_, .., level] if level.trim().parse::<LevelFilter>().is_err() => format!(
                "`{}` in `{directive}` is not a level (trace, debug, info, warn, error, off)",
                level.trim()
            ),
            _ => continue,
        };
        return Err(bad(reason));
    }
    EnvFilter::try_new(trimmed)
        .map(|_| ())
        .map_err(|e| bad(e.to_string()))
}

/// `text` split at `separator` where it is outside `[...]` and `{...}` (span and field filters).
fn top_level_split(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (at, c) in text.char_indices() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            c if c == separator && depth == 0 => {
                parts.push(&text[start..at]);
                start = at + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A value's serde name, for a log field of a type without `Display`: a unit variant reads as its `snake_case`
/// name (`one_for_one`), anything else as compact JSON. Keeps `?value` (Rust debug text) out of log lines.
pub fn serde_name<T: serde::Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(error) => format!("<{error}>"),
    }
}

/// The level of a line this module wrote (pretty `<timestamp> <LEVEL> <rest>` or a JSON object with `level`),
/// and the line without its timestamp and level (a JSON line is kept whole); `error: ...`/`warning: ...` (what
/// `main` prints on its way out) are errors/warnings. `None` for any other text (a panic message). Lets a parent process relay a child's log lines at their own level.
pub fn parse_line(line: &str) -> (Option<tracing::Level>, &str) {
    let trimmed = line.trim();
    if trimmed.starts_with('{') {
        let level = serde_json::from_str::<serde_json::Value>(trimmed)
            .ok()
            .and_then(|v| v.get("level")?.as_str()?.parse().ok());
        return (level, trimmed);
    }
    // What the coordinator binary prints for a failure on its way out (`main`), not through a log layer.
    if trimmed.starts_with("error: ") {
        return (Some(tracing::Level::ERROR), trimmed);
    }
    if trimmed.starts_with("warning: ") {
        return (Some(tracing::Level::WARN), trimmed);
    }
    let Some((stamp, rest)) = trimmed.split_once(char::is_whitespace) else {
        return (None, trimmed);
    };
    let looks_like_time = stamp.len() >= 20 && stamp.ends_with('Z') && stamp.as_bytes()[4] == b'-';
    // The level is right-aligned in five columns, so more than one space may come before it.
    let rest = rest.trim_start();
    let (word, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    match (looks_like_time, word.parse::<tracing::Level>()) {
        (true, Ok(level)) => (Some(level), text.trim_start()),
        _ => (None, trimmed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_back_to_their_level_and_text() {
        use tracing::Level;
        let table = [
            (
                "2026-12-01T23:28:30.689188Z  WARN actors::x: slow k=v",
                Some(Level::WARN),
                "actors::x: slow k=v",
            ),
            (
                "2026-12-01T23:28:30.689188Z ERROR data: cannot listen",
                Some(Level::ERROR),
                "data: cannot listen",
            ),
            (
                "2026-12-01T23:28:30.689188Z  INFO message{actor=a}: t: INFO inside",
                Some(Level::INFO),
                "message{actor=a}: t: INFO inside",
            ),
            (
                r#"{"timestamp":"x","level":"DEBUG","fields":{"message":"m"}}"#,
                Some(Level::DEBUG),
                r#"{"timestamp":"x","level":"DEBUG","fields":{"message":"m"}}"#,
            ),
            (
                "thread 'main' panicked at src/x.rs:1:1:",
                None,
                "thread 'main' panicked at src/x.rs:1:1:",
            ),
            (
                "error: --root: no such directory",
                None,
                "error: --root: no such directory",
            ),
            ("", None, ""),
        ];
        for (line, level, text) in table {
            assert_eq!(parse_line(line), (level, text), "{line}");
        }
    }

    #[test]
    fn serde_names_of_unit_variants_and_values() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        enum E {
            OneForAll,
            Code { code: i32 },
        }
        assert_eq!(serde_name(&E::OneForAll), "one_for_all");
        assert_eq!(serde_name(&E::Code { code: 3 }), r#"{"code":{"code":3}}"#);
    }

    #[test]
    fn filters_accepted_and_refused() {
        let accepted = [
            "info",
            "DEBUG",
            " warn ",
            "off",
            "actors=debug,info",
            "actors::runtime=trace",
            "coordinator=debug,actors=warn",
            "actors[message{actor=sync}]=debug",
            "info,",
        ];
        for filter in accepted {
            assert!(
                check_filter(filter).is_ok(),
                "{filter:?}: {:?}",
                check_filter(filter)
            );
        }
        let refused = [
            ("loud", "`loud` is neither a level"),
            ("", "empty"),
            ("actors=loud", "`loud` in `actors=loud` is not a level"),
            ("info,actors", "`actors` is neither a level"),
            ("info, actors=warn", "level filter"),
        ];
        for (filter, expected) in refused {
            let error = check_filter(filter).expect_err(filter).to_string();
            assert!(error.contains(expected), "{filter:?}: {error}");
        }
    }
}
