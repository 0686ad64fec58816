//! The CLI side of the control API: `coordinator status`, `coordinator dead-letters` and `coordinator sync --once`.
//!
//! Talks to the running daemon over HTTP (loopback by default, from the config's `api.bind`). When no daemon
//! answers, `dead-letters list|show|purge` work directly on the store file (`dead_letters.path`); `replay` needs
//! the daemon, since only it can re-send a message to an actor.

use std::path::Path;
use std::time::Duration;

use actors::runtime::dead_letters::{DeadLetter, DeadLetterStore};
use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::cli::DeadLetterAction;
use crate::config::{self, Config};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The config at `path` if it loads, else defaults (the CLI only needs addresses, paths and the token). A file
/// that exists but does not load is said on stderr, since its `api.token` and addresses are then not used.
fn config_or_default(path: &Path) -> Config {
    match config::load_config(path, config::process_env(), None) {
        Ok(loaded) => loaded.config,
        Err(errors) => {
            if path.exists() {
                eprintln!(
                    "warning: {} did not load, so its api address and token are not used (run `coordinator check-config --config {}`): {}",
                    path.display(),
                    path.display(),
                    errors.to_string().lines().next().unwrap_or_default()
                );
            }
            Config::default()
        }
    }
}

/// The control API's base URL: `--api` as given (a bare `host:port` gets `http://`), else the config's bind.
pub fn api_base(api: Option<String>, config: &Config) -> String {
    let base = api.unwrap_or_else(|| config.api.base_url());
    let base = base.trim().trim_end_matches('/');
    if base.contains("://") {
        base.to_string()
    } else {
        format!("http://{base}")
    }
}

/// Writes the whole of `text` to stdout. A reader that went away (`| head`) is a normal end, not a failure.
pub fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow!("cannot write to stdout: {e}")),
    }
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

pub fn status(api: Option<String>, json: bool) -> Result<()> {
    let config = config_or_default(Path::new("config.yaml"));
    let base = api_base(api, &config);
    let token = config.api.token.as_deref();
    let body = match call("GET", &format!("{base}/status"), token) {
        Reply::Answered(200, body) => body,
        Reply::Answered(status, body) => return Err(api_error(status, &body)),
        Reply::Unreachable(e) => {
            anyhow::bail!("cannot reach the daemon at {base}: {e} (is `coordinator run` running? pass --api URL)")
        }
    };
    // The other sections a daemon may serve; a route it does not have (404) or cannot answer is left out.
    let mut sections = Vec::new();
    for name in ["jobs", "plan", "sync"] {
        if let Reply::Answered(200, value) = call("GET", &format!("{base}/{name}"), token) {
            sections.push((name, value));
        }
    }
    if json {
        let mut whole = body;
        for (name, value) in sections {
            whole[name] = value;
        }
        return emit(&format!("{}\n", serde_json::to_string_pretty(&whole)?));
    }
    emit(&crate::render::status_report(&body, &sections))
}

fn letters_table(letters: &[DeadLetter], total: u64) -> String {
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            vec![
                l.id.to_string(),
                actors::runtime::dead_letters::record::format_rfc3339_ms(l.at_ms),
                l.actor.clone(),
                l.msg.clone(),
                crate::render::cell(&serde_json::to_value(l.status).unwrap_or_default()),
                l.retries.to_string(),
                l.error.clone(),
            ]
        })
        .collect();
    let mut text = crate::render::table(
        &["id", "at", "actor", "msg", "status", "retries", "error"],
        &rows,
    );
    text.push_str(&format!("{} shown, {total} in the store\n", letters.len()));
    text
}

