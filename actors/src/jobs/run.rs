//! Plumbing shared by the local and SSH executors: per-job log files (appended per attempt, read back from where
//! this attempt started), running an owned child to its end under a timeout and a cancel signal, and killing its
//! whole process group if the run is dropped half-way.
//!
//! It knows nothing of what the child is (a local engine or an `ssh` client) nor of how its games are checked.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Child;

use super::outcome::JobStatus;
use crate::process::{self, Ended};

/// Most bytes of a stdout log searched for the games report line.
const REPORT_SEARCH_BYTES: u64 = 64 * 1024;

/// The two log files of one attempt, and where this attempt's output starts in each.
pub(crate) struct AttemptLogs {
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pub stdout_from: u64,
    pub stderr_from: u64,
}

impl AttemptLogs {
    /// Create the logs directory, open both logs for appending, and remember their current ends.
    pub(crate) fn open(
        stdout_path: PathBuf,
        stderr_path: PathBuf,
    ) -> std::io::Result<(Self, File, File)> {
        if let Some(dir) = stdout_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if let Some(dir) = stderr_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let open = |path: &Path| OpenOptions::new().create(true).append(true).open(path);
        let stdout = open(&stdout_path)?;
        let stderr = open(&stderr_path)?;
        let logs = AttemptLogs {
            stdout_from: stdout.metadata()?.len(),
            stderr_from: stderr.metadata()?.len(),
            stdout_path,
            stderr_path,
        };
        Ok((logs, stdout, stderr))
    }

    /// The last `max_bytes` of what this attempt wrote to stderr (lossy UTF-8; empty when unreadable).
    pub(crate) fn stderr_tail(&self, max_bytes: usize) -> String {
        read_tail(&self.stderr_path, self.stderr_from, max_bytes as u64).unwrap_or_default()
    }

    /// The last part of what this attempt wrote to stdout, where the games report line is looked for.
    pub(crate) fn stdout_tail(&self) -> std::io::Result<String> {
        read_tail(&self.stdout_path, self.stdout_from, REPORT_SEARCH_BYTES)
    }
}

/// Up to `max_bytes` from the end of `path`, never before `from`. Starts at a line boundary when cut.
fn read_tail(path: &Path, from: u64, max_bytes: u64) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = from.max(len.saturating_sub(max_bytes));
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(len - start).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if start > from {
        if let Some(newline) = text.find('\n') {
            return Ok(text[newline + 1..].to_string());
        }
    }
    Ok(text)
}

/// Opens the attempt's logs and starts `argv` with stdout/stderr appended to them (own process group, parent-death
/// signal), as both executors do. A failure is the attempt's status, ready to return.
pub(crate) fn start_logged(
    config: &super::config::JobsConfig,
    job_id: &str,
    argv: &[String],
    stdin: std::process::Stdio,
) -> Result<(AttemptLogs, Child), JobStatus> {
    let Some((program, args)) = argv.split_first() else {
        return Err(JobStatus::not_started(
            "the job command is empty; set scheduler.jobs.command".to_string(),
        ));
    };
    let (logs, stdout, stderr) =
        AttemptLogs::open(config.stdout_log(job_id), config.stderr_log(job_id)).map_err(
            |error| {
                JobStatus::not_started(format!(
                    "could not open the job logs in {:?}: {error}; check logs_dir is writable",
                    config.logs_dir
                ))
            },
        )?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(stdin)
        .stdout(std::process::Stdio::from(stdout))
        .stderr(std::process::Stdio::from(stderr));
    let child = process::spawn_owned(&mut command)
        .map_err(|error| JobStatus::not_started(error.to_string()))?;
    Ok((logs, child))
}

/// How a supervised child run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It ended by itself.
    Ended(Ended),
    /// It ran past the timeout and was stopped.
    TimedOut,
    /// The cancel signal came and it was stopped.
    Cancelled,
}

impl Ending {
    /// The endings both executors report alike become a status; an exit of the process itself is handed back
    /// for the executor to judge (its games, its own exit codes). `process` names the child in the reason
    /// ("job process", "ssh process"); `timeout` is the one the run was given.
    pub(crate) fn settle(
        ending: Result<Ending, process::ProcessError>,
        process: &str,
        timeout: Duration,
        logs: &AttemptLogs,
        tail_bytes: usize,
    ) -> Result<Ended, JobStatus> {
        match ending {
            Ok(Ending::Ended(ended)) => Ok(ended),
            Err(error) => Err(JobStatus::Failed {
                reason: format!("lost track of the {process}: {error}"),
                exit: None,
                stderr_tail: logs.stderr_tail(tail_bytes),
            }),
            Ok(Ending::TimedOut) => Err(JobStatus::TimedOut {
                after: timeout,
                stderr_tail: logs.stderr_tail(tail_bytes),
            }),
            Ok(Ending::Cancelled) => Err(JobStatus::Cancelled),
        }
    }
}

/// SIGKILLs a child's process group when dropped while armed: the run future was dropped mid-way (`kill_on_drop`
/// alone reaches only the leader, not what it started).
pub(crate) struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    pub(crate) fn new(child: &Child) -> Self {
        GroupGuard { pgid: child.id() }
    }

    /// The child was reaped and its group swept: nothing left to kill (and its pid may be reused).
    pub(crate) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            if let Err(error) = process::signal_group(pgid, libc::SIGKILL) {
                tracing::warn!(pgid, %error, "could not kill a dropped job's process group; it may linger");
            }
        }
    }
}

/// Wait for `child` to end, stopping it (SIGTERM, `grace`, SIGKILL to its group) on timeout or when `cancel` fires.
/// `before_stop` runs just before a stop (the SSH executor closes the remote's stdin there).
pub(crate) async fn supervise(
    child: &mut Child,
    timeout: Duration,
    grace: Duration,
    cancel: impl Future<Output = ()>,
    before_stop: impl FnOnce(),
) -> Result<Ending, process::ProcessError> {
    let mut guard = GroupGuard::new(child);
    let pid = child.id().unwrap_or(0);
    let stop_as = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|source| process::ProcessError::Wait { pid, source })?;
            // Sweep anything the job left running in its group; then nothing is ours any more.
            if pid > 1 {
                if let Err(error) = process::signal_group(pid, libc::SIGKILL) {
                    tracing::warn!(pid, %error, "could not sweep a finished job's process group");
                }
            }
            guard.disarm();
            return Ok(Ending::Ended(Ended::from_status(status)));
        }
        _ = tokio::time::sleep(timeout) => Ending::TimedOut,
        _ = cancel => Ending::Cancelled,
    };
    before_stop();
    let result = process::terminate(child, grace).await;
    guard.disarm();
    result.map(|_| stop_as)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tails_start_at_this_attempt_and_at_a_line_boundary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.err");
        std::fs::write(&path, "old attempt\n").expect("write");
        let from = std::fs::metadata(&path).expect("meta").len();
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"line one\nline two\n").expect("append");
        assert_eq!(
            read_tail(&path, from, 1000).expect("tail"),
            "line one\nline two\n"
        );
        assert_eq!(read_tail(&path, from, 12).expect("tail"), "line two\n");
        assert_eq!(
            read_tail(&path, 0, 1000).expect("tail"),
            "old attempt\nline one\nline two\n"
        );
        assert!(read_tail(&dir.path().join("missing"), 0, 10).is_err());
    }
}
