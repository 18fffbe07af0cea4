use super::*;

fn key(c: &str, id: &str) -> AgentKey {
    AgentKey::new(ClusterId::new(c).expect("valid cluster"), id)
}

fn status(used: u64, cap: u64) -> AgentStatus {
    AgentStatus {
        buffer_used_bytes: used,
        buffer_capacity_bytes: cap,
        buffer_spans: 3,
        buffer_records: 1,
        oldest_record_age_ms: 0,
        version: "0.1.0".into(),
    }
}

#[test]
fn forward_and_control_update_one_entry() {
    let mut a = Agents::new(10);
    let k = key("eu", "a1");
    a.control_opened(&k, 1_000);
    a.forwarded(&k, 5, 500, Some(&status(100, 1_000)), 2_000);
    a.forwarded(&k, 7, 700, None, 3_000);
    let l = a.list(1, 4_000);
    assert_eq!(l.len(), 1);
    let v = &l[0];
    assert_eq!((v.cluster.as_str(), v.agent_id.as_str()), ("eu", "a1"));
    assert!(v.connected);
    assert_eq!(v.last_seen_ms, 4_000, "a connected agent is seen now");
    assert_eq!(v.spans_total, 12);
    let b = v.buffer.as_ref().expect("buffer reported");
    assert_eq!(
        (b.used_bytes, b.capacity_bytes, b.spans),
        (100, 1_000, Some(3))
    );
    assert_eq!(b.oldest_age_ms, None, "0 means unknown");

    a.control_closed(&k, 5_000);
    let v = &a.list(1, 9_000)[0];
    assert!(!v.connected);
    assert_eq!(v.last_seen_ms, 5_000);
}

#[test]
fn two_streams_during_a_reconnect_stay_connected_until_both_end() {
    let mut a = Agents::new(10);
    let k = key("eu", "a1");
    a.control_opened(&k, 1);
    a.control_opened(&k, 2);
    a.control_closed(&k, 3);
    assert!(a.list(1, 4)[0].connected);
    a.control_closed(&k, 5);
    assert!(!a.list(1, 6)[0].connected);
}

#[test]
fn full_registry_evicts_the_least_recently_seen_disconnected_agent() {
    let mut a = Agents::new(2);
    let (old_connected, idle, new) = (key("eu", "c"), key("eu", "i"), key("us", "n"));
    a.control_opened(&old_connected, 1);
    a.forwarded(&idle, 1, 1, None, 5);
    a.forwarded(&new, 1, 1, None, 9);
    let ids: Vec<String> = a.list(1, 10).into_iter().map(|v| v.agent_id).collect();
    assert_eq!(ids, ["c", "n"], "the idle one goes, not the connected one");
    assert_eq!(a.evicted(), 1);
    assert_eq!(a.len(), 2);
    // A stream ending for an evicted agent changes nothing.
    a.control_closed(&idle, 11);
    assert_eq!(a.len(), 2);
}

#[test]
fn rate_is_spans_per_second_over_the_last_minute() {
    let mut a = Agents::new(10);
    let k = key("eu", "a1");
    // 600 spans over the first minute.
    for s in 0..60u64 {
        a.forwarded(&k, 10, 0, None, s * 1_000);
    }
    let r = a.list(1, 60_000)[0].spans_per_sec;
    assert!((r - 9.0).abs() < 1.5, "about 10/s, got {r}");
    // Two minutes of silence: back to zero, the total stays.
    let v = &a.list(1, 180_000)[0];
    assert_eq!(v.spans_per_sec, 0.0);
    assert_eq!(v.spans_total, 600);
}

#[test]
fn a_young_agent_rate_is_over_its_age() {
    let mut r = SpanRate::default();
    r.add(100, 0);
    r.add(100, 19_000);
    let got = r.per_sec(20_000);
    assert!((got - 10.0).abs() < 0.01, "200 spans in 20 s, got {got}");
    assert_eq!(SpanRate::default().per_sec(5), 0.0);
}

#[test]
fn long_agent_ids_are_cut_at_a_char_boundary() {
    let id = "é".repeat(100);
    let k = key("eu", &id);
    assert!(k.agent_id.len() <= MAX_AGENT_ID_BYTES);
    assert!(id.starts_with(&*k.agent_id));
}
