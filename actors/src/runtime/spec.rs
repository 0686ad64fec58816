//! Child specifications: what a supervisor needs to start, restart and stop each child.
//!
//! A [`WorkerSpec`] is made before anything runs: it creates the child's mailbox and address at once, so every
//! actor can be handed references to its peers (in its factory) before the tree starts. Calling
//! [`WorkerSpec::factory`] turns it into a [`ChildSpec`] for a supervisor. Message types that may be replayed from the
//! dead-letter store are declared with [`WorkerSpec::replayable`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::dev::channel::{channel, AddressReceiver};
use actix::{Addr, Arbiter, Context, Recipient};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::actor_ref::ActorRef;
use super::behavior::{Behavior, Handles};
use super::cell::{Cell, CellOptions, Factory};
use super::child::{ChildKind, ChildShared, Control};
use super::dead_letter_sink::DeadLetterSink;
use super::directory::{DirectoryEntry, PingFn, ReplayAck, ReplayFn};
use super::ids::MessageMeta;
use super::message::{DeliveryError, Message, Ping};
use super::restart_policy::RestartType;
use super::supervisor::{ChildEnded, Supervisor, SupervisorCommand};
use super::tree::TreeShape;

/// Per-child settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChildOptions {
    pub restart: RestartType,
    /// How long a graceful stop may take before the child is aborted.
    pub shutdown_timeout: Duration,
    /// Mailbox bound; `tell` to a full mailbox stores the message as a dead letter.
    pub mailbox_capacity: usize,
    /// The watchdog restarts the child when it has not shown progress for this long (`None`: no watchdog).
    pub watchdog: Option<Duration>,
    /// Run on a thread (actix Arbiter) of its own, so its handlers cannot stall other actors.
    pub dedicated_thread: bool,
}

impl Default for ChildOptions {
    fn default() -> Self {
        ChildOptions {
            restart: RestartType::Permanent,
            shutdown_timeout: Duration::from_secs(10),
            mailbox_capacity: 1024,
            watchdog: Some(Duration::from_secs(30)),
            dedicated_thread: true,
        }
    }
}

/// How a supervisor reaches one of its running children.
#[derive(Clone)]
pub(crate) enum ChildHandle {
    Worker(Arc<ChildShared>),
    Supervisor(Arc<ChildShared>, Addr<Supervisor>),
}

impl ChildHandle {
    pub(crate) fn shared(&self) -> &Arc<ChildShared> {
        match self {
            ChildHandle::Worker(s) | ChildHandle::Supervisor(s, _) => s,
        }
    }

    pub(crate) fn control(&self, control: Control) {
        match self {
            ChildHandle::Worker(shared) => shared.send_control(control),
            ChildHandle::Supervisor(_, addr) => addr.do_send(SupervisorCommand(control)),
        }
    }
}

/// A child a supervisor can start: a worker (cell) or a nested supervisor.
pub trait SpawnChild: Send {
    fn shared(&self) -> Arc<ChildShared>;
    fn options(&self) -> ChildOptions;
    fn tree(&self) -> TreeShape;
    /// Directory entries of this child and its descendants.
    fn directory_entries(&self) -> Vec<DirectoryEntry>;
    #[doc(hidden)]
    fn spawn(
        self: Box<Self>,
        parent: Recipient<ChildEnded>,
        index: usize,
    ) -> (ChildHandleToken, oneshot::Receiver<()>);
}

/// Opaque handle returned by [`SpawnChild::spawn`].
pub struct ChildHandleToken(pub(crate) ChildHandle);

/// A boxed child spec.
pub type ChildSpec = Box<dyn SpawnChild>;

/// A worker actor before it runs: mailbox and address exist, the factory comes later.
pub struct WorkerSpec<B: Behavior> {
    shared: Arc<ChildShared>,
    addr: Addr<Cell<B>>,
    rx: AddressReceiver<Cell<B>>,
    sink: DeadLetterSink,
    options: ChildOptions,
    replay: HashMap<&'static str, ReplayFn>,
}

impl<B: Behavior> WorkerSpec<B> {
    pub fn new(name: impl Into<String>, options: ChildOptions, sink: &DeadLetterSink) -> Self {
        let (tx, rx) = channel::<Cell<B>>(options.mailbox_capacity.max(1));
        let addr = Addr::new(tx);
        WorkerSpec {
            shared: ChildShared::new(
                name,
                if B::PLACEHOLDER {
                    ChildKind::Placeholder
                } else {
                    ChildKind::Worker
                },
            ),
            addr,
            rx,
            sink: sink.clone(),
            options,
            replay: HashMap::new(),
        }
        .replayable::<Ping>()
    }

    /// A reference usable before and after the actor starts.
    pub fn actor_ref(&self) -> ActorRef<B> {
        ActorRef::new(self.addr.clone(), self.shared.clone(), self.sink.clone())
    }

    /// Declares that dead letters of message type `M` can be replayed to this actor; handling it is the outcome.
    pub fn replayable<M>(self) -> Self
    where
        M: Message,
        B: Handles<M>,
    {
        self.replay_route::<M>(ReplayAck::Handled)
    }

