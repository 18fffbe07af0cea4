//! The gateway over sharded Postgres (`MERIDIAN_TEST_POSTGRES`; skipped
//! without it unless `MERIDIAN_REQUIRE_POSTGRES=1`): agents over real mTLS
//! into two shards, a shard cut off with exact span accounting, and the
//! retention job.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use integration_tests::{Sandbox, process::metric, wait_for};
use model::TraceId;
use proto::otlp::{self, ExportTraceServiceRequest, Span};
use serde_json::Value;
use store::{
    SpanStore,
    shard::ShardMap,
    testsuite::pg::{self, CuttableProxy},
};

const SERVICE: &str = "pg-api";
const SPANS_PER_TRACE: u8 = 3;
const SEC: u64 = 1_000_000_000;
const HOUR: u64 = 3_600 * SEC;
const DAY: u64 = 24 * HOUR;

fn trace_id(n: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = 0x9c;
    b[8..].copy_from_slice(&n.to_be_bytes());
    TraceId::from_array(b)
}

/// Trace `n`: `SPANS_PER_TRACE` spans starting at `start`, from `cluster`
/// when given (agents stamp their own).
fn trace_request(n: u64, start: u64, cluster: Option<&str>) -> ExportTraceServiceRequest {
    let mut attributes = vec![otlp::string_kv("service.name", SERVICE)];
    if let Some(c) = cluster {
        attributes.push(otlp::string_kv("k8s.cluster.name", c));
    }
    integration_tests::otlp::request_with(
        attributes,
        (1..=SPANS_PER_TRACE)
            .map(|i| Span {
                trace_id: trace_id(n).as_bytes().to_vec(),
                span_id: vec![i; 8],
                name: format!("op-{i}"),
                start_time_unix_nano: start + u64::from(i),
                end_time_unix_nano: start + u64::from(i) + 1_000_000,
                ..Default::default()
            })
            .collect(),
    )
}

/// The server's address, for a proxy in front of it
/// (`postgres://user@127.0.0.1:PORT` → `127.0.0.1:PORT`).
fn host_port(server: &str) -> anyhow::Result<SocketAddr> {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    Ok(hostport.parse()?)
}

/// Sends traces `ns` (each its own request) to the agent of `cluster`.
async fn send(sb: &Sandbox, cluster: &str, ns: &[u64], start: u64) -> anyhow::Result<()> {
    let agent = sb.agent(cluster)?;
    let mut client =
        otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr)).await?;
    for n in ns {
        client.export(trace_request(*n, start, None)).await?;
    }
    Ok(())
}

