//! The pure half of the Cassandra backend: URL parsing, CQL text, TTLs,
//! the index rows a span produces, and the plan a search follows. Nothing
//! here talks to a server, so all of it is unit-tested.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use model::{RetentionPolicy, Span, TraceId, TraceQuery};
use scylla::value::CqlValue;

use crate::{DEFAULT_INDEXED_TAGS, StoreError, codec};

/// The schema, applied at open after `USE <keyspace>`.
pub(crate) const SCHEMA: &str = include_str!("../../../migrations/cassandra/0001_schema.cql");

pub(crate) const DEFAULT_PORT: u16 = 9042;
pub(crate) const HOUR_NANOS: u64 = 3_600 * 1_000_000_000;
const DAY_SECS: u64 = 86_400;
/// Hash buckets of the service, operation and tag indexes.
pub(crate) const SEARCH_BUCKETS: i32 = 10;
/// Service, operation, tag key and tag value are cut to this many bytes in
/// index partition keys (Cassandra refuses keys over 64 KiB). Searches cut
/// the same way; confirmation on the loaded span is exact.
pub(crate) const MAX_KEY_BYTES: usize = 1_024;
/// Cassandra's largest TTL (20 years).
pub(crate) const MAX_TTL_SECS: u64 = 630_720_000;
/// Before Cassandra 5.0 an expiration past 2038-01-19 (i32 seconds) is
/// rejected; TTLs are cut to end a day before it.
const EXPIRY_LIMIT_SECS: u64 = i32::MAX as u64 - DAY_SECS;
/// The duration index is only walked for windows of at most this many hours;
/// longer windows use another index and confirm durations on the spans.
pub(crate) const MAX_DURATION_HOURS: u64 = 7 * 24;
/// Candidate traces scanned per search: 20 × limit, at most this.
pub(crate) const MAX_CANDIDATES: usize = 10_000;
pub(crate) const CANDIDATES_PER_RESULT: usize = 20;
/// Rows per unlogged batch, and their combined size.
pub(crate) const BATCH_ROWS: usize = 50;
pub(crate) const BATCH_BYTES: usize = 48 * 1024;

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

/// `CREATE KEYSPACE IF NOT EXISTS` for the URL's keyspace.
pub(crate) fn create_keyspace(ks: &Keyspace, replication_factor: u32) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': '{replication_factor}'}} AND durable_writes = true",
        ks.as_str()
    )
}

/// The schema file as separate statements: `--` comments dropped, split
/// on `;`.
pub(crate) fn schema_statements(schema: &str) -> Vec<String> {
    let text: String = schema
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The CQL text of every prepared statement, qualified with the keyspace.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub(crate) insert_span: String,
    pub(crate) existing_spans: String,
    pub(crate) trace_bodies: String,
    pub(crate) insert_service_name: String,
    pub(crate) insert_operation_name: String,
    pub(crate) insert_service_name_index: String,
    pub(crate) insert_service_operation_index: String,
    pub(crate) insert_duration_index: String,
    pub(crate) insert_tag_index: String,
    pub(crate) add_usage: String,
    pub(crate) select_services: String,
    pub(crate) select_operations: String,
    pub(crate) select_operations_of_kind: String,
    pub(crate) query_service_name_index: String,
    pub(crate) query_service_operation_index: String,
    pub(crate) query_duration_index: String,
    pub(crate) query_tag_index: String,
    pub(crate) select_usage: String,
}

