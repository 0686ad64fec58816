//! Runs a transport program (rsync, aria2c) in its own process group and ends it when it stops making progress:
//! no growth of its output file for the idle timeout, the attempt's deadline, or a cancel. The whole group is
//! killed (rsync's ssh child included), so nothing outlives the attempt.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Cancel, Failure};
use crate::sync::budget::{AttemptLimits, FailureKind};

/// How often the output is looked at.
const POLL: Duration = Duration::from_millis(50);

/// True when `program` is a path to an executable or found on PATH.
pub fn on_path(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Size of the largest of `outputs` (a program may write to a side file first).
fn progress_of(outputs: &[&Path]) -> u64 {
    outputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// Runs `command` until it exits, watching `outputs` for progress. `Ok(stderr)` when it exited 0; otherwise a
/// failure classified from its exit and stderr by `classify`.
pub fn run_watched(
    mut command: Command,
    program: &str,
    outputs: &[&Path],
    limits: AttemptLimits,
    cancel: &Cancel,
    classify: impl Fn(Option<i32>, &str) -> FailureKind,
) -> Result<String, Failure> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().map_err(|e| {
        Failure::new(
            FailureKind::Unavailable,
            format!("cannot start {program}: {e}"),
        )
    })?;
    let pid = child.id() as i32;
    let stderr_reader = child
        .stderr
        .take()
        .map(|stderr| std::thread::spawn(move || read_tail(stderr)));
    let start_size = progress_of(outputs);
    let mut last_size = start_size;
    let mut last_progress = Instant::now();
    let kill = |child: &mut std::process::Child| {
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = child.wait();
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                kill(&mut child);
                return Err(Failure::new(
                    FailureKind::Transient,
                    format!("waiting for {program} failed: {e}"),
                ));
            }
        }
        let now = Instant::now();
        let size = progress_of(outputs);
        if size != last_size {
            last_size = size;
            last_progress = now;
        }
        let stop = if cancel.is_cancelled() {
            Some((FailureKind::Cancelled, "cancelled".to_string()))
        } else if now >= limits.deadline {
            Some((
                FailureKind::Transient,
                "the operation's budget ended mid-transfer".to_string(),
            ))
        } else if now.duration_since(last_progress) >= limits.idle_timeout {
            Some((
                FailureKind::Transient,
                format!(
                    "no byte within the idle timeout ({})",
                    humantime::format_duration(limits.idle_timeout)
                ),
            ))
        } else {
            None
        };
        if let Some((kind, reason)) = stop {
            kill(&mut child);
            return Err(Failure {
                kind,
                reason: format!("{program}: {reason}"),
                bytes: last_size.saturating_sub(start_size),
            });
        }
        std::thread::sleep(POLL);
    };
    let stderr = stderr_reader
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    if status.success() {
        return Ok(stderr);
    }
    let code = status.code();
    Err(Failure {
        kind: classify(code, &stderr),
        reason: format!(
            "{program} exited with {}: {}",
            code.map_or("a signal".to_string(), |c| format!("code {c}")),
            stderr.trim()
        ),
        bytes: progress_of(outputs).saturating_sub(start_size),
    })
}

/// The last 2000 characters of what a program wrote to stderr.
fn read_tail(stderr: impl std::io::Read) -> String {
    use std::io::Read;
    let mut raw = Vec::new();
    let _ = stderr.take(1 << 20).read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// "Connection refused" / "No route to host" in a program's stderr: the next transport at once.
pub fn unreachable_in(stderr: &str) -> bool {
    [
        "Connection refused",
        "No route to host",
        "Network is unreachable",
        "Could not resolve hostname",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(idle: Duration) -> AttemptLimits {
        AttemptLimits {
            idle_timeout: idle,
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn a_silent_program_is_killed_at_its_idle_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let mut command = Command::new("sleep");
        command.arg("30");
        let started = Instant::now();
        let failure = run_watched(
            command,
            "sleep",
            &[&out],
            limits(Duration::from_millis(300)),
            &Cancel::new(),
            |_, _| FailureKind::Transient,
        )
        .expect_err("killed");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            failure.reason.contains("idle timeout"),
            "{}",
            failure.reason
        );
    }

    #[test]
    fn exit_codes_and_stderr_are_classified() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo 'ssh: connect to host x port 22: Connection refused' >&2; exit 255",
        ]);
        let failure = run_watched(
            command,
            "rsync",
            &[],
            limits(Duration::from_secs(10)),
            &Cancel::new(),
            |_, stderr| {
                if unreachable_in(stderr) {
                    FailureKind::Unreachable
                } else {
                    FailureKind::Transient
                }
            },
        )
        .expect_err("failed");
        assert_eq!(failure.kind, FailureKind::Unreachable);
        assert!(failure.reason.contains("code 255"), "{}", failure.reason);
        assert!(!on_path(Path::new("surely-not-a-program-here")));
        assert!(on_path(Path::new("sh")));
    }
}
