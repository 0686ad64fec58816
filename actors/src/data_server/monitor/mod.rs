//! The data-server monitor: keeps this node's data server process up and tells the rest of the daemon whether it
//! is (shared/domain/sync.md, "Data server and its monitor").
//!
//! Layout:
//! - [`policy`]: every decision (health checks, kill, restart backoff, restart window, circuit) as a pure state
//!   machine with injected time.
//! - [`actor`]: the actor shell that runs the process, polls `/health`, publishes state and metrics.
//! - [`messages`]: the `/status` query and the actor's internal events.
//! - [`command`]: the command line of the server process.
//! - [`metrics`]: `coordinator_data_server_up`, `…_restarts_total`, `…_circuit_open`.

pub mod actor;
pub mod command;
pub mod messages;
pub mod metrics;
pub mod policy;

pub use actor::{
    data_server_status, ignore_state, monitor_child, monitor_child_options, DataServerMonitor,
    StateListener,
};
pub use command::{MonitorError, ServerCommand};
pub use messages::DataServerStatus;
pub use policy::{DataServerState, MonitorSnapshot, MonitorState};
