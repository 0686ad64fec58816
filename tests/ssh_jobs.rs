//! The SSH job executor against a real `sshd` on 127.0.0.1 (a throwaway config, host key and client key in a
//! temp dir): a selfplay-demo job runs on the "peer" through ssh and its games are verified. Skips, saying so,
//! only when sshd or ssh-keygen is not installed (`.ci/test` installs openssh-server).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::sshd::start_sshd;

use actors::jobs::config::JobsConfig;
use actors::jobs::outcome::JobStatus;
use actors::jobs::spec::JobSpec;
use actors::jobs::ssh::SshExecutor;

fn config(dir: &Path, port: u16, remote_program: &str) -> JobsConfig {
    let mut config = JobsConfig {
        logs_dir: dir.join("logs"),
        ..JobsConfig::default()
    };
    config.ssh.options.extend([
        format!("Port={port}"),
        format!("IdentityFile={}", dir.join("client_key").display()),
        format!("UserKnownHostsFile={}", dir.join("known_hosts").display()),
        "IdentitiesOnly=yes".to_string(),
    ]);
    config.ssh.remote_program = remote_program.to_string();
    config.ssh.remote_dir = Some(dir.display().to_string());
    config
}

fn spec(id: &str, dir: &Path) -> JobSpec {
    JobSpec {
        id: id.to_string(),
        config_key: "hex8_2p".to_string(),
        board: "hex8".to_string(),
        players: 2,
        games: 5,
        budget: 64,
        output: dir.join(format!("games/{id}.db")),
        max_moves: 500,
        think_time_ms: 0,
        randomness: 0.1,
        seed: 7,
        node: "peer".to_string(),
    }
}

/// Fails the test, naming what is missing, when sshd or ssh-keygen is not installed (a test never skips).
fn installed() -> bool {
    let ok = Path::new("/usr/sbin/sshd").exists()
        && Command::new("ssh-keygen").arg("-?").output().is_ok();
    assert!(
        ok,
        "/usr/sbin/sshd or ssh-keygen is missing: install openssh-server and openssh-client (.ci/test does, as root)"
    );
    ok
}

#[actix_rt::test]
async fn a_job_runs_on_a_peer_over_real_ssh_and_its_games_are_verified() {
    if !installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sshd, port) = start_sshd(dir.path());
    let executor = SshExecutor::new(Arc::new(config(dir.path(), port, common::BIN)));
    let job = spec("ssh-ok", dir.path());
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        executor.run(&job, "root@127.0.0.1"),
    )
    .await
    .expect("job ended in time");
    assert_eq!(
        outcome.status,
        JobStatus::Succeeded { games_written: 5 },
        "{outcome:?}"
    );
    assert_eq!(actors::jobs::demo::count_games(&job.output).unwrap(), 5);
}

#[actix_rt::test]
async fn a_missing_remote_program_fails_with_a_reason_not_a_hang() {
    if !installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sshd, port) = start_sshd(dir.path());
    let executor = SshExecutor::new(Arc::new(config(
        dir.path(),
        port,
        "/nonexistent/coordinator",
    )));
    let job = spec("ssh-missing", dir.path());
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        executor.run(&job, "root@127.0.0.1"),
    )
    .await
    .expect("job ended in time");
    match outcome.status {
        JobStatus::Failed { reason, .. } => assert!(!reason.is_empty()),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(!job.output.exists());
}
