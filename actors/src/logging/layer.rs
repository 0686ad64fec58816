//! The `tracing` layer that writes log lines: span fields copied when a span opens, lines built only for events.
//!
//! When a span opens, its field values are copied (not formatted) into the span's extensions; nothing else
//! happens until an event is logged inside it, when they are written out in the layer's format. An event's line
//! is built in a reused per-thread buffer and handed to the writer in one `write_all`, so lines from several
//! threads never interleave.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::SystemTime;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::capture::CapturedFields;
use super::render::{push_json_string, JsonMembers, TextMembers, Visiting};
use super::LogFormat;

/// Lines longer than this do not keep their buffer for the next event (a rare huge line must not pin memory).
const KEPT_LINE_CAPACITY: usize = 16 * 1024;

/// Writes one line per event; see the module doc. Build it with [`super::layer`].
pub struct LogLayer<W> {
    format: LogFormat,
    make_writer: W,
}

impl<W> LogLayer<W> {
    pub(super) fn new(format: LogFormat, make_writer: W) -> Self {
        LogLayer {
            format,
            make_writer,
        }
    }
}

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut captured = CapturedFields::default();
        attrs.record(&mut captured);
        span.extensions_mut().insert(captured);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<CapturedFields>() {
            Some(captured) => values.record(captured),
            None => {
                let mut captured = CapturedFields::default();
                values.record(&mut captured);
                extensions.insert(captured);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let write = |line: &mut String| {
            line.clear();
            match self.format {
                LogFormat::Json => self.json_line(line, meta, event, &ctx),
                LogFormat::Pretty => self.text_line(line, meta, event, &ctx),
            }
            line.push('\n');
            // A failed write of a log line has nowhere better to be reported; the event is dropped.
            let _ = self
                .make_writer
                .make_writer_for(meta)
                .write_all(line.as_bytes());
        };
        // Reentrant logging (a field's Debug that logs) and logging while the thread's locals are being torn
        // down (a Drop that logs at thread exit) get a fresh buffer instead of the per-thread one.
        let reused = LINE
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut line) => {
                    write(&mut line);
                    if line.capacity() > KEPT_LINE_CAPACITY {
                        *line = String::with_capacity(512);
                    }
                    true
                }
                Err(_) => false,
            })
            .unwrap_or(false);
        if !reused {
            write(&mut String::new());
        }
    }
}

impl<W> LogLayer<W> {
    /// `{"timestamp","level","fields":{..},"target","span":{..,"name"},"spans":[..]}`: the shape of
    /// tracing-subscriber's JSON output with the current span and the span list on.
    fn json_line<S>(
        &self,
        line: &mut String,
        meta: &Metadata<'_>,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        line.push_str("{\"timestamp\":\"");
        push_timestamp(line);
        line.push_str("\",\"level\":\"");
        line.push_str(level_name(meta.level()));
        line.push_str("\",\"fields\":{");
        event.record(&mut Visiting(&mut JsonMembers::new(line, true)));
        line.push_str("},\"target\":");
        push_json_string(line, meta.target());
        if let Some(scope) = ctx.event_scope(event) {
            let mut spans = String::new();
            let mut leaf = String::new();
            for span in scope.from_root() {
                leaf.clear();
                leaf.push('{');
                if let Some(captured) = span.extensions().get::<CapturedFields>() {
                    if !captured.is_empty() {
                        captured.replay(&mut JsonMembers::new(&mut leaf, true));
                        leaf.push(',');
                    }
                }
                leaf.push_str("\"name\":");
                push_json_string(&mut leaf, span.name());
                leaf.push('}');
                if !spans.is_empty() {
                    spans.push(',');
                }
                spans.push_str(&leaf);
            }
            if !leaf.is_empty() {
                line.push_str(",\"span\":");
                line.push_str(&leaf);
                line.push_str(",\"spans\":[");
                line.push_str(&spans);
                line.push(']');
            }
        }
        line.push('}');
    }

