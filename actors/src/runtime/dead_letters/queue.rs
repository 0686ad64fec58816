//! `DeadLetterQueue`: the bounded hand-over between the whole tree and the dead-letter actor.
//!
//! Letters do not travel through the actor's mailbox: a mailbox's queued messages die with the actor at shutdown
//! or in a hang, and a full one would hand the letter back to a log line. Senders push here (any thread); the
//! actor takes batches when woken, on its maintenance tick and, at shutdown, drains everything in its `stopping`
//! hook after closing the queue. A push into a full or closed queue is refused and hands the letter back, and the
//! sink then writes it to the spill file: never only to a log.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::record::NewDeadLetter;

/// Wakes the consumer; `false` when the wake-up could not be delivered (the next offer tries again).
type WakeFn = Box<dyn Fn() -> bool + Send + Sync>;

struct QueueState {
    letters: VecDeque<NewDeadLetter>,
    open: bool,
}

struct Inner {
    state: Mutex<QueueState>,
    capacity: usize,
    wake: OnceLock<WakeFn>,
    wake_pending: AtomicBool,
}

/// Bounded queue of letters waiting for the dead-letter actor. Cheap to clone.
#[derive(Clone)]
pub struct DeadLetterQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DeadLetterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterQueue")
            .field("capacity", &self.inner.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl DeadLetterQueue {
    /// An open queue holding at most `capacity` letters.
    pub fn new(capacity: usize) -> Self {
        DeadLetterQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(QueueState {
                    letters: VecDeque::new(),
                    open: true,
                }),
                capacity: capacity.max(1),
                wake: OnceLock::new(),
                wake_pending: AtomicBool::new(false),
            }),
        }
    }

    /// How the queue wakes its consumer after a push (once per batch; later calls are ignored). The function
    /// answers `false` when it could not deliver the wake-up, and the next offer tries again.
    pub fn on_wake(&self, wake: impl Fn() -> bool + Send + Sync + 'static) {
        let _ = self.inner.wake.set(Box::new(wake));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a letter; hands it back when the queue is full or closed.
    pub fn offer(&self, letter: NewDeadLetter) -> Result<(), Box<NewDeadLetter>> {
        {
            let mut state = self.lock();
            if !state.open || state.letters.len() >= self.inner.capacity {
                return Err(Box::new(letter));
            }
            state.letters.push_back(letter);
        }
        if !self.inner.wake_pending.swap(true, Ordering::AcqRel) {
            let woken = self.inner.wake.get().is_some_and(|wake| wake());
            if !woken {
                self.inner.wake_pending.store(false, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Takes up to `max` letters, oldest first, and re-arms the wake-up.
    pub fn take(&self, max: usize) -> Vec<NewDeadLetter> {
        self.inner.wake_pending.store(false, Ordering::Release);
        let mut state = self.lock();
        let n = max.min(state.letters.len());
        state.letters.drain(..n).collect()
    }

    /// Closes the queue (later offers are refused) and returns everything still in it.
    pub fn close(&self) -> Vec<NewDeadLetter> {
        let mut state = self.lock();
        state.open = false;
        state.letters.drain(..).collect()
    }

    /// Letters waiting.
    pub fn len(&self) -> usize {
        self.lock().letters.len()
    }

    /// Whether no letter waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    use crate::runtime::dead_letters::record::sample_letter as letter;

    #[test]
    fn full_and_closed_queues_hand_the_letter_back() {
        let queue = DeadLetterQueue::new(2);
        queue.offer(letter(1)).unwrap();
        queue.offer(letter(2)).unwrap();
        assert_eq!(*queue.offer(letter(3)).unwrap_err(), letter(3));
        assert_eq!(queue.take(1), vec![letter(1)]);
        queue.offer(letter(4)).unwrap();
        assert_eq!(queue.close(), vec![letter(2), letter(4)]);
        assert_eq!(*queue.offer(letter(5)).unwrap_err(), letter(5));
        assert!(queue.is_empty());
    }

    #[test]
    fn wakes_once_per_batch() {
        let queue = DeadLetterQueue::new(10);
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = wakes.clone();
        queue.on_wake(move || counter.fetch_add(1, Ordering::SeqCst) > 0);
        queue.offer(letter(0)).unwrap();
        assert_eq!(
            wakes.load(Ordering::SeqCst),
            1,
            "first wake-up not delivered"
        );
        for n in 1..3 {
            queue.offer(letter(n)).unwrap();
        }
        assert_eq!(
            wakes.load(Ordering::SeqCst),
            2,
            "tried again, then delivered once"
        );
        assert_eq!(queue.take(10).len(), 3);
        queue.offer(letter(9)).unwrap();
        assert_eq!(wakes.load(Ordering::SeqCst), 3);
    }
}
