//! Secrets in the config (today: `api.token`): never printed, never inherited.
//!
//! - [`redacted`] is the config as it may be shown (`check-config` prints it): every secret replaced by
//!   [`REDACTED`]. `ApiConfig`'s `Debug` hides the token the same way.
//! - [`forget_secret_env`] removes the secret `COORDINATOR_*` variables from the daemon's own environment once the
//!   config is loaded, so no child process (data server, jobs, ssh, rsync) inherits them.

use super::sections::Config;

/// What a secret reads as in any output.
pub const REDACTED: &str = "<redacted>";

/// The environment variables that carry secrets (names as the override parser reads them, any case).
pub const SECRET_ENV: &[&str] = &["COORDINATOR_API__TOKEN"];

/// `config` with every secret replaced by [`REDACTED`] (an unset secret stays unset).
pub fn redacted(config: &Config) -> Config {
    let mut shown = config.clone();
    if shown.api.token.is_some() {
        shown.api.token = Some(REDACTED.to_string());
    }
    shown
}

/// Removes every [`SECRET_ENV`] variable from this process's environment. Call it once the config is loaded and
/// before any thread or child process starts (the environment is process-wide).
pub fn forget_secret_env() {
    let names: Vec<std::ffi::OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            name.to_str().is_some_and(|name| {
                SECRET_ENV
                    .iter()
                    .any(|secret| secret.eq_ignore_ascii_case(name))
            })
        })
        .collect();
    for name in names {
        std::env::remove_var(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_redacted_and_an_unset_one_stays_unset() {
        let mut config = Config::default();
        assert_eq!(redacted(&config).api.token, None);
        config.api.token = Some("s3cret".into());
        let shown = redacted(&config);
        assert_eq!(shown.api.token.as_deref(), Some(REDACTED));
        let yaml = crate::config::to_yaml(&shown).unwrap();
        assert!(!yaml.contains("s3cret"), "{yaml}");
        assert!(!format!("{:?}", config.api).contains("s3cret"));
    }

    #[test]
    fn the_secret_variables_are_the_ones_the_loader_reads() {
        for name in SECRET_ENV {
            let env = [(name.to_string(), "t0k".to_string())];
            let loaded =
                crate::config::load_str::<Config, _>("", std::path::Path::new("config.yaml"), env)
                    .unwrap();
            assert_eq!(loaded.config.api.token.as_deref(), Some("t0k"), "{name}");
        }
    }
}
