//! Text for people: aligned tables, humane durations and ages, and the `coordinator status` report.
//!
//! Pure functions from the API's JSON to text, so the CLI's output is unit-tested without a daemon. Scripts use
//! `--json`, which prints the API's JSON as it is; nothing here is parsed back.

use std::fmt::Write as _;

use serde_json::Value;

/// A duration in seconds as a person reads it: `850 ms`, `12.5 s`, `3 min 05 s`, `2 h 10 min`, `3 d 04 h`.
pub fn humane_seconds(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_string();
    }
    if seconds < 1.0 {
        return format!("{} ms", (seconds * 1000.0).round() as u64);
    }
    if seconds < 60.0 {
        let rounded = (seconds * 10.0).round() / 10.0;
        return if rounded.fract() == 0.0 {
            format!("{} s", rounded as u64)
        } else {
            format!("{rounded:.1} s")
        };
    }
    let whole = seconds.round() as u64;
    let (d, h, m, s) = (
        whole / 86_400,
        whole / 3600 % 24,
        whole / 60 % 60,
        whole % 60,
    );
    if d > 0 {
        format!("{d} d {h:02} h")
    } else if h > 0 {
        format!("{h} h {m:02} min")
    } else {
        format!("{m} min {s:02} s")
    }
}

/// An age ("how long ago") in seconds: the humane duration followed by "ago".
pub fn humane_age(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_string();
    }
    format!("{} ago", humane_seconds(seconds))
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `256.0 MiB`.
pub fn humane_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Columns aligned to their widest cell, two spaces apart; numbers (cells that parse as one) right-aligned.
/// The last column is not padded, so lines carry no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..columns)
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i)
                        .is_some_and(|c| c == "-" || c.parse::<f64>().is_ok())
                })
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate().take(columns) {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if numeric[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if i + 1 < columns {
                    text.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// A JSON value as a table cell: strings bare, null as `-`, numbers as written.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                let rounded = (f * 100.0).round() / 100.0;
                format!("{rounded}")
            }
            _ => n.to_string(),
        },
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) if !items.iter().any(|v| v.is_object() || v.is_array()) => {
            items.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        Value::Object(map) if !map.values().any(|v| v.is_object() || v.is_array()) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// The supervision tree as a table: one row per actor, indented by depth, with its counters.
pub fn tree_table(tree: &Value, actors: &Value) -> String {
    let mut rows = Vec::new();
    tree_rows(tree, actors, "", true, true, &mut rows);
    table(
        &[
            "actor",
            "kind",
            "state",
            "restarts",
            "handled",
            "failed",
            "mailbox",
            "last failure",
        ],
        &rows,
    )
}

fn tree_rows(
    node: &Value,
    actors: &Value,
    prefix: &str,
    last: bool,
    root: bool,
    rows: &mut Vec<Vec<String>>,
) {
    let name = node["name"].as_str().unwrap_or("?");
    let branch = match (root, last) {
        (true, _) => "",
        (false, true) => "└─ ",
        (false, false) => "├─ ",
    };
    let stats = actors.get(name);
    let stat = |key: &str| {
        stats
            .and_then(|s| s.get(key))
            .map(cell)
            .unwrap_or_else(|| "-".to_string())
    };
    let failure = node["last_failure"]
        .as_object()
        .map(|f| {
            format!(
                "{}: {}",
                f.get("at").and_then(Value::as_str).unwrap_or("?"),
                f.get("reason").and_then(Value::as_str).unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "-".to_string());
    rows.push(vec![
        format!("{prefix}{branch}{name}"),
        cell(&node["kind"]),
        cell(&node["state"]),
        cell(&node["restarts"]),
        stat("handled"),
        stat("failed"),
        stat("mailbox"),
        failure,
    ]);
    let child_prefix = if root {
        String::new()
    } else {
        format!("{prefix}{}", if last { "   " } else { "│  " })
    };
    if let Some(children) = node["children"].as_array() {
        for (i, child) in children.iter().enumerate() {
            tree_rows(
                child,
                actors,
                &child_prefix,
                i + 1 == children.len(),
                false,
                rows,
            );
        }
    }
}

/// A flat JSON object as `key  value` lines (nested objects one level deep as `key.sub`); durations and ages
/// named `*_s`/`*_seconds`/`*_ms` are made humane.
pub fn key_values(value: &Value) -> String {
    let mut rows = Vec::new();
    flatten("", value, &mut rows);
    table(&["field", "value"], &rows)
        .lines()
        .skip(1)
        .fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "{line}");
            out
        })
}

fn flatten(prefix: &str, value: &Value, rows: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if v.is_object() && prefix.is_empty() {
                    flatten(&name, v, rows);
                } else {
                    rows.push(vec![name.clone(), humane_field(key, v)]);
                }
            }
        }
        other => rows.push(vec![prefix.to_string(), cell(other)]),
    }
}

