//! The optimizer's messages: the `/status` query, and the events its own spawned work reports back (a round of
//! measurements is in, a peer answered or not, the timer fired). What it sends out is the scheduler's
//! [`CapacityUpdate`](crate::scheduler::actor::CapacityUpdate) and [`ClusterFigures`](super::cluster::ClusterFigures).

use serde::{Deserialize, Serialize};

use super::cluster::{NodeFigures, PeerReport};
use super::policy::{Observation, ResourcesReport};
use crate::runtime::Message;

/// Query: the `resources` section of `/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResourcesStatus;

/// Answer to [`ResourcesStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourcesStatusReport {
    /// This node's figures, pressure, controller and GPU state.
    #[serde(flatten)]
    pub report: ResourcesReport,
    /// The peers of the cluster view.
    pub cluster: Vec<PeerReport>,
}

impl Message for ResourcesStatus {
    type Reply = ResourcesStatusReport;
    const NAME: &'static str = "ResourcesStatus";
}

/// Timer: time for a round of measurements.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SampleDue;

impl Message for SampleDue {
    type Reply = ();
    const NAME: &'static str = "SampleDue";
}

/// Event: a round of measurements is in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sampled {
    pub observation: Observation,
    /// CPU time the OS sample took (for `/metrics`).
    pub sample_cpu_seconds: f64,
}

impl Message for Sampled {
    type Reply = ();
    const NAME: &'static str = "Sampled";
}

/// Event: a peer's `/status` was polled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerPolled {
    pub node: String,
    pub outcome: Result<NodeFigures, String>,
}

impl Message for PeerPolled {
    type Reply = ();
    const NAME: &'static str = "PeerPolled";
}
