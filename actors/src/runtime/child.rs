//! What a supervisor and the control API know about one child without sending it a message.
//!
//! [`ChildShared`] is shared between a child's cell, its supervisor and the status API: lifecycle state, restart
//! count, last failure, handled/failed counters, approximate mailbox depth and the heartbeat the watchdog reads.
//! Reading it never waits on the child, so `/status` answers even while an actor is hung.
//! [`ControlQueue`] is the out-of-band channel a supervisor uses to reset, start or stop a child: it bypasses the
//! mailbox, so it reaches a child whose mailbox is paused or full.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{oneshot, Notify};

/// Lifecycle state of a child (and of a supervisor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Starting,
    Running,
    Restarting,
    BackingOff,
    Stopping,
    Stopped,
    Failed,
}

impl ChildState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => ChildState::Starting,
            1 => ChildState::Running,
            2 => ChildState::Restarting,
            3 => ChildState::BackingOff,
            4 => ChildState::Stopping,
            5 => ChildState::Stopped,
            _ => ChildState::Failed,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            ChildState::Starting => 0,
            ChildState::Running => 1,
            ChildState::Restarting => 2,
            ChildState::BackingOff => 3,
            ChildState::Stopping => 4,
            ChildState::Stopped => 5,
            ChildState::Failed => 6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChildState::Starting => "starting",
            ChildState::Running => "running",
            ChildState::Restarting => "restarting",
            ChildState::BackingOff => "backing_off",
            ChildState::Stopping => "stopping",
            ChildState::Stopped => "stopped",
            ChildState::Failed => "failed",
        }
    }
}

/// Whether a tree node is a worker actor, a placeholder worker (stands in for an actor not built yet) or a
/// supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    Worker,
    /// A worker that does no domain work yet (its behavior says so with `Behavior::PLACEHOLDER`).
    Placeholder,
    Supervisor,
}

impl ChildKind {
    /// Workers and placeholders: hosted by a cell (heartbeat, mailbox, drills).
    pub fn is_worker(self) -> bool {
        matches!(self, ChildKind::Worker | ChildKind::Placeholder)
    }
}

/// The last failure of a child, as shown by `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureRecord {
    pub at: String,
    pub reason: String,
}

