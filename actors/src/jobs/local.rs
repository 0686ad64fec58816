//! The local executor: runs one attempt of a [`JobSpec`] as an owned child process of this node and says how it
//! ended ([`JobOutcome`]).
//!
//! One attempt: render the command template (argv, no shell), remove the job's previous output (a failed attempt's
//! leftovers must not be counted), start the program in its own process group with a parent-death signal, stdout
//! and stderr appended to `<logs_dir>/<job id>.out|.err`, wait under `job_timeout` (then SIGTERM, `stop_grace`,
//! SIGKILL), and on exit 0 check the games: the output file is counted ([`count_games`]), the count must equal the
//! games asked for, and the report line `{"games_written":N,...}`, when printed, must agree with the file.
//!
//! Cancelling: [`LocalExecutor::run_until`] stops the child gracefully when its `cancel` future completes; dropping
//! the run future kills the child's whole process group at once. It knows nothing of retries or scheduling.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use super::config::JobsConfig;
use super::demo::count_games;
use super::outcome::{GamesReport, JobOutcome, JobStatus};
use super::run::{start_logged, supervise, AttemptLogs, Ending};
use super::spec::{check_job_id, render, JobSpec};
use crate::process::Ended;

/// Runs jobs as local child processes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    config: Arc<JobsConfig>,
    self_exe: PathBuf,
}

impl LocalExecutor {
    /// An executor running `config.command`, with `self_exe` standing for `{self}` (normally
    /// `std::env::current_exe()`).
    pub fn new(config: Arc<JobsConfig>, self_exe: PathBuf) -> Self {
        LocalExecutor { config, self_exe }
    }

    /// Run one attempt of `spec` to its end.
    pub async fn run(&self, spec: &JobSpec) -> JobOutcome {
        self.run_until(spec, std::future::pending()).await
    }

    /// Run one attempt of `spec`, stopping it gracefully (outcome [`JobStatus::Cancelled`]) if `cancel` completes
    /// first. Must be polled on a long-lived thread (see [`crate::process`]).
    pub async fn run_until(&self, spec: &JobSpec, cancel: impl Future<Output = ()>) -> JobOutcome {
        let started = Instant::now();
        let status = self.attempt(spec, cancel).await;
        JobOutcome::ended(spec, status, started)
    }

    async fn attempt(&self, spec: &JobSpec, cancel: impl Future<Output = ()>) -> JobStatus {
        if let Err(error) = check_job_id(&spec.id) {
            return JobStatus::not_started(error.to_string());
        }
        let argv = match render(&self.config.command, spec, &self.self_exe) {
            Ok(argv) => argv,
            Err(error) => return JobStatus::not_started(error.to_string()),
        };
        if let Err(reason) = prepare_output(&spec.output) {
            return JobStatus::not_started(reason);
        }
        let (logs, mut child) = match start_logged(&self.config, &spec.id, &argv, Stdio::null()) {
            Ok(started) => started,
            Err(status) => return status,
        };
        tracing::info!(job = %spec.id, config = %spec.config_key, games = spec.games, program = %argv[0], "job started");
        let ending = supervise(
            &mut child,
            self.config.job_timeout,
            self.config.stop_grace,
            cancel,
            || {},
        )
        .await;
        let tail_bytes = self.config.stderr_tail_bytes;
        let ended = match Ending::settle(
            ending,
            "job process",
            self.config.job_timeout,
            &logs,
            tail_bytes,
        ) {
            Ok(ended) => ended,
            Err(status) => return status,
        };
        match ended {
            Ended::Exited { code: 0 } => {
                let output = spec.output.clone();
                let wanted = u64::from(spec.games);
                let verdict = tokio::task::spawn_blocking(move || {
                    verify_local_games(&logs, &output, wanted, tail_bytes)
                })
                .await;
                match verdict {
                    Ok(status) => status,
                    Err(error) => {
                        JobStatus::not_started(format!("checking the games panicked: {error}"))
                    }
                }
            }
            ended => JobStatus::Failed {
                reason: describe_exit(ended),
                exit: Some(ended),
                stderr_tail: logs.stderr_tail(tail_bytes),
            },
        }
    }
}

/// Make the output's directory and remove a previous attempt's file. Err: a reason for humans.
pub(crate) fn prepare_output(output: &Path) -> Result<(), String> {
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!("could not create the output directory {dir:?}: {e}; check it is writable")
        })?;
    }
    match std::fs::remove_file(output) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "could not remove the previous output {output:?}: {e}"
        )),
    }
}

/// How a non-zero or signalled end reads in an outcome.
pub(crate) fn describe_exit(ended: Ended) -> String {
    ended.to_string()
}

