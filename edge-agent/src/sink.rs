use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use prost::Message;
use proto::otlp::ExportTraceServiceRequest;
use receiver::{Sink, SinkError};

use crate::buffer::MemoryBuffer;

/// How long a client is told to wait when the buffer is full.
pub const FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Receivers' sink: encode the validated request once and append it to the
/// buffer. Acknowledging the client after this is `--durability memory`.
#[derive(Debug, Clone)]
pub struct BufferSink {
    buffer: Arc<MemoryBuffer>,
}

impl BufferSink {
    pub fn new(buffer: Arc<MemoryBuffer>) -> Self {
        Self { buffer }
    }
}

impl Sink for BufferSink {
    async fn accept(&self, req: ExportTraceServiceRequest, spans: u64) -> Result<(), SinkError> {
        let payload = Bytes::from(req.encode_to_vec());
        match self.buffer.append(payload, spans) {
            Ok(_) => Ok(()),
            Err(full) => {
                tracing::warn!(
                    used = full.used,
                    capacity = full.capacity,
                    "buffer full, refusing spans with a retry hint"
                );
                Err(SinkError::Full {
                    retry_after: FULL_RETRY_AFTER,
                })
            }
        }
    }
}
