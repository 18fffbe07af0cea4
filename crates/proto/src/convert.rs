//! OTLP → [`model::Span`], and the cluster identity stamp.

use std::sync::Arc;

use model::{
    AttrValue, CLUSTER_ATTRIBUTE, ClusterId, Event, KeyValue, Link, Resource, SERVICE_ATTRIBUTE,
    Span, SpanId, SpanKind, StatusCode, TraceId, UNKNOWN_SERVICE,
};

use crate::otlp::{self, ExportTraceServiceRequest, any_value::Value};

/// A resource claimed a cluster other than the sender's identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource claims {CLUSTER_ATTRIBUTE}={claimed:?} but the sender is cluster {expected:?}")]
pub struct ClusterMismatch {
    pub claimed: String,
    pub expected: ClusterId,
}

/// What [`stamp_cluster`] refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamped {
    /// Resources removed for claiming another cluster, and their spans.
    pub refused_resources: u64,
    pub refused_spans: u64,
    /// The first foreign claim, for the reply's message.
    pub first: Option<ClusterMismatch>,
}

/// Sets `k8s.cluster.name` = `cluster` on every resource. A resource that
/// already names a different cluster is removed (identity comes from the
/// sender's certificate, never from span data) and counted; the others are
/// kept, so one foreign claim never costs its neighbours.
pub fn stamp_cluster(req: &mut ExportTraceServiceRequest, cluster: &ClusterId) -> Stamped {
    let mut out = Stamped::default();
    req.resource_spans.retain(|rs| {
        let claim = rs
            .resource
            .as_ref()
            .and_then(|res| otlp::string_attr(&res.attributes, CLUSTER_ATTRIBUTE));
        match claim {
            Some(claimed) if claimed != cluster.as_str() => {
                out.refused_resources += 1;
                out.refused_spans += rs
                    .scope_spans
                    .iter()
                    .map(|ss| ss.spans.len() as u64)
                    .sum::<u64>();
                out.first.get_or_insert_with(|| ClusterMismatch {
                    claimed: claimed.chars().take(80).collect(),
                    expected: cluster.clone(),
                });
                false
            }
            _ => true,
        }
    });
    for rs in &mut req.resource_spans {
        let res = rs.resource.get_or_insert_with(Default::default);
        res.attributes.retain(|kv| kv.key != CLUSTER_ATTRIBUTE);
        res.attributes
            .push(otlp::string_kv(CLUSTER_ATTRIBUTE, cluster.as_str()));
    }
    out
}

/// Plain OTLP (no certificate, so no identity): every resource is stored
/// under `cluster` (`--default-cluster`), whatever `k8s.cluster.name` it
/// claims, and the number of resources whose claim was overwritten is
/// returned.
pub fn restamp_cluster(req: &mut ExportTraceServiceRequest, cluster: &ClusterId) -> u64 {
    let mut overwritten = 0;
    for rs in &mut req.resource_spans {
        let res = rs.resource.get_or_insert_with(Default::default);
        let claim = otlp::string_attr(&res.attributes, CLUSTER_ATTRIBUTE);
        if claim.is_some_and(|c| c != cluster.as_str()) {
            overwritten += 1;
        }
        res.attributes.retain(|kv| kv.key != CLUSTER_ATTRIBUTE);
        res.attributes
            .push(otlp::string_kv(CLUSTER_ATTRIBUTE, cluster.as_str()));
    }
    overwritten
}

/// For single-node use with `--otlp-trust-cluster-attribute`: each
/// resource keeps the cluster it names in `k8s.cluster.name` when that is
/// a valid cluster name, otherwise it is stamped with `default`.
pub fn stamp_default_cluster(req: &mut ExportTraceServiceRequest, default: &ClusterId) {
    for rs in &mut req.resource_spans {
        let res = rs.resource.get_or_insert_with(Default::default);
        let named = otlp::string_attr(&res.attributes, CLUSTER_ATTRIBUTE)
            .and_then(|c| ClusterId::new(c).ok());
        if named.is_none() {
            res.attributes.retain(|kv| kv.key != CLUSTER_ATTRIBUTE);
            res.attributes
                .push(otlp::string_kv(CLUSTER_ATTRIBUTE, default.as_str()));
        }
    }
}

