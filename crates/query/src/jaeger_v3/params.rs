//! Query-string parsing for api_v3 (pure; table-tested), as Jaeger's
//! `cmd/jaeger/internal/extension/jaegerquery/internal/apiv3/query_parser.go`
//! reads it: the canonical camelCase names (`query.serviceName`,
//! `query.startTimeMin`, …) first, then the snake_case aliases Jaeger still
//! accepts (`query.service_name`, `query.start_time_min`,
//! `query.num_traces`, …). Every message names the parameter.
//!
//! Bounds: the search window is at most [`QueryLimits::max_window`];
//! `searchDepth` is capped at [`MAX_LIMIT`]. `query.filter` (Jaeger's
//! experimental structured filter, refused by Jaeger itself unless its
//! `jaeger.query.structuredFilters` feature gate is on) is refused with
//! 400 rather than ignored, as Jaeger does with the gate off.

use model::{SpanKind, TagFilter, TraceId, TraceQuery, access::Scope};

use super::rfc3339;
use crate::{
    duration::parse_go_duration,
    jaeger::params::{MAX_LIMIT, pairs},
    window::QueryLimits,
};

/// Traces per search when `searchDepth` is absent (Jaeger's
/// `defaultSearchDepth`).
pub const DEFAULT_SEARCH_DEPTH: usize = 100;

/// A parsed `GET /api/v3/traces` or `/api/v3/trace-summaries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindRequest {
    pub query: TraceQuery,
    pub raw: bool,
}

/// A parsed `GET /api/v3/traces/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRequest {
    pub id: TraceId,
    pub raw: bool,
}

/// `key=value` pairs of a query string.
pub type Pairs = Vec<(String, String)>;

pub fn parse_pairs(query: Option<&str>) -> Pairs {
    pairs(query)
}

/// The value of the canonical name, else of its alias, with the name that
/// supplied it (Jaeger's `getQueryParam`: empty values count as absent).
pub fn param<'a>(
    pairs: &'a [(String, String)],
    names: &[&'static str],
) -> Option<(&'a str, &'static str)> {
    names.iter().find_map(|name| {
        pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| (v.as_str(), *name))
    })
}

fn malformed(name: &str, e: impl std::fmt::Display) -> String {
    format!("malformed parameter {name}: {e}")
}

/// Go's `strconv.ParseBool`.
fn go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean")),
    }
}

fn bool_param(pairs: &[(String, String)], names: &[&'static str]) -> Result<bool, String> {
    match param(pairs, names) {
        None => Ok(false),
        Some((v, name)) => go_bool(v).map_err(|e| malformed(name, e)),
    }
}

/// A trace id as Jaeger's `TraceIDFromString` reads it: hex (up to 32
/// digits), else base64 (standard or URL-safe, padded or not) of 8 or 16
/// bytes.
pub fn trace_id(text: &str) -> Result<TraceId, String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let hex_err = match TraceId::from_hex(text) {
        Ok(id) => return Ok(id),
        Err(e) => e.to_string(),
    };
    if text.len() <= 24 {
        for engine in [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            if let Ok(mut bytes) = engine.decode(text) {
                if bytes.len() == 8 {
                    bytes.splice(0..0, [0u8; 8]);
                }
                return TraceId::from_bytes(&bytes).map_err(|e| malformed("trace_id", e));
            }
        }
    }
    Err(malformed("trace_id", hex_err))
}

/// `GET /api/v3/traces/{trace_id}?startTime&endTime&rawTraces`. The times
/// are checked (RFC 3339, start before end) but, as in Jaeger, only hint
/// where to look: Meridian finds a trace by id without them.
pub fn get_request(id: &str, pairs: &[(String, String)]) -> Result<GetRequest, String> {
    let id = trace_id(id)?;
    let time = |names: &[&'static str]| {
        param(pairs, names)
            .map(|(v, name)| rfc3339::parse_nanos(v).map_err(|e| malformed(name, e)))
            .transpose()
    };
    let start = time(&["startTime", "start_time"])?;
    let end = time(&["endTime", "end_time"])?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err("startTime must not be after endTime".into());
    }
    let raw = bool_param(pairs, &["rawTraces", "raw_traces"])?;
    Ok(GetRequest { id, raw })
}

/// `GET /api/v3/operations?service=&spanKind=`: the service and the kind
/// (empty: any).
pub fn operations_request(
    pairs: &[(String, String)],
) -> Result<(String, Option<SpanKind>), String> {
    let service = param(pairs, &["service"])
        .map(|(v, _)| v.to_owned())
        .ok_or("parameter service is required")?;
    let kind = match param(pairs, &["spanKind", "span_kind"]) {
        None => None,
        Some((k, name)) => Some(SpanKind::from_jaeger_name(k).ok_or_else(|| {
            malformed(
                name,
                format!("{k:?} is not one of server, client, producer, consumer, internal"),
            )
        })?),
    };
    Ok((service, kind))
}

