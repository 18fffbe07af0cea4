//! `GET /api/v1/agents`: real agents over mTLS report spans and buffer
//! state to the gateway they forward to; any member answers for the whole
//! gateway cluster; a stopped agent shows as disconnected; a member that
//! does not answer is listed in `errors`.

use std::time::Duration;

use edge_agent::Agent;
use integration_tests::{Sandbox, wait_for};
use proto::otlp::{ExportTraceServiceRequest, Span, TraceServiceClient};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);
/// The sandbox's `--buffer-max-bytes`.
const CAPACITY: u64 = 64 << 20;

/// `n` one-span traces, ids numbered from `first` under `tag`.
fn request(service: &str, tag: u8, n: u32) -> ExportTraceServiceRequest {
    let start = 1_700_000_000_000_000_000u64;
    let spans = (0..n)
        .map(|i| {
            let mut id = [tag; 16];
            id[12..].copy_from_slice(&i.to_be_bytes());
            Span {
                trace_id: id.to_vec(),
                span_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
                name: "op".into(),
                kind: 2,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1_000_000,
                ..Default::default()
            }
        })
        .collect();
    integration_tests::otlp::request(service, spans)
}

async fn send(agent: &Agent, tag: u8, n: u32) -> anyhow::Result<()> {
    let mut c = TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr)).await?;
    c.export(request("svc", tag, n)).await?;
    wait_for(&format!("{n} spans acknowledged"), DEADLINE, || async {
        (agent.forward_stats.acked_spans() == u64::from(n)).then_some(())
    })
    .await
}

async fn agents(sb: &Sandbox, query: &str) -> anyhow::Result<Value> {
    let (status, body) = sb.get_json(&format!("/api/v1/agents{query}")).await?;
    anyhow::ensure!(status == 200, "HTTP {status}: {body}");
    Ok(body)
}

fn row<'a>(body: &'a Value, cluster: &str) -> Option<&'a Value> {
    body["data"]
        .as_array()?
        .iter()
        .find(|r| r["cluster"] == cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_of_every_member_with_spans_and_buffer() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(&["east", "west"]).await?;
    let peer = sb.start_peer_gateway("b").await?;
    let mut cfg = sb.agent_config("north", "north")?;
    cfg.gateways = vec![format!("https://{}", peer.federation_addr)];
    sb.agents.insert("north".into(), Agent::start(cfg).await?);

    send(sb.agent("east")?, 0xe1, 30).await?;
    send(sb.agent("west")?, 0xe2, 20).await?;
    send(sb.agent("north")?, 0xe3, 10).await?;

    let me = sb.gateway.plane.id();
    let expect = [
        ("east", 30, me, &sb.agent("east")?.agent_id),
        ("west", 20, me, &sb.agent("west")?.agent_id),
        ("north", 10, peer.plane.id(), &sb.agent("north")?.agent_id),
    ];
    // Counted once the gateway committed; the Control streams are open.
    let body = wait_for("all three agents, connected", DEADLINE, || async {
        let b = agents(&sb, "").await.ok()?;
        expect
            .iter()
            .all(|(c, n, _, _)| {
                row(&b, c).is_some_and(|r| r["spansTotal"] == *n && r["connected"] == true)
            })
            .then_some(b)
    })
    .await?;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(3), "{body}");
    assert!(
        body.get("errors").is_none(),
        "every member answered: {body}"
    );
    for (cluster, _, gateway, id) in expect {
        let r = row(&body, cluster).expect("listed");
        assert_eq!(r["agentId"], id.as_str(), "{r}");
        assert_eq!(r["gateway"], gateway, "reported by its own gateway: {r}");
        assert_eq!(r["buffer"]["capacityBytes"], CAPACITY, "{r}");
        assert!(r["buffer"]["usedBytes"].as_u64().is_some(), "{r}");
        assert!(r["spansPerSec"].as_f64().is_some_and(|s| s > 0.0), "{r}");
        assert!(r["lastSeenMs"].as_u64().is_some_and(|t| t > 0), "{r}");
    }

    // Each node alone knows only its own agents.
    let local = agents(&sb, "?scope=local").await?;
    assert!(
        row(&local, "east").is_some() && row(&local, "north").is_none(),
        "{local}"
    );
    let (status, _) = sb.get_json("/api/v1/agents?scope=nope").await?;
    assert_eq!(status, 400);

    // A stopped agent stays listed, disconnected, through the other node.
    let north = sb.agents.remove("north").expect("started above");
    north.shutdown(Duration::from_secs(5)).await;
    wait_for(
        "the stopped agent to show disconnected",
        DEADLINE,
        || async {
            let b = agents(&sb, "").await.ok()?;
            let r = row(&b, "north")?;
            (r["connected"] == false && r["spansTotal"] == 10).then_some(())
        },
    )
    .await?;

    // A member that does not answer is an error entry, not a failure.
    let peer_id = peer.plane.id();
    peer.shutdown(Duration::from_secs(5)).await;
    let body = agents(&sb, "").await?;
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| e["gateway"] == peer_id),
        "the stopped member is reported: {body}"
    );
    assert!(
        row(&body, "east").is_some() && row(&body, "north").is_none(),
        "{body}"
    );

    sb.shutdown().await;
    Ok(())
}
