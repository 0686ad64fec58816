//! The data server: a separate, multi-threaded HTTP process serving this node's games, models and training files to
//! peers, safely (only configured categories, no path escapes) and resumably (`Range`), with checksums.
//!
//! Layout:
//! - [`config`]: the `data_server` config section (server and monitor knobs).
//! - [`paths`]: request path → file under a category root, refusing every traversal form.
//! - [`range`]: pure `Range`/`ETag` logic.
//! - [`checksum`]: sha256 off the request threads, cached by (path, size, mtime).
//! - [`inventory`]: the list of servable files.
//! - [`server`]: routes, error mapping, and the standalone / in-process entry points.
//! - [`monitor`]: the actor that runs this server as a child process and keeps it up.
//!
//! The server side knows nothing of the monitor except the test hook it needs
//! ([`ServerOptions::test_hook_hang_health_after`]).

pub mod cached_read;
pub mod checksum;
pub mod config;
pub mod inventory;
pub mod monitor;
pub mod paths;
pub mod range;
pub mod server;

pub use config::DataServerConfig;
pub use server::{
    bind_listener, build_server, run_standalone, serve, ApiError, BackgroundServer,
    DataServerError, ServerOptions,
};
