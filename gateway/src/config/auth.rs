//! `--auth`: how the `--http` port identifies its callers, and the safe
//! default: a port reachable beyond loopback never starts open by
//! accident.
//!
//! | `--auth` | `--http` on loopback | `--http` beyond loopback |
//! |---|---|---|
//! | (none) | open; anonymous callers are admins unless `--admin-token` | refuses to start |
//! | `tokens` | API tokens or `--admin-token` on every API route | the same |
//! | `none` | open, a warning at every start | open for reads, a warning at every start; the admin API needs an admin token |
//! | `proxy` | a trusted SSO proxy's user/groups headers (from `--auth-proxy-trusted` peers only), API tokens, `--admin-token` | the same |
//!
//! In every mode a token that is sent is checked (an unknown, revoked or
//! expired one is a 401), so scoped tokens work on an open gateway too.
//! `--auth proxy` needs at least one `--auth-proxy-trusted` network; the
//! other `--auth-proxy-*` flags are refused without it.

use std::net::SocketAddr;

use axum::http::HeaderName;
use clap::Args;
use control_plane::access::{
    AccessPolicy, AuthMode, ProxyAuth,
    proxy::{DEFAULT_GROUPS_HEADER, DEFAULT_USER_HEADER, MAX_TRUSTED},
};
use serde::Deserialize;
use telemetry::config::ConfigError;

/// The `--auth proxy` flags.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProxyFlags {
    /// With --auth proxy: the header the proxy sends the user's name in
    /// [default: X-Forwarded-User].
    #[arg(long, env = "MERIDIAN_AUTH_PROXY_HEADER", value_name = "HEADER")]
    pub auth_proxy_header: Option<String>,
    /// With --auth proxy: the header the proxy sends the user's groups in,
    /// comma-separated [default: X-Forwarded-Groups].
    #[arg(long, env = "MERIDIAN_AUTH_PROXY_GROUPS_HEADER", value_name = "HEADER")]
    pub auth_proxy_groups_header: Option<String>,
    /// With --auth proxy (required): a network (CIDR, or one IP) the proxy
    /// connects from; its identity headers are honoured only from these.
    /// Repeat, or separate with commas.
    #[arg(
        long,
        env = "MERIDIAN_AUTH_PROXY_TRUSTED",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub auth_proxy_trusted: Option<Vec<String>>,
}

impl ProxyFlags {
    /// Fills unset fields from `file`.
    pub fn merge(&mut self, file: ProxyFlags) {
        telemetry::merge_options!(self, file; auth_proxy_header, auth_proxy_groups_header, auth_proxy_trusted);
    }

    fn is_empty(&self) -> bool {
        self.auth_proxy_header.is_none()
            && self.auth_proxy_groups_header.is_none()
            && self.auth_proxy_trusted.is_none()
    }

    /// The proxy settings `--auth proxy` uses.
    fn validate(self) -> Result<ProxyAuth, ConfigError> {
        let header = |key: &str, value: Option<String>, default: &str| {
            let value = value.unwrap_or_else(|| default.to_owned());
            HeaderName::try_from(value.trim()).map_err(|_| {
                ConfigError::new(
                    key,
                    format!("{value:?} is not an HTTP header name"),
                    "e.g. X-Forwarded-User",
                )
            })
        };
        let user_header = header(
            "auth-proxy-header",
            self.auth_proxy_header,
            DEFAULT_USER_HEADER,
        )?;
        let groups_header = header(
            "auth-proxy-groups-header",
            self.auth_proxy_groups_header,
            DEFAULT_GROUPS_HEADER,
        )?;
        if user_header == groups_header {
            return Err(ConfigError::new(
                "auth-proxy-groups-header",
                "the user and groups headers are the same",
                "give two different headers",
            ));
        }
        let mut trusted = Vec::new();
        for spec in self.auth_proxy_trusted.unwrap_or_default() {
            let spec = spec.trim();
            if spec.is_empty() {
                continue;
            }
            let net = spec
                .parse::<ipnet::IpNet>()
                .or_else(|_| spec.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "auth-proxy-trusted",
                        format!("{spec:?} is not a CIDR or an IP address"),
                        "write e.g. 10.0.0.0/8 or 10.1.2.3",
                    )
                })?;
            trusted.push(net.trunc());
        }
        if trusted.is_empty() {
            return Err(ConfigError::new(
                "auth-proxy-trusted",
                "--auth proxy honours identity headers only from trusted proxies, and none is given",
                "give --auth-proxy-trusted CIDR (the network your oauth2-proxy connects from)",
            ));
        }
        if trusted.len() > MAX_TRUSTED {
            return Err(ConfigError::new(
                "auth-proxy-trusted",
                format!("more than {MAX_TRUSTED} trusted networks"),
                "merge them into wider CIDRs",
            ));
        }
        Ok(ProxyAuth {
            user_header,
            groups_header,
            trusted,
        })
    }
}

/// The `--auth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthFlag {
    /// API tokens (`admin tokens create`) and the `--admin-token`.
    Tokens,
    /// Identity from a trusted SSO proxy's headers (oauth2-proxy and the
    /// like; needs --auth-proxy-trusted), plus API tokens.
    Proxy,
    /// No credential needed for reads: a deliberate choice, logged as a
    /// warning at every start.
    None,
}

