//! Synthetic multi-cluster traffic: each trace starts at `frontend` in the
//! first cluster and crosses into the others (client span in one cluster,
//! server span as its child in the next), like a request through a mesh.

use proto::otlp::{
    AnyValue, ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, ScopeSpans, Span,
    Status, any_value::Value,
};

/// Services by hop; hop `i` runs in cluster `i % clusters`.
const HOPS: [(&str, &str); 4] = [
    ("frontend", "GET /checkout"),
    ("checkout", "PlaceOrder"),
    ("payments", "Charge"),
    ("ledger", "Record"),
];

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A deterministic generator (xorshift) so demo and tests are repeatable.
#[derive(Debug, Clone)]
pub struct Traffic {
    state: u64,
    clusters: usize,
}

impl Traffic {
    pub fn new(seed: u64, clusters: usize) -> Self {
        Self {
            state: seed | 1,
            clusters: clusters.max(1),
        }
    }

    fn next(&mut self) -> u64 {
        proto::corpus::xorshift(&mut self.state)
    }

    /// One trace, as one request per cluster (index = cluster). Returns the
    /// trace id too.
    pub fn trace(&mut self, now_unix_nano: u64) -> ([u8; 16], Vec<ExportTraceServiceRequest>) {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&self.next().to_be_bytes());
        trace_id[8..].copy_from_slice(&self.next().to_be_bytes());
        let error_hop = self
            .next()
            .is_multiple_of(10)
            .then(|| (self.next() % HOPS.len() as u64) as usize);
        let mut per_cluster: Vec<Vec<(&str, Span)>> = vec![Vec::new(); self.clusters];
        let mut parent: Vec<u8> = Vec::new();
        let mut start = now_unix_nano;
        let total_ms = 20 + self.next() % 200;
        let mut remaining = total_ms * 1_000_000;
        for (i, (service, op)) in HOPS.iter().enumerate() {
            let cluster = i % self.clusters;
            let server_id = self.next().to_be_bytes().to_vec();
            let err = error_hop == Some(i);
            let mut attributes = vec![kv("demo.hop", Value::IntValue(i as i64))];
            if i == 0 {
                attributes.push(kv("http.request.method", Value::StringValue("GET".into())));
                attributes.push(kv(
                    "http.response.status_code",
                    Value::IntValue(if err { 500 } else { 200 }),
                ));
            }
            per_cluster[cluster].push((
                service,
                Span {
                    trace_id: trace_id.to_vec(),
                    span_id: server_id.clone(),
                    parent_span_id: parent.clone(),
                    name: (*op).to_owned(),
                    kind: 2,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + remaining,
                    attributes,
                    status: err.then(|| Status {
                        code: 2,
                        message: format!("{service} failed"),
                    }),
                    ..Default::default()
                },
            ));
            if i + 1 == HOPS.len() {
                break;
            }
            // The outgoing call: a client span in this cluster.
            let client_id = self.next().to_be_bytes().to_vec();
            let offset = remaining / 10;
            let (next_service, next_op) = HOPS[i + 1];
            per_cluster[cluster].push((
                service,
                Span {
                    trace_id: trace_id.to_vec(),
                    span_id: client_id.clone(),
                    parent_span_id: server_id,
                    name: format!("call {next_service}/{next_op}"),
                    kind: 3,
                    start_time_unix_nano: start + offset,
                    end_time_unix_nano: start + remaining - offset,
                    attributes: vec![kv("peer.service", Value::StringValue(next_service.into()))],
                    ..Default::default()
                },
            ));
            parent = client_id;
            start += offset + offset / 5;
            remaining = remaining - 2 * offset - offset / 5;
        }
        let requests = per_cluster
            .into_iter()
            .map(|spans| {
                let mut by_service: Vec<ResourceSpans> = Vec::new();
                for (service, span) in spans {
                    match by_service.iter_mut().find(|rs| {
                        rs.resource
                            .as_ref()
                            .and_then(|r| proto::otlp::string_attr(&r.attributes, "service.name"))
                            == Some(service)
                    }) {
                        Some(rs) => rs.scope_spans[0].spans.push(span),
                        None => by_service.push(ResourceSpans {
                            resource: Some(Resource {
                                attributes: vec![
                                    kv("service.name", Value::StringValue(service.into())),
                                    kv("k8s.namespace.name", Value::StringValue("shop".into())),
                                ],
                                ..Default::default()
                            }),
                            scope_spans: vec![ScopeSpans {
                                spans: vec![span],
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                    }
                }
                ExportTraceServiceRequest {
                    resource_spans: by_service,
                }
            })
            .collect();
        (trace_id, requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_crosses_every_cluster_with_linked_parents() {
        let mut t = Traffic::new(7, 3);
        let (id, reqs) = t.trace(1_000_000_000);
        assert_eq!(reqs.len(), 3);
        let spans: Vec<&Span> = reqs
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .collect();
        assert_eq!(spans.len(), 7, "4 server spans + 3 client spans");
        assert!(spans.iter().all(|s| s.trace_id == id));
        let roots = spans.iter().filter(|s| s.parent_span_id.is_empty()).count();
        assert_eq!(roots, 1);
        for s in spans.iter().filter(|s| !s.parent_span_id.is_empty()) {
            let parent = spans
                .iter()
                .find(|p| p.span_id == s.parent_span_id)
                .unwrap();
            assert!(parent.start_time_unix_nano <= s.start_time_unix_nano);
            assert!(parent.end_time_unix_nano >= s.end_time_unix_nano);
        }
    }
}
