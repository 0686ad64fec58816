//! The resource optimizer: measures this node, holds its utilization inside the target band by setting how many
//! selfplay jobs it runs, and pauses new work under disk or memory pressure
//! (shared/domain/resources-and-lifecycle.md, "Resource optimizer").
//!
//! Layout:
//! - [`config`]: the `resources` section (interval, thresholds, band, rate negotiation, cluster view).
//! - [`sample`]: CPU, memory, load and disk use from the OS through `sysinfo`.
//! - [`gpu`]: the `nvidia-smi` query, its pure parser and the probe with a deadline.

pub mod config;
pub mod gpu;
pub mod sample;

pub use config::ResourcesConfig;
