//! The `--export-otlp` destination: OTLP gRPC `TraceService/Export` to any
//! endpoint. Records are sent as they sit in the buffer (concatenated
//! encoded requests merge into one), so export costs no re-encoding.

use std::{sync::Arc, time::Duration};

use bytes::{BufMut, BytesMut};
use futures::future::BoxFuture;
use proto::raw::RawExportClient;
use tonic::transport::Channel;

use super::{Destination, ForwardStats, Outcome};
use crate::buffer::Record;

#[derive(Debug)]
pub struct OtlpDestination {
    url: Arc<str>,
    client: RawExportClient,
    timeout: Duration,
    stats: ForwardStats,
}

impl OtlpDestination {
    pub fn new(
        url: String,
        channel: Channel,
        gzip: bool,
        timeout: Duration,
        stats: ForwardStats,
    ) -> Self {
        Self {
            url: url.into(),
            client: RawExportClient::new(channel, gzip),
            timeout,
            stats,
        }
    }
}

impl Destination for OtlpDestination {
    fn failover(&mut self) {}

    fn send(&mut self, batch: Arc<[Record]>) -> BoxFuture<'static, Outcome> {
        let mut client = self.client.clone();
        let url = Arc::clone(&self.url);
        let timeout = self.timeout;
        let stats = self.stats.clone();
        Box::pin(async move {
            let len = batch.iter().map(|r| r.payload.len()).sum();
            let mut body = BytesMut::with_capacity(len);
            for r in batch.iter() {
                body.put_slice(&r.payload);
            }
            let spans: u64 = batch.iter().map(|r| r.spans).sum();
            match client.export(body.freeze(), Some(timeout)).await {
                Ok(resp) => {
                    stats.gateway_up(true);
                    if let Some(p) = resp.partial_success
                        && p.rejected_spans > 0
                    {
                        stats.rejected(u64::try_from(p.rejected_spans).unwrap_or(0));
                        tracing::warn!(
                            endpoint = %url,
                            rejected = p.rejected_spans,
                            message = %p.error_message,
                            "export endpoint rejected some spans"
                        );
                    }
                    Outcome::Committed
                }
                Err(status) => super::on_error(&status, &url, spans, &stats),
            }
        })
    }
}
