//! The dead-letter record: what a caller hands in (`NewDeadLetter`) and what the store keeps (`DeadLetter`).
//!
//! Owns the JSON shape of the control API (`id, at, actor, msg, payload, error, correlation_id, retries, status`, plus
//! `updated_at` and `next_retry_at`). Times are kept as unix milliseconds and written to JSON as RFC 3339 strings.
//! Also how a message becomes a record ([`dead_letter_for`]). No I/O and no policy here.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadLetterStatus {
    /// Stored and waiting for a replay (automatic by backoff, or by an operator).
    Pending,
    /// A replay succeeded; kept for inspection until purged.
    Recovered,
    /// Retries or age used up; never replayed automatically again.
    Abandoned,
}

impl DeadLetterStatus {
    /// Every status, in display order.
    pub const ALL: [DeadLetterStatus; 3] = [Self::Pending, Self::Recovered, Self::Abandoned];

    /// The lowercase name used in JSON, SQL and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Recovered => "recovered",
            Self::Abandoned => "abandoned",
        }
    }
}

impl fmt::Display for DeadLetterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Refusal to parse a status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dead-letter status {0:?} (expected pending, recovered or abandoned)")]
pub struct UnknownStatus(pub String);

impl FromStr for DeadLetterStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// A message that could not be handled, as handed to the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDeadLetter {
    /// The actor the message was for (contract actor names: `sync`, `scheduler`, ...).
    pub actor: String,
    /// The message type name (`StartJob`, ...), used to route a replay.
    pub msg: String,
    /// The message itself, so it can be replayed.
    pub payload: serde_json::Value,
    /// Why it failed (panic text, handler error, "mailbox full", ...).
    pub error: String,
    /// The correlation id of the chain the message belonged to.
    pub correlation_id: String,
    /// Retries already spent before it became a dead letter (0 for a first failure).
    pub retries: u32,
}

/// The dead-letter record of message `msg` sent to `actor` (payload as JSON, the meta's correlation id and retries).
pub fn dead_letter_for<M: crate::runtime::Message>(
    actor: &str,
    msg: &M,
    meta: crate::runtime::MessageMeta,
    error: &str,
) -> NewDeadLetter {
    let payload = serde_json::to_value(msg).unwrap_or_else(
        |e| serde_json::json!({ "unserializable": format!("payload could not be encoded: {e}") }),
    );
    NewDeadLetter {
        actor: actor.to_string(),
        msg: M::NAME.to_string(),
        payload,
        error: error.to_string(),
        correlation_id: meta.correlation_id.to_string(),
        retries: meta.retries,
    }
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Store-assigned id, increasing with insertion order.
    pub id: i64,
    /// When it was stored, unix milliseconds (JSON: RFC 3339 string `at`).
    #[serde(rename = "at", with = "rfc3339_ms")]
    pub at_ms: i64,
    /// The actor the message was for.
    pub actor: String,
    /// The message type name.
    pub msg: String,
    /// The message itself.
    pub payload: serde_json::Value,
    /// The latest failure text.
    pub error: String,
    /// The correlation id of the chain the message belonged to.
    pub correlation_id: String,
    /// Replays attempted and failed (plus retries spent before it was stored).
    pub retries: u32,
    /// Where it stands.
    pub status: DeadLetterStatus,
    /// Last status or retry change, unix milliseconds (JSON: RFC 3339 string `updated_at`).
    #[serde(rename = "updated_at", with = "rfc3339_ms")]
    pub updated_at_ms: i64,
    /// When an automatic replay is due, unix milliseconds; `None` when no automatic replay will happen.
    #[serde(rename = "next_retry_at", with = "rfc3339_ms_opt", default)]
    pub next_retry_at_ms: Option<i64>,
}

impl DeadLetter {
    /// When it was stored.
    pub fn at(&self) -> SystemTime {
        from_unix_ms(self.at_ms)
    }

    /// How long ago it was stored (zero when `now` is earlier).
    pub fn age(&self, now: SystemTime) -> Duration {
        Duration::from_millis(unix_ms(now).saturating_sub(self.at_ms).max(0) as u64)
    }
}

