//! The production transport: mTLS gRPC between gateways. Both sides
//! present node certificates from `certs issue --node`; the server refuses
//! any other identity (an agent's cluster certificate in particular).

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use proto::raft::{RaftMessage, raft_client::RaftClient, raft_server};
use tonic::{
    Request, Response, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity as TlsIdentity},
};

use super::{Rpc, Transport, TransportError};
use mtls::{Identity, identity_and_serial_of};

use crate::raft::{NodeId, node::ControlPlane};

/// Largest control-plane message (a snapshot chunk, a batch of entries).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} {path}: {source}")]
pub struct TlsFileError {
    what: &'static str,
    path: String,
    #[source]
    source: std::io::Error,
}

/// Dials peers over mTLS; one lazily connected channel per address.
#[derive(Debug)]
pub struct GrpcTransport {
    tls: ClientTlsConfig,
    local_ip: Option<std::net::IpAddr>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl GrpcTransport {
    /// Verifies peers against `ca` and presents `cert`/`key` (a node
    /// certificate). Connections leave from `local_ip` when given (the IP
    /// the Raft listener is bound to, so a multi-homed host talks to peers
    /// from the interface it serves them on).
    pub fn new(
        ca: &Path,
        cert: &Path,
        key: &Path,
        local_ip: Option<std::net::IpAddr>,
    ) -> Result<Self, TlsFileError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsFileError {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("CA certificate", ca)?))
            .identity(TlsIdentity::from_pem(
                read("node certificate", cert)?,
                read("node key", key)?,
            ));
        Ok(Self {
            tls,
            local_ip,
            channels: Mutex::new(HashMap::new()),
        })
    }

    fn channel(&self, addr: &str) -> Result<Channel, String> {
        if let Some(c) = self.channels.lock().ok().and_then(|c| c.get(addr).cloned()) {
            return Ok(c);
        }
        let host = match addr.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        };
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| format!("bad address {addr}: {e}"))?
            .tls_config(self.tls.clone().domain_name(host))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .local_address(self.local_ip)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        if let Ok(mut c) = self.channels.lock() {
            c.insert(addr.to_owned(), channel.clone());
        }
        Ok(channel)
    }
}

impl Transport for GrpcTransport {
    fn call(
        &self,
        to: NodeId,
        addr: &str,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let channel = self.channel(addr);
        let addr = addr.to_owned();
        Box::pin(async move {
            let unreachable = |reason: String| TransportError::Unreachable {
                to,
                addr: addr.clone(),
                reason,
            };
            let mut client = RaftClient::new(channel.map_err(unreachable)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            let mut req = Request::new(RaftMessage { json: body });
            req.set_timeout(timeout);
            let call = async {
                match rpc {
                    Rpc::AppendEntries => client.append_entries(req).await,
                    Rpc::InstallSnapshot => client.install_snapshot(req).await,
                    Rpc::Vote => client.vote(req).await,
                    Rpc::Forward => client.forward(req).await,
                    Rpc::Peer => client.peer(req).await,
                }
            };
            match tokio::time::timeout(timeout, call).await {
                Err(_) => Err(unreachable("timed out".into())),
                Ok(Ok(resp)) => Ok(resp.into_inner().json),
                Ok(Err(status)) => match status.code() {
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled => Err(unreachable(status.message().to_owned())),
                    _ => Err(TransportError::Refused {
                        to,
                        reason: format!("{:?}: {}", status.code(), status.message()),
                    }),
                },
            }
        })
    }
}

/// The Raft gRPC service: peers' calls into this node's [`ControlPlane`].
#[derive(Debug, Clone)]
pub struct RaftService {
    plane: Arc<ControlPlane>,
    /// Serials a `--tls-crl` file revokes, beside the replicated deny list.
    crl: mtls::Revocations,
}

impl RaftService {
    pub fn new(plane: Arc<ControlPlane>, crl: mtls::Revocations) -> raft_server::RaftServer<Self> {
        raft_server::RaftServer::new(Self { plane, crl })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    async fn serve(
        &self,
        rpc: Rpc,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let leaf = req
            .peer_certs()
            .and_then(|c| c.first().cloned())
            .ok_or_else(|| Status::unauthenticated("a node certificate is required"))?;
        // A revoked node certificate is refused on every call, open
        // connections included, once this node applied the revocation.
        let (identity, serial) =
            identity_and_serial_of(&leaf).map_err(|e| Status::unauthenticated(e.to_string()))?;
        if self.plane.state().revoked_serials.contains(&serial) || self.crl.revokes(&serial) {
            tracing::warn!(
                serial,
                "refused a revoked node certificate on the Raft port"
            );
            return Err(Status::permission_denied(format!(
                "certificate serial {serial} is revoked"
            )));
        }
        match identity {
            Identity::Node(_) => {}
            Identity::Cluster(c) => {
                return Err(Status::permission_denied(format!(
                    "cluster {c}'s certificate cannot talk to the control plane; use a node certificate"
                )));
            }
        }
        self.plane
            .handle(rpc, &req.into_inner().json)
            .await
            .map(|json| Response::new(RaftMessage { json }))
            .map_err(Status::invalid_argument)
    }
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.serve(Rpc::AppendEntries, req).await
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.serve(Rpc::InstallSnapshot, req).await
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.serve(Rpc::Vote, req).await
    }

    async fn forward(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.serve(Rpc::Forward, req).await
    }

    async fn peer(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.serve(Rpc::Peer, req).await
    }
}
