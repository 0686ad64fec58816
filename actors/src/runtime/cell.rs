//! The actix actor that hosts one behavior and makes it supervisable.
//!
//! actix does not catch panics in handlers: the actor's task dies and its queued messages go with it. A [`Cell`]
//! owns the mailbox and the behavior separately. Each message is handled under `catch_unwind`; a panic (or a handler
//! error marked `crash`) drops the behavior's state, stores the message being handled as a dead letter, tells the
//! supervisor, and pauses the mailbox (`ctx.wait`) until the supervisor says `Start` after its backoff. The mailbox,
//! the address and every message queued in it survive the restart; the next incarnation is built fresh by the
//! factory. Supervisor commands arrive out of band through the child's [`ControlQueue`](super::child::ControlQueue),
//! so they reach a cell whose mailbox is paused or full.
//!
//! The cell also beats a heartbeat on a timer while its event loop turns; a loop that stops (a hang) stops beating
//! and the supervisor's watchdog restarts it.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Recipient,
    SpawnHandle,
};
use prometheus::IntCounter;
use tokio::sync::oneshot;

use super::actor_ref::ActorRef;
use super::behavior::{Behavior, Ctx, Handles};
use super::child::{ChildShared, ChildState, Control};
use super::dead_letter_sink::DeadLetterSink;
use super::dead_letters::record::{dead_letter_for, NewDeadLetter};
use super::drill::Drill;
use super::ids::{self, MessageMeta};
use super::message::{DeliveryError, Envelope, Message};
use super::metrics;
use super::supervisor::ChildEnded;

/// Builds a fresh behavior for each incarnation; `Err` (why it cannot) is a failed start.
pub type Factory<B> = Arc<dyn Fn() -> Result<B, String> + Send + Sync>;

/// Per-cell settings taken from the child spec.
#[derive(Debug, Clone, Copy)]
pub struct CellOptions {
    pub mailbox_capacity: usize,
    /// How often the cell beats while its loop turns; `None` disables the heartbeat timer.
    pub heartbeat: Option<Duration>,
}

/// Everything of a cell except the behavior, so handlers can borrow both at once.
pub struct CellCore<B: Behavior> {
    pub(crate) shared: Arc<ChildShared>,
    factory: Factory<B>,
    sink: DeadLetterSink,
    addr: Addr<Cell<B>>,
    supervisor: Option<(Recipient<ChildEnded>, usize)>,
    pub(crate) tasks: HashMap<u64, SpawnHandle>,
    next_task: u64,
    pub(crate) stop_requested: bool,
    watcher: Option<SpawnHandle>,
    waiting_control: bool,
    stopping: bool,
    hung_letter: Option<NewDeadLetter>,
    started_tx: Option<oneshot::Sender<()>>,
    stop_done: Option<oneshot::Sender<()>>,
    options: CellOptions,
    counters: Vec<MessageCounters>,
}

/// The Prometheus counters of one message type handled by one actor.
struct MessageCounters {
    msg: &'static str,
    handled: IntCounter,
    failed: IntCounter,
}

impl<B: Behavior> CellCore<B> {
    pub(crate) fn actor_ref(&self) -> ActorRef<B> {
        ActorRef::new(self.addr.clone(), self.shared.clone(), self.sink.clone())
    }

    pub(crate) fn sink_ref(&self) -> &DeadLetterSink {
        &self.sink
    }

    pub(crate) fn next_task_id(&mut self) -> u64 {
        self.next_task += 1;
        self.next_task
    }

    /// The handled/failed counters of message type `msg`, found by the name's address first (every message type
    /// has one `&'static` name, so the common case is a pointer compare over a handful of entries, no hashing).
    fn counters(&mut self, msg: &'static str) -> &MessageCounters {
        let found = self
            .counters
            .iter()
            .position(|c| std::ptr::eq(c.msg, msg))
            .or_else(|| self.counters.iter().position(|c| c.msg == msg));
        let index = match found {
            Some(index) => index,
            None => {
                let m = metrics::runtime();
                let actor = self.shared.name.as_str();
                self.counters.push(MessageCounters {
                    msg,
                    handled: m.messages_handled.with_label_values(&[actor, msg]),
                    failed: m.messages_failed.with_label_values(&[actor, msg]),
                });
                self.counters.len() - 1
            }
        };
        &self.counters[index]
    }

