//! The Jaeger v1 JSON API over the real pipeline (gateway plain OTLP →
//! SQLite → query), checked field by field against Jaeger's UI model.

use integration_tests::{Sandbox, span_named, tag};
use serde_json::{Value, json};

const T0: u64 = 1_700_000_000_000_000_000; // ns

/// Two traces from services `api` (cluster east) and `db` (no cluster →
/// the default cluster), with known timings, kinds, links and events.
fn otlp_json() -> Value {
    json!({"resourceSpans": [
      {"resource": {"attributes": [
          {"key": "service.name", "value": {"stringValue": "api"}},
          {"key": "k8s.cluster.name", "value": {"stringValue": "east"}},
          {"key": "host.cpus", "value": {"intValue": "8"}}]},
       "scopeSpans": [{"scope": {"name": "lib", "version": "1.2"}, "spans": [
          {"traceId": "000000000000000000000000000000a1", "spanId": "00000000000000b1",
           "name": "GET /users", "kind": 2, "traceState": "ot=th:8",
           "startTimeUnixNano": T0.to_string(), "endTimeUnixNano": (T0 + 250_000_000).to_string(),
           "attributes": [
             {"key": "http.status_code", "value": {"intValue": "500"}},
             {"key": "ratio", "value": {"doubleValue": 0.5}},
             {"key": "cached", "value": {"boolValue": false}},
             {"key": "blob", "value": {"bytesValue": "AQID"}},
             {"key": "big", "value": {"intValue": "9007199254740993"}}],
           "events": [{"timeUnixNano": (T0 + 1_000).to_string(), "name": "retry",
                       "attributes": [{"key": "attempt", "value": {"intValue": "2"}}]}],
           "links": [{"traceId": "000000000000000000000000000000a2", "spanId": "00000000000000b2"}],
           "status": {"code": 2, "message": "upstream failed"}},
          {"traceId": "000000000000000000000000000000a1", "spanId": "00000000000000b3",
           "parentSpanId": "00000000000000b1", "name": "query", "kind": 3,
           "startTimeUnixNano": (T0 + 10_000_000).to_string(),
           "endTimeUnixNano": (T0 + 20_000_000).to_string()}]}]},
      {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "db"}}]},
       "scopeSpans": [{"spans": [
          {"traceId": "000000000000000000000000000000a2", "spanId": "00000000000000b2",
           "name": "SELECT", "kind": 2,
           "startTimeUnixNano": (T0 + 5_000_000_000u64).to_string(),
           "endTimeUnixNano": (T0 + 5_001_000_000u64).to_string()}]}]}
    ]})
}

async fn get(sb: &Sandbox, path: &str) -> anyhow::Result<(u16, Value)> {
    sb.get_json(path).await
}

