//! The real OpenTelemetry SDKs (Rust and Python) send to two agents of two
//! clusters; the trace comes back from the gateway's Jaeger API as one
//! trace with every span, correct parents, each span's cluster, errors
//! tagged, and is found by search on service + tag.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use anyhow::Context as _;
use integration_tests::{Sandbox, process_of, span_named, tag};
use opentelemetry::{
    Context, KeyValue,
    propagation::TextMapPropagator,
    trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use serde_json::Value;

fn provider(service: &str, exporter: SpanExporter) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build()
}

async fn flush(p: SdkTracerProvider) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        p.force_flush()?;
        p.shutdown()
    })
    .await??;
    Ok(())
}

/// Checks the stitched trace the Rust and the Python scenario both produce:
/// root server span in cluster-a, client span in cluster-a, server span in
/// cluster-b with status ERROR.
fn check_stitched(
    trace: &Value,
    names: [&str; 3],
    services: [&str; 2],
    error_message: &str,
) -> anyhow::Result<()> {
    let [root_name, client_name, server_name] = names;
    let spans = trace["spans"].as_array().context("spans")?;
    assert_eq!(spans.len(), 3, "{trace:#}");
    let root = span_named(trace, root_name)?;
    let client = span_named(trace, client_name)?;
    let server = span_named(trace, server_name)?;
    assert_eq!(root["references"].as_array().map(Vec::len), Some(0));
    assert_eq!(client["references"][0]["refType"], "CHILD_OF");
    assert_eq!(client["references"][0]["spanID"], root["spanID"]);
    assert_eq!(server["references"][0]["refType"], "CHILD_OF");
    assert_eq!(server["references"][0]["spanID"], client["spanID"]);
    assert_eq!(server["references"][0]["traceID"], trace["traceID"]);

    let pa = process_of(trace, root)?;
    let pb = process_of(trace, server)?;
    assert_eq!(pa["serviceName"], services[0]);
    assert_eq!(pb["serviceName"], services[1]);
    assert_eq!(
        tag(&pa["tags"], "k8s.cluster.name"),
        Some(&Value::from("cluster-a"))
    );
    assert_eq!(
        tag(&pb["tags"], "k8s.cluster.name"),
        Some(&Value::from("cluster-b"))
    );
    assert_eq!(
        process_of(trace, client)?,
        pa,
        "client and root share a process"
    );

    assert_eq!(tag(&server["tags"], "error"), Some(&Value::Bool(true)));
    assert_eq!(
        tag(&server["tags"], "otel.status_code"),
        Some(&Value::from("ERROR"))
    );
    assert_eq!(
        tag(&server["tags"], "otel.status_description"),
        Some(&Value::from(error_message))
    );
    assert_eq!(
        tag(&server["tags"], "span.kind"),
        Some(&Value::from("server"))
    );
    assert_eq!(
        tag(&client["tags"], "span.kind"),
        Some(&Value::from("client"))
    );
    assert_eq!(tag(&root["tags"], "error"), None);
    assert_eq!(server["logs"].as_array().map(Vec::len), Some(1));
    Ok(())
}

