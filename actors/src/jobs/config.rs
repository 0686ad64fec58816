//! The `jobs` settings of the scheduler: which command a selfplay job runs, where its games and logs go, how long it
//! may take, how often it is retried, how many run at once per node, and how peers are reached over SSH.
//!
//! Defaults are the numbers of shared/domain/scheduler.md ("What to build beyond the original": max_moves 500, 1000 on
//! large boards, think time 500 ms, randomness 0.1) and shared/domain/resources-and-lifecycle.md (SIGTERM, 5 s,
//! SIGKILL). It does no I/O; [`JobsConfig::problems`] is pure validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::validate_template;

/// How selfplay jobs are run and kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Command of a local job, one argv item per entry, run directly (never through a shell). Placeholders:
    /// `{self}` (this coordinator's executable), `{board}`, `{players}`, `{games}`, `{budget}`, `{output}`,
    /// `{max_moves}`, `{think_time_ms}`, `{randomness}`, `{seed}`; `{{`/`}}` are literal braces. The job must write
    /// its games to `{output}` (SQLite with a `games` table, or JSON lines) and may print a last stdout line
    /// `{"games_written":N,"output":"..."}`, which is checked against the file.
    pub command: Vec<String>,
    /// Directory of the games files; a job writes `<output_dir>/<config>/<job id>.db`.
    pub output_dir: PathBuf,
    /// Directory of the per-job logs `<job id>.out` (stdout) and `<job id>.err` (stderr); attempts append.
    pub logs_dir: PathBuf,
    /// Longest a job may run; then it is stopped (SIGTERM, `stop_grace`, SIGKILL) and counts as timed out.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// Time between SIGTERM and SIGKILL when a job is stopped (timeout, cancel, shutdown).
    #[serde(with = "humantime_serde")]
    pub stop_grace: Duration,
    /// Attempts per job, the first included; a job failing them all becomes a dead letter.
    pub max_attempts: u32,
    /// Wait before a failed job is tried again.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Concurrent jobs per node until the resource optimizer sends its per-node targets.
    pub max_concurrent_per_node: u32,
    /// Finished jobs kept for `GET /jobs`.
    pub history_limit: usize,
    /// Bytes of a failed job's stderr kept in its outcome (the full log stays in `logs_dir`).
    pub stderr_tail_bytes: usize,
    /// Longest game passed as `{max_moves}` on small boards (hex8, square8).
    pub max_moves: u32,
    /// Longest game passed as `{max_moves}` on large boards (square19, hexagonal).
    pub max_moves_large_board: u32,
    /// Opponent think time per move passed as `{think_time_ms}`.
    #[serde(with = "humantime_serde")]
    pub think_time: Duration,
    /// Opponent randomness (0-1) passed as `{randomness}`.
    pub randomness: f64,
    /// How the planner hands jobs to peers' daemons and watches them (nodes with `api_url`).
    pub dispatch: super::remote::DispatchConfig,
    /// How jobs run on peers that have no daemon API (nodes with `ssh` and no `api_url`).
    pub ssh: SshConfig,
}

/// How jobs run on peers (nodes with `ssh: user@host` in the cluster list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    /// The ssh client program.
    pub program: PathBuf,
    /// Options passed as `-o KEY=VALUE`, in order. `StrictHostKeyChecking=no` (or `off`) is refused: an unknown host
    /// key is accepted once (`accept-new`) and a changed one is an error.
    pub options: Vec<String>,
    /// Command run on the peer, same placeholders as `command`; `{self}` is `remote_program`. Each item is quoted
    /// for the peer's POSIX login shell (sh, bash, zsh), so values stay single arguments there too. It must print
    /// the last stdout line `{"games_written":N,"output":"..."}` (the games stay on the peer).
    pub remote_command: Vec<String>,
    /// What `{self}` means on the peer: the coordinator executable there (on its `PATH`, or an absolute path).
    pub remote_program: String,
    /// Directory the remote command runs in (relative paths, like `output_dir`, resolve under it); none: the
    /// login directory.
    pub remote_dir: Option<String>,
}

/// The default job command: this coordinator's built-in demo engine with every flag.
pub fn default_command() -> Vec<String> {
    [
        "{self}",
        "selfplay-demo",
        "--board",
        "{board}",
        "--players",
        "{players}",
        "--games",
        "{games}",
        "--out",
        "{output}",
        "--budget",
        "{budget}",
        "--seed",
        "{seed}",
        "--max-moves",
        "{max_moves}",
        "--think-time-ms",
        "{think_time_ms}",
        "--randomness",
        "{randomness}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The default SSH options: never prompt, bounded connect, dead connections noticed, host keys learned once.
pub fn default_ssh_options() -> Vec<String> {
    [
        "BatchMode=yes",
        "ConnectTimeout=10",
        "ServerAliveInterval=5",
        "ServerAliveCountMax=3",
        "StrictHostKeyChecking=accept-new",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            command: default_command(),
            output_dir: PathBuf::from("data/games"),
            logs_dir: PathBuf::from("state/jobs"),
            job_timeout: Duration::from_secs(30 * 60),
            stop_grace: Duration::from_secs(5),
            max_attempts: 3,
            retry_backoff: Duration::from_secs(10),
            max_concurrent_per_node: 2,
            history_limit: 200,
            stderr_tail_bytes: 4096,
            max_moves: 500,
            max_moves_large_board: 1000,
            think_time: Duration::from_millis(500),
            randomness: 0.1,
            dispatch: super::remote::DispatchConfig::default(),
            ssh: SshConfig::default(),
        }
    }
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            program: PathBuf::from("ssh"),
            options: default_ssh_options(),
            remote_command: default_command(),
            remote_program: "coordinator".to_string(),
            remote_dir: None,
        }
    }
}