    fn letter<M: Message>(&self, msg: &M, meta: MessageMeta, error: &str) -> NewDeadLetter {
        dead_letter_for(&self.shared.name, msg, meta, error)
    }

    /// Stores a failed message as a dead letter, unless it is a replay (whose record the replayer updates) or a
    /// type that never becomes one (the dead-letter actor's own commands).
    fn store_letter<M: Message>(&self, msg: &M, meta: MessageMeta, error: &str) {
        if meta.replay_of.is_none() && M::DEAD_LETTER_ON_FAILURE {
            self.sink.store(self.letter(msg, meta, error));
        }
    }
}

/// The actix actor hosting a behavior. See the module doc.
pub struct Cell<B: Behavior> {
    pub(crate) behavior: Option<B>,
    pub(crate) core: CellCore<B>,
}

/// Text of a panic payload.
pub(crate) fn panic_text(payload: &Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl<B: Behavior> Cell<B> {
    /// A cell not yet running; `supervisor` is where it reports ended incarnations (none: it restarts itself at once).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<ChildShared>,
        factory: Factory<B>,
        sink: DeadLetterSink,
        addr: Addr<Cell<B>>,
        supervisor: Option<(Recipient<ChildEnded>, usize)>,
        options: CellOptions,
        started_tx: Option<oneshot::Sender<()>>,
    ) -> Self {
        Cell {
            behavior: None,
            core: CellCore {
                shared,
                factory,
                sink,
                addr,
                supervisor,
                tasks: HashMap::new(),
                next_task: 0,
                stop_requested: false,
                watcher: None,
                waiting_control: false,
                stopping: false,
                hung_letter: None,
                started_tx,
                stop_done: None,
                options,
                counters: Vec::new(),
            },
        }
    }

    /// Handles one message with panic capture, tracing span, metrics and dead letters.
    pub(crate) fn dispatch<M>(
        &mut self,
        msg: &M,
        meta: MessageMeta,
        ctx: &mut Context<Self>,
    ) -> Result<M::Reply, DeliveryError>
    where
        M: Message,
        B: Handles<M>,
    {
        if self.behavior.is_none() {
            let error = DeliveryError::MailboxClosed {
                actor: self.core.shared.name.clone(),
            };
            self.core.store_letter(msg, meta, &error.to_string());
            return Err(error);
        }
        // Field values are only evaluated when the span is enabled.
        let span = tracing::info_span!(
            "message",
            actor = self.core.shared.name.as_str(),
            msg = M::NAME,
            id = meta.id.0,
            correlation_id = meta.correlation_id.hex().as_str()
        );
        let _entered = span.enter();
        let _meta = ids::enter(meta, None);
        // No clock read here: the watchdog counts messages taken from the mailbox as progress, the heartbeat
        // timer beats while the loop is idle, and a handler that never returns stops both.

        // A plain load first: the swap (a locked instruction) only when a drill is armed.
        let drill = if self.core.shared.drill.load(Ordering::Relaxed) == 0 {
            None
        } else {
            Drill::from_u8(self.core.shared.drill.swap(0, Ordering::AcqRel))
        };
        if drill == Some(Drill::Hang) {
            tracing::warn!(
                "fault drill: hang; this actor stops making progress until the watchdog restarts it"
            );
            self.core.hung_letter = (meta.replay_of.is_none() && M::DEAD_LETTER_ON_FAILURE).then(|| self.core.letter(
                msg,
                meta,
                "watchdog: actor stopped making progress while handling this message (fault drill: hang)",
            ));
            self.wait_for_control(ctx);
            return Err(DeliveryError::Hung {
                actor: self.core.shared.name.clone(),
            });
        }

        let Cell { behavior, core } = self;
        let outcome = match behavior.as_mut() {
            Some(behavior) => catch_unwind(AssertUnwindSafe(|| {
                match drill {
                    Some(Drill::Panic) => {
                        panic!("fault drill: panic requested for {}", core.shared.name)
                    }
                    Some(Drill::Error) => {
                        return Err(super::message::HandlerError::fail(
                            "fault drill: error requested",
                        ));
                    }
                    _ => {}
                }
                behavior.handle(msg, &mut Ctx { actix: ctx, core })
            })),
            None => unreachable_state(),
        };
        match outcome {
            Ok(Ok(reply)) => {
                self.core.shared.count_handled();
                self.core.counters(M::NAME).handled.inc();
                Ok(reply)
            }
            Ok(Err(error)) if !error.crash => {
                self.core.shared.count_failed();
                self.core.counters(M::NAME).failed.inc();
                tracing::warn!(%error, "handler failed; message stored as a dead letter, actor goes on");
                self.core.store_letter(msg, meta, &error.message);
                Err(DeliveryError::Handler {
                    actor: self.core.shared.name.clone(),
                    error: error.message,
                })
            }
            Ok(Err(error)) => {
                self.core.shared.count_failed();
                self.core.counters(M::NAME).failed.inc();
                let reason = format!("handler reported a crash: {}", error.message);
                tracing::error!(%reason, "message stored as a dead letter; actor restarts with fresh state");
                self.core.store_letter(msg, meta, &reason);
                self.crash(reason, ctx);
                Err(DeliveryError::Panicked {
                    actor: self.core.shared.name.clone(),
                    error: error.message,
                })
            }
            Err(panic) => {
                self.core.shared.count_failed();
                self.core.counters(M::NAME).failed.inc();
                let text = panic_text(&panic);
                let reason = format!("panic: {text}");
                tracing::error!(%reason, "handler panicked; message stored as a dead letter, actor restarts with fresh state");
                self.core.store_letter(msg, meta, &reason);
                self.crash(reason, ctx);
                Err(DeliveryError::Panicked {
                    actor: self.core.shared.name.clone(),
                    error: text,
                })
            }
        }
    }

    /// Called after every dispatch: honours a requested stop and pending supervisor commands.
    pub(crate) fn after_dispatch(&mut self, ctx: &mut Context<Self>) {
        if self.core.stop_requested {
            self.core.stop_requested = false;
            self.drop_state(ctx);
            self.core.shared.set_state(ChildState::Stopped);
            tracing::info!(actor = %self.core.shared.name, "actor stopped on its own; its supervisor decides what next");
            self.report_ended("stopped on its own".to_string(), false, ctx);
            return;
        }
        if self.core.shared.control_pending.load(Ordering::Acquire) && !self.core.waiting_control {
            self.apply_controls(ctx);
        }
    }

    /// A crash outside a message (spawned task panic, started hook panic): drop state and report.
    pub(crate) fn crash_outside_message(&mut self, reason: String, ctx: &mut Context<Self>) {
        tracing::error!(actor = %self.core.shared.name, %reason, "actor crashed; it restarts with fresh state");
        self.crash(reason, ctx);
    }

    fn crash(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.drop_state(ctx);
        self.core.shared.set_state(ChildState::Restarting);
        self.core.shared.record_failure(&reason);
        self.report_ended(reason, true, ctx);
    }

    fn report_ended(&mut self, reason: String, failed: bool, ctx: &mut Context<Self>) {
        match &self.core.supervisor {
            Some((supervisor, index)) => {
                supervisor.do_send(ChildEnded {
                    index: *index,
                    reason,
                    failed,
                });
                self.wait_for_control(ctx);
            }
            None if failed => {
                // Unsupervised cell (tests, benchmarks): restart in place at once.
                self.core.shared.count_restart();
                metrics::runtime()
                    .restarts
                    .with_label_values(&[&self.core.shared.name])
                    .inc();
                self.start_behavior(ctx);
            }
            None => ctx.stop(),
        }
    }

    /// Drops the current incarnation: cancels its spawned work and timers, then its state.
    fn drop_state(&mut self, ctx: &mut Context<Self>) {
        for (_, handle) in self.core.tasks.drain() {
            ctx.cancel_future(handle);
        }
        if let Some(watcher) = self.core.watcher.take() {
            ctx.cancel_future(watcher);
        }
        if let Some(behavior) = self.behavior.take() {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(behavior))) {
                tracing::error!(actor = %self.core.shared.name, panic = %panic_text(&panic), "dropping the actor's state panicked; state discarded");
            }
        }
    }

    /// Builds a fresh incarnation from the factory and runs its `started` hook.
    fn start_behavior(&mut self, ctx: &mut Context<Self>) {
        let factory = self.core.factory.clone();
        let built = catch_unwind(AssertUnwindSafe(|| factory()))
            .map_err(|panic| format!("factory panicked: {}", panic_text(&panic)))
            .and_then(|b| b.map_err(|e| format!("factory could not build the actor: {e}")));
        let behavior = match built {
            Ok(b) => b,
            Err(reason) => {
                self.core.shared.record_failure(&reason);
                if self.core.supervisor.is_some() {
                    self.crash_outside_message(reason, ctx);
                } else {
                    tracing::error!(actor = %self.core.shared.name, %reason, "unsupervised actor cannot start; stopping it");
                    self.core.shared.set_state(ChildState::Failed);
                    ctx.stop();
                }
                return;
            }
        };
        self.behavior = Some(behavior);
        let Cell { behavior, core } = self;
        let hook = catch_unwind(AssertUnwindSafe(|| {
            if let Some(b) = behavior.as_mut() {
                b.started(&mut Ctx { actix: ctx, core });
            }
        }));
        if let Err(panic) = hook {
            self.crash_outside_message(
                format!("started hook panicked: {}", panic_text(&panic)),
                ctx,
            );
            return;
        }
        self.core.shared.set_state(ChildState::Running);
        self.core.shared.beat();
        self.ensure_watcher(ctx);
    }

    /// While running: a spawned waiter applies supervisor commands when the mailbox is idle.
    fn ensure_watcher(&mut self, ctx: &mut Context<Self>) {
        if self.core.watcher.is_some() || self.core.waiting_control || self.core.stopping {
            return;
        }
        let shared = self.core.shared.clone();
        let handle = ctx.spawn(
            actix::fut::wrap_future::<_, Self>(
                async move { shared.control.notify.notified().await },
            )
            .map(|_, cell, ctx| {
                cell.core.watcher = None;
                cell.apply_controls(ctx);
            }),
        );
        self.core.watcher = Some(handle);
    }

    /// Pauses the mailbox (and timers) until a supervisor command arrives.
    fn wait_for_control(&mut self, ctx: &mut Context<Self>) {
        if self.core.waiting_control {
            return;
        }
        if let Some(watcher) = self.core.watcher.take() {
            ctx.cancel_future(watcher);
        }
        self.core.waiting_control = true;
        let shared = self.core.shared.clone();
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(async move {
                if !shared.control_pending.load(Ordering::Acquire) {
                    shared.control.notify.notified().await;
                }
            })
            .map(|_, cell, ctx| {
                cell.core.waiting_control = false;
                cell.apply_controls(ctx);
            }),
        );
    }

    /// Applies every queued supervisor command, then either resumes or keeps waiting.
    fn apply_controls(&mut self, ctx: &mut Context<Self>) {
        let shared = self.core.shared.clone();
        shared.control_pending.store(false, Ordering::Release);
        while let Some(control) = shared.control.pop() {
            match control {
                Control::Reset { reason } => {
                    if self.behavior.is_some() {
                        tracing::info!(actor = %shared.name, %reason, "state dropped; waiting for restart");
                    }
                    self.drop_state(ctx);
                    if let Some(letter) = self.core.hung_letter.take() {
                        self.core.sink.store(letter);
                    }
                    // The supervisor may already have said what comes next (backing off, failed): keep that.
                    if matches!(shared.state(), ChildState::Running | ChildState::Starting) {
                        shared.set_state(ChildState::Restarting);
                    }
                }
                Control::Start => {
                    if self.behavior.is_none() {
                        self.core.shared.count_restart_if_started();
                        self.start_behavior(ctx);
                    }
                }
                Control::Stop { done } => {
                    self.core.stop_done = done;
                    self.begin_stop(ctx);
                    return;
                }
                Control::Abort => {
                    tracing::warn!(actor = %shared.name, "shutdown timeout passed; actor aborted");
                    self.finish_stop(ctx);
                    return;
                }
            }
        }
        if self.core.stopping {
            return;
        }
        if self.behavior.is_none() {
            self.wait_for_control(ctx);
        } else {
            self.ensure_watcher(ctx);
        }
    }

    /// Graceful stop: runs the behavior's `stopping` future (until it ends or an `Abort` arrives), then stops.
    fn begin_stop(&mut self, ctx: &mut Context<Self>) {
        self.core.stopping = true;
        if self.core.shared.state() != ChildState::Failed {
            self.core.shared.set_state(ChildState::Stopping);
        }
        if let Some(watcher) = self.core.watcher.take() {
            ctx.cancel_future(watcher);
        }
        let Cell { behavior, core } = self;
        let graceful = match behavior.as_mut() {
            Some(b) => catch_unwind(AssertUnwindSafe(|| {
                b.stopping(&mut Ctx { actix: ctx, core })
            }))
            .unwrap_or(None),
            None => None,
        };
        match graceful {
            None => self.finish_stop(ctx),
            Some(fut) => {
                let shared = self.core.shared.clone();
                // Only a queued `Abort` cuts the graceful stop short: a wake-up left over from an earlier command
                // (a stored `notify_one` permit) must not.
                let abort = async move {
                    loop {
                        if shared.control.has_abort() {
                            break;
                        }
                        shared.control.notify.notified().await;
                    }
                };
                ctx.wait(
                    actix::fut::wrap_future::<_, Self>(async move {
                        futures::pin_mut!(abort);
                        futures::future::select(fut, abort).await;
                    })
                    .map(|_, cell, ctx| cell.finish_stop(ctx)),
                );
            }
        }
    }

    fn finish_stop(&mut self, ctx: &mut Context<Self>) {
        self.core.stopping = true;
        self.drop_state(ctx);
        // A message this actor hung on is stored at shutdown too, not only at a watchdog restart.
        if let Some(letter) = self.core.hung_letter.take() {
            self.core.sink.store(letter);
        }
        if self.core.shared.state() != ChildState::Failed {
            self.core.shared.set_state(ChildState::Stopped);
        }
        ctx.stop();
    }
}

