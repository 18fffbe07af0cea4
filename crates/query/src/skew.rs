//! Query-time clock-skew correction. Stored timestamps are never changed;
//! a trace is shown on the reference cluster's clock when it needs it.

use std::collections::{BTreeMap, HashMap};

use model::{SpanId, Trace};

/// A cluster's estimated offset as the query applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// `reference time = local time − offset_ns`.
    pub offset_ns: i64,
    pub samples: u64,
}

/// Whether some child span in another cluster than its parent starts
/// before it or ends after it.
pub fn has_cross_cluster_violation(trace: &Trace) -> bool {
    let by_id: HashMap<SpanId, usize> = trace
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    trace.spans.iter().any(|c| {
        c.parent_span_id
            .and_then(|p| by_id.get(&p))
            .map(|&i| &trace.spans[i])
            .is_some_and(|p| {
                p.cluster != c.cluster
                    && (c.start_unix_nano < p.start_unix_nano || c.end_unix_nano > p.end_unix_nano)
            })
    })
}

fn shift(t: u64, by: i64) -> u64 {
    u64::try_from((i128::from(t) - i128::from(by)).max(0)).unwrap_or(u64::MAX)
}

/// Moves every span of a cluster with a known, non-zero offset onto the
/// reference clock — only when the trace shows a child before or outside
/// its parent across clusters. Returns one warning per corrected cluster
/// (empty: nothing changed). `reference` is how the warnings name the
/// reference cluster (`cluster a`, or a neutral label when the caller's
/// scope hides it).
pub fn correct(
    trace: &mut Trace,
    reference: &str,
    offsets: &BTreeMap<String, Applied>,
) -> Vec<String> {
    if !has_cross_cluster_violation(trace) {
        return Vec::new();
    }
    let mut used: BTreeMap<&str, Applied> = BTreeMap::new();
    for span in &mut trace.spans {
        let Some(o) = offsets.get(span.cluster.as_str()).copied() else {
            continue;
        };
        if o.offset_ns == 0 {
            continue;
        }
        span.start_unix_nano = shift(span.start_unix_nano, o.offset_ns);
        span.end_unix_nano = shift(span.end_unix_nano, o.offset_ns);
        for e in &mut span.events {
            e.time_unix_nano = shift(e.time_unix_nano, o.offset_ns);
        }
        used.insert(
            offsets
                .get_key_value(span.cluster.as_str())
                .map_or("", |(k, _)| k.as_str()),
            o,
        );
    }
    used.into_iter()
        .map(|(cluster, o)| {
            format!(
                "clock skew: cluster {cluster}'s times moved by {:+.1} ms onto {reference}'s clock \
                 (estimated offset {:+.1} ms from {} client/server pairs); ?raw=true shows the stored times",
                -(o.offset_ns as f64) / 1e6,
                o.offset_ns as f64 / 1e6,
                o.samples
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use store::testsuite::SpanBuilder;

    use super::*;

    #[test]
    fn a_child_before_its_parent_is_moved_onto_the_reference_clock() {
        // b's clock is 250 ms ahead: its server span seems to end after
        // its client.
        let ms = 1_000_000u64;
        let client = SpanBuilder::new(1, 1, "web")
            .cluster("a")
            .at_unix(1_000 * ms, 100)
            .build();
        let server = SpanBuilder::new(1, 2, "api")
            .cluster("b")
            .parent(1)
            .at_unix(1_260 * ms, 50)
            .build();
        let mut trace = Trace {
            trace_id: client.trace_id,
            spans: vec![client, server],
        };
        let offsets = BTreeMap::from([
            (
                "b".to_owned(),
                Applied {
                    offset_ns: 250 * ms as i64,
                    samples: 40,
                },
            ),
            (
                "a".to_owned(),
                Applied {
                    offset_ns: 0,
                    samples: 40,
                },
            ),
        ]);
        assert!(has_cross_cluster_violation(&trace));
        let warnings = correct(&mut trace, "cluster a", &offsets);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("clock skew: cluster b"),
            "{warnings:?}"
        );
        assert_eq!(trace.spans[1].start_unix_nano, 1_010 * ms);
        assert!(!has_cross_cluster_violation(&trace));
        // A consistent trace is left alone.
        assert!(correct(&mut trace, "a", &offsets).is_empty());
        assert_eq!(trace.spans[1].start_unix_nano, 1_010 * ms);
    }
}
