//! Ingest identity with real processes over real mTLS (the identity
//! issue): plain OTLP is stored under `--default-cluster` whatever it
//! claims; an agent of an unregistered or deleted cluster is refused, keeps
//! its spans in its WAL and delivers every one of them once the cluster is
//! registered again (exact accounting: spans acknowledged by the agent ==
//! spans stored).

use std::time::{Duration, Instant};

use anyhow::Context;
use integration_tests::{
    cluster::{ProcessCluster, ensure_ok},
    otlp::{numbered_spans, request_with, trace_id},
    process::{AgentProcess, metric},
    tag, wait_for,
};
use model::TraceId;
use proto::otlp::{self, Span, string_kv};
use serde_json::Value;

const GATEWAY: &str = env!("CARGO_BIN_EXE_sut-gateway");
const AGENT: &str = env!("CARGO_BIN_EXE_sut-agent");
const DEADLINE: Duration = Duration::from_secs(30);
/// The requirement: a deleted cluster's agents are cut off within this.
const CUT_OFF: Duration = Duration::from_secs(5);
const SPANS_PER_TRACE: usize = 2;

fn spans(id: TraceId) -> Vec<Span> {
    numbered_spans(id, SPANS_PER_TRACE as u8, telemetry::clock::unix_nanos())
}

/// A one-node gateway cluster on the embedded store, with `extra` flags.
async fn one_gateway(db: &tempfile::TempDir, extra: &[&str]) -> anyhow::Result<ProcessCluster> {
    let store = format!("sqlite://{}", db.path().join("meridian.db").display());
    let mut c = ProcessCluster::new(GATEWAY, vec![store])?;
    c.start_node_with(1, None, extra).await?;
    c.wait_leader(&[1], DEADLINE).await?;
    Ok(c)
}

