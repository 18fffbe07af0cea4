//! Query-string parsing for the Zipkin v2 API (pure; table-tested), with
//! the rules of `zipkin2-api.yaml` and Zipkin's own `QueryRequest`:
//!
//! - `/traces`: `serviceName`, `spanName` (`all` = any), `remoteServiceName`,
//!   `annotationQuery` (`k=v and word …`), `minDuration` / `maxDuration`
//!   (µs; `maxDuration` only with `minDuration`), `endTs` and `lookback`
//!   (ms; default now and one day), `limit` (default 10). Zipkin answers a
//!   limit, lookback or duration that is not positive with 400, and so
//!   does this; beyond Zipkin, the window is at most
//!   [`QueryLimits::max_window`] and the limit is capped at [`MAX_LIMIT`].
//! - `/traceMany?traceIds=a,b`: at least two distinct ids, at most
//!   [`QueryLimits::max_trace_ids`].
//! - Names are matched as given: Zipkin lower-cases them, but Meridian
//!   keeps the case senders used, and Lens picks names from the lists.

use model::{TagFilter, TraceId, TraceQuery, access::Scope};

use crate::window::{MsWindow, Param, QueryLimits};

pub use crate::jaeger::params::pairs;

/// Traces per search when `limit` is absent (Zipkin's default).
pub const DEFAULT_LIMIT: usize = 10;
/// The most traces one search returns; larger limits are capped.
pub const MAX_LIMIT: usize = crate::jaeger::params::MAX_LIMIT;
/// `lookback` when absent: one day (Zipkin's `QUERY_LOOKBACK` default),
/// or the longest window served when that is shorter.
pub const DEFAULT_LOOKBACK_MS: i64 = 86_400_000;

/// A `/traces` search: the store's query, and the `annotationQuery` words
/// (no `=`) the store cannot answer, confirmed on what it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub query: TraceQuery,
    pub words: Vec<String>,
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

fn int(pairs: &[(String, String)], key: &str, unit: &str) -> Result<Option<i64>, String> {
    first(pairs, key)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| format!("parameter '{key}' must be an integer ({unit}), got {v:?}"))
        })
        .transpose()
}

/// `serviceName` and the like, required.
pub fn required<'a>(pairs: &'a [(String, String)], key: &str) -> Result<&'a str, String> {
    first(pairs, key).ok_or_else(|| format!("parameter '{key}' is required"))
}

/// `endTs` and `lookback` (ms) → a checked window, `lookback` defaulting
/// to a day (at most the longest window served).
pub fn window(
    pairs: &[(String, String)],
    now_ms: i64,
    limits: &QueryLimits,
) -> Result<MsWindow, String> {
    let max_ms = limits.max_window_ms();
    let end = int(pairs, "endTs", "epoch milliseconds")?.unwrap_or(now_ms);
    if end <= 0 {
        return Err(format!("parameter 'endTs' must be positive, got {end}"));
    }
    let lookback =
        int(pairs, "lookback", "milliseconds")?.unwrap_or(DEFAULT_LOOKBACK_MS.min(max_ms));
    MsWindow::lookback(
        Param::new("endTs", end),
        Param::new("lookback", lookback),
        max_ms,
    )
    .map_err(|e| e.to_string())
}

/// Zipkin's `annotationQuery`: terms joined by ` and `; `key=value` is a
/// tag filter, a bare word matches an annotation value or a tag key.
pub fn annotation_query(text: &str) -> (Vec<TagFilter>, Vec<String>) {
    let mut tags: Vec<TagFilter> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    for term in text.split(" and ") {
        match term.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let key = k.trim().to_owned();
                // The last value of a key wins, as in Zipkin.
                tags.retain(|t| t.key != key);
                tags.push(TagFilter {
                    key,
                    value: v.trim().to_owned(),
                });
            }
            Some(_) => {}
            None => {
                let w = term.trim();
                if !w.is_empty() && !words.iter().any(|x| x == w) {
                    words.push(w.to_owned());
                }
            }
        }
    }
    (tags, words)
}