fn envelope_ok(body: &Value) {
    assert_eq!(body["errors"], Value::Null, "{body}");
    assert_eq!(body["limit"], 0);
    assert_eq!(body["offset"], 0);
    assert!(body["total"].is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_v1_api_shapes_and_search() -> anyhow::Result<()> {
    let sb = Sandbox::start(&[]).await?;
    let resp = sb
        .http
        .post(format!("http://{}/v1/traces", sb.gateway.otlp_http_addr))
        .json(&otlp_json())
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);

    // Services and operations.
    let (s, body) = get(&sb, "/api/services").await?;
    assert_eq!(s, 200);
    envelope_ok(&body);
    assert_eq!(body["data"], json!(["api", "db"]));
    assert_eq!(body["total"], 2);
    let (_, body) = get(&sb, "/api/services/api/operations").await?;
    assert_eq!(body["data"], json!(["GET /users", "query"]));
    let (_, body) = get(&sb, "/api/operations?service=api&spanKind=client").await?;
    assert_eq!(
        body["data"],
        json!([{"name": "query", "spanKind": "client"}])
    );
    let (_, body) = get(&sb, "/api/operations?service=api").await?;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));

    // Trace by id, field by field.
    let (s, body) = get(&sb, "/api/traces/a1").await?;
    assert_eq!(s, 200);
    envelope_ok(&body);
    let trace = &body["data"][0];
    assert_eq!(trace["traceID"], "00000000000000a1");
    let root = span_named(trace, "GET /users")?;
    assert_eq!(root["traceID"], "00000000000000a1");
    assert_eq!(root["spanID"], "00000000000000b1");
    assert_eq!(root["startTime"], json!(T0 / 1_000));
    assert_eq!(root["duration"], json!(250_000));
    assert!(root["flags"].is_number());
    assert_eq!(
        root["references"],
        json!([{"refType": "FOLLOWS_FROM", "traceID": "00000000000000a2", "spanID": "00000000000000b2"}])
    );
    let tags = &root["tags"];
    let typed = |k: &str| {
        tags.as_array()
            .and_then(|a| a.iter().find(|t| t["key"] == k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        typed("http.status_code"),
        json!({"key": "http.status_code", "type": "int64", "value": 500})
    );
    assert_eq!(
        typed("ratio"),
        json!({"key": "ratio", "type": "float64", "value": 0.5})
    );
    assert_eq!(
        typed("cached"),
        json!({"key": "cached", "type": "bool", "value": false})
    );
    assert_eq!(
        typed("blob"),
        json!({"key": "blob", "type": "binary", "value": "AQID"})
    );
    assert_eq!(typed("big")["type"], "int64");
    assert_eq!(
        typed("big")["value"],
        "9007199254740993",
        "beyond 2^53 as a string"
    );
    assert_eq!(
        typed("error"),
        json!({"key": "error", "type": "bool", "value": true})
    );
    assert_eq!(tag(tags, "span.kind"), Some(&json!("server")));
    assert_eq!(tag(tags, "otel.status_code"), Some(&json!("ERROR")));
    assert_eq!(
        tag(tags, "otel.status_description"),
        Some(&json!("upstream failed"))
    );
    assert_eq!(tag(tags, "otel.scope.name"), Some(&json!("lib")));
    assert_eq!(tag(tags, "otel.scope.version"), Some(&json!("1.2")));
    assert_eq!(tag(tags, "w3c.tracestate"), Some(&json!("ot=th:8")));
    assert_eq!(root["logs"][0]["timestamp"], json!(T0 / 1_000 + 1));
    assert_eq!(
        root["logs"][0]["fields"][0],
        json!({"key": "event", "type": "string", "value": "retry"})
    );
    assert_eq!(
        root["logs"][0]["fields"][1],
        json!({"key": "attempt", "type": "int64", "value": 2})
    );
    let child = span_named(trace, "query")?;
    assert_eq!(
        child["references"],
        json!([{"refType": "CHILD_OF", "traceID": "00000000000000a1", "spanID": "00000000000000b1"}])
    );
    assert_eq!(child["processID"], root["processID"]);
    let process = &trace["processes"][root["processID"].as_str().unwrap_or("")];
    assert_eq!(process["serviceName"], "api");
    assert_eq!(
        tag(&process["tags"], "k8s.cluster.name"),
        Some(&json!("east"))
    );
    assert_eq!(tag(&process["tags"], "host.cpus"), Some(&json!(8)));
    assert_eq!(tag(&process["tags"], "service.name"), None);

    // The plain-OTLP default cluster for a resource that names none.
    let (_, body) = get(&sb, "/api/traces/a2").await?;
    let t2 = &body["data"][0];
    let p2 = &t2["processes"][t2["spans"][0]["processID"].as_str().unwrap_or("")];
    assert_eq!(
        tag(&p2["tags"], "k8s.cluster.name"),
        Some(&json!("default"))
    );

    // Missing and invalid ids.
    let (s, body) = get(&sb, "/api/traces/ffff").await?;
    assert_eq!(s, 404);
    assert_eq!(body["errors"][0]["code"], 404);
    assert!(body["errors"][0]["msg"].is_string());
    assert_eq!(body["data"], Value::Null);
    let (s, body) = get(&sb, "/api/traces/not-hex").await?;
    assert_eq!(s, 400);
    assert_eq!(body["errors"][0]["code"], 400);

    // Search.
    let window = format!(
        "start={}&end={}",
        T0 / 1_000 - 1_000_000,
        T0 / 1_000 + 10_000_000
    );
    let count = |body: &Value| body["data"].as_array().map(Vec::len).unwrap_or(usize::MAX);
    let (s, body) = get(&sb, &format!("/api/traces?service=api&{window}")).await?;
    assert_eq!(s, 200);
    envelope_ok(&body);
    assert_eq!(count(&body), 1);
    assert_eq!(body["data"][0]["spans"].as_array().map(Vec::len), Some(2));
    let (_, body) = get(
        &sb,
        &format!("/api/traces?service=api&operation=query&{window}"),
    )
    .await?;
    assert_eq!(count(&body), 1);
    let (_, body) = get(
        &sb,
        &format!("/api/traces?service=api&minDuration=200ms&{window}"),
    )
    .await?;
    assert_eq!(count(&body), 1, "the 250ms root matches");
    let (_, body) = get(
        &sb,
        &format!("/api/traces?service=api&operation=query&minDuration=11ms&{window}"),
    )
    .await?;
    assert_eq!(count(&body), 0, "the 10ms child does not");
    let (_, body) = get(
        &sb,
        &format!("/api/traces?service=api&maxDuration=1.5s&minDuration=249999us&{window}"),
    )
    .await?;
    assert_eq!(count(&body), 1);
    let (_, body) = get(
        &sb,
        &format!("/api/traces?service=api&tag=http.status_code:500&tag=error:true&{window}"),
    )
    .await?;
    assert_eq!(count(&body), 1);
    let (_, body) = get(
        &sb,
        &format!("/api/traces?service=api&tag=http.status_code:500&tag=span.kind:client&{window}"),
    )
    .await?;
    assert_eq!(count(&body), 0, "both filters must hold within one span");
    let (_, body) = get(
        &sb,
        &format!("/api/traces?service=api&tag=attempt:2&{window}"),
    )
    .await?;
    assert_eq!(count(&body), 1, "event (log) fields are searchable");
    let (_, body) = get(
        &sb,
        &format!("/api/traces?service=api&tag=host.cpus:8&{window}"),
    )
    .await?;
    assert_eq!(count(&body), 1, "process tags are searchable");
    let early = format!(
        "start={}&end={}",
        T0 / 1_000 - 2_000_000,
        T0 / 1_000 - 1_000_000
    );
    let (_, body) = get(&sb, &format!("/api/traces?service=api&{early}")).await?;
    assert_eq!(count(&body), 0, "outside the time window");
    let (_, body) = get(&sb, &format!("/api/traces?{window}&limit=1")).await?;
    assert_eq!(count(&body), 1);
    let (_, body) = get(&sb, &format!("/api/traces?{window}&limit=10")).await?;
    assert_eq!(count(&body), 2);
    assert_eq!(
        body["data"][0]["traceID"], "00000000000000a2",
        "most recent first"
    );
    let (_, body) = get(&sb, "/api/traces?traceID=a1&traceID=a2").await?;
    assert_eq!(count(&body), 2, "multi-get by traceID");

    // Bad parameters name the parameter.
    for (q, param) in [
        ("service=api&minDuration=fast", "minDuration"),
        ("service=api&start=yesterday", "start"),
        ("service=api&tags=%7Bnot-json", "tags"),
        ("service=api&limit=-1", "limit"),
    ] {
        let (s, body) = get(&sb, &format!("/api/traces?{q}")).await?;
        assert_eq!(s, 400, "{q}: {body}");
        let msg = body["errors"][0]["msg"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(msg.contains(param), "{q}: {msg}");
    }

    // Health and metrics on the same port.
    let ready = sb.http.get(sb.url("/readyz")).send().await?;
    assert_eq!(ready.status().as_u16(), 200);
    let metrics = sb.http.get(sb.url("/metrics")).send().await?.text().await?;
    assert!(
        metrics.contains("meridian_gateway_spans_stored_total 3"),
        "{metrics}"
    );
    sb.shutdown().await;
    Ok(())
}