/// Waits until every trace of `ns` is stored with all its spans, then
/// checks none is stored twice: (trace count, span count).
async fn wait_stored_exactly_once(
    store: &Arc<dyn SpanStore>,
    ns: &[u64],
) -> anyhow::Result<(usize, usize)> {
    wait_for(
        "every trace stored with all its spans",
        Duration::from_secs(90),
        || async {
            for n in ns {
                let t = store.get_trace(trace_id(*n)).await.ok()??;
                if t.spans.len() < usize::from(SPANS_PER_TRACE) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await?;
    let mut spans = 0;
    for n in ns {
        let t = store
            .get_trace(trace_id(*n))
            .await?
            .ok_or_else(|| anyhow::anyhow!("trace {n} vanished"))?;
        let ids: BTreeSet<_> = t.spans.iter().map(|s| s.span_id).collect();
        assert_eq!(ids.len(), t.spans.len(), "trace {n}: a span stored twice");
        assert_eq!(t.spans.len(), usize::from(SPANS_PER_TRACE), "trace {n}");
        spans += t.spans.len();
    }
    Ok((ns.len(), spans))
}

fn search_path() -> String {
    format!("/api/traces?service={SERVICE}&lookback=2h&limit=1500")
}

fn trace_ids_of(body: &Value) -> BTreeSet<String> {
    body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["traceID"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Spans per shard index the sharded store reports.
fn spans_per_shard(storage: &Value) -> Vec<u64> {
    storage["shards"]
        .as_array()
        .map(|a| a.iter().map(|s| s["spans"].as_u64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_writes_over_mtls_into_two_shards() -> anyhow::Result<()> {
    let Some(server) = pg::server_from_env("gateway over two postgres shards") else {
        return Ok(());
    };
    let urls = pg::fresh_databases(&server, 2).await;
    let sb = Sandbox::start_with(&["east"], |cfg| cfg.stores = urls.clone()).await?;
    let map = ShardMap::single_epoch(2)?;
    let start = telemetry::clock::unix_nanos() - 60 * SEC;
    let ns: Vec<u64> = (1..=40).collect();
    send(&sb, "east", &ns, start).await?;

    let (traces, spans) = wait_stored_exactly_once(&sb.gateway.store, &ns).await?;
    assert_eq!((traces, spans), (40, 40 * usize::from(SPANS_PER_TRACE)));
    let agent = sb.agent("east")?;
    wait_for("the agent's acks", Duration::from_secs(10), || async {
        (agent.forward_stats.acked_spans() == spans as u64).then_some(())
    })
    .await?;

    for n in &ns {
        let (status, body) = sb
            .get_json(&format!("/api/traces/{}", trace_id(*n).to_jaeger_hex()))
            .await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["data"][0]["spans"].as_array().map(Vec::len),
            Some(usize::from(SPANS_PER_TRACE))
        );
    }
    let (status, body) = sb.get_json(&search_path()).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], Value::Null, "every shard answered");
    let want: BTreeSet<String> = ns.iter().map(|n| trace_id(*n).to_jaeger_hex()).collect();
    assert_eq!(trace_ids_of(&body), want);

    let (status, storage) = sb.get_json("/api/v1/storage").await?;
    assert_eq!(status, 200, "{storage}");
    let mut expected = vec![0u64; 2];
    for n in &ns {
        expected[map.route(trace_id(*n), start) as usize] += u64::from(SPANS_PER_TRACE);
    }
    assert!(expected.iter().all(|s| *s > 0), "both shards hold traces");
    assert_eq!(spans_per_shard(&storage), expected, "{storage}");
    assert_eq!(storage["spans"], spans as u64);
    for (i, shard) in storage["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        assert!(shard.get("error").is_none(), "{shard}");
        assert!(shard["totalBytes"].as_u64().unwrap_or(0) > 0, "{shard}");
        assert_eq!(shard["clusters"][0]["cluster"], "east", "{shard}");
        assert_eq!(shard["clusters"][0]["spans"], expected[i], "{shard}");
    }
    let total: u64 = storage["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["totalBytes"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(storage["totalBytes"], total);
    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_outage_keeps_spans_in_the_agent_and_loses_none() -> anyhow::Result<()> {
    let Some(server) = pg::server_from_env("gateway with a shard cut off") else {
        return Ok(());
    };
    let dbs = pg::fresh_databases(&server, 2).await;
    let proxy = CuttableProxy::start(host_port(&server)?).await;
    let urls = vec![dbs[0].clone(), proxy.url_through(&dbs[1])];
    let sb = Sandbox::start_with(&["east"], |cfg| cfg.stores = urls).await?;
    let store = Arc::clone(&sb.gateway.store);
    let agent = sb.agent("east")?;
    let map = ShardMap::single_epoch(2)?;
    let start = telemetry::clock::unix_nanos() - 60 * SEC;
    let on = |ns: &[u64], shard: u32| -> BTreeSet<String> {
        ns.iter()
            .filter(|n| map.route(trace_id(**n), start) == shard)
            .map(|n| trace_id(*n).to_jaeger_hex())
            .collect()
    };

    // Before the outage: everything lands.
    let before: Vec<u64> = (1..=30).collect();
    send(&sb, "east", &before, start).await?;
    wait_stored_exactly_once(&store, &before).await?;

    proxy.cut();
    let during: Vec<u64> = (31..=90).collect();
    send(&sb, "east", &during, start).await?;
    let retries_at_cut = agent.forward_stats.retries();
    wait_for(
        "the gateway to refuse a batch for shard 1 and the agent to retry it",
        Duration::from_secs(60),
        || async {
            (sb.gateway.metrics.batches("store_unavailable") > 0
                && agent.forward_stats.retries() > retries_at_cut)
                .then_some(())
        },
    )
    .await?;
    assert!(agent.buffer.usage().2 > 0, "refused spans wait in the WAL");
    assert_eq!(
        agent.forward_stats.dropped_spans(),
        0,
        "the refusal is retryable: the agent drops nothing"
    );

    // Ready while a shard answers.
    let ready = sb.http.get(sb.url("/readyz")).send().await?;
    assert_eq!(ready.status().as_u16(), 200);

    // Search: 200, what shard 0 holds, and what is missing in `errors`.
    let (status, body) = sb.get_json(&search_path()).await?;
    assert_eq!(status, 200, "{body}");
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    assert!(!errors.is_empty(), "a partial result says so: {body}");
    assert!(
        errors
            .iter()
            .all(|e| e["code"] == 503 && e["msg"].as_str().is_some_and(|m| m.contains("shard 1"))),
        "{errors:?}"
    );
    let found = trace_ids_of(&body);
    let all: Vec<u64> = before.iter().chain(&during).copied().collect();
    assert!(
        on(&before, 0).is_subset(&found),
        "every shard-0 trace from before the cut is found"
    );
    assert!(
        found.is_subset(&on(&all, 0)),
        "nothing from the cut shard: {found:?}"
    );
    assert_eq!(body["total"], found.len());

    // Storage names the shard that cannot answer.
    let (status, storage) = sb.get_json("/api/v1/storage").await?;
    assert_eq!(status, 200, "{storage}");
    assert!(storage["shards"][0].get("error").is_none(), "{storage}");
    assert!(
        storage["shards"][1]["error"].as_str().is_some(),
        "{storage}"
    );

    proxy.restore();
    let (traces, spans) = wait_stored_exactly_once(&store, &all).await?;
    let sent = all.len() * usize::from(SPANS_PER_TRACE);
    assert_eq!((traces, spans), (all.len(), sent));
    wait_for(
        "the agent's WAL to drain",
        Duration::from_secs(30),
        || async {
            (agent.buffer.usage().2 == 0 && agent.forward_stats.acked_spans() == sent as u64)
                .then_some(())
        },
    )
    .await?;
    assert_eq!(agent.forward_stats.dropped_spans(), 0);
    // Stored once each: the usage counters (bumped per stored span) agree.
    let (_, storage) = sb.get_json("/api/v1/storage").await?;
    assert_eq!(storage["spans"], sent as u64, "{storage}");
    let (status, body) = sb.get_json(&search_path()).await?;
    assert_eq!(status, 200);
    assert_eq!(body["errors"], Value::Null, "{body}");
    let want: BTreeSet<String> = all.iter().map(|n| trace_id(*n).to_jaeger_hex()).collect();
    assert_eq!(trace_ids_of(&body), want);
    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_expires_old_spans_and_counts_them() -> anyhow::Result<()> {
    let Some(server) = pg::server_from_env("gateway retention over postgres") else {
        return Ok(());
    };
    let urls = pg::fresh_databases(&server, 2).await;
    let map = ShardMap::single_epoch(2)?;
    let now = telemetry::clock::unix_nanos();
    // (traces, start, cluster, kept?)
    let groups: [(Vec<u64>, u64, &str, bool); 4] = [
        ((1..=10).collect(), now - 5 * DAY, "default", false),
        ((11..=20).collect(), now - 3 * HOUR, "short", false),
        ((21..=25).collect(), now - 5 * 60 * SEC, "short", true),
        ((26..=30).collect(), now - 5 * 60 * SEC, "default", true),
    ];
    // The expired spans are in the store before the gateway starts: a
    // pass racing their writes could drop a partition twice (the write
    // that found it gone is refused, retried and re-creates it), and this
    // test counts exactly.
    {
        let direct = store::open(&urls, &store::StoreOptions::default()).await?;
        for (ns, start, cluster, _) in &groups[..2] {
            let cluster = model::ClusterId::new(cluster)?;
            for n in ns {
                let spans = proto::convert::to_model(
                    &trace_request(*n, *start, Some(cluster.as_str())),
                    &cluster,
                );
                direct.write(&spans).await?;
            }
        }
    }
    // As `--retention-hours 72,short=1 --retention-interval …`, faster.
    let sb = Sandbox::start_with(&[], |cfg| {
        cfg.stores = urls;
        cfg.store_options.retention =
            gateway::config::parse_retention("72,short=1").expect("valid spec");
        cfg.retention_interval = Duration::from_millis(200);
    })
    .await?;
    // Fresh spans through the plain OTLP port, while passes run.
    let http = reqwest::Client::new();
    for (ns, start, cluster, _) in &groups[2..] {
        for n in ns {
            let resp = http
                .post(format!("http://{}/v1/traces", sb.gateway.otlp_http_addr))
                .header("content-type", "application/x-protobuf")
                .body(prost::Message::encode_to_vec(&trace_request(
                    *n,
                    *start,
                    Some(cluster),
                )))
                .send()
                .await?;
            assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);
        }
    }

    let store = Arc::clone(&sb.gateway.store);
    let groups_ref = &groups;
    wait_for(
        "expired traces gone, the rest kept",
        Duration::from_secs(30),
        || {
            let store = Arc::clone(&store);
            async move {
                for (ns, _, _, kept) in groups_ref {
                    for n in ns {
                        let t = store.get_trace(trace_id(*n)).await.ok()?;
                        if t.is_some() != *kept {
                            return None;
                        }
                    }
                }
                Some(())
            }
        },
    )
    .await?;

    // Old default-cluster spans went with their day's partition (one per
    // shard that held some); the short-lived cluster's were deleted row by
    // row, each counted once.
    let old_shards: BTreeSet<u32> = groups[0]
        .0
        .iter()
        .map(|n| map.route(trace_id(*n), groups[0].1))
        .collect();
    let row_deleted = (groups[1].0.len() * usize::from(SPANS_PER_TRACE)) as u64;
    let metrics = &sb.gateway.metrics;
    wait_for(
        "the metrics of the pass",
        Duration::from_secs(10),
        || async {
            (metrics.retention_removed() == (row_deleted, old_shards.len() as u64)).then_some(())
        },
    )
    .await?;
    assert!(metrics.retention_runs("ok") >= 1);
    assert_eq!(metrics.retention_runs("error"), 0);
    let text = sb.http.get(sb.url("/metrics")).send().await?.text().await?;
    assert_eq!(
        metric(&text, "meridian_gateway_retention_spans_deleted_total"),
        Some(row_deleted as f64),
        "{text}"
    );
    assert_eq!(
        metric(&text, "meridian_gateway_retention_partitions_dropped_total"),
        Some(old_shards.len() as f64)
    );
    assert!(
        metric(
            &text,
            "meridian_gateway_retention_runs_total{result=\"ok\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );

    // Usage follows: only the kept spans remain, per cluster.
    let kept = (10 * usize::from(SPANS_PER_TRACE)) as u64;
    let (_, storage) = sb.get_json("/api/v1/storage").await?;
    assert_eq!(storage["spans"], kept, "{storage}");
    let mut per_cluster: BTreeMap<String, u64> = BTreeMap::new();
    for shard in storage["shards"].as_array().into_iter().flatten() {
        for c in shard["clusters"].as_array().into_iter().flatten() {
            *per_cluster
                .entry(c["cluster"].as_str().unwrap_or_default().to_owned())
                .or_default() += c["spans"].as_u64().unwrap_or(0);
        }
    }
    assert_eq!(
        per_cluster,
        BTreeMap::from([
            ("default".to_owned(), kept / 2),
            ("short".to_owned(), kept / 2)
        ])
    );

    // The job stops with the gateway, without waiting for an interval.
    let Sandbox { gateway, .. } = sb;
    let t = Instant::now();
    assert!(gateway.shutdown(Duration::from_secs(10)).await);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    Ok(())
}
