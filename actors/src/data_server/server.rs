//! The data server's HTTP surface (actix-web): routes, request handling, error-to-status mapping, and the entry
//! points that run it standalone (`coordinator data-server`) or in-process (tests, benches).
//!
//! Routes (shared/design/contract.md, "Data server"; every `GET` route answers `HEAD` too):
//! - `GET|POST /health` → `{"status":"ok"}` after a real file read on the blocking pool (the probe file
//!   [`PROBE_NAME`] in the root, or in the temp dir when the root is read-only): a server whose file machinery is
//!   stuck does not answer, and its monitor treats it as hung
//! - `GET /inventory.json` → [`Inventory`], hashing not-yet-hashed files for up to 2 s (the rest listed with null);
//!   `ETag` and `If-None-Match` (304 while nothing changed)
//! - `GET /files/{category}/{path}` → the file; `Range` → 206 with `Content-Range`; `ETag`, `If-None-Match`, `If-Range`
//! - `GET /checksum/{category}/{path}` → `{"sha256","size"}`
//!
//! Several workers serve requests; everything that touches the disk (opening, reading, hashing, walking) runs on the
//! blocking pool, so `/health` answers promptly while large files stream. Every error is a status code with a JSON
//! body `{"error": "..."}` that never shows a server path. Path safety (and opening only regular files) is
//! paths.rs's job; this file only calls it and logs refusals.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::body::SizedStream;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header::{self, HeaderName};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use bytes::Bytes;
use futures::Stream;
use serde_json::json;

use super::cached_read::{read_if_cached, CachedFile};
use super::checksum::{ChecksumCache, ChecksumError};
use super::config::default_categories;
use super::inventory::WatchedInventory;
use super::paths::{open_regular, open_under_root, split_request_path, OpenedFile, PathError};
use super::range::{etag_for, if_none_match_hits, if_range_allows, parse_range, RangeAnswer};

/// Bytes read from disk per chunk sent.
pub const SEND_CHUNK: usize = 256 * 1024;
/// Bodies up to this size are read whole and sent in one piece; larger ones stream in [`SEND_CHUNK`]s.
pub const WHOLE_READ_MAX: u64 = 1 << 20;
/// Nice value of the threads that read files for downloads (higher = yields to request workers).
const BULK_READ_NICE: libc::c_int = 10;
/// Chunks buffered between the disk reader and the socket per download.
const SEND_QUEUE: usize = 4;
/// How long one `/inventory.json` may spend hashing files whose sha256 is not cached yet (well inside a
/// puller's 5 s inventory timeout); what is left is listed with a null sha256 and hashed by the next one.
const INVENTORY_HASH_FOR: Duration = Duration::from_secs(2);
/// Seconds workers get to finish in-flight requests on a graceful stop.
const SHUTDOWN_TIMEOUT_S: u64 = 5;
/// How long [`BackgroundServer::start`] waits for the server thread to report in.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// The file `/health` reads (a dot name: never listed in the inventory).
pub const PROBE_NAME: &str = ".coordinator-health-probe";

/// What a data server process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Directory holding the data; relative category directories are joined to it.
    pub root: PathBuf,
    /// Address to listen on (`host:port`); used by [`run_standalone`] and [`BackgroundServer::start`].
    pub bind: String,
    /// Category name → directory (relative to `root`, or absolute). Only these are served.
    pub categories: BTreeMap<String, PathBuf>,
    /// This node's name, reported in the inventory.
    pub node: String,
    /// HTTP worker threads (at least 1).
    pub workers: usize,
    /// Files modified within this long are left out of the inventory (`data_server.settle`).
    pub settle: Duration,
    /// TEST HOOK, never set in production: after this delay from start, `/health` stops answering (the request
    /// waits forever) while everything else keeps working. It stands in for a hung server in the monitor's tests.
    pub test_hook_hang_health_after: Option<Duration>,
}

impl ServerOptions {
    /// Options serving the default categories under `root` as `node`, on 127.0.0.1:8766 with 4 workers.
    pub fn new(root: impl Into<PathBuf>, node: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            bind: "127.0.0.1:8766".to_string(),
            categories: default_categories(),
            node: node.into(),
            workers: 4,
            settle: super::config::DataServerConfig::default().settle,
            test_hook_hang_health_after: None,
        }
    }

    /// Directory of each category, relative ones joined to `root`.
    pub fn category_dirs(&self) -> BTreeMap<String, PathBuf> {
        self.categories
            .iter()
            .map(|(name, dir)| (name.clone(), self.root.join(dir)))
            .collect()
    }
}

