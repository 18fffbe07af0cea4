//! The hostile-client scenario (issue 17): a real gateway and a real agent
//! (the binaries, over real sockets) under every attack at once —
//! slow-loris HTTP clients on every HTTP port, an idle-handshake flood on
//! the federation and Raft ports, query windows that overflow (defect 1),
//! 32 MiB of empty spans gzipped to both OTLP ports (defect 3), a poison
//! resource claiming another cluster in a batch of good spans (defect 5) —
//! while a well-behaved client sends spans through the agent. Each of its
//! requests is answered within 5 s and every span it sent is stored, as
//! the gateway's Jaeger API shows, counted exactly.

use std::{
    io::Write,
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use bytes::Bytes;
use integration_tests::{
    attack::{Loris, handshake_flood, slow_loris},
    process::{AgentProcess, GatewayProcess, gateway_args, metric},
    rawgrpc::{client_config, tls_connect},
    wait_for,
};
use mtls::certs::{self, Subject};
use proto::otlp::{Span, TraceServiceClient, string_kv};
use tokio_util::sync::CancellationToken;
use tonic::Code;

const AGENT: &str = env!("CARGO_BIN_EXE_sut-agent");
const GATEWAY: &str = env!("CARGO_BIN_EXE_sut-gateway");
/// The service bound of the well-behaved client (and of every answer the
/// attackers wait for): a correctness bound, not a performance figure.
const ANSWERED_WITHIN: Duration = Duration::from_secs(5);
/// Requests the well-behaved client sends, one trace each.
const GOOD_REQUESTS: u64 = 40;
const SPANS_PER_TRACE: u8 = 4;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn trace_id(tag: u8, n: u64) -> Vec<u8> {
    let mut id = vec![tag; 8];
    id.extend_from_slice(&n.to_be_bytes());
    id
}

fn spans(trace: &[u8], count: u8) -> Vec<Span> {
    let start = now_ns();
    (1..=count)
        .map(|i| Span {
            trace_id: trace.to_vec(),
            span_id: vec![i; 8],
            name: format!("op-{i}"),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_000_000,
            ..Default::default()
        })
        .collect()
}

/// 32 MiB of empty spans (`12 00` each) in one scope of one resource,
/// gzipped: about 32 KiB on the wire.
fn empty_span_flood() -> anyhow::Result<Vec<u8>> {
    fn field(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let mut len = body.len() as u64;
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(body);
        out
    }
    let spans = [0x12u8, 0x00].repeat(16 << 20);
    let request = field(0x0a, &field(0x12, &spans));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&request)?;
    Ok(gz.finish()?)
}

