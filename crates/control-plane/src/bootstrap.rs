//! Starting a gateway's control-plane node: open the Raft state, serve the
//! Raft port (mTLS, node certificates only), and find the cluster (form a
//! one-node cluster, form one from static peers, or join through a member).

use std::{collections::BTreeMap, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use control_state::Member;
use rustls::ServerConfig;
use telemetry::{Shutdown, budget::ByteBudget, serve::MessageBudget};
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;

use crate::raft::{
    network::{
        WriteError,
        grpc::{GrpcTransport, MAX_MESSAGE_BYTES, RaftService},
    },
    node::{ControlPlane, PlaneConfig, PlaneError},
};

/// Bytes of Raft messages one peer connection may hold before they are
/// decoded: two of the largest (a snapshot chunk and an entries batch).
pub const RAFT_BYTES_PER_CONNECTION: u64 = 2 * (MAX_MESSAGE_BYTES as u64 + 5);
/// Bytes of Raft messages the Raft port holds before decoding, every
/// connection together (a handful of peers; a stranger's connection is
/// refused at its handshake, without a node certificate).
pub const RAFT_BYTES_TOTAL: u64 = 256 << 20;
/// Raft and peer-bus calls in flight on the Raft port; beyond it
/// RESOURCE_EXHAUSTED + RetryInfo (openraft retries).
pub const RAFT_MAX_REQUESTS: usize = 1024;

/// How this gateway finds its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// A one-node cluster of itself (formed on first start).
    Single,
    /// A static member list (ids → Raft addresses).
    Peers(std::collections::BTreeMap<u64, String>),
    /// Ask a member (its Raft address) to be added.
    Join(String),
}

/// The gateway-cluster settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_id: u64,
    pub raft: SocketAddr,
    pub bootstrap: Bootstrap,
    pub raft_advertise: Option<String>,
    pub advertise_host: Option<String>,
    pub admin_token: Option<String>,
    pub timing: PlaneConfig,
}

impl ClusterConfig {
    /// A one-node cluster (node 1) with its Raft port on `raft`.
    pub fn single(raft: SocketAddr) -> Self {
        Self {
            node_id: 1,
            raft,
            bootstrap: Bootstrap::Single,
            raft_advertise: None,
            advertise_host: None,
            admin_token: None,
            timing: PlaneConfig::default(),
        }
    }
}

/// The PEM files of this node's mTLS identity and the CA.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
    /// Serials a `--tls-crl` file revokes ([`mtls::Revocations::none`]
    /// without one).
    pub revocations: &'a mtls::Revocations,
}

/// Why the control plane did not start.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("raft transport: {0}")]
    Transport(String),
    #[error(transparent)]
    Open(#[from] PlaneError),
    #[error("cannot form the gateway cluster: {0}")]
    Initialize(WriteError),
}

/// The address peers, agents and admins reach `bound` at.
pub fn advertised(bound: SocketAddr, host: Option<&str>) -> String {
    match host {
        Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]:{}", bound.port()),
        Some(h) => format!("{h}:{}", bound.port()),
        None if bound.ip().is_unspecified() => String::new(),
        None => bound.to_string(),
    }
}

/// What this node tells the cluster about itself.
pub fn member(
    cfg: &ClusterConfig,
    raft: SocketAddr,
    federation: SocketAddr,
    http: SocketAddr,
) -> Member {
    let host = cfg.advertise_host.as_deref();
    Member {
        raft_addr: cfg
            .raft_advertise
            .clone()
            .unwrap_or_else(|| advertised(raft, host)),
        federation_addr: advertised(federation, host),
        http_addr: advertised(http, host),
    }
}

