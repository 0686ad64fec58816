//! Child processes that never outlive the daemon: spawn in their own process group with a parent-death signal, and
//! stop them with SIGTERM, a grace period, then SIGKILL. Shared by the data-server monitor and the job executor.
//!
//! What it guarantees:
//! - [`spawn_owned`] puts the child in a new process group (its pgid is its pid) so a stop reaches everything the
//!   child started, sets `PR_SET_PDEATHSIG(SIGKILL)` so the kernel kills the child when the daemon dies, even by
//!   `kill -9`, and sets `kill_on_drop` so a dropped handle never leaks a process.
//! - [`terminate`] sends SIGTERM to the group, waits up to the grace period, sends SIGKILL to the group, and reaps the
//!   child; it reports how the child ended ([`Ended`]).
//!
//! Caveat (Linux semantics): the parent-death signal fires when the *thread* that spawned the child exits, not only
//! the process. Spawn from a long-lived thread (an actix arbiter or runtime worker), never from `spawn_blocking`,
//! whose threads retire when idle. Grandchildren do not inherit the parent-death signal; they are reached by the
//! group signals of [`terminate`].
//!
//! It knows nothing of what the child is (data server, selfplay job) nor of restart policy.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

/// How long [`terminate`] waits for the kernel to reap a child after SIGKILL before reporting it as stuck.
pub const REAP_DEADLINE: Duration = Duration::from_secs(5);

/// Errors of spawning, signalling and reaping children.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("could not start {program}: {source}; check that it exists and is executable")]
    Spawn {
        /// The program that was started.
        program: String,
        /// The OS error.
        source: io::Error,
    },
    /// Waiting on the child failed.
    #[error("could not wait for child {pid}: {source}")]
    Wait {
        /// The child's pid.
        pid: u32,
        /// The OS error.
        source: io::Error,
    },
    /// Sending a signal to the child's process group failed for a reason other than "already gone".
    #[error("could not send signal {signal} to process group {pid}: {source}")]
    Signal {
        /// The process group id (the child's pid).
        pid: u32,
        /// The signal number.
        signal: i32,
        /// The OS error.
        source: io::Error,
    },
    /// The child did not go away after SIGKILL within [`REAP_DEADLINE`] (stuck in uninterruptible I/O).
    #[error("child {pid} still not reaped {waited:?} after SIGKILL; it is probably stuck in uninterruptible I/O")]
    Unreapable {
        /// The child's pid.
        pid: u32,
        /// How long we waited.
        waited: Duration,
    },
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "how")]
pub enum Ended {
    /// It exited by itself (or on SIGTERM, by handling it) with this code.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// It died of this signal (SIGTERM when it did not handle it, or a signal from elsewhere).
    Signalled {
        /// The signal number.
        signal: i32,
    },
    /// It ignored SIGTERM for the whole grace period and was killed with SIGKILL.
    KilledAfterGrace,
}

impl Ended {
    /// Classify an exit status.
    pub fn from_status(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Ended::Exited { code },
            (None, Some(signal)) => Ended::Signalled { signal },
            (None, None) => Ended::Exited { code: -1 },
        }
    }
}

impl std::fmt::Display for Ended {
    /// `exited with code 3`, `killed by signal 9`, `killed after ignoring SIGTERM`: for outcomes and log lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited { code } => write!(f, "exited with code {code}"),
            Ended::Signalled { signal } => write!(f, "killed by signal {signal}"),
            Ended::KilledAfterGrace => f.write_str("killed after ignoring SIGTERM"),
        }
    }
}

/// Spawn `command` as an owned child: own process group, SIGKILL on parent death, killed on drop.
///
/// Call it from a long-lived thread (see the module doc).
pub fn spawn_owned(command: &mut Command) -> Result<Child, ProcessError> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    command.process_group(0).kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions (getppid, prctl).
    #[cfg(target_os = "linux")]
    unsafe {
        let parent = libc::getpid();
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would ever send the signal.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited before the child started"));
            }
            Ok(())
        });
    }
    command
        .spawn()
        .map_err(|source| ProcessError::Spawn { program, source })
}

