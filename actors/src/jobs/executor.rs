//! One entry point for running a job wherever its node is: this node runs it as a local process, a peer's daemon
//! through its control API (the planner's way), or a peer without a daemon through SSH. The scheduler actor holds
//! one [`Executors`] and calls [`Executors::run_until`] from a spawned future.
//!
//! It only dispatches; the contracts are those of [`LocalExecutor`], [`DaemonExecutor`] and [`SshExecutor`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use super::config::JobsConfig;
use super::local::LocalExecutor;
use super::outcome::JobOutcome;
use super::remote::DaemonExecutor;
use super::spec::JobSpec;
use super::ssh::SshExecutor;

/// Where a job's node is, as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// This node: a local child process.
    Local,
    /// A peer's daemon, handed the job through its control API (`api_url` from the cluster list).
    Daemon {
        /// The peer's control API base URL.
        api_url: String,
    },
    /// A peer reached with `ssh DESTINATION` (`user@host` from the cluster list), for nodes with no `api_url`.
    Ssh {
        /// The `user@host`.
        destination: String,
    },
}

impl Placement {
    /// Where a job of a node runs: this node locally; a peer through its daemon when it lists `api_url`; through
    /// SSH only when it lists `ssh` and no `api_url`; `None` when the peer is reachable neither way.
    pub fn for_node(local: bool, api_url: Option<&str>, ssh: Option<&str>) -> Option<Placement> {
        if local {
            return Some(Placement::Local);
        }
        if let Some(api_url) = api_url.filter(|u| !u.trim().is_empty()) {
            return Some(Placement::Daemon {
                api_url: api_url.to_string(),
            });
        }
        ssh.filter(|d| !d.trim().is_empty())
            .map(|destination| Placement::Ssh {
                destination: destination.to_string(),
            })
    }
}

/// The local, daemon and SSH executors over one config. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Executors {
    local: LocalExecutor,
    daemon: DaemonExecutor,
    ssh: SshExecutor,
    /// This node's name, sent with every hand-over (the worker reports to it).
    planner: String,
    /// The cluster's API token, sent to peers' daemons when set.
    token: Option<String>,
}

impl Executors {
    /// Executors for `config`; `self_exe` stands for `{self}` in local commands.
    pub fn new(config: Arc<JobsConfig>, self_exe: PathBuf) -> Self {
        Executors {
            local: LocalExecutor::new(config.clone(), self_exe),
            daemon: DaemonExecutor::new(config.dispatch.clone()),
            ssh: SshExecutor::new(config),
            planner: String::new(),
            token: None,
        }
    }

    /// Hand-overs to peers' daemons say they come from `planner` and carry `token` when set.
    pub fn with_dispatch(mut self, planner: impl Into<String>, token: Option<String>) -> Self {
        self.planner = planner.into();
        self.token = token;
        self
    }

    /// This node's name as the planner of the hand-overs it makes.
    pub fn planner(&self) -> &str {
        &self.planner
    }

    /// What the daemon at `api_url` holds from this planner (see [`DaemonExecutor::list_handed_over`]).
    pub async fn list_handed_over(
        &self,
        api_url: &str,
    ) -> Result<super::remote::HandedOverList, String> {
        self.daemon
            .list_handed_over(api_url, self.token.as_deref())
            .await
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
            Placement::Daemon { api_url } => {
                self.daemon
                    .run_until(spec, api_url, self.token.as_deref(), &self.planner, cancel)
                    .await
            }
            Placement::Ssh { destination } => self.ssh.run_until(spec, destination, cancel).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_with_a_daemon_gets_its_jobs_through_it_and_ssh_is_the_fallback() {
        assert_eq!(
            Placement::for_node(true, Some("http://a"), Some("u@a")),
            Some(Placement::Local)
        );
        assert_eq!(
            Placement::for_node(false, Some("http://a"), Some("u@a")),
            Some(Placement::Daemon {
                api_url: "http://a".into()
            })
        );
        assert_eq!(
            Placement::for_node(false, None, Some("u@a")),
            Some(Placement::Ssh {
                destination: "u@a".into()
            })
        );
        assert_eq!(Placement::for_node(false, Some(" "), None), None);
        assert_eq!(Placement::for_node(false, None, None), None);
    }
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
