//! Federation identity: only certificates from the gateway's CA get in, the
//! cluster comes from the certificate, and nothing from a refused sender is
//! stored. Replays are idempotent. A resource claiming another cluster
//! costs only its own spans, at the agent and at the gateway; a batch the
//! gateway refuses whole lands in the agent's dead-letter directory.

use std::{path::Path, time::Duration};

use integration_tests::{Sandbox, wait_for};
use mtls::certs::{self, Subject};
use prost::Message;
use proto::{
    federation::{Compression, ForwardRequest, federation_client::FederationClient},
    otlp::{self, ExportTraceServiceRequest, Span},
};
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};

fn request(cluster_claim: Option<&str>, trace: u8, spans: u8) -> ExportTraceServiceRequest {
    request_ids(cluster_claim, trace, 1..=spans)
}

/// One resource (service `svc`, claiming `cluster_claim` if any) with a
/// span per id of `ids`, all in trace `trace`.
fn request_ids(
    cluster_claim: Option<&str>,
    trace: u8,
    ids: impl Iterator<Item = u8>,
) -> ExportTraceServiceRequest {
    let mut attributes = vec![otlp::string_kv("service.name", "svc")];
    if let Some(c) = cluster_claim {
        attributes.push(otlp::string_kv("k8s.cluster.name", c));
    }
    integration_tests::otlp::request_with(
        attributes,
        ids.map(|i| Span {
            trace_id: vec![trace; 16],
            span_id: vec![i; 8],
            name: format!("op-{i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_001_000_000,
            ..Default::default()
        })
        .collect(),
    )
}

fn forward(cluster: &str, req: &ExportTraceServiceRequest, seq: u64) -> ForwardRequest {
    let (payload, size) =
        proto::payload::encode(&[req.encode_to_vec()], 1).expect("zstd in memory");
    ForwardRequest {
        agent_id: "test".into(),
        cluster: cluster.into(),
        first_sequence: seq,
        last_sequence: seq,
        compression: Compression::Zstd as i32,
        payload,
        uncompressed_size: size,
        span_count: otlp::span_count(req) as u64,
        // An agent from before `AgentStatus`: the gateway must still accept it.
        status: None,
    }
}

async fn client(
    sb: &Sandbox,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<FederationClient<Channel>> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca)?));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert)?,
            std::fs::read(key)?,
        ));
    }
    let channel = Channel::from_shared(format!(
        "https://127.0.0.1:{}",
        sb.gateway.federation_addr.port()
    ))?
    .tls_config(tls)?
    .connect_lazy();
    Ok(FederationClient::new(channel))
}