pub fn dead_letters(
    api: Option<String>,
    config_path: &Path,
    json: bool,
    action: DeadLetterAction,
) -> Result<()> {
    let config = config_or_default(config_path);
    let base = api_base(api, &config);
    let token = config.api.token.clone();
    let (method, url) = match &action {
        DeadLetterAction::List { limit } => ("GET", format!("{base}/dead-letters?limit={limit}")),
        DeadLetterAction::Show { id } => ("GET", format!("{base}/dead-letters/{id}")),
        DeadLetterAction::Replay { id, force } => (
            "POST",
            if *force {
                format!("{base}/dead-letters/{id}/replay?force=true")
            } else {
                format!("{base}/dead-letters/{id}/replay")
            },
        ),
        DeadLetterAction::Purge { older_than } => (
            "POST",
            match older_than {
                Some(d) => format!("{base}/dead-letters/purge?older_than={d}"),
                None => format!("{base}/dead-letters/purge"),
            },
        ),
    };
    match call(method, &url, token.as_deref()) {
        Reply::Answered(status, body) if (200..300).contains(&status) => match action {
            DeadLetterAction::List { .. } if !json => {
                let letters: Vec<DeadLetter> = serde_json::from_value(body["dead_letters"].clone())
                    .context("daemon sent dead letters in an unexpected shape")?;
                emit(&letters_table(
                    &letters,
                    body["total"].as_u64().unwrap_or(letters.len() as u64),
                ))
            }
            _ => emit(&format!("{}\n", serde_json::to_string_pretty(&body)?)),
        },
        Reply::Answered(status, body) => Err(api_error(status, &body)),
        Reply::Unreachable(reason) => offline(&config, action, json, &base, &reason),
    }
}

/// No daemon answered: act on the store file directly.
fn offline(
    config: &Config,
    action: DeadLetterAction,
    json: bool,
    base: &str,
    reason: &str,
) -> Result<()> {
    let path = &config.dead_letters.path;
    eprintln!(
        "note: no daemon at {base} ({reason}); using the store at {} directly",
        path.display()
    );
    let mut store = DeadLetterStore::open(path, config.dead_letters.max_entries)
        .with_context(|| format!("cannot open the dead-letter store at {}", path.display()))?;
    let spill = actors::runtime::dead_letters::spill::spill_path_for(path);
    let spilled = std::fs::read_to_string(&spill)
        .map(|text| text.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);
    if spilled > 0 {
        eprintln!(
            "note: {spilled} more letters wait in the spill file {} (the store could not take them); the daemon moves them into the store when it runs",
            spill.display()
        );
    }
    match action {
        DeadLetterAction::List { limit } => {
            let page = store.list(limit, 0, None)?;
            if json {
                let body =
                    serde_json::json!({ "dead_letters": page.dead_letters, "total": page.total });
                emit(&format!("{}\n", serde_json::to_string_pretty(&body)?))
            } else {
                emit(&letters_table(&page.dead_letters, page.total))
            }
        }
        DeadLetterAction::Show { id } => match store.get(id)? {
            Some(letter) => emit(&format!("{}\n", serde_json::to_string_pretty(&letter)?)),
            None => anyhow::bail!("no dead letter with id {id}"),
        },
        DeadLetterAction::Replay { .. } => anyhow::bail!(
            "replay needs the running daemon (it re-sends the message to its actor); start `coordinator run`"
        ),
        DeadLetterAction::Purge { older_than } => {
            let older_than: Duration = older_than.map(Into::into).unwrap_or(Duration::ZERO);
            let purged = store.purge(older_than, std::time::SystemTime::now())?;
            emit(&format!("{}\n", serde_json::json!({ "purged": purged })))
        }
    }
}

/// `coordinator sync --once [--peer P] [--api URL]`: `POST /sync/run`, print the cycle's report; an error (exit 1)
/// when the daemon is unreachable, refuses, or any operation failed.
pub fn sync_once(
    once: bool,
    peer: Option<String>,
    api: Option<String>,
    config_path: &Path,
) -> Result<()> {
    if !once {
        return Err(crate::failure::BadInput::flag(
            "--once",
            "missing: `coordinator sync` runs one cycle (the daemon syncs on its own every sync.interval)",
        ));
    }
    let config = config_or_default(config_path);
    let base = api_base(api, &config);
    let mut url = format!("{base}/sync/run");
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
        Err(ureq::Error::Transport(t)) => anyhow::bail!(
            "cannot reach the daemon at {base}: {t} (is `coordinator run` running? pass --api URL)"
        ),
    };
    let status = response.status();
    let body = response.into_string().unwrap_or_default();
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if status != 200 {
        return Err(api_error(status, &value));
    }
    emit(&format!(
        "{}\n",
        serde_json::to_string_pretty(&value).context("printing the report")?
    ))?;
    if value.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(())
    } else {
        anyhow::bail!("the sync cycle had failures (see the report above)")
    }
}