fn micros_param(pairs: &[(String, String)], key: &'static str) -> Result<Option<u64>, String> {
    match int(pairs, key, "microseconds")? {
        None => Ok(None),
        Some(us) if us <= 0 => Err(format!("parameter '{key}' must be positive, got {us}")),
        Some(us) => u64::try_from(us)
            .ok()
            .and_then(|us| us.checked_mul(1_000))
            .map(Some)
            .ok_or_else(|| format!("parameter '{key}' is out of range")),
    }
}

fn ms_to_nanos(param: &'static str, ms: i64) -> Result<u64, String> {
    u64::try_from(ms)
        .ok()
        .and_then(|ms| ms.checked_mul(1_000_000))
        .ok_or_else(|| format!("parameter '{param}' is out of range"))
}

/// Parses `/api/v2/traces`; `now_ms` is injected for tests.
pub fn search(
    pairs: &[(String, String)],
    now_ms: i64,
    limits: &QueryLimits,
) -> Result<Search, String> {
    let w = window(pairs, now_ms, limits)?;
    let start_max_unix_nano = ms_to_nanos("endTs", w.to)?;
    let start_min_unix_nano = ms_to_nanos("lookback", w.from)?;
    let duration_min_nanos = micros_param(pairs, "minDuration")?;
    let duration_max_nanos = micros_param(pairs, "maxDuration")?;
    match (duration_min_nanos, duration_max_nanos) {
        (None, Some(_)) => {
            return Err("parameter 'maxDuration' is only valid with 'minDuration'".into());
        }
        (Some(lo), Some(hi)) if hi < lo => {
            return Err("parameter 'maxDuration' is below 'minDuration'".into());
        }
        _ => {}
    }
    let limit = match int(pairs, "limit", "traces")? {
        None => DEFAULT_LIMIT,
        Some(n) if n <= 0 => return Err(format!("parameter 'limit' must be positive, got {n}")),
        Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    };
    let (mut tags, words) = first(pairs, "annotationQuery")
        .map(annotation_query)
        .unwrap_or_default();
    if let Some(remote) = first(pairs, "remoteServiceName") {
        tags.push(TagFilter {
            key: super::model::REMOTE_SERVICE_TAG.to_owned(),
            value: remote.to_owned(),
        });
    }
    Ok(Search {
        query: TraceQuery {
            service: first(pairs, "serviceName").map(str::to_owned),
            operation: first(pairs, "spanName")
                .filter(|n| *n != "all")
                .map(str::to_owned),
            span_kind: None,
            tags,
            start_min_unix_nano,
            start_max_unix_nano,
            duration_min_nanos,
            duration_max_nanos,
            limit,
            scope: Scope::All,
        },
        words,
    })
}

/// A trace id of the path: 1 to 32 hex characters (case-insensitive,
/// padded as Zipkin's `normalizeTraceId` does).
pub fn trace_id(text: &str) -> Result<TraceId, String> {
    let t = text.trim();
    if t.is_empty() || t.len() > 32 {
        return Err(format!(
            "{t:?} is not a trace id: use 16 or 32 hex characters"
        ));
    }
    TraceId::from_hex(&t.to_ascii_lowercase()).map_err(|e| format!("{t:?} is not a trace id: {e}"))
}

