//! `GET /api/v1/alerts`: every rule (its text, the parsed condition or the
//! parse error, its replicated status, and while it fires the link to its
//! explanation, `explain`: the UI's `/explain?…` page,
//! [`super::explain::query_string`]) and the recent notifications.
//!
//! Scoped by the caller's `Extension<Scope>` (required: a route without
//! the access layer answers 500). A rule belongs to the cluster its
//! condition selects (`cluster="…"`): a scoped caller sees the rules of
//! its clusters and their notifications. A rule without a cluster selector
//! watches every cluster's series, and a rule that does not parse selects
//! nothing known; both are shown only to a caller that sees every cluster.

use std::sync::Arc;

use axum::{Extension, Json, Router, extract::State, routing::get};
use model::access::Scope;
use serde_json::{Value, json};

use control_plane::ControlReader;
use control_state::alert::rule;

pub fn router(plane: Arc<dyn ControlReader>, ui_url: String) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .with_state((plane, ui_url))
}

/// Whether a rule's text may be shown to `scope` (see the module header).
pub fn rule_visible(expr: &str, scope: &Scope) -> bool {
    scope.is_all()
        || rule::parse(expr)
            .ok()
            .and_then(|c| c.cluster)
            .is_some_and(|c| scope.allows(&c))
}

async fn alerts(
    State((plane, ui)): State<(Arc<dyn ControlReader>, String)>,
    Extension(scope): Extension<Scope>,
) -> Json<Value> {
    let state = plane.state();
    let visible: std::collections::BTreeSet<&String> = state
        .alert_rules
        .iter()
        .filter(|(_, r)| rule_visible(&r.expr, &scope))
        .map(|(name, _)| name)
        .collect();
    let rules: Vec<Value> = state
        .alert_rules
        .iter()
        .filter(|(name, _)| visible.contains(name))
        .map(|(name, r)| {
            let parsed = rule::parse(&r.expr);
            let status = state.alert_states.get(name).cloned().unwrap_or_default();
            let explain = parsed
                .as_ref()
                .ok()
                .filter(|_| status.state == control_state::alert::AlertState::Firing)
                .and_then(|c| super::explain::query_string(c, &status))
                .map(|q| format!("{}/explain?{q}", ui.trim_end_matches('/')));
            json!({
                "name": name,
                "expr": r.expr,
                "for_secs": r.for_secs,
                "condition": parsed.as_ref().ok(),
                "error": parsed.as_ref().err(),
                "url": parsed.as_ref().ok().map(|c| super::notify::series_url(&ui, c)),
                "status": status,
                "explain": explain,
            })
        })
        .collect();
    Json(json!({
        "rules": rules,
        "notifications": state
            .notifications
            .iter()
            .rev()
            .filter(|n| visible.contains(&n.rule))
            .collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_belongs_to_the_cluster_it_selects() {
        let a = Scope::only(["a"]);
        let on_a = r#"error_ratio{cluster="a", service="web"}[5m] > 0.1"#;
        let on_b = r#"error_ratio{cluster="b"}[5m] > 0.1"#;
        let everywhere = r#"error_ratio{service="web"}[5m] > 0.1"#;
        assert!(rule::parse(on_a).is_ok(), "{:?}", rule::parse(on_a));
        assert!(rule_visible(on_a, &a));
        assert!(!rule_visible(on_b, &a));
        assert!(!rule_visible(everywhere, &a));
        assert!(!rule_visible("not a rule", &a));
        for expr in [on_a, on_b, everywhere, "not a rule"] {
            assert!(rule_visible(expr, &Scope::All), "{expr}");
        }
    }
}