/// Check what a job that exited 0 wrote: count the file, compare with the request and with its report line.
fn verify_local_games(
    logs: &AttemptLogs,
    output: &Path,
    wanted: u64,
    tail_bytes: usize,
) -> JobStatus {
    let failed = |reason: String| JobStatus::Failed {
        reason,
        exit: Some(Ended::Exited { code: 0 }),
        stderr_tail: logs.stderr_tail(tail_bytes),
    };
    let counted = match count_games(output) {
        Ok(counted) => counted,
        Err(error) => {
            return failed(format!(
                "exited 0 but its games could not be counted: {error}"
            ))
        }
    };
    let report = logs
        .stdout_tail()
        .ok()
        .and_then(|text| GamesReport::find_last(&text));
    if let Some(report) = report {
        if report.games_written != counted {
            return failed(format!(
                "reported {} games written but {output:?} holds {counted}",
                report.games_written
            ));
        }
    }
    if counted != wanted {
        return failed(format!(
            "wrote {counted} games to {output:?}, {wanted} were asked for"
        ));
    }
    JobStatus::Succeeded {
        games_written: counted,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    use crate::jobs::spec::tests::sample_spec;

    const WAIT: Duration = Duration::from_secs(30);

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                dir: tempfile::tempdir().expect("tempdir"),
            }
        }

        fn config(&self, script: &str) -> JobsConfig {
            JobsConfig {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    // Braces in a template item are placeholders: the script's own are escaped.
                    script.replace('{', "{{").replace('}', "}}"),
                    "job".into(),
                    "{output}".into(),
                    "{games}".into(),
                    "{board}".into(),
                ],
                logs_dir: self.dir.path().join("logs"),
                output_dir: self.dir.path().join("games"),
                job_timeout: Duration::from_secs(20),
                stop_grace: Duration::from_millis(300),
                ..JobsConfig::default()
            }
        }

        fn spec(&self, games: u32) -> JobSpec {
            JobSpec {
                games,
                output: self.dir.path().join("games/hex8_2p/job-1.db"),
                id: "job-1".into(),
                ..sample_spec()
            }
        }

        async fn run(&self, config: JobsConfig, spec: &JobSpec) -> JobOutcome {
            let executor = LocalExecutor::new(Arc::new(config), PathBuf::from("unused"));
            tokio::time::timeout(WAIT, executor.run(spec))
                .await
                .expect("job ended in time")
        }

        fn log(&self, extension: &str) -> String {
            std::fs::read_to_string(
                self.dir
                    .path()
                    .join("logs")
                    .join(format!("job-1.{extension}")),
            )
            .unwrap_or_default()
        }
    }

    /// Writes $2 JSON-lines games to $1 and prints the report line.
    const WRITE_GAMES: &str = r#"i=0; : > "$1"; while [ $i -lt "$2" ]; do echo "{\"game\":$i}" >> "$1"; i=$((i+1)); done