impl JobsConfig {
    /// Every problem as (field path under `prefix`, what is wrong and expected). Empty: valid.
    pub fn problems(&self, prefix: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push =
            |field: &str, message: String| out.push((format!("{prefix}.{field}"), message));
        if let Err(error) = validate_template(&self.command) {
            push("command", error.to_string());
        }
        if let Err(error) = validate_template(&self.ssh.remote_command) {
            push("ssh.remote_command", error.to_string());
        }
        if self.job_timeout.is_zero() {
            push("job_timeout", "must be longer than 0s".into());
        }
        if self.max_attempts == 0 {
            push(
                "max_attempts",
                "must be at least 1 (the first attempt counts)".into(),
            );
        }
        if self.history_limit == 0 {
            push("history_limit", "must be at least 1".into());
        }
        let dispatch = &self.dispatch;
        for (field, value) in [
            ("dispatch.poll_every", dispatch.poll_every),
            ("dispatch.request_timeout", dispatch.request_timeout),
            ("dispatch.lost_after", dispatch.lost_after),
            ("dispatch.max_wait", dispatch.max_wait),
            ("dispatch.reconcile_every", dispatch.reconcile_every),
        ] {
            if value.is_zero() {
                push(field, "must be longer than 0s (e.g. 30s)".into());
            }
        }
        if self.max_moves == 0 || self.max_moves_large_board == 0 {
            push(
                "max_moves",
                "max_moves and max_moves_large_board must be at least 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.randomness) {
            push("randomness", format!("{} is outside 0-1", self.randomness));
        }
        if self.output_dir.as_os_str().is_empty() {
            push(
                "output_dir",
                "is empty (expected a directory such as data/games)".into(),
            );
        }
        if self.logs_dir.as_os_str().is_empty() {
            push(
                "logs_dir",
                "is empty (expected a directory such as state/jobs)".into(),
            );
        }
        if self.ssh.remote_program.trim().is_empty() {
            push(
                "ssh.remote_program",
                "is empty (expected e.g. coordinator)".into(),
            );
        }
        for (index, option) in self.ssh.options.iter().enumerate() {
            let field = format!("ssh.options[{index}]");
            match option.split_once('=') {
                None => push(&field, format!("{option:?} is not KEY=VALUE")),
                Some((key, value)) => {
                    let key = key.trim();
                    let value = value.trim().to_ascii_lowercase();
                    if key.eq_ignore_ascii_case("StrictHostKeyChecking")
                        && (value == "no" || value == "off")
                    {
                        push(
                            &field,
                            "StrictHostKeyChecking=no accepts any host key (man in the middle); use accept-new or yes"
                                .into(),
                        );
                    }
                    if key.eq_ignore_ascii_case("BatchMode") && value == "no" {
                        push(
                            &field,
                            "BatchMode=no lets ssh prompt and hang a job; use BatchMode=yes".into(),
                        );
                    }
                }
            }
        }
        out
    }

    /// Where the games of job `job_id` of config `config_key` go: `<output_dir>/<config_key>/<job_id>.db`.
    pub fn output_path(&self, config_key: &str, job_id: &str) -> PathBuf {
        self.output_dir
            .join(config_key)
            .join(format!("{job_id}.db"))
    }

    /// `{max_moves}` for a board: `max_moves_large_board` on large boards, else `max_moves`.
    pub fn max_moves_for(&self, large_board: bool) -> u32 {
        if large_board {
            self.max_moves_large_board
        } else {
            self.max_moves
        }
    }

    /// `{think_time_ms}`: `think_time` in whole milliseconds (saturating).
    pub fn think_time_ms(&self) -> u32 {
        u32::try_from(self.think_time.as_millis()).unwrap_or(u32::MAX)
    }

    /// Stdout log of a job.
    pub fn stdout_log(&self, job_id: &str) -> PathBuf {
        log_path(&self.logs_dir, job_id, "out")
    }

    /// Stderr log of a job.
    pub fn stderr_log(&self, job_id: &str) -> PathBuf {
        log_path(&self.logs_dir, job_id, "err")
    }
}

fn log_path(dir: &Path, job_id: &str, extension: &str) -> PathBuf {
    dir.join(format!("{job_id}.{extension}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_the_domain_numbers() {
        let config = JobsConfig::default();
        assert_eq!(config.job_timeout, Duration::from_secs(1800));
        assert_eq!(config.stop_grace, Duration::from_secs(5));
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.retry_backoff, Duration::from_secs(10));
        assert_eq!(config.max_concurrent_per_node, 2);
        assert_eq!(config.history_limit, 200);
        assert_eq!(config.output_dir, PathBuf::from("data/games"));
        assert_eq!(config.logs_dir, PathBuf::from("state/jobs"));
        assert_eq!(
            (config.max_moves_for(false), config.max_moves_for(true)),
            (500, 1000)
        );
        assert_eq!(config.think_time_ms(), 500);
        assert_eq!(config.randomness, 0.1);
        assert_eq!(config.command[0], "{self}");
        assert!(config
            .ssh
            .options
            .contains(&"StrictHostKeyChecking=accept-new".to_string()));
        assert!(config.ssh.options.contains(&"BatchMode=yes".to_string()));
        assert!(
            config.problems("scheduler.jobs").is_empty(),
            "{:?}",
            config.problems("x")
        );
    }

    #[test]
    fn default_command_passes_every_placeholder() {
        let joined = default_command().join(" ");
        for name in super::super::spec::PLACEHOLDERS {
            assert!(
                joined.contains(&format!("{{{name}}}")),
                "{name} missing from {joined}"
            );
        }
    }

    #[test]
    fn defaults_round_trip_through_yaml_like_json_and_durations_read_as_text() {
        let config = JobsConfig::default();
        let json = serde_json::to_value(&config).expect("json");
        assert_eq!(json["job_timeout"], "30m");
        assert_eq!(json["stop_grace"], "5s");
        let back: JobsConfig = serde_json::from_value(json).expect("back");
        assert_eq!(back, config);
        let partial: JobsConfig =
            serde_json::from_str(r#"{"max_attempts": 5, "ssh": {"remote_dir": "/srv/ai"}}"#)
                .expect("partial");
        assert_eq!(partial.max_attempts, 5);
        assert_eq!(partial.ssh.remote_dir.as_deref(), Some("/srv/ai"));
        assert_eq!(partial.ssh.program, PathBuf::from("ssh"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(serde_json::from_str::<JobsConfig>(r#"{"max_atempts": 5}"#).is_err());
        assert!(serde_json::from_str::<JobsConfig>(r#"{"ssh": {"port": 22}}"#).is_err());
    }

    type Mutation = Box<dyn Fn(&mut JobsConfig)>;

    #[test]
    fn problems_name_the_field() {
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.command = vec![]), "j.command"),
            (Box::new(|c| c.command = vec!["{bord}".into()]), "j.command"),
            (
                Box::new(|c| c.ssh.remote_command = vec!["{x}".into()]),
                "j.ssh.remote_command",
            ),
            (
                Box::new(|c| c.job_timeout = Duration::ZERO),
                "j.job_timeout",
            ),
            (Box::new(|c| c.max_attempts = 0), "j.max_attempts"),
            (Box::new(|c| c.history_limit = 0), "j.history_limit"),
            (
                Box::new(|c| c.dispatch.reconcile_every = Duration::ZERO),
                "j.dispatch.reconcile_every",
            ),
            (
                Box::new(|c| c.dispatch.poll_every = Duration::ZERO),
                "j.dispatch.poll_every",
            ),
            (Box::new(|c| c.max_moves = 0), "j.max_moves"),
            (Box::new(|c| c.randomness = 1.5), "j.randomness"),
            (Box::new(|c| c.output_dir = PathBuf::new()), "j.output_dir"),
            (Box::new(|c| c.logs_dir = PathBuf::new()), "j.logs_dir"),
            (
                Box::new(|c| c.ssh.remote_program = " ".into()),
                "j.ssh.remote_program",
            ),
            (
                Box::new(|c| c.ssh.options = vec!["BatchMode".into()]),
                "j.ssh.options[0]",
            ),
            (
                Box::new(|c| c.ssh.options.push("StrictHostKeyChecking=no".into())),
                "j.ssh.options[5]",
            ),
            (
                Box::new(|c| c.ssh.options = vec!["stricthostkeychecking = OFF".into()]),
                "j.ssh.options[0]",
            ),
            (
                Box::new(|c| c.ssh.options = vec!["BatchMode=no".into()]),
                "j.ssh.options[0]",
            ),
        ];
        for (mutate, field) in cases {
            let mut config = JobsConfig::default();
            mutate(&mut config);
            let problems = config.problems("j");
            assert_eq!(problems.len(), 1, "{field}: {problems:?}");
            assert_eq!(problems[0].0, field);
        }
    }

    #[test]
    fn paths_of_outputs_and_logs() {
        let config = JobsConfig::default();
        assert_eq!(
            config.output_path("hex8_2p", "j-1"),
            PathBuf::from("data/games/hex8_2p/j-1.db")
        );
        assert_eq!(
            config.stdout_log("j-1"),
            PathBuf::from("state/jobs/j-1.out")
        );
        assert_eq!(
            config.stderr_log("j-1"),
            PathBuf::from("state/jobs/j-1.err")
        );
    }
}
