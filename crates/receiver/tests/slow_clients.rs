//! Defect 4 (slow-loris) at the receivers: clients that send their HTTP
//! body slowly hold no in-flight slot, so a normal request is served while
//! many of them wait; a body past its deadline is answered 408. Defect 7 at
//! the OTLP gRPC port: a connection holds a bounded number of announced
//! message bytes.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use prost::Message;
use proto::otlp::{ExportTraceServiceRequest, ResourceSpans, ScopeSpans, Span};
use receiver::{Limits, MAX_INFLIGHT_REQUESTS, ReceiverMetrics, Sink, SinkError};
use telemetry::{
    Shutdown,
    serve::{Deadlines, bind},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// How long a request may take before the test fails: far above what a
/// served request needs, far below the body deadline the slow clients
/// would otherwise hold their slots for.
const SERVED_WITHIN: Duration = Duration::from_secs(10);

/// Counts the spans it accepts.
#[derive(Debug, Clone, Default)]
struct Counting(Arc<AtomicU64>);

impl Sink for Counting {
    async fn accept(&self, _: ExportTraceServiceRequest, spans: u64) -> Result<(), SinkError> {
        self.0.fetch_add(spans, Ordering::SeqCst);
        Ok(())
    }
}

fn request(spans: u8) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (1..=spans)
                    .map(|i| Span {
                        trace_id: vec![7; 16],
                        span_id: vec![i; 8],
                        name: "op".into(),
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_001_000_000,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn http_server(deadlines: Deadlines) -> anyhow::Result<(Shutdown, SocketAddr, Counting)> {
    let (listener, addr) = bind("otlp http", "127.0.0.1:0".parse()?).await?;
    let sink = Counting::default();
    let sd = Shutdown::new();
    let router =
        receiver::http::otlp_router(sink.clone(), Limits::default(), ReceiverMetrics::default());
    telemetry::serve::http_with(&sd, "otlp http", listener, router, deadlines);
    Ok((sd, addr, sink))
}

/// Headers announcing a 1,000-byte protobuf body, and its first byte.
const SLOW_START: &[u8] = b"POST /v1/traces HTTP/1.1\r\nhost: x\r\n\
content-type: application/x-protobuf\r\ncontent-length: 1000\r\n\r\n\x0a";

/// A whole request on its own connection; the reply as text.
async fn post(addr: SocketAddr, body: &[u8]) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Failed before: the 16 in-flight slots were taken before the body was
/// read, so 32 clients that never finish their body kept this request
/// waiting (checked with the old `inflight_limit()` layer: it timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_http_bodies_hold_no_slot() -> anyhow::Result<()> {
    let (sd, addr, sink) = http_server(Deadlines::default()).await?;
    let mut slow = Vec::new();
    for _ in 0..2 * MAX_INFLIGHT_REQUESTS {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(SLOW_START).await?;
        slow.push(s);
    }
    let reply =
        tokio::time::timeout(SERVED_WITHIN, post(addr, &request(3).encode_to_vec())).await??;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(sink.0.load(Ordering::SeqCst), 3);
    drop(slow);
    assert!(sd.shutdown(Duration::from_secs(10)).await);
    Ok(())
}

/// Failed before: no body deadline, the server waited for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_body_past_its_deadline_is_answered_408() -> anyhow::Result<()> {
    let deadlines = Deadlines {
        body: Duration::from_millis(300),
        ..Deadlines::default()
    };
    let (sd, addr, sink) = http_server(deadlines).await?;
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(SLOW_START).await?;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(SERVED_WITHIN, s.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("did not arrive within"), "{reply}");
    assert_eq!(sink.0.load(Ordering::SeqCst), 0);
    assert!(sd.shutdown(Duration::from_secs(10)).await);
    Ok(())
}

/// Defect 7 at the OTLP gRPC port: a message larger than one connection
/// may hold is refused at its length prefix, with a retry hint, before its
/// bytes are read (before: tonic buffered it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_message_over_the_connection_budget_is_refused_at_its_prefix() -> anyhow::Result<()>
{
    let (listener, addr) = bind("otlp grpc", "127.0.0.1:0".parse()?).await?;
    let sd = Shutdown::new();
    let limits = Limits::default();
    receiver::grpc::serve(
        &sd,
        listener,
        Counting::default(),
        limits,
        ReceiverMetrics::default(),
    );
    let tcp = TcpStream::connect(addr).await?;
    let (h2, conn) = h2::client::handshake(tcp).await?;
    let conn = tokio::spawn(conn);
    let mut replies = Vec::new();
    let mut bodies = Vec::new();
    // Two streams that each announce (nearly) half the connection's budget
    // hold it; whichever announcement comes third does not fit.
    let half = (limits.max_decompressed_bytes as u32) / 2 - 8;
    for _ in 0..3 {
        let req = http::Request::post(format!(
            "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
        let (reply, mut body) = h2.clone().ready().await?.send_request(req, false)?;
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&half.to_be_bytes());
        body.send_data(Bytes::from(prefix), false)?;
        replies.push(Box::pin(reply));
        bodies.push(body);
    }
    let (reply, _, streams) =
        tokio::time::timeout(SERVED_WITHIN, futures::future::select_all(replies)).await?;
    let reply = reply?;
    let status = reply
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {:?}", reply.headers());
    assert!(
        reply.headers().contains_key("grpc-status-details-bin"),
        "with RetryInfo: {:?}",
        reply.headers()
    );
    drop((streams, bodies));
    drop(h2);
    conn.abort();
    assert!(sd.shutdown(Duration::from_secs(10)).await);
    Ok(())
}
