//! Group mappings for `--auth proxy`: `GET groups` lists them,
//! `PUT groups/{group}` with `{"role","clusters"}` sets one (replacing it),
//! `DELETE groups/{group}` removes one. A proxy user's role and scope come
//! from the mappings of the groups its proxy sends
//! ([`crate::access::proxy`]).

use std::{collections::BTreeMap, sync::Arc};

use axum::{Json, extract::State};
use control_state::{GroupMapping, Role, state::groups};
use serde::{Deserialize, Serialize};

use super::{
    error::{ApiError, Refusal, WriteAnswer, answer},
    extract::{Consistency, JsonBody, Param},
    read,
};
use crate::raft::{Command, node::ControlPlane};

type Plane = State<Arc<ControlPlane>>;

/// `PUT groups/{group}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutGroup {
    pub role: Role,
    /// Cluster names, or `["*"]` for every cluster.
    pub clusters: Vec<String>,
}

/// The mapping to store for group `name` (pure).
pub fn group_record(name: &str, req: PutGroup) -> Result<GroupMapping, ApiError> {
    groups::check_name(name).map_err(ApiError::BadRequest)?;
    let mapping = GroupMapping {
        role: req.role,
        clusters: req
            .clusters
            .into_iter()
            .map(|c| c.trim().to_owned())
            .collect(),
    };
    mapping.check().map_err(ApiError::BadRequest)?;
    Ok(mapping)
}

pub async fn list(
    State(plane): Plane,
    consistency: Consistency,
) -> Result<Json<BTreeMap<String, GroupMapping>>, ApiError> {
    Ok(Json(read(&plane, consistency).await?.groups.clone()))
}

pub async fn put(
    State(plane): Plane,
    Param(name): Param,
    JsonBody(req): JsonBody<PutGroup>,
) -> Result<Json<WriteAnswer>, ApiError> {
    let mapping = group_record(&name, req)?;
    let applied = plane.write(Command::SetGroup { name, mapping }).await?;
    answer(applied, Refusal::Invalid).map(Json)
}

pub async fn delete(
    State(plane): Plane,
    Param(name): Param,
) -> Result<Json<WriteAnswer>, ApiError> {
    let applied = plane.write(Command::DeleteGroup { name }).await?;
    answer(applied, Refusal::Invalid).map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_record_is_checked() {
        let req = |clusters: &[&str]| PutGroup {
            role: Role::Read,
            clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
        };
        let m = group_record("org:team-a", req(&[" a", "b"])).expect("valid");
        assert_eq!(m.clusters.iter().collect::<Vec<_>>(), ["a", "b"]);
        for (name, r) in [
            ("a,b", req(&["a"])),
            ("ok", req(&[])),
            ("ok", req(&["*", "a"])),
        ] {
            assert!(
                matches!(group_record(name, r), Err(ApiError::BadRequest(_))),
                "{name}"
            );
        }
        let json = r#"{"role":"read","clusters":["a"],"extra":1}"#;
        assert!(serde_json::from_str::<PutGroup>(json).is_err());
    }
}