    /// `2026-12-01T19:00:00.123456Z  INFO message{actor=sync msg=Tick id=9 correlation_id=..}: target: text k=v`:
    /// tracing-subscriber's default line, without colours.
    fn text_line<S>(
        &self,
        line: &mut String,
        meta: &Metadata<'_>,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        push_timestamp(line);
        line.push(' ');
        let level = level_name(meta.level());
        for _ in level.len()..5 {
            line.push(' ');
        }
        line.push_str(level);
        line.push(' ');
        if let Some(scope) = ctx.event_scope(event) {
            // `outer{..}:inner{..}: target: ...`, as tracing-subscriber prints a span context.
            let mut any = false;
            for span in scope.from_root() {
                any = true;
                line.push_str(span.name());
                if let Some(captured) = span.extensions().get::<CapturedFields>() {
                    if !captured.is_empty() {
                        line.push('{');
                        captured.replay(&mut TextMembers::new(line, true));
                        line.push('}');
                    }
                }
                line.push(':');
            }
            if any {
                line.push(' ');
            }
        }
        line.push_str(meta.target());
        line.push_str(": ");
        event.record(&mut Visiting(&mut TextMembers::new(line, true)));
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// RFC 3339 UTC with microseconds, e.g. `2026-12-01T19:00:00.123456Z`.
fn push_timestamp(line: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        line,
        "{}",
        humantime::format_rfc3339_micros(SystemTime::now())
    );
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// A writer that keeps every line in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    /// Runs `work` under a subscriber with this layer in `format` and returns what it wrote.
    fn logged(format: LogFormat, work: impl FnOnce()) -> String {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(LogLayer::new(format, lines.clone()));
        tracing::subscriber::with_default(subscriber, work);
        let bytes = lines.0.lock().expect("lines lock").clone();
        String::from_utf8(bytes).expect("utf-8 lines")
    }

    fn message_span_work() {
        let outer = tracing::info_span!(
            "message",
            actor = "sync",
            msg = "Tick",
            id = 7u64,
            correlation_id = "00000000000000ab"
        );
        let _outer = outer.enter();
        let inner = tracing::info_span!("transfer", peer = %"10.0.0.2:8766");
        let _inner = inner.enter();
        inner.record("peer", "changed");
        tracing::warn!(
            bytes = 42u64,
            error = "connection refused",
            "http failed; trying rsync"
        );
    }

    #[test]
    fn json_lines_carry_fields_span_and_span_list() {
        let out = logged(LogFormat::Json, message_span_work);
        assert_eq!(out.lines().count(), 1, "{out}");
        let line: serde_json::Value =
            serde_json::from_str(out.trim_end()).expect("one JSON object");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["fields"]["message"], "http failed; trying rsync");
        assert_eq!(line["fields"]["bytes"], 42);
        assert_eq!(line["fields"]["error"], "connection refused");
        assert_eq!(line["span"]["name"], "transfer");
        assert_eq!(
            line["span"]["peer"], "changed",
            "a recorded value follows the first one"
        );
        let spans = line["spans"].as_array().expect("span list");
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0]["name"], "message");
        assert_eq!(spans[0]["actor"], "sync");
        assert_eq!(spans[0]["msg"], "Tick");
        assert_eq!(spans[0]["id"], 7);
        assert_eq!(spans[0]["correlation_id"], "00000000000000ab");
        let timestamp = line["timestamp"].as_str().expect("timestamp");
        assert!(humantime::parse_rfc3339(timestamp).is_ok(), "{timestamp}");
    }

    #[test]
    fn text_lines_read_like_the_default_format_without_colours() {
        let out = logged(LogFormat::Pretty, message_span_work);
        let line = out.trim_end();
        let (timestamp, rest) = line.split_once(' ').expect("timestamp first");
        assert!(humantime::parse_rfc3339(timestamp).is_ok(), "{line}");
        let expected = format!(
            " WARN message{{actor=sync msg=Tick id=7 correlation_id=00000000000000ab}}:transfer{{peer=10.0.0.2:8766 peer=changed}}: {}: http failed; trying rsync bytes=42 error=\"connection refused\"",
            module_path!()
        );
        assert_eq!(rest, expected);
        assert!(!line.contains('\u{1b}'), "no ANSI escapes");
    }

    #[test]
    fn logging_from_a_thread_local_destructor_still_writes_a_line() {
        struct LogsOnDrop;
        impl Drop for LogsOnDrop {
            fn drop(&mut self) {
                tracing::info!("thread-local dropped");
            }
        }
        thread_local! {
            static LATE: RefCell<Option<LogsOnDrop>> = const { RefCell::new(None) };
        }
        let out = logged(LogFormat::Pretty, || {
            let dispatch = tracing::dispatcher::Dispatch::default();
            std::thread::spawn(move || {
                // Leaked on purpose, so the dispatcher is still the default while the thread's locals go.
                std::mem::forget(tracing::dispatcher::set_default(&dispatch));
                // LATE first: thread locals are destroyed in reverse order of first use, so the line buffer
                // (first used by the event below) is gone when LATE's destructor logs.
                LATE.with(|late| *late.borrow_mut() = Some(LogsOnDrop));
                tracing::info!("thread started");
            })
            .join()
            .expect("thread ends without a panic");
        });
        assert!(out.contains("thread started"), "{out}");
    }

    #[test]
    fn events_outside_spans_have_no_span_members() {
        let out = logged(LogFormat::Json, || tracing::info!(n = 1u64, "plain"));
        let line: serde_json::Value = serde_json::from_str(out.trim_end()).expect("JSON");
        assert!(
            line.get("span").is_none() && line.get("spans").is_none(),
            "{line}"
        );
        assert_eq!(line["fields"]["n"], 1);
    }

    #[test]
    fn every_line_is_whole_when_threads_log_at_once() {
        let out = logged(LogFormat::Json, || {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let dispatch = tracing::dispatcher::Dispatch::default();
                    std::thread::spawn(move || {
                        tracing::dispatcher::with_default(&dispatch, || {
                            for i in 0..50u64 {
                                tracing::info!(thread = t, i, "line");
                            }
                        })
                    })
                })
                .collect();
            for thread in threads {
                thread.join().expect("logging thread");
            }
        });
        assert_eq!(out.lines().count(), 200);
        for line in out.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("each line is one JSON object");
        }
    }
}
