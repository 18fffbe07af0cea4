//! The `cassandra://` URL: contact points, keyspace, replication factor
//! and credentials, checked so the keyspace is safe to splice into CQL.

use crate::StoreError;

pub(crate) const DEFAULT_PORT: u16 = 9042;

const MAX_KEYSPACE_LEN: usize = 48;
/// CQL's reserved keywords (Cassandra 3–5, ScyllaDB): not valid unquoted.
const RESERVED: &[&str] = &[
    "add",
    "allow",
    "alter",
    "and",
    "any",
    "apply",
    "asc",
    "authorize",
    "batch",
    "begin",
    "by",
    "columnfamily",
    "create",
    "default",
    "delete",
    "desc",
    "describe",
    "drop",
    "each_quorum",
    "entries",
    "execute",
    "for",
    "from",
    "full",
    "grant",
    "if",
    "in",
    "index",
    "inet",
    "infinity",
    "insert",
    "into",
    "is",
    "keyspace",
    "keyspaces",
    "limit",
    "local_one",
    "local_quorum",
    "materialized",
    "mbean",
    "mbeans",
    "modify",
    "nan",
    "norecursive",
    "not",
    "null",
    "of",
    "on",
    "one",
    "or",
    "order",
    "password",
    "primary",
    "quorum",
    "rename",
    "replace",
    "revoke",
    "schema",
    "select",
    "set",
    "table",
    "three",
    "to",
    "token",
    "truncate",
    "two",
    "unlogged",
    "unset",
    "update",
    "use",
    "using",
    "view",
    "where",
    "with",
];
const MAX_REPLICATION_FACTOR: u32 = 32;

/// A keyspace name that is safe to splice into CQL: `[a-z][a-z0-9_]*`, at
/// most 48 characters (Cassandra's limit), not a system keyspace. Unquoted
/// names are case-insensitive in CQL, so upper case is folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keyspace(String);

impl Keyspace {
    pub(crate) fn new(name: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| {
            StoreError::Config(format!(
                "invalid cassandra keyspace {:?}: {why}",
                name.chars().take(64).collect::<String>()
            ))
        };
        if name.is_empty() {
            return Err(bad("it is empty"));
        }
        if name.len() > MAX_KEYSPACE_LEN {
            return Err(bad("longer than 48 characters"));
        }
        if !name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()) {
            return Err(bad("it must start with a letter"));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad("use only letters, digits and '_'"));
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("system") {
            return Err(bad("system keyspaces are Cassandra's own"));
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(bad("it is a reserved CQL keyword"));
        }
        Ok(Self(lower))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a `cassandra://` URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// `host:port`, IPv6 hosts in brackets.
    pub(crate) contact_points: Vec<String>,
    pub(crate) keyspace: Keyspace,
    pub(crate) replication_factor: u32,
    pub(crate) credentials: Option<(String, String)>,
}

