//! Cross-cluster verdicts: digests, holding a local drop, the gateway's
//! verdict, the timeout and the caps.

use sampling::tail::{STATUS_ERROR, STATUS_UNSET, TraceFacts};

use super::*;

fn errors_only() -> TailConfig {
    cfg(vec![policy(
        "errors",
        TailRule::StatusCode {
            status_codes: vec!["ERROR".into()],
        },
    )])
}

fn tid(t: u8) -> TraceId {
    TraceId::from_bytes(&trace_id(t)).unwrap()
}

const TIMEOUT: Duration = Duration::from_millis(2_000);

fn federated(c: &TailConfig) -> (TailSampler<ManualClock>, ManualClock) {
    let clock = ManualClock::default();
    let mut t = TailSampler::new(c, clock.clone()).unwrap();
    t.set_verdicts(Some(TIMEOUT));
    (t, clock)
}

#[test]
fn a_local_keep_is_final_and_reported() {
    let (mut t, clock) = federated(&errors_only());
    t.ingest(req(
        "svc",
        vec![
            S {
                status: 2,
                start_ms: 5,
                end_ms: 30,
                ..s(1)
            },
            s(1),
        ],
    ));
    clock.advance(Duration::from_millis(1_000));
    let r = t.tick();
    assert_eq!(kept(&r), vec![(1, "errors".into()), (1, "errors".into())]);
    assert_eq!(
        r.digests,
        vec![Digest {
            facts: TraceFacts {
                trace_id: tid(1),
                first_start: 0,
                last_end: 30_000_000,
                spans: 2,
                statuses: STATUS_ERROR | STATUS_UNSET,
                matched: 0,
            },
            bytes: r.digests[0].bytes,
            kept_by: Some("errors".into()),
            dropped: false,
        }]
    );
    assert!(r.digests[0].bytes > 0);
    assert_eq!(t.usage().awaiting, 0);
    // The keep is sent again on a new stream within a verdict timeout …
    assert_eq!(t.resend_digests(), r.digests);
    clock.advance(TIMEOUT);
    // … not after.
    assert!(t.resend_digests().is_empty());
}

#[test]
fn a_local_drop_waits_for_the_verdict_with_its_late_spans() {
    let (mut t, clock) = federated(&errors_only());
    t.ingest(req("svc", vec![s(1), s(2), s(3)]));
    clock.advance(Duration::from_millis(1_000));
    let r = t.tick();
    assert!(r.is_empty(), "nothing released: the drops wait");
    assert_eq!(r.digests.len(), 3);
    assert!(r.digests.iter().all(|d| d.kept_by.is_none()));
    assert_eq!((r.traces_dropped, r.traces_kept), (0, 0));
    assert_eq!(t.usage().awaiting, 3);
    // A late span joins the waiting trace.
    assert!(t.ingest(req("svc", vec![s(1)])).is_empty());
    assert_eq!(t.usage().spans, 4);
    // Another cluster kept trace 1: all its spans go, named by the verdict.
    let r = t.verdict(tid(1), Some("errors@east"));
    assert_eq!(
        kept(&r),
        vec![(1, "errors@east".into()), (1, "errors@east".into())]
    );
    assert_eq!((r.remote_kept, r.traces_kept), (1, 1));
    // The gateway confirms the drop of trace 2.
    let r = t.verdict(tid(2), None);
    assert_eq!(
        (r.remote_dropped, r.traces_dropped, r.spans_dropped),
        (1, 1, 1)
    );
    // Later spans follow the verdicts.
    let late = t.ingest(req("svc", vec![s(1), s(2)]));
    assert_eq!(kept(&late), vec![(1, "errors@east".into())]);
    assert_eq!(late.spans_dropped, 1);
    // Trace 3 re-sent after a reconnect: its digest is still there.
    let again = t.resend_digests();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].facts.trace_id, tid(3));
}

