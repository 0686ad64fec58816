//! Waiting for an `ask`'s reply until a deadline, without paying for a timer when the reply comes at once.
//!
//! Most replies arrive while the asking task yields once: the actor is already scheduled when the ask is sent,
//! so it handles the message and replies before the asker runs again. Arming a tokio timer (an entry in the
//! runtime's timer wheel, inserted and removed under its lock) for every ask cost about 100-150 ns, a quarter of
//! a whole request-reply round trip. So [`ReplyWithin`] yields once before it arms the timer: a reply that is
//! there by the second poll never touches the wheel; any other waits under a real timer for the original,
//! absolute deadline. The deadline is never extended by the yield, only checked later.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::oneshot;
use tokio::time::Sleep;

/// How a wait for a reply ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReply {
    /// The sender was dropped without replying (the actor went away with the message).
    Dropped,
    /// The deadline passed first.
    DeadlinePassed,
}

/// A oneshot receiver with an absolute deadline; see the module doc.
pub struct ReplyWithin<T> {
    reply: oneshot::Receiver<T>,
    deadline: Instant,
    yielded: bool,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> ReplyWithin<T> {
    pub fn new(reply: oneshot::Receiver<T>, deadline: Instant) -> Self {
        ReplyWithin {
            reply,
            deadline,
            yielded: false,
            timer: None,
        }
    }

    /// Whether a timer was armed (the reply did not come by the second poll).
    pub fn timer_armed(&self) -> bool {
        self.timer.is_some()
    }
}

impl<T> Future for ReplyWithin<T> {
    type Output = Result<T, NoReply>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(result) = Pin::new(&mut self.reply).poll(cx) {
            return Poll::Ready(result.map_err(|_| NoReply::Dropped));
        }
        if !self.yielded {
            // First pending poll: yield once, so a reply that is on its way needs no timer.
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(NoReply::DeadlinePassed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_reply_sent_while_the_asker_yields_needs_no_timer() {
        runtime().block_on(async {
            let (tx, rx) = oneshot::channel();
            let mut wait = Box::pin(ReplyWithin::new(
                rx,
                Instant::now() + Duration::from_secs(5),
            ));
            // The "actor" runs while the asker yields: it is scheduled first, as a mailbox's task would be.
            tokio::task::spawn(async move { tx.send(7u32) });
            assert_eq!(wait.as_mut().await, Ok(7));
            assert!(!wait.timer_armed());
        });
    }

    #[test]
    fn a_late_reply_arrives_under_the_timer() {
        runtime().block_on(async {
            let (tx, rx) = oneshot::channel();
            let mut wait = Box::pin(ReplyWithin::new(
                rx,
                Instant::now() + Duration::from_secs(5),
            ));
            tokio::task::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(8u32)
            });
            assert_eq!(wait.as_mut().await, Ok(8));
            assert!(wait.timer_armed());
        });
    }

    #[test]
    fn no_reply_ends_at_the_deadline_not_later() {
        runtime().block_on(async {
            let (_tx, rx) = oneshot::channel::<u32>();
            let started = Instant::now();
            let result = ReplyWithin::new(rx, started + Duration::from_millis(50)).await;
            assert_eq!(result, Err(NoReply::DeadlinePassed));
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(50), "{waited:?}");
            assert!(waited < Duration::from_secs(2), "{waited:?}");
        });
    }

    #[test]
    fn a_deadline_already_passed_ends_at_the_second_poll() {
        runtime().block_on(async {
            let (_tx, rx) = oneshot::channel::<u32>();
            let past = Instant::now() - Duration::from_millis(1);
            assert_eq!(
                ReplyWithin::new(rx, past).await,
                Err(NoReply::DeadlinePassed)
            );
        });
    }

    #[test]
    fn a_dropped_sender_is_reported_at_once() {
        runtime().block_on(async {
            let (tx, rx) = oneshot::channel::<u32>();
            drop(tx);
            let result = ReplyWithin::new(rx, Instant::now() + Duration::from_secs(5)).await;
            assert_eq!(result, Err(NoReply::Dropped));
        });
    }
}
