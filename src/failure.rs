//! How a command fails. Commands return `anyhow::Result<()>`; a failure caused by bad input carries a
//! [`BadInput`], anything else is a runtime failure. `main` alone turns the outcome into the exit code
//! ([`exit_code`]): 0 success, 1 runtime failure, 2 bad input.

use std::fmt::Display;

/// Exit code of a runtime failure: the root supervisor gave up, the API address is in use, the daemon is
/// unreachable, an operation failed.
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code of bad input: config, flags, plan state.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Bad input: the text names the field, line or flag and the expected form, and is printed as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl BadInput {
    /// `error: --board: unknown board "x" (...)`.
    pub fn flag(flag: &str, why: impl Display) -> anyhow::Error {
        BadInput(format!("error: {flag}: {why}")).into()
    }

    /// A report already worded for the reader (config errors, one per line).
    pub fn report(text: impl Display) -> anyhow::Error {
        BadInput(text.to_string()).into()
    }
}

/// The exit code for an error, and the text to print for it.
pub fn exit_code(error: &anyhow::Error) -> (u8, String) {
    if let Some(bad) = error.downcast_ref::<BadInput>() {
        return (EXIT_BAD_INPUT, bad.to_string());
    }
    // An unusable dead-letter store is an environment problem (disk, permissions), not a crash that a service
    // manager's `Restart=on-failure` should loop on.
    if error
        .downcast_ref::<crate::daemon::StoreUnusable>()
        .is_some()
    {
        return (EXIT_BAD_INPUT, format!("error: {error:#}"));
    }
    (EXIT_RUNTIME, format!("error: {error:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_2_and_everything_else_is_1() {
        let (code, text) = exit_code(&BadInput::flag("--players", "expected 2, 3 or 4"));
        assert_eq!(
            (code, text.as_str()),
            (2, "error: --players: expected 2, 3 or 4")
        );
        let wrapped = anyhow::Error::from(BadInput("x.yaml:1:1: bad".into())).context("loading");
        assert_eq!(exit_code(&wrapped).0, 2, "context keeps the kind");
        let (code, text) = exit_code(&anyhow::anyhow!("port in use").context("control API"));
        assert_eq!(
            (code, text.as_str()),
            (1, "error: control API: port in use")
        );
    }
}