impl Statements {
    pub(crate) fn new(ks: &Keyspace) -> Self {
        let k = ks.as_str();
        Self {
            insert_span: format!(
                "INSERT INTO {k}.spans (trace_id, span_id, start_time, duration, service_name, operation_name, span_kind, cluster, body) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            existing_spans: format!(
                "SELECT span_id FROM {k}.spans WHERE trace_id = ? AND span_id IN ?"
            ),
            trace_bodies: format!("SELECT body FROM {k}.spans WHERE trace_id = ?"),
            insert_service_name: format!(
                "INSERT INTO {k}.service_names (service_name) VALUES (?) USING TTL ?"
            ),
            insert_operation_name: format!(
                "INSERT INTO {k}.operation_names (service_name, span_kind, operation_name) VALUES (?, ?, ?) USING TTL ?"
            ),
            insert_service_name_index: format!(
                "INSERT INTO {k}.service_name_index (service_name, bucket, start_time, trace_id) VALUES (?, ?, ?, ?) USING TTL ?"
            ),
            insert_service_operation_index: format!(
                "INSERT INTO {k}.service_operation_index (service_name, operation_name, bucket, start_time, trace_id) VALUES (?, ?, ?, ?, ?) USING TTL ?"
            ),
            insert_duration_index: format!(
                "INSERT INTO {k}.duration_index (service_name, operation_name, hour_bucket, duration, start_time, trace_id) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            insert_tag_index: format!(
                "INSERT INTO {k}.tag_index (service_name, tag_key, tag_value, bucket, start_time, trace_id) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            add_usage: format!(
                "UPDATE {k}.usage SET spans = spans + ?, body_bytes = body_bytes + ? WHERE cluster = ? AND day_bucket = ?"
            ),
            select_services: format!("SELECT service_name FROM {k}.service_names"),
            select_operations: format!(
                "SELECT span_kind, operation_name FROM {k}.operation_names WHERE service_name = ?"
            ),
            select_operations_of_kind: format!(
                "SELECT span_kind, operation_name FROM {k}.operation_names WHERE service_name = ? AND span_kind = ?"
            ),
            query_service_name_index: format!(
                "SELECT start_time, trace_id FROM {k}.service_name_index WHERE service_name = ? AND bucket = ? \
                 AND start_time >= ? AND start_time <= ? LIMIT ?"
            ),
            query_service_operation_index: format!(
                "SELECT start_time, trace_id FROM {k}.service_operation_index WHERE service_name = ? AND operation_name = ? \
                 AND bucket = ? AND start_time >= ? AND start_time <= ? LIMIT ?"
            ),
            query_duration_index: format!(
                "SELECT start_time, trace_id FROM {k}.duration_index WHERE service_name = ? AND operation_name = ? \
                 AND hour_bucket = ? AND duration >= ? AND duration <= ? LIMIT ?"
            ),
            query_tag_index: format!(
                "SELECT start_time, trace_id FROM {k}.tag_index WHERE service_name = ? AND tag_key = ? AND tag_value = ? \
                 AND bucket = ? AND start_time >= ? AND start_time <= ? LIMIT ?"
            ),
            select_usage: format!("SELECT cluster, day_bucket, spans, body_bytes FROM {k}.usage"),
        }
    }
}

/// Nanoseconds beyond i64 (the year 2262) are clamped in index columns;
/// the body keeps the exact value.
pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The CQL TTL (seconds, `0` = never expires) for a retention of `hours`,
/// written at `now_secs`. Capped at Cassandra's 20-year maximum and so the
/// expiry stays before 2038-01-19 (older Cassandra rejects later ones);
/// past that date the cap is Cassandra 5's own maximum.
pub(crate) fn ttl_seconds(hours: Option<u64>, now_secs: u64) -> i32 {
    let Some(hours) = hours else { return 0 };
    let mut secs = hours.saturating_mul(3_600).min(MAX_TTL_SECS);
    if let Some(room) = EXPIRY_LIMIT_SECS.checked_sub(now_secs).filter(|r| *r > 0) {
        secs = secs.min(room);
    }
    i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
}

/// The longest retention of any cluster: the TTL of the service and
/// operation name rows, which must outlive every span they describe.
/// `None` (keep forever) when the default keeps spans forever.
pub(crate) fn names_ttl_hours(policy: &RetentionPolicy) -> Option<u64> {
    let default = policy.default_hours?;
    Some(policy.clusters.values().copied().fold(default, u64::max))
}

/// Whether a usage row of `day` (UTC days since the epoch) may still hold
/// live spans of a cluster retained `ttl_hours` at `now_secs`.
pub(crate) fn usage_day_live(day: i64, ttl_hours: Option<u64>, now_secs: u64) -> bool {
    let Some(hours) = ttl_hours else { return true };
    let Ok(day) = u64::try_from(day) else {
        return false;
    };
    let day_end = day.saturating_add(1).saturating_mul(DAY_SECS);
    day_end > now_secs.saturating_sub(hours.saturating_mul(3_600))
}

pub(crate) fn day_bucket(now_secs: u64) -> i64 {
    clamp_i64(now_secs / DAY_SECS)
}

/// The hour of a start time, as stored in `duration_index`.
pub(crate) fn hour_bucket(start_unix_nano: u64) -> i64 {
    clamp_i64(start_unix_nano.min(i64::MAX as u64) / HOUR_NANOS)
}

/// The hash bucket of a trace: stable, so a replay rewrites the same rows.
pub(crate) fn search_bucket(trace_id: &TraceId) -> i32 {
    let b = trace_id.as_bytes();
    i32::from(b[15]) % SEARCH_BUCKETS
}

