//! Message identity and the correlation context that follows a chain of work across actors.
//!
//! Every envelope carries a [`MessageMeta`]: a process-unique message id, the correlation id of the chain it belongs
//! to, and the tracing span id of the message that caused it. While a handler runs, its meta is the *current* meta
//! of the thread ([`current`]); any message sent from inside inherits the correlation id, so one id follows a piece
//! of work from actor to actor. Futures spawned from a handler carry the meta with them ([`WithMeta`]).
//! Knows nothing of actors or domains.

use std::cell::Cell as StdCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};

static NEXT_MESSAGE_ID: AtomicU64 = AtomicU64::new(1);

/// Process-unique, increasing message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub u64);

impl MessageId {
    pub fn next() -> Self {
        MessageId(NEXT_MESSAGE_ID.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies one chain of work (a timer tick, an API request, a replay) across every actor it touches.
/// Printed as 16 hex digits so it greps well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CorrelationId(pub u64);

impl CorrelationId {
    /// A fresh id: random high bits so ids from different runs of the daemon do not collide in aggregated logs.
    pub fn new() -> Self {
        CorrelationId(fastrand::u64(1..))
    }

    /// Parses the 16-hex-digit form (as stored in dead letters); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        u64::from_str_radix(text.trim(), 16).ok().map(CorrelationId)
    }

    /// Its 16-hex-digit text on the stack: what spans record (cheaper than going through `Display`).
    pub fn hex(self) -> CorrelationHex {
        let mut text = [0u8; 16];
        let bytes = self.0.to_be_bytes();
        for i in 0..8 {
            let [high, low] = HEX_PAIRS[usize::from(bytes[i])];
            text[2 * i] = high;
            text[2 * i + 1] = low;
        }
        CorrelationHex(text)
    }
}

/// The two lowercase hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// The text form of a [`CorrelationId`]: 16 lowercase hex digits.
#[derive(Clone, Copy)]
pub struct CorrelationHex([u8; 16]);

impl CorrelationHex {
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into it.
        std::str::from_utf8(&self.0).unwrap_or("0000000000000000")
    }
}

impl Default for CorrelationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

impl Serialize for CorrelationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CorrelationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CorrelationId::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid correlation id {text:?} (expected 16 hex digits)"
            ))
        })
    }
}

/// What travels with every message besides its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageMeta {
    pub id: MessageId,
    pub correlation_id: CorrelationId,
    /// The tracing span of the handler that sent this message, if any (a follows-from link, not a parent).
    pub cause: Option<u64>,
    /// How many times this message was replayed from the dead-letter store.
    pub retries: u32,
    /// Set when this delivery is a replay of stored dead letter `id`: a failure then updates that record
    /// (retry count + 1) instead of storing a new one, so a failing replay never loops.
    pub replay_of: Option<i64>,
}

impl MessageMeta {
    /// Meta for a message sent now: inherits the current correlation id, or starts a new chain.
    pub fn for_send() -> Self {
        let parent = current();
        MessageMeta {
            id: MessageId::next(),
            correlation_id: parent.map(|p| p.correlation_id).unwrap_or_default(),
            cause: CURRENT_SPAN.with(|c| c.get()),
            retries: 0,
            replay_of: None,
        }
    }

    /// Meta for a message that starts a chain with a known correlation id (replay, API request).
    pub fn with_correlation(correlation_id: CorrelationId) -> Self {
        MessageMeta {
            id: MessageId::next(),
            correlation_id,
            cause: None,
            retries: 0,
            replay_of: None,
        }
    }
}

thread_local! {
    static CURRENT: StdCell<Option<MessageMeta>> = const { StdCell::new(None) };
    static CURRENT_SPAN: StdCell<Option<u64>> = const { StdCell::new(None) };
}

/// The meta of the message being handled on this thread, if any.
pub fn current() -> Option<MessageMeta> {
    CURRENT.with(|c| c.get())
}

/// Makes `meta` (and the handler's span id) current until the guard drops; restores the previous value.
pub fn enter(meta: MessageMeta, span_id: Option<u64>) -> MetaGuard {
    let previous = CURRENT.with(|c| c.replace(Some(meta)));
    let previous_span = CURRENT_SPAN.with(|c| c.replace(span_id));
    MetaGuard {
        previous,
        previous_span,
    }
}

/// Restores the previous current meta on drop.
pub struct MetaGuard {
    previous: Option<MessageMeta>,
    previous_span: Option<u64>,
}

impl Drop for MetaGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
        CURRENT_SPAN.with(|c| c.set(self.previous_span));
    }
}

/// A future that makes its meta current on every poll, so work spawned by a handler keeps its correlation id.
pub struct WithMeta<F> {
    inner: Pin<Box<F>>,
    meta: Option<MessageMeta>,
}

impl<F: Future> WithMeta<F> {
    /// Captures the current meta (if any) for `inner`.
    pub fn capture(inner: F) -> Self {
        WithMeta {
            inner: Box::pin(inner),
            meta: current(),
        }
    }
}

impl<F: Future> Future for WithMeta<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _guard = self.meta.map(|m| enter(m, None));
        self.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_increase() {
        let a = MessageId::next();
        let b = MessageId::next();
        assert!(b > a);
    }

    #[test]
    fn send_inside_a_handler_inherits_the_correlation_id() {
        let root = MessageMeta::with_correlation(CorrelationId(0xabc));
        {
            let _g = enter(root, Some(7));
            let child = MessageMeta::for_send();
            assert_eq!(child.correlation_id, CorrelationId(0xabc));
            assert_eq!(child.cause, Some(7));
            assert_ne!(child.id, root.id);
        }
        assert!(current().is_none(), "guard restores the empty context");
        let fresh = MessageMeta::for_send();
        assert_ne!(fresh.correlation_id, CorrelationId(0xabc));
    }

    #[test]
    fn correlation_id_round_trips_as_hex() {
        let id = CorrelationId(0x00ff_0000_1234_abcd);
        let text = id.to_string();
        assert_eq!(text, "00ff00001234abcd");
        assert_eq!(id.hex().as_str(), text);
        assert_eq!(CorrelationId(u64::MAX).to_string(), "ffffffffffffffff");
        assert_eq!(CorrelationId(1).to_string(), format!("{:016x}", 1));
        assert_eq!(CorrelationId::parse(&text), Some(id));
        assert_eq!(CorrelationId::parse("zz"), None);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<CorrelationId>(&json).unwrap(), id);
    }
}