/// Stop `child`: SIGTERM to its process group, wait up to `grace`, then SIGKILL to the group, and reap it.
///
/// A child that already exited is reaped and reported as it ended. After the child is gone, any process left in
/// its group (a grandchild that ignored SIGTERM) is sent SIGKILL too.
pub async fn terminate(child: &mut Child, grace: Duration) -> Result<Ended, ProcessError> {
    let Some(pid) = child.id() else {
        // Already reaped by an earlier wait: report what it ended with.
        let status = child
            .wait()
            .await
            .map_err(|source| ProcessError::Wait { pid: 0, source })?;
        return Ok(Ended::from_status(status));
    };
    if let Some(status) = child
        .try_wait()
        .map_err(|source| ProcessError::Wait { pid, source })?
    {
        sweep_group(pid);
        return Ok(Ended::from_status(status));
    }
    signal_group(pid, libc::SIGTERM)?;
    let ended = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            Ended::from_status(status.map_err(|source| ProcessError::Wait { pid, source })?)
        }
        Err(_elapsed) => {
            tracing::warn!(
                pid,
                grace_ms = grace.as_millis() as u64,
                "child ignored SIGTERM; sending SIGKILL"
            );
            signal_group(pid, libc::SIGKILL)?;
            match tokio::time::timeout(REAP_DEADLINE, child.wait()).await {
                Ok(status) => {
                    status.map_err(|source| ProcessError::Wait { pid, source })?;
                    Ended::KilledAfterGrace
                }
                Err(_elapsed) => {
                    return Err(ProcessError::Unreapable {
                        pid,
                        waited: REAP_DEADLINE,
                    })
                }
            }
        }
    };
    sweep_group(pid);
    Ok(ended)
}

/// Send `signal` to the process group `pgid`; "no such process" is not an error (it is already gone).
pub fn signal_group(pgid: u32, signal: i32) -> Result<(), ProcessError> {
    let Ok(group) = libc::pid_t::try_from(pgid) else {
        return Err(ProcessError::Signal {
            pid: pgid,
            signal,
            source: io::Error::other("pid out of range"),
        });
    };
    if group <= 1 {
        // kill(-0) or kill(-1) would signal our own group or every process: never.
        return Err(ProcessError::Signal {
            pid: pgid,
            signal,
            source: io::Error::other("refusing to signal group <= 1"),
        });
    }
    // SAFETY: kill has no memory-safety preconditions.
    let result = unsafe { libc::kill(-group, signal) };
    if result == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(ProcessError::Signal {
        pid: pgid,
        signal,
        source: error,
    })
}