async fn stored_services(sb: &Sandbox) -> anyhow::Result<usize> {
    let (_, body) = sb.get_json("/api/services").await?;
    Ok(body["data"].as_array().map(Vec::len).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_strangers_and_liars_and_stores_nothing_from_them() -> anyhow::Result<()> {
    let sb = Sandbox::start(&[]).await?;
    let ca = sb.gateway.tls.ca.clone();
    let out = sb.dir.path().join("certs");
    let a = certs::issue(&sb.ca_dir(), &Subject::Cluster("cluster-a".into()), &out)?;
    let node = certs::issue(
        &sb.ca_dir(),
        &Subject::Node {
            name: "gw-x".into(),
            hosts: vec![],
        },
        &out,
    )?;
    let other_dir = sb.dir.path().join("other-ca");
    certs::init_ca(&other_dir)?;
    let foreign = certs::issue(
        &other_dir,
        &Subject::Cluster("cluster-a".into()),
        &other_dir,
    )?;

    // 1. No client certificate: the TLS handshake is refused.
    let mut c = client(&sb, &ca, None).await?;
    let err = c
        .forward(forward("cluster-a", &request(None, 1, 2), 1))
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    // 2. A certificate from another CA: refused at the handshake too.
    let mut c = client(&sb, &ca, Some((&foreign.cert, &foreign.key))).await?;
    let err = c
        .forward(forward("cluster-a", &request(None, 2, 2), 1))
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    wait_for("two tls refusals", Duration::from_secs(5), || async {
        (sb.gateway.metrics.identity_refusals("tls") >= 2).then_some(())
    })
    .await?;

    // 3. A valid certificate whose agent claims another cluster.
    let mut c = client(&sb, &ca, Some((&a.cert, &a.key))).await?;
    let err = c
        .forward(forward("cluster-b", &request(None, 3, 2), 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("cluster-b"), "{}", err.message());
    // 4. Span data claiming another cluster.
    let err = c
        .forward(forward("cluster-a", &request(Some("cluster-b"), 4, 2), 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // 5. A gateway node certificate cannot forward spans.
    let mut n = client(&sb, &ca, Some((&node.cert, &node.key))).await?;
    let err = n
        .forward(forward("gw-x", &request(None, 5, 2), 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(sb.gateway.metrics.identity_refusals("cluster_mismatch"), 2);
    assert_eq!(sb.gateway.metrics.identity_refusals("node_cert"), 1);
    assert_eq!(
        stored_services(&sb).await?,
        0,
        "nothing from refused senders is stored"
    );
    for t in 1..=5u8 {
        let (status, _) = sb
            .get_json(&format!("/api/traces/{}", hex::encode([t; 16])))
            .await?;
        assert_eq!(status, 404);
    }

    // 6. The right identity is accepted; the cluster comes from the certificate.
    let resp = c
        .forward(forward("cluster-a", &request(Some("cluster-a"), 6, 3), 7))
        .await?
        .into_inner();
    assert_eq!(resp.committed_sequence, 7);
    assert_eq!(resp.accepted_spans, 3);
    let trace = sb.wait_for_trace(&hex::encode([6u8; 16]), 3).await?;
    assert_eq!(trace["processes"]["p1"]["serviceName"], "svc");
    // 7. A replay of the same batch creates no duplicates.
    c.forward(forward("cluster-a", &request(None, 6, 3), 7))
        .await?;
    let (_, body) = sb
        .get_json(&format!("/api/traces/{}", hex::encode([6u8; 16])))
        .await?;
    assert_eq!(body["data"][0]["spans"].as_array().map(Vec::len), Some(3));
    assert_eq!(sb.gateway.metrics.spans_stored(), 3);
    sb.shutdown().await;
    Ok(())
}

/// Defect 5. Failed on the old code emulated (the agent's screen stamping nothing, the gateway
/// refusing a batch with any foreign claim whole, no dead letter):
/// the refused batch was dropped, with nothing kept aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_the_wrong_cluster_gets_nothing_stored() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(&[]).await?;
    // --cluster east, but the certificate says west.
    let cfg = sb.agent_config("east", "west")?;
    let agent = edge_agent::Agent::start(cfg).await?;
    let mut otlp_client =
        otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr)).await?;
    otlp_client.export(request(None, 9, 4)).await?;
    wait_for(
        "the batch to be refused",
        Duration::from_secs(10),
        || async { (agent.forward_stats.dropped_spans() == 4).then_some(()) },
    )
    .await?;
    assert_eq!(agent.forward_stats.acked_spans(), 0);
    assert_eq!(sb.gateway.metrics.batches("refused"), 1);
    // The refused batch is kept aside, whole, in the dead-letter directory.
    let dl = agent.dead_letter.clone();
    wait_for("the dead letter", Duration::from_secs(10), || async {
        (dl.stats().batches("kept") == 1).then_some(())
    })
    .await?;
    let files: Vec<_> = std::fs::read_dir(dl.dir())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let kept = ExportTraceServiceRequest::decode(std::fs::read(&files[0])?.as_slice())?;
    assert_eq!(otlp::span_count(&kept), 4);
    // Its control stream is refused as well (and retried), each counted.
    let refusals = &sb.gateway.metrics;
    wait_for(
        "the control stream to be refused",
        Duration::from_secs(10),
        || async { (refusals.identity_refusals("cluster_mismatch") >= 2).then_some(()) },
    )
    .await?;
    assert!(!agent.control_stats.is_connected());
    assert_eq!(sb.gateway.metrics.active_control_streams(), 0);
    assert_eq!(stored_services(&sb).await?, 0);
    sb.agents.insert("east".into(), agent);
    sb.shutdown().await;
    Ok(())
}

/// Three resources in one request: no claim, the right claim, and a
/// foreign claim ("other"), in one trace.
fn mixed(trace: u8, own: &str) -> ExportTraceServiceRequest {
    let mut req = request_ids(None, trace, 1..=3);
    req.resource_spans
        .extend(request_ids(Some("other"), trace, 4..=4).resource_spans);
    req.resource_spans
        .extend(request_ids(Some(own), trace, 5..=6).resource_spans);
    req
}

/// Defect 5. Failed on the old code emulated (the agent's screen stamping nothing, the gateway
/// refusing a batch with any foreign claim whole, no dead letter):
/// no partial success; the whole request was refused downstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_cluster_claim_at_the_agent_costs_only_its_own_span() -> anyhow::Result<()> {
    let sb = Sandbox::start(&["east"]).await?;
    let agent = sb.agent("east")?;
    let mut app =
        otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr)).await?;
    let resp = app.export(mixed(0x21, "east")).await?.into_inner();
    let partial = resp.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("other"),
        "{}",
        partial.error_message
    );
    let stats = agent.forward_stats.clone();
    wait_for("the good spans acked", Duration::from_secs(20), || async {
        (stats.acked_spans() == 5).then_some(())
    })
    .await?;
    let trace = sb.wait_for_trace(&hex::encode([0x21u8; 16]), 5).await?;
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        sb.gateway.metrics.spans_stored(),
        5,
        "every good span, once"
    );
    for (_, process) in trace["processes"].as_object().into_iter().flatten() {
        let cluster = integration_tests::tag(&process["tags"], "k8s.cluster.name");
        assert_eq!(cluster, Some(&serde_json::Value::from("east")));
    }
    assert_eq!(agent.sampling_stats.foreign_cluster_refused.get(), 1);
    assert_eq!(agent.forward_stats.dropped_spans(), 0);
    assert_eq!(agent.dead_letter.stats().batches("kept"), 0);
    // A request of foreign claims only is refused whole, permanently.
    let err = app
        .export(request(Some("other"), 0x22, 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    sb.shutdown().await;
    Ok(())
}

/// Defect 5. Failed on the old code emulated (the agent's screen stamping nothing, the gateway
/// refusing a batch with any foreign claim whole, no dead letter):
/// the whole batch was refused, its five good spans with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_foreign_claims_per_resource() -> anyhow::Result<()> {
    // An agent from before the receipt stamp forwards a mixed batch.
    let sb = Sandbox::start(&[]).await?;
    let out = sb.dir.path().join("certs");
    let a = certs::issue(&sb.ca_dir(), &Subject::Cluster("cluster-a".into()), &out)?;
    let mut c = client(&sb, &sb.gateway.tls.ca, Some((&a.cert, &a.key))).await?;
    let resp = c
        .forward(forward("cluster-a", &mixed(0x31, "cluster-a"), 3))
        .await?
        .into_inner();
    assert_eq!(resp.committed_sequence, 3);
    assert_eq!(resp.accepted_spans, 5);
    assert_eq!(resp.rejected_spans, 1);
    assert_eq!(resp.foreign_cluster_spans, 1);
    assert!(
        resp.error_message.contains("other"),
        "{}",
        resp.error_message
    );
    let trace = sb.wait_for_trace(&hex::encode([0x31u8; 16]), 5).await?;
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(5));
    assert_eq!(sb.gateway.metrics.spans_stored(), 5);
    assert_eq!(sb.gateway.metrics.foreign_cluster_refusals(), 1);
    assert_eq!(sb.gateway.metrics.batches("committed"), 1);
    sb.shutdown().await;
    Ok(())
}
