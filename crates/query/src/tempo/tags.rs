//! Tag names and values for Grafana's query builder and autocomplete.
//! Tempo answers from recent blocks; Meridian answers from the newest
//! [`SAMPLE_TRACES`] traces of the window that match `q` (any trace when
//! absent), cut to the caller's scope, and from the store's service index
//! for `service.name`. Every list is capped at [`MAX_VALUES`].

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    Extension, Json,
    extract::{Path, RawQuery, State},
    response::{IntoResponse, Response},
};
use model::{AttrValue, Trace, access::Scope};
use serde_json::json;

use super::{Api, bad_request, search, store_error, window};
use crate::{jaeger::params::pairs, traceql};

/// Traces sampled for names and values.
pub const SAMPLE_TRACES: usize = 200;
/// Most names per scope, and most values, in one answer.
pub const MAX_VALUES: usize = 1_000;

/// The intrinsics Meridian's TraceQL evaluates.
pub const INTRINSICS: [&str; 18] = [
    "cluster",
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:kind",
    "span:name",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
    "resource.service.name",
];

async fn sample(api: &Api, scope: &Scope, q: Option<&str>) -> Result<Vec<Trace>, Response> {
    let p = pairs(q);
    let (start, end) = window(&p, &api.limits).map_err(bad_request)?;
    let text = p
        .iter()
        .find(|(k, v)| k == "q" && !v.trim().is_empty())
        .map_or("{}", |(_, v)| v.as_str());
    let query = traceql::parse(text).map_err(|e| bad_request(e.to_string()))?;
    let out = search::run(api.store.as_ref(), &query, start, end, SAMPLE_TRACES, scope)
        .await
        .map_err(|e| store_error("tags", &e))?;
    Ok(out.hits.into_iter().map(|h| h.trace).collect())
}

struct Names {
    span: BTreeSet<String>,
    resource: BTreeSet<String>,
}

fn names(traces: &[Trace]) -> Names {
    let mut n = Names {
        span: BTreeSet::new(),
        resource: BTreeSet::from([model::SERVICE_ATTRIBUTE.to_owned()]),
    };
    for s in traces.iter().flat_map(|t| &t.spans) {
        for kv in &s.attributes {
            if n.span.len() < MAX_VALUES {
                n.span.insert(kv.key.clone());
            }
        }
        for kv in &s.resource.attributes {
            if n.resource.len() < MAX_VALUES {
                n.resource.insert(kv.key.clone());
            }
        }
    }
    n
}

fn scope_param(q: Option<&str>) -> Result<Option<String>, String> {
    match pairs(q).into_iter().find(|(k, _)| k == "scope") {
        None => Ok(None),
        Some((_, v)) if v.is_empty() || v == "all" => Ok(None),
        Some((_, v))
            if [
                "span",
                "resource",
                "intrinsic",
                "event",
                "link",
                "instrumentation",
            ]
            .contains(&v.as_str()) =>
        {
            Ok(Some(v))
        }
        Some((_, v)) => Err(format!("invalid scope {v:?}")),
    }
}

/// `GET /api/search/tags` → `{"tagNames": […]}`.
pub async fn names_v1(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let which = match scope_param(q.as_deref()) {
        Ok(w) => w,
        Err(e) => return bad_request(e),
    };
    let traces = match sample(&api, &scope, q.as_deref()).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let n = names(&traces);
    let mut all: BTreeSet<String> = BTreeSet::new();
    match which.as_deref() {
        Some("span") => all = n.span,
        Some("resource") => all = n.resource,
        Some("intrinsic") => all.extend(INTRINSICS.iter().map(|s| (*s).to_owned())),
        Some(_) => {}
        None => {
            all.extend(n.span);
            all.extend(n.resource);
        }
    }
    let names: Vec<String> = all.into_iter().take(MAX_VALUES).collect();
    Json(json!({"tagNames": names, "metrics": {}})).into_response()
}

/// `GET /api/v2/search/tags` → `{"scopes": [{name, tags}]}`.
pub async fn names_v2(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    RawQuery(q): RawQuery,
) -> Response {
    let which = match scope_param(q.as_deref()) {
        Ok(w) => w,
        Err(e) => return bad_request(e),
    };
    let traces = match sample(&api, &scope, q.as_deref()).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let n = names(&traces);
    let intrinsic: Vec<String> = INTRINSICS
        .iter()
        .filter(|s| !s.contains('.'))
        .map(|s| (*s).to_owned())
        .collect();
    let mut scopes = Vec::new();
    for (name, tags) in [
        ("resource", n.resource.into_iter().collect::<Vec<_>>()),
        ("span", n.span.into_iter().collect()),
        ("intrinsic", intrinsic),
    ] {
        if which.as_deref().is_none_or(|w| w == name) {
            scopes.push(json!({"name": name, "tags": tags}));
        }
    }
    Json(json!({"scopes": scopes, "metrics": {}})).into_response()
}

