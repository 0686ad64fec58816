//! `coordinator plan --state FILE`: the scheduler's dry run. Reads a cluster-state JSON (`-` = stdin), prints
//! priorities, budgets and the allocation as JSON. Bad input exits 2 with the JSON path of the problem.

use std::io::Read;
use std::path::Path;

use actors::scheduler::config::SchedulerPolicyConfig;
use actors::scheduler::plan::plan_from_json;
use anyhow::{Context, Result};

use crate::client::emit;
use crate::config;
use crate::failure::BadInput;

/// JSON Schema of the plan state (`coordinator plan --schema`), written from `actors::scheduler::plan::PlanState`;
/// a test checks that it names exactly the type's fields and that the documented example validates against it.
pub const SCHEMA: &str = include_str!("plan_state.schema.json");

pub fn run(state: &Path, config_path: Option<&Path>) -> Result<()> {
    let policy = match config_path {
        None => SchedulerPolicyConfig::default(),
        Some(path) => match config::load_config(path, config::process_env(), None) {
            Ok(loaded) => loaded.config.scheduler.policy,
            Err(errors) => return Err(BadInput::report(errors)),
        },
    };
    let text = if state == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the plan state from stdin")?;
        text
    } else {
        std::fs::read_to_string(state)
            .map_err(|e| BadInput::flag(&format!("--state {}", state.display()), e))?
    };
    let output = plan_from_json(&text, &policy)
        .map_err(|e| BadInput::report(format!("error: plan state {}: {e}", state.display())))?;
    let json = serde_json::to_string_pretty(&output).context("cannot print the plan")?;
    emit(&format!("{json}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::scheduler::plan::{PlanConfigState, PlanNodeState, PlanState};
    use serde_json::Value;

    fn schema() -> Value {
        serde_json::from_str(SCHEMA).expect("the schema is JSON")
    }

    fn keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// A state with one config and one node, every field present (options serialize as null).
    fn full_state() -> Value {
        let state: PlanState = serde_json::from_str(
            r#"{"configs": [{"config": "hex8_2p"}], "nodes": [{"name": "n"}]}"#,
        )
        .unwrap();
        let _: (&PlanConfigState, &PlanNodeState) = (&state.configs[0], &state.nodes[0]);
        serde_json::to_value(&state).unwrap()
    }

    #[test]
    fn the_schema_names_exactly_the_fields_of_the_state_types() {
        let schema = schema();
        let state = full_state();
        let props = &schema["properties"];
        assert_eq!(keys(props), keys(&state), "top level");
        assert_eq!(
            keys(&props["configs"]["items"]["properties"]),
            keys(&state["configs"][0]),
            "configs[]"
        );
        assert_eq!(
            keys(&props["nodes"]["items"]["properties"]),
            keys(&state["nodes"][0]),
            "nodes[]"
        );
    }

    #[test]
    fn the_schema_intensities_are_the_parsers() {
        let names: Vec<Value> = actors::scheduler::budget::INTENSITY_NAMES
            .split(", ")
            .map(|n| Value::String(n.to_string()))
            .collect();
        assert_eq!(
            schema()["properties"]["configs"]["items"]["properties"]["intensity"]["enum"],
            Value::Array(names)
        );
    }

    /// The subset of JSON Schema the file uses: type, enum, required, properties, additionalProperties, items,
    /// minimum, maximum (pattern is checked by the real parser below).
    fn check(schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let type_name = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if let Some(allowed) = schema.get("type") {
            let allowed: Vec<&str> = match allowed {
                Value::String(one) => vec![one.as_str()],
                many => many
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect(),
            };
            let fits = allowed.contains(&type_name)
                || (type_name == "integer" && allowed.contains(&"number"));
            if !fits {
                problems.push(format!("{at}: {type_name} is not {allowed:?}"));
            }
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if !options.contains(value) {
                problems.push(format!("{at}: {value} is not one of {options:?}"));
            }
        }
        if let Some(n) = value.as_f64() {
            if schema
                .get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|min| n < min)
            {
                problems.push(format!("{at}: {n} is below the minimum"));
            }
            if schema
                .get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|max| n > max)
            {
                problems.push(format!("{at}: {n} is above the maximum"));
            }
        }
        if let Value::Object(map) = value {
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !map.contains_key(required.as_str().unwrap()) {
                    problems.push(format!("{at}: {required} is missing"));
                }
            }
            for (key, child) in map {
                match schema.get("properties").and_then(|p| p.get(key)) {
                    Some(child_schema) => {
                        check(child_schema, child, &format!("{at}.{key}"), problems)
                    }
                    None => problems.push(format!("{at}: {key} is not in the schema")),
                }
            }
        }
        if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
            for (i, item) in items.iter().enumerate() {
                check(item_schema, item, &format!("{at}[{i}]"), problems);
            }
        }
    }

    #[test]
    fn the_documented_example_validates_against_the_schema_and_plans() {
        let runbook = include_str!("../docs/operations.md");
        let example = runbook
            .split("## Plan state JSON")
            .nth(1)
            .and_then(|section| section.split("```json\n").nth(1))
            .and_then(|block| block.split("```").next())
            .expect("docs/operations.md has a Plan state JSON section with a json example");
        let value: Value = serde_json::from_str(example).expect("the example is JSON");
        let mut problems = Vec::new();
        check(&schema(), &value, "$", &mut problems);
        assert_eq!(problems, Vec::<String>::new());
        let plan =
            actors::scheduler::plan::plan_from_json(example, &SchedulerPolicyConfig::default());
        assert!(plan.is_ok(), "{plan:?}");
        let mut problems = Vec::new();
        check(&schema(), &full_state(), "$", &mut problems);
        assert_eq!(
            problems,
            Vec::<String>::new(),
            "defaults of the types fit the schema"
        );
    }

    #[test]
    fn the_checker_finds_what_the_schema_forbids() {
        let bad = serde_json::json!({"cluster_health": 2, "configs": [{"game_count": -1, "intensity": "loud"}], "extra": 1});
        let mut problems = Vec::new();
        check(&schema(), &bad, "$", &mut problems);
        assert_eq!(problems.len(), 5, "{problems:?}");
    }
}
