//! The generated part of docs/configuration.md: every key of the config with its default and env var, read from
//! the real defaults (`Config::default()`), so the reference cannot drift from the code (a test compares them).

use serde_yaml::Value;

use super::sections::Config;

/// Markdown tables, one per top-level section: key, default, env var.
pub fn markdown() -> String {
    let value = serde_yaml::to_value(Config::default()).unwrap_or(Value::Null);
    let mut out = String::new();
    if let Value::Mapping(sections) = value {
        for (section, body) in sections {
            let Some(section) = section.as_str() else {
                continue;
            };
            out.push_str(&format!(
                "\n### `{section}`\n\n| key | default | env var |\n|---|---|---|\n"
            ));
            let mut rows = Vec::new();
            walk(section, &body, &mut rows);
            for (path, default) in rows {
                let env = format!(
                    "COORDINATOR_{}",
                    path.replacen('.', "__", 1)
                        .replace('.', "__")
                        .to_ascii_uppercase()
                );
                out.push_str(&format!("| `{path}` | `{default}` | `{env}` |\n"));
            }
        }
    }
    out
}

fn walk(path: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            for (key, child) in map {
                let key = key
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{key:?}"));
                walk(&format!("{path}.{key}"), child, rows);
            }
        }
        other => {
            let text = serde_json::to_string(other).unwrap_or_default();
            let text = text.trim_matches('"').replace('|', "\\|");
            rows.push((
                path.to_string(),
                if text == "null" {
                    "(none)".to_string()
                } else {
                    text
                },
            ));
        }
    }
}