/// `GET /api/v3/traces` and `/api/v3/trace-summaries`.
pub fn find_request(
    pairs: &[(String, String)],
    limits: &QueryLimits,
) -> Result<FindRequest, String> {
    if param(pairs, &["query.filter"]).is_some() {
        return Err(
            "parameter query.filter is not supported by this gateway; use query.serviceName, \
             query.operationName, query.attributes and query.durationMin/Max"
                .into(),
        );
    }
    let text = |names: &[&'static str]| param(pairs, names).map(|(v, _)| v.to_owned());
    let service = text(&["query.serviceName", "query.service_name"]);
    let operation = text(&["query.operationName", "query.operation_name"]);

    let mut tags = Vec::new();
    if let Some((json, name)) = param(pairs, &["query.attributes"]) {
        // Jaeger reads a map of strings (`map[string]string`).
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_str(json).map_err(|e| malformed(name, e))?;
        tags.extend(map.into_iter().map(|(key, value)| TagFilter { key, value }));
    }

    let (min, max) = match (
        param(pairs, &["query.startTimeMin", "query.start_time_min"]),
        param(pairs, &["query.startTimeMax", "query.start_time_max"]),
    ) {
        (Some(min), Some(max)) => (min, max),
        _ => return Err("query.startTimeMin and query.startTimeMax are required".into()),
    };
    let start_min = rfc3339::parse_nanos(min.0).map_err(|e| malformed(min.1, e))?;
    let start_max = rfc3339::parse_nanos(max.0).map_err(|e| malformed(max.1, e))?;
    if start_min >= start_max {
        return Err("query.startTimeMin must be before query.startTimeMax".into());
    }
    let max_window = limits.max_window_nanos();
    if start_max - start_min > max_window {
        return Err(format!(
            "parameter {}: a window of {} s is longer than the {} s this gateway serves",
            min.1,
            (start_max - start_min) / 1_000_000_000,
            max_window / 1_000_000_000
        ));
    }

    let limit = match param(
        pairs,
        &[
            "query.searchDepth",
            "query.search_depth",
            "query.num_traces",
        ],
    ) {
        None => DEFAULT_SEARCH_DEPTH,
        Some((v, name)) => match v.parse::<i64>() {
            Ok(0) => DEFAULT_SEARCH_DEPTH,
            Ok(n) if n > 0 => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
            Ok(n) => return Err(malformed(name, format!("{n} is negative"))),
            Err(e) => return Err(malformed(name, e)),
        },
    };

    let duration = |names: &[&'static str]| {
        param(pairs, names)
            .map(|(v, name)| parse_go_duration(v).map_err(|e| malformed(name, e)))
            .transpose()
    };
    let duration_min_nanos = duration(&["query.durationMin", "query.duration_min"])?;
    let duration_max_nanos = duration(&["query.durationMax", "query.duration_max"])?;
    if let (Some(lo), Some(hi)) = (duration_min_nanos, duration_max_nanos)
        && lo > hi
    {
        return Err("query.durationMin must not be above query.durationMax".into());
    }
    let raw = bool_param(pairs, &["query.rawTraces", "query.raw_traces"])?;
    Ok(FindRequest {
        query: TraceQuery {
            service,
            operation,
            span_kind: None,
            tags,
            start_min_unix_nano: start_min,
            start_max_unix_nano: start_max,
            duration_min_nanos,
            duration_max_nanos,
            limit,
            scope: Scope::All,
        },
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(q: &str) -> Result<FindRequest, String> {
        find_request(&pairs(Some(q)), &QueryLimits::default())
    }

    const WINDOW: &str =
        "query.startTimeMin=2024-01-01T00:00:00Z&query.startTimeMax=2024-01-01T01:00:00Z";
    const T0: u64 = 1_704_067_200_000_000_000;

    #[test]
    fn what_jaeger_ui_sends() {
        // packages/jaeger-ui/src/api/v3/client.ts, fetchTraceSummaries.
        let r = find(
            "query.serviceName=frontend&query.operationName=GET+%2F&\
             query.startTimeMin=2024-01-01T00%3A00%3A00.000Z&query.startTimeMax=2024-01-01T01%3A00%3A00.000Z&\
             query.searchDepth=20&query.durationMin=1.5ms&query.durationMax=2s&\
             query.attributes=%7B%22http.status_code%22%3A%22500%22%2C%22error%22%3A%22true%22%7D",
        )
        .unwrap();
        let q = r.query;
        assert_eq!(q.service.as_deref(), Some("frontend"));
        assert_eq!(q.operation.as_deref(), Some("GET /"));
        assert_eq!(
            (q.start_min_unix_nano, q.start_max_unix_nano),
            (T0, T0 + 3_600_000_000_000)
        );
        assert_eq!(q.limit, 20);
        assert_eq!(q.duration_min_nanos, Some(1_500_000));
        assert_eq!(q.duration_max_nanos, Some(2_000_000_000));
        let tags: Vec<_> = q
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(tags, [("error", "true"), ("http.status_code", "500")]);
        assert!(!r.raw);
    }

    #[test]
    fn snake_case_aliases_and_defaults() {
        let r = find(
            "query.service_name=a&query.operation_name=op&query.start_time_min=2024-01-01T00:00:00Z&\
             query.start_time_max=2024-01-01T00:00:01Z&query.num_traces=7&query.duration_min=1s&query.raw_traces=true",
        )
        .unwrap();
        assert_eq!(r.query.service.as_deref(), Some("a"));
        assert_eq!(r.query.operation.as_deref(), Some("op"));
        assert_eq!(r.query.limit, 7);
        assert_eq!(r.query.duration_min_nanos, Some(1_000_000_000));
        assert!(r.raw);
        // The canonical name wins over its alias.
        let r = find(&format!(
            "{WINDOW}&query.searchDepth=3&query.search_depth=9"
        ))
        .unwrap();
        assert_eq!(r.query.limit, 3);
        let r = find(WINDOW).unwrap();
        assert_eq!(r.query.limit, DEFAULT_SEARCH_DEPTH);
        assert_eq!(r.query.service, None);
        assert_eq!(
            find(&format!("{WINDOW}&query.searchDepth=999999"))
                .unwrap()
                .query
                .limit,
            MAX_LIMIT
        );
    }

    #[test]
    fn errors_name_the_parameter() {
        for (q, needle) in [
            ("", "query.startTimeMin and query.startTimeMax are required"),
            ("query.startTimeMin=2024-01-01T00:00:00Z", "are required"),
            (
                "query.startTimeMin=1704067200&query.startTimeMax=2024-01-01T00:00:00Z",
                "malformed parameter query.startTimeMin",
            ),
            (
                "query.start_time_min=2024-01-01T00:00:00Z&query.start_time_max=yesterday",
                "malformed parameter query.start_time_max",
            ),
            (
                "query.startTimeMin=2024-01-01T01:00:00Z&query.startTimeMax=2024-01-01T00:00:00Z",
                "must be before",
            ),
            (
                "query.startTimeMin=2024-01-01T00:00:00Z&query.startTimeMax=2024-02-01T00:00:00Z",
                "longer than",
            ),
        ] {
            let e = find(q).unwrap_err();
            assert!(e.contains(needle), "{q}: {e}");
        }
        for (extra, needle) in [
            (
                "query.searchDepth=x",
                "malformed parameter query.searchDepth",
            ),
            (
                "query.searchDepth=-1",
                "malformed parameter query.searchDepth",
            ),
            (
                "query.durationMin=5",
                "malformed parameter query.durationMin",
            ),
            (
                "query.duration_max=fast",
                "malformed parameter query.duration_max",
            ),
            (
                "query.durationMin=2s&query.durationMax=1s",
                "query.durationMin",
            ),
            (
                "query.attributes=%7B",
                "malformed parameter query.attributes",
            ),
            (
                "query.attributes=%7B%22n%22%3A5%7D",
                "malformed parameter query.attributes",
            ),
            (
                "query.rawTraces=maybe",
                "malformed parameter query.rawTraces",
            ),
            ("query.filter=%7B%7D", "query.filter is not supported"),
        ] {
            let e = find(&format!("{WINDOW}&{extra}")).unwrap_err();
            assert!(e.contains(needle), "{extra}: {e}");
        }
    }

    #[test]
    fn get_and_operations() {
        let p = |q: &str| pairs(Some(q));
        let r = get_request("0102030405060708090a0b0c0d0e0f10", &p("rawTraces=true")).unwrap();
        assert!(r.raw);
        assert_eq!(r.id.to_hex(), "0102030405060708090a0b0c0d0e0f10");
        // Base64 of the same 16 bytes, as Jaeger's TraceIDFromString accepts.
        let b64 = get_request("AQIDBAUGBwgJCgsMDQ4PEA==", &[]).unwrap();
        assert_eq!(b64.id, r.id);
        assert_eq!(get_request("AQIDBAUGBwgJCgsMDQ4PEA", &[]).unwrap().id, r.id);
        assert!(!get_request("1", &p("raw_traces=0")).unwrap().raw);
        for (id, q, needle) in [
            ("zz", "", "malformed parameter trace_id"),
            ("1", "startTime=now", "malformed parameter startTime"),
            ("1", "end_time=now", "malformed parameter end_time"),
            (
                "1",
                "startTime=2024-01-02T00:00:00Z&endTime=2024-01-01T00:00:00Z",
                "startTime",
            ),
            ("1", "rawTraces=yes", "malformed parameter rawTraces"),
        ] {
            let e = get_request(id, &p(q)).unwrap_err();
            assert!(e.contains(needle), "{id} {q}: {e}");
        }
        assert_eq!(
            operations_request(&p("service=a&spanKind=server")),
            Ok(("a".into(), Some(SpanKind::Server)))
        );
        assert_eq!(
            operations_request(&p("service=a&span_kind=")),
            Ok(("a".into(), None))
        );
        assert!(
            operations_request(&p("spanKind=server"))
                .unwrap_err()
                .contains("service")
        );
        assert!(
            operations_request(&p("service=a&spanKind=x"))
                .unwrap_err()
                .contains("spanKind")
        );
    }
}