async fn search_count(sb: &Sandbox, query: &str) -> anyhow::Result<usize> {
    let (status, body) = sb.get_json(&format!("/api/traces?{query}")).await?;
    assert_eq!(status, 200, "{body}");
    Ok(body["data"].as_array().map(Vec::len).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_trace_across_two_clusters_is_one_trace() -> anyhow::Result<()> {
    let sb = Sandbox::start(&["cluster-a", "cluster-b"]).await?;
    let a = sb.agent("cluster-a")?;
    let b = sb.agent("cluster-b")?;

    let pa = provider(
        "frontend",
        SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{}", a.otlp_grpc_addr))
            .build()?,
    );
    let pb = provider(
        "backend",
        SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("http://{}/v1/traces", b.otlp_http_addr))
            .build()?,
    );
    let ta = pa.tracer("meridian-tests");
    let tb = pb.tracer("meridian-tests");

    let root = ta
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new("http.route", "/checkout")])
        .start(&ta);
    let root_cx = Context::current_with_span(root);
    let client = ta
        .span_builder("call backend")
        .with_kind(SpanKind::Client)
        .start_with_context(&ta, &root_cx);
    let client_cx = root_cx.with_span(client);
    let mut headers = HashMap::new();
    TraceContextPropagator::new().inject_context(&client_cx, &mut headers);
    assert!(headers.contains_key("traceparent"));

    // The request crosses into cluster-b.
    let parent = TraceContextPropagator::new().extract(&headers);
    let mut server = tb
        .span_builder("POST /pay")
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new("payment.amount", 42i64)])
        .start_with_context(&tb, &parent);
    server.add_event(
        "charge declined",
        vec![KeyValue::new("reason", "card expired")],
    );
    server.set_status(Status::error("card declined"));
    server.end();
    client_cx.span().end();
    let trace_id = root_cx.span().span_context().trace_id().to_string();
    root_cx.span().end();
    flush(pb).await?;
    flush(pa).await?;

    let trace = sb.wait_for_trace(&trace_id, 3).await?;
    assert_eq!(trace["traceID"], trace_id.as_str());
    check_stitched(
        &trace,
        ["GET /checkout", "call backend", "POST /pay"],
        ["frontend", "backend"],
        "card declined",
    )?;
    let pay = span_named(&trace, "POST /pay")?;
    assert_eq!(pay["logs"][0]["fields"][0]["value"], "charge declined");

    // Stitched at the gateway: the cross-cluster call is an edge of the
    // service graph, with its error, and the summary names both clusters.
    let edge = integration_tests::wait_for(
        "the frontend@cluster-a -> backend@cluster-b edge",
        Duration::from_secs(30),
        || async {
            let (_, g) = sb.get_json("/api/v1/graph").await.ok()?;
            g["edges"]
                .as_array()?
                .iter()
                .find(|e| e["source"] == "frontend@cluster-a" && e["target"] == "backend@cluster-b")
                .cloned()
        },
    )
    .await?;
    assert_eq!(edge["calls"], 1);
    assert_eq!(edge["errors"], 1);
    assert_eq!(edge["crossCluster"], true);
    let (_, summary) = sb
        .get_json(&format!("/api/v1/traces/{trace_id}/summary"))
        .await?;
    assert_eq!(
        summary["clusters"],
        serde_json::json!(["cluster-a", "cluster-b"])
    );
    assert_eq!(summary["root"]["operation"], "GET /checkout");
    assert_eq!(tag(&pay["tags"], "payment.amount"), Some(&Value::from(42)));

    // Search: service + tag finds it; conditions on other spans do not.
    let error_tag = "tags=%7B%22error%22%3A%22true%22%7D";
    assert_eq!(
        search_count(&sb, &format!("service=backend&{error_tag}")).await?,
        1
    );
    assert_eq!(
        search_count(&sb, "service=backend&tag=payment.amount:42").await?,
        1
    );
    assert_eq!(
        search_count(&sb, "service=backend&tag=k8s.cluster.name:cluster-b").await?,
        1
    );
    assert_eq!(
        search_count(&sb, &format!("service=frontend&{error_tag}")).await?,
        0
    );
    assert_eq!(
        search_count(&sb, "service=backend&tag=payment.amount:43").await?,
        0
    );
    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_trace_across_two_clusters_is_one_trace() -> anyhow::Result<()> {
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

    let trace = sb.wait_for_trace(&trace_id, 3).await?;
    check_stitched(
        &trace,
        ["GET /cart", "call py-backend", "POST /reserve"],
        ["py-frontend", "py-backend"],
        "out of stock",
    )?;
    let error_tag = "tags=%7B%22error%22%3A%22true%22%7D";
    assert_eq!(
        search_count(&sb, &format!("service=py-backend&{error_tag}")).await?,
        1
    );
    assert_eq!(
        search_count(&sb, "service=py-backend&tag=items:3").await?,
        1
    );
    sb.shutdown().await;
    Ok(())
}
