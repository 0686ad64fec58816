//! What one selfplay job is ([`JobSpec`]) and how it becomes a command line: a template of argv strings with
//! `{placeholder}`s, rendered item by item, never through a shell.
//!
//! Rendering is pure: a value is substituted verbatim into the argv item that holds its placeholder, so a board name
//! or path containing spaces, quotes, `;` or `$(...)` stays inside that one item and is never re-parsed (values are
//! not scanned for further placeholders either). `{{` and `}}` stand for literal braces. An unknown placeholder is an
//! error naming it and listing the known ones, so a typo in config fails at validation, not at the first job.
//!
//! It knows nothing of processes, SSH or scheduling.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One selfplay job: a batch of games of one config on one node, written to one output file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Unique job id; also the stem of its log files, so letters, digits, `.`, `_`, `-` only (see [`check_job_id`]).
    pub id: String,
    /// The config key, `<board>_<N>p` (e.g. `hex8_2p`).
    pub config_key: String,
    /// Board name passed to the engine (e.g. `hex8`).
    pub board: String,
    /// Player count (2-4).
    pub players: u8,
    /// Games to play.
    pub games: u32,
    /// MCTS search budget per move.
    pub budget: u32,
    /// Output file, on the node that runs the job.
    pub output: PathBuf,
    /// Longest game, in moves.
    pub max_moves: u32,
    /// Opponent think time per move, in milliseconds.
    pub think_time_ms: u32,
    /// Opponent randomness (0-1).
    pub randomness: f64,
    /// Seed of the engine's random generator.
    pub seed: u64,
    /// Node that runs the job.
    pub node: String,
}

/// Placeholders a template may use. `self` is the daemon's own executable.
pub const PLACEHOLDERS: &[&str] = &[
    "self",
    "board",
    "players",
    "games",
    "budget",
    "output",
    "max_moves",
    "think_time_ms",
    "randomness",
    "seed",
];

/// Errors of templates and job specs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The template has no items (no program to run).
    #[error("the command template is empty; give at least the program, e.g. [\"{{self}}\", \"selfplay-demo\", ...]")]
    EmptyTemplate,
    /// A `{name}` that is not a known placeholder.
    #[error("unknown placeholder {{{name}}} in command template item {index} ({item:?}); known placeholders: {known}")]
    UnknownPlaceholder {
        /// The placeholder name as written.
        name: String,
        /// Index of the argv item.
        index: usize,
        /// The argv item.
        item: String,
        /// The known placeholders, comma separated.
        known: String,
    },
    /// A `{` without its `}`, or a lone `}`.
    #[error("unbalanced brace in command template item {index} ({item:?}); write {{{{ or }}}} for a literal brace")]
    UnbalancedBrace {
        /// Index of the argv item.
        index: usize,
        /// The argv item.
        item: String,
    },
    /// A path that cannot be passed as UTF-8 text.
    #[error("{what} path {path:?} is not valid UTF-8; use a UTF-8 path")]
    NotUtf8 {
        /// Which path (`output`, `self`).
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A job id unfit for a file name.
    #[error("job id {id:?} is not usable as a file name; use 1-128 letters, digits, '.', '_' or '-', not starting with '.'")]
    BadJobId {
        /// The id.
        id: String,
    },
}

/// Check that `id` can name log files: 1-128 chars of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn check_job_id(id: &str) -> Result<(), SpecError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadJobId { id: id.to_string() })
    }
}

