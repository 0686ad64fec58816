//! The actor runtime: supervision, dead letters, traced envelopes, circuit breaker, time budget.
//! Nothing here knows about selfplay, sync or HTTP routes.
//!
//! Layout:
//! - `ids`: message ids and the correlation context that follows a chain of work across actors.
//! - `message`: the `Message` trait, the envelope, handler and delivery errors.
//! - `behavior`: what an actor implements (`Behavior`, `Handles<M>`) and the `Ctx` its handlers get.
//! - `cell`: the actix actor hosting a behavior: panic capture, in-place restart, heartbeat.
//! - `actor_ref`: `tell`/`ask` with deadlines; nothing undeliverable is dropped silently.
//! - `reply`: an ask's wait for its reply, with a timer armed only when the reply does not come at once.
//! - `child`: status shared between a child, its supervisor and the API; the out-of-band control queue.
//! - `spec`: child specifications (workers, options) and how they are spawned.
//! - `supervisor`: ordered start, restart by strategy, intensity, backoff, watchdog, ordered shutdown.
//! - `restart_policy`: the pure decisions behind the supervisor (tested with an injected clock).
//! - `tree`, `directory`: the tree's status snapshot, and actors by name (replay, ping, fault drills).
//! - `dead_letters`, `dead_letter_sink`: the durable store of undeliverable messages and the route to it.
//! - `metrics`: Prometheus counters of the runtime.
//! - `drill`: fault drills (panic, error, hang) for rehearsing failures.
//! - `circuit_breaker`: the pure Closed/Open/HalfOpen state machine shared by sync and the data-server monitor.
//! - `backoff`: the one capped exponential backoff (`Exponential`, injectable `Jitter`) and `RestartWindow`.
//! - `health`: the board of named checks that components publish and `/health` reads.

pub mod actor_ref;
pub mod backoff;
pub mod behavior;
pub mod cell;
pub mod child;
pub mod circuit_breaker;
pub mod dead_letter_sink;
pub mod dead_letters;
pub mod directory;
pub mod drill;
pub mod health;
pub mod ids;
pub mod message;
pub mod metrics;
pub mod reply;
pub mod restart_policy;
pub mod spec;
pub mod supervisor;
pub mod tree;

pub use actor_ref::ActorRef;
pub use behavior::{Behavior, Ctx, Handles, TaskId};
pub use child::{ChildKind, ChildState};
pub use dead_letter_sink::DeadLetterSink;
pub use directory::Directory;
pub use drill::Drill;
pub use health::{HealthBoard, HealthCheck, HealthReport, HealthStatus};
pub use ids::{CorrelationId, MessageId, MessageMeta};
pub use message::{DeliveryError, HandlerError, Message, Ping};
pub use restart_policy::{BackoffConfig, RestartType, Strategy};
pub use spec::{start_unsupervised, ChildOptions, ChildSpec, WorkerSpec};
pub use supervisor::{RootExit, RootHandle, SupervisorOptions, SupervisorSpec};
pub use tree::{TreeShape, TreeStatus};
