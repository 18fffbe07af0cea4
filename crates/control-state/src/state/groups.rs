//! Group mappings for `--auth proxy`: which role and clusters the members
//! of an SSO group get (the proxy sends a user's groups; the access layer
//! takes the highest role and the union of the clusters of those mapped
//! here). Keyed by the group's name as the proxy sends it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    command::Applied,
    tokens::{ALL_CLUSTERS, MAX_TOKEN_CLUSTERS, Role},
};

/// Most group mappings kept.
pub const MAX_GROUPS: usize = 1_000;
/// Longest group name (oauth2-proxy sends e.g. `org:team` or an Azure AD
/// object id; LDAP DNs can be long).
pub const MAX_GROUP_NAME: usize = 256;

/// What the members of one group may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMapping {
    pub role: Role,
    /// Cluster names, or `["*"]` for every cluster.
    pub clusters: BTreeSet<String>,
}

impl GroupMapping {
    /// Whether the mapping's scope is every cluster.
    pub fn all_clusters(&self) -> bool {
        self.clusters.contains(ALL_CLUSTERS)
    }

    /// Why the mapping cannot be stored, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.clusters.is_empty() || self.clusters.len() > MAX_TOKEN_CLUSTERS {
            return Err(format!(
                "clusters: name 1 to {MAX_TOKEN_CLUSTERS} clusters, or * for every cluster"
            ));
        }
        if self.all_clusters() && self.clusters.len() > 1 {
            return Err("clusters: * means every cluster and stands alone".into());
        }
        if !self.all_clusters() {
            for c in &self.clusters {
                model::ClusterId::new(c).map_err(|e| format!("clusters: {e}"))?;
            }
        }
        Ok(())
    }
}

/// Why `name` cannot name a group mapping: 1 to [`MAX_GROUP_NAME`]
/// printable ASCII characters, no comma (the proxy's separator) and no
/// leading or trailing space.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && name.trim() == name
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b',');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "group name {:?}: 1 to {MAX_GROUP_NAME} printable ASCII characters, no comma, no surrounding space",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// `SetGroup`: adds or replaces the mapping of `name`.
pub(super) fn set(
    groups: &mut BTreeMap<String, GroupMapping>,
    name: String,
    mapping: GroupMapping,
) -> Applied {
    if let Err(e) = check_name(&name).and_then(|()| mapping.check()) {
        return Applied::Refused(e);
    }
    match groups.get(&name) {
        Some(m) if *m == mapping => return Applied::Unchanged,
        Some(_) => {}
        None if groups.len() >= MAX_GROUPS => {
            return Applied::Refused(format!(
                "at most {MAX_GROUPS} group mappings; delete unused ones first"
            ));
        }
        None => {}
    }
    groups.insert(name, mapping);
    Applied::Done
}

/// `DeleteGroup`: removes the mapping of `name` (absent: `Unchanged`).
pub(super) fn delete(groups: &mut BTreeMap<String, GroupMapping>, name: &str) -> Applied {
    match groups.remove(name) {
        Some(_) => Applied::Done,
        None => Applied::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(role: Role, clusters: &[&str]) -> GroupMapping {
        GroupMapping {
            role,
            clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn mappings_are_checked_bounded_and_idempotent() {
        let mut g = BTreeMap::new();
        let team = mapping(Role::Read, &["a", "b"]);
        assert_eq!(set(&mut g, "team-a".into(), team.clone()), Applied::Done);
        assert_eq!(set(&mut g, "team-a".into(), team), Applied::Unchanged);
        let wider = mapping(Role::Admin, &["*"]);
        assert_eq!(set(&mut g, "team-a".into(), wider.clone()), Applied::Done);
        assert_eq!(g["team-a"], wider);
        for (name, m) in [
            ("", mapping(Role::Read, &["a"])),
            ("a,b", mapping(Role::Read, &["a"])),
            (" x", mapping(Role::Read, &["a"])),
            ("ok", mapping(Role::Read, &[])),
            ("ok", mapping(Role::Read, &["*", "a"])),
            ("ok", mapping(Role::Read, &["Bad Name"])),
        ] {
            assert!(
                matches!(set(&mut g, name.into(), m.clone()), Applied::Refused(_)),
                "{name:?} {m:?}"
            );
        }
        assert!(check_name(&"x".repeat(MAX_GROUP_NAME)).is_ok());
        assert!(check_name(&"x".repeat(MAX_GROUP_NAME + 1)).is_err());
        assert!(
            check_name("cn=ops,dc=example").is_err(),
            "a comma splits groups"
        );
        assert!(check_name("org:team ops").is_ok());
        for i in 1..MAX_GROUPS {
            assert_eq!(
                set(&mut g, format!("g{i}"), mapping(Role::Read, &["a"])),
                Applied::Done
            );
        }
        assert!(matches!(
            set(&mut g, "one-too-many".into(), mapping(Role::Read, &["a"])),
            Applied::Refused(_)
        ));
        // Replacing an existing one is still allowed when full.
        assert_eq!(
            set(&mut g, "g1".into(), mapping(Role::Admin, &["a"])),
            Applied::Done
        );
        assert_eq!(delete(&mut g, "g1"), Applied::Done);
        assert_eq!(delete(&mut g, "g1"), Applied::Unchanged);
    }
}
