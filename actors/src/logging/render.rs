//! How field values become text: JSON members (escaped strings, bare numbers) or plain `key=value` text.
//!
//! Pure: sinks that append to a `String`, with no I/O and no knowledge of spans or subscribers, so the exact
//! output is unit-tested here. A field reaches a sink either straight from an event ([`Visiting`]) or replayed
//! from a span's captured values (`capture.rs`); both go through [`MemberSink::member`], so they print alike.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};

/// One field value, borrowed for as long as it is being written.
#[derive(Clone, Copy)]
pub enum FieldValue<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
    U128(u128),
    I128(i128),
    Bool(bool),
    F64(f64),
    /// `Debug` (or `Display` through `%`) output, not yet written.
    Debug(&'a dyn fmt::Debug),
    /// `Debug` output already written out (a span's captured value).
    Text(&'a str),
}

/// Where fields go: one call per field, in order.
pub trait MemberSink {
    fn member(&mut self, name: &str, value: FieldValue<'_>);
}

/// Feeds an event's or span's fields to a sink, leaving out the `log.*` fields the `log` bridge adds (their
/// content is already in the event's normalized metadata).
pub struct Visiting<'s>(pub &'s mut dyn MemberSink);

impl Visit for Visiting<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        forward(self.0, field, FieldValue::Str(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        forward(self.0, field, FieldValue::U64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        forward(self.0, field, FieldValue::I64(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        forward(self.0, field, FieldValue::U128(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        forward(self.0, field, FieldValue::I128(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        forward(self.0, field, FieldValue::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        forward(self.0, field, FieldValue::F64(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        forward(self.0, field, FieldValue::Debug(value));
    }
}

fn forward(sink: &mut dyn MemberSink, field: &Field, value: FieldValue<'_>) {
    if !is_log_bridge_field(field.name()) {
        sink.member(field.name(), value);
    }
}

/// Fields the `log` bridge adds to events that came from the `log` crate.
pub fn is_log_bridge_field(name: &str) -> bool {
    name.starts_with("log.")
}

/// Whether a byte must be escaped inside a JSON string.
fn needs_json_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Appends `text` to `out` as the inside of a JSON string (quotes, backslashes and control characters escaped).
/// Runs of plain text are copied whole; most values have no byte to escape at all.
pub fn push_json_escaped(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(offset) = bytes[start..].iter().position(|&b| needs_json_escape(b)) {
        let at = start + offset;
        out.push_str(&text[start..at]);
        match bytes[at] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            control => {
                let _ = write!(out, "\\u{control:04x}");
            }
        }
        start = at + 1;
    }
    out.push_str(&text[start..]);
}

/// Appends `text` as a JSON string, quotes included.
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    push_json_escaped(out, text);
    out.push('"');
}

/// A `fmt::Write` that JSON-escapes whatever is written through it, so `Debug` output goes into a JSON string
/// without an intermediate allocation.
struct JsonEscaping<'a>(&'a mut String);

impl fmt::Write for JsonEscaping<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        push_json_escaped(self.0, text);
        Ok(())
    }
}

/// Writes fields as JSON object members (`"name":value`, comma-separated, no braces) onto `out`.
pub struct JsonMembers<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> JsonMembers<'a> {
    /// `first`: whether `out` holds no member yet (no leading comma needed).
    pub fn new(out: &'a mut String, first: bool) -> Self {
        JsonMembers { out, first }
    }
}

impl MemberSink for JsonMembers<'_> {
    fn member(&mut self, name: &str, value: FieldValue<'_>) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_json_string(self.out, name);
        self.out.push(':');
        let out = &mut *self.out;
        match value {
            FieldValue::Str(text) | FieldValue::Text(text) => push_json_string(out, text),
            FieldValue::U64(n) => {
                let _ = write!(out, "{n}");
            }
            FieldValue::I64(n) => {
                let _ = write!(out, "{n}");
            }
            FieldValue::U128(n) => {
                let _ = write!(out, "{n}");
            }
            FieldValue::I128(n) => {
                let _ = write!(out, "{n}");
            }
            FieldValue::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            FieldValue::F64(x) if x.is_finite() => {
                let _ = write!(out, "{x}");
            }
            // JSON has no NaN or infinity: keep the value readable as a string.
            FieldValue::F64(x) => push_json_string(out, &x.to_string()),
            FieldValue::Debug(value) => {
                out.push('"');
                let _ = write!(JsonEscaping(out), "{value:?}");
                out.push('"');
            }
        }
    }
}

/// Writes fields as `name=value` pairs separated by spaces onto `out`; an event's `message` is written bare,
/// without its name. Text values are printed bare when they are one plain word (`actor=sync`), quoted and
/// escaped otherwise, so a line splits unambiguously on spaces.
pub struct TextMembers<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> TextMembers<'a> {
    /// `first`: whether `out` holds no pair yet (no leading space needed).
    pub fn new(out: &'a mut String, first: bool) -> Self {
        TextMembers { out, first }
    }
}

/// Whether a text value can be printed without quotes and still be read back unambiguously.
fn is_plain_word(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\')
}

impl MemberSink for TextMembers<'_> {
    fn member(&mut self, name: &str, value: FieldValue<'_>) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        let message = name == "message";
        if !message {
            self.out.push_str(name);
            self.out.push('=');
        }
        let out = &mut *self.out;
        let _ = match value {
            FieldValue::Str(text) if message || is_plain_word(text) => {
                out.push_str(text);
                Ok(())
            }
            FieldValue::Str(text) => write!(out, "{text:?}"),
            FieldValue::Text(text) => {
                out.push_str(text);
                Ok(())
            }
            FieldValue::U64(n) => write!(out, "{n}"),
            FieldValue::I64(n) => write!(out, "{n}"),
            FieldValue::U128(n) => write!(out, "{n}"),
            FieldValue::I128(n) => write!(out, "{n}"),
            FieldValue::Bool(b) => write!(out, "{b}"),
            FieldValue::F64(x) => write!(out, "{x}"),
            FieldValue::Debug(value) => write!(out, "{value:?}"),
        };
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tracing::field::Value;

    /// Records `values` (name → value) through a visitor, the way a span or event would.
    pub(crate) fn record(visit: &mut dyn Visit, values: &[(&'static str, &dyn Value)]) {
        // A callsite with the right field names, so `Field`s exist to record against.
        struct Cs;
        impl tracing::callsite::Callsite for Cs {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                &META
            }
        }
        static CS: Cs = Cs;
        static META: tracing::Metadata<'static> = tracing::Metadata::new(
            "test",
            "test",
            tracing::Level::INFO,
            None,
            None,
            None,
            tracing::field::FieldSet::new(
                &[
                    "message",
                    "actor",
                    "id",
                    "ratio",
                    "ok",
                    "text",
                    "err",
                    "log.target",
                    "big",
                ],
                tracing::callsite::Identifier(&CS),
            ),
            tracing::metadata::Kind::EVENT,
        );
        let fields = META.fields();
        for (name, value) in values {
            let field = fields.field(name).expect("test field exists");
            value.record(&field, visit);
        }
    }

    pub(crate) fn json(values: &[(&'static str, &dyn Value)]) -> String {
        let mut out = String::new();
        record(&mut Visiting(&mut JsonMembers::new(&mut out, true)), values);
        out
    }

    pub(crate) fn text(values: &[(&'static str, &dyn Value)]) -> String {
        let mut out = String::new();
        record(&mut Visiting(&mut TextMembers::new(&mut out, true)), values);
        out
    }

    #[test]
    fn json_members_have_bare_numbers_and_escaped_strings() {
        let out = json(&[
            ("actor", &"sync"),
            ("id", &42u64),
            ("ratio", &0.5f64),
            ("ok", &true),
            ("text", &"a \"quoted\"\nline\t\\ \u{1}"),
            ("big", &-7i64),
        ]);
        assert_eq!(
            out,
            r#""actor":"sync","id":42,"ratio":0.5,"ok":true,"text":"a \"quoted\"\nline\t\\ \u0001","big":-7"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&format!("{{{out}}}")).unwrap();
        assert_eq!(parsed["text"], "a \"quoted\"\nline\t\\ \u{1}");
    }

    #[test]
    fn json_debug_and_display_values_become_strings() {
        let error = std::io::Error::other("disk \"full\"");
        let out = json(&[
            ("message", &format_args!("stored {} letters", 3)),
            ("err", &tracing::field::display(&error)),
            ("ratio", &f64::NAN),
            ("big", &u128::MAX),
        ]);
        let parsed: serde_json::Value = serde_json::from_str(&format!("{{{out}}}")).unwrap();
        assert_eq!(parsed["message"], "stored 3 letters");
        assert_eq!(parsed["err"], "disk \"full\"");
        assert_eq!(parsed["ratio"], "NaN");
        assert!(out.ends_with(&format!("\"big\":{}", u128::MAX)), "{out}");
    }

    #[test]
    fn json_continues_after_existing_members() {
        let mut out = String::from("\"a\":1");
        record(
            &mut Visiting(&mut JsonMembers::new(&mut out, false)),
            &[("id", &2u64)],
        );
        assert_eq!(out, "\"a\":1,\"id\":2");
    }

    #[test]
    fn log_bridge_fields_are_left_out() {
        assert_eq!(json(&[("log.target", &"hyper"), ("id", &1u64)]), "\"id\":1");
        assert_eq!(text(&[("log.target", &"hyper"), ("id", &1u64)]), "id=1");
    }

    #[test]
    fn text_puts_the_message_first_and_bare() {
        let out = text(&[
            ("message", &format_args!("child stalled; restarting it")),
            ("actor", &"sync"),
            ("id", &7u64),
        ]);
        assert_eq!(out, "child stalled; restarting it actor=sync id=7");
    }

    #[test]
    fn text_quotes_values_that_are_not_one_plain_word() {
        assert_eq!(text(&[("text", &"two words")]), "text=\"two words\"");
        assert_eq!(text(&[("text", &"")]), "text=\"\"");
        assert_eq!(text(&[("text", &"a=b")]), "text=\"a=b\"");
        assert_eq!(text(&[("text", &"127.0.0.1:8766")]), "text=127.0.0.1:8766");
        assert_eq!(
            text(&[("err", &tracing::field::display("refused"))]),
            "err=refused"
        );
    }

    #[test]
    fn escaping_leaves_plain_text_alone() {
        let mut out = String::new();
        push_json_escaped(&mut out, "plain ascii and ünïcode");
        assert_eq!(out, "plain ascii and ünïcode");
    }
}
