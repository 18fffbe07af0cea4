//! Latency attribution: each trace's critical path, split into the self
//! time of each (service, cluster) and the gaps between clusters.
//!
//! The critical path is walked backwards from the end of the root span
//! (the longest span without a parent in the trace): at each span, the
//! child that ends last before the cursor is on the path, the time
//! between its end and the cursor is the span's own, and the walk goes
//! into the child and continues from the child's start. Children are
//! clipped to their parent's window, so a child that (after skew
//! correction) still pokes out of its parent adds nothing.
//!
//! Time of a parent that sits right next to a child in another cluster
//! (between the child's end and the cursor, and before the child's start
//! down to the next child) is not the parent's work: it is the request
//! and the answer crossing between the clusters. It goes to the gap
//! `parent cluster → child cluster` instead of the parent's self time.
//!
//! The walk goes at most [`MAX_DEPTH`] spans deep; below, a span's whole
//! window is its self time.

use std::collections::{BTreeMap, HashMap};

use model::{SpanId, Trace};

/// Deepest span the walk enters.
pub const MAX_DEPTH: usize = 256;

/// One trace's critical path, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathTimes {
    /// Self time on the path by (service, cluster).
    pub self_ns: BTreeMap<(String, String), u64>,
    /// Gap time by (from cluster, to cluster).
    pub gaps_ns: BTreeMap<(String, String), u64>,
    /// The root span's duration.
    pub duration_ns: u64,
}

struct Walk<'a> {
    trace: &'a Trace,
    /// Children of each span index, latest end first.
    children: Vec<Vec<usize>>,
    out: PathTimes,
}

impl Walk<'_> {
    fn add(&mut self, span: usize, gap_to: Option<usize>, ns: u64) {
        if ns == 0 {
            return;
        }
        let s = &self.trace.spans[span];
        let key = match gap_to {
            Some(c) => (
                s.cluster.as_str().to_owned(),
                self.trace.spans[c].cluster.as_str().to_owned(),
            ),
            None => {
                *self
                    .out
                    .self_ns
                    .entry((s.service_name().to_owned(), s.cluster.as_str().to_owned()))
                    .or_default() += ns;
                return;
            }
        };
        *self.out.gaps_ns.entry(key).or_default() += ns;
    }

    fn walk(&mut self, i: usize, lo: u64, hi: u64, depth: usize) {
        let mut cursor = hi;
        // The cross-cluster child just walked: the time before its start
        // is the gap into it.
        let mut after_cross: Option<usize> = None;
        if depth < MAX_DEPTH {
            let kids = std::mem::take(&mut self.children[i]);
            for &c in &kids {
                if cursor <= lo {
                    break;
                }
                let child = &self.trace.spans[c];
                let c_end = child.end_unix_nano.min(cursor);
                let c_start = child.start_unix_nano.max(lo);
                if c_end <= c_start {
                    continue;
                }
                let cross = child.cluster != self.trace.spans[i].cluster;
                let gap = if cross { Some(c) } else { after_cross };
                self.add(i, gap, cursor - c_end);
                self.walk(c, c_start, c_end, depth + 1);
                cursor = c_start;
                after_cross = cross.then_some(c);
            }
            self.children[i] = kids;
        }
        self.add(i, after_cross, cursor.saturating_sub(lo));
    }
}

/// The critical path of `trace` (empty for a trace without spans).
pub fn critical_path(trace: &Trace) -> PathTimes {
    let index: HashMap<SpanId, usize> = trace
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children = vec![Vec::new(); trace.spans.len()];
    let mut roots = Vec::new();
    for (i, s) in trace.spans.iter().enumerate() {
        match s.parent_span_id.and_then(|p| index.get(&p)) {
            Some(&p) if p != i => children[p].push(i),
            _ => roots.push(i),
        }
    }
    for kids in &mut children {
        kids.sort_by_key(|&c| std::cmp::Reverse(trace.spans[c].end_unix_nano));
    }
    let Some(root) = roots.into_iter().max_by_key(|&r| {
        let s = &trace.spans[r];
        (s.duration_nanos(), std::cmp::Reverse(s.start_unix_nano))
    }) else {
        return PathTimes::default();
    };
    let r = &trace.spans[root];
    let mut w = Walk {
        trace,
        children,
        out: PathTimes {
            duration_ns: r.duration_nanos(),
            ..PathTimes::default()
        },
    };
    w.walk(root, r.start_unix_nano, r.end_unix_nano, 0);
    w.out
}

