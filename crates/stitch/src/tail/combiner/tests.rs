use super::*;
use model::sampling::{TailPolicy, TailRule};
use sampling::tail::{STATUS_ERROR, STATUS_OK};

const WINDOW: Duration = Duration::from_millis(1_000);

fn combiner(max_open: usize) -> (Combiner, Instant) {
    let t0 = Instant::now();
    let c = Combiner::new(
        CombinerConfig {
            window: WINDOW,
            max_open,
            decided_max: 10_000,
            decided_ttl: Duration::from_secs(60),
        },
        t0,
    );
    (c, t0)
}

fn tid(n: u8) -> TraceId {
    TraceId::from_bytes(&[n; 16]).unwrap()
}

fn digest(cluster: &str, kept_by: Option<&str>) -> ClusterDigest {
    ClusterDigest {
        cluster: cluster.into(),
        statuses: STATUS_OK,
        first_start: 1_000,
        last_end: 2_000,
        spans: 2,
        bytes: 500,
        kept_by: kept_by.map(str::to_owned),
    }
}

fn keep(p: &str) -> Verdict {
    Some(Arc::from(p))
}

#[test]
fn a_keep_anywhere_decides_at_once_for_every_relay() {
    let (mut c, t0) = combiner(100);
    let mut forced = Vec::new();
    assert_eq!(
        c.offer(1, tid(1), digest("a", None), t0, &mut forced),
        Offered::Open
    );
    assert_eq!(
        c.offer(2, tid(1), digest("b", None), t0, &mut forced),
        Offered::Open
    );
    let got = c.offer(3, tid(1), digest("c", Some("errors")), t0, &mut forced);
    assert_eq!(
        got,
        Offered::Decided(Decision {
            trace_id: tid(1),
            verdict: keep("errors@c"),
            by: DecidedBy::Cluster,
            relays: [1, 2, 3].into(),
        })
    );
    assert_eq!(c.open_traces(), 0);
    // Its window entry is stale now: nothing more to decide.
    assert!(c.expire(t0 + WINDOW).is_empty());
    assert!(forced.is_empty());
}

#[test]
fn drops_wait_for_the_window_and_late_digests_get_the_stored_verdict() {
    let (mut c, t0) = combiner(100);
    let mut forced = Vec::new();
    c.offer(1, tid(1), digest("a", None), t0, &mut forced);
    c.offer(
        1,
        tid(2),
        digest("a", None),
        t0 + Duration::from_millis(500),
        &mut forced,
    );
    c.offer(
        2,
        tid(1),
        digest("b", None),
        t0 + Duration::from_millis(900),
        &mut forced,
    );
    assert!(c.expire(t0 + WINDOW - Duration::from_millis(1)).is_empty());
    let d = c.expire(t0 + WINDOW);
    assert_eq!(
        d,
        vec![Decision {
            trace_id: tid(1),
            verdict: None,
            by: DecidedBy::None,
            relays: [1, 2].into(),
        }]
    );
    // A late drop digest: the stored drop, at once.
    let late = c.offer(3, tid(1), digest("c", None), t0 + WINDOW, &mut forced);
    assert_eq!(late, Offered::Late(None));
    // A late keep upgrades it for later reporters.
    let late = c.offer(
        3,
        tid(1),
        digest("c", Some("slow")),
        t0 + WINDOW,
        &mut forced,
    );
    assert_eq!(late, Offered::Late(keep("slow@c")));
    assert_eq!(
        c.offer(1, tid(1), digest("a", None), t0 + WINDOW, &mut forced),
        Offered::Late(keep("slow@c"))
    );
    // Trace 2's window started later.
    assert_eq!(c.expire(t0 + Duration::from_millis(1_500)).len(), 1);
}

#[test]
fn the_gateway_policy_judges_the_combined_trace() {
    let (mut c, t0) = combiner(100);
    let policy = TailConfig {
        decision_wait_ms: 0,
        max_traces: 10,
        max_bytes: 1 << 20,
        policies: vec![
            TailPolicy {
                name: "slow-across".into(),
                rule: TailRule::Latency { threshold_ms: 1 },
            },
            TailPolicy {
                name: "big".into(),
                rule: TailRule::SpanCount {
                    min_spans: 5,
                    max_spans: None,
                },
            },
        ],
    };
    c.set_policy(Some(&policy)).unwrap();
    let mut forced = Vec::new();
    // Each cluster's part is short; together the trace spans 1.5 ms.
    let mut a = digest("a", None);
    a.first_start = 0;
    a.last_end = 500_000;
    let mut b = digest("b", None);
    b.first_start = 1_000_000;
    b.last_end = 1_500_000;
    c.offer(1, tid(1), a, t0, &mut forced);
    c.offer(1, tid(1), b, t0, &mut forced);
    // Two short parts of 2 + 2 + 2 spans: big, not slow.
    for cl in ["a", "b", "c"] {
        c.offer(1, tid(2), digest(cl, None), t0, &mut forced);
    }
    // Errors alone do not keep: no such gateway policy.
    let mut e = digest("a", None);
    e.statuses = STATUS_ERROR;
    c.offer(1, tid(3), e, t0, &mut forced);
    let mut d = c.expire(t0 + WINDOW);
    d.sort_by_key(|d| d.trace_id);
    let got: Vec<_> = d.iter().map(|d| (d.verdict.clone(), d.by)).collect();
    assert_eq!(
        got,
        vec![
            (keep("slow-across"), DecidedBy::GatewayPolicy),
            (keep("big"), DecidedBy::GatewayPolicy),
            (None, DecidedBy::None),
        ]
    );
    // An invalid policy is refused and the combiner falls back.
    let mut bad = policy.clone();
    bad.policies[0].rule = TailRule::StatusCode {
        status_codes: vec!["MAYBE".into()],
    };
    assert!(c.set_policy(Some(&bad)).is_err());
}

#[test]
fn the_open_set_is_bounded_and_the_oldest_is_decided_early() {
    let (mut c, t0) = combiner(2);
    let mut forced = Vec::new();
    for n in 1..=3 {
        c.offer(
            7,
            tid(n),
            digest("a", None),
            t0 + Duration::from_millis(u64::from(n)),
            &mut forced,
        );
    }
    assert_eq!(c.open_traces(), 2);
    assert_eq!(forced.len(), 1);
    assert_eq!(forced[0].trace_id, tid(1));
    assert_eq!(forced[0].relays, [7].into());
    // A repeated digest (a re-sent one) replaces, it does not add spans.
    c.offer(8, tid(2), digest("a", None), t0, &mut forced);
    assert_eq!(c.open_traces(), 2);
    let d = c.expire(t0 + WINDOW + Duration::from_millis(5));
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].relays, [7, 8].into());
}
