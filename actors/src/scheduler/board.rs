//! Board types and config keys: the one parser every part of the coordinator uses.
//!
//! The original service had four board parsers that disagreed (`hex` meant hex8 in one place and
//! hexagonal in another) and two call sites that silently fell back to square8. Here there is
//! exactly one `FromStr` for [`BoardType`] and one for [`ConfigKey`]; both return an error naming
//! the fix, never a default. Matching is case-insensitive and ignores `-`, `_` and spaces.
//!
//! This module knows nothing about priorities or nodes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The names (and aliases) the parser accepts, quoted in every "unknown board" error.
pub const ACCEPTED_BOARD_NAMES: &str = "hex8, square8, square19, hexagonal \
     (aliases: hexsmall, smallhex, sq8, 8x8, sq19, 19x19, hexlarge, largehex, bighex, fullhex, fullhexagonal)";

/// A game board. `square19` and `hexagonal` are *large*: slower games, bigger models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BoardType {
    /// Small hexagonal board, 61 cells.
    Hex8,
    /// 8x8 square board, 64 cells.
    Square8,
    /// 19x19 square board, 361 cells (large).
    Square19,
    /// Full hexagonal board, 469 cells (large).
    Hexagonal,
}

impl BoardType {
    /// Every board, in canonical order.
    pub const ALL: [BoardType; 4] = [
        BoardType::Hex8,
        BoardType::Square8,
        BoardType::Square19,
        BoardType::Hexagonal,
    ];

    /// The canonical name (`hex8`, `square8`, `square19`, `hexagonal`).
    pub fn name(self) -> &'static str {
        match self {
            BoardType::Hex8 => "hex8",
            BoardType::Square8 => "square8",
            BoardType::Square19 => "square19",
            BoardType::Hexagonal => "hexagonal",
        }
    }

    /// Number of cells on the board.
    pub fn cells(self) -> u32 {
        match self {
            BoardType::Hex8 => 61,
            BoardType::Square8 => 64,
            BoardType::Square19 => 361,
            BoardType::Hexagonal => 469,
        }
    }

    /// True for the large boards (square19, hexagonal).
    pub fn is_large(self) -> bool {
        matches!(self, BoardType::Square19 | BoardType::Hexagonal)
    }
}

impl fmt::Display for BoardType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a board name or config key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardParseError {
    /// Nothing to parse.
    #[error("board name is empty (expected one of {ACCEPTED_BOARD_NAMES})")]
    Empty,
    /// Bare `hex`, which the original used for two different boards.
    #[error(
        "board \"{input}\" is ambiguous: it meant hex8 (61 cells) in one place and hexagonal \
         (469 cells) in another; write hex8 or hexagonal"
    )]
    AmbiguousHex {
        /// The text as given.
        input: String,
    },
    /// A name that is neither a board nor an alias.
    #[error("unknown board \"{input}\" (expected one of {ACCEPTED_BOARD_NAMES})")]
    UnknownBoard {
        /// The board part as given.
        input: String,
    },
    /// A config key without a `_<N>p` suffix.
    #[error("config key \"{input}\" has no player count; write <board>_<N>p, e.g. hex8_2p")]
    MissingPlayers {
        /// The key as given.
        input: String,
    },
    /// A player count that is not a number.
    #[error(
        "config key \"{input}\": player count \"{players}\" is not a number; write 2p, 3p or 4p"
    )]
    BadPlayers {
        /// The key as given.
        input: String,
        /// The player part as given.
        players: String,
    },
    /// A player count outside 2-4.
    #[error("config key \"{input}\": player count {players} is outside 2-4; write 2p, 3p or 4p")]
    PlayersOutOfRange {
        /// The key as given.
        input: String,
        /// The parsed count.
        players: u64,
    },
}

fn is_separator(c: char) -> bool {
    matches!(c, '-' | '_' | ' ')
}

fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| !is_separator(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

impl FromStr for BoardType {
    type Err = BoardParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let key = normalize(text.trim());
        match key.as_str() {
            "" => Err(BoardParseError::Empty),
            "hex8" | "hexsmall" | "smallhex" => Ok(BoardType::Hex8),
            "square8" | "sq8" | "8x8" => Ok(BoardType::Square8),
            "square19" | "sq19" | "19x19" => Ok(BoardType::Square19),
            "hexagonal" | "hexlarge" | "largehex" | "bighex" | "fullhex" | "fullhexagonal" => {
                Ok(BoardType::Hexagonal)
            }
            "hex" => Err(BoardParseError::AmbiguousHex {
                input: text.trim().to_string(),
            }),
            _ => Err(BoardParseError::UnknownBoard {
                input: text.trim().to_string(),
            }),
        }
    }
}

impl Serialize for BoardType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for BoardType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One self-play configuration: a board and a player count (2-4), written `hex8_2p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigKey {
    /// The board.
    pub board: BoardType,
    /// Players per game, 2-4.
    pub players: u8,
}

impl ConfigKey {
    /// A key for `board` with `players` players; `None` when players is outside 2-4.
    pub fn new(board: BoardType, players: u8) -> Option<Self> {
        (2..=4)
            .contains(&players)
            .then_some(ConfigKey { board, players })
    }

    /// The 12 configs, board-major (`hex8_2p`, `hex8_3p`, `hex8_4p`, `square8_2p`, ...).
    pub fn all() -> Vec<ConfigKey> {
        BoardType::ALL
            .iter()
            .flat_map(|&board| (2..=4).map(move |players| ConfigKey { board, players }))
            .collect()
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}p", self.board.name(), self.players)
    }
}

impl FromStr for ConfigKey {
    type Err = BoardParseError;

    /// Accepts `<board><sep><N>p` or `<board><sep><N>` with any of `-`, `_`, space as separator,
    /// or `<board><N>p` with no separator (one digit). Case-insensitive.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let lower = trimmed.to_lowercase();
        let missing = || BoardParseError::MissingPlayers {
            input: trimmed.to_string(),
        };
        let (board_part, player_part) = match lower.rfind(is_separator) {
            Some(at) => (&lower[..at], lower[at + 1..].trim_end_matches('p')),
            None => {
                let without_p = lower.strip_suffix('p').ok_or_else(missing)?;
                let split = without_p
                    .char_indices()
                    .last()
                    .filter(|(_, c)| c.is_ascii_digit())
                    .map(|(at, _)| at)
                    .ok_or_else(missing)?;
                (&without_p[..split], &without_p[split..])
            }
        };
        if player_part.is_empty() {
            return Err(missing());
        }
        let board: BoardType = board_part.parse()?;
        let players: u64 = player_part
            .parse()
            .map_err(|_| BoardParseError::BadPlayers {
                input: trimmed.to_string(),
                players: player_part.to_string(),
            })?;
        u8::try_from(players)
            .ok()
            .and_then(|p| ConfigKey::new(board, p))
            .ok_or(BoardParseError::PlayersOutOfRange {
                input: trimmed.to_string(),
                players,
            })
    }
}

impl Serialize for ConfigKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_size_match_the_domain_table() {
        let table = [
            (BoardType::Hex8, 61, false),
            (BoardType::Square8, 64, false),
            (BoardType::Square19, 361, true),
            (BoardType::Hexagonal, 469, true),
        ];
        for (board, cells, large) in table {
            assert_eq!(board.cells(), cells, "{board}");
            assert_eq!(board.is_large(), large, "{board}");
        }
    }

    #[test]
    fn every_alias_parses_to_its_board() {
        let cases = [
            ("hex8", BoardType::Hex8),
            ("HEX8", BoardType::Hex8),
            ("hex-8", BoardType::Hex8),
            ("hexsmall", BoardType::Hex8),
            ("small_hex", BoardType::Hex8),
            ("square8", BoardType::Square8),
            ("Square 8", BoardType::Square8),
            ("sq8", BoardType::Square8),
            ("8x8", BoardType::Square8),
            ("square19", BoardType::Square19),
            ("sq19", BoardType::Square19),
            ("19x19", BoardType::Square19),
            ("hexagonal", BoardType::Hexagonal),
            ("hexlarge", BoardType::Hexagonal),
            ("large-hex", BoardType::Hexagonal),
            ("bighex", BoardType::Hexagonal),
            ("fullhex", BoardType::Hexagonal),
            ("Full_Hexagonal", BoardType::Hexagonal),
        ];
        for (text, board) in cases {
            assert_eq!(text.parse::<BoardType>(), Ok(board), "{text}");
        }
    }

    #[test]
    fn bare_hex_is_ambiguous_and_names_both_meanings() {
        for text in ["hex", "HEX", "h-e-x"] {
            let err = text.parse::<BoardType>().unwrap_err();
            assert!(
                matches!(err, BoardParseError::AmbiguousHex { .. }),
                "{text}"
            );
            let msg = err.to_string();
            assert!(msg.contains("hex8") && msg.contains("hexagonal"), "{msg}");
        }
    }

    #[test]
    fn unknown_board_lists_accepted_names() {
        let err = "hexx".parse::<BoardType>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("unknown board \"hexx\" (expected one of hex8, square8"),
            "{msg}"
        );
        assert_eq!("".parse::<BoardType>(), Err(BoardParseError::Empty));
    }

    #[test]
    fn config_keys_parse_in_all_spellings() {
        let hex8_2p = ConfigKey::new(BoardType::Hex8, 2).unwrap();
        for text in [
            "hex8_2p",
            "HEX8_2P",
            "hex8-2p",
            "hex8 2",
            "hex82p",
            "hexsmall_2p",
        ] {
            assert_eq!(text.parse::<ConfigKey>(), Ok(hex8_2p), "{text}");
        }
        let sq19_4p = ConfigKey::new(BoardType::Square19, 4).unwrap();
        assert_eq!("square19_4p".parse::<ConfigKey>(), Ok(sq19_4p));
        assert_eq!("19x19_4p".parse::<ConfigKey>(), Ok(sq19_4p));
        assert_eq!("sq194p".parse::<ConfigKey>(), Ok(sq19_4p));
    }

    #[test]
    fn bad_config_keys_are_errors_never_defaults() {
        assert!(matches!(
            "hex8_5p".parse::<ConfigKey>(),
            Err(BoardParseError::PlayersOutOfRange { players: 5, .. })
        ));
        assert!(matches!(
            "hex8_1p".parse::<ConfigKey>(),
            Err(BoardParseError::PlayersOutOfRange { players: 1, .. })
        ));
        assert!(matches!(
            "hex8_10p".parse::<ConfigKey>(),
            Err(BoardParseError::PlayersOutOfRange { players: 10, .. })
        ));
        assert!(matches!(
            "hex8".parse::<ConfigKey>(),
            Err(BoardParseError::MissingPlayers { .. })
        ));
        assert!(matches!(
            "hex8_xp".parse::<ConfigKey>(),
            Err(BoardParseError::BadPlayers { .. })
        ));
        assert!(matches!(
            "hex_2p".parse::<ConfigKey>(),
            Err(BoardParseError::AmbiguousHex { .. })
        ));
        let err = "hexx_2p".parse::<ConfigKey>().unwrap_err().to_string();
        assert!(
            err.starts_with("unknown board \"hexx\" (expected one of"),
            "{err}"
        );
    }

    #[test]
    fn all_has_twelve_distinct_keys_that_round_trip() {
        let all = ConfigKey::all();
        assert_eq!(all.len(), 12);
        assert_eq!(all[0].to_string(), "hex8_2p");
        assert_eq!(all[11].to_string(), "hexagonal_4p");
        for key in &all {
            assert_eq!(key.to_string().parse::<ConfigKey>(), Ok(*key));
            let json = serde_json::to_string(key).unwrap();
            assert_eq!(json, format!("\"{key}\""));
            assert_eq!(serde_json::from_str::<ConfigKey>(&json).unwrap(), *key);
        }
        let mut dedup = all.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), 12);
    }

    #[test]
    fn serde_errors_carry_the_parser_message() {
        let err = serde_json::from_str::<ConfigKey>("\"hex_3p\"").unwrap_err();
        assert!(err.to_string().contains("ambiguous"), "{err}");
        assert_eq!(
            serde_json::from_str::<BoardType>("\"8x8\"").unwrap(),
            BoardType::Square8
        );
    }
}
