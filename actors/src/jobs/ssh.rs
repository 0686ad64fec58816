//! The SSH executor: runs one attempt of a [`JobSpec`] on a peer through the `ssh` client, with the same contract as
//! the local executor ([`JobOutcome`]); the games stay on the peer.
//!
//! The local child is `ssh -o KEY=VALUE... -- DESTINATION SCRIPT` (argv, no local shell; `--` keeps a destination
//! from being read as an option). `SCRIPT` is for the peer's POSIX login shell: every argv item of the rendered
//! `remote_command` is single-quoted, so a value stays one argument there too. The script runs the job in the
//! background and watches its own stdin, which is a pipe held by this executor: when the run ends early (timeout,
//! cancel, dropped future, or this daemon dying) the pipe closes, the connection drops, and the watcher sends the
//! remote job SIGTERM, then SIGKILL after `stop_grace`. So a stopped job does not go on running on the peer.
//!
//! Games written: the remote command must print the report line `{"games_written":N,"output":"..."}` last on
//! stdout (`coordinator selfplay-demo` does); N must equal the games asked for. Exit 255 is ssh's own failure (no
//! connection, auth refused, host key changed). Logs are local, as for local jobs: `<logs_dir>/<job id>.out|.err`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::JobsConfig;
use super::local::describe_exit;
use super::outcome::{GamesReport, JobOutcome, JobStatus};
use super::run::{start_logged, supervise, AttemptLogs, Ending};
use super::spec::{check_job_id, render, JobSpec};
use crate::process::Ended;

/// Exit code of the remote script when it cannot enter `remote_dir` or create the output directory.
pub const REMOTE_SETUP_FAILED: i32 = 96;

/// Runs jobs on peers over SSH. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SshExecutor {
    config: Arc<JobsConfig>,
}

/// Quote `arg` for a POSIX shell: `'...'`, with each `'` written as `'\''`.
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// The script run by the peer's shell: enter `remote_dir`, make the output's directory, run `argv` in the background,
/// stop it (SIGTERM, `grace`, SIGKILL) if stdin closes first, and exit with its status.
pub fn remote_script(
    argv: &[String],
    remote_dir: Option<&str>,
    output: &Path,
    grace: Duration,
) -> String {
    let mut script = String::from("set -u\n");
    if let Some(dir) = remote_dir.filter(|d| !d.is_empty()) {
        script.push_str(&format!(
            "cd -- {} || exit {REMOTE_SETUP_FAILED}\n",
            shell_quote(dir)
        ));
    }
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        script.push_str(&format!(
            "mkdir -p -- {} || exit {REMOTE_SETUP_FAILED}\n",
            shell_quote(&parent.to_string_lossy())
        ));
    }
    let command: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    let grace_s = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    script.push_str(&format!(
        "exec 3<&0\n\
         {command} 3<&- &\n\
         job=$!\n\
         ( while read -r line <&3; do :; done; kill -TERM \"$job\" 2>/dev/null; sleep {grace_s}; kill -KILL \"$job\" 2>/dev/null ) >/dev/null 2>&1 &\n\
         watch=$!\n\
         wait \"$job\"; status=$?\n\
         kill \"$watch\" 2>/dev/null\n\
         exit \"$status\"\n",
        command = command.join(" ")
    ));
    script
}

/// Check a `user@host` destination: not empty, no leading `-`, no whitespace or control characters.
pub fn check_destination(destination: &str) -> Result<(), String> {
    if destination.is_empty()
        || destination.starts_with('-')
        || destination
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "ssh destination {destination:?} is not a user@host; fix the node's `ssh` entry in cluster.nodes"
        ));
    }
    Ok(())
}

impl SshExecutor {
    /// An executor reaching peers with `config.ssh` and running `config.ssh.remote_command` there.
    pub fn new(config: Arc<JobsConfig>) -> Self {
        SshExecutor { config }
    }

    /// The local argv that runs `spec` on `destination` (`user@host`).
    pub fn command_line(&self, spec: &JobSpec, destination: &str) -> Result<Vec<String>, String> {
        check_job_id(&spec.id).map_err(|e| e.to_string())?;
        check_destination(destination)?;
        let ssh = &self.config.ssh;
        let remote_argv = render(&ssh.remote_command, spec, Path::new(&ssh.remote_program))
            .map_err(|e| e.to_string())?;
        let program = ssh
            .program
            .to_str()
            .ok_or_else(|| format!("ssh program {:?} is not valid UTF-8", ssh.program))?;
        let mut argv = vec![program.to_string()];
        for option in &ssh.options {
            argv.push("-o".to_string());
            argv.push(option.clone());
        }
        argv.push("--".to_string());
        argv.push(destination.to_string());
        argv.push(remote_script(
            &remote_argv,
            ssh.remote_dir.as_deref(),
            &spec.output,
            self.config.stop_grace,
        ));
        Ok(argv)
    }