/// A field's value, humane when its name says it is a duration.
pub fn humane_field(key: &str, value: &Value) -> String {
    // Durations the API writes as text (`15s 278ms 131us`) read as the numbers do.
    if let Some(text) = value.as_str() {
        return match humantime::parse_duration(text) {
            Ok(d) if text.chars().any(|c| c.is_ascii_digit()) => {
                if key.ends_with("ago") {
                    humane_age(d.as_secs_f64())
                } else {
                    humane_seconds(d.as_secs_f64())
                }
            }
            _ => cell(value),
        };
    }
    let Some(n) = value.as_f64() else {
        return cell(value);
    };
    if key.ends_with("_ago_s") || key.ends_with("_age_s") {
        humane_age(n)
    } else if key.ends_with("_s") || key.ends_with("_seconds") {
        humane_seconds(n)
    } else if key.ends_with("_ms") {
        humane_seconds(n / 1000.0)
    } else if key.ends_with("bytes") {
        humane_bytes(n as u64)
    } else {
        cell(value)
    }
}

/// An array of flat objects as a table, columns in the first object's key order.
pub fn objects_table(items: &[Value]) -> String {
    let Some(first) = items.first().and_then(Value::as_object) else {
        return "(none)\n".to_string();
    };
    let headers: Vec<&str> = first.keys().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| headers.iter().map(|h| humane_field(h, &item[*h])).collect())
        .collect();
    table(&headers, &rows)
}

/// The `coordinator status` report: the node line, the tree, then each section the daemon returned.
pub fn status_report(status: &Value, sections: &[(&str, Value)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {}   up {}",
        status["node"].as_str().unwrap_or("?"),
        match status["uptime_s"].as_f64() {
            Some(s) if s < 1.0 => "under 1 s".to_string(),
            Some(s) => humane_seconds(s),
            None => "-".to_string(),
        }
    );
    out.push('\n');
    out.push_str(&tree_table(&status["tree"], &status["actors"]));
    if let Some(ds) = status.get("data_server").filter(|v| !v.is_null()) {
        out.push_str("\ndata server\n");
        out.push_str(&indent(&key_values(ds)));
    }
    // The other sections of /status, each under its own heading.
    for name in ["resources", "dead_letters", "scheduler", "sync"] {
        if let Some(value) = status.get(name).filter(|v| !v.is_null()) {
            let _ = writeln!(out, "\n{}", name.replace('_', " "));
            out.push_str(&indent(&section(value)));
        }
    }
    for (name, value) in sections {
        let _ = writeln!(out, "\n{name}");
        out.push_str(&indent(&section(value)));
    }
    out
}

