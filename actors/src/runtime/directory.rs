//! The actors of a tree by name: how the control API and the dead-letter actor reach an actor without knowing
//! its type — to replay a stored message, ping it, or arm a fault drill.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::child::ChildShared;
use super::drill::Drill;
use super::ids::MessageMeta;
use super::message::DeliveryError;

/// How the target actor took a replayed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReplayAck {
    /// Handled: the replay succeeded.
    Handled,
    /// Accepted; the work it started reports its outcome later, keyed by the letter id (a replayed job).
    Accepted,
}

/// Decodes a stored payload and delivers it (ask, with a deadline).
pub type ReplayFn = Arc<
    dyn Fn(
            serde_json::Value,
            MessageMeta,
            Duration,
        ) -> BoxFuture<'static, Result<ReplayAck, DeliveryError>>
        + Send
        + Sync,
>;
/// Sends the actor a `Ping`.
pub type PingFn = Arc<dyn Fn() -> Result<(), DeliveryError> + Send + Sync>;

/// What the directory knows of one actor.
#[derive(Clone)]
pub struct DirectoryEntry {
    pub shared: Arc<ChildShared>,
    pub ping: Option<PingFn>,
    pub replay: HashMap<&'static str, ReplayFn>,
}

/// Why a directory call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("no actor named {name:?} (known: {known})")]
    UnknownActor { name: String, known: String },
    #[error("{actor} is a supervisor and takes no messages")]
    NotAWorker { actor: String },
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

/// Actors by name. Cheap to clone.
#[derive(Clone, Default)]
pub struct Directory {
    entries: Arc<HashMap<String, DirectoryEntry>>,
}

impl Directory {
    pub fn new(entries: Vec<DirectoryEntry>) -> Self {
        Directory {
            entries: Arc::new(
                entries
                    .into_iter()
                    .map(|e| (e.shared.name.clone(), e))
                    .collect(),
            ),
        }
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        names.sort();
        names
    }

    fn entry(&self, name: &str) -> Result<&DirectoryEntry, DirectoryError> {
        self.entries
            .get(name)
            .ok_or_else(|| DirectoryError::UnknownActor {
                name: name.to_string(),
                known: self.names().join(", "),
            })
    }

    /// Re-sends a stored message to `actor` and waits for its answer.
    pub async fn replay(
        &self,
        actor: &str,
        msg: &str,
        payload: serde_json::Value,
        meta: MessageMeta,
        timeout: Duration,
    ) -> Result<ReplayAck, DirectoryError> {
        let entry = self.entry(actor)?;
        let replay = entry.replay.get(msg).cloned().ok_or_else(|| {
            DirectoryError::Delivery(DeliveryError::UnknownMessage {
                actor: actor.to_string(),
                msg: msg.to_string(),
            })
        })?;
        replay(payload, meta, timeout)
            .await
            .map_err(DirectoryError::from)
    }

    /// Sends `count` pings to `actor`; returns how many were queued.
    pub fn ping(&self, actor: &str, count: u32) -> Result<u32, DirectoryError> {
        let entry = self.entry(actor)?;
        let ping = entry
            .ping
            .clone()
            .ok_or_else(|| DirectoryError::NotAWorker {
                actor: actor.to_string(),
            })?;
        let mut sent = 0;
        for _ in 0..count {
            ping()?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Arms a fault drill on `actor` for its next message and pings it so the drill fires now.
    pub fn arm_drill(&self, actor: &str, drill: Drill) -> Result<(), DirectoryError> {
        let entry = self.entry(actor)?;
        if entry.ping.is_none() {
            return Err(DirectoryError::NotAWorker {
                actor: actor.to_string(),
            });
        }
        entry
            .shared
            .drill
            .store(drill.as_u8(), std::sync::atomic::Ordering::Release);
        tracing::warn!(actor, drill = %crate::logging::serde_name(&drill), "fault drill armed for the next message");
        self.ping(actor, 1).map(|_| ())
    }
}
