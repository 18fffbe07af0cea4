//! Bad input gets a clear 4xx / gRPC status, never a panic; the valid spans
//! of a mixed batch are kept; the agent stays healthy.

use std::io::Write;

use integration_tests::Sandbox;
use prost::Message;
use proto::otlp::{self, ExportTraceServiceRequest, Span};
use tonic::{Code, codec::CompressionEncoding};

fn span(trace: Vec<u8>, id: Vec<u8>, name: &str) -> Span {
    Span {
        trace_id: trace,
        span_id: id,
        name: name.into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_002_000_000,
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    integration_tests::otlp::request("bad-input", spans)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

async fn post(
    sb: &Sandbox,
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<(u16, String)> {
    let mut req = sb
        .http
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_receivers_answer_bad_input_with_clear_errors() -> anyhow::Result<()> {
    let sb = Sandbox::start(&["bad"]).await?;
    let agent = sb.agent("bad")?;
    let otlp_url = format!("http://{}/v1/traces", agent.otlp_http_addr);
    let zipkin_url = format!("http://{}/api/v2/spans", agent.zipkin_addr);
    let pb = "application/x-protobuf";
    let json = "application/json";

    // Malformed protobuf and JSON.
    let (s, body) = post(&sb, &otlp_url, pb, None, vec![0xff, 0xff, 0xff, 0x01]).await?;
    assert_eq!(s, 400, "{body}");
    let (s, body) = post(
        &sb,
        &otlp_url,
        json,
        None,
        b"{\"resourceSpans\": [".to_vec(),
    )
    .await?;
    assert_eq!(s, 400);
    assert!(body.contains("invalid OTLP JSON"), "{body}");
    // Base64 ids are not OTLP/JSON.
    let b64 = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"eee19b7ec3c1b174"}]}]}]}"#;
    assert_eq!(post(&sb, &otlp_url, json, None, b64.to_vec()).await?.0, 400);
    // Unsupported media type and content encoding.
    assert_eq!(
        post(&sb, &otlp_url, "text/xml", None, b"<x/>".to_vec())
            .await?
            .0,
        415
    );
    assert_eq!(
        post(&sb, &otlp_url, pb, Some("br"), vec![1, 2]).await?.0,
        415
    );
    // Oversized body (limit 8 MiB on the wire): refused from the declared
    // length, before a byte of the body is read.
    let status = declared_too_large(agent.otlp_http_addr).await?;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    // Chunked (no declared length): refused once the limit is crossed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..9).map(|_| Ok(vec![0u8; 1 << 20])).collect();
    let resp = sb
        .http
        .post(&otlp_url)
        .header("content-type", pb)
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await;
    match resp {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        // The server may close before the client finished writing.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
    // Gzip bomb: 200 MiB of zeros, a few hundred KiB compressed.
    let bomb = gzip(&vec![0u8; 200 << 20]);
    assert!(bomb.len() < 1 << 20);
    let (s, body) = post(&sb, &otlp_url, pb, Some("gzip"), bomb.clone()).await?;
    assert_eq!(s, 413, "{body}");
    assert!(body.contains("decompressed"), "{body}");
    assert_eq!(
        post(&sb, &zipkin_url, json, Some("gzip"), bomb).await?.0,
        413
    );
    // Corrupt gzip.
    assert_eq!(
        post(&sb, &otlp_url, pb, Some("gzip"), b"nope".to_vec())
            .await?
            .0,
        400
    );

    // Invalid ids: all invalid → 400 naming the problem.
    let all_bad = request(vec![
        span(vec![0; 16], vec![1; 8], "zero"),
        span(vec![1; 8], vec![1; 8], "short"),
    ]);
    let (s, body) = post(&sb, &otlp_url, pb, None, all_bad.encode_to_vec()).await?;
    assert_eq!(s, 400);
    let status = proto::RpcStatus::decode(bytes_of(&body))?;
    assert!(status.message.contains("trace id"), "{}", status.message);
    // Mixed: partial success, good spans kept.
    let mixed = request(vec![
        span(vec![7; 16], vec![1; 8], "good-1"),
        span(vec![7; 16], vec![0; 8], "zero-span-id"),
        span(vec![7; 16], vec![2; 8], "good-2"),
    ]);
    let resp = sb
        .http
        .post(&otlp_url)
        .header("content-type", pb)
        .header("content-encoding", "gzip")
        .body(gzip(&mixed.encode_to_vec()))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let out = otlp::ExportTraceServiceResponse::decode(resp.bytes().await?)?;
    let partial = out.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("span id"));
    // The same as JSON with hex ids.
    let mixed_json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"bad-input"}}]},
      "scopeSpans":[{"spans":[{"traceId":"08080808080808080808080808080808","spanId":"0101010101010101","name":"json-good","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000"},
      {"traceId":"00000000000000000000000000000000","spanId":"0101010101010101","name":"json-bad"}]}]}]}"#;
    let (s, body) = post(&sb, &otlp_url, json, None, mixed_json.to_vec()).await?;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(v["partialSuccess"]["rejectedSpans"], serde_json::json!(1));

    // An empty request is fine and counted.
    assert_eq!(post(&sb, &otlp_url, pb, None, Vec::new()).await?.0, 200);
    assert_eq!(
        agent.receiver_metrics.requests_with("otlp_http", "empty"),
        1
    );

    // Zipkin: malformed → 400, bad ids dropped per span, valid → 202.
    assert_eq!(
        post(&sb, &zipkin_url, json, None, b"[{".to_vec()).await?.0,
        400
    );
    // proto3 is accepted (a truncated ListOfSpans is malformed); other
    // media types are not.
    assert_eq!(
        post(&sb, &zipkin_url, "application/x-protobuf", None, vec![1])
            .await?
            .0,
        400
    );
    assert_eq!(
        post(&sb, &zipkin_url, "text/xml", None, b"<x/>".to_vec())
            .await?
            .0,
        415
    );
    let z = br#"[{"traceId":"0909090909090909","id":"0000000000000001","name":"zipkin-good","timestamp":1700000000000000,"duration":5,"localEndpoint":{"serviceName":"zipkin-svc"}},
                {"traceId":"zz","id":"0000000000000002","name":"zipkin-bad"}]"#;
    assert_eq!(post(&sb, &zipkin_url, json, None, z.to_vec()).await?.0, 202);

    // Still healthy, and the good spans of the mixed batches arrived.
    let health = sb
        .http
        .get(format!("http://{}/healthz", agent.admin_addr))
        .send()
        .await?;
    assert_eq!(health.status().as_u16(), 200);
    let trace = sb.wait_for_trace(&hex::encode([7u8; 16]), 2).await?;
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(2));
    sb.wait_for_trace("08080808080808080808080808080808", 1)
        .await?;
    let z = sb.wait_for_trace("0909090909090909", 1).await?;
    assert_eq!(
        z["traceID"], "0909090909090909",
        "64-bit ids keep Jaeger's 16-char form"
    );
    sb.shutdown().await;
    Ok(())
}

