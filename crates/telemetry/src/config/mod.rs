//! Helpers both binaries use to build their configuration: defaults < file
//! < `MERIDIAN_*` env < flags. Flags and env are read by clap; the file
//! fills what they left unset; the rest takes defaults; `validate()` in each
//! binary turns the result into a type that cannot be invalid.
//!
//! Flag blocks both binaries have are one `clap::Args` struct each, used
//! with `#[command(flatten)]` and `#[serde(flatten)]`: [`LogFlags`] and
//! [`TlsFlags`] here, the receivers' in `receiver::config`. serde cannot
//! combine `flatten` with `deny_unknown_fields`, so a settings struct that
//! flattens ends with a [`NoUnknownKeys`] field, which refuses every key no
//! other field took ([`strict`]).

mod flags;
mod strict;

pub use flags::{LogFlags, TlsFlags, parse_log_format};
pub use strict::NoUnknownKeys;

use std::{
    net::{SocketAddr, ToSocketAddrs},
    path::Path,
};

/// A configuration problem: which key, what is wrong, how to fix it.
/// Binaries print it and exit with code 2.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration `{key}`: {problem}{}", fix.as_deref().map(|f| format!(" (fix: {f})")).unwrap_or_default())]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
    pub fix: Option<String>,
}

impl ConfigError {
    pub fn new(key: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            problem: problem.into(),
            fix: Some(fix.into()).filter(|f: &String| !f.is_empty()),
        }
    }
}

/// Reads a TOML config file into `T` (which should deny unknown fields).
pub fn read_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "config",
            format!("cannot read {}: {e}", path.display()),
            "pass an existing TOML file to --config",
        )
    })?;
    toml::from_str(&text).map_err(|e| {
        ConfigError::new(
            "config",
            format!("{}: {}", path.display(), e.message()),
            "keys are the flag names without dashes prefix, e.g. `otlp-grpc = \":4317\"`",
        )
    })
}

/// Parses a listen address: `:4317` (all interfaces), `127.0.0.1:0`,
/// `[::1]:4317` or `localhost:4317`.
pub fn listen_addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    let candidate = if let Some(port) = text.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else {
        text.to_owned()
    };
    if let Ok(addr) = candidate.parse::<SocketAddr>() {
        return Ok(addr);
    }
    candidate
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| {
            ConfigError::new(
                key,
                format!("{text:?} is not a listen address"),
                "use HOST:PORT or :PORT, e.g. :4317 or 127.0.0.1:4317",
            )
        })
}

/// Fills every `None` field of `$a` from `$b`, field by field.
#[macro_export]
macro_rules! merge_options {
    ($a:expr, $b:expr; $($field:ident),+ $(,)?) => {
        $( if $a.$field.is_none() { $a.$field = $b.$field; } )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(listen_addr("k", ":4317").unwrap().port(), 4317);
        assert_eq!(
            listen_addr("k", "127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert!(listen_addr("k", "localhost:1").is_ok());
        let err = listen_addr("otlp-grpc", "nope").unwrap_err().to_string();
        assert!(err.contains("otlp-grpc") && err.contains("fix"), "{err}");
    }
}
