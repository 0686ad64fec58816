//! Transports: how one file of a peer gets into a temp file here. Each is blocking (run on a transfer thread),
//! writes only to the temp path it is given (a hidden name in the destination directory), ends when no byte
//! arrived for the attempt's idle timeout or at its deadline, and stops when the cancel flag is set. Verifying and
//! installing the file is not theirs (see `install`).
//!
//! - [`http`]: this project's client against the peer's data server; resumes with `Range`.
//! - [`rsync`]: `rsync -a --partial --checksum` over `ssh` to `cluster.nodes[].ssh`.
//! - [`aria2`]: `aria2c --continue --checksum=sha-256=…` against the peer's data server.
//! - [`watch`]: runs a transport program, killing it when its output stops growing.

pub mod aria2;
pub mod http;
pub mod rsync;
pub mod watch;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::budget::{AttemptLimits, FailureKind};
use super::config::{SyncConfig, TransportKind};
use super::plan::{Peer, Transfer};

/// Set to stop every transfer of a cycle (shutdown, the cycle's watchdog).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// One attempt's request.
pub struct FetchRequest<'a> {
    pub peer: &'a Peer,
    pub transfer: &'a Transfer,
    /// Where the bytes go (a hidden name in the destination directory; may hold a previous attempt's prefix).
    pub temp: &'a Path,
    /// The sha256 the file must have, when known.
    pub expected_sha256: Option<&'a str>,
    pub limits: AttemptLimits,
    pub cancel: &'a Cancel,
}

/// What an attempt fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes received by this attempt (a resumed transfer counts only the remainder).
    pub bytes: u64,
    /// The sha256 of the whole temp file, when the transport computed it while writing.
    pub sha256: Option<String>,
}

impl Fetched {
    /// What an external program (rsync, aria2c) fetched into `temp`: the bytes it grew by since `before`.
    pub fn grown_since(temp: &std::path::Path, before: u64) -> Fetched {
        Fetched {
            bytes: temp_len(temp).saturating_sub(before),
            sha256: None,
        }
    }
}

/// The length of a (partial) temp file; 0 when there is none yet.
pub fn temp_len(temp: &std::path::Path) -> u64 {
    std::fs::metadata(temp).map(|m| m.len()).unwrap_or(0)
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub reason: String,
    /// Bytes received before it failed.
    pub bytes: u64,
}

impl Failure {
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Failure {
        Failure {
            kind,
            reason: reason.into(),
            bytes: 0,
        }
    }
}

/// A transport of the fallback chain.
pub trait Transport: Send + Sync {
    fn kind(&self) -> TransportKind;
    /// Fetches `request.transfer` into `request.temp`. Blocking.
    fn fetch(&self, request: &FetchRequest<'_>) -> Result<Fetched, Failure>;
}

/// The configured chain, in order. `aria2` is left out (with a warning) when its program is not on PATH.
pub fn chain(config: &SyncConfig) -> Vec<Box<dyn Transport>> {
    let mut out: Vec<Box<dyn Transport>> = Vec::new();
    for kind in &config.transports {
        match kind {
            TransportKind::Http => out.push(Box::new(http::HttpTransport::new(
                &config.http,
                config.budget.per_attempt,
            ))),
            TransportKind::Rsync => out.push(Box::new(rsync::RsyncTransport::new(&config.rsync))),
            TransportKind::Aria2 => {
                if watch::on_path(&config.aria2.program) {
                    out.push(Box::new(aria2::Aria2Transport::new(&config.aria2)));
                } else {
                    tracing::warn!(program = %config.aria2.program.display(), "aria2c is not on PATH; the aria2 transport is left out of the chain");
                }
            }
        }
    }
    out
}

/// The URL of a peer's file: `<data_url>/files/<category>/<path>`, each segment percent-encoded.
pub fn file_url(data_url: &str, category: &str, path: &str) -> String {
    peer_url(data_url, "files", category, path)
}

/// `<data_url>/<route>/<category>/<path>` on a peer's data server (`files`, `checksum`), each segment
/// percent-encoded.
pub fn peer_url(data_url: &str, route: &str, category: &str, path: &str) -> String {
    format!(
        "{}/{route}/{}/{}",
        data_url.trim_end_matches('/'),
        encode_segment(category),
        path.split('/')
            .map(encode_segment)
            .collect::<Vec<_>>()
            .join("/")
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_encode_each_segment() {
        assert_eq!(
            file_url("http://h:1/", "games", "hex8 2p/a#b.db"),
            "http://h:1/files/games/hex8%202p/a%23b.db"
        );
    }
}
