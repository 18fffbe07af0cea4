//! Jaeger api_v3, remote sampling over gRPC, and the OTLP signals the
//! agent does not take, against the real gateway and real agents (mTLS
//! between them):
//!
//! - the real OpenTelemetry Python SDK sends a two-cluster trace to two
//!   agents; it is read back through `/api/v3/traces/{id}`,
//!   `/api/v3/traces` and `/api/v3/trace-summaries`;
//! - a tonic client calls `jaeger.api_v2.SamplingManager/
//!   GetSamplingStrategy` on an agent and gets the strategy the agent's
//!   HTTP endpoint serves;
//! - OTLP metrics and logs, HTTP and gRPC, are refused the way the OTel
//!   Collector refuses a signal without a pipeline (404 / UNIMPLEMENTED).

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use edge_agent::Agent;
use integration_tests::{Sandbox, wait_for};
use model::sampling::{HeadConfig, HeadRule, SamplingConfig};
use proto::jaeger_sampling::{
    SamplingStrategyParameters, SamplingStrategyResponse, SamplingStrategyType,
    sampling_manager_client::SamplingManagerClient,
};
use serde_json::{Value, json};

/// RFC 3339 (UTC, whole seconds) of Unix seconds.
fn rfc3339(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

fn window() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "query.startTimeMin={}&query.startTimeMax={}",
        rfc3339(now - 3_600),
        rfc3339(now + 60)
    )
}

/// Every span of an OTLP/JSON `result`, with its resource's attributes.
fn spans(body: &Value) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for rs in body["result"]["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                out.push((s.clone(), rs["resource"]["attributes"].clone()));
            }
        }
    }
    out
}

