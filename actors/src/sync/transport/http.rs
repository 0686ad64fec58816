//! The `http` transport: this project's client against a peer's data server (`GET /files/{category}/{path}`).
//!
//! Downloads into the temp file it is given and resumes a previous attempt's prefix with `Range: bytes=N-`
//! (a 206 whose `Content-Range` does not start at N, or a 200, restarts from zero). The sha256 of the whole
//! file is computed while writing (the kept prefix is hashed first). An attempt ends when no byte arrived for its
//! idle timeout (the socket's read timeout), at its deadline, or when cancelled; what arrived stays in the temp
//! file for the next attempt.
//!
//! One keep-alive agent serves every attempt whose idle timeout is the configured `budget.per_attempt` (nearly
//! all), so a run of small files reuses its connections instead of opening one per file; an attempt cut shorter by
//! its budget gets an agent of its own. Disk writeback of what arrived is started as it is written, so the
//! fsync before the file's install finds little left to do.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{file_url, Failure, FetchRequest, Fetched, Transport};
use crate::sync::budget::FailureKind;
use crate::sync::config::{HttpTransportConfig, TransportKind};
use crate::sync::install::start_writeback;

/// Idle keep-alive connections the shared agent keeps per peer (above `sync.max_concurrent`'s default of 4).
const IDLE_CONNECTIONS_PER_PEER: usize = 16;
/// Bytes written to a temp file between two starts of its disk writeback.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// See the module doc.
pub struct HttpTransport {
    connect_timeout: Duration,
    chunk: usize,
    /// The agent of attempts whose idle timeout is `per_attempt`.
    shared: ureq::Agent,
    per_attempt: Duration,
}

impl HttpTransport {
    /// `per_attempt`: `sync.budget.per_attempt`, the idle timeout of the shared agent.
    pub fn new(config: &HttpTransportConfig, per_attempt: Duration) -> HttpTransport {
        HttpTransport {
            connect_timeout: config.connect_timeout,
            chunk: config.chunk.0.clamp(1, 64 << 20) as usize,
            shared: agent(config.connect_timeout, per_attempt),
            per_attempt,
        }
    }

    fn agent_for(&self, idle_timeout: Duration) -> ureq::Agent {
        if idle_timeout == self.per_attempt {
            self.shared.clone()
        } else {
            agent(self.connect_timeout, idle_timeout)
        }
    }
}

fn agent(connect: Duration, read: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(connect.min(read))
        .timeout_read(read)
        .timeout_write(read)
        .max_idle_connections_per_host(IDLE_CONNECTIONS_PER_PEER)
        .redirects(0)
        .build()
}

/// Sorts a ureq error into what happens next.
pub fn classify(error: &ureq::Error) -> (FailureKind, String) {
    match error {
        ureq::Error::Status(404, _) => (
            FailureKind::Unavailable,
            "404: the peer no longer has the file".to_string(),
        ),
        ureq::Error::Status(code, _) if *code >= 500 || *code == 429 || *code == 408 => {
            (FailureKind::Transient, format!("HTTP {code}"))
        }
        ureq::Error::Status(code, _) => (FailureKind::Unavailable, format!("HTTP {code}")),
        ureq::Error::Transport(transport) => {
            let text = transport.to_string();
            let io_kind = std::error::Error::source(transport)
                .and_then(|s| s.downcast_ref::<io::Error>())
                .map(io::Error::kind);
            let unreachable = matches!(
                io_kind,
                Some(
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                )
            ) || text.contains("Connection refused")
                || text.contains("No route to host")
                || transport.kind() == ureq::ErrorKind::Dns;
            if unreachable {
                (FailureKind::Unreachable, text)
            } else if transport.kind() == ureq::ErrorKind::InvalidUrl {
                (FailureKind::Unavailable, text)
            } else {
                (FailureKind::Transient, text)
            }
        }
    }
}

fn io_failure(what: &str, error: io::Error, bytes: u64) -> Failure {
    let kind = match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "no byte within the idle timeout",
        _ => "",
    };
    let reason = if kind.is_empty() {
        format!("{what}: {error}")
    } else {
        format!("{what}: {kind} ({error})")
    };
    Failure {
        kind: FailureKind::Transient,
        reason,
        bytes,
    }
}

/// `GET /checksum/{category}/{path}` of the peer: `(sha256, size)`.
pub fn fetch_checksum(
    data_url: &str,
    category: &str,
    path: &str,
    timeout: Duration,
) -> Result<(String, u64), Failure> {
    #[derive(Deserialize)]
    struct Answer {
        sha256: String,
        size: u64,
    }
    let url = super::peer_url(data_url, "checksum", category, path);
    let response = agent(timeout, timeout).get(&url).call().map_err(|e| {
        let (kind, reason) = classify(&e);
        Failure::new(kind, format!("GET {url}: {reason}"))
    })?;
    let answer: Answer = response.into_json().map_err(|e| {
        Failure::new(
            FailureKind::Transient,
            format!("GET {url}: bad answer: {e}"),
        )
    })?;
    Ok((answer.sha256.to_ascii_lowercase(), answer.size))
}

/// Reads into `buffer` until it is full, the body ends or fails, or `stop` says so after a read (a cancel or the
/// deadline: a body that trickles must not keep the attempt past them): the bytes read (to be written even when
/// the read then failed), whether the body ended, and the error that stopped it.
fn fill(
    body: &mut impl Read,
    buffer: &mut [u8],
    stop: impl Fn() -> bool,
) -> (usize, bool, Option<io::Error>) {
    let mut filled = 0;
    while filled < buffer.len() {
        match body.read(&mut buffer[filled..]) {
            Ok(0) => return (filled, true, None),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, false, Some(e)),
        }
        if stop() {
            break;
        }
    }
    (filled, false, None)
}

