//! Zipkin end to end (issue 19, parts 4 and 5): real senders → a real
//! agent → mTLS → a real gateway (`sut-gateway --auth tokens`), read back
//! through the Zipkin v2 query API on `--zipkin-http`:
//!
//! - the real **Zipkin JS tracer** (npm `zipkin` + `zipkin-transport-http`,
//!   pinned in `tests/js/package-lock.json`, installed by
//!   `scripts/js-deps.sh`; `tests/js/zipkin-send.js`) posts Zipkin v2
//!   JSON to cluster `shop`'s agent;
//! - a protobuf sender built from the official `zipkin.proto`
//!   (`proto::zipkin::proto3::wire`, prost) posts `ListOfSpans` to cluster
//!   `pay`'s agent, once plain and once `Content-Encoding: deflate`;
//! - the spans come back in Zipkin v2 JSON under `/api/v2/…` and Lens's
//!   `/zipkin/api/v2/…`, the stitched `pay-front → pay-api` link in
//!   `/api/v2/dependencies`;
//! - the Zipkin port is behind the same access layer as `--http`: no token
//!   is 401, and a read token scoped to `shop` sees nothing of `pay`.

use std::{io::Write, path::PathBuf, process::Command, time::Duration};

use anyhow::Context;
use integration_tests::{
    process::{AgentProcess, GatewayProcess},
    wait_for,
};
use mtls::certs::{self, Subject};
use prost::Message;
use proto::zipkin::proto3::wire;
use reqwest::StatusCode;
use serde_json::{Value, json};

const GATEWAY: &str = env!("CARGO_BIN_EXE_sut-gateway");
const AGENT: &str = env!("CARGO_BIN_EXE_sut-agent");
const ADMIN: &str = "zipkin-test-admin-token";
const STORED_WITHIN: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `node_modules` with the pinned Zipkin JS packages (scripts/js-deps.sh
/// into `$MERIDIAN_JS_DEPS`, else `<target>/js-deps`).
fn js_deps() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("MERIDIAN_JS_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target"))
                .join("js-deps")
        });
    let status = Command::new("bash")
        .arg(root().join("scripts/js-deps.sh"))
        .arg(&dir)
        .status()
        .context("running scripts/js-deps.sh")?;
    anyhow::ensure!(status.success(), "scripts/js-deps.sh failed");
    Ok(dir.join("node_modules"))
}

fn gateway_args(dir: &std::path::Path) -> Vec<String> {
    let mut args = vec![
        "--data-dir".to_owned(),
        dir.display().to_string(),
        "--auth".to_owned(),
        "tokens".to_owned(),
        "--admin-token".to_owned(),
        ADMIN.to_owned(),
    ];
    for flag in [
        "--http",
        "--federation",
        "--otlp-grpc",
        "--otlp-http",
        "--raft",
        "--zipkin-http",
    ] {
        args.push(flag.into());
        args.push("127.0.0.1:0".into());
    }
    args
}

fn agent_args(
    gw: &GatewayProcess,
    ca_dir: &std::path::Path,
    dir: &std::path::Path,
    cluster: &str,
) -> anyhow::Result<Vec<String>> {
    let c = certs::issue(
        ca_dir,
        &Subject::Cluster(cluster.into()),
        &dir.join("certs"),
    )?;
    let s = |p: &std::path::Path| p.display().to_string();
    let mut args = vec![
        "--cluster".to_owned(),
        cluster.to_owned(),
        "--gateway".to_owned(),
        gw.federation_url(),
        "--tls-ca".to_owned(),
        s(&certs::ca_paths(ca_dir).cert),
        "--tls-cert".to_owned(),
        s(&c.cert),
        "--tls-key".to_owned(),
        s(&c.key),
        "--buffer-dir".to_owned(),
        s(&dir.join("buffer")),
    ];
    for flag in [
        "--otlp-grpc",
        "--otlp-http",
        "--zipkin",
        "--admin",
        "--sampling",
    ] {
        args.push(flag.into());
        args.push("127.0.0.1:0".into());
    }
    Ok(args)
}

struct Zipkin {
    http: reqwest::Client,
    base: String,
}

