//! Typed messages and their envelope.
//!
//! A [`Message`] is a plain serde type (so a failed one can be stored as a dead letter and replayed) with a reply
//! type and a stable name for logs, metrics and dead-letter records. The [`Envelope`] adds the [`MessageMeta`]
//! (id, correlation id, cause) and is what actually travels through an actix mailbox.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use super::ids::MessageMeta;

/// A message an actor of this runtime can handle.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// What the handler answers.
    type Reply: Send + 'static;
    /// Stable type name: used in spans (`msg`), metrics labels, dead-letter records and replay.
    const NAME: &'static str;
    /// Whether a failed or undeliverable message of this type becomes a dead letter. `false` for the dead-letter
    /// actor's own commands and ticks: their failure is the store's state (health check), never a letter about a
    /// letter.
    const DEAD_LETTER_ON_FAILURE: bool = true;
}

/// Where a handler's answer goes (absent for fire-and-forget `tell`).
pub type ReplyTo<M> = tokio::sync::oneshot::Sender<Result<<M as Message>::Reply, DeliveryError>>;

/// A message with its meta and optional reply channel: what travels through the mailbox.
/// The reply travels inside the envelope (not as actix's response) so a full or closed mailbox hands the whole
/// message back to the sender, who stores it as a dead letter instead of dropping it.
pub struct Envelope<M: Message> {
    pub msg: M,
    pub meta: MessageMeta,
    pub reply: Option<ReplyTo<M>>,
}

impl<M: Message> actix::Message for Envelope<M> {
    type Result = ();
}

/// How a handler says a message failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    /// `true` when the actor's state can no longer be trusted: treated like a panic (restart with fresh state).
    pub crash: bool,
}

impl HandlerError {
    /// This message failed; the actor is fine and goes on with the next one. The message becomes a dead letter.
    pub fn fail(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            crash: false,
        }
    }

    /// This message failed and the actor's state is broken: restart it (like a panic).
    pub fn crash(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            crash: true,
        }
    }
}

/// Why a message got no reply. Every variant except `Timeout` means the message was also stored as a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeliveryError {
    #[error("handler of {actor} failed: {error}")]
    Handler { actor: String, error: String },
    #[error("handler of {actor} panicked: {error}; the actor restarts with fresh state")]
    Panicked { actor: String, error: String },
    #[error("{actor} stopped making progress on this message; the watchdog restarts it")]
    Hung { actor: String },
    #[error("mailbox of {actor} is full ({depth} queued); message stored as a dead letter")]
    MailboxFull { actor: String, depth: u64 },
    #[error("{actor} is not running (mailbox closed); message stored as a dead letter")]
    MailboxClosed { actor: String },
    #[error("no reply from {actor} within {timeout_ms} ms")]
    Timeout { actor: String, timeout_ms: u64 },
    #[error("{actor} has no replayable message type {msg}")]
    UnknownMessage { actor: String, msg: String },
    #[error("stored payload of {msg} for {actor} does not decode: {error}")]
    BadPayload {
        actor: String,
        msg: String,
        error: String,
    },
}

/// Built-in probe every actor answers: used by `/debug/ping` and to trigger armed fault drills.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Ping;

impl Message for Ping {
    type Reply = ();
    const NAME: &'static str = "Ping";
}
