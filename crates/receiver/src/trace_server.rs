//! The OTLP gRPC `TraceService` server, with a decoder that checks the
//! request against [`DecodeLimits`] before prost builds anything.
//!
//! The server opentelemetry-proto generates decodes with prost directly, so
//! a 32 MiB message of empty spans would be gigabytes before the service
//! saw it; this is that server written out (one unary method) with
//! [`BoundedDecoder`] in place of prost's decoder.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use proto::{
    bounds::{self, DecodeLimits, Schema},
    otlp::ExportTraceServiceResponse,
};
use telemetry::budget::{ByteBudget, Reservation};
use tonic::{
    Request, Response, Status,
    body::Body,
    codec::{BufferSettings, Codec, CompressionEncoding, DecodeBuf, Decoder},
    server::{Grpc, NamedService, UnaryService},
};

use crate::{ReceiveError, ReceiverMetrics, grpc::status_of};

const SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send + 'static>>;

/// One `Export` message as received: its bytes, which the bounds scan
/// passed, and the spans it counted. Decoding (or not) is the service's
/// choice ([`crate::outcome::deliver_encoded`]).
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Bytes,
    pub spans: usize,
}

/// What serves `Export` behind [`TraceServer`].
pub trait ExportEncoded: Send + Sync + 'static {
    fn export(
        &self,
        request: Request<Encoded>,
    ) -> impl Future<Output = Result<Response<ExportTraceServiceResponse>, Status>> + Send;
}

/// `TraceService/Export` over `T`, gzip accepted and sent, messages at
/// most `max_message_bytes` (decompressed) and within `limits`.
///
/// Each decoded message holds its estimated decoded size
/// ([`bounds::Scanned::decoded_bytes`]) from `decoded` until its call is
/// answered, so messages decoded and waiting for a delivery slot are
/// bounded in bytes as well as in number; one that does not fit is
/// refused as busy (RESOURCE_EXHAUSTED with RetryInfo) before prost
/// builds it.
#[derive(Debug)]
pub struct TraceServer<T> {
    inner: Arc<T>,
    limits: DecodeLimits,
    max_message_bytes: usize,
    metrics: ReceiverMetrics,
    decoded: ByteBudget,
}

impl<T> Clone for TraceServer<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            limits: self.limits,
            max_message_bytes: self.max_message_bytes,
            metrics: self.metrics.clone(),
            decoded: self.decoded.clone(),
        }
    }
}

impl<T> TraceServer<T> {
    pub fn new(
        inner: T,
        limits: DecodeLimits,
        max_message_bytes: usize,
        metrics: ReceiverMetrics,
        decoded: ByteBudget,
    ) -> Self {
        Self {
            inner: Arc::new(inner),
            limits,
            max_message_bytes,
            metrics,
            decoded,
        }
    }
}

/// The decoded-bytes reservation of one call: the decoder puts it here,
/// the method takes it and holds it until the call is answered.
type Held = Arc<Mutex<Option<Reservation>>>;

fn hold(held: &Held, reservation: Reservation) {
    *held.lock().unwrap_or_else(|p| p.into_inner()) = Some(reservation);
}

fn take(held: &Held) -> Option<Reservation> {
    held.lock().unwrap_or_else(|p| p.into_inner()).take()
}

impl<T> NamedService for TraceServer<T> {
    const NAME: &'static str = SERVICE;
}

impl<T, B> tower::Service<http::Request<B>> for TraceServer<T>
where
    T: ExportEncoded,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync + 'static>> + Send,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let held = Held::default();
        let method = Export(Arc::clone(&self.inner), Arc::clone(&held));
        let codec = BoundedCodec {
            limits: self.limits,
            metrics: self.metrics.clone(),
            decoded: self.decoded.clone(),
            held,
        };
        let max = self.max_message_bytes;
        Box::pin(async move {
            let mut grpc = Grpc::new(codec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max);
            Ok(grpc.unary(method, req).await)
        })
    }
}

struct Export<T>(Arc<T>, Held);

impl<T: ExportEncoded> UnaryService<Encoded> for Export<T> {
    type Response = ExportTraceServiceResponse;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send + 'static>>;

    fn call(&mut self, request: Request<Encoded>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        let reservation = take(&self.1);
        Box::pin(async move {
            let answer = inner.export(request).await;
            drop(reservation);
            answer
        })
    }
}

/// prost's encoder; [`BoundedDecoder`] for requests.
#[derive(Debug, Clone)]
struct BoundedCodec {
    limits: DecodeLimits,
    metrics: ReceiverMetrics,
    decoded: ByteBudget,
    held: Held,
}

impl Codec for BoundedCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Encoded;
    type Encoder = tonic_prost::ProstEncoder<ExportTraceServiceResponse>;
    type Decoder = BoundedDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder {
            limits: self.limits,
            metrics: self.metrics.clone(),
            decoded: self.decoded.clone(),
            held: Arc::clone(&self.held),
        }
    }
}

/// Scans the message ([`bounds::check_protobuf`]) and reserves its decoded
/// size; decoding is left to the service. Refusals: RESOURCE_EXHAUSTED (a cap; no
/// `RetryInfo`, so clients do not retry it), RESOURCE_EXHAUSTED with
/// `RetryInfo` (the decoded budget is full now) or INVALID_ARGUMENT
/// (malformed), counted as rejected.
#[derive(Debug)]
pub struct BoundedDecoder {
    limits: DecodeLimits,
    metrics: ReceiverMetrics,
    decoded: ByteBudget,
    held: Held,
}

impl BoundedDecoder {
    fn check(&self, bytes: Bytes) -> Result<Encoded, ReceiveError> {
        let scanned =
            bounds::check_protobuf(&bytes, &Schema::EXPORT_TRACE, &self.limits).map_err(|e| {
                if e.is_malformed() {
                    ReceiveError::BadRequest(e.to_string())
                } else {
                    ReceiveError::TooLarge(e.to_string())
                }
            })?;
        let Some(reservation) = self.decoded.try_reserve(scanned.decoded_bytes as u64) else {
            return Err(ReceiveError::Busy(format!(
                "requests decoded and not yet answered hold the receiver's {} MiB decoded budget; retry later",
                self.decoded.capacity() >> 20
            )));
        };
        hold(&self.held, reservation);
        Ok(Encoded {
            bytes,
            spans: scanned.spans,
        })
    }
}

impl Decoder for BoundedDecoder {
    type Item = Encoded;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        // The message's own buffer, split off without a copy.
        let len = buf.remaining();
        let bytes = buf.copy_to_bytes(len);
        self.check(bytes).map(Some).map_err(|e| {
            tracing::debug!(error = %e, "otlp grpc export refused before decoding");
            self.metrics.request("otlp_grpc", "rejected");
            status_of(&e)
        })
    }
}
