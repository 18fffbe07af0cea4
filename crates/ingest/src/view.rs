//! What the gateway cluster tells its agents ([`ControlView`]), derived
//! from the replicated state and published to every agent's Control stream
//! through a watch (latest wins).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::Arc,
};

use control_state::ControlState;
use model::sampling::SamplingConfig;
use tokio::sync::watch;

/// What the gateway cluster tells its agents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlView {
    /// Federation endpoints of every gateway member, as agents dial them ("https://host:port"), sorted.
    pub gateways: Vec<String>,
    /// Sampling policies by cluster name; the key "*" applies to every cluster without its own entry.
    pub policies: BTreeMap<String, SamplingConfig>,
    /// The clusters registered with `admin clusters put` (names).
    pub registered: BTreeSet<String>,
    /// Revoked certificate serials (`admin certs revoke`).
    pub revoked: BTreeSet<String>,
}

/// The raft side publishes a new view on every change; the Control service reads it.
pub type ControlFeed = tokio::sync::watch::Receiver<Arc<ControlView>>;

/// The policy key that applies to every cluster without its own entry.
pub const EVERY_CLUSTER: &str = "*";

impl ControlView {
    /// A lone gateway's view of itself: its own federation endpoint and no
    /// policies. An unspecified listen address (`0.0.0.0`, `[::]`) is no
    /// address an agent can dial, so it gives an empty member list, which
    /// agents read as "keep the endpoints you have".
    pub fn single(federation_addr: SocketAddr) -> Self {
        let gateways = if federation_addr.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![format!("https://{federation_addr}")]
        };
        Self {
            gateways,
            ..Self::default()
        }
    }

    /// The policy in force for `cluster`: its own entry, else the
    /// [`EVERY_CLUSTER`] entry, else none (the agent's local policy).
    pub fn policy_for(&self, cluster: &str) -> Option<&SamplingConfig> {
        self.policies
            .get(cluster)
            .or_else(|| self.policies.get(EVERY_CLUSTER))
    }
}

/// Which clusters may send (`--require-registered-clusters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registration {
    /// Every cluster with a valid certificate while no cluster is
    /// registered (a new gateway works without setup); once one is, only
    /// registered clusters.
    #[default]
    OnceAnyIsRegistered,
    /// Only registered clusters, also while none is.
    Required,
}

impl ControlView {
    /// Whether an agent of `cluster` may forward, stream and decide.
    pub fn admits(&self, cluster: &str, registration: Registration) -> bool {
        if self.registered.is_empty() && registration == Registration::OnceAnyIsRegistered {
            return true;
        }
        self.registered.contains(cluster)
    }

    /// Whether the certificate with `serial` (lowercase hex, see
    /// `mtls::serial_of`) is revoked.
    pub fn revokes(&self, serial: &str) -> bool {
        self.revoked.contains(serial)
    }
}

/// The agents' view of the cluster: members' federation endpoints and the
/// sampling policies.
pub fn view_of(state: &ControlState) -> ControlView {
    let mut gateways: Vec<String> = state
        .members
        .values()
        .filter(|m| !m.federation_addr.is_empty())
        .map(|m| format!("https://{}", m.federation_addr))
        .collect();
    gateways.sort();
    gateways.dedup();
    ControlView {
        gateways,
        policies: state.policies.clone(),
        registered: state.clusters.keys().cloned().collect(),
        revoked: state.revoked_serials.clone(),
    }
}

/// Publishes every change of the replicated state's view to the agents'
/// Control streams (latest wins), with the serials of the `--tls-crl` file
/// (`crl`) among the revoked ones. Only a changed view is sent: applying a
/// refused command or a lease renewal does not disturb the streams.
pub async fn publish_views(
    mut states: watch::Receiver<Arc<ControlState>>,
    mut crl: watch::Receiver<Arc<BTreeSet<String>>>,
    control: watch::Sender<Arc<ControlView>>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut last: Option<ControlView> = None;
    let mut crl_open = true;
    loop {
        let mut view = view_of(&states.borrow_and_update());
        view.revoked.extend(crl.borrow_and_update().iter().cloned());
        if last.as_ref() != Some(&view) {
            control.send_replace(Arc::new(view.clone()));
            last = Some(view);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
            // Without a CRL file (or once its watcher stopped) only the
            // state changes the view.
            changed = crl.changed(), if crl_open => crl_open = changed.is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use control_state::Member;

    use super::*;

    #[test]
    fn the_view_lists_dialable_members_only() {
        let mut s = ControlState::default();
        s.set_members(BTreeMap::from([
            (
                1,
                Member {
                    raft_addr: "a:1".into(),
                    federation_addr: "a:4320".into(),
                    http_addr: String::new(),
                },
            ),
            (2, Member::default()),
        ]));
        assert_eq!(view_of(&s).gateways, ["https://a:4320"]);
    }

    #[test]
    fn once_a_cluster_is_registered_only_registered_clusters_are_admitted() {
        use Registration::*;
        let mut v = ControlView::default();
        assert!(v.admits("east", OnceAnyIsRegistered));
        assert!(!v.admits("east", Required));
        v.registered.insert("west".into());
        for r in [OnceAnyIsRegistered, Required] {
            assert!(v.admits("west", r));
            assert!(!v.admits("east", r));
        }
    }
}
