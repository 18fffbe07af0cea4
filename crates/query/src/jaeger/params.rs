//! Query-string parsing for `/api/traces` (pure; table-tested).

use model::{SpanKind, TagFilter, TraceId, TraceQuery};

use super::traceql_param::{self, TraceQlSearch};
use crate::{
    duration::parse_go_duration,
    window::{QueryLimits, micros_to_nanos},
};

/// Traces per search when `limit` is absent or 0 (Jaeger's default).
pub const DEFAULT_LIMIT: usize = 100;
/// The most traces one search returns; larger limits are capped.
pub const MAX_LIMIT: usize = 1_500;
/// Search window when neither `start` nor `lookback` is given.
pub const DEFAULT_LOOKBACK_NANOS: u64 = 3_600 * 1_000_000_000;

/// What `/api/traces` was asked for.
#[derive(Debug, Clone)]
pub enum TracesRequest {
    Search(TraceQuery),
    ById(Vec<TraceId>),
    /// `q=`: a TraceQL search ([`super::traceql_param`]).
    TraceQl(Box<TraceQlSearch>),
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

fn nanos(pairs: &[(String, String)], key: &'static str) -> Result<Option<u64>, String> {
    micros(pairs, key)?
        .map(|us| micros_to_nanos(key, us).map_err(|e| e.to_string()))
        .transpose()
}

/// Parses `/api/traces` parameters; `now_nanos` is injected for tests.
/// The window (`end − start`, or `lookback`) is at most
/// `limits.max_window`; at most `limits.max_trace_ids` trace ids.
pub fn traces_request(
    pairs: &[(String, String)],
    now_nanos: u64,
    limits: &QueryLimits,
) -> Result<TracesRequest, String> {
    if let Some(search) = traceql_param::request(pairs, now_nanos, limits)? {
        return Ok(TracesRequest::TraceQl(Box::new(search)));
    }
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, v)| k == "traceID" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    if ids.len() > limits.max_trace_ids {
        return Err(format!(
            "parameter 'traceID' given {} times; at most {} per request",
            ids.len(),
            limits.max_trace_ids
        ));
    }
    if !ids.is_empty() {
        return ids
            .iter()
            .map(|id| TraceId::from_hex(id).map_err(|e| format!("parameter 'traceID' {id:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(TracesRequest::ById);
    }
    let (start, end) = window(pairs, now_nanos, limits)?;
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
        limit: limit(pairs)?,
        scope: model::access::Scope::All,
    }))
}

/// The search window `(start, end)` in unix nanoseconds from `start`,
/// `end` (µs) and `lookback`: at most `limits.max_window`, default the
/// last [`DEFAULT_LOOKBACK_NANOS`].
pub(crate) fn window(
    pairs: &[(String, String)],
    now_nanos: u64,
    limits: &QueryLimits,
) -> Result<(u64, u64), String> {
    let max_window = limits.max_window_nanos();
    let end = nanos(pairs, "end")?.unwrap_or(now_nanos);
    let lookback = match first(pairs, "lookback") {
        Some(l) if l != "custom" => {
            Some(parse_lookback(l).map_err(|e| format!("parameter 'lookback': {e}"))?)
        }
        _ => None,
    };
    let start = match nanos(pairs, "start")? {
        Some(start) => start,
        None => {
            let lookback = lookback.unwrap_or(DEFAULT_LOOKBACK_NANOS);
            if lookback > max_window {
                return Err(too_long("lookback", lookback, max_window));
            }
            end.checked_sub(lookback)
                .ok_or("parameter 'lookback' reaches before the epoch")?
        }
    };
    if start > end {
        return Err("parameter 'start' is after 'end'".into());
    }
    if end - start > max_window {
        return Err(too_long("start", end - start, max_window));
    }
    Ok((start, end))
}

/// `limit`: [`DEFAULT_LIMIT`] when absent or 0, capped at [`MAX_LIMIT`].
pub(crate) fn limit(pairs: &[(String, String)]) -> Result<usize, String> {
    Ok(match first(pairs, "limit") {
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
    })
}

fn too_long(param: &str, window_nanos: u64, max_nanos: u64) -> String {
    format!(
        "parameter '{param}': a window of {} s is longer than the {} s this gateway serves",
        window_nanos / 1_000_000_000,
        max_nanos / 1_000_000_000
    )
}

/// Jaeger UI's lookback values: Go durations plus `d` (days).
fn parse_lookback(text: &str) -> Result<u64, String> {
    if let Some(days) = text.strip_suffix('d') {
        return days
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not a lookback (e.g. 1h, 2d)"))?
            .checked_mul(86_400 * 1_000_000_000)
            .ok_or_else(|| format!("{text:?} is out of range"));
    }
    parse_go_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn parse(q: &str) -> Result<TracesRequest, String> {
        traces_request(&pairs(Some(q)), NOW, &QueryLimits::default())
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
        assert_eq!(
            search("lookback=custom&start=5&end=10").start_min_unix_nano,
            5_000
        );
    }

    #[test]
    fn windows_are_capped_at_the_limit() {
        let week_us = 7 * 86_400 * 1_000_000u64;
        let s = search(&format!("start={}&end={}", 1_000, 1_000 + week_us));
        assert_eq!(
            s.start_max_unix_nano - s.start_min_unix_nano,
            week_us * 1_000
        );
        assert_eq!(
            search("lookback=7d").start_min_unix_nano,
            NOW - week_us * 1_000
        );
        let small = QueryLimits {
            max_window: std::time::Duration::from_secs(60),
            ..QueryLimits::default()
        };
        let err = traces_request(&pairs(Some("lookback=2m")), NOW, &small).unwrap_err();
        assert!(err.contains("'lookback'"), "{err}");
        // The default lookback (1 h) is over a 1 min limit too.
        assert!(traces_request(&pairs(Some("service=a")), NOW, &small).is_err());
    }

    #[test]
    fn trace_ids_are_capped() {
        let q = |n: usize| {
            (1..=n)
                .map(|i| format!("traceID={i:x}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert!(matches!(parse(&q(1_000)), Ok(TracesRequest::ById(ids)) if ids.len() == 1_000));
        let err = parse(&q(1_001)).unwrap_err();
        assert!(err.contains("'traceID'") && err.contains("1001"), "{err}");
    }

    #[test]
    fn by_id() {
        let Ok(TracesRequest::ById(ids)) =
            parse("traceID=a1&traceID=00000000000000000000000000000b2")
        else {
            panic!("not by id");
        };
        assert_eq!(
            ids,
            [
                TraceId::from_hex("a1").unwrap(),
                TraceId::from_hex("b2").unwrap()
            ]
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
            ("end=18446744073709551615", "end"),
            ("start=18446744073709551615", "start"),
            ("lookback=8d", "lookback"),
            ("lookback=99999999999999999d", "lookback"),
            ("lookback=2562047h", "lookback"),
            ("start=0", "start"),
            ("start=1&end=1000000000000", "start"),
        ] {
            let err = parse(q).unwrap_err();
            assert!(err.contains(param), "{q}: {err}");
        }
    }
}
