//! `GET /api/v1/alerts`: every rule (its text, the parsed condition or the
//! parse error, its replicated status) and the recent notifications.

use std::sync::Arc;

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

use control_plane::ControlReader;
use control_state::alert::rule;

pub fn router(plane: Arc<dyn ControlReader>, ui_url: String) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .with_state((plane, ui_url))
}

async fn alerts(State((plane, ui)): State<(Arc<dyn ControlReader>, String)>) -> Json<Value> {
    let state = plane.state();
    let rules: Vec<Value> = state
        .alert_rules
        .iter()
        .map(|(name, r)| {
            let parsed = rule::parse(&r.expr);
            json!({
                "name": name,
                "expr": r.expr,
                "for_secs": r.for_secs,
                "condition": parsed.as_ref().ok(),
                "error": parsed.as_ref().err(),
                "url": parsed.as_ref().ok().map(|c| super::notify::series_url(&ui, c)),
                "status": state.alert_states.get(name).cloned().unwrap_or_default(),
            })
        })
        .collect();
    Json(json!({
        "rules": rules,
        "notifications": state.notifications.iter().rev().collect::<Vec<_>>(),
    }))
}
