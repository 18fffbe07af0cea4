//! Defect 4 at the mTLS ports (federation, Raft): 256 idle TCP connects
//! from one address used to take every handshake slot, so an agent on
//! another host waited for their 10 s handshake timeout. With the per-IP
//! limit the flood holds 16 slots and the rest of it is closed at once.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mtls::{
    Refused,
    accept::{HANDSHAKE_TIMEOUT, MAX_HANDSHAKES, MAX_HANDSHAKES_PER_IP},
    certs::{self, Subject},
};
use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject};
use telemetry::Shutdown;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

/// A real agent: a cluster certificate of the same CA.
fn agent_config(dir: &std::path::Path) -> anyhow::Result<Arc<ClientConfig>> {
    let ca = certs::ca_paths(dir);
    let agent = certs::issue(dir, &Subject::Cluster("c1".into()), &dir.join("agent"))?;
    let mut roots = RootCertStore::empty();
    for c in mtls::config::certs(&ca.cert)? {
        roots.add(c)?;
    }
    let key = PrivateKeyDer::from_pem_slice(&std::fs::read(&agent.key)?)?;
    let mut cfg = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(mtls::config::certs(&agent.cert)?, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// Connects from `source` (any 127/8 address works on Linux) and completes
/// an mTLS handshake.
async fn handshake_from(
    source: [u8; 4],
    server: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> anyhow::Result<()> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from((source, 0)))?;
    let tcp = sock.connect(server).await?;
    TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connects_from_one_ip_do_not_starve_agents_elsewhere() -> anyhow::Result<()> {
    telemetry::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    certs::init_ca(dir.path())?;
    let node = certs::issue(
        dir.path(),
        &Subject::Node {
            name: "gw".into(),
            hosts: Vec::new(),
        },
        &dir.path().join("node"),
    )?;
    let server = mtls::server_config(&certs::ca_paths(dir.path()).cert, &node.cert, &node.key)?;
    let client = agent_config(dir.path())?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sd = Shutdown::new();
    let per_ip = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&per_ip);
    let mut established = mtls::incoming(
        listener,
        server,
        &sd,
        Arc::new(move |why| {
            if why == Refused::PerIpLimit {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }),
    );

    let mut idle = Vec::new();
    for _ in 0..MAX_HANDSHAKES {
        idle.push(TcpStream::connect(addr).await?);
    }
    // The agent finishes well inside the time the idle connections would
    // hold their slots for (before: it waited for their timeout).
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT / 2,
        handshake_from([127, 0, 0, 2], addr, Arc::clone(&client)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the agent's handshake was starved by the idle connects"))??;
    let stream = tokio::time::timeout(Duration::from_secs(5), established.recv()).await?;
    assert!(
        matches!(stream, Some(Ok(_))),
        "tonic gets the agent's stream"
    );

    // Everything beyond the flood's share was closed at once and counted.
    let want = MAX_HANDSHAKES - MAX_HANDSHAKES_PER_IP;
    tokio::time::timeout(Duration::from_secs(10), async {
        while per_ip.load(Ordering::SeqCst) < want {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;
    assert_eq!(per_ip.load(Ordering::SeqCst), want);
    drop(idle);
    assert!(sd.shutdown(Duration::from_secs(10)).await);
    Ok(())
}