async fn trace(c: &ProcessCluster, id: TraceId) -> anyhow::Result<Option<Value>> {
    let (status, body) = c
        .get_json(1, &format!("/api/traces/{}", id.to_jaeger_hex()))
        .await?;
    Ok((status == 200).then(|| body["data"][0].clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_otlp_is_stored_under_the_default_cluster_whatever_it_claims() -> anyhow::Result<()> {
    for (trusted, expected) in [(false, "shared"), (true, "east")] {
        let db = tempfile::tempdir()?;
        let mut flags = vec!["--default-cluster", "shared"];
        if trusted {
            flags.push("--otlp-trust-cluster-attribute");
        }
        let c = one_gateway(&db, &flags).await?;
        let g = c.gateway(1)?;
        let mut client =
            otlp::TraceServiceClient::connect(format!("http://{}", g.otlp_grpc)).await?;
        let id = trace_id(0x0a, u64::from(trusted));
        let claim = vec![
            string_kv("service.name", "pod"),
            string_kv("k8s.cluster.name", "east"),
        ];
        client.export(request_with(claim, spans(id))).await?;
        let stored = wait_for("the plain OTLP trace", DEADLINE, || async {
            trace(&c, id).await.ok().flatten()
        })
        .await?;
        let process = stored["processes"]
            .as_object()
            .and_then(|p| p.values().next())
            .context("a process")?;
        assert_eq!(
            tag(&process["tags"], "k8s.cluster.name"),
            Some(&Value::from(expected)),
            "trusted={trusted}: {stored:#}"
        );
    }
    Ok(())
}

async fn agent_metric(c: &ProcessCluster, agent: &AgentProcess, name: &str) -> Option<f64> {
    let url = format!("http://{}/metrics", agent.admin);
    let text = c.http.get(url).send().await.ok()?.text().await.ok()?;
    metric(&text, name)
}

async fn gateway_metric(c: &ProcessCluster, name: &str) -> Option<f64> {
    let url = c.gateway(1).ok()?.url("/metrics");
    let text = c
        .http
        .get(url)
        .bearer_auth(integration_tests::cluster::ADMIN_TOKEN)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metric(&text, name)
}

const UNREGISTERED: &str = "meridian_gateway_identity_refused_total{reason=\"unregistered\"}";

/// Sends `n` traces (numbered from `first`) into the agent; each is
/// acknowledged by the agent (its WAL) whatever the gateway does.
async fn send(agent: &AgentProcess, first: u64, n: u64) -> anyhow::Result<Vec<TraceId>> {
    let mut client =
        otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc)).await?;
    let mut ids = Vec::new();
    for k in first..first + n {
        let id = trace_id(0xe1, k);
        let resource = vec![string_kv("service.name", "checkout")];
        client.export(request_with(resource, spans(id))).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Counts the spans stored of `ids` (each trace holds its spans once).
async fn stored(c: &ProcessCluster, ids: &[TraceId]) -> anyhow::Result<usize> {
    let mut n = 0;
    for id in ids {
        if let Some(t) = trace(c, *id).await? {
            n += t["spans"].as_array().map_or(0, Vec::len);
        }
    }
    Ok(n)
}

async fn put_cluster(c: &ProcessCluster, name: &str) -> anyhow::Result<()> {
    let path = format!("/api/v1/admin/clusters/{name}");
    let (status, body) = c
        .request(1, reqwest::Method::PUT, &path, None, DEADLINE)
        .await?;
    ensure_ok(&format!("PUT {path}"), status, &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_and_deleted_clusters_are_refused_and_lose_nothing() -> anyhow::Result<()> {
    let db = tempfile::tempdir()?;
    let c = one_gateway(&db, &[]).await?;
    // Registering any cluster turns the check on.
    put_cluster(&c, "west").await?;
    let east = c.start_agent(AGENT, "east", &[1]).await?;

    // Unregistered: refused, nothing stored, the agent keeps the spans.
    let mut sent = send(&east, 0, 20).await?;
    wait_for("the gateway to refuse east", DEADLINE, || async {
        (gateway_metric(&c, UNREGISTERED).await? >= 1.0).then_some(())
    })
    .await?;
    assert_eq!(stored(&c, &sent).await?, 0, "nothing of east is stored");
    let acked = agent_metric(&c, &east, "meridian_agent_spans_acked_total").await;
    assert_eq!(
        acked.unwrap_or(0.0),
        0.0,
        "the gateway acknowledged nothing"
    );

    // Registered: every span arrives, once.
    put_cluster(&c, "east").await?;
    let spans_sent = sent.len() * SPANS_PER_TRACE;
    wait_for("east's spans after registration", DEADLINE, || async {
        let a = agent_metric(&c, &east, "meridian_agent_spans_acked_total").await?;
        (a >= spans_sent as f64).then_some(())
    })
    .await?;
    assert_eq!(stored(&c, &sent).await?, spans_sent);
    wait_for("east's control stream", DEADLINE, || async {
        (agent_metric(&c, &east, "meridian_agent_control_connected").await? == 1.0).then_some(())
    })
    .await?;

    // Deleted: the agent is cut off within 5 s, its new spans wait in its
    // WAL.
    let refused_before = gateway_metric(&c, UNREGISTERED).await.unwrap_or(0.0);
    let path = "/api/v1/admin/clusters/east";
    let (status, body) = c
        .request(1, reqwest::Method::DELETE, path, None, DEADLINE)
        .await?;
    ensure_ok("DELETE east", status, &body)?;
    let deleted_at = Instant::now();
    wait_for("east's control stream to end", CUT_OFF, || async {
        (gateway_metric(&c, "meridian_gateway_control_streams").await? == 0.0).then_some(())
    })
    .await?;
    assert!(deleted_at.elapsed() <= CUT_OFF);
    let more = send(&east, 20, 20).await?;
    wait_for("the gateway to refuse deleted east", DEADLINE, || async {
        (gateway_metric(&c, UNREGISTERED).await? > refused_before).then_some(())
    })
    .await?;
    assert_eq!(stored(&c, &more).await?, 0, "nothing after the deletion");

    // Registered again: the flow resumes, nothing lost, nothing twice.
    put_cluster(&c, "east").await?;
    sent.extend(more);
    let spans_sent = sent.len() * SPANS_PER_TRACE;
    wait_for("every span after re-registration", DEADLINE, || async {
        let a = agent_metric(&c, &east, "meridian_agent_spans_acked_total").await?;
        (a >= spans_sent as f64).then_some(a)
    })
    .await
    .map(|a| assert_eq!(a, spans_sent as f64, "each span acknowledged once"))?;
    assert_eq!(
        stored(&c, &sent).await?,
        spans_sent,
        "spans sent == spans stored"
    );
    let dropped = agent_metric(&c, &east, "meridian_agent_spans_dropped_permanent_total").await;
    assert_eq!(
        dropped.unwrap_or(0.0),
        0.0,
        "nothing was dropped as refused for good"
    );
    Ok(())
}

/// The serial of the PEM certificate at `path` (the deny list's form).
fn serial_of_file(path: &std::path::Path) -> anyhow::Result<String> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_file(path).context("a PEM certificate")?;
    Ok(mtls::serial_of(&der)?)
}

const REVOKED: &str = "meridian_gateway_identity_refused_total{reason=\"revoked\"}";

/// How a certificate is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revoke {
    /// `POST /api/v1/admin/certs/revoked` (the replicated deny list).
    DenyList,
    /// A new version of the `--tls-crl` file, signed by the CA.
    CrlFile,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_is_cut_off_and_its_spans_wait_for_a_new_certificate() -> anyhow::Result<()>
{
    revoked_agent(Revoke::DenyList).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_revoked_by_the_crl_file_is_cut_off_and_loses_nothing() -> anyhow::Result<()> {
    revoked_agent(Revoke::CrlFile).await
}

async fn revoked_agent(how: Revoke) -> anyhow::Result<()> {
    let db = tempfile::tempdir()?;
    let crl = db.path().join("crl.pem");
    let c = match how {
        Revoke::DenyList => one_gateway(&db, &[]).await?,
        Revoke::CrlFile => {
            // The CA is created with the cluster; the first CRL revokes
            // nothing of ours.
            let mut c = ProcessCluster::new(
                GATEWAY,
                vec![format!(
                    "sqlite://{}",
                    db.path().join("meridian.db").display()
                )],
            )?;
            mtls::certs::revocation_list(
                c.ca_dir(),
                &["7e57".into()],
                std::time::Duration::from_secs(86_400),
                &crl,
            )?;
            let flag = crl.display().to_string();
            c.start_node_with(1, None, &["--tls-crl", &flag]).await?;
            c.wait_leader(&[1], DEADLINE).await?;
            c
        }
    };
    let east = c.start_agent(AGENT, "east", &[1]).await?;
    let mut sent = send(&east, 100, 10).await?;
    let first = sent.len() * SPANS_PER_TRACE;
    wait_for("east's first spans", DEADLINE, || async {
        let a = agent_metric(&c, &east, "meridian_agent_spans_acked_total").await?;
        (a >= first as f64).then_some(())
    })
    .await?;
    wait_for("east's control stream", DEADLINE, || async {
        (gateway_metric(&c, "meridian_gateway_control_streams").await? == 1.0).then_some(())
    })
    .await?;

    // Revoked (in `openssl x509 -serial` form): the open stream ends within
    // 5 s and the next batches are refused; the agent keeps them.
    let cert = c.dir.path().join("agent-certs").join("cluster-east.pem");
    let serial = serial_of_file(&cert)?;
    let revoked_at = match how {
        Revoke::DenyList => {
            let shown = serial.to_ascii_uppercase();
            let body = serde_json::json!({ "serial": shown });
            let (status, answer) = c
                .request(
                    1,
                    reqwest::Method::POST,
                    "/api/v1/admin/certs/revoked",
                    Some(&body),
                    DEADLINE,
                )
                .await?;
            ensure_ok("POST certs/revoked", status, &answer)?;
            Instant::now()
        }
        Revoke::CrlFile => {
            // Written beside it and renamed, as an operator's tool would.
            let next = db.path().join("crl.pem.new");
            mtls::certs::revocation_list(
                c.ca_dir(),
                &["7e57".into(), serial.clone()],
                std::time::Duration::from_secs(86_400),
                &next,
            )?;
            std::fs::rename(&next, &crl)?;
            Instant::now()
        }
    };
    wait_for("the revoked agent's stream to end", CUT_OFF, || async {
        (gateway_metric(&c, "meridian_gateway_control_streams").await? == 0.0).then_some(())
    })
    .await?;
    assert!(revoked_at.elapsed() <= CUT_OFF);
    // The deny list shows what was revoked through it, not the CRL's.
    let (_, listed) = c.get_json(1, "/api/v1/admin/certs/revoked").await?;
    let expected = match how {
        Revoke::DenyList => serde_json::json!([serial]),
        Revoke::CrlFile => serde_json::json!([]),
    };
    assert_eq!(listed, expected);
    let held = send(&east, 200, 10).await?;
    wait_for(
        "the gateway to refuse the revoked certificate",
        DEADLINE,
        || async { (gateway_metric(&c, REVOKED).await? >= 1.0).then_some(()) },
    )
    .await?;
    assert_eq!(
        stored(&c, &held).await?,
        0,
        "nothing from a revoked certificate"
    );

    // A new certificate (a new serial), the same buffer: every held span
    // arrives, none twice.
    east.kill9()?;
    let east = c.start_agent(AGENT, "east", &[1]).await?;
    assert_ne!(serial_of_file(&cert)?, serial, "a new certificate");
    sent.extend(held);
    let spans_sent = sent.len() * SPANS_PER_TRACE;
    wait_for(
        "every held span with the new certificate",
        DEADLINE,
        || async { (stored(&c, &sent).await.ok()? >= spans_sent).then_some(()) },
    )
    .await?;
    assert_eq!(
        stored(&c, &sent).await?,
        spans_sent,
        "spans sent == spans stored"
    );
    let dropped = agent_metric(&c, &east, "meridian_agent_spans_dropped_permanent_total").await;
    assert_eq!(dropped.unwrap_or(0.0), 0.0);
    Ok(())
}