fn attr_value(v: Option<&otlp::AnyValue>) -> AttrValue {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(Value::BoolValue(b)) => AttrValue::Bool(*b),
        Some(Value::IntValue(i)) => AttrValue::Int(*i),
        Some(Value::DoubleValue(d)) => AttrValue::Double(*d),
        Some(Value::BytesValue(b)) => AttrValue::Bytes(b.clone()),
        Some(other) => AttrValue::Str(json_text(other).to_string()),
        None => AttrValue::Str(String::new()),
    }
}

/// Arrays and maps become their JSON text, the way Jaeger displays them.
fn json_text(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => J::from(*d),
        Value::BytesValue(b) => J::String(hex::encode(b)),
        // Dictionary references only occur in OTLP profiles, never in traces.
        Value::StringValueStrindex(i) => J::from(*i),
        Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|x| x.value.as_ref().map(json_text).unwrap_or(J::Null))
                .collect(),
        ),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    let val = kv
                        .value
                        .as_ref()
                        .and_then(|x| x.value.as_ref())
                        .map(json_text)
                        .unwrap_or(J::Null);
                    (kv.key.clone(), val)
                })
                .collect(),
        ),
    }
}

fn attrs(kvs: &[otlp::KeyValue]) -> Vec<KeyValue> {
    kvs.iter()
        .map(|kv| KeyValue::new(kv.key.clone(), attr_value(kv.value.as_ref())))
        .collect()
}

