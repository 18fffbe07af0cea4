//! `GET raft`, and the gateway nodes: `GET/POST members`,
//! `DELETE members/{id}`.

use std::{collections::BTreeMap, sync::Arc};

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};

use super::{
    error::{ApiError, WriteAnswer},
    extract::{Consistency, JsonBody, Param},
    read,
};
use crate::raft::{
    Member, NodeId,
    node::{ControlPlane, RaftStatus},
};

/// This node's view of Raft (always local: it is about this node).
pub async fn raft(State(plane): State<Arc<ControlPlane>>) -> Json<RaftStatus> {
    Json(plane.status())
}

/// A gateway node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Voter,
    Learner,
}

/// One row of `GET members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub id: NodeId,
    pub role: Role,
    pub leader: bool,
    #[serde(flatten)]
    pub member: Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersView {
    pub leader_id: Option<NodeId>,
    pub members: Vec<MemberView>,
}

/// Members as the replicated state has them (with what each announced of
/// itself), roles from this node's Raft membership.
pub async fn list(
    State(plane): State<Arc<ControlPlane>>,
    consistency: Consistency,
) -> Result<Json<MembersView>, ApiError> {
    let state = read(&plane, consistency).await?;
    let status = plane.status();
    Ok(Json(members_view(&state.members, &status)))
}

/// Joins the replicated members with Raft's roles; a node Raft knows that
/// the applied state does not yet (or the other way round) is listed too.
pub fn members_view(known: &BTreeMap<NodeId, Member>, status: &RaftStatus) -> MembersView {
    let mut all: BTreeMap<NodeId, Member> = status.members.clone();
    for (id, m) in known {
        all.insert(*id, m.clone());
    }
    let members = all
        .into_iter()
        .map(|(id, member)| MemberView {
            id,
            role: if status.voters.contains(&id) {
                Role::Voter
            } else {
                Role::Learner
            },
            leader: status.leader_id == Some(id),
            member,
        })
        .collect();
    MembersView {
        leader_id: status.leader_id,
        members,
    }
}

/// `POST members`: the new node's id and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub id: NodeId,
    pub raft_addr: String,
    /// Announced by the node itself once it runs, when omitted here.
    #[serde(default)]
    pub federation_addr: Option<String>,
    #[serde(default)]
    pub http_addr: Option<String>,
}

impl AddMember {
    /// Checks the id and addresses, giving the member record to add.
    pub fn validate(self) -> Result<(NodeId, Member), ApiError> {
        if self.id == 0 {
            return Err(ApiError::BadRequest("node ids start at 1".into()));
        }
        check_addr("raft_addr", &self.raft_addr)?;
        for (field, addr) in [
            ("federation_addr", &self.federation_addr),
            ("http_addr", &self.http_addr),
        ] {
            if let Some(a) = addr {
                check_addr(field, a)?;
            }
        }
        Ok((
            self.id,
            Member {
                node_name: String::new(),
                raft_addr: self.raft_addr,
                federation_addr: self.federation_addr.unwrap_or_default(),
                http_addr: self.http_addr.unwrap_or_default(),
            },
        ))
    }
}

/// `host:port` with a non-empty host and a valid port.
pub fn check_addr(field: &str, addr: &str) -> Result<(), ApiError> {
    let ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.chars().any(|c| c.is_whitespace() || c == '/')
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "{field}: expected HOST:PORT, got {addr:?}"
        )))
    }
}

/// Adds a node as a learner, waits until it caught up, then makes it a
/// voter. The node must be running (opened with this id) to catch up.
pub async fn add(
    State(plane): State<Arc<ControlPlane>>,
    JsonBody(req): JsonBody<AddMember>,
) -> Result<Json<WriteAnswer>, ApiError> {
    let (id, member) = req.validate()?;
    plane.read_linearizable().await?;
    let status = plane.status();
    let already = status.voters.contains(&id)
        && status
            .members
            .get(&id)
            .is_some_and(|m| m.raft_addr == member.raft_addr);
    plane.add_node(id, member).await?;
    Ok(Json(if already {
        WriteAnswer::unchanged()
    } else {
        WriteAnswer::done()
    }))
}

/// Removes a node (voter or learner); removing an absent node is
/// `unchanged`.
pub async fn remove(
    State(plane): State<Arc<ControlPlane>>,
    Param(id): Param,
) -> Result<Json<WriteAnswer>, ApiError> {
    let id: NodeId = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{id:?} is not a node id")))?;
    let state = plane.read_linearizable().await?;
    let present = state.members.contains_key(&id) || plane.status().members.contains_key(&id);
    plane.remove_node(id).await?;
    Ok(Json(if present {
        WriteAnswer::done()
    } else {
        WriteAnswer::unchanged()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(id: NodeId, raft: &str, http: Option<&str>) -> AddMember {
        AddMember {
            id,
            raft_addr: raft.into(),
            federation_addr: None,
            http_addr: http.map(Into::into),
        }
    }

    #[test]
    fn new_members_need_an_id_and_dialable_addresses() {
        let (id, m) = add(4, "gw-4:4321", Some("[::1]:16686"))
            .validate()
            .expect("valid");
        assert_eq!((id, m.federation_addr.as_str()), (4, ""));
        assert_eq!(m.http_addr, "[::1]:16686");
        for bad in [
            add(0, "gw:4321", None),
            add(4, "gw", None),
            add(4, ":4321", None),
            add(4, "gw:0", None),
            add(4, "gw:99999", None),
            add(4, "http://gw:4321", None),
            add(4, "gw:4321", Some("gw")),
        ] {
            assert!(
                matches!(bad.clone().validate(), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
        let typo = serde_json::from_str::<AddMember>(r#"{"id":4,"raft_adr":"a:1"}"#);
        assert!(typo.is_err());
    }

    #[test]
    fn the_view_joins_roles_and_announced_addresses() {
        let m = |n: u64, http: &str| Member {
            node_name: String::new(),
            raft_addr: format!("n{n}:4321"),
            federation_addr: String::new(),
            http_addr: http.into(),
        };
        let status = RaftStatus {
            node_id: 1,
            leader_id: Some(2),
            state: "Follower".into(),
            term: 3,
            last_log_index: Some(9),
            last_applied: Some(9),
            snapshot_index: None,
            voters: vec![1, 2],
            learners: vec![3],
            members: [(1, m(1, "")), (2, m(2, "")), (3, m(3, ""))].into(),
        };
        let known = [(1, m(1, "n1:16686")), (2, m(2, ""))].into();
        let view = members_view(&known, &status);
        assert_eq!(view.leader_id, Some(2));
        let roles: Vec<(NodeId, Role, bool)> = view
            .members
            .iter()
            .map(|v| (v.id, v.role, v.leader))
            .collect();
        assert_eq!(
            roles,
            [
                (1, Role::Voter, false),
                (2, Role::Voter, true),
                (3, Role::Learner, false)
            ]
        );
        assert_eq!(view.members[0].member.http_addr, "n1:16686");
    }
}
