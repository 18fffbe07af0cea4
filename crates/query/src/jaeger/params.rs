//! Query-string parsing for `/api/traces` (pure; table-tested).

use model::{SpanKind, TagFilter, TraceId, TraceQuery};

use crate::duration::parse_go_duration;

/// Traces per search when `limit` is absent or 0 (Jaeger's default).
pub const DEFAULT_LIMIT: usize = 100;
/// The most traces one search returns; larger limits are capped.
pub const MAX_LIMIT: usize = 1_500;
/// Search window when neither `start` nor `lookback` is given.
pub const DEFAULT_LOOKBACK_NANOS: u64 = 3_600 * 1_000_000_000;

/// What `/api/traces` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TracesRequest {
    Search(TraceQuery),
    ById(Vec<TraceId>),
}

/// Decoded `key=value` pairs (repeats kept, in order).
pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn micros(pairs: &[(String, String)], key: &str) -> Result<Option<u64>, String> {
    first(pairs, key)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                format!("parameter '{key}' must be microseconds since the epoch, got {v:?}")
            })
        })
        .transpose()
}

/// `spanKind` (`server`, `client`, …); empty means any.
pub fn span_kind(pairs: &[(String, String)]) -> Result<Option<SpanKind>, String> {
    match first(pairs, "spanKind") {
        None => Ok(None),
        Some(k) => SpanKind::from_jaeger_name(k).map(Some).ok_or_else(|| {
            format!(
                "parameter 'spanKind' must be one of server, client, producer, consumer, internal; got {k:?}"
            )
        }),
    }
}

/// Parses `/api/traces` parameters; `now_nanos` is injected for tests.
pub fn traces_request(pairs: &[(String, String)], now_nanos: u64) -> Result<TracesRequest, String> {
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, v)| k == "traceID" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    if !ids.is_empty() {
        return ids
            .iter()
            .map(|id| TraceId::from_hex(id).map_err(|e| format!("parameter 'traceID' {id:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(TracesRequest::ById);
    }
    let end = micros(pairs, "end")?
        .map(|us| us.saturating_mul(1_000))
        .unwrap_or(now_nanos);
    let lookback = match first(pairs, "lookback") {
        Some(l) if l != "custom" => {
            Some(parse_lookback(l).map_err(|e| format!("parameter 'lookback': {e}"))?)
        }
        _ => None,
    };
    let start = match micros(pairs, "start")? {
        Some(us) => us.saturating_mul(1_000),
        None => end.saturating_sub(lookback.unwrap_or(DEFAULT_LOOKBACK_NANOS)),
    };
    if start > end {
        return Err("parameter 'start' is after 'end'".into());
    }
    let duration = |key: &str| {
        first(pairs, key)
            .map(|v| parse_go_duration(v).map_err(|e| format!("parameter '{key}': {e}")))
            .transpose()
    };
    let duration_min_nanos = duration("minDuration")?;
    let duration_max_nanos = duration("maxDuration")?;
    if let (Some(lo), Some(hi)) = (duration_min_nanos, duration_max_nanos)
        && lo > hi
    {
        return Err("parameter 'minDuration' is above 'maxDuration'".into());
    }
    let limit = match first(pairs, "limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(0) => DEFAULT_LIMIT,
            Ok(n) => n.min(MAX_LIMIT),
            Err(_) => {
                return Err(format!(
                    "parameter 'limit' must be a non-negative integer, got {v:?}"
                ));
            }
        },
    };
    let mut tags = Vec::new();
    if let Some(json) = first(pairs, "tags") {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| format!("parameter 'tags' must be a JSON object of strings: {e}"))?;
        for (key, value) in map {
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            tags.push(TagFilter { key, value });
        }
    }
    for (k, v) in pairs.iter().filter(|(k, _)| k == "tag") {
        let (key, value) = v
            .split_once(':')
            .ok_or_else(|| format!("parameter 'tag' must be key:value, got {v:?}"))?;
        tags.push(TagFilter {
            key: key.to_owned(),
            value: value.to_owned(),
        });
        let _ = k;
    }
    Ok(TracesRequest::Search(TraceQuery {
        service: first(pairs, "service").map(str::to_owned),
        operation: first(pairs, "operation").map(str::to_owned),
        span_kind: span_kind(pairs)?,
        tags,
        start_min_unix_nano: start,
        start_max_unix_nano: end,
        duration_min_nanos,
        duration_max_nanos,
        limit,
    }))
}

