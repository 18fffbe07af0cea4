//! Agents follow the gateway cluster over the federation `Control` stream,
//! with real gateways (and their Raft control plane) and agents over mTLS:
//! a policy written to the control plane changes what the agent samples and
//! serves on `/sampling`, and its removal brings the local policy back; an
//! agent that learned the members (from Raft membership) fails over to
//! another gateway when its own stops, losing nothing; a restarted gateway
//! comes back with its policies from disk.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use control_plane::raft::{Applied, Command};
use edge_agent::Agent;
use ingest::ControlView;
use integration_tests::{Sandbox, wait_for};
use model::sampling::{HeadConfig, HeadRule, SamplingConfig};
use proto::otlp::{ExportTraceServiceRequest, Span, TraceServiceClient};
use serde_json::{Value, json};

/// Generous: a condition that holds is seen within milliseconds.
const DEADLINE: Duration = Duration::from_secs(30);

fn rule(service: &str, probability: Option<f64>, rate: Option<f64>) -> HeadRule {
    HeadRule {
        cluster: None,
        service: Some(service.into()),
        operation: None,
        probability,
        max_traces_per_second: rate,
    }
}

fn head(rules: Vec<HeadRule>) -> SamplingConfig {
    SamplingConfig {
        head: HeadConfig {
            default_probability: 1.0,
            rules,
        },
        tail: None,
    }
}

/// `n` one-span traces of `service`, trace ids numbered from `first`.
fn request(service: &str, first: u32, n: u32) -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
    let start = 1_700_000_000_000_000_000u64;
    let ids: Vec<[u8; 16]> = (first..first + n)
        .map(|i| {
            let mut id = [0x5au8; 16];
            id[12..].copy_from_slice(&i.to_be_bytes());
            id
        })
        .collect();
    let spans = ids
        .iter()
        .map(|t| Span {
            trace_id: t.to_vec(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
            name: "op".into(),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_000_000,
            ..Default::default()
        })
        .collect();
    let req = integration_tests::otlp::request(service, spans);
    (req, ids)
}

async fn send(agent: &Agent, service: &str, first: u32, n: u32) -> anyhow::Result<Vec<[u8; 16]>> {
    let (req, ids) = request(service, first, n);
    let mut c = TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr)).await?;
    c.export(req).await?;
    Ok(ids)
}

async fn wait_acked(agent: &Agent, spans: u64) -> anyhow::Result<()> {
    wait_for(&format!("{spans} spans acknowledged"), DEADLINE, || async {
        (agent.forward_stats.acked_spans() == spans).then_some(())
    })
    .await
}

/// The agent's `/sampling?service=` answer.
async fn strategy(sb: &Sandbox, agent: &Agent, service: &str) -> anyhow::Result<Value> {
    let url = format!("http://{}/sampling?service={service}", agent.sampling_addr);
    Ok(sb.http.get(url).send().await?.json().await?)
}

async fn wait_strategy(
    sb: &Sandbox,
    agent: &Agent,
    service: &str,
    want: Value,
) -> anyhow::Result<()> {
    wait_for(
        &format!("/sampling?service={service} to answer {want}"),
        DEADLINE,
        || async { (strategy(sb, agent, service).await.ok()? == want).then_some(()) },
    )
    .await
}

fn probabilistic(rate: f64) -> Value {
    json!({"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": rate}})
}

fn rate_limited(per_second: f64) -> Value {
    json!({"strategyType": "RATE_LIMITING", "rateLimitingSampling": {"maxTracesPerSecond": per_second}})
}

/// Makes `policies` the cluster's sampling policies, through the control
/// plane (Raft) of `sb`'s gateway.
async fn set_policies(sb: &Sandbox, policies: &[(&str, SamplingConfig)]) -> anyhow::Result<()> {
    let plane = &sb.gateway.plane;
    let current: Vec<String> = plane.state().policies.keys().cloned().collect();
    for cluster in current {
        if !policies.iter().any(|(k, _)| *k == cluster) {
            plane.write(Command::DeletePolicy { cluster }).await?;
        }
    }
    for (cluster, policy) in policies {
        let put = Command::PutPolicy {
            cluster: (*cluster).to_owned(),
            policy: policy.clone(),
        };
        let applied = plane.write(put).await?;
        anyhow::ensure!(!matches!(applied, Applied::Refused(_)), "{applied:?}");
    }
    Ok(())
}