/// Why the data server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DataServerError {
    /// The bind address does not parse.
    #[error("data_server.bind {addr:?} is not an address like 127.0.0.1:8766")]
    InvalidBind {
        /// The configured address.
        addr: String,
    },
    /// Another process listens on the address.
    #[error("address {addr} is already in use; stop the process listening there or change data_server.bind")]
    AddressInUse {
        /// The configured address.
        addr: String,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}; check data_server.bind")]
    Bind {
        /// The configured address.
        addr: String,
        /// The OS error.
        source: io::Error,
    },
    /// A category directory could not be created.
    #[error(
        "cannot create directory {path} for category {category}: {source}; check data_server.root"
    )]
    CreateCategory {
        /// The category.
        category: String,
        /// Its directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The HTTP server failed while running.
    #[error("data server stopped with an error: {source}")]
    Serve {
        /// The error.
        source: io::Error,
    },
    /// The in-process server thread did not start or died.
    #[error("data server thread failed: {reason}")]
    Thread {
        /// What went wrong.
        reason: String,
    },
}

/// Bind a listener on `addr`, with a clear error when the port is taken.
pub fn bind_listener(addr: &str) -> Result<TcpListener, DataServerError> {
    let socket: SocketAddr = addr.parse().map_err(|_| DataServerError::InvalidBind {
        addr: addr.to_string(),
    })?;
    let listener = TcpListener::bind(socket).map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => DataServerError::AddressInUse {
            addr: addr.to_string(),
        },
        _ => DataServerError::Bind {
            addr: addr.to_string(),
            source,
        },
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| DataServerError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    Ok(listener)
}

/// Run the data server in this process until SIGTERM or SIGINT: binds `options.bind`, builds its own actix system,
/// and returns `Ok(())` after a graceful stop. This is `coordinator data-server`.
pub fn run_standalone(options: ServerOptions) -> Result<(), DataServerError> {
    let listener = bind_listener(&options.bind)?;
    actix_rt::System::new().block_on(async move {
        build(options, listener, true)?
            .await
            .map_err(|source| DataServerError::Serve { source })
    })
}

/// Serve on `listener` until the server is stopped (signals are not handled: the caller owns the process).
pub async fn serve(options: ServerOptions, listener: TcpListener) -> Result<(), DataServerError> {
    build_server(options, listener)?
        .await
        .map_err(|source| DataServerError::Serve { source })
}

/// Build the server on `listener` without handling signals; await it (or its handle) inside an actix system.
pub fn build_server(
    options: ServerOptions,
    listener: TcpListener,
) -> Result<Server, DataServerError> {
    build(options, listener, false)
}

fn build(
    options: ServerOptions,
    listener: TcpListener,
    handle_signals: bool,
) -> Result<Server, DataServerError> {
    let roots = prepare_category_dirs(&options)?;
    let workers = options.workers.max(1);
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| options.bind.clone());
    let probe = write_probe(&options.root);
    let cached_reads = roots
        .iter()
        .filter(|(_, dir)| crate::tree_watch::network_filesystem(dir).is_none())
        .map(|(name, _)| name.clone())
        .collect();
    let state = web::Data::new(AppState {
        node: options.node.clone(),
        roots,
        probe,
        checksums: ChecksumCache::new(workers),
        inventory: std::sync::Mutex::new(WatchedInventory::new()),
        cached_reads,
        settle: options.settle,
        hang_health_at: options
            .test_hook_hang_health_after
            .map(|after| Instant::now() + after),
    });
    if let Some(after) = options.test_hook_hang_health_after {
        tracing::warn!(
            after_ms = after.as_millis() as u64,
            "TEST HOOK active: /health will stop answering"
        );
    }
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(
                web::resource("/health")
                    .route(web::get().to(health))
                    .route(web::head().to(health))
                    .route(web::post().to(health)),
            )
            .service(
                web::resource("/inventory.json")
                    .route(web::get().to(inventory))
                    .route(web::head().to(inventory)),
            )
            .service(
                web::resource("/files/{category}/{path:.*}")
                    .route(web::get().to(download))
                    .route(web::head().to(download)),
            )
            .service(
                web::resource("/checksum/{category}/{path:.*}")
                    .route(web::get().to(checksum))
                    .route(web::head().to(checksum)),
            )
            .default_service(web::to(no_such_endpoint))
    })
    .workers(workers)
    .shutdown_timeout(SHUTDOWN_TIMEOUT_S);
    if !handle_signals {
        server = server.disable_signals();
    }
    let server = server
        .listen(listener)
        .map_err(|source| DataServerError::Bind {
            addr: addr.clone(),
            source,
        })?;
    tracing::info!(%addr, node = %options.node, workers, "data server listening");
    Ok(server.run())
}