/// `traceIds` of `/api/v2/traceMany`, with Zipkin's refusals (empty, a
/// repeated id, a single id) and [`QueryLimits::max_trace_ids`].
pub fn trace_many(
    pairs: &[(String, String)],
    limits: &QueryLimits,
) -> Result<Vec<TraceId>, String> {
    let text = first(pairs, "traceIds").ok_or("traceIds parameter is empty")?;
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() > limits.max_trace_ids {
        return Err(format!(
            "parameter 'traceIds' holds {} ids; at most {} per request",
            parts.len(),
            limits.max_trace_ids
        ));
    }
    let mut ids: Vec<TraceId> = Vec::with_capacity(parts.len());
    for p in parts {
        let id = trace_id(p)?;
        if ids.contains(&id) {
            return Err(format!("redundant traceId: {}", p.trim()));
        }
        ids.push(id);
    }
    if ids.len() == 1 {
        return Err("Use /api/v2/trace/{traceId} endpoint to retrieve a single trace".into());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn parse(q: &str) -> Result<Search, String> {
        search(&pairs(Some(q)), NOW, &QueryLimits::default())
    }

    #[test]
    fn defaults_are_zipkins() {
        let s = parse("").unwrap();
        assert_eq!(s.query.limit, 10);
        assert_eq!(s.query.start_max_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(
            s.query.start_max_unix_nano - s.query.start_min_unix_nano,
            86_400_000_000_000
        );
        assert_eq!(
            (s.query.service.as_deref(), s.query.operation.as_deref()),
            (None, None)
        );
        // `spanName=all` is Lens's "any".
        assert_eq!(parse("spanName=all").unwrap().query.operation, None);
    }

    #[test]
    fn a_full_lens_search() {
        // The parameters Zipkin Lens's tracesSlice sends.
        let s = parse(
            "serviceName=frontend&spanName=get%20%2F&remoteServiceName=backend\
             &annotationQuery=http.method%3DGET%20and%20error%20and%20ws\
             &minDuration=100000&maxDuration=200000&endTs=1600000000000&lookback=900000&limit=25",
        )
        .unwrap();
        let q = &s.query;
        assert_eq!(q.service.as_deref(), Some("frontend"));
        assert_eq!(q.operation.as_deref(), Some("get /"));
        let tags: Vec<(&str, &str)> = q
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(tags, [("http.method", "GET"), ("peer.service", "backend")]);
        assert_eq!(s.words, ["error", "ws"]);
        assert_eq!(q.duration_min_nanos, Some(100_000_000));
        assert_eq!(q.duration_max_nanos, Some(200_000_000));
        assert_eq!(q.start_max_unix_nano, 1_600_000_000_000_000_000);
        assert_eq!(
            q.start_min_unix_nano,
            (1_600_000_000_000 - 900_000) * 1_000_000
        );
        assert_eq!(q.limit, 25);
        assert_eq!(parse("limit=999999").unwrap().query.limit, MAX_LIMIT);
    }

    #[test]
    fn refusals_name_the_parameter() {
        for (q, param) in [
            ("limit=0", "limit"),
            ("limit=x", "limit"),
            ("lookback=0", "lookback"),
            ("lookback=-5", "lookback"),
            ("lookback=604800001", "lookback"),
            ("endTs=0", "endTs"),
            ("endTs=-1", "endTs"),
            ("endTs=9223372036854775807", "endTs"),
            ("minDuration=0", "minDuration"),
            ("minDuration=9223372036854775807", "minDuration"),
            ("maxDuration=5", "maxDuration"),
            ("minDuration=10&maxDuration=5", "maxDuration"),
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.contains(param), "{q}: {e}");
        }
    }

    #[test]
    fn annotation_queries() {
        let (tags, words) = annotation_query("a=1 and a=2 and b= and retried and  retried ");
        let tags: Vec<(&str, &str)> = tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(tags, [("a", "2"), ("b", "")]);
        assert_eq!(words, ["retried"]);
    }

    #[test]
    fn trace_ids_as_zipkin_takes_them() {
        let l = QueryLimits::default();
        let many = |q: &str| trace_many(&pairs(Some(q)), &l);
        assert_eq!(
            trace_id("463AC35C9F6413AD").unwrap().to_jaeger_hex(),
            "463ac35c9f6413ad"
        );
        assert!(trace_id(&"a".repeat(33)).is_err());
        assert!(trace_id("xyz").is_err());
        assert_eq!(
            many("traceIds=463ac35c9f6413ad,5af7183fb1d4cf5f6b221d5bc9e6496c")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            many("traceIds=").unwrap_err(),
            "traceIds parameter is empty"
        );
        assert!(
            many("traceIds=a1")
                .unwrap_err()
                .contains("/api/v2/trace/{traceId}")
        );
        assert_eq!(
            many("traceIds=a1,b2,a1").unwrap_err(),
            "redundant traceId: a1"
        );
        let ids = (1..=1_001)
            .map(|i| format!("{i:x}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            many(&format!("traceIds={ids}"))
                .unwrap_err()
                .contains("1001")
        );
    }
}
