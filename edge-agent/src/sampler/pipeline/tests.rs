//! The tail sampler following a changed policy.

use std::sync::Arc;

use model::sampling::{HeadConfig, SamplingConfig};
use proto::otlp::{ExportTraceServiceRequest, Resource, ResourceSpans, ScopeSpans, Span};

use super::tail_state::TailState;

fn req(ids: &[u64]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![proto::otlp::string_kv("service.name", "svc")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: ids
                    .iter()
                    .map(|r| {
                        let mut tid = [0xabu8; 16];
                        tid[8..].copy_from_slice(&r.to_be_bytes());
                        Span {
                            trace_id: tid.to_vec(),
                            span_id: vec![1; 8],
                            name: "op".into(),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn with_tail(name: &str) -> Arc<SamplingConfig> {
    use model::sampling::{TailConfig, TailPolicy, TailRule};
    Arc::new(SamplingConfig {
        head: HeadConfig::default(),
        tail: Some(TailConfig {
            decision_wait_ms: 3_600_000,
            max_traces: 100,
            max_bytes: 1 << 20,
            policies: vec![TailPolicy {
                name: name.into(),
                rule: TailRule::AlwaysSample,
            }],
        }),
    })
}

#[test]
fn the_tail_sampler_follows_a_changed_policy() {
    let first = with_tail("first");
    let mut st = TailState::new(Arc::clone(&first)).unwrap();
    let held = st.sampler.as_mut().unwrap().ingest(req(&[1, 2]));
    assert_eq!(held.spans_kept, 0, "held for the decision window");
    // The same policy (or an equal one) changes nothing.
    assert!(st.follow(&first).is_empty());
    let equal = Arc::new((*first).clone());
    assert!(st.follow(&equal).is_empty());
    assert_eq!(st.sampler.as_ref().unwrap().usage().spans, 2);
    // A new tail section: held traces are decided by the old policies.
    let second = with_tail("second");
    let r = st.follow(&second);
    assert_eq!((r.spans_kept, r.traces_kept), (2, 2));
    assert_eq!(st.sampler.as_ref().unwrap().usage().spans, 0);
    st.sampler.as_mut().unwrap().ingest(req(&[3]));
    // No tail section: the last held trace goes, the sampler too.
    let r = st.follow(&Arc::new(SamplingConfig::default()));
    assert_eq!(r.spans_kept, 1);
    assert!(st.sampler.is_none());
    assert!(sampling::check(&second).is_ok());
}
