//! The `aria2` transport: `aria2c --continue --checksum=sha-256=…` against the peer's data server, with
//! connections and splits from config, writing the temp file (its `.aria2` control file sits beside it, hidden
//! too). Used only when `aria2c` is on PATH and the chain names it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::watch::{run_watched, unreachable_in};
use super::{file_url, Failure, FetchRequest, Fetched, Transport};
use crate::sync::budget::FailureKind;
use crate::sync::config::{Aria2TransportConfig, TransportKind};

/// See the module doc.
pub struct Aria2Transport {
    config: Aria2TransportConfig,
}

impl Aria2Transport {
    pub fn new(config: &Aria2TransportConfig) -> Aria2Transport {
        Aria2Transport {
            config: config.clone(),
        }
    }

    /// The arguments of one download of `url` into `dir/name`.
    pub fn arguments(
        &self,
        url: &str,
        dir: &str,
        name: &str,
        sha256: Option<&str>,
        idle: Duration,
    ) -> Vec<String> {
        let mut args = vec![
            "--continue=true".to_string(),
            format!("--dir={dir}"),
            format!("--out={name}"),
            format!(
                "--max-connection-per-server={}",
                self.config.connections.min(16)
            ),
            format!("--split={}", self.config.split),
            format!(
                "--min-split-size={}",
                self.config.min_split_size.0.max(1 << 20)
            ),
            "--connect-timeout=10".to_string(),
            format!("--timeout={}", idle.as_secs().max(1)),
            "--max-tries=1".to_string(),
            "--allow-overwrite=true".to_string(),
            "--auto-file-renaming=false".to_string(),
            "--file-allocation=none".to_string(),
            "--console-log-level=warn".to_string(),
            "--summary-interval=0".to_string(),
        ];
        if let Some(sha256) = sha256 {
            args.push(format!("--checksum=sha-256={sha256}"));
        }
        args.push(url.to_string());
        args
    }
}

/// aria2c's exit codes: 3 not found, 32 checksum mismatch, network errors by their message.
fn classify(code: Option<i32>, stderr: &str) -> FailureKind {
    if unreachable_in(stderr) {
        return FailureKind::Unreachable;
    }
    match code {
        Some(3) => FailureKind::Unavailable,
        Some(32) => FailureKind::Integrity,
        _ => FailureKind::Transient,
    }
}

impl Transport for Aria2Transport {
    fn kind(&self) -> TransportKind {
        TransportKind::Aria2
    }

    fn fetch(&self, request: &FetchRequest<'_>) -> Result<Fetched, Failure> {
        let Some(data_url) = request.peer.data_url.as_deref() else {
            return Err(Failure::new(
                FailureKind::Unavailable,
                format!("peer {} has no data_url", request.peer.name),
            ));
        };
        let (Some(dir), Some(name)) = (
            request.temp.parent().and_then(|d| d.to_str()),
            request.temp.file_name().and_then(|n| n.to_str()),
        ) else {
            return Err(Failure::new(
                FailureKind::Unavailable,
                "temp path is not UTF-8",
            ));
        };
        let url = file_url(
            data_url,
            &request.transfer.category,
            &request.transfer.remote_path,
        );
        let before = super::temp_len(request.temp);
        let mut command = Command::new(&self.config.program);
        command.args(self.arguments(
            &url,
            dir,
            name,
            request.expected_sha256,
            request.limits.idle_timeout,
        ));
        let control = PathBuf::from(format!("{}.aria2", request.temp.display()));
        run_watched(
            command,
            "aria2c",
            &[request.temp],
            request.limits,
            request.cancel,
            classify,
        )?;
        let _ = std::fs::remove_file(control);
        Ok(Fetched::grown_since(request.temp, before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_continue_and_verify() {
        let transport = Aria2Transport::new(&Aria2TransportConfig::default());
        let args = transport.arguments(
            "http://h/files/games/a.db",
            "/d",
            ".a.db.partial",
            Some("ab"),
            Duration::from_secs(30),
        );
        for expected in [
            "--continue=true",
            "--checksum=sha-256=ab",
            "--split=16",
            "--max-connection-per-server=16",
            "--timeout=30",
            "--out=.a.db.partial",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected}: {args:?}");
        }
        assert_eq!(classify(Some(32), ""), FailureKind::Integrity);
        assert_eq!(classify(Some(3), ""), FailureKind::Unavailable);
        assert_eq!(
            classify(Some(6), "Connection refused"),
            FailureKind::Unreachable
        );
    }
}
