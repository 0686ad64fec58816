//! The `Validate` hook: semantic checks (ranges, orderings) a config section adds on top of its types.
//!
//! Pure: no I/O. Each check returns every problem it finds, with a field path relative to the value validated;
//! a parent prefixes its section name with [`FieldError::under`], and the loader locates each in the file.

/// A semantic problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path relative to the validated value (`interval`, `nodes[0].name`).
    pub path: String,
    /// What is wrong and what is expected (`must be at least 1s`).
    pub message: String,
}

impl FieldError {
    /// A problem with the field at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same problem seen from the parent: `interval` under `sync` becomes `sync.interval`.
    #[allow(dead_code)] // API for sections' own Validate impls and tests
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
}

/// Semantic checks of a config value; the default finds nothing.
pub trait Validate {
    /// Every problem, with paths relative to `self`.
    fn validate(&self) -> Vec<FieldError> {
        Vec::new()
    }
}

/// Collect `child.validate()` into `problems`, prefixed with `parent`.
#[allow(dead_code)] // API for sections' own Validate impls and tests
pub fn validate_under<V: Validate + ?Sized>(
    problems: &mut Vec<FieldError>,
    parent: &str,
    child: &V,
) {
    problems.extend(
        child
            .validate()
            .into_iter()
            .map(|problem| problem.under(parent)),
    );
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
}