/// `text` cut to at most [`MAX_KEY_BYTES`], on a character boundary.
pub(crate) fn index_key(text: &str) -> &str {
    if text.len() <= MAX_KEY_BYTES {
        return text;
    }
    let mut end = MAX_KEY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The tag keys written to `tag_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedTags(BTreeSet<String>);

impl IndexedTags {
    pub(crate) fn new(extra: &[String]) -> Self {
        Self(
            DEFAULT_INDEXED_TAGS
                .iter()
                .map(|k| (*k).to_owned())
                .chain(extra.iter().filter(|k| !k.is_empty()).cloned())
                .collect(),
        )
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.0.contains(key)
    }
}

/// The tables a span adds rows to, besides `spans` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum IndexTable {
    ServiceName,
    ServiceOperation,
    Duration,
    Tag,
}

/// One index row; all its values but the TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexRow {
    ServiceName {
        service: String,
        bucket: i32,
        start: i64,
        trace_id: TraceId,
    },
    ServiceOperation {
        service: String,
        operation: String,
        bucket: i32,
        start: i64,
        trace_id: TraceId,
    },
    /// `operation` is `""` for the any-operation row.
    Duration {
        service: String,
        operation: String,
        hour: i64,
        duration: i64,
        start: i64,
        trace_id: TraceId,
    },
    Tag {
        service: String,
        key: String,
        value: String,
        bucket: i32,
        start: i64,
        trace_id: TraceId,
    },
}

/// Which partition a row lands in; rows of one partition share a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PartitionKey {
    pub(crate) table: IndexTable,
    parts: Vec<String>,
    number: i64,
}

impl IndexRow {
    pub(crate) fn table(&self) -> IndexTable {
        match self {
            Self::ServiceName { .. } => IndexTable::ServiceName,
            Self::ServiceOperation { .. } => IndexTable::ServiceOperation,
            Self::Duration { .. } => IndexTable::Duration,
            Self::Tag { .. } => IndexTable::Tag,
        }
    }

    pub(crate) fn partition(&self) -> PartitionKey {
        let (parts, number) = match self {
            Self::ServiceName {
                service, bucket, ..
            } => (vec![service.clone()], i64::from(*bucket)),
            Self::ServiceOperation {
                service,
                operation,
                bucket,
                ..
            } => (vec![service.clone(), operation.clone()], i64::from(*bucket)),
            Self::Duration {
                service,
                operation,
                hour,
                ..
            } => (vec![service.clone(), operation.clone()], *hour),
            Self::Tag {
                service,
                key,
                value,
                bucket,
                ..
            } => (
                vec![service.clone(), key.clone(), value.clone()],
                i64::from(*bucket),
            ),
        };
        PartitionKey {
            table: self.table(),
            parts,
            number,
        }
    }

    /// Bound values of the table's insert statement, TTL last.
    pub(crate) fn values(&self, ttl: i32) -> Vec<CqlValue> {
        let text = |s: &str| CqlValue::Text(s.to_owned());
        let id = |t: &TraceId| CqlValue::Blob(t.as_bytes().to_vec());
        let mut v = match self {
            Self::ServiceName {
                service,
                bucket,
                start,
                trace_id,
            } => vec![
                text(service),
                CqlValue::Int(*bucket),
                CqlValue::BigInt(*start),
                id(trace_id),
            ],
            Self::ServiceOperation {
                service,
                operation,
                bucket,
                start,
                trace_id,
            } => vec![
                text(service),
                text(operation),
                CqlValue::Int(*bucket),
                CqlValue::BigInt(*start),
                id(trace_id),
            ],
            Self::Duration {
                service,
                operation,
                hour,
                duration,
                start,
                trace_id,
            } => vec![
                text(service),
                text(operation),
                CqlValue::BigInt(*hour),
                CqlValue::BigInt(*duration),
                CqlValue::BigInt(*start),
                id(trace_id),
            ],
            Self::Tag {
                service,
                key,
                value,
                bucket,
                start,
                trace_id,
            } => vec![
                text(service),
                text(key),
                text(value),
                CqlValue::Int(*bucket),
                CqlValue::BigInt(*start),
                id(trace_id),
            ],
        };
        v.push(CqlValue::Int(ttl));
        v
    }

    /// Rough size on the wire, for batch sizing.
    pub(crate) fn approx_bytes(&self) -> usize {
        let texts = match self {
            Self::ServiceName { service, .. } => service.len(),
            Self::ServiceOperation {
                service, operation, ..
            }
            | Self::Duration {
                service, operation, ..
            } => service.len() + operation.len(),
            Self::Tag {
                service,
                key,
                value,
                ..
            } => service.len() + key.len() + value.len(),
        };
        texts + 48
    }
}

/// The index rows of one span: service, service+operation, duration under
/// its operation and under `""`, and one tag row per indexed `key=value`
/// (the same tags [`codec::search_tags`] gives the SQL backends).
pub(crate) fn index_rows(span: &Span, indexed: &IndexedTags) -> Vec<IndexRow> {
    let service = index_key(span.service_name()).to_owned();
    let operation = index_key(&span.name).to_owned();
    let start = clamp_i64(span.start_unix_nano);
    let duration = clamp_i64(span.duration_nanos());
    let hour = hour_bucket(span.start_unix_nano);
    let bucket = search_bucket(&span.trace_id);
    let trace_id = span.trace_id;
    let mut rows = vec![
        IndexRow::ServiceName {
            service: service.clone(),
            bucket,
            start,
            trace_id,
        },
        IndexRow::ServiceOperation {
            service: service.clone(),
            operation: operation.clone(),
            bucket,
            start,
            trace_id,
        },
        IndexRow::Duration {
            service: service.clone(),
            operation,
            hour,
            duration,
            start,
            trace_id,
        },
        IndexRow::Duration {
            service: service.clone(),
            operation: String::new(),
            hour,
            duration,
            start,
            trace_id,
        },
    ];
    let mut seen = BTreeSet::new();
    for (key, value) in codec::search_tags(span) {
        if !indexed.contains(key) {
            continue;
        }
        let key = index_key(key).to_owned();
        let value = index_key(&value).to_owned();
        if seen.insert((key.clone(), value.clone())) {
            rows.push(IndexRow::Tag {
                service: service.clone(),
                key,
                value,
                bucket,
                start,
                trace_id,
            });
        }
    }
    rows
}

/// Groups rows by partition and cuts each group into batches of at most
/// `max_rows` rows and about `max_bytes`. Returns indexes into `rows`.
pub(crate) fn partition_batches(
    rows: &[IndexRow],
    max_rows: usize,
    max_bytes: usize,
) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<PartitionKey, Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        groups.entry(row.partition()).or_default().push(i);
    }
    let mut out = Vec::new();
    for members in groups.into_values() {
        let sizes: Vec<usize> = members.iter().map(|i| rows[*i].approx_bytes()).collect();
        for range in chunk_by_size(&sizes, max_rows, max_bytes) {
            out.push(members[range].to_vec());
        }
    }
    out
}

/// Consecutive ranges of `sizes` with at most `max_items` items and at most
/// `max_bytes` in total; an item larger than `max_bytes` goes alone.
pub(crate) fn chunk_by_size(
    sizes: &[usize],
    max_items: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let max_items = max_items.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    for (i, size) in sizes.iter().enumerate() {
        let full = i - start >= max_items || (i > start && bytes.saturating_add(*size) > max_bytes);
        if full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(*size);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Bound values of the `spans` insert, TTL last.
pub(crate) fn span_values(span: &Span, body: Vec<u8>, ttl: i32) -> Vec<CqlValue> {
    vec![
        CqlValue::Blob(span.trace_id.as_bytes().to_vec()),
        CqlValue::Blob(span.span_id.as_bytes().to_vec()),
        CqlValue::BigInt(clamp_i64(span.start_unix_nano)),
        CqlValue::BigInt(clamp_i64(span.duration_nanos())),
        CqlValue::Text(span.service_name().to_owned()),
        CqlValue::Text(span.name.clone()),
        CqlValue::Int(span.kind.as_i32()),
        CqlValue::Text(span.cluster.as_str().to_owned()),
        CqlValue::Blob(body),
        CqlValue::Int(ttl),
    ]
}

/// Which index a search reads its candidates from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// `tag_index` for an indexed `key=value` (cut like the written keys).
    Tag {
        key: String,
        value: String,
    },
    /// `duration_index` over these hours, newest first; `operation` is
    /// `""` when the query names none.
    Duration {
        operation: String,
        hours: Vec<i64>,
        min: i64,
        max: i64,
    },
    ServiceOperation {
        operation: String,
    },
    Service,
}

/// How a search runs. The service (the query's, else every service) is
/// part of every index key and is filled in by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) lookup: Lookup,
    /// Inclusive start-time window, nanoseconds.
    pub(crate) start_min: i64,
    pub(crate) start_max: i64,
    /// Distinct candidate traces considered at most.
    pub(crate) max_candidates: usize,
}

/// Indexed keys whose values are shared by most spans: an index scan on
/// them narrows little, so other indexes are preferred.
const BROAD_TAGS: &[&str] = &[
    "span.kind",
    "otel.status_code",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "http.method",
    "http.request.method",
];

/// The plan for `query`; `None` when nothing can match (empty window,
/// inverted duration range, limit 0).
pub(crate) fn plan(query: &TraceQuery, indexed: &IndexedTags) -> Option<Plan> {
    if query.limit == 0
        || query.start_min_unix_nano > query.start_max_unix_nano
        || query
            .duration_min_nanos
            .zip(query.duration_max_nanos)
            .is_some_and(|(lo, hi)| lo > hi)
    {
        return None;
    }
    let max_candidates = query
        .limit
        .saturating_mul(CANDIDATES_PER_RESULT)
        .clamp(1, MAX_CANDIDATES);
    let tag = |broad: bool| {
        query
            .tags
            .iter()
            .find(|t| indexed.contains(&t.key) && BROAD_TAGS.contains(&t.key.as_str()) == broad)
            .map(|t| Lookup::Tag {
                key: index_key(&t.key).to_owned(),
                value: index_key(&t.value).to_owned(),
            })
    };
    let duration = || {
        if query.duration_min_nanos.is_none() && query.duration_max_nanos.is_none() {
            return None;
        }
        let first = hour_bucket(query.start_min_unix_nano);
        let last = hour_bucket(query.start_max_unix_nano);
        let count = u64::try_from(last.saturating_sub(first))
            .ok()?
            .saturating_add(1);
        if count > MAX_DURATION_HOURS {
            return None;
        }
        Some(Lookup::Duration {
            operation: query
                .operation
                .as_deref()
                .map(index_key)
                .unwrap_or("")
                .to_owned(),
            hours: (first..=last).rev().collect(),
            min: clamp_i64(query.duration_min_nanos.unwrap_or(0)),
            max: clamp_i64(query.duration_max_nanos.unwrap_or(u64::MAX)),
        })
    };
    let lookup = tag(false)
        .or_else(duration)
        .or_else(|| {
            query
                .operation
                .as_deref()
                .map(|o| Lookup::ServiceOperation {
                    operation: index_key(o).to_owned(),
                })
        })
        .or_else(|| tag(true))
        .unwrap_or(Lookup::Service);
    Some(Plan {
        lookup,
        start_min: clamp_i64(query.start_min_unix_nano),
        start_max: clamp_i64(query.start_max_unix_nano),
        max_candidates,
    })
}

/// Candidate traces from index rows `(start, trace id)`: each trace keyed by
/// its latest indexed start, newest first, at most `cap`. `true` when more
/// were left out.
pub(crate) fn merge_candidates(
    rows: impl IntoIterator<Item = (i64, TraceId)>,
    cap: usize,
) -> (Vec<(i64, TraceId)>, bool) {
    let mut latest: HashMap<TraceId, i64> = HashMap::new();
    for (start, id) in rows {
        let e = latest.entry(id).or_insert(start);
        *e = (*e).max(start);
    }
    let mut all: Vec<(i64, TraceId)> = latest.into_iter().map(|(id, s)| (s, id)).collect();
    all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let cut = all.len() > cap;
    all.truncate(cap);
    (all, cut)
}

/// The latest start of a span of `spans` matching every filter of `query`.
pub(crate) fn latest_match(query: &TraceQuery, spans: &[Span]) -> Option<u64> {
    spans
        .iter()
        .filter(|s| query.matches_span(s))
        .map(|s| s.start_unix_nano)
        .max()
}

/// Confirmed traces, best first: `(latest matching start, trace id)`.
#[derive(Debug, Default)]
pub(crate) struct Ranking {
    found: Vec<(u64, TraceId)>,
}

impl Ranking {
    pub(crate) fn push(&mut self, latest: u64, id: TraceId) {
        self.found.push((latest, id));
        self.found
            .sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    }

    /// Whether `limit` confirmed traces already rank at or above anything
    /// the remaining candidates can bring: a candidate's matching spans are
    /// indexed, so its best match starts no later than its key.
    pub(crate) fn settled(&self, limit: usize, next_candidate: Option<i64>) -> bool {
        let Some(next) = next_candidate else {
            return true;
        };
        match limit.checked_sub(1).and_then(|i| self.found.get(i)) {
            Some((nth, _)) => clamp_i64(*nth) >= next,
            None => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.found.len()
    }

    /// The best `limit` trace ids.
    pub(crate) fn top(mut self, limit: usize) -> Vec<TraceId> {
        self.found.truncate(limit);
        self.found.into_iter().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use model::{AttrValue, SpanKind, TagFilter};

    use super::*;
    use crate::testsuite::{MS, SpanBuilder, T0, trace_id};

    fn query() -> TraceQuery {
        TraceQuery {
            limit: 20,
            ..crate::testsuite::any_query()
        }
    }

    fn tag(k: &str, v: &str) -> TagFilter {
        TagFilter {
            key: k.into(),
            value: v.into(),
        }
    }

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

    #[test]
    fn schema_statements_are_all_idempotent() {
        let stmts = schema_statements(SCHEMA);
        assert_eq!(stmts.len(), 8);
        for s in &stmts {
            assert!(s.starts_with("CREATE TABLE IF NOT EXISTS "), "{s}");
            assert!(!s.contains("--") && !s.contains(';'), "{s}");
        }
        for table in [
            "spans",
            "service_names",
            "operation_names",
            "service_name_index",
            "service_operation_index",
            "duration_index",
            "tag_index",
            "usage",
        ] {
            let prefix = format!("CREATE TABLE IF NOT EXISTS {table} (");
            assert!(stmts.iter().any(|s| s.starts_with(&prefix)), "{table}");
        }
        assert_eq!(
            schema_statements("-- only ; a comment\n CREATE x; ;\n"),
            ["CREATE x"]
        );
    }

    #[test]
    fn keyspace_cql() {
        let ks = Keyspace::new("Meridian").unwrap();
        assert_eq!(
            create_keyspace(&ks, 3),
            "CREATE KEYSPACE IF NOT EXISTS meridian WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '3'} AND durable_writes = true"
        );
        let s = Statements::new(&ks);
        for text in [
            &s.insert_span,
            &s.existing_spans,
            &s.trace_bodies,
            &s.insert_tag_index,
            &s.add_usage,
            &s.select_usage,
            &s.query_duration_index,
        ] {
            assert!(text.contains(" meridian."), "{text}");
        }
        // Bound-value counts match the value builders.
        let span = SpanBuilder::new(1, 1, "svc").build();
        assert_eq!(
            s.insert_span.matches('?').count(),
            span_values(&span, Vec::new(), 0).len()
        );
        let indexed = IndexedTags::new(&[]);
        for row in index_rows(&span, &indexed) {
            let text = match row.table() {
                IndexTable::ServiceName => &s.insert_service_name_index,
                IndexTable::ServiceOperation => &s.insert_service_operation_index,
                IndexTable::Duration => &s.insert_duration_index,
                IndexTable::Tag => &s.insert_tag_index,
            };
            assert_eq!(text.matches('?').count(), row.values(5).len(), "{text}");
            assert_eq!(row.values(5).last(), Some(&CqlValue::Int(5)));
        }
    }

    #[test]
    fn ttls() {
        let now = 1_700_000_000; // 2023-11-14
        assert_eq!(ttl_seconds(None, now), 0);
        assert_eq!(ttl_seconds(Some(24), now), 86_400);
        assert_eq!(ttl_seconds(Some(0), now), 1, "never 0 (= forever)");
        // 20 years from 2023 would expire after 2038: cut to end before it.
        let long = ttl_seconds(Some(20 * 365 * 24), now);
        assert!(u64::try_from(long).unwrap() + now < i32::MAX as u64);
        assert!(u64::try_from(long).unwrap() > 14 * 365 * 86_400);
        // 10 years fits.
        assert_eq!(ttl_seconds(Some(10 * 365 * 24), now), 10 * 365 * 86_400);
        // Huge values saturate instead of overflowing.
        assert!(ttl_seconds(Some(u64::MAX), now) > 0);
        assert!(u64::try_from(ttl_seconds(Some(u64::MAX), 0)).unwrap() <= MAX_TTL_SECS);
        // After 2038 the 20-year maximum applies.
        assert_eq!(
            ttl_seconds(Some(u64::MAX), 3_000_000_000),
            MAX_TTL_SECS as i32
        );
        assert_eq!(ttl_seconds(Some(1), 3_000_000_000), 3_600);
    }

    #[test]
    fn names_outlive_every_cluster() {
        let p = RetentionPolicy {
            default_hours: Some(24),
            clusters: [("a".to_owned(), 720), ("b".to_owned(), 1)].into(),
        };
        assert_eq!(names_ttl_hours(&p), Some(720));
        assert_eq!(
            names_ttl_hours(&RetentionPolicy {
                default_hours: None,
                ..p
            }),
            None
        );
    }

    #[test]
    fn usage_days() {
        let now = 100 * DAY_SECS + 3_600;
        assert!(usage_day_live(100, Some(1), now));
        assert!(usage_day_live(99, Some(2), now), "day 99 ended 1h ago");
        assert!(!usage_day_live(99, Some(1), now));
        assert!(!usage_day_live(0, Some(24), now));
        assert!(usage_day_live(0, None, now));
        assert!(usage_day_live(0, Some(u64::MAX), now));
        assert!(!usage_day_live(-1, Some(1), now));
        assert_eq!(day_bucket(now), 100);
    }

    #[test]
    fn index_keys_are_cut_on_char_boundaries() {
        assert_eq!(index_key("short"), "short");
        let long = "é".repeat(MAX_KEY_BYTES);
        let cut = index_key(&long);
        assert!(cut.len() <= MAX_KEY_BYTES && cut.len() >= MAX_KEY_BYTES - 1);
        assert!(long.starts_with(cut));
    }

    #[test]
    fn rows_for_a_span() {
        let span = SpanBuilder::new(7, 1, "api")
            .name("GET /x")
            .at(60_000, 25)
            .attr("http.status_code", AttrValue::Int(500))
            .attr("unindexed", AttrValue::Str("x".into()))
            .attr("custom", AttrValue::Str("c".into()))
            .error("boom")
            .build();
        let rows = index_rows(&span, &IndexedTags::new(&["custom".into()]));
        let start = clamp_i64(T0 + 60_000 * MS);
        let bucket = search_bucket(&trace_id(7));
        assert!((0..SEARCH_BUCKETS).contains(&bucket));
        assert_eq!(
            rows[0],
            IndexRow::ServiceName {
                service: "api".into(),
                bucket,
                start,
                trace_id: trace_id(7)
            }
        );
        let durations: Vec<_> = rows
            .iter()
            .filter_map(|r| match r {
                IndexRow::Duration {
                    operation,
                    hour,
                    duration,
                    ..
                } => Some((operation.as_str(), *hour, *duration)),
                _ => None,
            })
            .collect();
        let hour = clamp_i64((T0 + 60_000 * MS) / HOUR_NANOS);
        assert_eq!(
            durations,
            [("GET /x", hour, 25 * MS as i64), ("", hour, 25 * MS as i64)]
        );
        let mut tags: Vec<_> = rows
            .iter()
            .filter_map(|r| match r {
                IndexRow::Tag { key, value, .. } => Some(format!("{key}={value}")),
                _ => None,
            })
            .collect();
        tags.sort();
        assert_eq!(
            tags,
            [
                "custom=c",
                "error=true",
                "http.status_code=500",
                "k8s.cluster.name=east",
                "k8s.namespace.name=shop",
                "otel.status_code=ERROR",
                "span.kind=server",
            ]
        );
    }

    #[test]
    fn rows_for_extreme_spans() {
        // Far future: beyond i64 nanoseconds (year 2262).
        let mut future = SpanBuilder::new(1, 1, "svc").build();
        future.start_unix_nano = u64::MAX - 5;
        future.end_unix_nano = u64::MAX;
        // Far past, and an end before the start.
        let mut past = SpanBuilder::new(2, 1, "svc").build();
        past.start_unix_nano = 0;
        past.end_unix_nano = 0;
        let mut inverted = SpanBuilder::new(3, 1, "svc").build();
        inverted.end_unix_nano = inverted.start_unix_nano - 1;
        // Huge names and values are cut for the index keys.
        let mut huge = SpanBuilder::new(4, 1, &"s".repeat(100_000))
            .attr("http.route", AttrValue::Str("r".repeat(200_000)))
            .build();
        huge.name = "o".repeat(70_000);
        let indexed = IndexedTags::new(&[]);
        for span in [&future, &past, &inverted, &huge] {
            for row in index_rows(span, &indexed) {
                assert!(row.approx_bytes() < 4 * MAX_KEY_BYTES);
                for v in row.values(1) {
                    match v {
                        CqlValue::BigInt(n) => assert!(n >= 0),
                        CqlValue::Text(t) => assert!(t.len() <= MAX_KEY_BYTES),
                        _ => {}
                    }
                }
            }
        }
        let v = span_values(&future, Vec::new(), 0);
        assert_eq!(v[2], CqlValue::BigInt(i64::MAX));
        assert_eq!(v[3], CqlValue::BigInt(5));
        assert_eq!(hour_bucket(u64::MAX), i64::MAX / HOUR_NANOS as i64);
        assert_eq!(span_values(&past, Vec::new(), 0)[2], CqlValue::BigInt(0));
        assert_eq!(
            span_values(&inverted, Vec::new(), 0)[3],
            CqlValue::BigInt(0)
        );
    }

    #[test]
    fn replayed_spans_land_in_the_same_rows() {
        let span = SpanBuilder::new(9, 1, "svc").build();
        let indexed = IndexedTags::new(&[]);
        assert_eq!(index_rows(&span, &indexed), index_rows(&span, &indexed));
    }

    #[test]
    fn batches_follow_partitions() {
        let indexed = IndexedTags::new(&[]);
        let rows: Vec<IndexRow> = (0..120u64)
            .flat_map(|i| index_rows(&SpanBuilder::new(10, i + 1, "svc").build(), &indexed))
            .collect();
        let batches = partition_batches(&rows, BATCH_ROWS, BATCH_BYTES);
        let mut seen = vec![false; rows.len()];
        for batch in &batches {
            assert!(!batch.is_empty() && batch.len() <= BATCH_ROWS);
            let p = rows[batch[0]].partition();
            for i in batch {
                assert_eq!(rows[*i].partition(), p);
                assert!(!seen[*i]);
                seen[*i] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
        // One trace, one service: one partition per table, two for duration
        // (the operation and ''), three tags; 120 rows each, cut 50/50/20.
        let tables: BTreeSet<_> = batches.iter().map(|b| rows[b[0]].partition()).collect();
        assert_eq!(tables.len(), 1 + 1 + 2 + 3);
        assert_eq!(batches.len(), tables.len() * 3);
    }

    #[test]
    fn chunks() {
        assert_eq!(
            chunk_by_size(&[], 10, 100),
            Vec::<std::ops::Range<usize>>::new()
        );
        assert_eq!(chunk_by_size(&[1, 1, 1], 2, 100), [0..2, 2..3]);
        assert_eq!(
            chunk_by_size(&[60, 60, 10, 500, 1], 10, 100),
            [0..1, 1..3, 3..4, 4..5]
        );
        assert_eq!(chunk_by_size(&[1, 1], 0, 100), [0..1, 1..2]);
    }

    #[test]
    fn plans_pick_the_narrowest_index() {
        let indexed = IndexedTags::new(&["tenant".into()]);
        let p = plan(&query(), &indexed).unwrap();
        assert_eq!(p.lookup, Lookup::Service);
        assert_eq!(p.max_candidates, 400);

        let q = TraceQuery {
            operation: Some("GET".into()),
            tags: vec![tag("span.kind", "server"), tag("unindexed", "1")],
            ..query()
        };
        assert_eq!(
            plan(&q, &indexed).unwrap().lookup,
            Lookup::ServiceOperation {
                operation: "GET".into()
            },
            "broad tags lose to the operation, unindexed ones are never used"
        );

        let q = TraceQuery {
            tags: vec![tag("span.kind", "server"), tag("tenant", "acme")],
            operation: Some("GET".into()),
            duration_min_nanos: Some(1),
            ..query()
        };
        assert_eq!(
            plan(&q, &indexed).unwrap().lookup,
            Lookup::Tag {
                key: "tenant".into(),
                value: "acme".into()
            }
        );

        let q = TraceQuery {
            tags: vec![tag("span.kind", "server")],
            ..query()
        };
        assert_eq!(
            plan(&q, &indexed).unwrap().lookup,
            Lookup::Tag {
                key: "span.kind".into(),
                value: "server".into()
            }
        );

        let q = TraceQuery {
            tags: vec![tag("unindexed", "1")],
            ..query()
        };
        assert_eq!(plan(&q, &indexed).unwrap().lookup, Lookup::Service);
    }

    #[test]
    fn duration_plans_walk_hours_newest_first() {
        let indexed = IndexedTags::new(&[]);
        let q = TraceQuery {
            duration_min_nanos: Some(5 * MS),
            start_min_unix_nano: T0,
            start_max_unix_nano: T0 + 2 * HOUR_NANOS,
            ..query()
        };
        let first = hour_bucket(T0);
        assert_eq!(
            plan(&q, &indexed).unwrap().lookup,
            Lookup::Duration {
                operation: String::new(),
                hours: vec![first + 2, first + 1, first],
                min: 5 * MS as i64,
                max: i64::MAX,
            }
        );
        // A long window falls back to another index; durations are then
        // confirmed on the spans.
        let q = TraceQuery {
            operation: Some("op".into()),
            start_min_unix_nano: 0,
            start_max_unix_nano: u64::MAX,
            ..q
        };
        let p = plan(&q, &indexed).unwrap();
        assert_eq!(
            p.lookup,
            Lookup::ServiceOperation {
                operation: "op".into()
            }
        );
        assert_eq!((p.start_min, p.start_max), (0, i64::MAX));
    }

    #[test]
    fn impossible_queries_plan_nothing() {
        let indexed = IndexedTags::new(&[]);
        assert!(
            plan(
                &TraceQuery {
                    limit: 0,
                    ..query()
                },
                &indexed
            )
            .is_none()
        );
        assert!(
            plan(
                &TraceQuery {
                    start_min_unix_nano: 2,
                    start_max_unix_nano: 1,
                    ..query()
                },
                &indexed
            )
            .is_none()
        );
        assert!(
            plan(
                &TraceQuery {
                    duration_min_nanos: Some(2),
                    duration_max_nanos: Some(1),
                    ..query()
                },
                &indexed
            )
            .is_none()
        );
        let p = plan(
            &TraceQuery {
                limit: usize::MAX,
                tags: vec![tag("http.route", &"r".repeat(5_000))],
                ..query()
            },
            &indexed,
        )
        .unwrap();
        assert_eq!(p.max_candidates, MAX_CANDIDATES);
        match p.lookup {
            Lookup::Tag { value, .. } => assert_eq!(value.len(), MAX_KEY_BYTES),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn candidates_merge_newest_first_and_stop_at_the_cap() {
        let rows = vec![
            (10, trace_id(1)),
            (30, trace_id(2)),
            (20, trace_id(1)),
            (5, trace_id(3)),
            (30, trace_id(4)),
        ];
        let (c, cut) = merge_candidates(rows.clone(), 10);
        assert_eq!(
            c,
            [
                (30, trace_id(2)),
                (30, trace_id(4)),
                (20, trace_id(1)),
                (5, trace_id(3))
            ]
        );
        assert!(!cut);
        let (c, cut) = merge_candidates(rows, 2);
        assert_eq!(c.len(), 2);
        assert!(cut);
    }

    #[test]
    fn ranking_settles_only_when_no_candidate_can_beat_it() {
        let mut r = Ranking::default();
        assert!(!r.settled(1, Some(0)));
        assert!(r.settled(1, None));
        r.push(100, trace_id(1));
        assert!(r.settled(1, Some(100)));
        assert!(!r.settled(1, Some(101)));
        assert!(!r.settled(2, Some(0)));
        r.push(200, trace_id(2));
        assert!(r.settled(2, Some(50)));
        assert!(!r.settled(0, Some(1)), "limit 0 never plans");
        assert_eq!(r.len(), 2);
        assert_eq!(r.top(1), [trace_id(2)]);
    }

    #[test]
    fn latest_match_is_exact_jaeger_semantics() {
        let spans = vec![
            SpanBuilder::new(1, 1, "api")
                .at(0, 1)
                .attr("a", AttrValue::Str("1".into()))
                .build(),
            SpanBuilder::new(1, 2, "api")
                .at(5, 1)
                .attr("b", AttrValue::Str("2".into()))
                .kind(SpanKind::Client)
                .build(),
            SpanBuilder::new(1, 3, "api")
                .at(9, 1)
                .attr("a", AttrValue::Str("1".into()))
                .build(),
        ];
        let q = TraceQuery {
            tags: vec![tag("a", "1"), tag("b", "2")],
            ..query()
        };
        assert_eq!(latest_match(&q, &spans), None, "tags on different spans");
        let q = TraceQuery {
            tags: vec![tag("a", "1")],
            ..query()
        };
        assert_eq!(latest_match(&q, &spans), Some(T0 + 9 * MS));
        let q = TraceQuery {
            span_kind: Some(SpanKind::Client),
            ..query()
        };
        assert_eq!(latest_match(&q, &spans), Some(T0 + 5 * MS));
    }
}
