//! The audit trail: every admin write this node answered, and every
//! credential it refused.
//!
//! - Each record goes to the structured log target `meridian::audit`
//!   (`info` for a write that was done, `warn` for a refusal or a failure),
//!   so a log pipeline keeps the whole history;
//! - the last [`MAX_RECORDS`] admin writes stay in memory on the node that
//!   answered them, newest first at `GET /api/v1/admin/audit`.
//!
//! A record holds who (the principal's name and kind, never a secret),
//! what (the method and the route, and the concrete path, without its
//! query string), and the outcome (the HTTP status). Request bodies are
//! never recorded: a shard URL carries a password.
//!
//! A write through a follower is recorded by the follower, which answered
//! it (the leader sees only the Raft entry); a refused token use is logged
//! on every route, and kept in memory when it was aimed at the admin API.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use axum::{
    Json,
    extract::{MatchedPath, Query, Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use serde::{Deserialize, Serialize};

use crate::access::{Principal, PrincipalKind};
use crate::admin::ApiError;

/// Admin writes each node keeps in memory.
pub const MAX_RECORDS: usize = 1_000;
/// Records a `GET /api/v1/admin/audit` answers unless `?limit=` says.
pub const DEFAULT_LIMIT: usize = 100;
/// Longest path kept in a record (longer ones are cut at a char boundary).
const MAX_PATH_BYTES: usize = 256;

/// One admin write or refused credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Wall time the answer was sent, Unix milliseconds.
    pub at_unix_ms: u64,
    /// The node that answered.
    pub node: u64,
    /// The principal's name (`anonymous` when none was resolved).
    pub principal: String,
    /// `token`, `admin-token`, `anonymous`, or `unauthenticated` for a
    /// refused credential.
    pub principal_kind: String,
    /// The method and the route, e.g. `DELETE /api/v1/admin/tokens/{name}`.
    pub action: String,
    /// The concrete path, e.g. `/api/v1/admin/tokens/ci`.
    pub path: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// `done` (2xx), `refused` (401/403/415, the caller may not), or
    /// `failed` (any other error).
    pub outcome: String,
}

/// The in-memory trail of one node; clones share it.
#[derive(Debug, Clone)]
pub struct AuditLog {
    node: u64,
    records: Arc<Mutex<VecDeque<AuditRecord>>>,
}

impl AuditLog {
    pub fn new(node: u64) -> Self {
        Self {
            node,
            records: Arc::new(Mutex::new(VecDeque::with_capacity(64))),
        }
    }

    /// The last `limit` records, newest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditRecord> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.iter().rev().take(limit).cloned().collect()
    }

    fn push(&self, record: AuditRecord) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// Records a credential the access layer refused: logged always, kept
    /// when it was an admin write.
    pub fn refused_credential(&self, method: &Method, path: &str, reason: &str, status: u16) {
        tracing::warn!(
            target: "meridian::audit",
            event = "credential_refused",
            reason,
            method = %method,
            path = %bounded(path),
            status,
            "request refused"
        );
        if is_write(method) && path.starts_with("/api/v1/admin/") {
            self.push(AuditRecord {
                at_unix_ms: telemetry::clock::unix_ms_u64(),
                node: self.node,
                principal: "unknown".into(),
                principal_kind: "unauthenticated".into(),
                action: format!("{method} {}", bounded(path)),
                path: bounded(path),
                status,
                outcome: "refused".into(),
            });
        }
    }

    /// Records an admin write once it has been answered.
    fn write_answered(
        &self,
        principal: Option<&Principal>,
        action: String,
        path: &str,
        status: u16,
    ) {
        let outcome = match status {
            200..=299 => "done",
            401 | 403 | 415 => "refused",
            _ => "failed",
        };
        let (name, kind) = match principal {
            Some(p) => (p.name.to_string(), kind_label(p.kind)),
            None => ("anonymous".to_string(), "anonymous"),
        };
        let record = AuditRecord {
            at_unix_ms: telemetry::clock::unix_ms_u64(),
            node: self.node,
            principal: name,
            principal_kind: kind.into(),
            action,
            path: bounded(path),
            status,
            outcome: outcome.into(),
        };
        // One record, at `info` when done and `warn` otherwise.
        macro_rules! log_write {
            ($level:ident) => {
                tracing::$level!(
                    target: "meridian::audit",
                    event = "admin_write",
                    principal = %record.principal,
                    principal_kind = %record.principal_kind,
                    action = %record.action,
                    path = %record.path,
                    status,
                    outcome,
                    "admin write"
                )
            };
        }
        if outcome == "done" {
            log_write!(info);
        } else {
            log_write!(warn);
        }
        self.push(record);
    }
}

fn kind_label(kind: PrincipalKind) -> &'static str {
    kind.as_str()
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `path`, at most [`MAX_PATH_BYTES`], cut at a char boundary.
fn bounded(path: &str) -> String {
    if path.len() <= MAX_PATH_BYTES {
        return path.to_string();
    }
    let mut end = MAX_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

/// Middleware over the admin routes: records every write once answered
/// (outermost, so the admin guard's and the body checks' refusals are
/// recorded too).
pub async fn record(State(audit): State<AuditLog>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    if !is_write(&method) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |m| m.as_str().to_string());
    let principal = req.extensions().get::<Principal>().cloned();
    let response = next.run(req).await;
    audit.write_answered(
        principal.as_ref(),
        format!("{method} {}", bounded(&route)),
        &path,
        response.status().as_u16(),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    limit: Option<usize>,
}

/// `GET /api/v1/admin/audit[?limit=N]`: this node's last admin writes,
/// newest first (`limit` 1..=1,000, default 100).
pub async fn list(
    State(audit): State<AuditLog>,
    Query(params): Query<AuditParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_RECORDS).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1..={MAX_RECORDS}"
        )));
    }
    Ok(Json(serde_json::json!({
        "node": audit.node,
        "records": audit.recent(limit),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trail_is_bounded_and_newest_first() {
        let audit = AuditLog::new(7);
        for i in 0..(MAX_RECORDS + 5) {
            audit.write_answered(None, format!("POST /x/{i}"), "/x", 200);
        }
        let all = audit.recent(usize::MAX);
        assert_eq!(all.len(), MAX_RECORDS);
        assert_eq!(all[0].action, format!("POST /x/{}", MAX_RECORDS + 4));
        assert_eq!(all[MAX_RECORDS - 1].action, "POST /x/5");
        assert_eq!(all[0].node, 7);
    }

    #[test]
    fn outcomes_follow_the_status() {
        let audit = AuditLog::new(1);
        for status in [200, 403, 415, 409, 500] {
            audit.write_answered(None, "PUT /a".into(), "/a", status);
        }
        let outcomes: Vec<_> = audit.recent(5).into_iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, ["failed", "failed", "refused", "refused", "done"]);
    }

    #[test]
    fn refused_credentials_are_kept_only_for_admin_writes() {
        let audit = AuditLog::new(1);
        audit.refused_credential(&Method::GET, "/api/v1/admin/tokens", "invalid", 401);
        audit.refused_credential(&Method::POST, "/api/traces", "invalid", 401);
        audit.refused_credential(&Method::POST, "/api/v1/admin/tokens", "invalid", 401);
        let kept = audit.recent(10);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].principal_kind, "unauthenticated");
        assert_eq!(kept[0].outcome, "refused");
    }

    #[test]
    fn long_paths_are_cut_at_a_char_boundary() {
        let long = "é".repeat(300);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_PATH_BYTES + "…".len());
        assert!(cut.ends_with('…'));
    }
}
