//! The resource optimizer: measures this node, holds its utilization inside the target band by setting how many
//! selfplay jobs it runs, and pauses new work under disk or memory pressure
//! (shared/domain/resources-and-lifecycle.md, "Resource optimizer").
//!
//! Layout:
//! - [`config`]: the `resources` section (interval, thresholds, band, rate negotiation, cluster view).
//! - [`sample`]: CPU, memory, load and disk use from the OS through `sysinfo`.
//! - [`gpu`]: the `nvidia-smi` query, its pure parser and the probe with a deadline.
//! - [`policy`]: every decision as pure code: the band controller (job target), pressure (pause/resume), the GPU
//!   reading kept through failures, rate negotiation, the `resources` health check.
//! - [`cluster`]: the cluster view of every node's figures; peers that fall silent for 300 s leave it.

pub mod cluster;
pub mod config;
pub mod gpu;
pub mod policy;
pub mod sample;

pub use config::ResourcesConfig;
