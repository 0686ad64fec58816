//! One entry point for running a job wherever its node is: this node runs it as a local process, a peer through
//! SSH. The scheduler actor holds one [`Executors`] and calls [`Executors::run_until`] from a spawned future.
//!
//! It only dispatches; the contracts are those of [`LocalExecutor`] and [`SshExecutor`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use super::config::JobsConfig;
use super::local::LocalExecutor;
use super::outcome::JobOutcome;
use super::spec::JobSpec;
use super::ssh::SshExecutor;

/// Where a job's node is, as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// This node: a local child process.
    Local,
    /// A peer reached with `ssh DESTINATION` (`user@host` from the cluster list).
    Ssh {
        /// The `user@host`.
        destination: String,
    },
}

/// The local and SSH executors over one config. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Executors {
    local: LocalExecutor,
    ssh: SshExecutor,
}

impl Executors {
    /// Executors for `config`; `self_exe` stands for `{self}` in local commands.
    pub fn new(config: Arc<JobsConfig>, self_exe: PathBuf) -> Self {
        Executors {
            local: LocalExecutor::new(config.clone(), self_exe),
            ssh: SshExecutor::new(config),
        }
    }

    /// Run one attempt of `spec` at `placement`, stopping it gracefully if `cancel` completes first.
    pub async fn run_until(
        &self,
        spec: &JobSpec,
        placement: &Placement,
        cancel: impl Future<Output = ()>,
    ) -> JobOutcome {
        match placement {
            Placement::Local => self.local.run_until(spec, cancel).await,
            Placement::Ssh { destination } => self.ssh.run_until(spec, destination, cancel).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::outcome::JobStatus;
    use crate::jobs::spec::tests::sample_spec;
    use std::time::Duration;

    #[tokio::test]
    async fn dispatches_by_placement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = JobsConfig {
            command: vec!["sh".into(), "-c".into(), "exit 7".into()],
            logs_dir: dir.path().join("logs"),
            ..JobsConfig::default()
        };
        config.ssh.program = PathBuf::from("/nonexistent/ssh-client");
        let executors = Executors::new(Arc::new(config), PathBuf::from("unused"));
        let spec = JobSpec {
            output: dir.path().join("out.db"),
            ..sample_spec()
        };
        let wait = Duration::from_secs(30);
        let local = tokio::time::timeout(
            wait,
            executors.run_until(&spec, &Placement::Local, std::future::pending()),
        )
        .await
        .expect("ended");
        assert!(
            matches!(&local.status, JobStatus::Failed { reason, .. } if reason.contains("code 7")),
            "{local:?}"
        );
        let remote = tokio::time::timeout(
            wait,
            executors.run_until(
                &spec,
                &Placement::Ssh {
                    destination: "ai@peer".into(),
                },
                std::future::pending(),
            ),
        )
        .await
        .expect("ended");
        assert!(
            matches!(&remote.status, JobStatus::Failed { reason, .. } if reason.contains("/nonexistent/ssh-client")),
            "{remote:?}"
        );
    }
}
