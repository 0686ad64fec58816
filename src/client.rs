//! The CLI side of the control API: `coordinator status`, `coordinator dead-letters` and `coordinator sync --once`.
//!
//! Talks to the running daemon over HTTP (loopback by default, from the config's `api.bind`). When no daemon
//! answers, `dead-letters list|show|purge` work directly on the store file (`dead_letters.path`); `replay` needs
//! the daemon, since only it can re-send a message to an actor.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use actors::runtime::dead_letters::{DeadLetter, DeadLetterStore};
use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::cli::DeadLetterAction;
use crate::config::{self, Config};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The config at `path` if it loads, else defaults (the CLI only needs addresses, paths and the token).
fn config_or_default(path: &Path) -> Config {
    config::load_config(path, std::env::vars())
        .map(|l| l.config)
        .unwrap_or_default()
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(TIMEOUT).build()
}

/// Outcome of one API call: the daemon answered (with any status), or it could not be reached.
enum Reply {
    Answered(u16, Value),
    Unreachable(String),
}

fn call(method: &str, url: &str, token: Option<&str>) -> Reply {
    let mut request = agent().request(method, url);
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Reply::Unreachable(t.to_string()),
    };
    let status = response.status();
    let body = response.into_string().unwrap_or_default();
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    Reply::Answered(status, value)
}

fn api_error(status: u16, body: &Value) -> anyhow::Error {
    let message = body
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    anyhow!("daemon answered {status}: {message}")
}