/// Opens the Raft state, serves the Raft port (mTLS, node certificates
/// only) and starts the bootstrap (one-node cluster, static peers, or a
/// join that retries until the cluster added this node).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn start<'a>(
    cfg: &'a ClusterConfig,
    data_dir: &'a std::path::Path,
    tls: TlsFiles<'a>,
    server_tls: Arc<ServerConfig>,
    listener: TcpListener,
    me: Member,
    owner: &'a Shutdown,
    on_refused: mtls::OnRefused,
) -> futures::future::BoxFuture<'a, Result<Arc<ControlPlane>, BootstrapError>> {
    // Boxed, so that crates awaiting it do not compile its call tree
    // again (ARCHITECTURE.md, "Build time").
    Box::pin(start_inner(
        cfg, data_dir, tls, server_tls, listener, me, owner, on_refused,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn start_inner(
    cfg: &ClusterConfig,
    data_dir: &std::path::Path,
    tls: TlsFiles<'_>,
    server_tls: Arc<ServerConfig>,
    listener: TcpListener,
    me: Member,
    owner: &Shutdown,
    on_refused: mtls::OnRefused,
) -> Result<Arc<ControlPlane>, BootstrapError> {
    let local_ip = listener
        .local_addr()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    let transport = GrpcTransport::new(tls.ca, tls.cert, tls.key, local_ip)
        .map_err(|e| BootstrapError::Transport(e.to_string()))?;
    let plane = ControlPlane::open(
        cfg.node_id,
        me.clone(),
        &data_dir.join("raft"),
        Arc::new(transport),
        cfg.timing.clone(),
    )
    .await?;

    let incoming = mtls::incoming(listener, server_tls, owner, on_refused);
    let service = RaftService::new(Arc::clone(&plane), tls.revocations.clone());
    let budget = MessageBudget::new(
        RAFT_BYTES_PER_CONNECTION,
        ByteBudget::new(RAFT_BYTES_TOTAL),
        RAFT_MAX_REQUESTS,
    );
    let token = owner.token().clone();
    owner.spawn(async move {
        let res = mtls::grpc::server(budget)
            .add_service(service)
            .serve_with_incoming_shutdown(ReceiverStream::new(incoming), token.cancelled_owned())
            .await;
        if let Err(error) = res {
            tracing::error!(%error, "raft server failed");
        }
    });

    match &cfg.bootstrap {
        Bootstrap::Single => {
            let formed = plane
                .initialize(BTreeMap::from([(cfg.node_id, me)]))
                .await
                .map_err(BootstrapError::Initialize)?;
            if formed {
                tracing::info!(node = cfg.node_id, "formed a one-node gateway cluster");
            }
        }
        Bootstrap::Peers(peers) => {
            // Only the lowest id forms the cluster, once; the others wait to
            // be contacted (a second initialize elsewhere could split it).
            if peers.keys().next() == Some(&cfg.node_id) {
                let members = peers
                    .iter()
                    .map(|(id, addr)| {
                        let m = if *id == cfg.node_id {
                            me.clone()
                        } else {
                            Member {
                                raft_addr: addr.clone(),
                                ..Member::default()
                            }
                        };
                        (*id, m)
                    })
                    .collect();
                match plane.initialize(members).await {
                    Ok(true) => tracing::info!(peers = ?peers, "formed the gateway cluster"),
                    Ok(false) => {}
                    Err(e) => return Err(BootstrapError::Initialize(e)),
                }
            }
        }
        Bootstrap::Join(via) => {
            let plane = Arc::clone(&plane);
            let via = via.clone();
            let id = cfg.node_id;
            let cancel = owner.token().clone();
            owner.spawn(async move {
                let mut backoff = Duration::from_millis(250);
                while !plane.state().members.contains_key(&id) {
                    match plane.join(&via).await {
                        Ok(()) => {
                            tracing::info!(via, "joined the gateway cluster");
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(via, %error, "cannot join the gateway cluster yet; retrying")
                        }
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            });
        }
    }
    Ok(plane)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_addresses() {
        let any: SocketAddr = "0.0.0.0:4320".parse().expect("addr");
        let lo: SocketAddr = "127.0.0.2:4320".parse().expect("addr");
        assert_eq!(advertised(any, None), "");
        assert_eq!(advertised(lo, None), "127.0.0.2:4320");
        assert_eq!(advertised(any, Some("gw-0.gw")), "gw-0.gw:4320");
        assert_eq!(advertised(any, Some("::1")), "[::1]:4320");
    }
}
