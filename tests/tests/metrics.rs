//! RED metrics end to end: real agents (the tap counts before sampling,
//! 10 s windows, their own WAL, `ForwardWindows` over mTLS) → the gateway
//! → the store → the query APIs, compared with an offline computation over
//! the same generated spans; and the cardinality limits under an
//! adversarial stream of operation names.

use std::{collections::BTreeMap, time::Duration};

use edge_agent::Agent;
use integration_tests::{Sandbox, wait_for};
use model::sampling::{HeadConfig, SamplingConfig};
use proto::otlp::{ExportTraceServiceRequest, Span, Status, TraceServiceClient};
use serde_json::Value;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

struct Generated {
    requests: Vec<ExportTraceServiceRequest>,
    /// (service, operation) → (errors, durations in ns)
    offline: BTreeMap<(String, String), (u64, Vec<u64>)>,
}

fn generate(seed: u64, spans: usize, ops: impl Fn(&mut Rng) -> String) -> Generated {
    let mut rng = Rng(seed);
    let mut offline: BTreeMap<(String, String), (u64, Vec<u64>)> = BTreeMap::new();
    let mut requests = Vec::new();
    let start = 1_700_000_000_000_000_000u64;
    for chunk in 0..spans.div_ceil(250) {
        let service = format!("svc-{}", chunk % 3);
        let mut batch = Vec::new();
        for i in 0..250.min(spans - chunk * 250) {
            let op = ops(&mut rng);
            // Log-uniform durations from 50 µs to ~5 s.
            let exp = (rng.next() % 10_000) as f64 / 10_000.0 * 11.5;
            let dur = (50_000.0 * exp.exp()) as u64;
            let error = rng.next() % 100 < 7;
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&rng.next().to_be_bytes());
            trace[8..].copy_from_slice(&rng.next().to_be_bytes());
            batch.push(Span {
                trace_id: trace.to_vec(),
                span_id: ((chunk * 250 + i + 1) as u64).to_be_bytes().to_vec(),
                name: op.clone(),
                kind: 2,
                start_time_unix_nano: start,
                end_time_unix_nano: start + dur,
                status: Some(Status {
                    code: if error { 2 } else { 0 },
                    message: String::new(),
                }),
                ..Default::default()
            });
            let e = offline.entry((service.clone(), op)).or_default();
            e.0 += u64::from(error);
            e.1.push(dur);
        }
        requests.push(integration_tests::otlp::request(&service, batch));
    }
    Generated { requests, offline }
}

async fn send_all(agent: &Agent, g: &Generated) -> anyhow::Result<()> {
    let mut c = TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr)).await?;
    for r in &g.requests {
        c.export(r.clone()).await?;
    }
    Ok(())
}

/// The exact order statistic the sketch approximates.
fn exact(sorted: &[u64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1] as f64 / 1e6
}

