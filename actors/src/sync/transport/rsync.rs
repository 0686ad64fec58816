//! The `rsync` transport: `rsync -a --partial --checksum` over `ssh` (BatchMode, ConnectTimeout 10,
//! ServerAliveInterval 5, `StrictHostKeyChecking=accept-new`, never `no`) from `cluster.nodes[].ssh`, pulling
//! `<sync.rsync.remote_root>/<category>/<path>` into the temp file in place (`--inplace`, so a later attempt
//! resumes by delta and progress is visible to the watchdog).

use std::path::PathBuf;
use std::process::Command;

use super::watch::{run_watched, unreachable_in};
use super::{Failure, FetchRequest, Fetched, Transport};
use crate::sync::budget::FailureKind;
use crate::sync::config::{RsyncTransportConfig, TransportKind};

/// The fixed ssh options (the spec's; host keys are accepted on first use only, never blindly).
pub const SSH_OPTIONS: [&str; 8] = [
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "StrictHostKeyChecking=accept-new",
];

/// See the module doc.
pub struct RsyncTransport {
    program: PathBuf,
    ssh_program: PathBuf,
    ssh_args: Vec<String>,
    remote_root: String,
}

impl RsyncTransport {
    pub fn new(config: &RsyncTransportConfig) -> RsyncTransport {
        RsyncTransport {
            program: config.program.clone(),
            ssh_program: config.ssh_program.clone(),
            ssh_args: config.ssh_args.clone(),
            remote_root: config.remote_root.clone(),
        }
    }

    /// The `-e` value: the ssh program, the fixed options, then `sync.rsync.ssh_args`, each quoted for rsync.
    pub fn remote_shell(&self) -> String {
        std::iter::once(self.ssh_program.display().to_string())
            .chain(SSH_OPTIONS.iter().map(|s| s.to_string()))
            .chain(self.ssh_args.iter().cloned())
            .map(|arg| {
                if arg.contains([' ', '\'', '"']) {
                    format!("'{}'", arg.replace('\'', "'\\''"))
                } else {
                    arg
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The arguments of one pull.
    pub fn arguments(
        &self,
        ssh: &str,
        category: &str,
        path: &str,
        idle_s: u64,
        temp: &str,
    ) -> Vec<String> {
        let root = self.remote_root.trim_end_matches('/');
        let source = if root.is_empty() {
            format!("{ssh}:{category}/{path}")
        } else {
            format!("{ssh}:{root}/{category}/{path}")
        };
        vec![
            "-a".into(),
            "--partial".into(),
            "--checksum".into(),
            "--inplace".into(),
            "--protect-args".into(),
            format!("--timeout={}", idle_s.max(1)),
            "-e".into(),
            self.remote_shell(),
            source,
            temp.to_string(),
        ]
    }
}

/// What an rsync exit means: unreachable peers skip to the next transport, a missing file is not this
/// transport's to serve, everything else is retried.
fn classify(code: Option<i32>, stderr: &str) -> FailureKind {
    if unreachable_in(stderr) {
        return FailureKind::Unreachable;
    }
    match code {
        Some(23) if stderr.contains("No such file") => FailureKind::Unavailable,
        Some(1 | 2 | 4) => FailureKind::Unavailable,
        _ => FailureKind::Transient,
    }
}

impl Transport for RsyncTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Rsync
    }

    fn fetch(&self, request: &FetchRequest<'_>) -> Result<Fetched, Failure> {
        let Some(ssh) = request.peer.ssh.as_deref() else {
            return Err(Failure::new(
                FailureKind::Unavailable,
                format!(
                    "peer {} has no ssh destination (cluster.nodes[].ssh)",
                    request.peer.name
                ),
            ));
        };
        let Some(temp) = request.temp.to_str() else {
            return Err(Failure::new(
                FailureKind::Unavailable,
                "temp path is not UTF-8",
            ));
        };
        let before = super::temp_len(request.temp);
        let mut command = Command::new(&self.program);
        command.args(self.arguments(
            ssh,
            &request.transfer.category,
            &request.transfer.remote_path,
            request.limits.idle_timeout.as_secs(),
            temp,
        ));
        run_watched(
            command,
            "rsync",
            &[request.temp],
            request.limits,
            request.cancel,
            classify,
        )?;
        Ok(Fetched::grown_since(request.temp, before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_carry_the_spec_options_and_never_disable_host_keys() {
        let transport = RsyncTransport::new(&RsyncTransportConfig {
            ssh_args: vec!["-p".into(), "2222".into(), "-i".into(), "/k ey".into()],
            ..RsyncTransportConfig::default()
        });
        let args = transport.arguments("u@h", "games", "a b/c.db", 30, "/d/.c.db.partial");
        let shell = &args[args.iter().position(|a| a == "-e").unwrap() + 1];
        for option in [
            "BatchMode=yes",
            "ConnectTimeout=10",
            "ServerAliveInterval=5",
            "StrictHostKeyChecking=accept-new",
        ] {
            assert!(shell.contains(option), "{shell}");
        }
        assert!(!shell.contains("StrictHostKeyChecking=no"));
        assert!(shell.ends_with("-p 2222 -i '/k ey'"), "{shell}");
        assert!(args.contains(&"--partial".to_string()));
        assert!(args.contains(&"--checksum".to_string()));
        assert!(args.contains(&"--timeout=30".to_string()));
        assert_eq!(args[args.len() - 2], "u@h:data/games/a b/c.db");
    }

    #[test]
    fn exits_are_classified() {
        assert_eq!(
            classify(
                Some(255),
                "ssh: connect to host h port 22: Connection refused"
            ),
            FailureKind::Unreachable
        );
        assert_eq!(
            classify(
                Some(23),
                "rsync: link_stat \"x\" failed: No such file or directory"
            ),
            FailureKind::Unavailable
        );
        assert_eq!(
            classify(Some(30), "timeout in data send/receive"),
            FailureKind::Transient
        );
        assert_eq!(
            classify(Some(12), "connection unexpectedly closed"),
            FailureKind::Transient
        );
    }
}
