//! A span's field values, copied when the span opens and written out only when a line is logged inside it.
//!
//! Copying is cheap (a few short byte copies, no escaping, no number formatting) and, for the runtime's
//! `message` span, needs no allocation of its own: up to [`INLINE_FIELDS`] values and [`INLINE_TEXT`] bytes of
//! text live inline. Most spans close without a line logged inside them, so most captures are never rendered.

use std::fmt;

use tracing::field::{Field, Visit};

use super::render::{is_log_bridge_field, FieldValue, MemberSink};

/// Values kept inline (the `message` span has four).
pub const INLINE_FIELDS: usize = 6;
/// Text bytes kept inline (actor name, message type and a 16-digit correlation id fit).
pub const INLINE_TEXT: usize = 96;

/// Where a captured text lies: in the inline buffer or in the spill string.
#[derive(Clone, Copy)]
struct TextAt {
    spilled: bool,
    start: u32,
    end: u32,
}

/// One captured value; text values point into a text buffer.
#[derive(Clone, Copy)]
enum Stored {
    Str(TextAt),
    /// `Debug`/`Display` output, or a 128-bit number, written out at capture.
    Text(TextAt),
    U64(u64),
    I64(i64),
    Bool(bool),
    F64(f64),
}

/// See the module doc. Fixed inline arrays (no `Vec` bookkeeping on the hot path); whatever does not fit goes to
/// the `spilled_*` heap parts, which stay unallocated for the message span.
pub struct CapturedFields {
    inline_len: usize,
    inline: [(&'static str, Stored); INLINE_FIELDS],
    text_len: usize,
    text: [u8; INLINE_TEXT],
    spilled_values: Vec<(&'static str, Stored)>,
    spilled_text: String,
}

impl Default for CapturedFields {
    fn default() -> Self {
        CapturedFields {
            inline_len: 0,
            inline: [("", Stored::Bool(false)); INLINE_FIELDS],
            text_len: 0,
            text: [0; INLINE_TEXT],
            spilled_values: Vec::new(),
            spilled_text: String::new(),
        }
    }
}

impl CapturedFields {
    pub fn is_empty(&self) -> bool {
        self.inline_len == 0
    }

    /// Whether anything had to go to the heap.
    #[cfg(test)]
    pub fn spilled(&self) -> bool {
        !self.spilled_values.is_empty() || !self.spilled_text.is_empty()
    }

    /// Hands every captured value to `sink`, in the order they were recorded.
    pub fn replay(&self, sink: &mut dyn MemberSink) {
        let values = self.inline[..self.inline_len]
            .iter()
            .chain(self.spilled_values.iter());
        for &(name, stored) in values {
            let value = match stored {
                Stored::Str(at) => FieldValue::Str(self.text_at(at)),
                Stored::Text(at) => FieldValue::Text(self.text_at(at)),
                Stored::U64(n) => FieldValue::U64(n),
                Stored::I64(n) => FieldValue::I64(n),
                Stored::Bool(b) => FieldValue::Bool(b),
                Stored::F64(x) => FieldValue::F64(x),
            };
            sink.member(name, value);
        }
    }

    fn text_at(&self, at: TextAt) -> &str {
        let (start, end) = (at.start as usize, at.end as usize);
        if at.spilled {
            self.spilled_text.get(start..end).unwrap_or("")
        } else {
            // Only whole `str`s are copied in, at these boundaries, so the bytes are valid UTF-8.
            std::str::from_utf8(&self.text[start..end]).unwrap_or("")
        }
    }

    fn push(&mut self, field: &Field, stored: Stored) {
        if is_log_bridge_field(field.name()) {
            return;
        }
        if self.inline_len < INLINE_FIELDS {
            self.inline[self.inline_len] = (field.name(), stored);
            self.inline_len += 1;
        } else {
            self.spilled_values.push((field.name(), stored));
        }
    }

    fn copy_text(&mut self, text: &str) -> TextAt {
        let bytes = text.as_bytes();
        let start = self.text_len;
        let end = start + bytes.len();
        if end <= INLINE_TEXT {
            self.text[start..end].copy_from_slice(bytes);
            self.text_len = end;
            TextAt {
                spilled: false,
                start: start as u32,
                end: end as u32,
            }
        } else {
            self.write_spilled(|out| out.push_str(text))
        }
    }

    fn write_spilled(&mut self, write: impl FnOnce(&mut String)) -> TextAt {
        let start = self.spilled_text.len();
        write(&mut self.spilled_text);
        TextAt {
            spilled: true,
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(self.spilled_text.len()).unwrap_or(u32::MAX),
        }
    }

    fn push_formatted(&mut self, field: &Field, args: fmt::Arguments<'_>) {
        let at = self.write_spilled(|out| {
            let _ = fmt::Write::write_fmt(out, args);
        });
        self.push(field, Stored::Text(at));
    }
}

impl Visit for CapturedFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let at = self.copy_text(value);
        self.push(field, Stored::Str(at));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Stored::U64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Stored::I64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Stored::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Stored::F64(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push_formatted(field, format_args!("{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push_formatted(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push_formatted(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::render::tests::{json, record, text};
    use super::super::render::{JsonMembers, TextMembers};
    use super::*;
    use tracing::field::Value;

    fn captured(values: &[(&'static str, &dyn Value)]) -> CapturedFields {
        let mut captured = CapturedFields::default();
        record(&mut captured, values);
        captured
    }

    fn replayed_json(captured: &CapturedFields) -> String {
        let mut out = String::new();
        captured.replay(&mut JsonMembers::new(&mut out, true));
        out
    }

    fn replayed_text(captured: &CapturedFields) -> String {
        let mut out = String::new();
        captured.replay(&mut TextMembers::new(&mut out, true));
        out
    }

    #[test]
    fn a_replay_prints_what_recording_directly_prints() {
        let error = std::io::Error::other("refused");
        let values: &[(&'static str, &dyn Value)] = &[
            ("actor", &"data_server_monitor"),
            ("id", &9u64),
            ("big", &-3i64),
            ("ok", &false),
            ("ratio", &0.25f64),
            ("text", &"two \"words\""),
            ("err", &tracing::field::display(&error)),
        ];
        let captured = captured(values);
        assert_eq!(replayed_json(&captured), json(values));
        assert_eq!(replayed_text(&captured), text(values));
    }

    #[test]
    fn the_message_span_fits_inline() {
        let captured = captured(&[
            ("actor", &"data_server_monitor"),
            ("message", &"DataServerState"),
            ("id", &u64::MAX),
            ("text", &"00ff00001234abcd"),
        ]);
        assert!(!captured.spilled());
    }

    #[test]
    fn long_values_spill_to_the_heap_and_still_replay() {
        let long = "x".repeat(INLINE_TEXT * 3);
        let captured = captured(&[("text", &long.as_str()), ("id", &1u64)]);
        assert!(captured.spilled());
        assert_eq!(replayed_text(&captured), format!("text={long} id=1"));
        let many: Vec<u64> = (0..INLINE_FIELDS as u64 + 3).collect();
        let mut fields = CapturedFields::default();
        for n in &many {
            record(&mut fields, &[("id", n)]);
        }
        assert!(fields.spilled());
        let expected: Vec<String> = many.iter().map(|n| format!("id={n}")).collect();
        assert_eq!(replayed_text(&fields), expected.join(" "));
    }

    #[test]
    fn nothing_recorded_is_empty() {
        assert!(CapturedFields::default().is_empty());
        assert_eq!(replayed_json(&CapturedFields::default()), "");
    }
}
