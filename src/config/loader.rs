//! Loading a config file: YAML text → typed config `T` with every error reported, env overrides applied, and
//! semantic validation run.
//!
//! How every error is found, not only the first: the top-level keys are checked against the sections `T` knows
//! (the keys of `T::default()` serialized); then the text is deserialized once per section present, through a
//! deserializer that shows only that section ([`SectionOnly`]), so each section reports its own first error with
//! serde_yaml's line and column and serde_path_to_error's field path; a broken section is read again one key at a
//! time, so each of its keys reports its own first error. Then the semantic checks run on the sections that
//! parsed. Malformed YAML is one error. `T` must be a
//! struct with `#[serde(default)]` so the sections hidden in each pass take their defaults, and every field must
//! serialize (no `skip_serializing_if` at the top level): a section missing from `T::default()` serialized is
//! reported as unknown, and a key missing there cannot be overridden from the env.
//! When the file has errors, only those are returned; env warnings come with a config that loaded.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_yaml::Value;

use super::env::apply_env;
use super::report::{ConfigError, ConfigErrors, ConfigWarning};
use super::validate::Validate;
use super::yaml::{bare_message, friendly, locate, parse_path, SectionOnly, Segment};

/// Prefix of env overrides: `COORDINATOR_<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "COORDINATOR_";

/// A config that loaded: the value, the env overrides that were dropped, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The resolved config: file, then defaults for what the file omits, then env overrides.
    pub config: T,
    /// Env overrides that were not applied, one each.
    pub warnings: Vec<ConfigWarning>,
    /// The file read.
    pub source: PathBuf,
}

/// The process environment's variables starting with [`ENV_PREFIX`] (those with valid UTF-8), for [`load`].
pub fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(name, value)| {
        let name = name.into_string().ok()?;
        let value = value.into_string().ok()?;
        name.to_ascii_uppercase()
            .starts_with(ENV_PREFIX)
            .then_some((name, value))
    })
}

/// What a config type must be for the loader: deserializable with defaults, serializable (for env overrides and
/// the section list), and validated.
pub trait Loadable: DeserializeOwned + Serialize + Default + Validate {}

impl<T: DeserializeOwned + Serialize + Default + Validate> Loadable for T {}

/// Read and resolve the config at `path` with the overrides in `env` (pass [`process_env()`] in the daemon).
#[cfg_attr(not(test), allow(dead_code))] // the daemon loads through `load_str_with` (it has flags)
pub fn load<T, I>(path: &Path, env: I) -> Result<Loaded<T>, ConfigErrors>
where
    T: Loadable,
    I: IntoIterator<Item = (String, String)>,
{
    load_str(&read(path)?, path, env)
}

/// The file's text, or the one error saying why it cannot be read.
pub fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|error| {
        let message = match error.kind() {
            std::io::ErrorKind::NotFound => {
                "config file not found; pass --config with the right path or create it from the repo's config.yaml"
                    .to_string()
            }
            _ => format!("cannot read config file: {error}"),
        };
        ConfigErrors(vec![ConfigError::file(path, message)])
    })
}

/// Resolve config `text` as if read from `source` (used by [`load`], tests and embedded defaults).
#[cfg_attr(not(test), allow(dead_code))]
pub fn load_str<T, I>(text: &str, source: &Path, env: I) -> Result<Loaded<T>, ConfigErrors>
where
    T: Loadable,
    I: IntoIterator<Item = (String, String)>,
{
    load_str_with(text, source, env, |_| Vec::new())
}