fn attr<'a>(attrs: &'a Value, key: &str) -> Option<&'a Value> {
    attrs
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_spans_read_back_through_api_v3() -> anyhow::Result<()> {
    let python = tokio::task::spawn_blocking(integration_tests::venv_python).await??;
    let sb = Sandbox::start(&["cluster-a", "cluster-b"]).await?;
    let a = sb.agent("cluster-a")?;
    let b = sb.agent("cluster-b")?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/cross_cluster.py");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg(script)
            .arg(format!("http://{}", a.otlp_grpc_addr))
            .arg(format!("http://{}", b.otlp_http_addr))
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    anyhow::ensure!(
        out.status.success(),
        "python SDK script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace_id = String::from_utf8(out.stdout)?.trim().to_owned();
    assert_eq!(trace_id.len(), 32, "{trace_id:?}");

    // By id: the three spans in OTLP/JSON, Jaeger v2's encoding.
    let body = wait_for(
        "the trace through /api/v3",
        Duration::from_secs(20),
        || async {
            let (status, body) = sb
                .get_json(&format!("/api/v3/traces/{trace_id}"))
                .await
                .ok()?;
            (status == 200 && spans(&body).len() == 3).then_some(body)
        },
    )
    .await?;
    let all = spans(&body);
    let named = |n: &str| {
        all.iter()
            .find(|(s, _)| s["name"] == n)
            .context(n.to_owned())
    };
    let (root, root_res) = named("GET /cart")?;
    let (client, _) = named("call py-backend")?;
    let (server, server_res) = named("POST /reserve")?;
    for (s, _) in &all {
        assert_eq!(s["traceId"], trace_id.as_str(), "hex trace id");
        assert_eq!(s["spanId"].as_str().map(str::len), Some(16), "hex span id");
        assert!(
            s["startTimeUnixNano"]
                .as_str()
                .is_some_and(|t| t.parse::<u64>().is_ok())
        );
    }
    assert_eq!(root["kind"], 2, "SERVER as its enum number");
    assert_eq!(client["kind"], 3, "CLIENT");
    assert!(root.get("parentSpanId").is_none());
    assert_eq!(client["parentSpanId"], root["spanId"]);
    assert_eq!(server["parentSpanId"], client["spanId"]);
    assert_eq!(
        server["status"],
        json!({"code": 2, "message": "out of stock"})
    );
    assert_eq!(root["status"], json!({}));
    assert_eq!(
        attr(&server["attributes"], "items"),
        Some(&json!({"intValue": "3"}))
    );
    assert_eq!(server["events"][0]["name"], "stock checked");
    assert_eq!(
        attr(root_res, "service.name"),
        Some(&json!({"stringValue": "py-frontend"}))
    );
    assert_eq!(
        attr(server_res, "service.name"),
        Some(&json!({"stringValue": "py-backend"}))
    );
    assert_eq!(
        attr(root_res, "meridian.cluster"),
        Some(&json!({"stringValue": "cluster-a"}))
    );
    assert_eq!(
        attr(server_res, "meridian.cluster"),
        Some(&json!({"stringValue": "cluster-b"}))
    );
    // As stored: the same spans.
    let (status, raw) = sb
        .get_json(&format!("/api/v3/traces/{trace_id}?rawTraces=true"))
        .await?;
    assert_eq!((status, spans(&raw).len()), (200, 3));

    // Search, as Jaeger's query_parser.go reads it (and its snake_case).
    let w = window();
    for q in [
        format!("query.serviceName=py-backend&{w}"),
        format!("query.service_name=py-backend&{w}&query.attributes=%7B%22items%22%3A%223%22%7D"),
        format!(
            "query.serviceName=py-frontend&query.operationName=GET%20%2Fcart&{w}&query.searchDepth=5"
        ),
    ] {
        let (status, body) = sb.get_json(&format!("/api/v3/traces?{q}")).await?;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(spans(&body).len(), 3, "{q}");
    }
    let (status, body) = sb
        .get_json(&format!("/api/v3/traces?query.serviceName=py-backend&{w}&query.attributes=%7B%22items%22%3A%224%22%7D"))
        .await?;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"httpCode": 404, "message": "No traces found"}})
    );

    // Summaries, what Jaeger UI v2.19+ searches with.
    let (status, body) = sb
        .get_json(&format!(
            "/api/v3/trace-summaries?query.serviceName=py-backend&{w}"
        ))
        .await?;
    assert_eq!(status, 200, "{body}");
    let s = &body["summaries"][0];
    assert_eq!(body["summaries"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["traceId"], trace_id.as_str());
    assert_eq!(s["rootServiceName"], "py-frontend");
    assert_eq!(s["rootOperationName"], "GET /cart");
    assert_eq!(s["spanCount"], 3);
    assert_eq!(s["errorSpanCount"], 1);
    assert!(
        s.get("orphanSpanCount").is_none(),
        "0 is left out, as jsonpb does"
    );
    assert_eq!(
        s["services"],
        json!([
            {"name": "py-backend", "spanCount": 1, "errorSpanCount": 1},
            {"name": "py-frontend", "spanCount": 2},
        ])
    );
    let start: u64 = s["minStartTimeUnixNano"]
        .as_str()
        .context("a string")?
        .parse()?;
    let end: u64 = s["maxEndTimeUnixNano"]
        .as_str()
        .context("a string")?
        .parse()?;
    assert!(start < end && start.to_string().len() == 19, "{s}");

    let (_, services) = sb.get_json("/api/v3/services").await?;
    assert_eq!(services, json!({"services": ["py-backend", "py-frontend"]}));
    let (_, ops) = sb
        .get_json("/api/v3/operations?service=py-frontend&spanKind=client")
        .await?;
    assert_eq!(
        ops,
        json!({"operations": [{"name": "call py-backend", "spanKind": "client"}]})
    );
    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sampling_answers_what_http_sampling_serves() -> anyhow::Result<()> {
    let sb = Sandbox::start(&[]).await?;
    let rule =
        |service: &str, operation: Option<&str>, p: Option<f64>, rate: Option<f64>| HeadRule {
            cluster: None,
            service: Some(service.into()),
            operation: operation.map(Into::into),
            probability: p,
            max_traces_per_second: rate,
        };
    let mut cfg = sb.agent_config("east", "east")?;
    cfg.sampling = SamplingConfig {
        head: HeadConfig {
            default_probability: 0.5,
            rules: vec![
                rule("limited", None, None, Some(7.0)),
                rule("ops", Some("GET /health"), Some(0.0), None),
                rule("ops", None, Some(0.2), None),
            ],
        },
        tail: None,
    };
    let agent = Agent::start(cfg).await?;
    let grpc = agent.sampling_grpc_addr.context("--sampling-grpc is on")?;
    let mut client = SamplingManagerClient::connect(format!("http://{grpc}")).await?;
    let http = reqwest::Client::new();
    for service in ["limited", "ops", "plain"] {
        let json: Value = http
            .get(format!(
                "http://{}/sampling?service={service}",
                agent.sampling_addr
            ))
            .send()
            .await?
            .json()
            .await?;
        let r: SamplingStrategyResponse = client
            .get_sampling_strategy(SamplingStrategyParameters {
                service_name: service.into(),
            })
            .await?
            .into_inner();
        assert_eq!(as_json(&r), json, "{service}");
    }
    let refused = client
        .get_sampling_strategy(SamplingStrategyParameters::default())
        .await
        .expect_err("a service name is required");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    agent.shutdown(Duration::from_secs(5)).await;
    sb.shutdown().await;
    Ok(())
}

/// The protobuf answer in the HTTP endpoint's JSON form, field for field.
fn as_json(r: &SamplingStrategyResponse) -> Value {
    let kind = if r.strategy_type == SamplingStrategyType::RateLimiting as i32 {
        "RATE_LIMITING"
    } else {
        "PROBABILISTIC"
    };
    let mut out = json!({"strategyType": kind});
    if let Some(p) = &r.probabilistic_sampling {
        out["probabilisticSampling"] = json!({"samplingRate": p.sampling_rate});
    }
    if let Some(l) = &r.rate_limiting_sampling {
        out["rateLimitingSampling"] =
            json!({"maxTracesPerSecond": f64::from(l.max_traces_per_second)});
    }
    if let Some(o) = &r.operation_sampling {
        let per_op: Vec<Value> = o
            .per_operation_strategies
            .iter()
            .map(|s| {
                json!({"operation": s.operation, "probabilisticSampling":
                    {"samplingRate": s.probabilistic_sampling.as_ref().map(|p| p.sampling_rate)}})
            })
            .collect();
        out["operationSampling"] = json!({
            "defaultSamplingProbability": o.default_sampling_probability,
            "defaultLowerBoundTracesPerSecond": o.default_lower_bound_traces_per_second,
            "defaultUpperBoundTracesPerSecond": o.default_upper_bound_traces_per_second,
            "perOperationStrategies": per_op,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_and_logs_are_refused_like_the_collector_does() -> anyhow::Result<()> {
    let sb = Sandbox::start(&["east"]).await?;
    let agent = sb.agent("east")?;
    let http = reqwest::Client::new();
    for (path, service) in [
        (
            "/v1/metrics",
            "opentelemetry.proto.collector.metrics.v1.MetricsService",
        ),
        (
            "/v1/logs",
            "opentelemetry.proto.collector.logs.v1.LogsService",
        ),
    ] {
        let resp = http
            .post(format!("http://{}{path}", agent.otlp_http_addr))
            .header("content-type", "application/x-protobuf")
            .body(Vec::new())
            .send()
            .await?;
        assert_eq!(resp.status(), 404, "{path}");
        let text = resp.text().await?;
        assert!(text.starts_with("404 page not found"), "{path}: {text}");
        assert!(text.contains(service), "{path}: {text}");

        // gRPC: an (empty) Export request on the signal's service.
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", agent.otlp_grpc_addr))?
                .connect()
                .await?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await?;
        let method = format!("/{service}/Export");
        let status = grpc
            .unary::<proto::RpcStatus, proto::RpcStatus, _>(
                tonic::Request::new(proto::RpcStatus::default()),
                http::uri::PathAndQuery::try_from(method.as_str())?,
                tonic_prost::ProstCodec::default(),
            )
            .await
            .expect_err("no metrics or logs pipeline");
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{service}");
        assert!(
            status
                .message()
                .contains(&format!("unknown service {service}")),
            "{}",
            status.message()
        );
    }
    // Traces still go through the same servers.
    let resp = http
        .post(format!("http://{}/v1/traces", agent.otlp_http_addr))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    sb.shutdown().await;
    Ok(())
}
