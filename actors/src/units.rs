//! Human-readable quantities shared by every config section: `ByteSize` ("64MiB", "1GiB", "512KB", "1024").
//!
//! Owns parsing and printing only; it knows nothing about which config key uses it. YAML and env overrides carry
//! sizes as text with their unit, so `ByteSize` deserializes from a string or a plain integer and serializes back to
//! the shortest exact human string (binary units first, then decimal ones, else bytes).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number of bytes, written in config as `64MiB`, `1GiB`, `512KB` or a plain `1024`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// Units accepted after the number (case-insensitive), with their multiplier.
const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Units used when printing, largest first; binary before decimal so `64MiB` prints as written.
const DISPLAY_UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
];

/// Why a size string was refused; the message names the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?} (expected a size like 512KB, 64MiB, 1GiB or a plain byte count)")]
pub struct ParseByteSizeError {
    /// The text that was refused.
    pub input: String,
}

impl ByteSize {
    /// `n` bytes.
    pub const fn bytes(n: u64) -> Self {
        ByteSize(n)
    }
    /// `n` KiB (1024 bytes each).
    pub const fn kib(n: u64) -> Self {
        ByteSize(n << 10)
    }
    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n << 20)
    }
    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n << 30)
    }
    /// The number of bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = ParseByteSizeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let refuse = || ParseByteSizeError {
            input: input.to_string(),
        };
        let text = input.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, m)| *m)
                .ok_or_else(refuse)?
        };
        if number.is_empty() {
            return Err(refuse());
        }
        if let Ok(whole) = number.parse::<u64>() {
            return whole
                .checked_mul(multiplier)
                .map(ByteSize)
                .ok_or_else(refuse);
        }
        // A fraction such as "1.5GiB": allowed when a unit is given and the result is a whole byte count.
        let fraction: f64 = number.parse().map_err(|_| refuse())?;
        let bytes = fraction * multiplier as f64;
        if multiplier == 1
            || !bytes.is_finite()
            || bytes < 0.0
            || bytes > u64::MAX as f64
            || bytes.fract() != 0.0
        {
            return Err(refuse());
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0B");
        }
        for (name, size) in DISPLAY_UNITS {
            if self.0.checked_rem(*size) == Some(0) {
                return write!(f, "{}{}", self.0 / size, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ByteSizeVisitor;

        impl Visitor<'_> for ByteSizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like 512KB, 64MiB, 1GiB or a plain byte count")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {v} (a size cannot be negative)")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_accepted_form() {
        let cases: &[(&str, u64)] = &[
            ("1024", 1024),
            ("0", 0),
            ("64MiB", 64 << 20),
            ("1GiB", 1 << 30),
            ("512KB", 512_000),
            ("512kb", 512_000),
            ("512 KiB", 512 << 10),
            ("10B", 10),
            ("2TB", 2_000_000_000_000),
            ("1TiB", 1 << 40),
            ("3mb", 3_000_000),
            ("1.5GiB", 3 << 29),
            ("  7MiB ", 7 << 20),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(*bytes)), "{text}");
        }
    }

    #[test]
    fn refuses_malformed_sizes() {
        for text in [
            "",
            "MiB",
            "12XB",
            "-5",
            "1.5",
            "1.5B",
            "0.1KB1",
            "99999999999999999999GiB",
            "1e3",
            "1.0000001KB",
        ] {
            let err = text.parse::<ByteSize>().unwrap_err();
            assert_eq!(err.input, text);
            assert!(err.to_string().contains("expected a size like"), "{err}");
        }
    }

    #[test]
    fn displays_shortest_exact_form_and_round_trips() {
        let cases: &[(u64, &str)] = &[
            (0, "0B"),
            (1024, "1KiB"),
            (64 << 20, "64MiB"),
            (1 << 30, "1GiB"),
            (512_000, "500KiB"),
            (1_000, "1KB"),
            (3_000_000, "3MB"),
            (1023, "1023B"),
        ];
        for (bytes, text) in cases {
            assert_eq!(ByteSize(*bytes).to_string(), *text);
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(*bytes)));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_size_round_trips_through_its_display(bytes: u64) {
            let size = ByteSize(bytes);
            proptest::prop_assert_eq!(size.to_string().parse::<ByteSize>(), Ok(size));
        }
    }

    #[test]
    fn serde_reads_strings_and_integers_and_writes_strings() {
        let from_str: ByteSize = serde_json::from_str("\"64MiB\"").unwrap();
        assert_eq!(from_str, ByteSize::mib(64));
        let from_int: ByteSize = serde_json::from_str("4096").unwrap();
        assert_eq!(from_int, ByteSize::kib(4));
        assert_eq!(
            serde_json::to_string(&ByteSize::gib(1)).unwrap(),
            "\"1GiB\""
        );
        let err = serde_json::from_str::<ByteSize>("\"5x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid size \"5x\""), "{err}");
        let err = serde_json::from_str::<ByteSize>("-1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be negative"), "{err}");
    }
}
