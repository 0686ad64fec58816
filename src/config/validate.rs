//! THE validation API of config sections: a section implements [`Validate`] and returns every problem as a
//! [`FieldError`] whose path is relative to the section (`interval`, `nodes[0].name`); the parent prefixes its
//! field name ([`validate_under`]), and the loader locates each full path in the file, so every error points at
//! the line and column of its own key. `Config::validate` (sections.rs) lists each section once.
//!
//! Pure: no I/O. Sections in the `actors` crate that predate this API keep their `problems()` and are adapted in
//! one line with [`pairs`] (`Vec<(path, message)>`, paths relative or already prefixed; a `problems(prefix)` is
//! called with the section's name or `""`) or [`sentences`] (`Vec<String>` such as `data_server.bind: ...` or
//! `failure_threshold must be at least 1`), e.g. in `Config::validate`:
//! `extend_under(&mut out, "sync", pairs("sync", self.sync.problems()));`.

/// A semantic problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path relative to the validated value (`interval`, `nodes[0].name`).
    pub path: String,
    /// What is wrong and what is expected (`must be at least 1s`).
    pub message: String,
    /// Other fields (full paths from the top) the check read: a cross-section check is dropped when one of
    /// them is in a section that failed to parse, since it would then judge a default, not the file.
    pub related: Vec<String>,
}

impl FieldError {
    /// A problem with the field at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            related: Vec::new(),
        }
    }

    /// The same problem, noting that the check also read the field at `path` (a full path).
    pub fn also(mut self, path: impl Into<String>) -> Self {
        self.related.push(path.into());
        self
    }

    /// The same problem seen from the parent: `interval` under `sync` becomes `sync.interval`.
    pub fn under(self, parent: &str) -> Self {
        let path = if self.path.is_empty() {
            parent.to_string()
        } else if self.path.starts_with('[') {
            format!("{parent}{}", self.path)
        } else {
            format!("{parent}.{}", self.path)
        };
        Self { path, ..self }
    }

    /// The top-level section of this path and of every related one.
    pub fn sections(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str())
            .chain(self.related.iter().map(String::as_str))
            .map(|path| path.split(['.', '[']).next().unwrap_or(path))
    }
}

/// Semantic checks of a config value; the default finds nothing.
pub trait Validate {
    /// Every problem, with paths relative to `self`.
    fn validate(&self) -> Vec<FieldError> {
        Vec::new()
    }
}

/// Collect `child.validate()` into `problems`, prefixed with `parent`.
pub fn validate_under<V: Validate + ?Sized>(
    problems: &mut Vec<FieldError>,
    parent: &str,
    child: &V,
) {
    extend_under(problems, parent, child.validate());
}

/// Add `children` (paths relative to `parent`, e.g. from an adapter) to `problems`, prefixed with `parent`.
pub fn extend_under(problems: &mut Vec<FieldError>, parent: &str, children: Vec<FieldError>) {
    problems.extend(children.into_iter().map(|problem| problem.under(parent)));
}

/// Adapter for a `problems()` returning `(path, message)` pairs: paths relative to `section`, or already
/// starting with `section.` (both shapes exist), become paths relative to the section.
pub fn pairs(section: &str, problems: Vec<(String, String)>) -> Vec<FieldError> {
    problems
        .into_iter()
        .map(|(path, message)| FieldError::new(relative(section, &path), message))
        .collect()
}

/// Adapter for a `problems()` returning sentences: `section.key: message` (or `key: message`) is split at the
/// first `: `; a sentence opening with a field name (`failure_threshold must be at least 1`) is placed at that
/// field; anything else belongs to the section itself.
pub fn sentences(section: &str, problems: Vec<String>) -> Vec<FieldError> {
    problems
        .into_iter()
        .map(|sentence| {
            if let Some((path, message)) = sentence.split_once(": ") {
                if is_path(path) {
                    return FieldError::new(relative(section, path), message);
                }
            }
            let first = sentence.split_whitespace().next().unwrap_or_default();
            if first.contains('_') && is_path(first) {
                return FieldError::new(relative(section, first), sentence.as_str());
            }
            FieldError::new("", sentence)
        })
        .collect()
}

/// `path` without a leading `section.` (or `section` alone → the section itself).
fn relative(section: &str, path: &str) -> String {
    if path == section {
        return String::new();
    }
    let path = path.strip_prefix('.').unwrap_or(path);
    path.strip_prefix(section)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(path)
        .to_string()
}

/// Looks like a field path: `a.b_c[0].d`, no spaces.
fn is_path(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'[' | b']' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_prefixes_fields_indices_and_empty_paths() {
        assert_eq!(
            FieldError::new("interval", "x").under("sync").path,
            "sync.interval"
        );
        assert_eq!(
            FieldError::new("[2].name", "x").under("nodes").path,
            "nodes[2].name"
        );
        assert_eq!(FieldError::new("", "x").under("sync").path, "sync");
    }

    #[test]
    fn validate_under_collects_all_child_problems() {
        struct Two;
        impl Validate for Two {
            fn validate(&self) -> Vec<FieldError> {
                vec![FieldError::new("a", "bad"), FieldError::new("b", "worse")]
            }
        }
        let mut problems = vec![];
        validate_under(&mut problems, "s", &Two);
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["s.a", "s.b"]);
    }

    #[test]
    fn sections_lists_the_path_and_related_sections() {
        let error = FieldError::new("data_server.bind", "x").also("api.bind");
        assert_eq!(error.sections().collect::<Vec<_>>(), ["data_server", "api"]);
        let indexed = FieldError::new("cluster.nodes[0].name", "x");
        assert_eq!(indexed.sections().collect::<Vec<_>>(), ["cluster"]);
    }

    #[test]
    fn pairs_accept_relative_and_prefixed_paths() {
        let adapted = pairs(
            "scheduler",
            vec![
                ("interval".into(), "a".into()),
                ("scheduler.jobs.command".into(), "b".into()),
                ("scheduler".into(), "c".into()),
                (".max_attempts".into(), "d".into()),
            ],
        );
        let paths: Vec<_> = adapted.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["interval", "jobs.command", "", "max_attempts"]);
        assert_eq!(adapted[1].message, "b");
    }

    #[test]
    fn sentences_find_the_field_in_each_shape() {
        let adapted = sentences(
            "data_server",
            vec![
                "data_server.bind: \"x\" is not an address".into(),
                "workers: must be at least 1".into(),
                "failure_threshold must be at least 1".into(),
                "at least one thing is needed".into(),
                "data_server.categories.games: \"../x\" must not leave the root".into(),
            ],
        );
        let got: Vec<_> = adapted
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("bind", "\"x\" is not an address"),
                ("workers", "must be at least 1"),
                ("failure_threshold", "failure_threshold must be at least 1"),
                ("", "at least one thing is needed"),
                ("categories.games", "\"../x\" must not leave the root"),
            ]
        );
    }
}
