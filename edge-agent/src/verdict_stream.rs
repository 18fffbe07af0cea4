//! The verdict stream: the agent's client of the federation `Decide` RPC
//! (`federation.proto`), cross-cluster tail sampling on the agent side.
//! Spans stay in the agent; digests of its tail decisions go up, the
//! gateway's verdicts come down.
//!
//! One task holds one bidirectional stream to one gateway (mTLS, the
//! channels of the shared [`GatewayEndpoints`]):
//! - digests from the tail sampler ([`DigestFeed`]) are batched: a batch
//!   leaves at [`MAX_BATCH`] digests or [`BATCH_DELAY`] after its first
//!   digest, whichever comes first; at most [`STREAM_QUEUE`] batches wait
//!   for the stream (full: the batch is not sent, counted as
//!   `stream_full`, and its traces take their local verdict at the
//!   timeout);
//! - verdicts go to [`SamplingSink::apply_verdicts`];
//! - on a new stream, the digests of every trace still waiting are sent
//!   again (their verdicts may have been lost with the old stream; the
//!   gateway answers a repeated digest with the stored verdict), and so
//!   are those of traces kept locally within the last verdict timeout (the
//!   gateway that took them may have died before telling the others).
//!
//! While no stream is open the sampler does not hold traces for verdicts
//! (local decisions are final). A lost stream is reopened on the next
//! endpoint after a jittered backoff, like the `Control` client
//! ([`crate::reconnect`]).

use std::{sync::atomic::Ordering, time::Duration};

use model::TraceId;
use prost::Message;
use proto::federation::{
    DigestBatch, TraceDigest, Verdict, VerdictBatch, federation_client::FederationClient,
};
use telemetry::Shutdown;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    forward::endpoints::GatewayEndpoints,
    reconnect::{BACKOFF, Ended, OPEN_TIMEOUT, Rotation},
    sampler::{
        pipeline::SamplingSink,
        tail::Digest,
        verdicts::{DigestFeed, VerdictStats},
    },
};

/// Digests per batch at most.
pub const MAX_BATCH: usize = 512;
/// A batch leaves this long after its first digest at the latest.
pub const BATCH_DELAY: Duration = Duration::from_millis(50);
/// Batches waiting to be written to the stream.
pub const STREAM_QUEUE: usize = 16;
/// Largest verdict batch accepted.
const MAX_VERDICT_BYTES: usize = 4 << 20;

/// Builds one wire batch: digests refer to policy names through a table.
pub fn encode_batch(agent_id: &str, cluster: &str, digests: &[Digest]) -> DigestBatch {
    let mut policies: Vec<String> = Vec::new();
    let digests = digests
        .iter()
        .map(|d| {
            let policy = match &d.kept_by {
                Some(name) => {
                    let i = policies.iter().position(|p| p == name).unwrap_or_else(|| {
                        policies.push(name.clone());
                        policies.len() - 1
                    });
                    i as u32 + 1
                }
                None => 0,
            };
            let f = &d.facts;
            TraceDigest {
                trace_id: f.trace_id.as_bytes().to_vec(),
                statuses: u32::from(f.statuses),
                min_start_unix_nano: f.first_start,
                duration_nano: f.last_end.saturating_sub(f.first_start),
                span_count: u32::try_from(f.spans).unwrap_or(u32::MAX),
                bytes: u32::try_from(d.bytes).unwrap_or(u32::MAX),
                local_verdict: if d.dropped {
                    Verdict::Dropped
                } else if d.kept_by.is_some() {
                    Verdict::Keep
                } else {
                    Verdict::Drop
                } as i32,
                policy,
            }
        })
        .collect();
    DigestBatch {
        agent_id: agent_id.to_owned(),
        cluster: cluster.to_owned(),
        digests,
        policies,
    }
}

/// The verdicts of a batch as (trace, `Some(policy)` for keep / `None` for
/// drop); malformed entries are skipped.
pub fn decode_verdicts(batch: VerdictBatch) -> Vec<(TraceId, Option<String>)> {
    batch
        .verdicts
        .into_iter()
        .filter_map(|v| {
            let tid = TraceId::from_bytes(&v.trace_id).ok()?;
            match Verdict::try_from(v.verdict).ok()? {
                Verdict::Keep => Some((tid, Some(v.policy))),
                Verdict::Drop => Some((tid, None)),
                Verdict::Unspecified | Verdict::Dropped => None,
            }
        })
        .collect()
}

/// Who the agent is, to the gateway.
#[derive(Debug, Clone)]
pub struct VerdictStreamSettings {
    pub agent_id: String,
    pub cluster: String,
}

/// Follows the gateway cluster's `Decide` stream until shutdown.
#[derive(Debug)]
pub struct VerdictStreamClient {
    settings: VerdictStreamSettings,
    endpoints: GatewayEndpoints,
    sink: SamplingSink,
    feed: DigestFeed,
    stats: VerdictStats,
}

impl VerdictStreamClient {
    pub fn new(
        settings: VerdictStreamSettings,
        endpoints: GatewayEndpoints,
        sink: SamplingSink,
        feed: DigestFeed,
        stats: VerdictStats,
    ) -> Self {
        Self {
            settings,
            endpoints,
            sink,
            feed,
            stats,
        }
    }

    pub async fn run(mut self, shutdown: Shutdown) {
        let mut rotation = Rotation::new(self.endpoints.clone(), &self.settings.agent_id, BACKOFF);
        loop {
            let Some(endpoint) = rotation.next_endpoint() else {
                tracing::error!("no gateway endpoint for tail decisions");
                return;
            };
            let ended = self.follow(endpoint.channel, &shutdown).await;
            self.feed.connected.store(false, Ordering::SeqCst);
            self.stats.set_connected(false);
            let lost =
                "tail decision stream lost; dropped traces wait for it until their verdict timeout";
            if !rotation.after(&endpoint.url, ended, lost, &shutdown).await {
                return;
            }
        }
    }

