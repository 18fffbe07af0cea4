//! The control plane inside a running gateway: the Raft port, joining the
//! cluster, and the tasks that follow the replicated state (the agents'
//! Control view, the store's shard map) and hold shard leases.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use rustls::ServerConfig;
use store::{SpanStore, StoreOptions, shard::ShardedStore};
use telemetry::Shutdown;
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use crate::{
    app::{GatewayError, TlsPaths},
    config::{Bootstrap, ClusterConfig},
    control::ControlView,
    metrics::GatewayMetrics,
    raft::{
        Command, ControlState, Member,
        network::grpc::{GrpcTransport, RaftService},
        node::ControlPlane,
        state::Shard,
    },
    tls,
};

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
pub async fn start(
    cfg: &ClusterConfig,
    data_dir: &std::path::Path,
    tls_paths: &TlsPaths,
    server_tls: Arc<ServerConfig>,
    listener: TcpListener,
    me: Member,
    owner: &Shutdown,
    metrics: GatewayMetrics,
) -> Result<Arc<ControlPlane>, GatewayError> {
    let local_ip = listener
        .local_addr()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    let transport = GrpcTransport::new(&tls_paths.ca, &tls_paths.cert, &tls_paths.key, local_ip)
        .map_err(|e| GatewayError::Raft(e.to_string()))?;
    let plane = ControlPlane::open(
        cfg.node_id,
        me.clone(),
        &data_dir.join("raft"),
        Arc::new(transport),
        cfg.timing.clone(),
    )
    .await
    .map_err(|e| GatewayError::Raft(e.to_string()))?;

    let incoming = tls::incoming(listener, server_tls, owner, metrics);
    let service = RaftService::new(Arc::clone(&plane));
    let token = owner.token().clone();
    owner.spawn(async move {
        let res = Server::builder()
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
                .map_err(|e| GatewayError::Raft(e.to_string()))?;
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
                    Err(e) => return Err(GatewayError::Raft(e.to_string())),
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
    }
}

/// Publishes every change of the replicated state's view to the agents'
/// Control streams (latest wins). Only a changed view is sent: applying a
/// refused command or a lease renewal does not disturb the streams.
pub async fn publish_views(
    mut states: watch::Receiver<Arc<ControlState>>,
    control: watch::Sender<Arc<ControlView>>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut last: Option<ControlView> = None;
    loop {
        let view = view_of(&states.borrow_and_update());
        if last.as_ref() != Some(&view) {
            control.send_replace(Arc::new(view.clone()));
            last = Some(view);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
        }
    }
}

/// Keeps the Postgres shard map in step with the replicated one: registers
/// this gateway's `--store` shards when the cluster has none yet (as epoch
/// 0, by the leader), and opens shards other gateways added.
pub async fn follow_shards(
    plane: Arc<ControlPlane>,
    sharded: Arc<ShardedStore>,
    urls: Vec<String>,
    opts: StoreOptions,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut states = plane.subscribe();
    let mut warned = false;
    loop {
        let state = states.borrow_and_update().clone();
        match &state.shard_map {
            None if plane.is_leader() => {
                let shards = urls
                    .iter()
                    .enumerate()
                    .filter_map(|(i, url)| {
                        Some((u32::try_from(i).ok()?, Shard { url: url.clone() }))
                    })
                    .collect();
                let add = Command::AddShards {
                    shards,
                    start_unix_nano: 0,
                };
                match plane.write(add).await {
                    Ok(applied) => {
                        tracing::info!(?applied, "registered the store shards with the cluster")
                    }
                    Err(error) => tracing::warn!(%error, "cannot register the store shards yet"),
                }
            }
            None => {}
            Some(map) if *map != sharded.map() => {
                let mut opened = Vec::new();
                let mut ok = true;
                for (id, shard) in &state.shards {
                    if sharded.has_shard(*id) {
                        if !warned && urls.get(*id as usize).is_some_and(|u| *u != shard.url) {
                            tracing::warn!(
                                shard = id,
                                "this gateway's --store differs from the cluster's shard map; the cluster's wins"
                            );
                            warned = true;
                        }
                        continue;
                    }
                    match store::open_shard(*id as usize, &shard.url, &opts).await {
                        Ok(s) => opened.push((*id, s)),
                        Err(error) => {
                            tracing::warn!(shard = id, %error, "cannot open a shard the cluster added; retrying");
                            ok = false;
                        }
                    }
                }
                if ok {
                    match sharded.update(map.clone(), opened) {
                        Ok(()) => tracing::info!(
                            epochs = map.epochs().len(),
                            shards = ?map.all_shards(),
                            "the store follows the cluster's shard map"
                        ),
                        Err(error) => {
                            tracing::error!(%error, "cannot apply the cluster's shard map")
                        }
                    }
                }
            }
            Some(_) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
            // Retry what failed (registration before a leader existed, a
            // shard that would not open).
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The stores this node runs per-shard work on now: the shards whose lease
/// it holds, or, without shards, the whole store while it leads.
pub fn retention_scope(
    plane: &ControlPlane,
    store: &Arc<dyn SpanStore>,
    sharded: Option<&Arc<ShardedStore>>,
) -> Vec<(String, Arc<dyn SpanStore>)> {
    match sharded {
        Some(sharded) => sharded
            .shards()
            .into_iter()
            .filter_map(|(id, s)| {
                plane
                    .holds_lease(id)
                    .map(|fence| (format!("shard {id} (fence {fence})"), s))
            })
            .collect(),
        None if plane.is_leader() => vec![("store".to_owned(), Arc::clone(store))],
        None => Vec::new(),
    }
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
}