/// Writes the file `/health` reads: in the root (same disk as the data), else in the temp dir; `None` (and a
/// warning) when neither is writable, then `/health` answers without the read.
fn write_probe(root: &Path) -> Option<PathBuf> {
    let candidates = [
        root.join(PROBE_NAME),
        std::env::temp_dir().join(format!("{PROBE_NAME}-{}", std::process::id())),
    ];
    let mut last_error = None;
    for path in candidates {
        match std::fs::write(&path, b"ok\n") {
            Ok(()) => return Some(path),
            Err(error) => last_error = Some(error),
        }
    }
    if let Some(error) = last_error {
        tracing::warn!(%error, "cannot write the health probe file in the root or the temp dir; /health answers without a file read");
    }
    None
}

/// The read `/health` does: the probe opened as a regular file (see [`open_regular`]) and read to its end.
fn read_probe(path: &Path) -> Result<(), String> {
    let (mut file, _) = open_regular(path).map_err(|error| error.to_string())?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(|error| format!("reading the probe file failed: {error}"))?;
    Ok(())
}

fn prepare_category_dirs(
    options: &ServerOptions,
) -> Result<BTreeMap<String, PathBuf>, DataServerError> {
    let dirs = options.category_dirs();
    for (category, path) in &dirs {
        std::fs::create_dir_all(path).map_err(|source| DataServerError::CreateCategory {
            category: category.clone(),
            path: path.clone(),
            source,
        })?;
    }
    Ok(dirs)
}

/// A data server running on its own thread and actix system: for tests, benches and embedding.
pub struct BackgroundServer {
    address: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<Result<(), DataServerError>>>,
}

impl BackgroundServer {
    /// Bind `options.bind` (use port 0 for a free port) and serve on a new thread.
    pub fn start(options: ServerOptions) -> Result<Self, DataServerError> {
        let listener = bind_listener(&options.bind)?;
        let address = listener
            .local_addr()
            .map_err(|source| DataServerError::Bind {
                addr: options.bind.clone(),
                source,
            })?;
        let (report, started) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("data-server".to_string())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let server = match build_server(options, listener) {
                        Ok(server) => server,
                        Err(error) => {
                            let reason = error.to_string();
                            let _ = report.send(Err(DataServerError::Thread { reason }));
                            return Err(error);
                        }
                    };
                    let _ = report.send(Ok(server.handle()));
                    server
                        .await
                        .map_err(|source| DataServerError::Serve { source })
                })
            })
            .map_err(|error| DataServerError::Thread {
                reason: error.to_string(),
            })?;
        let handle =
            started
                .recv_timeout(START_DEADLINE)
                .map_err(|error| DataServerError::Thread {
                    reason: format!("no start report: {error}"),
                })??;
        Ok(Self {
            address,
            handle,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stop it (in-flight requests are dropped) and wait for its thread.
    pub fn stop(mut self) -> Result<(), DataServerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), DataServerError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        futures::executor::block_on(self.handle.stop(false));
        thread.join().map_err(|_| DataServerError::Thread {
            reason: "server thread panicked".to_string(),
        })?
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::warn!(%error, "data server did not stop cleanly");
        }
    }
}

struct AppState {
    node: String,
    roots: BTreeMap<String, PathBuf>,
    /// The file `/health` reads, if one could be written.
    probe: Option<PathBuf>,
    checksums: ChecksumCache,
    /// The last inventory, rebuilt only when something changed (one walk at a time).
    inventory: std::sync::Mutex<WatchedInventory>,
    /// Categories whose small files may be read on the request thread when in memory: not those on a network
    /// filesystem, where even an open can wait on the network.
    cached_reads: std::collections::BTreeSet<String>,
    settle: Duration,
    hang_health_at: Option<Instant>,
}