fn unreachable_state<T>() -> T {
    // dispatch returns early when there is no behavior; reaching here is a runtime bug.
    panic!("cell dispatched a message without a behavior")
}

impl ChildShared {
    /// Counts a restart when a cell that had run before starts again.
    pub(crate) fn count_restart_if_started(&self) {
        self.count_restart();
        metrics::runtime()
            .restarts
            .with_label_values(&[&self.name])
            .inc();
    }
}

impl<B: Behavior> Actor for Cell<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.core.options.mailbox_capacity);
        if let Some(period) = self.core.options.heartbeat {
            ctx.run_interval(period, |cell, _| cell.core.shared.beat());
        }
        self.start_behavior(ctx);
        if let Some(tx) = self.core.started_tx.take() {
            let _ = tx.send(());
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.core.shared.terminated.store(true, Ordering::Release);
        if self.core.shared.state() != ChildState::Failed {
            self.core.shared.set_state(ChildState::Stopped);
        }
        if let Some(done) = self.core.stop_done.take() {
            let _ = done.send(());
        }
    }
}

impl<B, M> Handler<Envelope<M>> for Cell<B>
where
    B: Handles<M>,
    M: Message,
{
    type Result = ();

    fn handle(&mut self, envelope: Envelope<M>, ctx: &mut Self::Context) {
        self.core.shared.count_dequeued();
        let Envelope { msg, meta, reply } = envelope;
        let result = self.dispatch(&msg, meta, ctx);
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
        self.after_dispatch(ctx);
    }
}
