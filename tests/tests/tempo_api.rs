//! The real Python OpenTelemetry SDK sends one trace through the agents of
//! two clusters (OTLP gRPC and HTTP) over mTLS to the gateway; it is read
//! back through the Tempo API on the gateway's `--tempo-http` port, as
//! Grafana's Tempo data source reads it: TraceQL search (plain and
//! structural, across the two clusters), trace by id as JSON and as
//! protobuf, tag names and values, and refusals naming what is wrong.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use integration_tests::{Sandbox, wait_for};
use prost::Message as _;
use serde_json::{Value, json};

/// `tempopb.TraceByIDResponse` as Grafana decodes it (tempo.proto: trace
/// = 1, status = 3), declared here from the upstream field numbers.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TempoTrace>,
    #[prost(int32, tag = "3")]
    status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TempoTrace {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<proto::otlp::ResourceSpans>,
}

struct Tempo {
    http: reqwest::Client,
    base: String,
}

impl Tempo {
    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, v))
    }

    async fn search(&self, q: &str) -> anyhow::Result<Value> {
        let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let (status, body) = self.get(&format!("/api/search?q={q}&limit=20")).await?;
        anyhow::ensure!(status == 200, "search {q}: {status} {body}");
        Ok(body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_spans_read_back_through_the_tempo_api() -> anyhow::Result<()> {
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
    sb.wait_for_trace(&trace_id, 3).await?;
    let tempo = Tempo {
        http: reqwest::Client::new(),
        base: format!(
            "http://{}",
            sb.gateway.tempo_addr.context("--tempo-http is on")?
        ),
    };
    // Tempo's trace ids in search answers carry no leading zeros.
    let tempo_id = trace_id.trim_start_matches('0').to_owned();

    assert_eq!(tempo.get("/api/echo").await?, (200, json!("echo")));

    // A plain filter, as Grafana's query builder writes it.
    let body = wait_for(
        "the trace in a TraceQL search",
        Duration::from_secs(20),
        || async {
            let body = tempo
                .search(r#"{ resource.service.name = "py-backend" && status = error }"#)
                .await
                .ok()?;
            (body["traces"].as_array()?.len() == 1).then_some(body)
        },
    )
    .await?;
    let t = &body["traces"][0];
    assert_eq!(t["traceID"], json!(tempo_id));
    assert_eq!(t["rootServiceName"], "py-frontend");
    assert_eq!(t["rootTraceName"], "GET /cart");
    assert!(
        t["startTimeUnixNano"]
            .as_str()
            .context("a string")?
            .parse::<u64>()
            .is_ok()
    );
    let span = &t["spanSets"][0]["spans"][0];
    assert_eq!(span["name"], "POST /reserve");
    assert_eq!(span["spanID"].as_str().map(str::len), Some(16));
    assert!(
        span["durationNanos"]
            .as_str()
            .context("a string")?
            .parse::<u64>()
            .is_ok()
    );
    let attrs = span["attributes"].as_array().context("attributes")?;
    assert!(
        attrs.contains(&json!({"key": "status", "value": {"stringValue": "error"}})),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&json!({"key": "service.name", "value": {"stringValue": "py-backend"}})),
        "{attrs:?}"
    );
    assert_eq!(t["spanSets"][0]["matched"], 1);

    // Structural, across the two clusters of the stitched trace.
    let downstream = tempo
        .search(r#"{ cluster = "cluster-a" } >> { cluster = "cluster-b" && status = error }"#)
        .await?;
    assert_eq!(
        downstream["traces"][0]["traceID"],
        json!(tempo_id),
        "{downstream}"
    );
    let child = tempo
        .search(r#"{ cluster = "cluster-a" && kind = client } > { cluster = "cluster-b" }"#)
        .await?;
    assert_eq!(child["traces"].as_array().map(Vec::len), Some(1), "{child}");
    let upstream = tempo
        .search(r#"{ cluster = "cluster-b" } >> { cluster = "cluster-a" }"#)
        .await?;
    assert_eq!(upstream["traces"], json!([]), "{upstream}");
    let attr = tempo.search(r#"{ span.items = 3 }"#).await?;
    assert_eq!(attr["traces"].as_array().map(Vec::len), Some(1), "{attr}");

    // By id: JSON (`batches`, base64 ids) and protobuf.
    let (status, trace) = tempo.get(&format!("/api/traces/{tempo_id}")).await?;
    assert_eq!(status, 200, "{trace}");
    let spans: Vec<&Value> = trace["batches"]
        .as_array()
        .context("batches")?
        .iter()
        .flat_map(|b| b["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|s| s["spans"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(spans.len(), 3);
    let raw_id = hex::decode(&trace_id)?;
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw_id);
    assert!(spans.iter().all(|s| s["traceId"] == json!(b64)));
    let resp = tempo
        .http
        .get(format!("{}/api/v2/traces/{tempo_id}", tempo.base))
        .header("accept", "application/protobuf")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let decoded = TraceByIdResponse::decode(resp.bytes().await?)?;
    assert_eq!(decoded.status, 0, "COMPLETE");
    let n: usize = decoded
        .trace
        .context("trace")?
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    assert_eq!(n, 3);

    // Tag names and values for the query builder.
    let (_, tags) = tempo.get("/api/v2/search/tags").await?;
    let span_tags = &tags["scopes"][1];
    assert_eq!(span_tags["name"], "span");
    assert!(
        span_tags["tags"]
            .as_array()
            .context("tags")?
            .contains(&json!("http.route")),
        "{tags}"
    );
    let (_, values) = tempo
        .get("/api/v2/search/tag/resource.service.name/values")
        .await?;
    let values = values["tagValues"].as_array().context("values")?;
    for s in ["py-frontend", "py-backend"] {
        assert!(
            values.contains(&json!({"type": "string", "value": s})),
            "{values:?}"
        );
    }

    // Refusals name the problem.
    let (status, msg) = tempo
        .get("/api/search?q=%7B%20%7D%20%7C%20count()%20%3E%201")
        .await?;
    assert_eq!(status, 400);
    assert!(
        msg.as_str().is_some_and(|m| m.contains("pipeline")),
        "{msg}"
    );
    let (status, msg) = tempo
        .get("/api/traces/ffffffffffffffffffffffffffffffff")
        .await?;
    assert_eq!((status, msg), (404, json!("trace not found")));
    sb.shutdown().await;
    Ok(())
}