impl AppState {
    fn root_of(&self, category: &str) -> Result<PathBuf, PathError> {
        self.roots
            .get(category)
            .cloned()
            .ok_or_else(|| PathError::UnknownCategory {
                name: category.to_string(),
                known: self.roots.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}

/// A request that could not be answered with what it asked for; rendered as its status and `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The path was refused or names nothing servable.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The checksum could not be computed.
    #[error(transparent)]
    Checksum(#[from] ChecksumError),
    /// The requested range starts past the end of the file.
    #[error("range not satisfiable: the file has {size} bytes; resume from a smaller offset")]
    RangeNotSatisfiable {
        /// The file size.
        size: u64,
    },
    /// No route matches.
    #[error("no such endpoint; try /health, /inventory.json, /files/{{category}}/{{path}} or /checksum/{{category}}/{{path}}")]
    NoSuchEndpoint,
    /// A blocking task failed.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Path(error) => {
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Checksum(ChecksumError::ChangedWhileHashing { .. }) => StatusCode::CONFLICT,
            ApiError::Checksum(_) | ApiError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::NoSuchEndpoint => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::RangeNotSatisfiable { size } = self {
            response.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
        }
        response.json(json!({ "error": self.public_message() }))
    }
}

impl ApiError {
    /// What the client reads: the error without server paths (the log has those). Checksum errors name the file's
    /// real path, so they are worded again here.
    fn public_message(&self) -> String {
        match self {
            ApiError::Checksum(ChecksumError::Read { .. }) => {
                "could not read the file to hash it; retry later".to_string()
            }
            ApiError::Checksum(ChecksumError::ChangedWhileHashing { .. }) => {
                "the file changed while it was being hashed; retry once it is complete".to_string()
            }
            other => other.to_string(),
        }
    }
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    if let Some(at) = state.hang_health_at {
        if Instant::now() >= at {
            // TEST HOOK: stand in for a hung server.
            futures::future::pending::<()>().await;
        }
    }
    if let Some(probe) = state.probe.clone() {
        // Through the same blocking pool as every file request: if that is used up or the disk hangs, so does this.
        let read = web::block(move || read_probe(&probe))
            .await
            .unwrap_or_else(|error| Err(format!("the probe read task failed: {error}")));
        if let Err(error) = read {
            tracing::warn!(%error, "health probe read failed; answering 503");
            return HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "failing", "error": format!("health probe: {error}") }));
        }
    }
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn inventory(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let shared = state.clone();
    let body = web::block(move || {
        shared
            .inventory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(
                &shared.node,
                &shared.roots,
                &shared.checksums,
                shared.settle,
                INVENTORY_HASH_FOR,
            )
    })
    .await
    .map_err(|error| ApiError::Task(error.to_string()))?;
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| if_none_match_hits(v, &body.etag));
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, body.etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, body.etag))
        .body(body.json))
}

async fn checksum(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (opened, _) = open_requested(&req, &state, "/checksum/", 0).await?;
    let OpenedFile {
        file,
        path,
        size,
        mtime,
    } = opened;
    drop(file);
    let sha256 = state.checksums.checksum(&path, size, mtime).await.map_err(|error| {
        tracing::warn!(path = %path.display(), %error, "checksum failed; answering with an error");
        error
    })?;
    Ok(HttpResponse::Ok().json(json!({ "sha256": sha256, "size": size })))
}

async fn download(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let head_only = req.method() == actix_web::http::Method::HEAD;
    let read_up_to = if head_only { 0 } else { WHOLE_READ_MAX };
    // A small file already in memory is read here; anything else goes through the blocking pool.
    let cached = (!head_only)
        .then(|| split_request_path(req.uri().path(), "/files/").ok())
        .flatten()
        .filter(|(category, _)| state.cached_reads.contains(category))
        .and_then(|(category, relative)| {
            let root = state.roots.get(&category)?;
            read_if_cached(root, &relative, WHOLE_READ_MAX)
        });
    let (file, size, mtime, whole) = match cached {
        Some(CachedFile { size, mtime, body }) => (None, size, mtime, Some(body)),
        None => {
            let (
                OpenedFile {
                    file, size, mtime, ..
                },
                whole,
            ) = open_requested(&req, &state, "/files/", read_up_to).await?;
            (Some(file), size, mtime, whole)
        }
    };
    let etag = etag_for(size, mtime);
    if let Some(condition) = header_text(&req, header::IF_NONE_MATCH) {
        if if_none_match_hits(condition, &etag) {
            return Ok(HttpResponse::NotModified()
                .insert_header((header::ETAG, etag))
                .finish());
        }
    }
    let range = if if_range_allows(header_text(&req, header::IF_RANGE), &etag) {
        header_text(&req, header::RANGE)
    } else {
        None
    };
    let answer = parse_range(range, size);
    if answer == RangeAnswer::Unsatisfiable {
        return Err(ApiError::RangeNotSatisfiable { size });
    }
    let (start, length) = answer.span(size);
    let mut response = match answer {
        RangeAnswer::Partial { .. } => HttpResponse::PartialContent(),
        _ => HttpResponse::Ok(),
    };
    response
        .content_type("application/octet-stream")
        .insert_header((header::ETAG, etag))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header(header::LastModified(mtime.into()));
    if let Some(content_range) = answer.content_range(size) {
        response.insert_header((header::CONTENT_RANGE, content_range));
    }
    if head_only {
        // The headers (Content-Length included) without reading the file.
        drop(file);
        return Ok(response.body(SizedStream::new(
            length,
            Box::pin(futures::stream::empty::<Result<Bytes, io::Error>>()),
        )));
    }
    let file = match (whole, file) {
        // A small file was read whole when it was opened and goes out in one piece: no reader thread and queue
        // per request (most of a small file's cost was those hand-overs).
        (Some(whole), _) => {
            return Ok(response.body(whole.slice(start as usize..(start + length) as usize)))
        }
        (None, Some(file)) => file,
        (None, None) => return Err(ApiError::Task("no file and no body".into())),
    };
    Ok(response.body(SizedStream::new(
        length,
        Box::pin(stream_file(file, start, length)),
    )))
}

