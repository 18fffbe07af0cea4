//! The decoded-size measurements (BENCHMARKS.md, "Decoded size"): hostile
//! inputs of a few MiB, each through the decoder the old code ran straight
//! after its byte limits ("before") and through today's path ("after"),
//! peak bytes allocated on this thread by the counting allocator.

use axum::body::Body;
use http::{Request, header};
use prost::Message;
use proto::{
    federation::{Compression, ControlUpdate, DigestBatch},
    metrics::WindowBatch,
    otlp::{
        ExportTraceServiceRequest, ExportTraceServiceResponse, TraceService, TraceServiceServer,
    },
    payload,
    validate::sanitize,
};
use receiver::{Limits, ReceiverMetrics, Sink, SinkError};
use tower::ServiceExt;

use crate::alloc::measure;

/// Accepts everything.
#[derive(Debug, Clone)]
struct Discard;

impl Sink for Discard {
    async fn accept(&self, _: ExportTraceServiceRequest, _: u64) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The generated server the old gRPC receiver ran.
#[derive(Debug)]
struct OldGrpc;

#[tonic::async_trait]
impl TraceService for OldGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut req = request.into_inner();
        sanitize(&mut req);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// `field` (length-delimited) holding `body`.
pub fn field(number: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// `unit` repeated to just under `bytes` (room left for the envelope, so
/// the body stays inside a byte limit of `bytes`).
fn repeat(unit: &[u8], bytes: usize) -> Vec<u8> {
    unit.repeat(bytes.saturating_sub(64) / unit.len())
}

/// One resource, one scope, empty spans (`12 00`): `bytes` long.
pub fn empty_spans(bytes: usize) -> Vec<u8> {
    field(1, &field(2, &repeat(&[0x12, 0x00], bytes)))
}

/// One span (ids only) with empty attributes (`4a 00`).
fn empty_attributes(bytes: usize) -> Vec<u8> {
    let mut span = field(1, &[1; 16]);
    span.extend(field(2, &[2; 8]));
    span.extend(repeat(&[0x4a, 0x00], bytes));
    field(1, &field(2, &field(2, &span)))
}

fn json_empty_spans(bytes: usize) -> Vec<u8> {
    let mut out = br#"{"resourceSpans":[{"scopeSpans":[{"spans":["#.to_vec();
    out.extend(repeat(b"{},", bytes));
    out.extend_from_slice(b"{}]}]}]}");
    out
}

fn zipkin_minimal(bytes: usize) -> Vec<u8> {
    let mut out = b"[".to_vec();
    out.extend(repeat(br#"{"traceId":"1","id":"2"},"#, bytes));
    out.extend_from_slice(br#"{"traceId":"1","id":"2"}]"#);
    out
}

/// Realistic requests (`proto::corpus`) concatenated to just under `bytes`.
fn realistic(bytes: usize) -> Vec<u8> {
    let mut g = proto::corpus::Generator::new(11);
    let mut out = Vec::with_capacity(bytes);
    loop {
        let next = g.request(64).encode_to_vec();
        if out.len() + next.len() > bytes.saturating_sub(64) {
            return out;
        }
        out.extend(next);
    }
}

fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// What one request got back: the HTTP status, or the gRPC status code.
fn http_outcome(resp: &http::Response<Body>) -> String {
    let grpc = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(|c| format!(" grpc-status {c}"))
        .unwrap_or_default();
    format!("{}{grpc}", resp.status().as_u16())
}

fn post(
    rt: &tokio::runtime::Runtime,
    app: axum::Router,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> String {
    rt.block_on(async {
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body));
        match req {
            Ok(req) => match app.oneshot(req).await {
                Ok(resp) => http_outcome(&resp),
                Err(e) => format!("error {e}"),
            },
            Err(e) => format!("error {e}"),
        }
    })
}

fn grpc<S>(rt: &tokio::runtime::Runtime, svc: S, msg: &[u8]) -> String
where
    S: tower::Service<http::Request<Body>, Response = http::Response<tonic::body::Body>>,
    S::Error: std::fmt::Debug,
{
    let body = grpc_frame(msg);
    rt.block_on(async {
        let req = Request::post("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::from(body));
        let Ok(req) = req else {
            return "bad request".to_owned();
        };
        match svc.oneshot(req).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let trailers = http_body_util::BodyExt::collect(body)
                    .await
                    .ok()
                    .and_then(|c| c.trailers().cloned());
                let status = tonic::Status::from_header_map(&parts.headers)
                    .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map));
                status.map_or("OK".to_owned(), |s| format!("{:?}", s.code()))
            }
            Err(e) => format!("error {e:?}"),
        }
    })
}

/// One row: a path, the input, peak before and after.
struct Row {
    path: &'static str,
    input: &'static str,
    bytes: usize,
    /// The outcome, and the peak bytes.
    before: (String, usize),
    after: (String, usize),
}

fn mib(n: usize) -> String {
    format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
}

pub fn run(size_mib: usize) -> anyhow::Result<()> {
    let rows = measure_all(size_mib << 20, true)?;
    println!(
        "| path | input | bytes | before: peak (ratio), outcome | after: peak (ratio), outcome |"
    );
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} ({:.0}×), {} | {} ({:.1}×), {} |",
            r.path,
            r.input,
            mib(r.bytes),
            mib(r.before.1),
            r.before.1 as f64 / r.bytes as f64,
            r.before.0,
            mib(r.after.1),
            r.after.1 as f64 / r.bytes as f64,
            r.after.0
        );
    }
    Ok(())
}

