//! Cluster-wide settings: registered clusters, sampling policies,
//! retention and alert rules. Puts replace, deletes of absent keys answer
//! `unchanged`.

use std::{collections::BTreeMap, sync::Arc};

use axum::{Json, extract::State};
use model::{ClusterId, RetentionPolicy, sampling::SamplingConfig};
use serde::{Deserialize, Serialize};

use super::{
    error::{ApiError, Refusal, WriteAnswer, answer},
    extract::{Consistency, JsonBody, Param, RawBody, is_empty, parse_json},
    read,
};
use crate::raft::{Command, node::ControlPlane};
use control_state::{AlertRule, RegisteredCluster};

type Plane = State<Arc<ControlPlane>>;

/// Proposes `command`; the state machine's refusals are the request's
/// fault (400).
async fn write(plane: &ControlPlane, command: Command) -> Result<Json<WriteAnswer>, ApiError> {
    let applied = plane.write(command).await?;
    answer(applied, Refusal::Invalid).map(Json)
}

fn cluster_name(name: &str) -> Result<(), ApiError> {
    ClusterId::new(name)
        .map(drop)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The identity a cluster's agents present by default.
pub fn default_identity(cluster: &str) -> String {
    format!("spiffe://meridian/cluster/{cluster}")
}

pub async fn clusters(
    State(plane): Plane,
    consistency: Consistency,
) -> Result<Json<BTreeMap<String, RegisteredCluster>>, ApiError> {
    Ok(Json(read(&plane, consistency).await?.clusters.clone()))
}

/// `PUT clusters/{name}`: the body may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutCluster {
    #[serde(default)]
    pub identity: Option<String>,
}

/// The record to register for cluster `name` (pure).
pub fn cluster_record(name: &str, body: &[u8]) -> Result<RegisteredCluster, ApiError> {
    cluster_name(name)?;
    let req: PutCluster = if is_empty(body) {
        PutCluster::default()
    } else {
        parse_json(body)?
    };
    let identity = req.identity.unwrap_or_else(|| default_identity(name));
    let uri = identity
        .split_once("://")
        .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
    if !uri || identity.chars().any(char::is_whitespace) {
        return Err(ApiError::BadRequest(format!(
            "identity {identity:?}: expected a URI such as {}",
            default_identity(name)
        )));
    }
    Ok(RegisteredCluster { identity })
}

pub async fn put_cluster(
    State(plane): Plane,
    Param(name): Param,
    RawBody(body): RawBody,
) -> Result<Json<WriteAnswer>, ApiError> {
    let cluster = cluster_record(&name, &body)?;
    write(&plane, Command::PutCluster { name, cluster }).await
}

pub async fn delete_cluster(
    State(plane): Plane,
    Param(name): Param,
) -> Result<Json<WriteAnswer>, ApiError> {
    write(&plane, Command::DeleteCluster { name }).await
}

/// A policy's key: a cluster name, or `*` for every cluster without its
/// own.
pub fn policy_key(cluster: &str) -> Result<(), ApiError> {
    if cluster == "*" {
        Ok(())
    } else {
        cluster_name(cluster)
    }
}

pub async fn policies(
    State(plane): Plane,
    consistency: Consistency,
) -> Result<Json<BTreeMap<String, SamplingConfig>>, ApiError> {
    Ok(Json(read(&plane, consistency).await?.policies.clone()))
}

pub async fn policy(
    State(plane): Plane,
    Param(cluster): Param,
    consistency: Consistency,
) -> Result<Json<SamplingConfig>, ApiError> {
    let state = read(&plane, consistency).await?;
    state
        .policies
        .get(&cluster)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no sampling policy for cluster {cluster:?}")))
}

pub async fn put_policy(
    State(plane): Plane,
    Param(cluster): Param,
    JsonBody(policy): JsonBody<SamplingConfig>,
) -> Result<Json<WriteAnswer>, ApiError> {
    policy_key(&cluster)?;
    policy.validate().map_err(ApiError::BadRequest)?;
    write(&plane, Command::PutPolicy { cluster, policy }).await
}

pub async fn delete_policy(
    State(plane): Plane,
    Param(cluster): Param,
) -> Result<Json<WriteAnswer>, ApiError> {
    write(&plane, Command::DeletePolicy { cluster }).await
}