impl Zipkin {
    async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, body))
    }

    /// The trace once it holds `spans` spans.
    async fn trace(&self, id: &str, spans: usize, token: &str) -> anyhow::Result<Value> {
        wait_for(
            &format!("trace {id} with {spans} spans"),
            STORED_WITHIN,
            || async {
                match self.get(&format!("/api/v2/trace/{id}"), Some(token)).await {
                    Ok((StatusCode::OK, body)) if body.as_array().map(Vec::len) == Some(spans) => {
                        Some(body)
                    }
                    _ => None,
                }
            },
        )
        .await
    }
}

fn now_us() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after the epoch");
    u64::try_from(d.as_micros()).expect("fits")
}

/// `pay-front` (SERVER, then a CLIENT child calling `pay-api`) and
/// `pay-api`'s SERVER span under it: one trace the stitcher pairs.
fn pay_trace(trace: u8, at_us: u64) -> wire::ListOfSpans {
    let endpoint = |name: &str, ip: [u8; 4], port: i32| wire::Endpoint {
        service_name: name.into(),
        ipv4: ip.to_vec(),
        ipv6: Vec::new(),
        port,
    };
    let id = |n: u8| vec![trace, 0, 0, 0, 0, 0, 0, n];
    let span = |n: u8, parent: Option<u8>, name: &str, kind: wire::span::Kind| wire::Span {
        trace_id: vec![trace; 16],
        parent_id: parent.map(id).unwrap_or_default(),
        id: id(n),
        kind: kind as i32,
        name: name.into(),
        timestamp: at_us + u64::from(n) * 100,
        duration: 5_000 - u64::from(n) * 1_000,
        ..Default::default()
    };
    let mut front = span(1, None, "post /pay", wire::span::Kind::Server);
    front.local_endpoint = Some(endpoint("pay-front", [10, 2, 0, 1], 8443));
    front.tags.insert("http.method".into(), "POST".into());
    let mut call = span(2, Some(1), "charge", wire::span::Kind::Client);
    call.local_endpoint = Some(endpoint("pay-front", [10, 2, 0, 1], 0));
    call.remote_endpoint = Some(endpoint("pay-api", [10, 2, 0, 2], 9000));
    call.annotations.push(wire::Annotation {
        timestamp: at_us + 300,
        value: "retry".into(),
    });
    let mut api = span(3, Some(2), "charge", wire::span::Kind::Server);
    api.local_endpoint = Some(endpoint("pay-api", [10, 2, 0, 2], 9000));
    wire::ListOfSpans {
        spans: vec![front, call, api],
    }
}

async fn post_proto(
    http: &reqwest::Client,
    agent: &AgentProcess,
    body: Vec<u8>,
    deflate: bool,
) -> anyhow::Result<StatusCode> {
    let mut req = http
        .post(format!("http://{}/api/v2/spans", agent.zipkin))
        .header("content-type", "application/x-protobuf");
    let body = if deflate {
        req = req.header("content-encoding", "deflate");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&body)?;
        z.finish()?
    } else {
        body
    };
    Ok(req.body(body).send().await?.status())
}