/// Publishes `policies` on `sb`'s gateway's control feed directly, as a
/// misbehaving gateway could, keeping its member list.
fn publish(sb: &Sandbox, policies: &[(&str, SamplingConfig)]) {
    let gateways = sb.gateway.control.borrow().gateways.clone();
    sb.gateway.control.send_replace(Arc::new(ControlView {
        gateways,
        policies: policies
            .iter()
            .map(|(k, p)| ((*k).to_owned(), p.clone()))
            .collect::<BTreeMap<_, _>>(),
        ..ControlView::default()
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_policy_reaches_the_agent_and_its_removal_reverts() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(&[]).await?;
    let mut cfg = sb.agent_config("east", "east")?;
    // The local policy: rate-limit one service (visible on /sampling).
    cfg.sampling = head(vec![rule("limited", None, Some(2.0))]);
    let agent = Agent::start(cfg).await?;
    sb.agents.insert("east".into(), agent);
    let agent = sb.agent("east")?;
    wait_for("the control stream", DEADLINE, || async {
        (sb.gateway.metrics.active_control_streams() == 1).then_some(())
    })
    .await?;
    assert_eq!(strategy(&sb, agent, "limited").await?, rate_limited(2.0));

    // The gateway's policy for east drops `noisy` entirely; west's own
    // entry does not concern east.
    let drop_noisy = head(vec![rule("noisy", Some(0.0), None)]);
    set_policies(
        &sb,
        &[
            ("east", drop_noisy.clone()),
            ("west", head(vec![rule("noisy", Some(1.0), None)])),
        ],
    )
    .await?;
    wait_strategy(&sb, agent, "noisy", probabilistic(0.0)).await?;
    // It replaced the local policy as a whole.
    assert_eq!(strategy(&sb, agent, "limited").await?, probabilistic(1.0));
    let noisy = send(agent, "noisy", 0, 40).await?;
    send(agent, "kept", 1_000, 25).await?;
    assert_eq!(agent.sampling_stats.head_sampled_out.get(), 40);
    wait_acked(agent, 25).await?;
    assert_eq!(sb.gateway.metrics.spans_stored(), 25);
    for t in &noisy[..3] {
        let (status, _) = sb
            .get_json(&format!("/api/traces/{}", hex::encode(t)))
            .await?;
        assert_eq!(status, 404, "a dropped span is not stored");
    }

    // An invalid policy is refused by the control plane, and by the agent
    // if a gateway sent it anyway; the agent keeps the one it runs.
    let mut invalid = drop_noisy.clone();
    invalid.head.default_probability = 2.0;
    let refused = sb
        .gateway
        .plane
        .write(Command::PutPolicy {
            cluster: "east".into(),
            policy: invalid.clone(),
        })
        .await?;
    assert!(matches!(refused, Applied::Refused(_)), "{refused:?}");
    publish(&sb, &[("east", invalid)]);
    wait_for("the invalid policy refused", DEADLINE, || async {
        (agent.control_stats.updates("invalid_policy") == 1).then_some(())
    })
    .await?;
    assert_eq!(strategy(&sb, agent, "noisy").await?, probabilistic(0.0));

    // No policy for east any more: back to the local one.
    set_policies(&sb, &[("west", drop_noisy.clone())]).await?;
    wait_strategy(&sb, agent, "limited", rate_limited(2.0)).await?;
    assert_eq!(strategy(&sb, agent, "noisy").await?, probabilistic(1.0));
    send(agent, "noisy", 2_000, 40).await?;
    assert_eq!(agent.sampling_stats.head_sampled_out.get(), 40);
    wait_acked(agent, 65).await?;

    // A policy for every cluster ("*") applies to east too.
    set_policies(&sb, &[("*", drop_noisy)]).await?;
    wait_strategy(&sb, agent, "noisy", probabilistic(0.0)).await?;
    send(agent, "noisy", 3_000, 10).await?;
    assert_eq!(agent.sampling_stats.head_sampled_out.get(), 50);
    assert_eq!(sb.gateway.metrics.spans_stored(), 65);

    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_fails_over_to_the_members_it_learned() -> anyhow::Result<()> {
    // The sandbox's gateway is B, the survivor; A is the agent's only
    // --gateway and stops half-way.
    let mut sb = Sandbox::start(&[]).await?;
    let a = sb.start_peer_gateway("a").await?;
    let url = |addr: std::net::SocketAddr| format!("https://{addr}");
    let (a_url, b_url) = (url(a.federation_addr), url(sb.gateway.federation_addr));
    let mut cfg = sb.agent_config("east", "east")?;
    cfg.gateways = vec![a_url.clone()];
    let state_dir = cfg.buffer_dir.clone();
    let agent = Agent::start(cfg).await?;
    sb.agents.insert("east".into(), agent);
    let agent = sb.agent("east")?;

    // A joined B's cluster: both publish the Raft membership's view.
    let mut members = vec![a_url.clone(), b_url.clone()];
    members.sort();
    wait_for("the agent to learn the members", DEADLINE, || async {
        (agent.gateway_urls() == members).then_some(())
    })
    .await?;
    let remembered = std::fs::read_to_string(state_dir.join("gateways"))?;
    assert!(
        remembered.contains(&a_url) && remembered.contains(&b_url),
        "{remembered}"
    );

    let mut traces = send(agent, "svc", 0, 30).await?;
    wait_acked(agent, 30).await?;
    assert_eq!(a.metrics.spans_stored(), 30, "A took the first spans");

    assert!(
        a.shutdown(Duration::from_secs(5)).await,
        "A stopped cleanly"
    );
    traces.extend(send(agent, "svc", 100, 50).await?);
    wait_acked(agent, 80).await?;
    assert_eq!(sb.gateway.metrics.spans_stored(), 50, "B took the rest");
    // The control stream moved to B as well.
    wait_for("the control stream on B", DEADLINE, || async {
        (sb.gateway.metrics.active_control_streams() == 1 && agent.control_stats.is_connected())
            .then_some(())
    })
    .await?;

    // Every span is stored, once, and B serves all of them.
    let mut found = 0;
    for t in &traces {
        let (status, body) = sb
            .get_json(&format!("/api/traces/{}", hex::encode(t)))
            .await?;
        anyhow::ensure!(status == 200, "trace {} missing", hex::encode(t));
        found += body["data"][0]["spans"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(found, 80);
    assert_eq!(agent.forward_stats.dropped_spans(), 0);

    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_follows_its_gateway_again_after_a_restart() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(&[]).await?;
    let a = sb.start_peer_gateway("a").await?;
    let mut cfg = sb.agent_config("east", "east")?;
    cfg.gateways = vec![format!("https://{}", a.federation_addr)];
    let agent = Agent::start(cfg).await?;
    sb.agents.insert("east".into(), agent);
    let agent = sb.agent("east")?;
    let put = Command::PutPolicy {
        cluster: "east".into(),
        policy: head(vec![rule("svc", Some(0.5), None)]),
    };
    assert_eq!(a.plane.write(put).await?, Applied::Done);
    wait_strategy(&sb, agent, "svc", probabilistic(0.5)).await?;

    // The gateway restarts on the same addresses; its control state comes
    // back from its Raft log, then changes.
    let federation = a.federation_addr;
    let raft = a.raft_addr;
    assert!(a.shutdown(Duration::from_secs(5)).await);
    let dir = sb.dir.path().join("gateway-a");
    let mut gcfg = Sandbox::gateway_config(&dir)?;
    gcfg.stores = sb.stores.clone();
    gcfg.tls = gateway::config::TlsSource::Files {
        ca: sb.gateway.tls.ca.clone(),
        cert: sb.gateway.tls.cert.clone(),
        key: sb.gateway.tls.key.clone(),
    };
    gcfg.federation = federation;
    gcfg.cluster = gateway::config::ClusterConfig {
        node_id: 2,
        bootstrap: gateway::config::Bootstrap::Join(sb.gateway.raft_addr.to_string()),
        ..gateway::config::ClusterConfig::single(raft)
    };
    let a = gateway::Gateway::start(gcfg).await?;
    wait_for("the policy back from disk", DEADLINE, || async {
        a.plane.state().policies.contains_key("east").then_some(())
    })
    .await?;
    wait_strategy(&sb, agent, "svc", probabilistic(0.5)).await?;
    let change = Command::PutPolicy {
        cluster: "east".into(),
        policy: head(vec![rule("svc", Some(0.25), None)]),
    };
    assert_eq!(a.plane.write(change).await?, Applied::Done);
    wait_strategy(&sb, agent, "svc", probabilistic(0.25)).await?;
    // While A was down the agent followed B (it learned both members);
    // either way it follows exactly one gateway.
    wait_for("one control stream", DEADLINE, || async {
        let streams =
            a.metrics.active_control_streams() + sb.gateway.metrics.active_control_streams();
        (streams == 1 && agent.control_stats.is_connected()).then_some(())
    })
    .await?;

    sb.shutdown().await;
    assert!(a.shutdown(Duration::from_secs(5)).await);
    Ok(())
}
