use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use proto::otlp::ExportTraceServiceRequest;
use receiver::{Sink, SinkError};

use crate::buffer::{AppendError, Buffer};

/// How long a client is told to wait when the buffer is full.
pub const FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Receivers' sink: encode the validated request once and append it to the
/// buffer. Acknowledging the client after this is `--durability memory`.
#[derive(Debug, Clone)]
pub struct BufferSink {
    buffer: Buffer,
}

impl BufferSink {
    pub fn new(buffer: Buffer) -> Self {
        Self { buffer }
    }
}

impl Sink for BufferSink {
    async fn accept(&self, req: ExportTraceServiceRequest, spans: u64) -> Result<(), SinkError> {
        let payload = Bytes::from(req.encode_to_vec());
        match self.buffer.append(payload, spans).await {
            Ok(_) => Ok(()),
            Err(AppendError::Full { used, capacity }) => {
                tracing::warn!(
                    used,
                    capacity,
                    "buffer full, refusing spans with a retry hint"
                );
                Err(SinkError::Full {
                    retry_after: FULL_RETRY_AFTER,
                })
            }
            Err(AppendError::Io(message)) => {
                tracing::error!(error = %message, "buffer write failed, refusing spans with a retry hint");
                Err(SinkError::Unavailable {
                    message,
                    retry_after: FULL_RETRY_AFTER,
                })
            }
        }
    }
}