#[test]
fn without_a_verdict_the_local_drop_stands_at_the_timeout() {
    let (mut t, clock) = federated(&errors_only());
    t.ingest(req("svc", vec![s(1)]));
    clock.advance(Duration::from_millis(1_000));
    assert_eq!(t.tick().digests.len(), 1);
    clock.advance(TIMEOUT - Duration::from_millis(1));
    assert_eq!(t.tick().verdict_timeouts, 0, "not yet");
    clock.advance(Duration::from_millis(1));
    let r = t.tick();
    assert_eq!(
        (r.verdict_timeouts, r.traces_dropped, r.spans_dropped),
        (1, 1, 1)
    );
    assert_eq!(
        t.usage(),
        TailUsage {
            decided_cached: 1,
            ..TailUsage::default()
        }
    );
    // A keep arriving after that cannot bring the spans back, but later
    // spans follow it.
    let r = t.verdict(tid(1), Some("slow"));
    assert_eq!(r.late_verdicts, 1);
    assert_eq!(
        kept(&t.ingest(req("svc", vec![s(1)]))),
        vec![(1, "slow".into())]
    );
}

#[test]
fn when_full_the_oldest_waiting_trace_takes_its_local_verdict() {
    let mut c = errors_only();
    c.max_traces = 2;
    let (mut t, clock) = federated(&c);
    t.ingest(req("svc", vec![s(1), s(2)]));
    clock.advance(Duration::from_millis(1_000));
    t.tick();
    assert_eq!(t.usage().awaiting, 2);
    let r = t.ingest(req("svc", vec![s(3)]));
    assert_eq!((r.forced_local, r.traces_dropped), (1, 1));
    assert_eq!(t.usage().traces, 2);
    // Trace 1 was the oldest: its verdict now comes too late.
    assert_eq!(t.verdict(tid(1), Some("x")).late_verdicts, 1);
    assert_eq!(t.verdict(tid(2), Some("x")).remote_kept, 1);
}

#[test]
fn while_disconnected_drops_wait_and_both_digests_go_out_when_back() {
    let (mut t, clock) = federated(&errors_only());
    t.set_connected(false);
    t.ingest(req("svc", vec![s(1), S { status: 2, ..s(2) }]));
    clock.advance(Duration::from_millis(1_000));
    let r = t.tick();
    assert!(r.digests.is_empty(), "no stream to send them on");
    // The keep is final; the drop waits for a verdict (another cluster may
    // keep the trace).
    assert_eq!((r.traces_kept, r.traces_dropped), (1, 0));
    assert_eq!(t.usage().awaiting, 1);
    t.set_connected(true);
    let mut again = t.resend_digests();
    again.sort_by_key(|d| d.kept_by.is_none());
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].kept_by.as_deref(), Some("errors"));
    assert_eq!(again[1].kept_by, None);
    // Never reconnected in time: the local drop stands at the timeout.
    t.set_connected(false);
    clock.advance(TIMEOUT + Duration::from_millis(1));
    let r = t.tick();
    assert_eq!((r.traces_dropped, r.verdict_timeouts), (1, 1));
    // The gateway hears that this cluster's spans are gone for good.
    assert_eq!(r.digests.len(), 1);
    assert!(r.digests[0].dropped && r.digests[0].kept_by.is_none());
}

#[test]
fn verdicts_off_means_local_decisions_and_no_digests() {
    let (mut t, clock) = federated(&errors_only());
    t.set_verdicts(None);
    t.ingest(req("svc", vec![s(1), S { status: 2, ..s(2) }]));
    clock.advance(Duration::from_millis(1_000));
    let r = t.tick();
    assert!(r.digests.is_empty());
    assert_eq!((r.traces_kept, r.traces_dropped), (1, 1));
    // A flush decides waiting traces locally too.
    t.set_verdicts(Some(TIMEOUT));
    t.ingest(req("svc", vec![s(4)]));
    clock.advance(Duration::from_millis(1_000));
    t.tick();
    assert_eq!(t.usage().awaiting, 1);
    let r = t.flush();
    assert_eq!((r.traces_dropped, r.verdict_timeouts), (1, 0));
    assert_eq!(t.usage().traces, 0);
}