fn agent_args(
    gw: &GatewayProcess,
    ca_dir: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<String>> {
    let c = certs::issue(ca_dir, &Subject::Cluster("good".into()), &dir.join("certs"))?;
    let s = |p: &std::path::Path| p.display().to_string();
    let mut args = vec![
        "--cluster".to_owned(),
        "good".to_owned(),
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
        "--sampling-grpc",
    ] {
        args.push(flag.into());
        args.push("127.0.0.1:0".into());
    }
    Ok(args)
}

/// Spans the gateway's Jaeger API returns for `trace` (0 when not found).
async fn stored_spans(http: &reqwest::Client, gw: SocketAddr, trace: &[u8]) -> Option<usize> {
    let url = format!("http://{gw}/api/traces/{}", hex::encode(trace));
    let resp = tokio::time::timeout(ANSWERED_WITHIN, http.get(url).send())
        .await
        .ok()?
        .ok()?;
    if resp.status() == 404 {
        return Some(0);
    }
    let body: serde_json::Value = resp.json().await.ok()?;
    Some(body["data"][0]["spans"].as_array().map_or(0, Vec::len))
}

/// The `grpc-status` of a raw h2 reply (trailers-only or trailers).
async fn raw_grpc_status(reply: h2::client::ResponseFuture) -> anyhow::Result<Option<String>> {
    let reply = reply.await?;
    if let Some(s) = integration_tests::rawgrpc::grpc_status(&reply) {
        return Ok(Some(s.to_owned()));
    }
    let mut body = reply.into_body();
    while body.data().await.is_some() {}
    let trailers = body.trailers().await?;
    Ok(trailers
        .and_then(|t| t.get("grpc-status").cloned())
        .and_then(|v| v.to_str().ok().map(str::to_owned)))
}

/// The empty-span flood as one gzip-compressed gRPC message on plain h2.
async fn grpc_flood(addr: SocketAddr, gz: &[u8]) -> anyhow::Result<Option<String>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (client, conn) = h2::client::handshake(tcp).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::post(format!(
        "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    ))
    .header("content-type", "application/grpc")
    .header("grpc-encoding", "gzip")
    .header("te", "trailers")
    .body(())?;
    let (reply, mut body) = client.ready().await?.send_request(req, false)?;
    let mut message = vec![1u8];
    message.extend_from_slice(&u32::try_from(gz.len())?.to_be_bytes());
    message.extend_from_slice(gz);
    body.send_data(Bytes::from(message), true)?;
    let status = raw_grpc_status(reply).await;
    driver.abort();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_behaved_client_is_served_through_every_attack() -> anyhow::Result<()> {
    integration_tests::init();
    let dir = tempfile::tempdir()?;
    let gw_dir = dir.path().join("gateway");
    let args = gateway_args(&gw_dir, &[]);
    let gw = tokio::task::spawn_blocking(move || GatewayProcess::start("gateway", GATEWAY, &args))
        .await??;
    let ca_dir = gw_dir.join("tls");
    let args = agent_args(&gw, &ca_dir, &dir.path().join("agent"))?;
    let agent = tokio::task::spawn_blocking(move || AgentProcess::start(AGENT, &args)).await??;
    let http = reqwest::Client::new();
    let mut good = TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc)).await?;
    // The agent's connection to the gateway is up before the flood.
    let warm = trace_id(0xa0, 0);
    good.export(integration_tests::otlp::request("good", spans(&warm, 1)))
        .await?;
    wait_for(
        "the warm-up trace stored",
        Duration::from_secs(60),
        || async { (stored_spans(&http, gw.http, &warm).await? == 1).then_some(()) },
    )
    .await?;

    // Every attack at once.
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut header_loris = Vec::new();
    for addr in [agent.otlp_http, agent.admin, gw.http, gw.otlp_http] {
        for kind in [Loris::Headers, Loris::Body] {
            let (outcomes, t) = slow_loris(addr, kind, 20, &stop);
            if kind == Loris::Headers {
                header_loris.push(outcomes);
            }
            tasks.extend(t);
        }
    }
    // 256 idle connects on each mTLS port, from addresses other than the
    // agent's (127.0.0.1): 64 from each of four.
    let flooders = [
        [127, 0, 0, 3],
        [127, 0, 0, 4],
        [127, 0, 0, 5],
        [127, 0, 0, 6],
    ];
    let mut floods = Vec::new();
    for addr in [gw.federation, gw.raft] {
        let (outcomes, t) = handshake_flood(addr, &flooders, 64, &stop);
        floods.push(outcomes);
        tasks.extend(t);
    }
    wait_for("the floods in place", Duration::from_secs(30), || async {
        floods
            .iter()
            .all(|f| f.opened.load(std::sync::atomic::Ordering::SeqCst) >= 256)
            .then_some(())
    })
    .await?;

    // Overflowing query windows (defect 1): 400, promptly.
    let overflow = [
        "/api/metrics/calls?lookback=-9223372036854775808",
        "/api/v1/metrics/red?from=-9223372036854775808&to=9223372036854775807",
    ];
    let windows = {
        let (http, gw_http, stop) = (http.clone(), gw.http, stop.clone());
        tokio::spawn(async move {
            let mut answered = 0u64;
            while !stop.is_cancelled() {
                for path in overflow {
                    let resp = tokio::time::timeout(
                        ANSWERED_WITHIN,
                        http.get(format!("http://{gw_http}{path}")).send(),
                    )
                    .await
                    .with_context(|| format!("{path} not answered within {ANSWERED_WITHIN:?}"))??;
                    anyhow::ensure!(resp.status() == 400, "{path}: {}", resp.status());
                    answered += 1;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok::<u64, anyhow::Error>(answered)
        })
    };

    // 32 MiB of empty spans, gzipped, to both of the agent's OTLP ports
    // (defect 3): refused, never stored.
    let gz = empty_span_flood()?;
    let floods_otlp = {
        let (http, agent_http, agent_grpc, stop) =
            (http.clone(), agent.otlp_http, agent.otlp_grpc, stop.clone());
        tokio::spawn(async move {
            let mut refused = 0u64;
            while !stop.is_cancelled() {
                let resp = http
                    .post(format!("http://{agent_http}/v1/traces"))
                    .header("content-type", "application/x-protobuf")
                    .header("content-encoding", "gzip")
                    .body(gz.clone())
                    .send()
                    .await?;
                let code = resp.status().as_u16();
                anyhow::ensure!(code == 400 || code == 413, "otlp http flood: {code}");
                let status = grpc_flood(agent_grpc, &gz).await?;
                anyhow::ensure!(
                    matches!(status.as_deref(), Some("3") | Some("8")),
                    "otlp grpc flood: grpc-status {status:?}"
                );
                refused += 2;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok::<u64, anyhow::Error>(refused)
        })
    };

    // The well-behaved client: one trace per request; each answered within
    // 5 s (a retryable refusal is retried, as an SDK would).
    let mut sent = Vec::new();
    for n in 1..=GOOD_REQUESTS {
        let trace = trace_id(0xa1, n);
        let req = integration_tests::otlp::request("good", spans(&trace, SPANS_PER_TRACE));
        loop {
            let answer = tokio::time::timeout(ANSWERED_WITHIN, good.export(req.clone()))
                .await
                .with_context(|| format!("request {n} not answered within {ANSWERED_WITHIN:?}"))?;
            match answer {
                Ok(_) => break,
                Err(s) if matches!(s.code(), Code::ResourceExhausted | Code::Unavailable) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => anyhow::bail!("request {n} refused: {s:?}"),
            }
        }
        sent.push(trace);
        // New handshakes on the flooded ports still complete promptly.
        if n % 10 == 0 {
            handshakes_complete(&gw, &ca_dir, dir.path()).await?;
        }
    }

    // A poison resource claiming another cluster beside good spans
    // (defect 5): only the poison is refused.
    let mixed_good = trace_id(0xb1, 1);
    let poison = trace_id(0xbf, 1);
    let mut mixed = integration_tests::otlp::request("good", spans(&mixed_good, 3));
    let poisoned = integration_tests::otlp::request_with(
        vec![
            string_kv("service.name", "poison"),
            string_kv("k8s.cluster.name", "someone-else"),
        ],
        spans(&poison, 2),
    );
    mixed.resource_spans.extend(poisoned.resource_spans);
    let reply = tokio::time::timeout(ANSWERED_WITHIN, good.export(mixed))
        .await
        .context("the mixed batch not answered")??
        .into_inner();
    let rejected = reply.partial_success.map_or(0, |p| p.rejected_spans);
    assert_eq!(rejected, 2, "exactly the poison's spans are refused");

    // The deadlines closed the slow-loris connections (10 s for headers).
    wait_for(
        "every server closing header slow-loris connections",
        Duration::from_secs(60),
        || async { header_loris.iter().all(|o| o.closed() > 0).then_some(()) },
    )
    .await?;
    stop.cancel();
    let answered = windows.await??;
    let refused = floods_otlp.await??;
    for t in tasks {
        let _ = t.await;
    }
    assert!(
        answered > 0 && refused > 0,
        "{answered} windows, {refused} floods"
    );

    // Every span the well-behaved client sent is stored, exactly.
    for trace in sent.iter().chain([&mixed_good]) {
        let want = if *trace == mixed_good {
            3
        } else {
            usize::from(SPANS_PER_TRACE)
        };
        wait_for(
            &format!("trace {} stored", hex::encode(trace)),
            Duration::from_secs(60),
            || async { (stored_spans(&http, gw.http, trace).await? == want).then_some(()) },
        )
        .await?;
    }
    assert_eq!(
        stored_spans(&http, gw.http, &poison).await,
        Some(0),
        "the poison is not stored"
    );
    // The floods were refused by the per-IP limit, and counted.
    let text = http
        .get(format!("http://{}/metrics", gw.http))
        .send()
        .await?
        .text()
        .await?;
    let per_ip = metric(
        &text,
        "meridian_gateway_identity_refused_total{reason=\"handshake_per_ip\"}",
    )
    .unwrap_or(0.0);
    assert!(per_ip > 0.0, "handshakes refused per ip: {per_ip}");
    drop(agent);
    drop(gw);
    Ok(())
}

/// A fresh agent handshake on the federation port and a fresh node
/// handshake on the Raft port, each within [`ANSWERED_WITHIN`].
async fn handshakes_complete(
    gw: &GatewayProcess,
    ca_dir: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let ca = certs::ca_paths(ca_dir).cert;
    let agent = certs::issue(ca_dir, &Subject::Cluster("good".into()), &dir.join("probe"))?;
    let node = certs::issue(
        ca_dir,
        &Subject::Node {
            name: "probe".into(),
            hosts: Vec::new(),
        },
        &dir.join("probe-node"),
    )?;
    for (addr, id) in [(gw.federation, &agent), (gw.raft, &node)] {
        let cfg = client_config(&ca, &id.cert, &id.key)?;
        tokio::time::timeout(
            ANSWERED_WITHIN,
            tls_connect(Some([127, 0, 0, 2]), addr, cfg),
        )
        .await
        .with_context(|| format!("handshake with {addr} starved by the flood"))??;
    }
    Ok(())
}
