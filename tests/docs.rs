//! The docs match the code (issue 11 item 5): every command the binary has is in the README, every flag and every
//! route (control API and data server) in docs/operations.md, every env example of docs/configuration.md applies,
//! and no doc points at a file that is not in the repository.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{assert_code, command, run_with_timeout};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const T: Duration = Duration::from_secs(30);

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn help(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.args(args).arg("--help");
    let out = run_with_timeout(c, T);
    assert_eq!(out.status.code(), Some(0), "{args:?} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subcommand names listed under `Commands:` of a help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The `--long` flags of a help text, without the global ones.
fn flags(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches(',').to_string())
        .filter(|f| !["--help", "--version", "--log-format", "--log-level"].contains(&f.as_str()))
        .collect()
}

#[test]
fn every_command_is_in_the_readme_and_every_flag_in_the_runbook() {
    let readme = read("README.md");
    let runbook = read("docs/operations.md");
    let top = help(&[]);
    let commands = subcommands(&top);
    assert!(commands.len() >= 8, "{top}");
    for name in commands {
        assert!(
            readme.contains(&format!("`coordinator {name}")),
            "README lacks {name}"
        );
        assert!(
            runbook.contains(&format!("`coordinator {name}")),
            "runbook lacks {name}"
        );
        let sub = help(&[&name]);
        let mut cases = vec![(name.clone(), sub.clone())];
        for action in subcommands(&sub) {
            cases.push((format!("{name} {action}"), help(&[&name, &action])));
        }
        for (command, text) in cases {
            for flag in flags(&text) {
                assert!(
                    runbook.contains(&format!("`{flag}")),
                    "runbook lacks {command} {flag}"
                );
            }
        }
    }
    for flag in ["--log-format", "--log-level"] {
        assert!(runbook.contains(flag), "runbook lacks the global {flag}");
    }
}

/// Paths of `cfg.route("/x", ...)` and `web::resource("/x")` in a source file, `{path:.*}` shown as `{path}`.
fn routes(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for marker in ["route(\"", "resource(\""] {
        for piece in source.split(marker).skip(1) {
            let path = piece.split('"').next().unwrap_or_default();
            if path.starts_with('/') {
                out.push(path.replace(":.*}", "}"));
            }
        }
    }
    out
}

#[test]
fn every_route_is_in_the_runbook() {
    let runbook = read("docs/operations.md");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(Path::new(ROOT).join("src/api")).unwrap() {
        all.extend(routes(
            &std::fs::read_to_string(entry.unwrap().path()).unwrap(),
        ));
    }
    all.extend(routes(&read("actors/src/data_server/server.rs")));
    for must in [
        "/jobs",
        "/plan",
        "/dead-letters/{id}",
        "/dead-letters/purge",
        "/inventory.json",
    ] {
        assert!(
            all.iter().any(|r| r == must),
            "{must} not found in the sources: {all:?}"
        );
    }
    for route in all {
        assert!(
            runbook.contains(&format!(" {route}")),
            "runbook lacks {route}"
        );
    }
}

#[test]
fn every_env_example_of_the_configuration_doc_applies() {
    let doc = read("docs/configuration.md");
    let examples: Vec<&str> = doc
        .split('`')
        .filter(|piece| piece.starts_with("COORDINATOR_") && piece.contains('='))
        .collect();
    assert!(examples.len() >= 2, "{examples:?}");
    for example in examples {
        let (var, value) = example.split_once('=').unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            Path::new(ROOT).join("config.yaml"),
            dir.path().join("config.yaml"),
        )
        .unwrap();
        let mut c = command(dir.path());
        c.args(["check-config", "--strict"]).env(var, value);
        let out = run_with_timeout(c, T);
        assert_code(&out, 0, example);
    }
}

#[test]
fn docs_point_only_at_files_in_the_repository() {
    let mut docs = vec!["README.md".to_string()];
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(format!(
                "docs/{}",
                path.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    let extensions = [".md", ".rs", ".yaml", ".json", ".toml", ".sh"];
    let mut missing = Vec::new();
    for doc in &docs {
        let text = read(doc);
        let words = text.split(|c: char| c.is_whitespace() || "`()[]<>,;:\"'|*".contains(c));
        for word in words {
            let word = word.trim_end_matches('.');
            // A route (`/inventory.json`) is not a file.
            let looks_like_file = word.contains('/')
                && !word.starts_with('/')
                && !word.contains("://")
                && !word.contains('{')
                && extensions.iter().any(|e| word.ends_with(e));
            if !looks_like_file {
                continue;
            }
            let here = Path::new(ROOT);
            let base = Path::new(doc).parent().unwrap();
            let found = [
                here.join(word),
                here.join(base).join(word),
                here.join("actors").join(word),
                here.join("actors/src").join(word),
            ]
            .iter()
            .any(|p| p.exists());
            if !found {
                missing.push(format!("{doc}: {word}"));
            }
        }
    }
    assert_eq!(missing, Vec::<String>::new());
}