/// Monotonic milliseconds since the process's first call: the heartbeat clock.
pub fn monotonic_ms() -> u64 {
    use std::sync::OnceLock;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Adds one to a counter that only one thread writes (readers on other threads see it a moment later): a plain
/// load and store, without the locked read-modify-write that `fetch_add` costs on every message.
fn bump_single_writer(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Status shared by a child, its supervisor and the control API.
#[derive(Debug)]
pub struct ChildShared {
    pub name: String,
    pub kind: ChildKind,
    state: AtomicU8,
    restarts: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    enqueued: AtomicU64,
    dequeued: AtomicU64,
    last_beat_ms: AtomicU64,
    /// How many messages had been taken from the mailbox when the watchdog last looked (see `since_last_beat`).
    taken_at_last_look: AtomicU64,
    last_failure: Mutex<Option<FailureRecord>>,
    /// Set by the supervisor when a control command waits in the queue; checked before every message.
    pub(crate) control_pending: AtomicBool,
    pub(crate) control: ControlQueue,
    /// A fault drill armed for the next message (see `drill`).
    pub(crate) drill: AtomicU8,
    /// The hosting actix actor has ended: no control command will be read any more.
    pub(crate) terminated: AtomicBool,
}

impl ChildShared {
    pub fn new(name: impl Into<String>, kind: ChildKind) -> Arc<Self> {
        Arc::new(ChildShared {
            name: name.into(),
            kind,
            state: AtomicU8::new(ChildState::Starting.as_u8()),
            restarts: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
            dequeued: AtomicU64::new(0),
            last_beat_ms: AtomicU64::new(monotonic_ms()),
            taken_at_last_look: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            control_pending: AtomicBool::new(false),
            control: ControlQueue::default(),
            drill: AtomicU8::new(0),
            terminated: AtomicBool::new(false),
        })
    }

    pub fn state(&self) -> ChildState {
        ChildState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, state: ChildState) {
        self.state.store(state.as_u8(), Ordering::Release);
    }

    /// Whether the hosting actor has ended for good.
    pub fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub(crate) fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Only the hosting cell's thread calls this (single writer).
    pub(crate) fn count_handled(&self) {
        bump_single_writer(&self.handled);
    }

    /// Only the hosting cell's thread calls this (single writer).
    pub(crate) fn count_failed(&self) {
        bump_single_writer(&self.failed);
    }

    pub(crate) fn count_enqueued(&self) {
        self.enqueued.fetch_add(1, Ordering::Relaxed);
    }

    /// Only the hosting cell's thread calls this (single writer).
    pub(crate) fn count_dequeued(&self) {
        bump_single_writer(&self.dequeued);
    }

    /// Messages sent through the runtime and not yet taken from the mailbox (approximate).
    pub fn mailbox_depth(&self) -> u64 {
        let enq = self.enqueued.load(Ordering::Relaxed);
        let deq = self.dequeued.load(Ordering::Relaxed);
        enq.saturating_sub(deq)
    }

    /// Records progress for the watchdog.
    pub fn beat(&self) {
        self.last_beat_ms.store(monotonic_ms(), Ordering::Relaxed);
    }

    /// Time since the child last showed progress, for the watchdog. Progress is a heartbeat (the cell's timer
    /// while its loop is idle or between messages, `Ctx::progress`) or a message taken from the mailbox since the
    /// previous look: a cell kept busy by a full mailbox may not get to run its timer, but it keeps taking
    /// messages, and counting them here costs the hot path no clock read.
    pub fn since_last_beat(&self) -> Duration {
        let taken = self.dequeued.load(Ordering::Relaxed);
        if self.taken_at_last_look.swap(taken, Ordering::Relaxed) != taken {
            self.beat();
        }
        Duration::from_millis(
            monotonic_ms().saturating_sub(self.last_beat_ms.load(Ordering::Relaxed)),
        )
    }

    pub fn last_failure(&self) -> Option<FailureRecord> {
        self.last_failure.lock().map(|g| g.clone()).unwrap_or(None)
    }

    pub(crate) fn record_failure(&self, reason: &str) {
        if let Ok(mut g) = self.last_failure.lock() {
            *g = Some(FailureRecord {
                at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                reason: reason.to_string(),
            });
        }
    }

    /// Queues a control command for the child and wakes it.
    pub(crate) fn send_control(&self, control: Control) {
        self.control.push(control);
        self.control_pending.store(true, Ordering::Release);
        self.control.notify.notify_one();
    }
}

/// A supervisor's command to a child, delivered out of band.
#[derive(Debug)]
pub enum Control {
    /// Drop the current state (stopping hook, cancel spawned work) and wait for `Start`.
    Reset { reason: String },
    /// Build fresh state from the factory and resume handling messages.
    Start,
    /// Shut down gracefully; `done` fires when the child has stopped.
    Stop { done: Option<oneshot::Sender<()>> },
    /// Stop at once, abandoning any graceful shutdown in progress.
    Abort,
}

/// The out-of-band control channel of one child: a small locked queue plus a wake-up.
#[derive(Debug, Default)]
pub struct ControlQueue {
    queue: Mutex<VecDeque<Control>>,
    pub(crate) notify: Notify,
}

impl ControlQueue {
    fn push(&self, control: Control) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back(control);
        }
    }

    /// Whether an `Abort` waits in the queue (a graceful stop ends only for a real abort, not a stray wake-up).
    pub(crate) fn has_abort(&self) -> bool {
        self.queue
            .lock()
            .map(|q| q.iter().any(|c| matches!(c, Control::Abort)))
            .unwrap_or(false)
    }

    pub(crate) fn pop(&self) -> Option<Control> {
        self.queue.lock().ok().and_then(|mut q| q.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_the_atomic() {
        let s = ChildShared::new("x", ChildKind::Worker);
        for st in [
            ChildState::Starting,
            ChildState::Running,
            ChildState::Restarting,
            ChildState::BackingOff,
            ChildState::Stopping,
            ChildState::Stopped,
            ChildState::Failed,
        ] {
            s.set_state(st);
            assert_eq!(s.state(), st);
        }
    }

    #[test]
    fn a_message_taken_since_the_last_look_counts_as_progress() {
        let s = ChildShared::new("x", ChildKind::Worker);
        s.last_beat_ms.store(0, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        let silent = s.since_last_beat();
        assert!(
            silent >= Duration::from_millis(5),
            "nothing happened: {silent:?}"
        );
        s.count_dequeued();
        assert!(s.since_last_beat() < silent, "a message taken is progress");
        s.last_beat_ms.store(0, Ordering::Relaxed);
        assert!(
            s.since_last_beat() >= Duration::from_millis(5),
            "the same count again is no new progress"
        );
    }

    #[test]
    fn mailbox_depth_counts_sent_minus_taken() {
        let s = ChildShared::new("x", ChildKind::Worker);
        s.count_enqueued();
        s.count_enqueued();
        s.count_dequeued();
        assert_eq!(s.mailbox_depth(), 1);
    }

    #[test]
    fn control_queue_is_fifo() {
        let s = ChildShared::new("x", ChildKind::Worker);
        s.send_control(Control::Reset { reason: "r".into() });
        s.send_control(Control::Start);
        assert!(matches!(s.control.pop(), Some(Control::Reset { .. })));
        assert!(matches!(s.control.pop(), Some(Control::Start)));
        assert!(s.control.pop().is_none());
    }
}