    /// Queues `digests` (in batches) for the stream.
    fn queue(&self, out: &mpsc::Sender<DigestBatch>, digests: &[Digest]) {
        for chunk in digests.chunks(MAX_BATCH) {
            let batch = encode_batch(&self.settings.agent_id, &self.settings.cluster, chunk);
            let bytes = batch.encoded_len();
            match out.try_send(batch) {
                Ok(()) => self.stats.sent(chunk.len(), bytes),
                Err(_) => self.stats.dropped("stream_full", chunk.len()),
            }
        }
    }

    async fn follow(&mut self, channel: tonic::transport::Channel, shutdown: &Shutdown) -> Ended {
        let mut client =
            FederationClient::new(channel).max_decoding_message_size(MAX_VERDICT_BYTES);
        let (out, rx) = mpsc::channel::<DigestBatch>(STREAM_QUEUE);
        // Opens with an empty batch so the gateway checks the identity at
        // once (an old gateway answers UNIMPLEMENTED here).
        let hello = encode_batch(&self.settings.agent_id, &self.settings.cluster, &[]);
        if out.try_send(hello).is_err() {
            return Ended::Lost {
                reason: "cannot queue the first batch".into(),
                worked: false,
            };
        }
        let mut verdicts =
            match crate::reconnect::open_stream(client.decide(ReceiverStream::new(rx)), shutdown)
                .await
            {
                Ok(s) => s,
                Err(ended) => return ended,
            };
        self.feed.connected.store(true, Ordering::SeqCst);
        self.stats.set_connected(true);
        tracing::info!("tail decision stream open");
        self.queue(&out, &self.sink.resend_digests());
        let mut worked = false;
        let mut batch: Vec<Digest> = Vec::with_capacity(MAX_BATCH);
        let mut due: Option<tokio::time::Instant> = None;
        loop {
            let deadline = due.unwrap_or_else(|| tokio::time::Instant::now() + OPEN_TIMEOUT);
            tokio::select! {
                _ = shutdown.cancelled() => return Ended::Shutdown,
                d = self.feed.digests.recv() => {
                    let Some(d) = d else { return Ended::Shutdown };
                    batch.push(d);
                    due.get_or_insert_with(|| tokio::time::Instant::now() + BATCH_DELAY);
                    if batch.len() >= MAX_BATCH {
                        self.queue(&out, &batch);
                        batch.clear();
                        due = None;
                    }
                }
                _ = tokio::time::sleep_until(deadline), if due.is_some() => {
                    self.queue(&out, &batch);
                    batch.clear();
                    due = None;
                }
                m = verdicts.message() => match m {
                    Ok(Some(v)) => {
                        worked = true;
                        self.sink.apply_verdicts(decode_verdicts(v)).await;
                    }
                    Ok(None) => {
                        return Ended::Lost { reason: "the gateway ended the stream".into(), worked };
                    }
                    Err(status) => {
                        return Ended::Lost {
                            reason: format!("{:?}: {}", status.code(), status.message()),
                            worked,
                        };
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::federation::TraceVerdict;
    use sampling::tail::{STATUS_ERROR, TraceFacts};

    fn digest(t: u8, kept_by: Option<&str>) -> Digest {
        Digest {
            facts: TraceFacts {
                trace_id: TraceId::from_bytes(&[t; 16]).unwrap(),
                first_start: 1_700_000_000_000_000_000,
                last_end: 1_700_000_000_250_000_000,
                spans: 12,
                statuses: STATUS_ERROR,
                matched: 0,
            },
            bytes: 3_000,
            kept_by: kept_by.map(str::to_owned),
            dropped: false,
        }
    }

    #[test]
    fn batches_share_a_policy_table_and_stay_small() {
        let b = encode_batch(
            "a1",
            "east",
            &[
                digest(1, Some("errors")),
                digest(2, None),
                digest(3, Some("errors")),
            ],
        );
        assert_eq!(b.policies, ["errors"]);
        let d = &b.digests;
        assert_eq!((d[0].policy, d[1].policy, d[2].policy), (1, 0, 1));
        assert_eq!(d[1].local_verdict, Verdict::Drop as i32);
        assert_eq!(d[0].duration_nano, 250_000_000);
        // One digest costs about 50 bytes on the wire.
        let one = encode_batch("a1", "east", &[digest(1, None)]).encoded_len()
            - encode_batch("a1", "east", &[]).encoded_len();
        assert!(one <= 56, "{one} bytes per digest");
    }

    #[test]
    fn verdicts_decode_and_skip_malformed_ones() {
        let v = |id: Vec<u8>, verdict: Verdict, policy: &str| TraceVerdict {
            trace_id: id,
            verdict: verdict as i32,
            policy: policy.into(),
        };
        let got = decode_verdicts(VerdictBatch {
            verdicts: vec![
                v(vec![1; 16], Verdict::Keep, "errors@west"),
                v(vec![2; 16], Verdict::Drop, ""),
                v(vec![3; 8], Verdict::Keep, "short id"),
                v(vec![4; 16], Verdict::Unspecified, ""),
            ],
        });
        let id = |t| TraceId::from_bytes(&[t; 16]).unwrap();
        assert_eq!(
            got,
            vec![(id(1), Some("errors@west".into())), (id(2), None)]
        );
    }
}