/// Where a value comes from: a TraceQL identifier or a plain tag name.
enum Source {
    Span(String),
    Resource(String),
    Any(String),
    Name,
    Status,
    Kind,
    Cluster,
    RootName,
    RootService,
}

fn source(tag: &str, v2: bool) -> Source {
    if !v2 {
        return match tag {
            "name" => Source::Name,
            t => Source::Any(t.to_owned()),
        };
    }
    if let Some(k) = tag.strip_prefix("span.") {
        return Source::Span(k.to_owned());
    }
    if let Some(k) = tag.strip_prefix("resource.") {
        return Source::Resource(k.to_owned());
    }
    if let Some(k) = tag.strip_prefix('.') {
        return Source::Any(k.to_owned());
    }
    match tag {
        "name" | "span:name" => Source::Name,
        "status" | "span:status" => Source::Status,
        "kind" | "span:kind" => Source::Kind,
        "cluster" => Source::Cluster,
        "rootName" | "trace:rootName" => Source::RootName,
        "rootServiceName" | "trace:rootService" => Source::RootService,
        t => Source::Any(t.to_owned()),
    }
}

fn typed(v: &AttrValue) -> (&'static str, String) {
    match v {
        AttrValue::Str(s) => ("string", s.clone()),
        AttrValue::Int(i) => ("int", i.to_string()),
        AttrValue::Double(d) => ("float", d.to_string()),
        AttrValue::Bool(b) => ("bool", b.to_string()),
        AttrValue::Bytes(_) => ("string", v.to_search_string()),
    }
}

async fn values(
    api: &Api,
    scope: &Scope,
    tag: &str,
    q: Option<&str>,
    v2: bool,
) -> Result<BTreeMap<String, &'static str>, Response> {
    let src = source(tag, v2);
    let mut out: BTreeMap<String, &'static str> = BTreeMap::new();
    match &src {
        Source::Status => {
            for s in ["error", "ok", "unset"] {
                out.insert(s.into(), "keyword");
            }
            return Ok(out);
        }
        Source::Kind => {
            for k in [
                "client",
                "consumer",
                "internal",
                "producer",
                "server",
                "unspecified",
            ] {
                out.insert(k.into(), "keyword");
            }
            return Ok(out);
        }
        _ => {}
    }
    let service = matches!(&src, Source::Resource(k) | Source::Any(k) if k == model::SERVICE_ATTRIBUTE)
        || matches!(src, Source::RootService);
    let no_filter = pairs(q)
        .iter()
        .all(|(k, v)| k != "q" || v.trim().is_empty() || v.trim() == "{}");
    if service && no_filter {
        let names = api
            .store
            .services(scope)
            .await
            .map_err(|e| store_error("tag values", &e))?;
        out.extend(names.into_iter().take(MAX_VALUES).map(|n| (n, "string")));
        return Ok(out);
    }
    let traces = sample(api, scope, q).await?;
    for t in &traces {
        for s in &t.spans {
            if out.len() >= MAX_VALUES {
                return Ok(out);
            }
            let find = |list: &[model::KeyValue], k: &str| {
                list.iter()
                    .find(|kv| kv.key == k)
                    .map(|kv| typed(&kv.value))
            };
            let res = |k: &str| {
                find(&s.resource.attributes, k).or_else(|| {
                    (k == model::SERVICE_ATTRIBUTE).then(|| ("string", s.service_name().to_owned()))
                })
            };
            let found = match &src {
                Source::Span(k) => find(&s.attributes, k),
                Source::Resource(k) => res(k),
                Source::Any(k) => find(&s.attributes, k).or_else(|| res(k)),
                Source::Name => Some(("string", s.name.clone())),
                Source::Cluster => Some(("string", s.cluster.as_str().to_owned())),
                Source::RootName | Source::RootService => {
                    if s.parent_span_id.is_some() {
                        None
                    } else if matches!(src, Source::RootName) {
                        Some(("string", s.name.clone()))
                    } else {
                        Some(("string", s.service_name().to_owned()))
                    }
                }
                Source::Status | Source::Kind => None,
            };
            if let Some((ty, v)) = found {
                out.insert(v, ty);
            }
        }
    }
    Ok(out)
}

/// `GET /api/search/tag/{tag}/values` → `{"tagValues": ["…"]}`.
pub async fn values_v1(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    match values(&api, &scope, &tag, q.as_deref(), false).await {
        Ok(v) => Json(json!({"tagValues": v.into_keys().collect::<Vec<_>>(), "metrics": {}}))
            .into_response(),
        Err(r) => r,
    }
}

/// `GET /api/v2/search/tag/{tag}/values` → `{"tagValues": [{type, value}]}`.
pub async fn values_v2(
    State(api): State<Api>,
    Extension(scope): Extension<Scope>,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    match values(&api, &scope, &tag, q.as_deref(), true).await {
        Ok(v) => {
            let list: Vec<_> = v
                .into_iter()
                .map(|(value, ty)| json!({"type": ty, "value": value}))
                .collect();
            Json(json!({"tagValues": list, "metrics": {}})).into_response()
        }
        Err(r) => r,
    }
}