#[cfg(test)]
mod tests {
    use model::Span;
    use store::testsuite::{MS, SpanBuilder, trace_id};

    use super::*;

    fn span(id: u64, parent: Option<u64>, svc: &str, cluster: &str, at: u64, dur: u64) -> Span {
        let mut b = SpanBuilder::new(1, id, svc).cluster(cluster).at(at, dur);
        if let Some(p) = parent {
            b = b.parent(p);
        }
        b.build()
    }

    fn key(a: &str, b: &str) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }

    #[test]
    fn self_time_is_what_no_child_covers_on_the_path() {
        // web 0..100 → api 10..60 → db 20..50; a concurrent cache 22..30
        // ends inside db's time, so it is off the path.
        let t = Trace {
            trace_id: trace_id(1),
            spans: vec![
                span(1, None, "web", "e", 0, 100),
                span(2, Some(1), "api", "e", 10, 50),
                span(3, Some(2), "db", "e", 20, 30),
                span(4, Some(2), "cache", "e", 22, 8),
            ],
        };
        let p = critical_path(&t);
        assert_eq!(p.duration_ns, 100 * MS);
        assert_eq!(p.self_ns[&key("web", "e")], 50 * MS);
        // api: 50..60 and 10..20.
        assert_eq!(p.self_ns[&key("api", "e")], 20 * MS);
        assert_eq!(p.self_ns[&key("db", "e")], 30 * MS);
        assert!(!p.self_ns.contains_key(&key("cache", "e")));
        assert!(p.gaps_ns.is_empty());
        let total: u64 = p.self_ns.values().sum();
        assert_eq!(total, p.duration_ns);
    }

    #[test]
    fn time_around_a_child_in_another_cluster_is_the_gap() {
        // A client span in us-east 0..100 waits for the server in ap-south
        // 30..70: 30 ms out, 30 ms back.
        let t = Trace {
            trace_id: trace_id(1),
            spans: vec![
                span(1, None, "web", "us-east", 0, 110),
                span(2, Some(1), "web", "us-east", 5, 100),
                span(3, Some(2), "reco", "ap-south", 35, 40),
            ],
        };
        let p = critical_path(&t);
        assert_eq!(p.gaps_ns[&key("us-east", "ap-south")], 60 * MS);
        assert_eq!(p.self_ns[&key("reco", "ap-south")], 40 * MS);
        assert_eq!(p.self_ns[&key("web", "us-east")], 10 * MS);
        let total: u64 = p.self_ns.values().chain(p.gaps_ns.values()).sum();
        assert_eq!(total, p.duration_ns);
    }

    #[test]
    fn children_outside_their_parent_are_clipped_and_cycles_end() {
        let mut looped = span(2, Some(3), "b", "e", 0, 10);
        looped.parent_span_id = Some(looped.span_id);
        let t = Trace {
            trace_id: trace_id(1),
            spans: vec![
                span(1, None, "a", "e", 10, 20),
                span(3, Some(1), "c", "e", 0, 50),
                looped,
            ],
        };
        let p = critical_path(&t);
        // The root is the longest parentless span: c's parent exists, so
        // a (20 ms) or b (self-parented, 10 ms): a.
        assert_eq!(p.duration_ns, 20 * MS);
        assert_eq!(p.self_ns[&key("c", "e")], 20 * MS);
        assert_eq!(
            critical_path(&Trace {
                trace_id: trace_id(1),
                spans: vec![]
            }),
            PathTimes::default()
        );
    }
}
