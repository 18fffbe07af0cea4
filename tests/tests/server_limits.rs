//! Defect 7: the federation and Raft ports bound the bytes a connection
//! holds before its messages are decoded. Before, tonic buffered whatever a
//! peer announced (up to the message limit, on as many streams as it
//! liked) and admission ran only on the decoded message.

use std::{net::SocketAddr, time::Duration};

use control_plane::raft::network::grpc::MAX_MESSAGE_BYTES;
use futures::future::select_all;
use integration_tests::{
    Sandbox,
    rawgrpc::{announce, client_config, grpc_status, h2_connect},
};
use mtls::certs::{self, CertPaths, Subject};
use receiver::Limits;

/// How long the refusal may take before the test fails (before the fix it
/// never came).
const REFUSED_WITHIN: Duration = Duration::from_secs(10);

/// Three calls on one connection each announce `len` bytes, where two fit
/// the connection's budget: one of them is refused at once with
/// RESOURCE_EXHAUSTED and a retry hint, before its bytes are sent.
async fn third_announcement_is_refused(
    addr: SocketAddr,
    path: &str,
    len: u32,
    ca: &std::path::Path,
    id: &CertPaths,
) -> anyhow::Result<()> {
    let (client, driver) = h2_connect(addr, client_config(ca, &id.cert, &id.key)?).await?;
    let mut replies = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let (reply, body) = announce(&client, path, len).await?;
        replies.push(Box::pin(reply));
        bodies.push(body);
    }
    let (first, _, rest) = tokio::time::timeout(REFUSED_WITHIN, select_all(replies))
        .await
        .map_err(|_| anyhow::anyhow!("{path}: nothing refused; the announced bytes were held"))?;
    let first = first?;
    assert_eq!(
        grpc_status(&first),
        Some("8"),
        "{path}: {:?}",
        first.headers()
    );
    assert!(
        first.headers().contains_key("grpc-status-details-bin"),
        "{path}: RetryInfo: {:?}",
        first.headers()
    );
    let message = first
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(message.contains("connection"), "{path}: {message}");
    drop((rest, bodies, client));
    driver.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_and_raft_connections_hold_bounded_bytes() -> anyhow::Result<()> {
    integration_tests::init();
    let sb = Sandbox::start(&[]).await?;
    let ca = sb.gateway.tls.ca.clone();
    let agent = certs::issue(
        &sb.ca_dir(),
        &Subject::Cluster("c1".into()),
        &sb.dir.path().join("c1"),
    )?;
    let peer = certs::issue(
        &sb.ca_dir(),
        &Subject::Node {
            name: "peer".into(),
            hosts: Vec::new(),
        },
        &sb.dir.path().join("peer"),
    )?;
    let max_message = Limits::default().max_decompressed_bytes as u32 + (1 << 16);
    for path in [
        "/meridian.federation.v1.Federation/Forward",
        "/meridian.metrics.v1.Metrics/ForwardWindows",
    ] {
        third_announcement_is_refused(sb.gateway.federation_addr, path, max_message, &ca, &agent)
            .await?;
    }
    third_announcement_is_refused(
        sb.gateway.raft_addr,
        "/meridian.raft.v1.Raft/AppendEntries",
        MAX_MESSAGE_BYTES as u32,
        &ca,
        &peer,
    )
    .await?;
    sb.shutdown().await;
    Ok(())
}
