//! What an actor of this runtime implements, and the context its handlers get.
//!
//! An actor is a plain struct implementing [`Behavior`] (lifecycle hooks) and [`Handles<M>`] for each message type.
//! Handlers are synchronous and take the message by reference, so a message whose handler panics is still intact
//! and can be stored as a dead letter. Async work goes through [`Ctx::spawn`]: the future's output comes back to
//! the actor as a message, inside a span with the same correlation id, and a panic inside it is a crash like any
//! other. Everything an actor spawns belongs to its current incarnation and is cancelled when it restarts or stops.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, SpawnHandle};
use futures::future::LocalBoxFuture;
use futures::FutureExt;

use super::actor_ref::ActorRef;
use super::cell::{Cell, CellCore};
use super::ids::{self, MessageMeta};
use super::message::{HandlerError, Message, Ping};

/// Lifecycle hooks of an actor. Its state is built by the factory given to the supervisor, once per incarnation.
pub trait Behavior: Sized + Unpin + 'static {
    /// True for a stand-in that does no domain work yet: `/status` shows it as `kind: placeholder` and its
    /// `/health` check says so.
    const PLACEHOLDER: bool = false;

    /// Called once per incarnation, after the factory built the state and before the first message.
    fn started(&mut self, _ctx: &mut Ctx<'_, Self>) {}

    /// Graceful shutdown (final stop, not restarts): the returned future runs to completion or until the child's
    /// shutdown timeout, whichever comes first; then the state is dropped.
    fn stopping(&mut self, _ctx: &mut Ctx<'_, Self>) -> Option<LocalBoxFuture<'static, ()>> {
        None
    }
}

/// An actor's handler for one message type.
pub trait Handles<M: Message>: Behavior {
    fn handle(&mut self, msg: &M, ctx: &mut Ctx<'_, Self>) -> Result<M::Reply, HandlerError>;
}

/// Every actor answers `Ping` (used by fault drills and `/debug/ping`).
impl<B: Behavior> Handles<Ping> for B {
    fn handle(&mut self, _msg: &Ping, _ctx: &mut Ctx<'_, Self>) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// The context a handler or hook gets: its own reference, spawning, timers, progress and stop.
pub struct Ctx<'a, B: Behavior> {
    pub(crate) actix: &'a mut actix::Context<Cell<B>>,
    pub(crate) core: &'a mut CellCore<B>,
}

impl<'a, B: Behavior> Ctx<'a, B> {
    /// This actor's name in the tree.
    pub fn name(&self) -> &str {
        &self.core.shared.name
    }

    /// A reference to this actor, for handing to others or to spawned work.
    pub fn myself(&self) -> ActorRef<B> {
        self.core.actor_ref()
    }

    /// The meta of the message being handled, if any.
    pub fn meta(&self) -> Option<MessageMeta> {
        ids::current()
    }

    /// Tells the watchdog this actor is making progress (cells also beat on their own while the loop turns).
    pub fn progress(&self) {
        self.core.shared.beat();
    }

    /// Ends this incarnation normally after the current message; the supervisor restarts it only if it is permanent.
    pub fn stop(&mut self) {
        self.core.stop_requested = true;
    }

    /// Runs `fut` on this actor's thread; its output is handled as a message `M` by this actor (same correlation id).
    /// Cancelled if the actor restarts or stops first. A panic inside it crashes the actor like a handler panic.
    pub fn spawn<F, M>(&mut self, fut: F) -> TaskId
    where
        F: Future<Output = M> + 'static,
        M: Message,
        B: Handles<M>,
    {
        let id = self.core.next_task_id();
        let meta = MessageMeta::for_send();
        let guarded = ids::WithMeta::capture(AssertUnwindSafe(fut).catch_unwind());
        let handle = self
            .actix
            .spawn(actix::fut::wrap_future::<_, Cell<B>>(guarded).map(
                move |outcome, cell: &mut Cell<B>, ctx: &mut actix::Context<Cell<B>>| {
                    cell.core.tasks.remove(&id);
                    match outcome {
                        Ok(msg) => {
                            let _ = cell.dispatch(&msg, meta, ctx);
                        }
                        Err(panic) => {
                            let reason = format!(
                                "spawned task panicked: {}",
                                super::cell::panic_text(&panic)
                            );
                            cell.crash_outside_message(reason, ctx);
                        }
                    }
                    cell.after_dispatch(ctx);
                },
            ));
        self.core.tasks.insert(id, handle);
        TaskId(id)
    }

    /// Delivers `msg` to this actor after `delay`.
    pub fn send_later<M>(&mut self, delay: Duration, msg: M) -> TaskId
    where
        M: Message,
        B: Handles<M>,
    {
        self.spawn(async move {
            tokio::time::sleep(delay).await;
            msg
        })
    }

    /// Delivers `make()` to this actor every `every`, each tick starting a new correlation chain.
    pub fn every<M>(&mut self, every: Duration, make: impl Fn() -> M + 'static) -> TaskId
    where
        M: Message,
        B: Handles<M>,
    {
        let id = self.core.next_task_id();
        let handle: SpawnHandle = self
            .actix
            .run_interval(every, move |cell: &mut Cell<B>, ctx| {
                let msg = make();
                let _ = cell.dispatch(
                    &msg,
                    MessageMeta::with_correlation(ids::CorrelationId::new()),
                    ctx,
                );
                cell.after_dispatch(ctx);
            });
        self.core.tasks.insert(id, handle);
        TaskId(id)
    }

    /// Stores `msg` as a dead letter with the current correlation id: for work that used up its retries.
    /// Declare `M` replayable on the actor's spec so an operator can re-send it.
    pub fn dead_letter<M: Message>(&self, msg: &M, error: &str) {
        let meta = ids::current().unwrap_or_else(MessageMeta::for_send);
        self.core
            .sink_ref()
            .store(super::dead_letters::record::dead_letter_for(
                &self.core.shared.name,
                msg,
                meta,
                error,
            ));
    }

    /// The dead letter being replayed by the message in hand, if it is a replay.
    pub fn replay_of(&self) -> Option<i64> {
        ids::current().and_then(|meta| meta.replay_of)
    }

    /// Reports the outcome of work started by a replayed message (declared `replayable_with_outcome`): the
    /// dead-letter actor marks letter `id` recovered on `Ok`, or counts one more failed replay.
    pub fn replay_outcome(&self, id: i64, outcome: Result<(), String>) {
        self.core.sink_ref().replay_outcome(id, outcome);
    }

    /// Cancels spawned work or a timer; `false` if it had already finished.
    pub fn cancel(&mut self, task: TaskId) -> bool {
        match self.core.tasks.remove(&task.0) {
            Some(handle) => self.actix.cancel_future(handle),
            None => false,
        }
    }
}

/// Handle of work spawned by an actor (see [`Ctx::cancel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(u64);