fn decoded<T, E: std::fmt::Display>(r: &Result<T, E>) -> String {
    match r {
        Ok(_) => "decoded".to_owned(),
        Err(e) => format!("refused: {e}"),
    }
}

/// Every row; `before: false` skips the old decoders (gigabytes).
fn measure_all(bytes: usize, before: bool) -> anyhow::Result<Vec<Row>> {
    let with_before = before;
    let old = |f: &dyn Fn() -> String| {
        if with_before {
            measure(f)
        } else {
            ("not measured".to_owned(), 0)
        }
    };
    let rt = runtime()?;
    let limits = Limits::default();
    let metrics = ReceiverMetrics::default();
    let mut rows = Vec::new();

    let spans = empty_spans(bytes);
    let before = old(&|| {
        let r = ExportTraceServiceRequest::decode(spans.as_slice()).map(|mut r| sanitize(&mut r));
        decoded(&r)
    });
    let app = receiver::http::otlp_router(Discard, limits, metrics.clone());
    let body = spans.clone();
    let after = measure(|| post(&rt, app, "/v1/traces", "application/x-protobuf", body));
    rows.push(Row {
        path: "OTLP HTTP protobuf",
        input: "empty spans `12 00`",
        bytes: spans.len(),
        before,
        after,
    });

    let generated =
        TraceServiceServer::new(OldGrpc).max_decoding_message_size(limits.max_decompressed_bytes);
    let before = old(&|| grpc(&rt, generated.clone(), &spans));
    let new = receiver::grpc::service(Discard, limits, metrics.clone());
    let after = measure(|| grpc(&rt, new, &spans));
    rows.push(Row {
        path: "OTLP gRPC",
        input: "empty spans `12 00`",
        bytes: spans.len(),
        before,
        after,
    });
    drop(spans);

    let attrs = empty_attributes(bytes);
    let before = old(&|| decoded(&ExportTraceServiceRequest::decode(attrs.as_slice())));
    let app = receiver::http::otlp_router(Discard, limits, metrics.clone());
    let body = attrs.clone();
    let after = measure(|| post(&rt, app, "/v1/traces", "application/x-protobuf", body));
    rows.push(Row {
        path: "OTLP HTTP protobuf",
        input: "one span, empty attributes `4a 00`",
        bytes: attrs.len(),
        before,
        after,
    });
    drop(attrs);

    let json = json_empty_spans(bytes);
    let before = old(&|| decoded(&serde_json::from_slice::<ExportTraceServiceRequest>(&json)));
    let app = receiver::http::otlp_router(Discard, limits, metrics.clone());
    let body = json.clone();
    let after = measure(|| post(&rt, app, "/v1/traces", "application/json", body));
    rows.push(Row {
        path: "OTLP HTTP JSON",
        input: "empty spans `{},`",
        bytes: json.len(),
        before,
        after,
    });
    drop(json);

    let zipkin = zipkin_minimal(bytes);
    let before = old(&|| {
        let r = serde_json::from_slice::<Vec<proto::zipkin::ZipkinSpan>>(&zipkin)
            .map(proto::zipkin::to_otlp);
        decoded(&r)
    });
    let app = receiver::http::zipkin_router(Discard, limits, metrics.clone());
    let body = zipkin.clone();
    let after = measure(|| post(&rt, app, "/api/v2/spans", "application/json", body));
    rows.push(Row {
        path: "Zipkin v2 JSON",
        input: "minimal spans",
        bytes: zipkin.len(),
        before,
        after,
    });
    drop(zipkin);

    let spans = empty_spans(bytes);
    let (compressed, size) = payload::encode(&[&spans], 1)?;
    let before = old(&|| decoded(&ExportTraceServiceRequest::decode(spans.as_slice())));
    let after = measure(|| {
        decoded(&payload::decode(
            Compression::Zstd as i32,
            &compressed,
            size,
            limits.max_decompressed_bytes,
        ))
    });
    rows.push(Row {
        path: "Forward payload (zstd)",
        input: "empty spans `12 00`",
        bytes: spans.len(),
        before,
        after,
    });
    drop(spans);

    let windows = repeat(&field(1, &[]), bytes);
    let before = old(&|| decoded(&WindowBatch::decode(windows.as_slice())));
    let after = measure(|| {
        decoded(&payload::decode_as::<WindowBatch>(
            Compression::None as i32,
            &windows,
            0,
            limits.max_decompressed_bytes,
        ))
    });
    rows.push(Row {
        path: "ForwardWindows payload",
        input: "empty windows `0a 00`",
        bytes: windows.len(),
        before,
        after,
    });
    drop(windows);

    let digests = repeat(&field(3, &[]), bytes);
    let before = old(&|| decoded(&DigestBatch::decode(digests.as_slice())));
    let after = measure(|| decoded(&proto::codec::decode::<DigestBatch>(&digests)));
    rows.push(Row {
        path: "Decide (DigestBatch)",
        input: "empty digests `1a 00`",
        bytes: digests.len(),
        before,
        after,
    });
    drop(digests);

    let update = repeat(&field(1, &[]), bytes);
    let before = old(&|| decoded(&ControlUpdate::decode(update.as_slice())));
    let after = measure(|| decoded(&proto::codec::decode::<ControlUpdate>(&update)));
    rows.push(Row {
        path: "Control (ControlUpdate)",
        input: "empty gateway URLs `0a 00`",
        bytes: update.len(),
        before,
        after,
    });
    drop(update);

    let real = realistic(bytes);
    let before = old(&|| decoded(&ExportTraceServiceRequest::decode(real.as_slice())));
    let app = receiver::http::otlp_router(Discard, limits, metrics.clone());
    let body = real.clone();
    let after = measure(|| post(&rt, app, "/v1/traces", "application/x-protobuf", body));
    rows.push(Row {
        path: "OTLP HTTP protobuf",
        input: "realistic spans (proto::corpus)",
        bytes: real.len(),
        before,
        after,
    });
    drop(real);
    // The same spans as OTLP/JSON, just under the limit (JSON is ~2.7×).
    let json = serde_json::to_vec(&ExportTraceServiceRequest::decode(
        realistic(bytes * 10 / 28).as_slice(),
    )?)?;
    let before = old(&|| decoded(&serde_json::from_slice::<ExportTraceServiceRequest>(&json)));
    let app = receiver::http::otlp_router(Discard, limits, metrics);
    let body = json.clone();
    let after = measure(|| post(&rt, app, "/v1/traces", "application/json", body));
    rows.push(Row {
        path: "OTLP HTTP JSON",
        input: "realistic spans (proto::corpus)",
        bytes: json.len(),
        before,
        after,
    });
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound the receivers promise: a hostile body within the byte
    /// limit (8 MiB) is refused before decoding, holding at most a small
    /// multiple of itself; a realistic one is accepted. Fails on the old
    /// code (40× to 200× for these inputs, each decoded).
    #[test]
    fn hostile_inputs_are_refused_within_a_small_multiple_of_their_size() {
        let rows = measure_all(8 << 20, false).unwrap();
        for r in &rows {
            if r.input.starts_with("realistic") {
                assert!(r.after.0.starts_with("200"), "{}: {}", r.path, r.after.0);
                continue;
            }
            assert!(
                r.after.0.starts_with("413")
                    || r.after.0.starts_with("refused")
                    || r.after.0 == "ResourceExhausted",
                "{} with {}: {}",
                r.path,
                r.input,
                r.after.0
            );
            let bound = 4 * r.bytes + (1 << 20);
            assert!(
                r.after.1 <= bound,
                "{} with {}: {} bytes at peak for {} bytes of input ({})",
                r.path,
                r.input,
                r.after.1,
                r.bytes,
                r.after.0
            );
        }
    }
}