/// Counts per status, as shown by `/status`, metrics and the CLI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterCounts {
    /// Rows waiting for a replay.
    pub pending: u64,
    /// Rows whose replay succeeded.
    pub recovered: u64,
    /// Rows given up on.
    pub abandoned: u64,
}

impl DeadLetterCounts {
    /// All rows.
    pub fn total(&self) -> u64 {
        self.pending + self.recovered + self.abandoned
    }
}

/// One page of a listing: the contract's `GET /dead-letters` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterPage {
    /// The rows, newest first.
    pub dead_letters: Vec<DeadLetter>,
    /// How many rows match the filter in all.
    pub total: u64,
}

/// `now` as unix milliseconds (0 before the epoch, saturating far in the future).
pub fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix milliseconds back to a `SystemTime` (negative values clamp to the epoch).
pub fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Unix ms as an RFC 3339 string with millisecond precision.
pub fn format_rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(from_unix_ms(ms)).to_string()
}

mod rfc3339_ms {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_rfc3339_ms(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text)
            .map(super::unix_ms)
            .map_err(|e| {
                de::Error::custom(format!(
                    "invalid timestamp {text:?}: {e} (expected RFC 3339)"
                ))
            })
    }
}

mod rfc3339_ms_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => super::rfc3339_ms::serialize(ms, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::rfc3339_ms")] i64);
        Ok(Option::<Wrap>::deserialize(deserializer)?.map(|Wrap(ms)| ms))
    }
}

/// A letter for tests: `n` in the payload.
#[cfg(test)]
pub(crate) fn sample_letter(n: u32) -> NewDeadLetter {
    NewDeadLetter {
        actor: "sync".into(),
        msg: "StartSync".into(),
        payload: serde_json::json!({ "n": n }),
        error: "boom".into(),
        correlation_id: "00000000000000aa".into(),
        retries: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DeadLetter {
        DeadLetter {
            id: 7,
            at_ms: 1_700_000_000_123,
            actor: "sync".into(),
            msg: "StartSync".into(),
            payload: serde_json::json!({"peer": "gh200-1"}),
            error: "handler panicked: boom".into(),
            correlation_id: "c-1".into(),
            retries: 2,
            status: DeadLetterStatus::Pending,
            updated_at_ms: 1_700_000_060_000,
            next_retry_at_ms: Some(1_700_000_300_000),
        }
    }

    #[test]
    fn json_uses_contract_field_names_and_rfc3339_times() {
        let json = serde_json::to_value(sample()).unwrap();
        for key in [
            "id",
            "at",
            "actor",
            "msg",
            "payload",
            "error",
            "correlation_id",
            "retries",
            "status",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["status"], "pending");
        assert_eq!(json["next_retry_at"], "2023-11-14T22:18:20.000Z");
    }

    #[test]
    fn json_round_trips_including_missing_next_retry() {
        let record = sample();
        let back: DeadLetter =
            serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        assert_eq!(back, record);
        let settled = DeadLetter {
            next_retry_at_ms: None,
            status: DeadLetterStatus::Recovered,
            ..record
        };
        let json = serde_json::to_value(&settled).unwrap();
        assert!(json["next_retry_at"].is_null());
        assert_eq!(serde_json::from_value::<DeadLetter>(json).unwrap(), settled);
    }

    #[test]
    fn status_names_parse_and_print() {
        for status in DeadLetterStatus::ALL {
            assert_eq!(status.as_str().parse::<DeadLetterStatus>(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(
            "PENDING".parse::<DeadLetterStatus>(),
            Ok(DeadLetterStatus::Pending)
        );
        assert!("done"
            .parse::<DeadLetterStatus>()
            .unwrap_err()
            .to_string()
            .contains("expected pending"));
    }

    #[test]
    fn time_helpers_clamp_and_measure_age() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(from_unix_ms(-5), UNIX_EPOCH);
        let record = sample();
        let now = from_unix_ms(record.at_ms + 90_000);
        assert_eq!(record.age(now), Duration::from_secs(90));
        assert_eq!(record.age(UNIX_EPOCH), Duration::ZERO);
        assert_eq!(record.at(), from_unix_ms(record.at_ms));
    }
}