fn span<'a>(trace: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    trace
        .as_array()
        .context("a trace is an array")?
        .iter()
        .find(|s| s["name"] == name)
        .with_context(|| format!("no span {name} in {trace}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_senders_and_the_zipkin_query_api() -> anyhow::Result<()> {
    integration_tests::init();
    let node_modules = js_deps()?;
    let dir = tempfile::tempdir()?;
    let gw_dir = dir.path().join("gateway");
    let args = gateway_args(&gw_dir);
    let gw = tokio::task::spawn_blocking(move || GatewayProcess::start("gateway", GATEWAY, &args))
        .await??;
    let zipkin_addr = gw.zipkin_http.context("--zipkin-http bound")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let z = Zipkin {
        http: http.clone(),
        base: format!("http://{zipkin_addr}"),
    };
    // The single node leads once its bootstrap committed; then a read
    // token for cluster shop.
    let admin = |path: &str| {
        http.post(format!("http://{}{path}", gw.http))
            .bearer_auth(ADMIN)
    };
    let reader = wait_for(
        "a leader to issue a token",
        Duration::from_secs(30),
        || async {
            let resp = admin("/api/v1/admin/tokens")
                .json(&json!({"name": "shop-reader", "role": "read", "clusters": ["shop"]}))
                .send()
                .await
                .ok()?;
            if resp.status() != StatusCode::OK {
                return None;
            }
            let body: Value = resp.json().await.ok()?;
            body["token"].as_str().map(str::to_owned)
        },
    )
    .await?;

    let ca_dir = gw_dir.join("tls");
    let mut agents = Vec::new();
    for cluster in ["shop", "pay"] {
        let args = agent_args(&gw, &ca_dir, &dir.path().join(cluster), cluster)?;
        agents.push(
            tokio::task::spawn_blocking(move || AgentProcess::start_named(cluster, AGENT, &args))
                .await??,
        );
    }
    let (shop, pay) = (&agents[0], &agents[1]);

    // 1. The Zipkin JS tracer → shop's agent (JSON).
    let endpoint = format!("http://{}/api/v2/spans", shop.zipkin);
    let script = root().join("tests/js/zipkin-send.js");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(endpoint)
            .env("NODE_PATH", &node_modules)
            .output()
    })
    .await??;
    anyhow::ensure!(
        out.status.success(),
        "zipkin-send.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Value = serde_json::from_slice(&out.stdout).context("zipkin-send.js output")?;
    let js_trace = sent["traceId"].as_str().context("traceId")?.to_owned();
    assert_eq!(js_trace.len(), 32, "traceId128Bit");

    // 2. proto3 from the official zipkin.proto → pay's agent, plain and
    //    deflated.
    let at = now_us() - 5_000_000;
    let plain = pay_trace(0x71, at).encode_to_vec();
    assert_eq!(
        post_proto(&http, pay, plain, false).await?,
        StatusCode::ACCEPTED
    );
    let deflated = pay_trace(0x72, at + 1_000_000).encode_to_vec();
    assert_eq!(
        post_proto(&http, pay, deflated, true).await?,
        StatusCode::ACCEPTED
    );
    // Malformed proto3 is refused as a bad request.
    assert_eq!(
        post_proto(&http, pay, vec![0x0a, 0xff], false).await?,
        StatusCode::BAD_REQUEST
    );

    // The JS trace, field by field as the tracer sent it.
    let t = z.trace(&js_trace, 3, ADMIN).await?;
    let ids: Vec<&str> = sent["spanIds"]
        .as_array()
        .context("spanIds")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let root_span = span(&t, "get /checkout")?;
    assert_eq!(root_span["traceId"], js_trace.as_str());
    assert_eq!(root_span["id"], ids[0]);
    assert!(root_span.get("parentId").is_none());
    assert_eq!(root_span["kind"], "SERVER");
    assert_eq!(
        root_span["localEndpoint"],
        json!({"serviceName": "shop-js", "ipv4": "10.0.0.7", "port": 8080})
    );
    assert_eq!(root_span["annotations"][0]["value"], "cart-loaded");
    assert!(root_span["annotations"][0]["timestamp"].is_u64());
    assert_eq!(root_span["tags"]["http.path"], "/checkout");
    assert_eq!(root_span["tags"]["k8s.cluster.name"], "shop");
    let ts = root_span["timestamp"].as_u64().context("timestamp µs")?;
    assert!(
        ts.abs_diff(now_us()) < 600_000_000,
        "µs since the epoch: {ts}"
    );
    assert!(root_span["duration"].as_u64().is_some_and(|d| d > 0));
    let client = span(&t, "select stock")?;
    assert_eq!(client["id"], ids[1]);
    assert_eq!(client["parentId"], ids[0]);
    assert_eq!(client["kind"], "CLIENT");
    assert_eq!(
        client["remoteEndpoint"],
        json!({"serviceName": "inventory-db", "ipv4": "10.0.0.5", "port": 5432})
    );
    assert_eq!(client["tags"]["error"], "stock table locked");
    let local = span(&t, "render")?;
    assert_eq!(local["id"], ids[2]);
    assert!(local.get("kind").is_none(), "a local span has no kind");
    // Lens's base path serves the same.
    let (status, lens) = z
        .get(&format!("/zipkin/api/v2/trace/{js_trace}"), Some(ADMIN))
        .await?;
    assert_eq!(
        (status, lens.as_array().map(Vec::len)),
        (StatusCode::OK, Some(3))
    );

    // The proto3 traces: both encodings arrived, ids and endpoints intact.
    for (trace, deflated) in [(0x71u8, false), (0x72, true)] {
        let id = hex::encode([trace; 16]);
        let t = z.trace(&id, 3, ADMIN).await?;
        let call = t
            .as_array()
            .context("trace")?
            .iter()
            .find(|s| s["kind"] == "CLIENT")
            .context("the client span")?;
        assert_eq!(
            call["id"],
            hex::encode([trace, 0, 0, 0, 0, 0, 0, 2]),
            "deflate {deflated}"
        );
        assert_eq!(
            call["timestamp"],
            json!(at + u64::from(trace - 0x71) * 1_000_000 + 200)
        );
        assert_eq!(call["duration"], json!(3_000));
        assert_eq!(
            call["remoteEndpoint"],
            json!({"serviceName": "pay-api", "ipv4": "10.2.0.2", "port": 9000})
        );
        let sent_at = at + u64::from(trace - 0x71) * 1_000_000;
        assert_eq!(
            call["annotations"],
            json!([{"timestamp": sent_at + 300, "value": "retry"}])
        );
    }

    // Lists and searches, with every cluster in scope.
    let (_, services) = z.get("/api/v2/services", Some(ADMIN)).await?;
    assert_eq!(services, json!(["pay-api", "pay-front", "shop-js"]));
    let (_, names) = z
        .get("/api/v2/spans?serviceName=shop-js", Some(ADMIN))
        .await?;
    assert_eq!(names, json!(["get /checkout", "render", "select stock"]));
    let (_, remote) = z
        .get("/api/v2/remoteServices?serviceName=shop-js", Some(ADMIN))
        .await?;
    assert_eq!(remote, json!(["inventory-db"]));
    let (status, found) = z
        .get(
            "/api/v2/traces?serviceName=shop-js&spanName=select%20stock&annotationQuery=error",
            Some(ADMIN),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0][0]["traceId"], js_trace.as_str());
    let (_, found) = z
        .get(
            "/api/v2/traces?remoteServiceName=pay-api&limit=10",
            Some(ADMIN),
        )
        .await?;
    assert_eq!(found.as_array().map(Vec::len), Some(2), "{found}");
    // The stitcher paired pay-front's client span with pay-api's server
    // span: a link with one call per trace.
    let deps = wait_for("the stitched pay link", STORED_WITHIN, || async {
        let (_, d) = z
            .get("/api/v2/dependencies?lookback=3600000", Some(ADMIN))
            .await
            .ok()?;
        (d.as_array().is_some_and(|a| !a.is_empty()) && d[0]["callCount"].as_u64() == Some(2))
            .then_some(d)
    })
    .await?;
    assert_eq!(
        deps,
        json!([{"parent": "pay-front", "child": "pay-api", "callCount": 2}])
    );

    // The access layer: no token is refused; shop's reader sees shop only.
    let (status, _) = z.get("/api/v2/services", None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = z
        .get("/zipkin/api/v2/services", Some("mrd_not_a_token"))
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, services) = z.get("/api/v2/services", Some(&reader)).await?;
    assert_eq!(services, json!(["shop-js"]));
    let (status, body) = z
        .get(
            &format!("/api/v2/trace/{}", hex::encode([0x71u8; 16])),
            Some(&reader),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, found) = z.get("/api/v2/traces?limit=50", Some(&reader)).await?;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert!(!found.to_string().contains("pay-"), "{found}");
    let (_, deps) = z
        .get("/api/v2/dependencies?lookback=3600000", Some(&reader))
        .await?;
    assert_eq!(deps, json!([]));
    let (_, remote) = z
        .get(
            "/api/v2/remoteServices?serviceName=pay-front",
            Some(&reader),
        )
        .await?;
    assert_eq!(remote, json!([]));
    let t = z.trace(&js_trace, 3, &reader).await?;
    assert_eq!(span(&t, "render")?["tags"]["k8s.cluster.name"], "shop");
    Ok(())
}
