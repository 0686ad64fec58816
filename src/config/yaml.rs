//! serde_yaml helpers the loader builds on: read only one top-level section of a document (so each section reports
//! its own first error with serde_yaml's line and column), find where a field path sits in the text, and turn
//! serde's messages into the form users read (`invalid duration "5x" (expected a duration like 30s, 5m, 1h)`).
//!
//! Knows nothing about which sections exist.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Split `cluster.nodes[0].name` into `[Key(cluster), Key(nodes), Index(0), Key(name)]`.
pub fn parse_path(path: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|part| !part.is_empty()) {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            segments.push(Segment::Key(key.to_string()));
        }
        while let Some(open) = rest.strip_prefix('[') {
            let Some(close) = open.find(']') else { break };
            match open[..close].parse() {
                Ok(index) => segments.push(Segment::Index(index)),
                Err(_) => segments.push(Segment::Key(open[..close].to_string())),
            }
            rest = &open[close + 1..];
        }
    }
    segments
}

/// A deserializer showing only the entry at `path` of a mapping (`[section]`, or `[section, key]` for one key of a
/// section); the other keys are skipped unread, so the target type fills them from its defaults. Errors inside the
/// entry keep serde_yaml's location, so one pass per section (or per key of a broken section) reports each its
/// own first error.
pub struct SectionOnly<'s, D> {
    inner: D,
    path: &'s [String],
}

impl<'s, D> SectionOnly<'s, D> {
    /// Wrap `inner`, keeping only the entry at `path` (non-empty).
    pub fn new(inner: D, path: &'s [String]) -> Self {
        Self { inner, path }
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for SectionOnly<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_any(FilterVisitor {
            inner: visitor,
            path: self.path,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_map(FilterVisitor {
            inner: visitor,
            path: self.path,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            FilterVisitor {
                inner: visitor,
                path: self.path,
            },
        )
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct enum identifier ignored_any
    }
}

struct FilterVisitor<'s, V> {
    inner: V,
    path: &'s [String],
}

impl<'de, V: Visitor<'de>> Visitor<'de> for FilterVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(FilterMap {
            inner: map,
            path: self.path,
        })
    }
}

struct FilterMap<'s, A> {
    inner: A,
    path: &'s [String],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for FilterMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(want) = self.path.first() else {
            return Ok(None);
        };
        while let Some(key) = self.inner.next_key::<serde_yaml::Value>()? {
            if key.as_str() == Some(want.as_str()) {
                let key: de::value::StrDeserializer<'_, A::Error> =
                    want.as_str().into_deserializer();
                return seed.deserialize(key).map(Some);
            }
            self.inner.next_value::<IgnoredAny>()?;
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.path.get(1..).filter(|rest| !rest.is_empty()) {
            Some(rest) => self.inner.next_value_seed(Nested { seed, path: rest }),
            None => self.inner.next_value_seed(seed),
        }
    }
}

/// The value of a filtered entry, itself filtered to the rest of the path.
struct Nested<'s, S> {
    seed: S,
    path: &'s [String],
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Nested<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.seed
            .deserialize(SectionOnly::new(deserializer, self.path))
    }
}

/// Marker message used to stop the locator at its target; never shown.
const FOUND: &str = "\u{0}config-locator-found";

