//! OTLP `TraceService/Export` with a pre-encoded request body.
//!
//! Buffered records are already encoded `ExportTraceServiceRequest`s, and
//! concatenated encodings of one message merge into one (protobuf appends
//! repeated fields), so a batch of records is sent as the concatenation of
//! their bytes: nothing is decoded or re-encoded on the way out.

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

use crate::otlp::ExportTraceServiceResponse;

/// The gRPC path of OTLP trace export.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Encodes `Bytes` as is; decodes the OTLP response.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug)]
pub struct RawEncoder;

#[derive(Debug)]
pub struct ResponseDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("invalid export response: {e}")))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

/// A trace-export client sending pre-encoded requests.
#[derive(Debug, Clone)]
pub struct RawExportClient {
    inner: tonic::client::Grpc<Channel>,
}

impl RawExportClient {
    pub fn new(channel: Channel) -> Self {
        Self {
            inner: tonic::client::Grpc::new(channel).max_decoding_message_size(1 << 20),
        }
    }

    /// Sends one encoded `ExportTraceServiceRequest`.
    pub async fn export(
        &mut self,
        req: tonic::Request<Bytes>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("export endpoint not ready: {e}")))?;
        let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
        self.inner.unary(req, path, RawCodec).await
    }
}
