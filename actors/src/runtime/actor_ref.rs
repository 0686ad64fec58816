//! A typed, cloneable reference to a supervised actor: `tell` (fire and forget) and `ask` (with a deadline).
//!
//! The address stays valid across restarts (the cell keeps its mailbox). Nothing sent through a reference is lost
//! silently: a full or closed mailbox hands the message back and it is stored as a dead letter, and the sender gets a
//! [`DeliveryError`] that says so. `ask` waits for mailbox space only until its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::SendError;
use actix::Addr;

use super::behavior::{Behavior, Handles};
use super::cell::Cell;
use super::child::ChildShared;
use super::dead_letter_sink::DeadLetterSink;
use super::dead_letters::record::dead_letter_for;
use super::ids::MessageMeta;
use super::message::{DeliveryError, Envelope, Message};
use super::reply::{NoReply, ReplyWithin};

/// Reference to an actor hosted by a [`Cell`].
pub struct ActorRef<B: Behavior> {
    addr: Addr<Cell<B>>,
    shared: Arc<ChildShared>,
    sink: DeadLetterSink,
}

impl<B: Behavior> Clone for ActorRef<B> {
    fn clone(&self) -> Self {
        ActorRef {
            addr: self.addr.clone(),
            shared: self.shared.clone(),
            sink: self.sink.clone(),
        }
    }
}

impl<B: Behavior> std::fmt::Debug for ActorRef<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorRef")
            .field("name", &self.shared.name)
            .finish()
    }
}

impl<B: Behavior> ActorRef<B> {
    pub(crate) fn new(addr: Addr<Cell<B>>, shared: Arc<ChildShared>, sink: DeadLetterSink) -> Self {
        ActorRef { addr, shared, sink }
    }

    /// The actor's name in the tree.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its status as the supervisor sees it.
    pub fn shared(&self) -> &Arc<ChildShared> {
        &self.shared
    }

    /// Sends without waiting for a reply. A full or closed mailbox stores the message as a dead letter.
    pub fn tell<M>(&self, msg: M) -> Result<(), DeliveryError>
    where
        M: Message,
        B: Handles<M>,
    {
        self.tell_with_meta(msg, MessageMeta::for_send())
    }

    /// `tell` with explicit meta (replays keep the original correlation id and retry count).
    pub fn tell_with_meta<M>(&self, msg: M, meta: MessageMeta) -> Result<(), DeliveryError>
    where
        M: Message,
        B: Handles<M>,
    {
        match self.addr.try_send(Envelope {
            msg,
            meta,
            reply: None,
        }) {
            Ok(()) => {
                self.shared.count_enqueued();
                Ok(())
            }
            Err(SendError::Full(env)) => Err(self.undeliverable(env, true)),
            Err(SendError::Closed(env)) => Err(self.undeliverable(env, false)),
        }
    }

    /// `tell` that hands the message back instead of storing it as a dead letter when the mailbox cannot take it.
    /// Only for the route into the dead-letter store itself, which must not recurse.
    pub fn try_tell_raw<M>(&self, msg: M) -> Result<(), M>
    where
        M: Message,
        B: Handles<M>,
    {
        match self.addr.try_send(Envelope {
            msg,
            meta: MessageMeta::for_send(),
            reply: None,
        }) {
            Ok(()) => {
                self.shared.count_enqueued();
                Ok(())
            }
            Err(SendError::Full(env)) | Err(SendError::Closed(env)) => Err(env.msg),
        }
    }

    /// Sends and waits for the reply, all within `timeout` (waiting for mailbox space counts too).
    pub async fn ask<M>(&self, msg: M, timeout: Duration) -> Result<M::Reply, DeliveryError>
    where
        M: Message,
        B: Handles<M>,
    {
        self.ask_with_meta(msg, MessageMeta::for_send(), timeout)
            .await
    }

    /// `ask` with explicit meta.
    pub async fn ask_with_meta<M>(
        &self,
        msg: M,
        meta: MessageMeta,
        timeout: Duration,
    ) -> Result<M::Reply, DeliveryError>
    where
        M: Message,
        B: Handles<M>,
    {
        let deadline = Instant::now() + timeout;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut envelope = Envelope {
            msg,
            meta,
            reply: Some(tx),
        };
        let mut pause = Duration::from_millis(1);
        loop {
            match self.addr.try_send(envelope) {
                Ok(()) => {
                    self.shared.count_enqueued();
                    break;
                }
                Err(SendError::Closed(env)) => return Err(self.undeliverable(env, false)),
                Err(SendError::Full(env)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(self.undeliverable(env, true));
                    }
                    envelope = env;
                    tokio::time::sleep(pause.min(deadline - now)).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
        match ReplyWithin::new(rx, deadline).await {
            Ok(result) => result,
            Err(NoReply::Dropped) => Err(DeliveryError::MailboxClosed {
                actor: self.shared.name.clone(),
            }),
            Err(NoReply::DeadlinePassed) => Err(DeliveryError::Timeout {
                actor: self.shared.name.clone(),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    fn undeliverable<M: Message>(&self, env: Envelope<M>, full: bool) -> DeliveryError {
        let error = if full {
            DeliveryError::MailboxFull {
                actor: self.shared.name.clone(),
                depth: self.shared.mailbox_depth(),
            }
        } else {
            DeliveryError::MailboxClosed {
                actor: self.shared.name.clone(),
            }
        };
        tracing::warn!(actor = %self.shared.name, msg = M::NAME, %error, "message not delivered; stored as a dead letter");
        if env.meta.replay_of.is_none() && M::DEAD_LETTER_ON_FAILURE {
            self.sink.store(dead_letter_for(
                &self.shared.name,
                &env.msg,
                env.meta,
                &error.to_string(),
            ));
        }
        error
    }
}
