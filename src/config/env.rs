//! The one parser for `COORDINATOR_<SECTION>__<KEY>[__<SUBKEY>...]` overrides, applied on top of the file.
//!
//! Keys are case-insensitive and map to snake_case (`COORDINATOR_SYNC__INTERVAL` → `sync.interval`; a number
//! segment indexes a list: `COORDINATOR_CLUSTER__NODES__0__NAME`). The text is coerced by the type of the value
//! already at that path: booleans accept true/false/1/0/yes/no/on/off, numbers parse as numbers, strings (also
//! durations and sizes) stay text, lists and mappings use YAML flow syntax (`[a, b]`, `{k: v}`). Each override is
//! checked by deserializing the whole config with it; an unknown path or a value that does not fit becomes a
//! `ConfigWarning` naming the variable, the value and the value kept, and only that override is dropped.
//! The environment is passed in, so tests never touch the process env.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_yaml::Value;

use super::report::ConfigWarning;
use super::yaml::{bare_message, friendly};

/// Separator between path segments in a variable name.
const SEPARATOR: &str = "__";

/// The result of applying overrides.
#[derive(Debug)]
pub struct Applied<T> {
    /// The config with every accepted override.
    pub config: T,
    /// One per dropped override.
    pub warnings: Vec<ConfigWarning>,
    /// (field path, variable) of each accepted override, in the order applied.
    pub applied: Vec<(String, String)>,
}

/// Apply every `prefix`-named variable of `env` to `config`. Variables are applied in name order so the outcome
/// does not depend on the environment's order. A variable without `__` is not an override (it may be a CLI flag
/// such as `COORDINATOR_CONFIG`) unless it starts with a section name, in which case it is warned about.
pub fn apply_env<T, I>(config: T, env: I, prefix: &str) -> Applied<T>
where
    T: Serialize + DeserializeOwned,
    I: IntoIterator<Item = (String, String)>,
{
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| {
            name.len() > prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
        })
        .collect();
    vars.sort();
    let mut outcome = Applied {
        config,
        warnings: Vec::new(),
        applied: Vec::new(),
    };
    if vars.is_empty() {
        return outcome;
    }
    let mut tree = match serde_yaml::to_value(&outcome.config) {
        Ok(tree) => tree,
        Err(error) => {
            for (var, value) in vars {
                let reason = format!("the config cannot be represented for overrides ({error})");
                outcome.warnings.push(ConfigWarning {
                    var,
                    value,
                    path: None,
                    kept: None,
                    reason,
                });
            }
            return outcome;
        }
    };
    let sections: Vec<String> = keys_of(&tree);
    let mut changed = false;
    for (var, value) in vars {
        let rest = var[prefix.len()..].to_ascii_lowercase();
        if !rest.contains(SEPARATOR) {
            if let Some(section) = sections.iter().find(|s| rest.starts_with(&format!("{s}_"))) {
                let key = rest[section.len() + 1..].to_ascii_uppercase();
                let reason = format!(
                    "not an override: put `__` between section and key, e.g. {prefix}{}__{key}",
                    section.to_ascii_uppercase()
                );
                outcome.warnings.push(ConfigWarning {
                    var,
                    value,
                    path: None,
                    kept: None,
                    reason,
                });
            }
            continue;
        }
        let segments: Vec<&str> = rest.split(SEPARATOR).collect();
        let path = display_path(&segments);
        let current = match lookup(&tree, &segments) {
            Ok(current) => current.clone(),
            Err(reason) => {
                outcome.warnings.push(ConfigWarning {
                    var,
                    value,
                    path: None,
                    kept: None,
                    reason,
                });
                continue;
            }
        };
        let kept = Some(render(&current));
        let dropped = |reason: String| ConfigWarning {
            var: var.clone(),
            value: value.clone(),
            path: Some(path.clone()),
            kept: kept.clone(),
            reason,
        };
        let new_value = match coerce(&value, &current) {
            Ok(new_value) => new_value,
            Err(reason) => {
                outcome.warnings.push(dropped(reason));
                continue;
            }
        };
        let mut candidate = tree.clone();
        if let Some(slot) = lookup_mut(&mut candidate, &segments) {
            *slot = new_value;
        }
        match serde_path_to_error::deserialize::<_, T>(candidate.clone()) {
            Ok(_) => {
                tree = candidate;
                changed = true;
                outcome.applied.push((path.clone(), var.clone()));
            }
            Err(error) => {
                let at = error.path().to_string();
                outcome
                    .warnings
                    .push(dropped(friendly(&bare_message(error.inner(), &at))));
            }
        }
    }
    if changed {
        match serde_yaml::from_value(tree) {
            Ok(config) => outcome.config = config,
            Err(error) => {
                // Unreachable in practice: the last accepted candidate deserialized. Keep the file's config.
                let reason = format!("overrides could not be combined ({error}); none applied");
                let applied = std::mem::take(&mut outcome.applied);
                outcome
                    .warnings
                    .extend(applied.into_iter().map(|(path, var)| ConfigWarning {
                        var,
                        value: String::new(),
                        path: Some(path),
                        kept: None,
                        reason: reason.clone(),
                    }));
            }
        }
    }
    outcome
}

/// `["cluster", "nodes", "0", "name"]` → `cluster.nodes[0].name`.
fn display_path(segments: &[&str]) -> String {
    let mut path = String::new();
    for segment in segments {
        if segment.parse::<usize>().is_ok() && !path.is_empty() {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(segment);
        }
    }
    path
}

