//! What a caller's [`Scope`] hides (ARCHITECTURE.md, "Every read is
//! scoped").
//!
//! Every read handler takes the caller's scope as a required
//! `Extension<Scope>`; a route assembled without the access layer answers
//! 500, never unscoped data. Searches and lists push the scope down to the
//! store (`TraceQuery::scope`, `SpanStore::services`/`operations`); what is
//! loaded by id is cut here, by these pure functions:
//!
//! - a trace keeps only the spans of clusters in scope; a trace with none
//!   is not found (the same 404 as a missing trace);
//! - the spans left out are counted in one warning ([`hidden_warning`])
//!   that names no cluster and no service. Kept spans still carry their own
//!   parent and link ids (ids name nothing); the processes map is built
//!   from the kept spans only, so no hidden service appears in it;
//! - a graph edge is shown only when both of its ends are in scope, so an
//!   edge into a hidden cluster never names the hidden service.

use model::{Trace, access::Scope};
use store::CappedTrace;

/// The one warning of a trace that lost `hidden` spans to the scope.
pub fn hidden_warning(hidden: usize) -> String {
    if hidden == 1 {
        "1 span outside your access scope is hidden".to_owned()
    } else {
        format!("{hidden} spans outside your access scope are hidden")
    }
}

/// The spans of `trace` in `scope` and how many were left out, or `None`
/// when no span is in scope (the caller answers "not found").
pub fn visible(mut trace: Trace, scope: &Scope) -> Option<(Trace, usize)> {
    if scope.is_all() {
        return Some((trace, 0));
    }
    let before = trace.spans.len();
    trace.spans.retain(|s| scope.allows_id(&s.cluster));
    let hidden = before - trace.spans.len();
    (!trace.spans.is_empty()).then_some((trace, hidden))
}

/// [`visible`] for a trace loaded under a span cap.
pub fn visible_capped(c: CappedTrace, scope: &Scope) -> Option<(CappedTrace, usize)> {
    let truncated = c.truncated;
    visible(c.trace, scope).map(|(trace, hidden)| (CappedTrace { trace, truncated }, hidden))
}

/// Whether an edge between nodes of `parent_cluster` and `child_cluster`
/// may be shown: both ends must be in scope.
pub fn edge_visible(scope: &Scope, parent_cluster: &str, child_cluster: &str) -> bool {
    scope.allows(parent_cluster) && scope.allows(child_cluster)
}

#[cfg(test)]
mod tests {
    use store::testsuite::{SpanBuilder, trace_id};

    use super::*;

    fn cross() -> Trace {
        Trace {
            trace_id: trace_id(1),
            spans: vec![
                SpanBuilder::new(1, 1, "web").cluster("a").build(),
                SpanBuilder::new(1, 2, "api").cluster("b").parent(1).build(),
                SpanBuilder::new(1, 3, "db").cluster("b").parent(2).build(),
            ],
        }
    }

    #[test]
    fn a_scope_keeps_its_clusters_spans_and_counts_the_rest() {
        let (t, hidden) = visible(cross(), &Scope::only(["a"])).expect("a span of a");
        assert_eq!(hidden, 2);
        assert_eq!(t.spans.len(), 1);
        assert_eq!(t.spans[0].cluster.as_str(), "a");
        let (t, hidden) = visible(cross(), &Scope::All).expect("all");
        assert_eq!((t.spans.len(), hidden), (3, 0));
        assert!(visible(cross(), &Scope::only(["c"])).is_none());
        assert!(visible(cross(), &Scope::only(Vec::<String>::new())).is_none());
    }

    #[test]
    fn the_warning_counts_and_names_nothing() {
        assert_eq!(
            hidden_warning(3),
            "3 spans outside your access scope are hidden"
        );
        assert_eq!(
            hidden_warning(1),
            "1 span outside your access scope is hidden"
        );
    }

    #[test]
    fn an_edge_needs_both_ends_in_scope() {
        let a = Scope::only(["a"]);
        assert!(edge_visible(&a, "a", "a"));
        assert!(!edge_visible(&a, "a", "b") && !edge_visible(&a, "b", "a"));
        assert!(edge_visible(&Scope::All, "a", "b"));
    }
}