pub fn status(api: Option<String>, json: bool) -> Result<ExitCode> {
    let base = api.unwrap_or_else(|| config_or_default(Path::new("config.yaml")).api.base_url());
    let url = format!("{}/status", base.trim_end_matches('/'));
    let body = match call("GET", &url, None) {
        Reply::Answered(200, body) => body,
        Reply::Answered(status, body) => return Err(api_error(status, &body)),
        Reply::Unreachable(e) => {
            eprintln!("error: cannot reach the daemon at {base}: {e} (is `coordinator run` running? pass --api URL)");
            return Ok(ExitCode::from(1));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "node {}  uptime {}s",
        body["node"].as_str().unwrap_or("?"),
        body["uptime_s"].as_u64().unwrap_or(0)
    );
    print_tree(&body["tree"], &body["actors"], "", true, true);
    if let Some(ds) = body.get("data_server") {
        println!("\ndata server: {}", serde_json::to_string(ds)?);
    }
    for extra in ["jobs", "sync", "plan"] {
        if let Reply::Answered(200, value) = call(
            "GET",
            &format!("{}/{extra}", base.trim_end_matches('/')),
            None,
        ) {
            println!("\n{extra}:\n{}", serde_json::to_string_pretty(&value)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_tree(node: &Value, actors: &Value, prefix: &str, last: bool, root: bool) {
    let name = node["name"].as_str().unwrap_or("?");
    let branch = if root {
        ""
    } else if last {
        "└─ "
    } else {
        "├─ "
    };
    let mut line = format!(
        "{prefix}{branch}{name}  {}  {}  restarts {}",
        node["kind"].as_str().unwrap_or("?"),
        node["state"].as_str().unwrap_or("?"),
        node["restarts"].as_u64().unwrap_or(0)
    );
    if let Some(stats) = actors.get(name) {
        line.push_str(&format!(
            "  handled {} failed {} mailbox {}",
            stats["handled"].as_u64().unwrap_or(0),
            stats["failed"].as_u64().unwrap_or(0),
            stats["mailbox"].as_u64().unwrap_or(0)
        ));
    }
    println!("{line}");
    let child_prefix = if root {
        String::new()
    } else {
        format!("{prefix}{}", if last { "   " } else { "│  " })
    };
    if let Some(failure) = node["last_failure"].as_object() {
        println!(
            "{child_prefix}   last failure {}: {}",
            failure.get("at").and_then(Value::as_str).unwrap_or("?"),
            failure.get("reason").and_then(Value::as_str).unwrap_or("?")
        );
    }
    if let Some(children) = node["children"].as_array() {
        for (i, child) in children.iter().enumerate() {
            print_tree(child, actors, &child_prefix, i + 1 == children.len(), false);
        }
    }
}

fn print_letters(letters: &[DeadLetter], total: u64) {
    println!(
        "{:>6}  {:<24}  {:<20}  {:<20}  {:<9}  {:>7}  error",
        "id", "at", "actor", "msg", "status", "retries"
    );
    for l in letters {
        let status = serde_json::to_value(l.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!(
            "{:>6}  {:<24}  {:<20}  {:<20}  {:<9}  {:>7}  {}",
            l.id,
            actors::runtime::dead_letters::record::format_rfc3339_ms(l.at_ms),
            l.actor,
            l.msg,
            status,
            l.retries,
            l.error
        );
    }
    println!("{} shown, {total} in the store", letters.len());
}

pub fn dead_letters(
    api: Option<String>,
    config_path: &Path,
    action: DeadLetterAction,
) -> Result<ExitCode> {
    let config = config_or_default(config_path);
    let base = api.unwrap_or_else(|| config.api.base_url());
    let base = base.trim_end_matches('/').to_string();
    let token = config.api.token.clone();
    let (method, url) = match &action {
        DeadLetterAction::List { limit } => ("GET", format!("{base}/dead-letters?limit={limit}")),
        DeadLetterAction::Show { id } => ("GET", format!("{base}/dead-letters/{id}")),
        DeadLetterAction::Replay { id } => ("POST", format!("{base}/dead-letters/{id}/replay")),
        DeadLetterAction::Purge { older_than } => (
            "POST",
            match older_than {
                Some(d) => format!("{base}/dead-letters/purge?older_than={d}"),
                None => format!("{base}/dead-letters/purge"),
            },
        ),
    };
    match call(method, &url, token.as_deref()) {
        Reply::Answered(status, body) if (200..300).contains(&status) => {
            match action {
                DeadLetterAction::List { .. } => {
                    let letters: Vec<DeadLetter> =
                        serde_json::from_value(body["dead_letters"].clone())
                            .context("daemon sent dead letters in an unexpected shape")?;
                    print_letters(
                        &letters,
                        body["total"].as_u64().unwrap_or(letters.len() as u64),
                    );
                }
                _ => println!("{}", serde_json::to_string_pretty(&body)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Reply::Answered(status, body) => {
            eprintln!("error: {}", api_error(status, &body));
            Ok(ExitCode::from(1))
        }
        Reply::Unreachable(reason) => offline(&config, action, &base, &reason),
    }
}

/// No daemon answered: act on the store file directly.
fn offline(
    config: &Config,
    action: DeadLetterAction,
    base: &str,
    reason: &str,
) -> Result<ExitCode> {
    let path = &config.dead_letters.path;
    eprintln!(
        "note: no daemon at {base} ({reason}); using the store at {} directly",
        path.display()
    );
    let mut store = DeadLetterStore::open(path, config.dead_letters.max_entries)
        .with_context(|| format!("cannot open the dead-letter store at {}", path.display()))?;
    match action {
        DeadLetterAction::List { limit } => {
            let page = store.list(limit, 0, None)?;
            print_letters(&page.dead_letters, page.total);
        }
        DeadLetterAction::Show { id } => match store.get(id)? {
            Some(letter) => println!("{}", serde_json::to_string_pretty(&letter)?),
            None => {
                eprintln!("error: no dead letter with id {id}");
                return Ok(ExitCode::from(1));
            }
        },
        DeadLetterAction::Replay { .. } => {
            eprintln!("error: replay needs the running daemon (it re-sends the message to its actor); start `coordinator run`");
            return Ok(ExitCode::from(1));
        }
        DeadLetterAction::Purge { older_than } => {
            let older_than: Duration = older_than.map(Into::into).unwrap_or(Duration::ZERO);
            let purged = store.purge(older_than, std::time::SystemTime::now())?;
            println!("{}", serde_json::json!({ "purged": purged }));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `coordinator sync --once [--peer P] [--api URL]`: `POST /sync/run`, print the cycle's report; exit 1 when the
/// daemon is unreachable or any operation failed.
pub fn sync_once(
    once: bool,
    peer: Option<String>,
    api: Option<String>,
    config_path: &Path,
) -> Result<ExitCode> {
    if !once {
        eprintln!("error: `coordinator sync` needs --once (the daemon syncs on its own every sync.interval)");
        return Ok(ExitCode::from(2));
    }
    let config = config_or_default(config_path);
    let base = api.unwrap_or_else(|| config.api.base_url());
    let mut url = format!("{}/sync/run", base.trim_end_matches('/'));
    if let Some(peer) = &peer {
        url.push_str(&format!(
            "?peer={}",
            actors::sync::transport::encode_segment(peer)
        ));
    }
    // The daemon answers when the cycle ends: allow its whole deadline.
    let timeout = config.sync.cycle_deadline + Duration::from_secs(30);
    let mut request = ureq::AgentBuilder::new()
        .timeout(timeout)
        .build()
        .post(&url);
    if let Some(token) = config.api.token.as_deref() {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => {
            eprintln!("error: cannot reach the daemon at {base}: {t} (is `coordinator run` running? pass --api URL)");
            return Ok(ExitCode::from(1));
        }
    };
    let status = response.status();
    let body = response.into_string().unwrap_or_default();
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if status != 200 {
        eprintln!("error: {}", api_error(status, &value));
        return Ok(ExitCode::from(1));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&value).context("printing the report")?
    );
    let ok = value.get("ok").and_then(Value::as_bool).unwrap_or(false);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