    /// Like [`replayable`](Self::replayable), for a message that only starts work (a job): the handler's `Ok` just
    /// accepts it, and the actor reports the outcome later with [`Ctx::replay_outcome`](super::Ctx::replay_outcome).
    pub fn replayable_with_outcome<M>(self) -> Self
    where
        M: Message,
        B: Handles<M>,
    {
        self.replay_route::<M>(ReplayAck::Accepted)
    }

    fn replay_route<M>(mut self, ack: ReplayAck) -> Self
    where
        M: Message,
        B: Handles<M>,
    {
        let target = self.actor_ref();
        let replay: ReplayFn = Arc::new(
            move |payload,
                  meta: MessageMeta,
                  timeout: Duration|
                  -> BoxFuture<'static, Result<ReplayAck, DeliveryError>> {
                let target = target.clone();
                Box::pin(async move {
                    let msg: M =
                        serde_json::from_value(payload).map_err(|e| DeliveryError::BadPayload {
                            actor: target.name().to_string(),
                            msg: M::NAME.to_string(),
                            error: e.to_string(),
                        })?;
                    target.ask_with_meta(msg, meta, timeout).await.map(|_| ack)
                })
            },
        );
        self.replay.insert(M::NAME, replay);
        self
    }

    /// Supplies the factory that builds a fresh state for every incarnation.
    pub fn factory(self, factory: impl Fn() -> B + Send + Sync + 'static) -> ChildSpec {
        self.try_factory(move || Ok::<B, std::convert::Infallible>(factory()))
    }

    /// Supplies a factory that may fail to build the state (an unusable resource): the error is a failed start,
    /// which the supervisor restarts with backoff and escalates like a crash.
    pub fn try_factory<E: std::fmt::Display>(
        self,
        factory: impl Fn() -> Result<B, E> + Send + Sync + 'static,
    ) -> ChildSpec {
        Box::new(ReadyWorker {
            spec: self,
            factory: Arc::new(move || factory().map_err(|e| e.to_string())),
        })
    }
}

struct ReadyWorker<B: Behavior> {
    spec: WorkerSpec<B>,
    factory: Factory<B>,
}

impl<B: Behavior> SpawnChild for ReadyWorker<B> {
    fn shared(&self) -> Arc<ChildShared> {
        self.spec.shared.clone()
    }

    fn options(&self) -> ChildOptions {
        self.spec.options
    }

    fn tree(&self) -> TreeShape {
        TreeShape {
            shared: self.spec.shared.clone(),
            children: vec![],
        }
    }

    fn directory_entries(&self) -> Vec<DirectoryEntry> {
        let target = self.spec.actor_ref();
        let ping: PingFn = Arc::new(move || target.tell(Ping));
        vec![DirectoryEntry {
            shared: self.spec.shared.clone(),
            ping: Some(ping),
            replay: self.spec.replay.clone(),
        }]
    }

    fn spawn(
        self: Box<Self>,
        parent: Recipient<ChildEnded>,
        index: usize,
    ) -> (ChildHandleToken, oneshot::Receiver<()>) {
        let ReadyWorker { spec, factory } = *self;
        let (started_tx, started_rx) = oneshot::channel();
        let shared = spec.shared.clone();
        let options = spec.options;
        let heartbeat = options
            .watchdog
            .map(|d| (d / 4).max(Duration::from_millis(10)));
        let cell_options = CellOptions {
            mailbox_capacity: options.mailbox_capacity.max(1),
            heartbeat,
        };
        let WorkerSpec {
            shared: s,
            addr,
            rx,
            sink,
            ..
        } = spec;
        let run = move || {
            let cell = Cell::new(
                s,
                factory,
                sink,
                addr,
                Some((parent, index)),
                cell_options,
                Some(started_tx),
            );
            Context::with_receiver(rx).run(cell);
        };
        if options.dedicated_thread {
            let arbiter = Arbiter::new();
            if !arbiter.spawn_fn(run) {
                tracing::error!(child = %shared.name, "could not start a thread for the actor");
            }
        } else {
            run();
        }
        (ChildHandleToken(ChildHandle::Worker(shared)), started_rx)
    }
}

/// Builds a standalone (unsupervised) cell on the current arbiter: it restarts itself in place after a panic.
/// Used by benchmarks and tests of the cell alone.
pub fn start_unsupervised<B: Behavior>(
    name: &str,
    options: ChildOptions,
    sink: &DeadLetterSink,
    factory: impl Fn() -> B + Send + Sync + 'static,
) -> ActorRef<B> {
    let spec = WorkerSpec::<B>::new(name, options, sink);
    let actor_ref = spec.actor_ref();
    let WorkerSpec {
        shared,
        addr,
        rx,
        sink,
        ..
    } = spec;
    let heartbeat = options
        .watchdog
        .map(|d| (d / 4).max(Duration::from_millis(10)));
    let cell = Cell::new(
        shared,
        Arc::new(move || Ok(factory())),
        sink,
        addr,
        None,
        CellOptions {
            mailbox_capacity: options.mailbox_capacity.max(1),
            heartbeat,
        },
        None,
    );
    let _ = Context::with_receiver(rx).run(cell);
    actor_ref
}