/// [`load_str`] with `flags` applied after the env overrides and before validation, so a value set by a
/// command-line flag (`run --node`) is checked like the file's. `flags` returns (field path, flag) for each field
/// it set; errors about those fields name the flag instead of a line.
///
/// Every error of the file comes out of one run: unknown sections and each broken section's first error, then
/// the semantic problems of the sections that did parse (a problem whose check read a broken section is
/// dropped: it would judge that section's defaults, not the file).
pub fn load_str_with<T, I>(
    text: &str,
    source: &Path,
    env: I,
    flags: impl FnOnce(&mut T) -> Vec<(String, String)>,
) -> Result<Loaded<T>, ConfigErrors>
where
    T: Loadable,
    I: IntoIterator<Item = (String, String)>,
{
    let parsed = parse_all::<T>(text, source)?;
    let applied = apply_env(parsed.config, env, ENV_PREFIX);
    let mut config = applied.config;
    let mut overridden: Vec<(String, String)> = applied.applied;
    overridden.extend(flags(&mut config));
    let mut errors = parsed.errors;
    for problem in config.validate() {
        if problem
            .sections()
            .any(|section| parsed.broken.contains(section))
        {
            continue;
        }
        let from_override = overridden
            .iter()
            .rev()
            .find(|(path, _)| covers(path, &problem.path));
        errors.push(match from_override {
            Some((_, by)) => ConfigError {
                file: source.to_path_buf(),
                line: None,
                column: None,
                path: Some(problem.path),
                message: format!("{} (value set by {by})", problem.message),
            },
            None => {
                let at = locate_nearest(text, &problem.path);
                ConfigError {
                    file: source.to_path_buf(),
                    line: at.map(|(line, _)| line),
                    column: at.map(|(_, column)| column),
                    path: Some(problem.path),
                    message: problem.message,
                }
            }
        });
    }
    if !errors.is_empty() {
        sort_by_place(&mut errors);
        return Err(ConfigErrors(errors));
    }
    Ok(Loaded {
        config,
        warnings: applied.warnings,
        source: source.to_path_buf(),
    })
}

/// Where the field at `path` is written, or else its nearest parent that is (a default that fails a check
/// points at its section), or else nothing.
fn locate_nearest(text: &str, path: &str) -> Option<(usize, usize)> {
    let mut segments = parse_path(path);
    while !segments.is_empty() {
        if let Some(at) = locate(text, &segments) {
            return Some(at);
        }
        segments.pop();
    }
    None
}

/// Whether an override of `overridden` set the field at `path` (itself or one of its parents).
fn covers(overridden: &str, path: &str) -> bool {
    path == overridden
        || path
            .strip_prefix(overridden)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// The config as YAML, defaults filled (what `check-config` prints).
pub fn to_yaml<T: Serialize>(config: &T) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(config)
}

/// What parsing the file gave: the config (broken sections and unknown keys left at their defaults), one error
/// per unknown section and per broken section, and the names of the broken sections.
struct Parsed<T> {
    config: T,
    errors: Vec<ConfigError>,
    broken: HashSet<String>,
}

