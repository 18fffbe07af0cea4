//! `--auth`: how the `--http` port identifies its callers, and the safe
//! default: a port reachable beyond loopback never starts open by
//! accident.
//!
//! | `--auth` | `--http` on loopback | `--http` beyond loopback |
//! |---|---|---|
//! | (none) | open; anonymous callers are admins unless `--admin-token` | refuses to start |
//! | `tokens` | API tokens or `--admin-token` on every API route | the same |
//! | `none` | open, a warning at every start | open for reads, a warning at every start; the admin API needs an admin token |
//! | `proxy` | not built yet: refuses to start | the same |
//!
//! In every mode a token that is sent is checked (an unknown, revoked or
//! expired one is a 401), so scoped tokens work on an open gateway too.

use std::net::SocketAddr;

use control_plane::access::{AccessPolicy, AuthMode};
use serde::Deserialize;
use telemetry::config::ConfigError;

/// The `--auth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthFlag {
    /// API tokens (`admin tokens create`) and the `--admin-token`.
    Tokens,
    /// Identity from a trusted SSO proxy's headers (not built yet; the
    /// gateway refuses to start with it).
    #[value(hide = true)]
    Proxy,
    /// No credential needed for reads: a deliberate choice, logged as a
    /// warning at every start.
    None,
}

/// The validated `--auth` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthConfig {
    /// What `--auth` said (`None`: nothing, allowed on loopback only).
    pub chosen: Option<AuthFlag>,
    /// Whether `--http` listens on a loopback address only.
    pub loopback: bool,
}

impl Default for AuthConfig {
    /// A loopback gateway without `--auth` (the demo, tests).
    fn default() -> Self {
        Self {
            chosen: None,
            loopback: true,
        }
    }
}

impl AuthConfig {
    /// Checks `--auth` against the `--http` address.
    pub fn new(chosen: Option<AuthFlag>, http: SocketAddr) -> Result<Self, ConfigError> {
        let loopback = http.ip().is_loopback();
        match chosen {
            Some(AuthFlag::Proxy) => Err(ConfigError::new(
                "auth",
                "--auth proxy (identity from a trusted SSO proxy) is not built yet",
                "use --auth tokens, or --auth none behind a proxy that authenticates every request",
            )),
            None if !loopback => Err(ConfigError::new(
                "auth",
                format!("--http {http} is reachable beyond loopback and no --auth mode is chosen"),
                "give --auth tokens (API tokens and --admin-token), or --auth none to leave reads open deliberately",
            )),
            _ => Ok(Self { chosen, loopback }),
        }
    }

    /// Whether the gateway must warn at start that its API is open.
    pub fn is_open_by_choice(&self) -> bool {
        self.chosen == Some(AuthFlag::None)
    }

    /// The access layer's policy, with the `--admin-token` if any.
    /// Anonymous callers are admins only on loopback and without an admin
    /// token.
    pub fn policy(&self, admin_token: Option<&str>) -> AccessPolicy {
        let admin_token = admin_token.filter(|t| !t.is_empty());
        let mode = match self.chosen {
            Some(AuthFlag::Tokens | AuthFlag::Proxy) => AuthMode::Tokens,
            Some(AuthFlag::None) | None => AuthMode::Open {
                anonymous_admin: self.loopback && admin_token.is_none(),
            },
        };
        AccessPolicy::new(mode, admin_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn beyond_loopback_an_auth_mode_must_be_chosen() {
        let wide = addr("0.0.0.0:16686");
        let local = addr("127.0.0.1:16686");
        let key = |r: Result<AuthConfig, ConfigError>| r.err().map(|e| e.key);
        assert_eq!(key(AuthConfig::new(None, wide)).as_deref(), Some("auth"));
        let lan = addr("10.1.2.3:1");
        assert_eq!(key(AuthConfig::new(None, lan)).as_deref(), Some("auth"));
        let proxy = AuthConfig::new(Some(AuthFlag::Proxy), local);
        assert_eq!(key(proxy).as_deref(), Some("auth"));
        let open = AuthConfig::new(None, local).expect("loopback");
        assert!(!open.is_open_by_choice());
        assert_eq!(
            open.policy(None).mode,
            AuthMode::Open {
                anonymous_admin: true
            }
        );
        assert_eq!(
            open.policy(Some("t")).mode,
            AuthMode::Open {
                anonymous_admin: false
            }
        );
        let none = AuthConfig::new(Some(AuthFlag::None), wide).expect("deliberate");
        assert!(none.is_open_by_choice());
        assert_eq!(
            none.policy(None).mode,
            AuthMode::Open {
                anonymous_admin: false
            },
            "beyond loopback the admin API always needs an admin"
        );
        let tokens = AuthConfig::new(Some(AuthFlag::Tokens), wide).expect("tokens");
        assert_eq!(tokens.policy(Some("")).mode, AuthMode::Tokens);
        assert_eq!(AuthConfig::default(), open);
    }
}