pub async fn retention(
    State(plane): Plane,
    consistency: Consistency,
) -> Result<Json<RetentionPolicy>, ApiError> {
    Ok(Json(read(&plane, consistency).await?.retention.clone()))
}

pub async fn put_retention(
    State(plane): Plane,
    JsonBody(policy): JsonBody<RetentionPolicy>,
) -> Result<Json<WriteAnswer>, ApiError> {
    policy.validate().map_err(ApiError::BadRequest)?;
    for cluster in policy.clusters.keys() {
        cluster_name(cluster)?;
    }
    write(&plane, Command::SetRetention { policy }).await
}

pub async fn alert_rules(
    State(plane): Plane,
    consistency: Consistency,
) -> Result<Json<BTreeMap<String, AlertRule>>, ApiError> {
    Ok(Json(read(&plane, consistency).await?.alert_rules.clone()))
}

/// `PUT alert-rules/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAlertRule {
    pub expr: String,
    #[serde(default)]
    pub for_secs: u64,
}

/// Longest alert rule name.
pub const MAX_RULE_NAME: usize = 128;

/// The rule to store under `name` (pure). The expression must parse
/// (`control_state::alert::rule`); it is stored as given.
pub fn alert_rule(name: &str, req: PutAlertRule) -> Result<AlertRule, ApiError> {
    if name.trim().is_empty() || name.len() > MAX_RULE_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "alert rule name {name:?}: 1 to {MAX_RULE_NAME} printable characters"
        )));
    }
    if let Err(e) = control_state::alert::rule::parse(&req.expr) {
        return Err(ApiError::BadRequest(format!("expr {:?}: {e}", req.expr)));
    }
    Ok(AlertRule {
        expr: req.expr,
        for_secs: req.for_secs,
    })
}

pub async fn put_alert_rule(
    State(plane): Plane,
    Param(name): Param,
    JsonBody(req): JsonBody<PutAlertRule>,
) -> Result<Json<WriteAnswer>, ApiError> {
    let rule = alert_rule(&name, req)?;
    write(&plane, Command::PutAlertRule { name, rule }).await
}

pub async fn delete_alert_rule(
    State(plane): Plane,
    Param(name): Param,
) -> Result<Json<WriteAnswer>, ApiError> {
    write(&plane, Command::DeleteAlertRule { name }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_identity_defaults_to_its_spiffe_uri() {
        let r = cluster_record("eu-west", b"").expect("empty body");
        assert_eq!(r.identity, "spiffe://meridian/cluster/eu-west");
        let r = cluster_record("eu-west", b"{}").expect("no identity");
        assert_eq!(r.identity, "spiffe://meridian/cluster/eu-west");
        let r = cluster_record("eu", br#"{"identity":"spiffe://corp/eu"}"#).expect("given");
        assert_eq!(r.identity, "spiffe://corp/eu");
        for (name, body) in [
            ("EU", &b""[..]),
            ("eu", br#"{"identity":"eu"}"#),
            ("eu", br#"{"identity":"spiffe://a b"}"#),
            ("eu", br#"{"identty":"spiffe://x/y"}"#),
            ("eu", b"{"),
        ] {
            assert!(
                matches!(cluster_record(name, body), Err(ApiError::BadRequest(_))),
                "{name} {body:?}"
            );
        }
    }

    #[test]
    fn policy_keys_are_clusters_or_star() {
        assert!(policy_key("*").is_ok());
        assert!(policy_key("us-east-1").is_ok());
        assert!(policy_key("**").is_err());
        assert!(policy_key("").is_err());
    }

    #[test]
    fn alert_rules_need_a_name_and_an_expression() {
        let req = |expr: &str| PutAlertRule {
            expr: expr.into(),
            for_secs: 60,
        };
        assert_eq!(
            alert_rule("checkout errors", req("error_ratio > 0.1")).ok(),
            Some(AlertRule {
                expr: "error_ratio > 0.1".into(),
                for_secs: 60
            })
        );
        assert!(alert_rule("x", req(" ")).is_err());
        assert!(alert_rule("x", req("rate(errors) > 1")).is_err());
        assert!(alert_rule(" ", req("rate > 1")).is_err());
        assert!(alert_rule(&"n".repeat(MAX_RULE_NAME + 1), req("rate > 1")).is_err());
        assert!(alert_rule("a\nb", req("rate > 1")).is_err());
    }
}