/// SIGKILL whatever is left in the group of a reaped leader, logging (not failing) on error.
fn sweep_group(pgid: u32) {
    if let Err(error) = signal_group(pgid, libc::SIGKILL) {
        tracing::warn!(pgid, %error, "could not sweep the child's process group; leftovers may remain");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;
    use std::time::Instant;
    use tokio::io::{AsyncBufReadExt, BufReader};

    const WAIT: Duration = Duration::from_secs(10);

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script).stdout(Stdio::piped());
        command
    }

    async fn first_line(child: &mut Child) -> String {
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("child printed in time")
            .expect("read stdout")
            .expect("a line")
    }

    /// True when `pid` no longer runs (gone, or a zombie waiting for its parent).
    fn is_dead(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .map(|rest| rest.trim_start().starts_with('Z'))
                .unwrap_or(false),
        }
    }

    async fn wait_until_dead(pid: i32) {
        let deadline = Instant::now() + WAIT;
        while !is_dead(pid) {
            assert!(Instant::now() < deadline, "process {pid} still alive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn child_runs_in_its_own_process_group() {
        let mut child = spawn_owned(&mut sh("echo ready; exec sleep 100")).expect("spawn");
        first_line(&mut child).await;
        let pid = child.id().expect("running") as libc::pid_t;
        // SAFETY: getpgid has no memory-safety preconditions.
        let pgid = unsafe { libc::getpgid(pid) };
        assert_eq!(pgid, pid);
        // SAFETY: as above.
        assert_ne!(pgid, unsafe { libc::getpgid(0) });
        terminate(&mut child, WAIT).await.expect("terminate");
    }

    #[tokio::test]
    async fn sigterm_stops_a_cooperative_child_without_waiting_the_grace() {
        let mut child = spawn_owned(Command::new("sleep").arg("100")).expect("spawn");
        let started = Instant::now();
        let ended = terminate(&mut child, Duration::from_secs(30))
            .await
            .expect("terminate");
        assert_eq!(
            ended,
            Ended::Signalled {
                signal: libc::SIGTERM
            }
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_child_ignoring_sigterm_is_killed_after_the_grace() {
        let mut child =
            spawn_owned(&mut sh("trap '' TERM; echo ready; exec sleep 100")).expect("spawn");
        first_line(&mut child).await;
        let pid = child.id().expect("running") as i32;
        let ended = terminate(&mut child, Duration::from_millis(300))
            .await
            .expect("terminate");
        assert_eq!(ended, Ended::KilledAfterGrace);
        assert!(is_dead(pid));
    }

    #[tokio::test]
    async fn a_child_that_exits_on_sigterm_reports_its_code() {
        let mut child = spawn_owned(&mut sh(
            "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        ))
        .expect("spawn");
        first_line(&mut child).await;
        let ended = terminate(&mut child, WAIT).await.expect("terminate");
        assert_eq!(ended, Ended::Exited { code: 7 });
    }

    #[tokio::test]
    async fn an_already_exited_child_reports_how_it_ended() {
        let mut child = spawn_owned(&mut sh("exit 3")).expect("spawn");
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("exits")
            .expect("wait");
        assert_eq!(Ended::from_status(status), Ended::Exited { code: 3 });
        assert_eq!(
            terminate(&mut child, WAIT).await.expect("terminate"),
            Ended::Exited { code: 3 }
        );
    }

    #[tokio::test]
    async fn grandchildren_in_the_group_are_stopped_too() {
        let mut child =
            spawn_owned(&mut sh("trap '' TERM; sleep 100 & echo $!; wait")).expect("spawn");
        let grandchild: i32 = first_line(&mut child).await.trim().parse().expect("pid");
        assert!(!is_dead(grandchild));
        terminate(&mut child, Duration::from_millis(200))
            .await
            .expect("terminate");
        wait_until_dead(grandchild).await;
    }

    #[tokio::test]
    async fn spawn_failure_names_the_program() {
        let error = spawn_owned(&mut Command::new("/nonexistent/coordinator-test-binary"))
            .expect_err("fails");
        assert!(
            error
                .to_string()
                .contains("/nonexistent/coordinator-test-binary"),
            "{error}"
        );
    }

    #[test]
    fn refuses_to_signal_group_zero_or_one() {
        assert!(signal_group(0, libc::SIGTERM).is_err());
        assert!(signal_group(1, libc::SIGTERM).is_err());
    }

    /// The parent-death signal: when the spawning thread goes away without stopping the child (handle leaked, so
    /// `kill_on_drop` cannot act), the kernel kills the child.
    #[test]
    fn child_dies_when_its_spawning_thread_dies() {
        let pid = std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let child = spawn_owned(Command::new("sleep").arg("100")).expect("spawn");
                let pid = child.id().expect("running") as i32;
                std::mem::forget(child);
                pid
            })
        })
        .join()
        .expect("thread");
        let deadline = Instant::now() + WAIT;
        while !is_dead(pid) {
            assert!(
                Instant::now() < deadline,
                "orphan {pid} survived its parent thread"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: reaping our own zombie child; a null status pointer is allowed.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
}