/// The first `size` bytes of `file`, read whole. Blocking.
fn read_whole(file: &File, size: u64) -> io::Result<Bytes> {
    let mut body = Vec::with_capacity(size as usize);
    file.take(size).read_to_end(&mut body)?;
    if (body.len() as u64) < size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shrank while it was being sent",
        ));
    }
    Ok(Bytes::from(body))
}

async fn no_such_endpoint() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoSuchEndpoint)
}

fn header_text(req: &HttpRequest, name: HeaderName) -> Option<&str> {
    req.headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Parse, check and open the file a `/files/` or `/checksum/` request names, logging refusals; a file of at most
/// `read_up_to` bytes is also read whole in the same blocking step.
async fn open_requested(
    req: &HttpRequest,
    state: &AppState,
    prefix: &str,
    read_up_to: u64,
) -> Result<(OpenedFile, Option<Bytes>), ApiError> {
    let result = async {
        let (category, relative) = split_request_path(req.uri().path(), prefix)?;
        let root = state.root_of(&category)?;
        web::block(move || {
            let opened = open_under_root(&root, &relative)?;
            let whole = if opened.size <= read_up_to {
                Some(read_whole(&opened.file, opened.size).map_err(PathError::Io)?)
            } else {
                None
            };
            Ok((opened, whole))
        })
        .await
        .map_err(|error| PathError::Io(io::Error::other(error.to_string())))?
    }
    .await;
    result.map_err(|error| {
        let peer = req.peer_addr().map(|addr| addr.to_string()).unwrap_or_default();
        match &error {
            PathError::OutsideRoot { resolved } => tracing::warn!(
                request = %req.uri(), %peer, resolved = %resolved.display(),
                "refused a path that leaves its category root (symlink); answering 404"
            ),
            refused if refused.is_suspicious() => {
                tracing::warn!(request = %req.uri(), %peer, error = %refused, "refused an unsafe path; answering 400")
            }
            PathError::Io(source) => tracing::warn!(request = %req.uri(), %source, "file read failed; answering 500"),
            other => tracing::debug!(request = %req.uri(), error = %other, "file not found; answering 404"),
        }
        ApiError::Path(error)
    })
}

/// Stream `length` bytes of `file` from `start`, read on the blocking pool and handed over through a small queue.
/// The reader stops as soon as the client goes away (the queue's receiver is dropped).
fn stream_file(
    mut file: File,
    start: u64,
    length: u64,
) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel(SEND_QUEUE);
    tokio::task::spawn_blocking(move || {
        lower_this_thread_priority();
        if let Err(error) = file.seek(SeekFrom::Start(start)) {
            let _ = sender.blocking_send(Err(error));
            return;
        }
        let mut remaining = length;
        while remaining > 0 {
            let want = usize::try_from(remaining)
                .unwrap_or(SEND_CHUNK)
                .min(SEND_CHUNK);
            // read_to_end into reserved capacity: no zero-filling of the chunk before the read.
            let mut chunk = Vec::with_capacity(want);
            let item = match file.by_ref().take(want as u64).read_to_end(&mut chunk) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while it was being sent",
                )),
                Ok(read) => {
                    remaining -= read as u64;
                    Ok(Bytes::from(chunk))
                }
                Err(error) => Err(error),
            };
            let failed = item.is_err();
            if sender.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// Bulk disk reads yield the CPU to the request workers, so `/health` stays prompt on a busy machine.
/// Only blocking-pool threads call this; they do nothing but bulk I/O in this server.
fn lower_this_thread_priority() {
    // SAFETY: gettid and setpriority have no memory-safety preconditions; a failure only leaves the priority as is.
    unsafe {
        let thread = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, BULK_READ_NICE);
    }
}