/// Jaeger UI's lookback values: Go durations plus `d` (days).
fn parse_lookback(text: &str) -> Result<u64, String> {
    if let Some(days) = text.strip_suffix('d') {
        return days
            .parse::<u64>()
            .map(|d| d.saturating_mul(86_400 * 1_000_000_000))
            .map_err(|_| format!("{text:?} is not a lookback (e.g. 1h, 2d)"));
    }
    parse_go_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn parse(q: &str) -> Result<TracesRequest, String> {
        traces_request(&pairs(Some(q)), NOW)
    }

    fn search(q: &str) -> TraceQuery {
        match parse(q) {
            Ok(TracesRequest::Search(s)) => s,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let s = search("service=a");
        assert_eq!(s.service.as_deref(), Some("a"));
        assert_eq!(s.limit, DEFAULT_LIMIT);
        assert_eq!(s.start_max_unix_nano, NOW);
        assert_eq!(s.start_min_unix_nano, NOW - DEFAULT_LOOKBACK_NANOS);
        assert!(s.tags.is_empty());
    }

    #[test]
    fn full_search() {
        let s = search(
            "service=a&operation=GET%20%2F&start=1000&end=2000&minDuration=1.5ms&maxDuration=2s\
             &limit=20&tags=%7B%22error%22%3A%22true%22%2C%22n%22%3A5%7D&tag=http.route:/x:y&spanKind=server",
        );
        assert_eq!(s.operation.as_deref(), Some("GET /"));
        assert_eq!(
            (s.start_min_unix_nano, s.start_max_unix_nano),
            (1_000_000, 2_000_000)
        );
        assert_eq!(s.duration_min_nanos, Some(1_500_000));
        assert_eq!(s.duration_max_nanos, Some(2_000_000_000));
        assert_eq!(s.limit, 20);
        assert_eq!(s.span_kind, Some(SpanKind::Server));
        let tags: Vec<(&str, &str)> = s
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(
            tags,
            [("error", "true"), ("n", "5"), ("http.route", "/x:y")]
        );
    }

    #[test]
    fn lookback_and_limits() {
        let s = search("service=a&lookback=2d");
        assert_eq!(s.start_min_unix_nano, NOW - 2 * 86_400 * 1_000_000_000);
        assert_eq!(search("limit=0").limit, DEFAULT_LIMIT);
        assert_eq!(search("limit=999999").limit, MAX_LIMIT);
        assert_eq!(search("lookback=custom&start=5").start_min_unix_nano, 5_000);
    }

    #[test]
    fn by_id() {
        assert_eq!(
            parse("traceID=a1&traceID=00000000000000000000000000000b2"),
            Ok(TracesRequest::ById(vec![
                TraceId::from_hex("a1").unwrap(),
                TraceId::from_hex("b2").unwrap()
            ]))
        );
    }

    #[test]
    fn errors_name_the_parameter() {
        for (q, param) in [
            ("start=x", "start"),
            ("end=-1", "end"),
            ("minDuration=fast", "minDuration"),
            ("maxDuration=5", "maxDuration"),
            ("minDuration=2s&maxDuration=1s", "minDuration"),
            ("limit=-1", "limit"),
            ("tags=%7B", "tags"),
            ("tags=%5B%5D", "tags"),
            ("tag=nocolon", "tag"),
            ("spanKind=weird", "spanKind"),
            ("traceID=zz", "traceID"),
            ("lookback=forever", "lookback"),
            ("start=3000&end=2000", "start"),
        ] {
            let err = parse(q).unwrap_err();
            assert!(err.contains(param), "{q}: {err}");
        }
    }
}