/// One piece of a parsed template item.
enum Piece<'a> {
    Text(&'a str),
    Brace(char),
    Placeholder(&'a str),
}

/// Split one template item into text, escaped braces and placeholders.
fn parse_item(index: usize, item: &str) -> Result<Vec<Piece<'_>>, SpecError> {
    let unbalanced = || SpecError::UnbalancedBrace {
        index,
        item: item.to_string(),
    };
    let mut pieces = Vec::new();
    let mut rest = item;
    while let Some(at) = rest.find(['{', '}']) {
        if at > 0 {
            pieces.push(Piece::Text(&rest[..at]));
        }
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{") {
            pieces.push(Piece::Brace('{'));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            pieces.push(Piece::Brace('}'));
            rest = after;
        } else if tail.starts_with('}') {
            return Err(unbalanced());
        } else {
            let close = tail.find('}').ok_or_else(unbalanced)?;
            let name = &tail[1..close];
            if name.contains('{') {
                return Err(unbalanced());
            }
            if !PLACEHOLDERS.contains(&name) {
                return Err(SpecError::UnknownPlaceholder {
                    name: name.to_string(),
                    index,
                    item: item.to_string(),
                    known: PLACEHOLDERS.join(", "),
                });
            }
            pieces.push(Piece::Placeholder(name));
            rest = &tail[close + 1..];
        }
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Check a template without a job: not empty, braces balanced, every placeholder known. For config validation.
pub fn validate_template(template: &[String]) -> Result<(), SpecError> {
    if template.is_empty() {
        return Err(SpecError::EmptyTemplate);
    }
    for (index, item) in template.iter().enumerate() {
        parse_item(index, item)?;
    }
    Ok(())
}

/// Render `template` for `spec`: one argv item per template item, placeholders replaced by the job's values.
///
/// `self_exe` replaces `{self}` (the daemon's own executable, or the remote program name for SSH).
pub fn render(
    template: &[String],
    spec: &JobSpec,
    self_exe: &Path,
) -> Result<Vec<String>, SpecError> {
    if template.is_empty() {
        return Err(SpecError::EmptyTemplate);
    }
    let output = spec.output.to_str().ok_or_else(|| SpecError::NotUtf8 {
        what: "output",
        path: spec.output.clone(),
    })?;
    let self_exe_text = self_exe.to_str().ok_or_else(|| SpecError::NotUtf8 {
        what: "self",
        path: self_exe.to_path_buf(),
    })?;
    let value = |name: &str| -> String {
        match name {
            "self" => self_exe_text.to_string(),
            "board" => spec.board.clone(),
            "players" => spec.players.to_string(),
            "games" => spec.games.to_string(),
            "budget" => spec.budget.to_string(),
            "output" => output.to_string(),
            "max_moves" => spec.max_moves.to_string(),
            "think_time_ms" => spec.think_time_ms.to_string(),
            "randomness" => spec.randomness.to_string(),
            "seed" => spec.seed.to_string(),
            // parse_item only lets known names through.
            _ => String::new(),
        }
    };
    template
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let mut rendered = String::with_capacity(item.len());
            for piece in parse_item(index, item)? {
                match piece {
                    Piece::Text(text) => rendered.push_str(text),
                    Piece::Brace(brace) => rendered.push(brace),
                    Piece::Placeholder(name) => rendered.push_str(&value(name)),
                }
            }
            Ok(rendered)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_spec() -> JobSpec {
        JobSpec {
            id: "hex8_2p-0001".into(),
            config_key: "hex8_2p".into(),
            board: "hex8".into(),
            players: 2,
            games: 50,
            budget: 800,
            output: PathBuf::from("data/games/hex8_2p/hex8_2p-0001.db"),
            max_moves: 500,
            think_time_ms: 500,
            randomness: 0.1,
            seed: 42,
            node: "local".into(),
        }
    }

    fn template(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn renders_every_placeholder() {
        let items = template(&[
            "{self}",
            "selfplay-demo",
            "--board",
            "{board}",
            "--players",
            "{players}",
            "--games",
            "{games}",
            "--budget",
            "{budget}",
            "--out",
            "{output}",
            "--max-moves",
            "{max_moves}",
            "--think-time-ms",
            "{think_time_ms}",
            "--randomness",
            "{randomness}",
            "--seed",
            "{seed}",
        ]);
        let argv =
            render(&items, &sample_spec(), Path::new("/usr/bin/coordinator")).expect("renders");
        assert_eq!(
            argv,
            template(&[
                "/usr/bin/coordinator",
                "selfplay-demo",
                "--board",
                "hex8",
                "--players",
                "2",
                "--games",
                "50",
                "--budget",
                "800",
                "--out",
                "data/games/hex8_2p/hex8_2p-0001.db",
                "--max-moves",
                "500",
                "--think-time-ms",
                "500",
                "--randomness",
                "0.1",
                "--seed",
                "42",
            ])
        );
    }

    #[test]
    fn placeholders_inside_an_item_and_escaped_braces() {
        let cases: &[(&str, &str)] = &[
            ("--out={output}", "--out=data/games/hex8_2p/hex8_2p-0001.db"),
            ("{board}_{players}p", "hex8_2p"),
            ("{{board}}", "{board}"),
            ("a{{b}}c", "a{b}c"),
            ("{{{seed}}}", "{42}"),
            ("plain", "plain"),
            ("", ""),
        ];
        for (item, want) in cases {
            let argv = render(&template(&[item]), &sample_spec(), Path::new("x")).expect(item);
            assert_eq!(argv, vec![want.to_string()], "item {item:?}");
        }
    }

    #[test]
    fn unknown_placeholder_names_it_and_lists_the_known_ones() {
        let error = render(
            &template(&["run", "--x={bord}"]),
            &sample_spec(),
            Path::new("x"),
        )
        .expect_err("unknown");
        match &error {
            SpecError::UnknownPlaceholder { name, index, .. } => {
                assert_eq!(name, "bord");
                assert_eq!(*index, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = error.to_string();
        assert!(text.contains("{bord}"), "{text}");
        for known in PLACEHOLDERS {
            assert!(text.contains(known), "{text} lacks {known}");
        }
    }

    #[test]
    fn unbalanced_braces_and_empty_templates_are_errors() {
        for item in ["{board", "board}", "{bo{ard}", "}{", "{"] {
            let error = validate_template(&template(&[item])).expect_err(item);
            assert!(
                matches!(error, SpecError::UnbalancedBrace { .. }),
                "{item}: {error:?}"
            );
        }
        assert_eq!(validate_template(&[]), Err(SpecError::EmptyTemplate));
        assert_eq!(
            render(&[], &sample_spec(), Path::new("x")),
            Err(SpecError::EmptyTemplate)
        );
        assert!(matches!(
            validate_template(&template(&["{}"])),
            Err(SpecError::UnknownPlaceholder { .. })
        ));
    }

    #[test]
    fn injection_attempts_stay_single_argv_items() {
        let hostile = [
            "hex8; rm -rf /",
            "$(touch /tmp/pwned)",
            "`id`",
            "a b\tc\nd",
            "'quoted' \"double\"",
            "{games}",
            "--out=/etc/passwd",
            "| cat",
        ];
        for board in hostile {
            let mut spec = sample_spec();
            spec.board = board.to_string();
            spec.output = PathBuf::from(format!("dir/{board}.db"));
            let argv = render(
                &template(&["prog", "--board", "{board}", "{output}"]),
                &spec,
                Path::new("prog"),
            )
            .expect("renders");
            assert_eq!(argv.len(), 4, "{board:?}: {argv:?}");
            // Values are substituted verbatim and never re-expanded.
            assert_eq!(argv[2], board);
            assert_eq!(argv[3], format!("dir/{board}.db"));
        }
    }

    #[test]
    fn job_ids_must_be_file_name_safe() {
        for good in ["a", "hex8_2p-0001", "job.1", &"x".repeat(128)] {
            assert_eq!(check_job_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a/b",
            "a b",
            "x;y",
            "é",
            &"x".repeat(129),
        ] {
            assert!(check_job_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spec_round_trips_through_json_and_rejects_unknown_fields() {
        let spec = sample_spec();
        let json = serde_json::to_string(&spec).expect("json");
        let back: JobSpec = serde_json::from_str(&json).expect("back");
        assert_eq!(back, spec);
        let mut value: serde_json::Value = serde_json::from_str(&json).expect("value");
        value["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<JobSpec>(value).is_err());
    }
}