fn keys_of(value: &Value) -> Vec<String> {
    match value {
        Value::Mapping(map) => map
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The value at `segments`, or why there is none (naming the keys that do exist there).
fn lookup<'v>(tree: &'v Value, segments: &[&str]) -> Result<&'v Value, String> {
    let mut current = tree;
    for (depth, segment) in segments.iter().enumerate() {
        let here = display_path(&segments[..depth]);
        let full = display_path(segments);
        current = match current {
            Value::Mapping(map) => match map.get(*segment) {
                Some(next) => next,
                None => {
                    let known = keys_of(current).join(", ");
                    let place = if here.is_empty() {
                        "sections".to_string()
                    } else {
                        format!("{here} has")
                    };
                    return Err(format!("no config key `{full}` ({place}: {known})"));
                }
            },
            Value::Sequence(items) => {
                match segment.parse::<usize>().ok().and_then(|i| items.get(i)) {
                    Some(next) => next,
                    None => {
                        return Err(format!(
                        "no config key `{full}` ({here} is a list of {} items; index it from 0)",
                        items.len()
                    ))
                    }
                }
            }
            _ => {
                return Err(format!(
                    "no config key `{full}` ({here} is a single value, not a section)"
                ))
            }
        };
    }
    Ok(current)
}

fn lookup_mut<'v>(tree: &'v mut Value, segments: &[&str]) -> Option<&'v mut Value> {
    let mut current = tree;
    for segment in segments {
        current = match current {
            Value::Mapping(map) => map.get_mut(*segment)?,
            Value::Sequence(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Parse a boolean word: true/false/1/0/yes/no/on/off, any case.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Turn the variable's text into a value of the same kind as `current`.
fn coerce(text: &str, current: &Value) -> Result<Value, String> {
    let trimmed = text.trim();
    match current {
        Value::Bool(_) => parse_bool(text).map(Value::Bool).ok_or_else(|| {
            "invalid boolean (expected true/false, 1/0, yes/no or on/off)".to_string()
        }),
        Value::Number(number) if number.is_f64() => trimmed
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|n| Value::Number(n.into()))
            .ok_or_else(|| "invalid number (expected a number like 0.5)".to_string()),
        Value::Number(_) => {
            if let Ok(n) = trimmed.parse::<u64>() {
                Ok(Value::Number(n.into()))
            } else if let Ok(n) = trimmed.parse::<i64>() {
                Ok(Value::Number(n.into()))
            } else {
                Err("invalid number (expected a whole number like 10)".to_string())
            }
        }
        Value::String(_) => Ok(Value::String(text.to_string())),
        Value::Sequence(_) => match serde_yaml::from_str::<Value>(text) {
            Ok(list @ Value::Sequence(_)) => Ok(list),
            _ => Err("invalid list (expected YAML flow syntax like [a, b])".to_string()),
        },
        Value::Mapping(_) => match serde_yaml::from_str::<Value>(text) {
            Ok(map @ Value::Mapping(_)) => Ok(map),
            _ => Err("invalid mapping (expected YAML flow syntax like {key: value})".to_string()),
        },
        Value::Null | Value::Tagged(_) => {
            Ok(serde_yaml::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
        }
    }
}

/// A value as a user would write it: scalars bare, lists and mappings in flow (JSON) syntax.
pub fn render(value: &Value) -> String {
    match value {
        Value::Null => "null (unset)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_words_in_any_case() {
        let cases = [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("1", Some(true)),
            ("yes", Some(true)),
            ("On", Some(true)),
            ("false", Some(false)),
            ("0", Some(false)),
            ("No", Some(false)),
            ("OFF", Some(false)),
            (" yes ", Some(true)),
            ("y", None),
            ("2", None),
            ("", None),
            ("enabled", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_bool(text), expected, "{text:?}");
        }
    }

    #[test]
    fn coercion_follows_the_current_type() {
        let int = Value::Number(5.into());
        let float = Value::Number(0.5.into());
        assert_eq!(coerce("12", &int), Ok(Value::Number(12.into())));
        assert_eq!(coerce("-3", &int), Ok(Value::Number((-3).into())));
        assert!(coerce("1.5", &int).is_err());
        assert!(coerce("abc", &int).is_err());
        assert_eq!(coerce("0.25", &float), Ok(Value::Number(0.25.into())));
        assert!(coerce("NaN", &float).is_err());
        assert_eq!(
            coerce("30s", &Value::String("1m".into())),
            Ok(Value::String("30s".into()))
        );
        assert_eq!(
            coerce("123", &Value::String("x".into())),
            Ok(Value::String("123".into())),
            "strings stay text"
        );
        let list = coerce("[a, b]", &Value::Sequence(vec![])).unwrap();
        assert_eq!(list, serde_yaml::from_str::<Value>("[a, b]").unwrap());
        assert!(coerce("a, b", &Value::Sequence(vec![])).is_err());
        assert!(coerce("{a: 1}", &Value::Mapping(Default::default()))
            .unwrap()
            .is_mapping());
        assert!(coerce("[1]", &Value::Mapping(Default::default())).is_err());
        assert_eq!(coerce("7", &Value::Null), Ok(Value::Number(7.into())));
    }

    #[test]
    fn paths_render_list_indices() {
        assert_eq!(
            display_path(&["cluster", "nodes", "0", "name"]),
            "cluster.nodes[0].name"
        );
        assert_eq!(display_path(&["sync", "interval"]), "sync.interval");
    }
}