/// Converts a sanitized request (see [`crate::validate::sanitize`]) into
/// model spans. Each span's cluster is its resource's `k8s.cluster.name`
/// (stamped beforehand), else `default_cluster`. Spans with invalid ids are
/// skipped (sanitize removes them first).
pub fn to_model(req: &ExportTraceServiceRequest, default_cluster: &ClusterId) -> Vec<Span> {
    let mut out = Vec::with_capacity(otlp::span_count(req));
    for rs in &req.resource_spans {
        let res_attrs = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let cluster = otlp::string_attr(res_attrs, CLUSTER_ATTRIBUTE)
            .and_then(|c| ClusterId::new(c).ok())
            .unwrap_or_else(|| default_cluster.clone());
        let service_name = otlp::string_attr(res_attrs, SERVICE_ATTRIBUTE)
            .filter(|s| !s.is_empty())
            .unwrap_or(UNKNOWN_SERVICE)
            .to_owned();
        let resource = Arc::new(Resource {
            service_name,
            attributes: attrs(res_attrs)
                .into_iter()
                .filter(|kv| kv.key != SERVICE_ATTRIBUTE)
                .collect(),
        });
        for ss in &rs.scope_spans {
            let (scope_name, scope_version) = ss
                .scope
                .as_ref()
                .map(|s| (s.name.clone(), s.version.clone()))
                .unwrap_or_default();
            for s in &ss.spans {
                let (Ok(trace_id), Ok(span_id)) = (
                    TraceId::from_bytes(&s.trace_id),
                    SpanId::from_bytes(&s.span_id),
                ) else {
                    continue;
                };
                let (status_code, status_message) = s
                    .status
                    .as_ref()
                    .map(|st| (StatusCode::from_otlp(st.code), st.message.clone()))
                    .unwrap_or((StatusCode::Unset, String::new()));
                out.push(Span {
                    trace_id,
                    span_id,
                    parent_span_id: SpanId::from_bytes(&s.parent_span_id).ok(),
                    name: s.name.clone(),
                    kind: SpanKind::from_otlp(s.kind),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                    status_code,
                    status_message,
                    attributes: attrs(&s.attributes),
                    events: s
                        .events
                        .iter()
                        .map(|e| Event {
                            time_unix_nano: e.time_unix_nano,
                            name: e.name.clone(),
                            attributes: attrs(&e.attributes),
                        })
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .filter_map(|l| {
                            Some(Link {
                                trace_id: TraceId::from_bytes(&l.trace_id).ok()?,
                                span_id: SpanId::from_bytes(&l.span_id).ok()?,
                                attributes: attrs(&l.attributes),
                            })
                        })
                        .collect(),
                    flags: s.flags,
                    trace_state: s.trace_state.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    cluster: cluster.clone(),
                    resource: Arc::clone(&resource),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{AnyValue, ArrayValue, ResourceSpans, ScopeSpans};

    fn request(cluster_attr: Option<&str>) -> ExportTraceServiceRequest {
        let mut attributes = vec![otlp::string_kv(SERVICE_ATTRIBUTE, "checkout")];
        if let Some(c) = cluster_attr {
            attributes.push(otlp::string_kv(CLUSTER_ATTRIBUTE, c));
        }
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![otlp::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        parent_span_id: vec![3; 8],
                        name: "pay".into(),
                        kind: 3,
                        start_time_unix_nano: 10,
                        end_time_unix_nano: 25,
                        attributes: vec![otlp::KeyValue {
                            key: "list".into(),
                            value: Some(AnyValue {
                                value: Some(Value::ArrayValue(ArrayValue {
                                    values: vec![AnyValue {
                                        value: Some(Value::IntValue(1)),
                                    }],
                                })),
                            }),
                            ..Default::default()
                        }],
                        status: Some(otlp::Status {
                            code: 2,
                            message: "boom".into(),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn stamps_and_converts() {
        let a = ClusterId::new("a").unwrap();
        let mut req = request(None);
        assert_eq!(stamp_cluster(&mut req, &a), Stamped::default());
        let spans = to_model(&req, &ClusterId::new("zzz").unwrap());
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.cluster, a);
        assert_eq!(s.service_name(), "checkout");
        assert_eq!(s.kind, SpanKind::Client);
        assert_eq!(s.duration_nanos(), 15);
        assert!(s.is_error());
        assert_eq!(s.status_message, "boom");
        assert_eq!(s.parent_span_id, Some(SpanId::from_array([3; 8])));
        assert_eq!(s.attributes[0].value, AttrValue::Str("[1]".into()));
        assert_eq!(
            s.resource
                .attributes
                .iter()
                .find(|kv| kv.key == CLUSTER_ATTRIBUTE)
                .map(|kv| kv.value.clone()),
            Some(AttrValue::Str("a".into()))
        );
    }

    #[test]
    fn refuses_a_foreign_cluster_claim_per_resource() {
        let a = ClusterId::new("a").unwrap();
        let mut same = request(Some("a"));
        assert_eq!(stamp_cluster(&mut same, &a), Stamped::default());
        let mut other = request(Some("b"));
        let got = stamp_cluster(&mut other, &a);
        assert_eq!((got.refused_resources, got.refused_spans), (1, 1));
        assert_eq!(got.first.map(|m| m.claimed), Some("b".into()));
        assert!(other.resource_spans.is_empty());
        // Mixed: the foreign resource goes, its neighbours are stamped.
        let mut mixed = request(None);
        mixed
            .resource_spans
            .extend(request(Some("b")).resource_spans);
        mixed
            .resource_spans
            .extend(request(Some("a")).resource_spans);
        let got = stamp_cluster(&mut mixed, &a);
        assert_eq!((got.refused_resources, got.refused_spans), (1, 1));
        let spans = to_model(&mixed, &ClusterId::new("zzz").unwrap());
        assert_eq!(spans.len(), 2);
        assert!(spans.iter().all(|s| s.cluster == a));
    }

    #[test]
    fn default_cluster_only_when_unnamed() {
        let d = ClusterId::new("default").unwrap();
        let mut named = request(Some("east"));
        stamp_default_cluster(&mut named, &d);
        assert_eq!(to_model(&named, &d)[0].cluster.as_str(), "east");
        let mut bad = request(Some("NOT VALID"));
        stamp_default_cluster(&mut bad, &d);
        assert_eq!(to_model(&bad, &d)[0].cluster.as_str(), "default");
    }

    #[test]
    fn plain_otlp_is_restamped_whatever_it_claims() {
        let d = ClusterId::new("default").unwrap();
        let mut req = request(Some("east"));
        req.resource_spans.extend(request(None).resource_spans);
        req.resource_spans
            .extend(request(Some("default")).resource_spans);
        assert_eq!(
            restamp_cluster(&mut req, &d),
            1,
            "only the east claim was overwritten"
        );
        let spans = to_model(&req, &ClusterId::new("zzz").unwrap());
        assert_eq!(spans.len(), 3);
        assert!(spans.iter().all(|s| s.cluster == d));
        for rs in &req.resource_spans {
            let attrs = &rs.resource.as_ref().unwrap().attributes;
            assert_eq!(
                attrs
                    .iter()
                    .filter(|kv| kv.key == CLUSTER_ATTRIBUTE)
                    .count(),
                1
            );
        }
    }
}