/// One section: arrays of objects and maps of objects become tables, other objects nested sections, the rest
/// `key  value` lines.
fn section(value: &Value) -> String {
    match value {
        Value::Array(items) => objects_table(items),
        Value::Object(map) => {
            let is_table = |v: &Value| {
                v.as_array()
                    .is_some_and(|a| a.first().is_some_and(Value::is_object))
                    || v.as_object()
                        .is_some_and(|o| !o.is_empty() && o.values().all(Value::is_object))
            };
            let is_nested =
                |v: &Value| v.as_object().is_some_and(|o| !o.is_empty()) && !is_table(v);
            let scalars: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(_, v)| !is_table(v) && !is_nested(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut out = String::new();
            if !scalars.is_empty() {
                out.push_str(&key_values(&Value::Object(scalars)));
            }
            for (name, nested) in map.iter().filter(|(_, v)| is_nested(v)) {
                let _ = writeln!(out, "{name}:");
                out.push_str(&indent(&section(nested)));
            }
            for (name, list) in map.iter().filter(|(_, v)| is_table(v)) {
                let _ = writeln!(out, "{name}:");
                let table = match list {
                    Value::Array(items) => objects_table(items),
                    Value::Object(by_name) => {
                        let items: Vec<Value> = by_name
                            .iter()
                            .map(|(key, v)| {
                                let mut row = serde_json::Map::new();
                                row.insert("name".to_string(), Value::String(key.clone()));
                                if let Value::Object(fields) = v {
                                    for (k, f) in fields {
                                        row.insert(k.clone(), f.clone());
                                    }
                                }
                                Value::Object(row)
                            })
                            .collect();
                        objects_table(&items)
                    }
                    _ => String::new(),
                };
                out.push_str(&indent(&table));
            }
            out
        }
        other => format!("{}\n", cell(other)),
    }
}

fn indent(text: &str) -> String {
    text.lines().fold(String::new(), |mut out, line| {
        let _ = writeln!(out, "  {line}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(humane_seconds(0.011_764), "12 ms");
        assert_eq!(humane_seconds(0.0), "0 ms");
        assert_eq!(humane_seconds(7.821), "7.8 s");
        assert_eq!(humane_seconds(12.0), "12 s");
        assert_eq!(humane_seconds(185.0), "3 min 05 s");
        assert_eq!(humane_seconds(7800.0), "2 h 10 min");
        assert_eq!(humane_seconds(273_600.0), "3 d 04 h");
        assert_eq!(humane_seconds(-1.0), "-");
        assert_eq!(humane_seconds(f64::NAN), "-");
        assert_eq!(humane_age(65.0), "1 min 05 s ago");
        assert_eq!(
            humane_field("duration", &json!("15s 278ms 131us 54ns")),
            "15.3 s"
        );
        assert_eq!(
            humane_field("finished_ago", &json!("4s 693ms")),
            "4.7 s ago"
        );
        assert_eq!(humane_field("state", &json!("running")), "running");
    }

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(humane_bytes(512), "512 B");
        assert_eq!(humane_bytes(1536), "1.5 KiB");
        assert_eq!(humane_bytes(256 * 1024 * 1024), "256.0 MiB");
    }

    #[test]
    fn tables_align_and_right_align_numbers() {
        let text = table(
            &["name", "games", "state"],
            &[
                vec!["local".into(), "500".into(), "up".into()],
                vec!["gh200-1".into(), "50".into(), "backing_off".into()],
            ],
        );
        assert_eq!(
            text,
            "name     games  state\nlocal      500  up\ngh200-1     50  backing_off\n"
        );
    }

    #[test]
    fn the_tree_is_one_row_per_actor_with_its_counters() {
        let tree = json!({"name": "root", "kind": "supervisor", "state": "running", "restarts": 0,
            "last_failure": null, "children": [
              {"name": "dead_letters", "kind": "worker", "state": "running", "restarts": 0, "last_failure": null, "children": []},
              {"name": "sync", "kind": "placeholder", "state": "backing_off", "restarts": 2,
               "last_failure": {"at": "2026-12-01T10:00:00Z", "reason": "drill"}, "children": []}]});
        let actors = json!({"dead_letters": {"handled": 3, "failed": 0, "mailbox": 0},
            "sync": {"handled": 1, "failed": 2, "mailbox": 5}});
        let text = tree_table(&tree, &actors);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("actor"));
        assert!(lines[2].starts_with("├─ dead_letters"), "{text}");
        assert!(lines[3].starts_with("└─ sync"), "{text}");
        assert!(lines[3].contains("backing_off"));
        assert!(lines[3].ends_with("2026-12-01T10:00:00Z: drill"), "{text}");
    }

    #[test]
    fn the_report_has_every_section_and_no_raw_json() {
        let status = json!({"node": "local", "uptime_s": 3725,
            "tree": {"name": "root", "kind": "supervisor", "state": "running", "restarts": 0, "children": []},
            "actors": {},
            "data_server": {"state": "up", "pid": 42, "circuit": {"state": "closed"}}});
        let jobs = json!({"nodes": {"local": {"target": 2, "running": 1}},
            "history": [{"id": "j1", "games": 50, "duration_s": 0.5, "finished_ago_s": 7.8}]});
        let text = status_report(&status, &[("jobs", jobs)]);
        assert!(text.starts_with("node local   up 1 h 02 min\n"), "{text}");
        assert!(text.contains("data server\n"), "{text}");
        assert!(text.contains("circuit.state"), "{text}");
        assert!(text.contains("\njobs\n"), "{text}");
        assert!(text.contains("500 ms"), "{text}");
        assert!(text.contains("7.8 s ago"), "{text}");
        assert!(!text.contains('{'), "no raw JSON objects: {text}");
        let nested = json!({"plan_progress": {"plan": 1, "nodes": {"local": {"planned": 500, "played": 100}}}});
        let text = status_report(&status, &[("jobs", nested)]);
        assert!(text.contains("plan_progress:\n"), "{text}");
        assert!(!text.contains('{'), "no raw JSON objects: {text}");
    }

    #[test]
    fn cells_are_plain() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("x")), "x");
        assert_eq!(cell(&json!(true)), "yes");
        assert_eq!(cell(&json!(683.4000000000001)), "683.4");
        assert_eq!(cell(&json!(7)), "7");
        assert_eq!(cell(&json!([])), "-");
        assert_eq!(cell(&json!([1.41, 1.17])), "1.41, 1.17");
        assert_eq!(
            cell(&json!({"status": "succeeded", "games_written": 50})),
            "games_written=50 status=succeeded"
        );
    }
}
