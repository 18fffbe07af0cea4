//! mTLS for the gateway's ports (federation from agents, Raft between
//! gateways).
//!
//! - [`config`]: rustls server configs from PEM files, requiring a client
//!   certificate signed by the Meridian CA, and the `--http` port's
//!   HTTPS config (server certificate only);
//! - [`accept`]: the bounded accept loop (handshakes in total, per source
//!   IP, in time) handing established streams to tonic;
//! - [`grpc`]: the tonic server of an mTLS port, with the shared gRPC
//!   settings and its byte budget;
//! - [`crl`]: the optional CRL file (`--tls-crl`), reloaded on change;
//! - [`certs`]: the development CA, agent and node certificates, and the
//!   identity a certificate proves ([`Identity`]: a cluster or a node).
//!
//! Must not know: what travels over the connections (no proto, no store,
//! no Raft). Ingest, the control plane and metrics-alerts depend on it.

pub mod accept;
pub mod certs;
pub mod config;
pub mod crl;
pub mod grpc;

pub use accept::{OnRefused, Refused, incoming};
pub use certs::{CertError, Identity, identity_and_serial_of, identity_of, serial_of};
pub use config::{TlsError, https_server_config, server_config};
pub use crl::{CrlError, Revocations};