/// Sends only the headers of a POST that declares a 9 MiB body and returns
/// the status line the server answers with.
async fn declared_too_large(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
        9 << 20
    );
    tcp.write_all(head.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(tcp).read_line(&mut line).await?;
    Ok(line)
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::iter(chunks)
}

fn bytes_of(s: &str) -> &[u8] {
    s.as_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_receiver_answers_bad_input_with_statuses() -> anyhow::Result<()> {
    let sb = Sandbox::start(&["bad"]).await?;
    let agent = sb.agent("bad")?;
    let mut client = otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr))
        .await?
        .send_compressed(CompressionEncoding::Gzip)
        .max_encoding_message_size(usize::MAX);

    let err = client
        .export(request(vec![span(vec![0; 16], vec![1; 8], "zero")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("trace id"), "{}", err.message());

    let resp = client
        .export(request(vec![
            span(vec![3; 16], vec![1; 8], "ok"),
            span(vec![3; 16], vec![1; 5], "short-span-id"),
        ]))
        .await?
        .into_inner();
    assert_eq!(resp.partial_success.map(|p| p.rejected_spans), Some(1));

    // A message that decompresses beyond 32 MiB (gzip on the wire is small).
    let huge = request(vec![Span {
        name: "x".repeat(40 << 20),
        ..span(vec![4; 16], vec![1; 8], "")
    }]);
    let err = client.export(huge).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // Still serving.
    client
        .export(request(vec![span(vec![5; 16], vec![1; 8], "after")]))
        .await?;
    sb.wait_for_trace(&hex::encode([5u8; 16]), 1).await?;
    sb.wait_for_trace(&hex::encode([3u8; 16]), 1).await?;
    sb.shutdown().await;
    Ok(())
}
