//! Tempo's search answer (`tempopb.SearchResponse` in jsonpb form): ids in
//! Tempo's hex (trace ids without leading zeros, span ids 16 digits),
//! 64-bit numbers as strings, zero values left out; each match carries
//! `spanSet` and the same set in `spanSets`, as Tempo's engine writes
//! them (`pkg/traceql/engine.go`, `asTraceSearchMetadata`).

use std::collections::BTreeMap;

use model::{AttrValue, Span, Trace};
use serde_json::{Map, Value, json};

use super::{otlp, search::Outcome};
use crate::traceql::{Query, Shown};

/// What Tempo shows for a trace whose root span is missing.
pub const NO_ROOT: &str = "<root span not yet received>";

pub fn trace_id_hex(t: &Trace) -> String {
    let hex = t.trace_id.to_hex();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

fn shown_value(shown: &Shown, s: &Span) -> Option<(String, AttrValue)> {
    let find = |list: &[model::KeyValue], k: &str| {
        list.iter()
            .find(|kv| kv.key == k)
            .map(|kv| kv.value.clone())
    };
    let resource = |k: &str| {
        find(&s.resource.attributes, k).or_else(|| {
            (k == model::SERVICE_ATTRIBUTE).then(|| AttrValue::Str(s.service_name().to_owned()))
        })
    };
    Some(match shown {
        Shown::Status => (
            "status".into(),
            AttrValue::Str(status_name(s.status_code).into()),
        ),
        Shown::StatusMessage => (
            "statusMessage".into(),
            AttrValue::Str(s.status_message.clone()),
        ),
        Shown::Kind => (
            "kind".into(),
            AttrValue::Str(s.kind.jaeger_name().unwrap_or("unspecified").into()),
        ),
        Shown::Cluster => ("cluster".into(), AttrValue::Str(s.cluster.as_str().into())),
        Shown::Span(k) => (k.clone(), find(&s.attributes, k)?),
        Shown::Resource(k) => (k.clone(), resource(k)?),
        Shown::Any(k) => (k.clone(), find(&s.attributes, k).or_else(|| resource(k))?),
    })
}

pub fn status_name(c: model::StatusCode) -> &'static str {
    match c {
        model::StatusCode::Unset => "unset",
        model::StatusCode::Ok => "ok",
        model::StatusCode::Error => "error",
    }
}

fn span_json(s: &Span, shown: &[Shown]) -> Value {
    let mut m = Map::new();
    m.insert("spanID".into(), json!(s.span_id.to_hex()));
    if !s.name.is_empty() {
        m.insert("name".into(), json!(s.name));
    }
    m.insert(
        "startTimeUnixNano".into(),
        json!(s.start_unix_nano.to_string()),
    );
    m.insert(
        "durationNanos".into(),
        json!(s.duration_nanos().to_string()),
    );
    let attrs: Vec<_> = shown
        .iter()
        .filter_map(|sh| shown_value(sh, s))
        .map(|(k, v)| otlp::key_value(&k, &v))
        .collect();
    if !attrs.is_empty() {
        m.insert("attributes".into(), json!(otlp::kvs_json(&attrs)));
    }
    Value::Object(m)
}

/// One trace of a search answer.
pub fn metadata(t: &Trace, matched: &[usize], shown: &[Shown], spss: usize) -> Value {
    let root = t
        .spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .min_by_key(|s| s.start_unix_nano);
    let start = t.spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
    let end = t.spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
    let duration_ms = u32::try_from(end.saturating_sub(start) / 1_000_000).unwrap_or(u32::MAX);
    let mut stats: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for s in &t.spans {
        let e = stats.entry(s.service_name()).or_default();
        e.0 += 1;
        e.1 += u64::from(s.is_error());
    }
    let spans: Vec<Value> = matched
        .iter()
        .take(spss)
        .filter_map(|&i| t.spans.get(i))
        .map(|s| span_json(s, shown))
        .collect();
    let set = json!({"spans": spans, "matched": matched.len()});
    let mut m = Map::new();
    m.insert("traceID".into(), json!(trace_id_hex(t)));
    m.insert(
        "rootServiceName".into(),
        json!(root.map_or(NO_ROOT, |r| r.service_name())),
    );
    m.insert(
        "rootTraceName".into(),
        json!(root.map_or(NO_ROOT, |r| r.name.as_str())),
    );
    m.insert("startTimeUnixNano".into(), json!(start.to_string()));
    if duration_ms > 0 {
        m.insert("durationMs".into(), json!(duration_ms));
    }
    m.insert("spanSet".into(), set.clone());
    m.insert("spanSets".into(), json!([set]));
    let stats: Map<String, Value> = stats
        .into_iter()
        .map(|(svc, (n, errors))| {
            let mut st = Map::new();
            st.insert("spanCount".into(), json!(n));
            if errors > 0 {
                st.insert("errorCount".into(), json!(errors));
            }
            (svc.to_owned(), Value::Object(st))
        })
        .collect();
    m.insert("serviceStats".into(), Value::Object(stats));
    Value::Object(m)
}

pub fn search_response(query: &Query, out: &Outcome, spss: usize) -> Value {
    let shown = query.shown();
    let traces: Vec<Value> = out
        .hits
        .iter()
        .map(|h| metadata(&h.trace, &h.matched.spans, &shown, spss))
        .collect();
    let mut metrics = Map::new();
    if out.inspected > 0 {
        metrics.insert("inspectedTraces".into(), json!(out.inspected));
    }
    let mut body = json!({"traces": traces, "metrics": metrics});
    if !out.warnings.is_empty() {
        // Not in Tempo's shape; clients ignore it, people reading it do not.
        body["warnings"] = json!(out.warnings);
    }
    body
}

/// Tempo's legacy `tags=` (logfmt `k=v k2="v 2"`) as a TraceQL filter:
/// each pair must hold on one span, as an attribute of any scope.
pub fn tags_to_traceql(text: &str) -> Result<String, String> {
    let mut conds = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("invalid tags: expected key=value in {rest:?}"))?;
        let key = rest[..eq].trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        {
            return Err(format!("invalid tags: bad key {key:?}"));
        }
        rest = &rest[eq + 1..];
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let close = q
                .find('"')
                .ok_or("invalid tags: unterminated quoted value")?;
            value = &q[..close];
            rest = &q[close + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = &rest[..end];
            rest = &rest[end..];
        }
        rest = rest.trim_start();
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        conds.push(match key {
            "name" => format!("name = \"{escaped}\""),
            // Tempo's tag search reads the service from the resource.
            "service.name" => format!("resource.service.name = \"{escaped}\""),
            "status.code" if value == "error" || value == "2" => "status = error".to_owned(),
            "error" if value == "true" => "status = error".to_owned(),
            k => format!(".{k} = \"{escaped}\""),
        });
        if conds.len() > crate::traceql::MAX_CONDITIONS {
            return Err("invalid tags: too many".into());
        }
    }
    if conds.is_empty() {
        return Ok("{}".into());
    }
    Ok(format!("{{ {} }}", conds.join(" && ")))
}