    /// Run one attempt of `spec` on `destination` to its end.
    pub async fn run(&self, spec: &JobSpec, destination: &str) -> JobOutcome {
        self.run_until(spec, destination, std::future::pending())
            .await
    }

    /// Run one attempt of `spec` on `destination`, stopping it (here and on the peer) if `cancel` completes first.
    pub async fn run_until(
        &self,
        spec: &JobSpec,
        destination: &str,
        cancel: impl Future<Output = ()>,
    ) -> JobOutcome {
        let started = Instant::now();
        let status = self.attempt(spec, destination, cancel).await;
        JobOutcome::ended(spec, status, started)
    }

    async fn attempt(
        &self,
        spec: &JobSpec,
        destination: &str,
        cancel: impl Future<Output = ()>,
    ) -> JobStatus {
        let argv = match self.command_line(spec, destination) {
            Ok(argv) => argv,
            Err(reason) => return JobStatus::not_started(reason),
        };
        let (logs, mut child) = match start_logged(&self.config, &spec.id, &argv, Stdio::piped()) {
            Ok(started) => started,
            Err(status) => return status,
        };
        // Held open for the whole run: its closing tells the peer to stop the job.
        let mut remote_stdin = child.stdin.take();
        tracing::info!(job = %spec.id, config = %spec.config_key, games = spec.games, destination, "remote job started");
        let ending = supervise(
            &mut child,
            self.config.job_timeout,
            self.config.stop_grace,
            cancel,
            || drop(remote_stdin.take()),
        )
        .await;
        drop(remote_stdin);
        let tail_bytes = self.config.stderr_tail_bytes;
        let ended = match Ending::settle(
            ending,
            "ssh process",
            self.config.job_timeout,
            &logs,
            tail_bytes,
        ) {
            Ok(ended) => ended,
            Err(status) => return status,
        };
        match ended {
            Ended::Exited { code: 0 } => {
                let wanted = u64::from(spec.games);
                let output = spec.output.clone();
                tokio::task::spawn_blocking(move || {
                    verify_remote_games(&logs, &output, wanted, tail_bytes)
                })
                .await
                .unwrap_or_else(|error| {
                    JobStatus::not_started(format!("checking the games panicked: {error}"))
                })
            }
            ended => {
                let reason = match ended {
                    Ended::Exited { code: 255 } => format!(
                        "ssh to {destination} failed (exit 255: no connection, refused key or changed host key; \
                         see the stderr tail)"
                    ),
                    Ended::Exited {
                        code: REMOTE_SETUP_FAILED,
                    } => format!(
                        "the peer could not enter remote_dir or create the output directory (exit {REMOTE_SETUP_FAILED})"
                    ),
                    other => format!("remote job {}", describe_exit(other)),
                };
                JobStatus::Failed {
                    reason,
                    exit: Some(ended),
                    stderr_tail: logs.stderr_tail(tail_bytes),
                }
            }
        }
    }
}

