//! Pure HTTP conditional-request logic for file downloads: the `Range` header (resume), `ETag`, `If-None-Match` and
//! `If-Range`. No I/O and no actix types, so every case is a table test.
//!
//! Only single byte ranges are served (what a resuming client sends); a multi-range or malformed header is ignored
//! and the whole file is sent, as RFC 9110 allows.

use std::time::{SystemTime, UNIX_EPOCH};

/// What to send for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416: the range starts at or past the end of the file.
    Unsatisfiable,
}

impl RangeAnswer {
    /// The `Content-Range` value of a partial answer for a file of `size` bytes.
    pub fn content_range(&self, size: u64) -> Option<String> {
        match self {
            RangeAnswer::Partial { start, end } => Some(format!("bytes {start}-{end}/{size}")),
            RangeAnswer::Unsatisfiable => Some(format!("bytes */{size}")),
            RangeAnswer::Full => None,
        }
    }

    /// First byte and byte count to send for a file of `size` bytes.
    pub fn span(&self, size: u64) -> (u64, u64) {
        match *self {
            RangeAnswer::Partial { start, end } => (start, end - start + 1),
            RangeAnswer::Full | RangeAnswer::Unsatisfiable => (0, size),
        }
    }
}

/// Decide what to send given the `Range` header (if any) and the file size.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(header) = header else {
        return RangeAnswer::Full;
    };
    let header = header.trim();
    let Some((unit, spec)) = header.split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |text: &str| {
        text.parse::<u64>()
            .ok()
            .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
    };
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(last) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(suffix) => RangeAnswer::Partial {
                start: size.saturating_sub(suffix),
                end: size - 1,
            },
            None => RangeAnswer::Full,
        },
        // bytes=A-: from A to the end.
        (false, true) => match parse(first) {
            Some(start) if start >= size => RangeAnswer::Unsatisfiable,
            Some(start) => RangeAnswer::Partial {
                start,
                end: size - 1,
            },
            None => RangeAnswer::Full,
        },
        // bytes=A-B.
        (false, false) => match (parse(first), parse(last)) {
            (Some(start), Some(end)) if start > end => RangeAnswer::Full,
            (Some(start), Some(_)) if start >= size => RangeAnswer::Unsatisfiable,
            (Some(start), Some(end)) => RangeAnswer::Partial {
                start,
                end: end.min(size - 1),
            },
            _ => RangeAnswer::Full,
        },
        (true, true) => RangeAnswer::Full,
    }
}

/// The strong ETag (quoted) of a file version: its size and mtime in nanoseconds, hex.
pub fn etag_for(size: u64, mtime: SystemTime) -> String {
    let nanos = mtime
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or(0);
    format!("\"{size:x}-{nanos:x}\"")
}

/// True when an `If-None-Match` value (a list, or `*`) names `etag` (weak comparison).
pub fn if_none_match_hits(header: &str, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    header.trim() == "*"
        || header
            .split(',')
            .any(|candidate| bare(candidate) == bare(etag))
}

/// True when an `If-Range` value allows the range: it must be exactly our strong ETag (dates are not trusted).
pub fn if_range_allows(header: Option<&str>, etag: &str) -> bool {
    match header {
        None => true,
        Some(value) => value.trim() == etag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn range_table() {
        use RangeAnswer::*;
        let table: [(Option<&str>, u64, RangeAnswer); 22] = [
            (None, 100, Full),
            (Some("bytes=0-99"), 100, Partial { start: 0, end: 99 }),
            (Some("bytes=0-"), 100, Partial { start: 0, end: 99 }),
            (Some("bytes=40-"), 100, Partial { start: 40, end: 99 }),
            (Some("bytes=40-49"), 100, Partial { start: 40, end: 49 }),
            (Some("bytes=40-1000"), 100, Partial { start: 40, end: 99 }),
            (Some("bytes=99-99"), 100, Partial { start: 99, end: 99 }),
            (Some("bytes=-10"), 100, Partial { start: 90, end: 99 }),
            (Some("bytes=-1000"), 100, Partial { start: 0, end: 99 }),
            (Some("BYTES = 5-6"), 100, Partial { start: 5, end: 6 }),
            (Some("bytes=100-"), 100, Unsatisfiable),
            (Some("bytes=100-200"), 100, Unsatisfiable),
            (Some("bytes=-0"), 100, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=-5"), 0, Unsatisfiable),
            (Some("bytes=50-40"), 100, Full),
            (Some("bytes=0-1,5-6"), 100, Full),
            (Some("items=0-1"), 100, Full),
            (Some("bytes=abc-"), 100, Full),
            (Some("bytes=+5-"), 100, Full),
            (Some("bytes=-"), 100, Full),
            (Some("garbage"), 100, Full),
        ];
        for (header, size, expected) in table {
            assert_eq!(parse_range(header, size), expected, "{header:?} of {size}");
        }
    }

    #[test]
    fn content_range_and_span() {
        let partial = RangeAnswer::Partial { start: 40, end: 49 };
        assert_eq!(
            partial.content_range(100).as_deref(),
            Some("bytes 40-49/100")
        );
        assert_eq!(partial.span(100), (40, 10));
        assert_eq!(
            RangeAnswer::Unsatisfiable.content_range(100).as_deref(),
            Some("bytes */100")
        );
        assert_eq!(RangeAnswer::Full.content_range(100), None);
        assert_eq!(RangeAnswer::Full.span(100), (0, 100));
    }

    #[test]
    fn etag_changes_with_size_and_mtime() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let etag = etag_for(100, t);
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        assert_ne!(etag, etag_for(101, t));
        assert_ne!(etag, etag_for(100, t + Duration::from_nanos(1)));
        assert_eq!(etag, etag_for(100, t));
    }

    #[test]
    fn conditional_headers() {
        let etag = "\"64-1\"";
        assert!(if_none_match_hits("\"64-1\"", etag));
        assert!(if_none_match_hits("W/\"64-1\"", etag));
        assert!(if_none_match_hits("\"x\", \"64-1\"", etag));
        assert!(if_none_match_hits("*", etag));
        assert!(!if_none_match_hits("\"64-2\"", etag));
        assert!(if_range_allows(None, etag));
        assert!(if_range_allows(Some("\"64-1\""), etag));
        assert!(!if_range_allows(Some("\"64-2\""), etag));
        assert!(!if_range_allows(
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            etag
        ));
    }
}