/// Parses `cassandra://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/KEYSPACE[?replication_factor=N]`.
/// User and password may be percent-encoded. Error messages never repeat
/// the credentials.
pub(crate) fn parse_url(url: &str) -> Result<Config, StoreError> {
    let shown = crate::describe(&[url.to_owned()]);
    let bad = |why: String| StoreError::Config(format!("invalid cassandra url {shown:?}: {why}"));
    let rest = url
        .strip_prefix("cassandra://")
        .ok_or_else(|| bad("it must start with cassandra://".into()))?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, keyspace) = rest
        .split_once('/')
        .ok_or_else(|| bad("no keyspace: end it with /KEYSPACE".into()))?;
    let keyspace = Keyspace::new(keyspace)?;
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = userinfo
                .split_once(':')
                .ok_or_else(|| bad("credentials must be USER:PASSWORD@".into()))?;
            let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in user".into()))?;
            let password =
                percent_decode(password).ok_or_else(|| bad("bad %-escape in password".into()))?;
            if user.is_empty() {
                return Err(bad("empty user name".into()));
            }
            (Some((user, password)), hosts)
        }
        None => (None, authority),
    };
    let mut contact_points = Vec::new();
    for host in hosts.split(',') {
        contact_points.push(parse_host(host).map_err(bad)?);
    }
    let mut replication_factor = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "replication_factor" => {
                if replication_factor.is_some() {
                    return Err(bad("replication_factor given twice".into()));
                }
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_REPLICATION_FACTOR).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "replication_factor must be 1 to {MAX_REPLICATION_FACTOR}, not {v:?}"
                        ))
                    })?;
                replication_factor = Some(n);
            }
            other => {
                return Err(bad(format!(
                    "unknown option {:?} (known: replication_factor)",
                    other.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    Ok(Config {
        contact_points,
        keyspace,
        replication_factor: replication_factor.unwrap_or(1),
        credentials,
    })
}

fn parse_host(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("empty host in the contact point list".into());
    }
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {text:?}"))?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!("bad IPv6 address in {text:?}"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("bad port in {text:?}"))?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        let (h, p) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        let ok = !h.is_empty()
            && h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !ok {
            return Err(format!(
                "bad host {:?}",
                text.chars().take(64).collect::<String>()
            ));
        }
        (h.to_owned(), p)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port in {text:?}"))?,
    };
    Ok(format!("{host}:{port}"))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keyspace_names() {
        assert_eq!(Keyspace::new("meridian").unwrap().as_str(), "meridian");
        assert_eq!(Keyspace::new("Meridian_2").unwrap().as_str(), "meridian_2");
        assert!(Keyspace::new(&"k".repeat(48)).is_ok());
        for bad in [
            "",
            "1abc",
            "_abc",
            "a-b",
            "a.b",
            "ks; DROP KEYSPACE x",
            "ks WITH replication",
            "\"quoted\"",
            "ks'--",
            "ksé",
            "system",
            "system_auth",
            "System_Schema",
            "table",
            "KEYSPACE",
            "select",
            &"k".repeat(49),
        ] {
            let err = Keyspace::new(bad).unwrap_err();
            assert!(matches!(err, StoreError::Config(_)), "{bad:?}");
        }
    }

    #[test]
    fn urls() {
        let c = parse_url("cassandra://db1:9043,db2,[::1]:9000/meridian").unwrap();
        assert_eq!(c.contact_points, ["db1:9043", "db2:9042", "[::1]:9000"]);
        assert_eq!(c.keyspace.as_str(), "meridian");
        assert_eq!(c.replication_factor, 1);
        assert_eq!(c.credentials, None);

        let c =
            parse_url("cassandra://u%40x:p%3Aw%2Fd@10.0.0.1/Traces?replication_factor=3").unwrap();
        assert_eq!(c.contact_points, ["10.0.0.1:9042"]);
        assert_eq!(c.keyspace.as_str(), "traces");
        assert_eq!(c.replication_factor, 3);
        assert_eq!(c.credentials, Some(("u@x".into(), "p:w/d".into())));

        assert_eq!(
            parse_url("cassandra://a:b:c@h/ks").unwrap().credentials,
            Some(("a".into(), "b:c".into()))
        );
    }

    #[test]
    fn bad_urls_are_config_errors_without_secrets() {
        for bad in [
            "postgres://h/ks",
            "cassandra://h",
            "cassandra://h/",
            "cassandra:///ks",
            "cassandra://h,/ks",
            "cassandra://h:0/ks",
            "cassandra://h:99999/ks",
            "cassandra://h:port/ks",
            "cassandra://h h/ks",
            "cassandra://[::1/ks",
            "cassandra://[zz]/ks",
            "cassandra://h/ks;DROP",
            "cassandra://h/ks/more",
            "cassandra://h/ks?replication_factor=0",
            "cassandra://h/ks?replication_factor=1000",
            "cassandra://h/ks?replication_factor=x",
            "cassandra://h/ks?replication_factor=1&replication_factor=2",
            "cassandra://h/ks?consistency=one",
            "cassandra://secret@h/ks",
            "cassandra://:secret@h/ks",
            "cassandra://u:se%zzcret@h/ks",
        ] {
            match parse_url(bad) {
                Err(StoreError::Config(msg)) => {
                    assert!(!msg.contains("secret"), "{bad}: {msg}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
