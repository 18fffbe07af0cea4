//! Unknown keys in a config file are errors, also in settings structs that
//! flatten shared flag blocks (serde refuses `deny_unknown_fields` beside
//! `flatten`).
//!
//! The last field of such a struct is `#[serde(flatten)] #[arg(skip)]
//! NoUnknownKeys`. serde hands each flattened field, in declaration order,
//! the keys no earlier field took; this one refuses the first it is given,
//! naming it, so the file fails to parse as with `deny_unknown_fields`.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor},
};

/// Refuses, while parsing, every key that reaches it (see the module
/// docs). Holds nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoUnknownKeys;

impl<'de> Deserialize<'de> for NoUnknownKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Refuse)
    }
}

struct Refuse;

impl<'de> Visitor<'de> for Refuse {
    type Value = NoUnknownKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no other keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoUnknownKeys, A::Error> {
        match map.next_key::<String>()? {
            Some(key) => Err(de::Error::custom(format_args!("unknown field `{key}`"))),
            None => Ok(NoUnknownKeys),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::config::LogFlags;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct Settings {
        cluster: Option<String>,
        #[serde(flatten)]
        log: LogFlags,
        #[serde(flatten)]
        _unknown: NoUnknownKeys,
    }

    #[test]
    fn known_keys_pass_and_an_unknown_one_is_named() {
        let s: Settings =
            toml::from_str("cluster = \"east\"\nlog-format = \"json\"").expect("known keys");
        assert_eq!(s.cluster.as_deref(), Some("east"));
        assert_eq!(s.log.log_format.as_deref(), Some("json"));
        let err = toml::from_str::<Settings>("cluster = \"east\"\nlog-formt = \"json\"")
            .expect_err("a typo");
        assert!(err.message().contains("unknown field `log-formt`"), "{err}");
    }
}
