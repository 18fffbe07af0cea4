//! `q=` on `/api/traces`: TraceQL on Meridian's own search (issue 19),
//! for the UI's TraceQL box and for scripts that already speak Jaeger's
//! v1 API. Pure; the handler runs the parsed query with
//! [`crate::tempo::search::run`] and answers the hits as Jaeger traces.
//!
//! The window and limit come from the Jaeger parameters (`start`, `end`,
//! `lookback`, `limit`) under the same bounds as the form search, the limit
//! further capped at [`search::MAX_LIMIT`]. The form's filters are refused
//! beside `q` rather than dropped or silently combined: each has a TraceQL
//! spelling, which the message names.

use crate::{
    tempo::search,
    traceql::{self, Query},
    window::QueryLimits,
};

use super::params::{limit, window};

/// A TraceQL search asked of `/api/traces`.
#[derive(Debug, Clone)]
pub struct TraceQlSearch {
    pub query: Query,
    /// The window, unix nanoseconds (inclusive).
    pub start: u64,
    pub end: u64,
    pub limit: usize,
}

/// The form search's filters, each refused beside `q`, with what to write
/// in the query instead.
pub const FORM_FILTERS: &[(&str, &str)] = &[
    ("service", r#"{ resource.service.name = "…" }"#),
    ("operation", r#"{ name = "…" }"#),
    ("tags", r#"{ span.key = "value" }"#),
    ("tag", r#"{ span.key = "value" }"#),
    ("spanKind", "{ kind = server }"),
    ("minDuration", "{ duration >= 100ms }"),
    ("maxDuration", "{ duration <= 2s }"),
    ("traceID", "a search by id, without q"),
];

/// The TraceQL search in `pairs`, `None` without a (non-empty) `q`.
pub fn request(
    pairs: &[(String, String)],
    now_nanos: u64,
    limits: &QueryLimits,
) -> Result<Option<TraceQlSearch>, String> {
    let Some(text) = pairs
        .iter()
        .find(|(k, v)| k == "q" && !v.is_empty())
        .map(|(_, v)| v.as_str())
    else {
        return Ok(None);
    };
    if pairs.iter().filter(|(k, _)| k == "q").count() > 1 {
        return Err("parameter 'q' given more than once".into());
    }
    for (name, instead) in FORM_FILTERS {
        if pairs.iter().any(|(k, v)| k == name && !v.is_empty()) {
            return Err(format!(
                "parameter 'q' (TraceQL) cannot be combined with '{name}'; write it in the query: {instead}"
            ));
        }
    }
    let query = traceql::parse(text).map_err(|e| e.to_string())?;
    let (start, end) = window(pairs, now_nanos, limits)?;
    Ok(Some(TraceQlSearch {
        query,
        start,
        end,
        limit: limit(pairs)?.min(search::MAX_LIMIT),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::jaeger::params::{DEFAULT_LIMIT, DEFAULT_LOOKBACK_NANOS, pairs};

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn parse(q: &str) -> Result<Option<TraceQlSearch>, String> {
        request(&pairs(Some(q)), NOW, &QueryLimits::default())
    }

    fn search(q: &str) -> TraceQlSearch {
        parse(q)
            .unwrap()
            .unwrap_or_else(|| panic!("{q}: no TraceQL"))
    }

    #[test]
    fn without_q_it_is_the_form_search() {
        assert!(parse("service=a").unwrap().is_none());
        assert!(parse("q=&service=a").unwrap().is_none());
    }

    #[test]
    fn the_window_and_limit_are_the_form_s() {
        let s = search("q=%7B%7D");
        assert_eq!((s.start, s.end), (NOW - DEFAULT_LOOKBACK_NANOS, NOW));
        assert_eq!(s.limit, DEFAULT_LIMIT);
        let s = search("q=%7B%7D&start=1000&end=2000&limit=7");
        assert_eq!((s.start, s.end, s.limit), (1_000_000, 2_000_000, 7));
        assert_eq!(search("q={}&lookback=2h").start, NOW - 7_200_000_000_000);
        // The form's cap is 1,500; a TraceQL search returns at most 1,000.
        assert_eq!(search("q={}&limit=1500").limit, search::MAX_LIMIT);
        // The form's bounds hold.
        for (q, param) in [
            ("q={}&lookback=8d", "lookback"),
            ("q={}&start=3000&end=2000", "start"),
            ("q={}&limit=-1", "limit"),
            ("q={}&end=x", "end"),
        ] {
            let err = parse(q).err().unwrap();
            assert!(err.contains(param), "{q}: {err}");
        }
    }

    #[test]
    fn the_query_is_parsed_as_traceql() {
        let s = search(
            "q=%7B%20resource.service.name%20%3D%20%22checkout%22%20%26%26%20status%20%3D%20error%20%7D",
        );
        let plan = s.query.plan();
        assert_eq!(plan.service.as_deref(), Some("checkout"));
        // What the UI's form-to-TraceQL writes for an unusual tag name.
        let q: String =
            form_urlencoded::byte_serialize(br#"{ ."odd-key" = 1 && .user = "a b" }"#).collect();
        assert!(parse(&format!("q={q}")).unwrap().is_some());
    }

    #[test]
    fn refusals_name_the_reason() {
        for (q, want) in [
            (
                "q=%7B%20%7D%20%7C%20count()%20%3E%201",
                "| (pipeline) is not supported",
            ),
            ("q=%7B%20name%20%3D%20%7D", "TraceQL:"),
            ("q={}&q={}", "more than once"),
            (
                "q={}&service=a",
                "'service'; write it in the query: { resource.service.name",
            ),
            ("q={}&operation=GET", "'operation'"),
            ("q={}&tags=%7B%7D", "'tags'"),
            ("q={}&tag=a:b", "'tag'"),
            ("q={}&spanKind=server", "{ kind = server }"),
            ("q={}&minDuration=1ms", "{ duration >= 100ms }"),
            ("q={}&maxDuration=1ms", "'maxDuration'"),
            ("q={}&traceID=a1", "'traceID'"),
        ] {
            let err = parse(q).err().unwrap_or_else(|| panic!("{q} accepted"));
            assert!(err.contains(want), "{q}: {err}");
        }
        // Empty form fields (as a form submits them) are no conflict.
        assert!(search("q={}&service=&tags=").limit > 0);
    }
}