/// `/api/v1/metrics/red` series of `cluster` by (service, operation), once
/// their total calls reach `want` spans.
async fn red_totals(
    sb: &Sandbox,
    cluster: &str,
    want: u64,
    from: i64,
) -> anyhow::Result<BTreeMap<(String, String), Value>> {
    wait_for(
        &format!("{want} spans in the RED series of {cluster}"),
        Duration::from_secs(60),
        || async {
            let to = telemetry::clock::unix_ms() + 60_000;
            let path =
                format!("/api/v1/metrics/red?cluster={cluster}&from={from}&to={to}&step=10000");
            let (status, body) = sb.get_json(&path).await.ok()?;
            if status != 200 {
                return None;
            }
            let series = body["series"].as_array()?;
            let total: u64 = series
                .iter()
                .filter_map(|s| s["total"]["calls"].as_u64())
                .sum();
            (total == want).then(|| {
                series
                    .iter()
                    .map(|s| {
                        (
                            (
                                s["service"].as_str().unwrap_or_default().to_owned(),
                                s["operation"].as_str().unwrap_or_default().to_owned(),
                            ),
                            s["total"].clone(),
                        )
                    })
                    .collect()
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_figures_equal_an_offline_computation_at_full_and_1pct_sampling() -> anyhow::Result<()>
{
    let mut sb = Sandbox::start(&[]).await?;
    let full = Agent::start(sb.agent_config("full", "full")?).await?;
    let mut cfg = sb.agent_config("sampled", "sampled")?;
    cfg.sampling = SamplingConfig {
        head: HeadConfig {
            default_probability: 0.01,
            rules: Vec::new(),
        },
        tail: None,
    };
    let sampled = Agent::start(cfg).await?;
    let from = telemetry::clock::unix_ms() - 60_000;
    let spans = 6_000;
    let g = generate(42, spans, |r| format!("op-{}", r.next() % 4));
    send_all(&full, &g).await?;
    send_all(&sampled, &g).await?;
    assert!(
        sampled.sampling_stats.head_sampled_out.get() > (spans as u64) * 9 / 10,
        "1% head sampling drops most spans"
    );
    sb.agents.insert("full".into(), full);
    sb.agents.insert("sampled".into(), sampled);

    for cluster in ["full", "sampled"] {
        let got = red_totals(&sb, cluster, spans as u64, from).await?;
        assert_eq!(
            got.len(),
            g.offline.len(),
            "{cluster}: one series per (service, operation)"
        );
        for (key, (errors, durations)) in &g.offline {
            let t = got
                .get(key)
                .ok_or_else(|| anyhow::anyhow!("{cluster}: no series {key:?}"))?;
            assert_eq!(
                t["calls"].as_u64(),
                Some(durations.len() as u64),
                "{cluster} {key:?}"
            );
            assert_eq!(t["errors"].as_u64(), Some(*errors), "{cluster} {key:?}");
            let mut sorted = durations.clone();
            sorted.sort_unstable();
            for (q, field) in [(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")] {
                let want = exact(&sorted, q);
                let have = t[field].as_f64().unwrap_or(f64::NAN);
                assert!(
                    (have - want).abs() <= model::red::RELATIVE_ACCURACY * want * 1.000_001,
                    "{cluster} {key:?} {field}: {have} ms, exact {want} ms"
                );
            }
        }
    }

    // Jaeger SPM: the Monitor tab's call rate, grouped by operation.
    let end = telemetry::clock::unix_ms() + 60_000;
    let (status, fam) = sb
        .get_json(&format!(
            "/api/metrics/calls?service=svc-0&groupByOperation=true&endTs={end}&lookback=600000&step=60000&ratePer=600000&spanKind=server"
        ))
        .await?;
    assert_eq!(status, 200, "{fam}");
    assert_eq!(fam["name"], "service_operation_call_rate");
    assert_eq!(fam["type"], "GAUGE");
    // Both clusters' svc-0 spans, per second over the 10 minute window.
    let svc0: usize = g
        .offline
        .iter()
        .filter(|((s, _), _)| s == "svc-0")
        .map(|(_, (_, d))| d.len())
        .sum();
    let last_points: f64 = fam["metrics"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| {
                    m["metricPoints"].as_array()?.last()?["gaugeValue"]["doubleValue"].as_f64()
                })
                .sum()
        })
        .unwrap_or_default();
    assert!(
        (last_points - 2.0 * svc0 as f64 / 600.0).abs() < 1e-6,
        "{last_points} vs {svc0} spans"
    );
    let (status, err) = sb.get_json("/api/metrics/latencies?service=svc-0").await?;
    assert_eq!(status, 400, "quantile is required: {err}");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("quantile"))
    );
    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cardinality_limits_hold_under_random_operation_names() -> anyhow::Result<()> {
    let gateway_limit = 100;
    let mut sb = Sandbox::start_with(&[], |cfg| cfg.red.prom_max_series = gateway_limit).await?;
    let agent = Agent::start(sb.agent_config("east", "east")?).await?;
    let from = telemetry::clock::unix_ms() - 60_000;
    // Every span has a fresh random operation name.
    let spans = 5_000;
    let g = generate(7, spans, |r| format!("op-{:016x}", r.next()));
    send_all(&agent, &g).await?;
    // The agent tracks at most 2,000 (service, operation) pairs; the rest
    // is counted under "other", nothing is lost.
    let agent_folded = agent.red.folded();
    assert_eq!(agent_folded, (spans - 2_000) as u64);
    sb.agents.insert("east".into(), agent);
    let got = red_totals(&sb, "east", spans as u64, from).await?;
    assert!(got.len() <= 2_000 + 3, "{} series stored", got.len());
    let other: u64 = got
        .iter()
        .filter(|((_, op), _)| op == "other")
        .filter_map(|(_, t)| t["calls"].as_u64())
        .sum();
    assert_eq!(other, agent_folded);

    let text = sb.http.get(sb.url("/metrics")).send().await?.text().await?;
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("meridian_red_calls_total{"))
        .collect();
    // 100 tracked pairs plus the per-service "other" lines, by status.
    assert!(
        series.len() <= (gateway_limit + 3) * 3,
        "{} series on /metrics",
        series.len()
    );
    let folded: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("meridian_red_series_folded_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_default();
    let on_metrics: u64 = series
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(on_metrics, spans as u64, "every span counted on /metrics");
    assert!(folded >= (spans as u64) - 100 * 2, "folded {folded}");
    sb.shutdown().await;
    Ok(())
}
