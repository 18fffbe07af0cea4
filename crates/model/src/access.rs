//! What a caller may see: the clusters in its scope.
//!
//! The gateway's HTTP layer decides who the caller is (the identity issue:
//! tokens, a trusted proxy, or `--auth none`) and puts the caller's
//! [`Scope`] into the request's extensions before any handler runs. Every
//! read handler takes the scope as a required extractor, so a route that
//! was assembled without the access layer fails closed (axum answers 500 for
//! a missing extension) rather than answering for every cluster.

use std::collections::BTreeSet;

use crate::ClusterId;

/// The clusters whose data a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every cluster (`*`): admins, `--auth none`, loopback without auth.
    All,
    /// Only these clusters. An empty set sees nothing.
    Only(BTreeSet<String>),
}

impl Scope {
    /// A scope of the named clusters.
    pub fn only<I, S>(clusters: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Only(clusters.into_iter().map(Into::into).collect())
    }

    /// Whether data of `cluster` may be shown.
    pub fn allows(&self, cluster: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(cluster),
        }
    }

    /// Whether data of `cluster` may be shown.
    pub fn allows_id(&self, cluster: &ClusterId) -> bool {
        self.allows(cluster.as_str())
    }

    /// Whether the scope is every cluster (no filtering needed).
    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }

    /// The allowed clusters, or `None` for every cluster.
    pub fn clusters(&self) -> Option<&BTreeSet<String>> {
        match self {
            Self::All => None,
            Self::Only(set) => Some(set),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_clusters_are_allowed() {
        let scope = Scope::only(["a", "b"]);
        assert!(scope.allows("a") && scope.allows("b"));
        assert!(!scope.allows("c") && !scope.allows(""));
        assert!(!scope.is_all());
        assert!(Scope::All.allows("c") && Scope::All.is_all());
        assert!(!Scope::only(Vec::<String>::new()).allows("a"));
    }
}
