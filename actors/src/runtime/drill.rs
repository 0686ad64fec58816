//! Fault drills: arm an actor to panic, fail, hang or block its thread on its next message, so operators and tests can rehearse
//! failures from outside (`POST /debug/fail/{actor}?mode=...`, only with `api.debug_endpoints: true`).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the armed actor does with its next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drill {
    /// The handler panics: the message becomes a dead letter and the actor restarts with fresh state.
    Panic,
    /// The handler returns an error: the message becomes a dead letter; the actor goes on.
    Error,
    /// The actor stops making progress until its watchdog restarts it; the message becomes a dead letter then.
    Hang,
    /// The handler blocks its thread (a blocking call that does not return, here for [`BLOCK_DRILL_FOR`]): the
    /// watchdog abandons the thread and a fresh instance takes the mailbox on a fresh thread; the message becomes a
    /// dead letter.
    Block,
}

/// How long a `block` drill holds its thread (long enough to stand for "never").
pub const BLOCK_DRILL_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

impl Drill {
    pub(crate) fn as_u8(self) -> u8 {
        match self {
            Drill::Panic => 1,
            Drill::Error => 2,
            Drill::Hang => 3,
            Drill::Block => 4,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Drill::Panic),
            2 => Some(Drill::Error),
            3 => Some(Drill::Hang),
            4 => Some(Drill::Block),
            _ => None,
        }
    }
}

impl FromStr for Drill {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "panic" => Ok(Drill::Panic),
            "error" => Ok(Drill::Error),
            "hang" => Ok(Drill::Hang),
            "block" => Ok(Drill::Block),
            other => Err(format!(
                "unknown drill mode {other:?} (expected panic, error, hang or block)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_round_trip() {
        for d in [Drill::Panic, Drill::Error, Drill::Hang, Drill::Block] {
            assert_eq!(Drill::from_u8(d.as_u8()), Some(d));
        }
        assert_eq!("PANIC".parse::<Drill>(), Ok(Drill::Panic));
        assert!("explode"
            .parse::<Drill>()
            .unwrap_err()
            .contains("expected panic, error, hang or block"));
        assert_eq!(Drill::from_u8(0), None);
    }
}