/// The validated `--auth` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// What `--auth` said (`None`: nothing, allowed on loopback only).
    pub chosen: Option<AuthFlag>,
    /// Whether `--http` listens on a loopback address only.
    pub loopback: bool,
    /// With `--auth proxy`: whom to trust and which headers to read.
    pub proxy: Option<ProxyAuth>,
}

impl Default for AuthConfig {
    /// A loopback gateway without `--auth` (the demo, tests).
    fn default() -> Self {
        Self {
            chosen: None,
            loopback: true,
            proxy: None,
        }
    }
}

impl AuthConfig {
    /// Checks `--auth` (and its proxy flags) against the `--http` address.
    pub fn new(
        chosen: Option<AuthFlag>,
        proxy: ProxyFlags,
        http: SocketAddr,
    ) -> Result<Self, ConfigError> {
        let loopback = http.ip().is_loopback();
        if chosen != Some(AuthFlag::Proxy) && !proxy.is_empty() {
            return Err(ConfigError::new(
                "auth",
                "--auth-proxy-* flags are given without --auth proxy",
                "add --auth proxy, or drop the --auth-proxy-* flags",
            ));
        }
        match chosen {
            Some(AuthFlag::Proxy) => Ok(Self {
                chosen,
                loopback,
                proxy: Some(proxy.validate()?),
            }),
            None if !loopback => Err(ConfigError::new(
                "auth",
                format!(
                    "the query port {http} (--http or --tempo-http) is reachable beyond loopback and no --auth mode is chosen"
                ),
                "give --auth tokens (API tokens and --admin-token), --auth proxy (behind an SSO proxy), or --auth none to leave reads open deliberately",
            )),
            _ => Ok(Self {
                chosen,
                loopback,
                proxy: None,
            }),
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
        let mode = match (self.chosen, &self.proxy) {
            (Some(AuthFlag::Proxy), Some(proxy)) => AuthMode::Proxy(proxy.clone()),
            // Unreachable through `new`: a proxy mode without its settings
            // fails closed.
            (Some(AuthFlag::Tokens | AuthFlag::Proxy), _) => AuthMode::Tokens,
            (Some(AuthFlag::None) | None, _) => AuthMode::Open {
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
        let none = ProxyFlags::default;
        assert_eq!(
            key(AuthConfig::new(None, none(), wide)).as_deref(),
            Some("auth")
        );
        let lan = addr("10.1.2.3:1");
        assert_eq!(
            key(AuthConfig::new(None, none(), lan)).as_deref(),
            Some("auth")
        );
        let open = AuthConfig::new(None, none(), local).expect("loopback");
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
        let none =
            AuthConfig::new(Some(AuthFlag::None), ProxyFlags::default(), wide).expect("deliberate");
        assert!(none.is_open_by_choice());
        assert_eq!(
            none.policy(None).mode,
            AuthMode::Open {
                anonymous_admin: false
            },
            "beyond loopback the admin API always needs an admin"
        );
        let tokens =
            AuthConfig::new(Some(AuthFlag::Tokens), ProxyFlags::default(), wide).expect("tokens");
        assert_eq!(tokens.policy(Some("")).mode, AuthMode::Tokens);
        assert_eq!(AuthConfig::default(), open);
    }

    #[test]
    fn proxy_mode_needs_trusted_networks_and_its_flags_need_it() {
        let wide = addr("0.0.0.0:16686");
        let key = |r: Result<AuthConfig, ConfigError>| r.err().map(|e| e.key);
        let flags = |trusted: &[&str]| ProxyFlags {
            auth_proxy_trusted: Some(trusted.iter().map(|t| (*t).to_owned()).collect()),
            ..ProxyFlags::default()
        };
        let proxy = Some(AuthFlag::Proxy);
        assert_eq!(
            key(AuthConfig::new(proxy, ProxyFlags::default(), wide)).as_deref(),
            Some("auth-proxy-trusted")
        );
        assert_eq!(
            key(AuthConfig::new(proxy, flags(&["10.0.0.0/33"]), wide)).as_deref(),
            Some("auth-proxy-trusted")
        );
        assert_eq!(
            key(AuthConfig::new(
                Some(AuthFlag::Tokens),
                flags(&["10.0.0.0/8"]),
                wide
            ))
            .as_deref(),
            Some("auth"),
            "proxy flags without --auth proxy"
        );
        let bad_header = ProxyFlags {
            auth_proxy_header: Some("bad header".into()),
            ..flags(&["10.0.0.0/8"])
        };
        assert_eq!(
            key(AuthConfig::new(proxy, bad_header, wide)).as_deref(),
            Some("auth-proxy-header")
        );
        let cfg =
            AuthConfig::new(proxy, flags(&["10.1.2.3/8", "192.168.1.7"]), wide).expect("proxy");
        let AuthMode::Proxy(p) = cfg.policy(Some("admin")).mode else {
            panic!("proxy mode");
        };
        assert_eq!(p.user_header.as_str(), "x-forwarded-user");
        assert_eq!(p.groups_header.as_str(), "x-forwarded-groups");
        let nets: Vec<String> = p.trusted.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.168.1.7/32"]);
        assert!(p.trusts([10, 200, 0, 1].into()) && !p.trusts([127, 0, 0, 1].into()));
        assert!(!cfg.is_open_by_choice());
    }
}