fn hash_prefix(file: &mut File, hasher: &mut Sha256) -> io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Transport for HttpTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Http
    }

    fn fetch(&self, request: &FetchRequest<'_>) -> Result<Fetched, Failure> {
        let transfer = request.transfer;
        let Some(data_url) = request.peer.data_url.as_deref() else {
            return Err(Failure::new(
                FailureKind::Unavailable,
                format!("peer {} has no data_url", request.peer.name),
            ));
        };
        let url = file_url(data_url, &transfer.category, &transfer.remote_path);
        let mut have = super::temp_len(request.temp);
        if have > transfer.size {
            have = 0;
        }
        let mut hasher = Sha256::new();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(request.temp)
            .map_err(|e| io_failure("cannot open the temp file", e, 0))?;
        file.set_len(have)
            .map_err(|e| io_failure("cannot trim the temp file", e, 0))?;
        if have > 0 {
            hash_prefix(&mut file, &mut hasher)
                .map_err(|e| io_failure("cannot read the kept prefix", e, 0))?;
        }
        if have == transfer.size {
            return Ok(Fetched {
                bytes: 0,
                sha256: Some(hex::encode(hasher.finalize())),
            });
        }
        let client = self.agent_for(request.limits.idle_timeout);
        let mut call = client.get(&url);
        if have > 0 {
            call = call.set("Range", &format!("bytes={have}-"));
        }
        let response = call.call().map_err(|e| {
            let (kind, reason) = classify(&e);
            if matches!(&e, ureq::Error::Status(416, _)) {
                let _ = std::fs::remove_file(request.temp);
            }
            Failure::new(kind, format!("GET {url}: {reason}"))
        })?;
        let resumed = response.status() == 206
            && response
                .header("Content-Range")
                .is_some_and(|range| range.starts_with(&format!("bytes {have}-")));
        if !resumed && have > 0 {
            // The server sent the whole file: start over.
            have = 0;
            hasher = Sha256::new();
            file.set_len(0)
                .map_err(|e| io_failure("cannot reset the temp file", e, 0))?;
        }
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(have))
            .map_err(|e| io_failure("cannot seek the temp file", e, 0))?;
        let mut body = response.into_reader();
        let mut buffer = vec![0u8; self.chunk];
        let mut bytes = 0u64;
        let mut total = have;
        let mut written_back = have;
        loop {
            if request.cancel.is_cancelled() {
                return Err(Failure {
                    kind: FailureKind::Cancelled,
                    reason: "cancelled".to_string(),
                    bytes,
                });
            }
            if Instant::now() >= request.limits.deadline {
                return Err(Failure {
                    kind: FailureKind::Transient,
                    reason: "the operation's budget ended mid-transfer".to_string(),
                    bytes,
                });
            }
            // Filled as far as the body gives before each write: the client's reads come in pieces of a few KiB.
            let (n, ended, error) = fill(&mut body, &mut buffer, || {
                request.cancel.is_cancelled() || Instant::now() >= request.limits.deadline
            });
            file.write_all(&buffer[..n])
                .map_err(|e| io_failure("cannot write the temp file", e, bytes))?;
            hasher.update(&buffer[..n]);
            bytes += n as u64;
            total += n as u64;
            if total - written_back >= WRITEBACK_EVERY {
                start_writeback(&file, written_back, total - written_back);
                written_back = total;
            }
            if let Some(e) = error {
                return Err(io_failure(&format!("reading {url}"), e, bytes));
            }
            if total > transfer.size || ended {
                break;
            }
        }
        file.flush()
            .map_err(|e| io_failure("cannot write the temp file", e, bytes))?;
        start_writeback(&file, written_back, total - written_back);
        if total < transfer.size {
            // Kept for the next attempt to resume.
            return Err(Failure {
                kind: FailureKind::Transient,
                reason: format!("connection closed after {total} of {} bytes", transfer.size),
                bytes,
            });
        }
        Ok(Fetched {
            bytes,
            sha256: Some(hex::encode(hasher.finalize())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `pieces` one read at a time, then fails.
    struct Pieces(Vec<&'static [u8]>);

    impl Read for Pieces {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
            }
            let piece = self.0.remove(0);
            buffer[..piece.len()].copy_from_slice(piece);
            Ok(piece.len())
        }
    }

    #[test]
    fn fill_gathers_pieces_and_keeps_what_came_before_an_error() {
        let mut buffer = [0u8; 4];
        let mut body = Pieces(vec![b"ab", b"cd", b"e"]);
        let (n, ended, error) = fill(&mut body, &mut buffer, || false);
        assert_eq!((n, ended, error.is_none()), (4, false, true));
        assert_eq!(&buffer, b"abcd");
        let (n, ended, error) = fill(&mut body, &mut buffer, || false);
        assert_eq!((n, ended), (1, false));
        assert_eq!(&buffer[..1], b"e");
        assert_eq!(
            error.map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionReset)
        );
        let (n, ended, error) = fill(&mut &b""[..], &mut buffer, || false);
        assert_eq!((n, ended, error.is_none()), (0, true, true));
    }

    #[test]
    fn fill_stops_after_the_read_that_saw_a_cancel() {
        // A trickling body: without the stop, filling 4 bytes would take every piece.
        let mut buffer = [0u8; 4];
        let mut body = Pieces(vec![b"a", b"b", b"c", b"d"]);
        let reads = std::cell::Cell::new(0);
        let (n, ended, error) = fill(&mut body, &mut buffer, || {
            reads.set(reads.get() + 1);
            reads.get() >= 2
        });
        assert_eq!((n, ended, error.is_none()), (2, false, true));
        assert_eq!(&buffer[..2], b"ab");
    }
}