/// Check what a remote job that exited 0 reported: its report line must say it wrote the games asked for.
fn verify_remote_games(
    logs: &AttemptLogs,
    output: &PathBuf,
    wanted: u64,
    tail_bytes: usize,
) -> JobStatus {
    let failed = |reason: String| JobStatus::Failed {
        reason,
        exit: Some(Ended::Exited { code: 0 }),
        stderr_tail: logs.stderr_tail(tail_bytes),
    };
    let report = logs
        .stdout_tail()
        .ok()
        .and_then(|text| GamesReport::find_last(&text));
    match report {
        None => failed(
            "the remote job exited 0 without its report line {\"games_written\":N,...}; \
             its games cannot be checked"
                .to_string(),
        ),
        Some(report) if report.games_written != wanted => failed(format!(
            "the remote job reported {} games written to {:?}, {wanted} were asked for",
            report.games_written, report.output
        )),
        Some(report) => {
            if report.output != *output {
                tracing::info!(expected = %output.display(), reported = %report.output.display(), "remote job reported its output path resolved");
            }
            JobStatus::Succeeded {
                games_written: report.games_written,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::local::tests::wait_dead;
    use crate::jobs::spec::tests::sample_spec;
    use crate::process;
    use tokio::process::Command;

    const WAIT: Duration = Duration::from_secs(30);

    /// Stands in for the ssh client: skips options up to `--`, takes the destination, and runs the remote command
    /// with `sh -c`, as sshd runs it with the login shell. Exit 255 for the destination `unreachable`.
    const FAKE_SSH: &str = r#"#!/bin/sh
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
if [ "$1" = "unreachable" ]; then echo "ssh: connect to host unreachable port 22: Connection refused" >&2; exit 255; fi
echo "$1" > "$(dirname "$0")/destination"
shift
exec sh -c "$1"
"#;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let fake = dir.path().join("fake-ssh");
            std::fs::write(&fake, FAKE_SSH).expect("write fake ssh");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            Fixture { dir }
        }

        fn config(&self, script: &str) -> JobsConfig {
            let mut config = JobsConfig {
                logs_dir: self.dir.path().join("logs"),
                job_timeout: Duration::from_secs(20),
                stop_grace: Duration::from_millis(300),
                ..JobsConfig::default()
            };
            config.ssh.program = self.dir.path().join("fake-ssh");
            config.ssh.remote_command = vec![
                "sh".into(),
                "-c".into(),
                // Braces in a template item are placeholders: the script's own are escaped.
                script.replace('{', "{{").replace('}', "}}"),
                "job".into(),
                "{output}".into(),
                "{games}".into(),
                "{board}".into(),
            ];
            config.ssh.remote_dir = Some(
                self.dir
                    .path()
                    .join("remote home")
                    .to_string_lossy()
                    .into_owned(),
            );
            config
        }

        fn spec(&self, games: u32) -> JobSpec {
            JobSpec {
                games,
                id: "job-1".into(),
                node: "peer-1".into(),
                output: PathBuf::from("data/games/hex8_2p/job-1.db"),
                ..sample_spec()
            }
        }

        async fn run(&self, config: JobsConfig, spec: &JobSpec, destination: &str) -> JobOutcome {
            std::fs::create_dir_all(self.dir.path().join("remote home")).expect("remote home");
            let executor = SshExecutor::new(Arc::new(config));
            tokio::time::timeout(WAIT, executor.run(spec, destination))
                .await
                .expect("ended in time")
        }
    }

    const REPORT: &str = r#"printf '%s\n' "$3" > board.txt; : > "$1"; printf '{"games_written":%s,"output":"%s"}\n' "$2" "$1""#;

    #[test]
    fn quoting_survives_a_real_shell() {
        let hostile = [
            "plain", "", "it's", "a b", "$(id)", "`id`", "x;y", "\\n", "'\"'", "--opt=*",
        ];
        for arg in hostile {
            let script = format!("printf '%s' {}", shell_quote(arg));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .expect("sh");
            assert_eq!(String::from_utf8_lossy(&out.stdout), arg, "{arg:?}");
        }
    }

    #[test]
    fn command_line_uses_options_double_dash_and_one_script() {
        let executor = SshExecutor::new(Arc::new(JobsConfig::default()));
        let argv = executor
            .command_line(&sample_spec(), "ai@10.0.0.5")
            .expect("argv");
        let defaults = JobsConfig::default();
        let options: Vec<&str> = defaults.ssh.options.iter().map(String::as_str).collect();
        assert_eq!(argv[0], "ssh");
        for (i, option) in options.iter().enumerate() {
            assert_eq!(argv[1 + 2 * i], "-o");
            assert_eq!(argv[2 + 2 * i], *option);
        }
        let rest = &argv[1 + 2 * options.len()..];
        assert_eq!(rest.len(), 3);
        assert_eq!(rest[0], "--");
        assert_eq!(rest[1], "ai@10.0.0.5");
        assert!(
            rest[2].contains("'coordinator' 'selfplay-demo' '--board' 'hex8'"),
            "{}",
            rest[2]
        );
        for bad in ["", "-oProxyCommand=evil", "a b", "a\nb"] {
            assert!(
                executor.command_line(&sample_spec(), bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_remote_job_reporting_its_games_succeeds_and_values_stay_single_arguments() {
        let fx = Fixture::new();
        let mut spec = fx.spec(6);
        spec.board = "hex8'; touch pwned; echo '".into();
        let outcome = fx.run(fx.config(REPORT), &spec, "ai@peer-1").await;
        assert_eq!(
            outcome.status,
            JobStatus::Succeeded { games_written: 6 },
            "{outcome:?}"
        );
        assert_eq!(outcome.node, "peer-1");
        let home = fx.dir.path().join("remote home");
        assert_eq!(
            std::fs::read_to_string(home.join("board.txt")).expect("board"),
            format!("{}\n", spec.board)
        );
        assert!(!home.join("pwned").exists());
        assert!(
            home.join("data/games/hex8_2p").is_dir(),
            "the output directory was made"
        );
        assert_eq!(
            std::fs::read_to_string(fx.dir.path().join("destination")).expect("dest"),
            "ai@peer-1\n"
        );
        let out_log = std::fs::read_to_string(fx.dir.path().join("logs/job-1.out")).expect("log");
        assert!(out_log.contains("\"games_written\":6"));
    }

    #[tokio::test]
    async fn a_wrong_or_missing_report_fails() {
        let fx = Fixture::new();
        let outcome = fx.run(fx.config(REPORT), &fx.spec(6), "peer").await;
        assert!(outcome.status.is_success());
        let lying = r#"echo '{"games_written":2,"output":"x"}'"#;
        let outcome = fx.run(fx.config(lying), &fx.spec(6), "peer").await;
        assert!(
            matches!(&outcome.status, JobStatus::Failed { reason, .. } if reason.contains("reported 2")),
            "{outcome:?}"
        );
        let silent = "true";
        let outcome = fx.run(fx.config(silent), &fx.spec(6), "peer").await;
        assert!(
            matches!(&outcome.status, JobStatus::Failed { reason, .. } if reason.contains("report line")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn ssh_failures_and_remote_failures_are_told_apart() {
        let fx = Fixture::new();
        let outcome = fx.run(fx.config(REPORT), &fx.spec(1), "unreachable").await;
        match &outcome.status {
            JobStatus::Failed {
                reason,
                exit,
                stderr_tail,
            } => {
                assert_eq!(*exit, Some(Ended::Exited { code: 255 }));
                assert!(reason.contains("ssh to unreachable failed"), "{reason}");
                assert!(stderr_tail.contains("Connection refused"), "{stderr_tail}");
            }
            other => panic!("{other:?}"),
        }
        let outcome = fx
            .run(fx.config("echo boom >&2; exit 4"), &fx.spec(1), "peer")
            .await;
        assert!(
            matches!(&outcome.status, JobStatus::Failed { reason, exit: Some(Ended::Exited { code: 4 }), stderr_tail }
                if reason.contains("code 4") && stderr_tail == "boom\n"),
            "{outcome:?}"
        );
        let mut config = fx.config(REPORT);
        config.ssh.remote_dir = Some(fx.dir.path().join("missing").to_string_lossy().into_owned());
        let outcome = fx.run(config, &fx.spec(1), "peer").await;
        assert!(
            matches!(&outcome.status, JobStatus::Failed { reason, .. } if reason.contains("remote_dir")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_remote_job_past_its_timeout_is_stopped() {
        let fx = Fixture::new();
        let config = JobsConfig {
            job_timeout: Duration::from_millis(500),
            ..fx.config("sleep 100")
        };
        let outcome = fx.run(config, &fx.spec(1), "peer").await;
        assert!(
            matches!(outcome.status, JobStatus::TimedOut { .. }),
            "{outcome:?}"
        );
    }

    /// The peer side on its own: when the script's stdin closes (the connection dropped), the job is stopped.
    #[tokio::test]
    async fn the_remote_script_stops_its_job_when_stdin_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            format!("echo $$ > '{}'; exec sleep 100", pid_file.display()),
        ];
        let script = remote_script(&argv, None, Path::new("out.db"), Duration::from_millis(200));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .stdin(Stdio::piped());
        let mut child = process::spawn_owned(&mut command).expect("spawn");
        let stdin = child.stdin.take();
        tokio::time::timeout(WAIT, async {
            while std::fs::read_to_string(&pid_file)
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("job started");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        drop(stdin);
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("script ended")
            .expect("wait");
        assert_eq!(
            Ended::from_status(status),
            Ended::Exited {
                code: 128 + libc::SIGTERM
            }
        );
        wait_dead(pid).await;
    }
}