/// 1-based (line, column) of the field at `path` in `text`: the key for a mapping entry, the item for a list
/// index. `None` when the path is not in the text.
pub fn locate(text: &str, path: &[Segment]) -> Option<(usize, usize)> {
    if path.is_empty() {
        return None;
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    match Seek(path).deserialize(deserializer) {
        Err(error) if error.to_string().contains(FOUND) => {
            error.location().map(|at| (at.line(), at.column()))
        }
        _ => None,
    }
}

/// Walks towards `path`; errors with [`FOUND`] at the target (the error then carries serde_yaml's mark).
struct Seek<'p>(&'p [Segment]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(want), rest)) = self.0.split_first() else {
            return skip_map(map);
        };
        while let Some(matched) = map.next_key_seed(KeySeek {
            want,
            last: rest.is_empty(),
        })? {
            if matched {
                return map.next_value_seed(Seek(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(index), rest)) = self.0.split_first() else {
            return skip_seq(seq);
        };
        for _ in 0..*index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        if rest.is_empty() {
            seq.next_element_seed(Here)?;
        } else {
            seq.next_element_seed(Seek(rest))?;
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Reads one mapping key: `Ok(true)` when it is the wanted one (or stops with [`FOUND`] when it is the last step).
struct KeySeek<'w> {
    want: &'w str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeek<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeek<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match (key == self.want, self.last) {
            (true, true) => Err(E::custom(FOUND)),
            (matched, _) => Ok(matched),
        }
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }
    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Stops with [`FOUND`] on whatever value comes next.
struct Here;

impl<'de> DeserializeSeed<'de> for Here {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

/// serde_yaml's message without its `path: ` prefix and ` at line L column C` suffix.
pub fn bare_message(error: &serde_yaml::Error, path: &str) -> String {
    let mut text = error.to_string();
    if let Some(at) = error.location() {
        let suffix = format!(" at line {} column {}", at.line(), at.column());
        if let Some(stripped) = text.strip_suffix(&suffix) {
            text = stripped.to_string();
        }
    }
    // serde_yaml's own path may stop short of serde_path_to_error's (an unknown key is in the latter only).
    let mut candidate = path;
    while !candidate.is_empty() {
        if let Some(stripped) = text.strip_prefix(&format!("{candidate}: ")) {
            return stripped.to_string();
        }
        candidate = &candidate[..candidate.rfind(['.', '[']).unwrap_or(0)];
    }
    text
}

/// Rewrite serde's generic wording into what a config user needs: the value and the expected form.
pub fn friendly(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid value: string ") {
        if let Some(value) = rest.strip_suffix(", expected a duration") {
            return format!("invalid duration {value} (expected a duration like 30s, 5m, 1h)");
        }
    }
    if let Some((head, expected)) = message.rsplit_once(", expected ") {
        let plain = match expected {
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => Some("a whole number, 0 or more"),
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => Some("a whole number"),
            "f32" | "f64" => Some("a number"),
            "a boolean" => Some("a boolean (true or false)"),
            "a string" => Some("a string"),
            _ if expected.starts_with("struct ") => Some("a mapping of keys"),
            _ if expected.starts_with("a sequence") => Some("a list"),
            _ => None,
        };
        if let Some(plain) = plain {
            return format!("{head}, expected {plain}");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
node:
  name: a
cluster:
  nodes:
    - name: x
    - name: y
      port: 3
sync:
  interval: 5m
";

    #[test]
    fn parses_paths_with_indices() {
        use Segment::*;
        assert_eq!(
            parse_path("cluster.nodes[1].name"),
            vec![
                Key("cluster".into()),
                Key("nodes".into()),
                Index(1),
                Key("name".into())
            ]
        );
        assert_eq!(
            parse_path("a[0][2]"),
            vec![Key("a".into()), Index(0), Index(2)]
        );
        assert_eq!(parse_path(""), vec![]);
    }

    #[test]
    fn locates_keys_and_list_items() {
        let cases = [
            ("node", Some((1, 1))),
            ("node.name", Some((2, 3))),
            ("sync.interval", Some((9, 3))),
            ("cluster.nodes[1].port", Some((7, 7))),
            ("cluster.nodes[1]", Some((6, 7))),
            ("cluster.nodes[5].name", None),
            ("sync.missing", None),
            ("node.name.deeper", None),
        ];
        for (path, expected) in cases {
            assert_eq!(locate(DOC, &parse_path(path)), expected, "{path}");
        }
    }

    #[test]
    fn friendly_messages_name_the_expected_form() {
        assert_eq!(
            friendly("invalid value: string \"5x\", expected a duration"),
            "invalid duration \"5x\" (expected a duration like 30s, 5m, 1h)"
        );
        assert_eq!(
            friendly("invalid type: string \"a\", expected u32"),
            "invalid type: string \"a\", expected a whole number, 0 or more"
        );
        assert_eq!(
            friendly("unknown variant `x`, expected `a` or `b`"),
            "unknown variant `x`, expected `a` or `b`"
        );
    }
}