echo "played $2 games" >&2
printf '{"games_written":%s,"output":"%s"}\n' "$2" "$1""#;

    #[tokio::test]
    async fn a_job_that_writes_its_games_succeeds() {
        let fx = Fixture::new();
        let outcome = fx.run(fx.config(WRITE_GAMES), &fx.spec(4)).await;
        assert_eq!(outcome.status, JobStatus::Succeeded { games_written: 4 });
        assert_eq!(outcome.job_id, "job-1");
        assert_eq!(outcome.node, "local");
        assert!(fx.log("out").contains("\"games_written\":4"));
        assert!(fx.log("err").contains("played 4 games"));
    }

    #[tokio::test]
    async fn the_demo_database_format_is_counted() {
        let fx = Fixture::new();
        let spec = fx.spec(3);
        let out = spec.output.clone();
        // Stand in for `coordinator selfplay-demo`: write the database beforehand into a side file and copy it.
        let side = fx.dir.path().join("side.db");
        crate::jobs::demo::run_selfplay_demo(crate::jobs::demo::DemoArgs {
            board: "hex8".into(),
            cells: 61,
            players: 2,
            games: 3,
            out: side.clone(),
            budget: 800,
            seed: 1,
            max_moves: 500,
            think_time_ms: 0,
            randomness: 0.1,
        })
        .expect("demo");
        let script = format!("cp '{}' \"$1\"", side.display());
        let outcome = fx.run(fx.config(&script), &spec).await;
        assert_eq!(outcome.status, JobStatus::Succeeded { games_written: 3 });
        assert!(out.exists());
    }

    #[tokio::test]
    async fn a_nonzero_exit_fails_with_the_code_and_stderr_tail() {
        let fx = Fixture::new();
        let outcome = fx
            .run(fx.config("echo 'engine exploded' >&2; exit 3"), &fx.spec(4))
            .await;
        match outcome.status {
            JobStatus::Failed {
                reason,
                exit,
                stderr_tail,
            } => {
                assert_eq!(exit, Some(Ended::Exited { code: 3 }));
                assert!(reason.contains("code 3"), "{reason}");
                assert_eq!(stderr_tail, "engine exploded\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_job_past_its_timeout_is_killed() {
        let fx = Fixture::new();
        let pid_file = fx.dir.path().join("pid");
        let script = format!(
            "trap '' TERM; sleep 100 & echo $! > '{}'; wait",
            pid_file.display()
        );
        let config = JobsConfig {
            job_timeout: Duration::from_millis(500),
            ..fx.config(&script)
        };
        let outcome = fx.run(config, &fx.spec(4)).await;
        assert!(
            matches!(outcome.status, JobStatus::TimedOut { after, .. } if after == Duration::from_millis(500)),
            "{outcome:?}"
        );
        // The grandchild, in the job's group, was stopped too.
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        wait_dead(pid).await;
    }

    #[tokio::test]
    async fn a_report_that_disagrees_with_the_file_fails() {
        let fx = Fixture::new();
        let script = r#"echo '{"g":1}' > "$1"; echo '{"games_written":4,"output":"x"}'"#;
        let outcome = fx.run(fx.config(script), &fx.spec(4)).await;
        match outcome.status {
            JobStatus::Failed { reason, .. } => assert!(reason.contains("reported 4"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn fewer_games_than_asked_fails_even_without_a_report() {
        let fx = Fixture::new();
        let outcome = fx
            .run(fx.config(r#"echo '{"g":1}' > "$1""#), &fx.spec(4))
            .await;
        match outcome.status {
            JobStatus::Failed { reason, .. } => {
                assert!(reason.contains("wrote 1 games"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn exit_zero_without_output_fails() {
        let fx = Fixture::new();
        let outcome = fx.run(fx.config("true"), &fx.spec(4)).await;
        match outcome.status {
            JobStatus::Failed { reason, .. } => {
                assert!(reason.contains("could not be counted"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_previous_attempts_output_is_not_counted_and_logs_append() {
        let fx = Fixture::new();
        let spec = fx.spec(2);
        let first = fx.run(fx.config(WRITE_GAMES), &spec).await;
        assert!(first.status.is_success());
        // Second attempt writes nothing and prints no report: the old file must not make it a success, and the old
        // report line in the appended stdout log must not be read.
        let second = fx.run(fx.config("echo second >&2"), &spec).await;
        assert!(!second.status.is_success(), "{second:?}");
        assert!(fx.log("err").contains("played 2 games\nsecond\n"));
    }

    #[tokio::test]
    async fn bad_specs_and_missing_programs_fail_without_running() {
        let fx = Fixture::new();
        let mut spec = fx.spec(1);
        spec.id = "../escape".into();
        let outcome = fx.run(fx.config("true"), &spec).await;
        assert!(
            matches!(&outcome.status, JobStatus::Failed { reason, exit: None, .. } if reason.contains("job id"))
        );
        let config = JobsConfig {
            command: vec!["/nonexistent/engine".into(), "{bogus}".into()],
            ..fx.config("true")
        };
        let outcome = fx.run(config, &fx.spec(1)).await;
        assert!(
            matches!(&outcome.status, JobStatus::Failed { reason, .. } if reason.contains("{bogus}"))
        );
        let config = JobsConfig {
            command: vec!["/nonexistent/engine".into()],
            ..fx.config("true")
        };
        let outcome = fx.run(config, &fx.spec(1)).await;
        assert!(
            matches!(&outcome.status, JobStatus::Failed { reason, exit: None, .. } if reason.contains("/nonexistent/engine")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn cancel_stops_the_job_gracefully() {
        let fx = Fixture::new();
        let executor =
            LocalExecutor::new(Arc::new(fx.config("sleep 100")), PathBuf::from("unused"));
        let spec = fx.spec(1);
        let outcome = tokio::time::timeout(
            WAIT,
            executor.run_until(&spec, tokio::time::sleep(Duration::from_millis(200))),
        )
        .await
        .expect("ended");
        assert_eq!(outcome.status, JobStatus::Cancelled);
    }

    #[tokio::test]
    async fn dropping_the_run_kills_the_whole_group() {
        let fx = Fixture::new();
        let pid_file = fx.dir.path().join("pid");
        let script = format!("sleep 100 & echo $! > '{}'; wait", pid_file.display());
        let executor = LocalExecutor::new(Arc::new(fx.config(&script)), PathBuf::from("unused"));
        let spec = fx.spec(1);
        let pid_written = async {
            while std::fs::read_to_string(&pid_file)
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        // The run future is dropped as soon as the grandchild's pid is known.
        tokio::time::timeout(WAIT, async {
            tokio::select! {
                outcome = executor.run(&spec) => panic!("the job ended by itself: {outcome:?}"),
                () = pid_written => {}
            }
        })
        .await
        .expect("the job wrote its pid");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        wait_dead(pid).await;
    }

    /// Wait until `pid` no longer runs (gone or a zombie).
    pub(crate) async fn wait_dead(pid: i32) {
        let deadline = Instant::now() + WAIT;
        loop {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    !stat
                        .rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false);
            if !alive {
                return;
            }
            assert!(Instant::now() < deadline, "process {pid} still alive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