/// Parse `text` into `T`, collecting one error per unknown section and per broken section. Only malformed YAML
/// (or a document that is not a mapping) leaves nothing to validate and is an `Err`.
fn parse_all<T>(text: &str, source: &Path) -> Result<Parsed<T>, ConfigErrors>
where
    T: DeserializeOwned + Serialize + Default,
{
    let error_at = |line, column, path: Option<String>, message: String| ConfigError {
        file: source.to_path_buf(),
        line,
        column,
        path,
        message,
    };
    let document: Value = serde_yaml::from_str(text).map_err(|error| {
        let at = error.location();
        ConfigErrors(vec![error_at(
            at.as_ref().map(|at| at.line()),
            at.as_ref().map(|at| at.column()),
            None,
            format!("malformed YAML: {}", bare_message(&error, "")),
        )])
    })?;
    let sections = known_sections::<T>();
    let entries = match document {
        Value::Null => {
            return Ok(Parsed {
                config: T::default(),
                errors: Vec::new(),
                broken: HashSet::new(),
            })
        }
        Value::Mapping(entries) => entries,
        other => {
            let found = match other {
                Value::Sequence(_) => "a list",
                _ => "a single value",
            };
            let message = format!(
                "expected a mapping of sections ({}), found {found}",
                sections.join(", ")
            );
            return Err(ConfigErrors(vec![error_at(
                Some(1),
                Some(1),
                None,
                message,
            )]));
        }
    };

    let mut errors = Vec::new();
    let mut present = Vec::new();
    let mut seen = HashSet::new();
    for key in entries.keys() {
        let name = key.as_str().map(str::to_string);
        match name {
            Some(name) if sections.contains(&name) => {
                if seen.insert(name.clone()) {
                    present.push(name);
                }
            }
            _ => {
                let shown = name.clone().unwrap_or_else(|| super::env::render(key));
                let at = name
                    .as_ref()
                    .and_then(|name| locate(text, &[Segment::Key(name.clone())]));
                let expected = sections
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                errors.push(error_at(
                    at.map(|(line, _)| line),
                    at.map(|(_, column)| column),
                    None,
                    format!("unknown field `{shown}`, expected one of {expected}"),
                ));
            }
        }
    }
    let mut broken = HashSet::new();
    for section in &present {
        let Some(error) = section_error::<T>(text, std::slice::from_ref(section)) else {
            continue;
        };
        broken.insert(section.clone());
        // A broken section is read again one key at a time, so each of its keys reports its own first error.
        let keys: Vec<String> = match entries.get(section.as_str()) {
            Some(Value::Mapping(body)) => body
                .keys()
                .filter_map(|key| key.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let mut per_key: Vec<ConfigError> = Vec::new();
        for key in keys {
            let path = [section.clone(), key];
            if let Some(found) = section_error::<T>(text, &path) {
                if !per_key.contains(&found) {
                    per_key.push(found);
                }
            }
        }
        if per_key.is_empty() {
            per_key.push(error);
        }
        errors.extend(per_key.into_iter().map(|mut e| {
            e.file = source.to_path_buf();
            e
        }));
    }
    if errors.is_empty() {
        return serde_yaml::from_str(text)
            .map(|config| Parsed {
                config,
                errors: Vec::new(),
                broken: HashSet::new(),
            })
            .map_err(|error| {
                let at = error.location();
                ConfigErrors(vec![error_at(
                    at.as_ref().map(|at| at.line()),
                    at.as_ref().map(|at| at.column()),
                    None,
                    friendly(&bare_message(&error, "")),
                )])
            });
    }
    // The sections that parsed on their own, together, so their semantic problems are reported too.
    let good: serde_yaml::Mapping = entries
        .into_iter()
        .filter(|(key, _)| {
            key.as_str()
                .is_some_and(|name| sections.iter().any(|s| s == name) && !broken.contains(name))
        })
        .collect();
    match serde_yaml::from_value::<T>(Value::Mapping(good)) {
        Ok(config) => Ok(Parsed {
            config,
            errors,
            broken,
        }),
        Err(_) => {
            sort_by_place(&mut errors);
            Err(ConfigErrors(errors))
        }
    }
}

/// The first error of deserializing `T` from only the entry at `path` of `text` (file left empty for the caller).
fn section_error<T: DeserializeOwned>(text: &str, path: &[String]) -> Option<ConfigError> {
    let deserializer = SectionOnly::new(serde_yaml::Deserializer::from_str(text), path);
    let error = serde_path_to_error::deserialize::<_, T>(deserializer).err()?;
    let field = error.path().to_string();
    let inner = error.inner();
    let at = inner.location();
    let message = friendly(&bare_message(inner, &field));
    let shown = field_path(&field, &message);
    let mut at = at.map(|at| (at.line(), at.column()));
    if message.starts_with("unknown field") {
        // serde_yaml marks where the mapping was when the key was refused; the key itself is the place.
        at = locate(text, &parse_path(&shown)).or(at);
    }
    Some(ConfigError {
        file: PathBuf::new(),
        line: at.map(|(line, _)| line),
        column: at.map(|(_, column)| column),
        path: Some(shown),
        message,
    })
}

/// The path shown for a deserialization error: serde's path, extended by the key itself for an unknown field
/// (`sync.retry` + unknown field `backof` → `sync.retry.backof`).
fn field_path(path: &str, message: &str) -> String {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(key, _)| key);
    match unknown {
        Some(key) if path == "." => key.to_string(),
        Some(key) if path == key || path.ends_with(&format!(".{key}")) => path.to_string(),
        Some(key) => format!("{path}.{key}"),
        None => path.to_string(),
    }
}

/// The top-level section names of `T`, from its default serialized.
fn known_sections<T: Serialize + Default>() -> Vec<String> {
    match serde_yaml::to_value(T::default()) {
        Ok(Value::Mapping(map)) => map
            .keys()
            .filter_map(|key| key.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn sort_by_place(errors: &mut [ConfigError]) {
    errors.sort_by_key(|error| (error.line.unwrap_or(usize::MAX), error.column.unwrap_or(0)));
}
