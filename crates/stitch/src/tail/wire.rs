//! Checks and conversions between the federation messages and the
//! combiner's types.

use model::TraceId;
use proto::federation::{
    DigestBatch, PeerDigest, TraceDigest, TraceVerdict, Verdict as WireVerdict,
};

use super::combiner::{ClusterDigest, Verdict};

/// Digests per batch an agent may send.
pub const MAX_DIGESTS_PER_BATCH: usize = 4_096;

/// A digest batch that breaks the protocol (INVALID_ARGUMENT).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("a digest batch holds {0} digests, above the limit of {MAX_DIGESTS_PER_BATCH}")]
    TooMany(usize),
    #[error("digest {index}: trace id: {message}")]
    TraceId { index: usize, message: String },
    #[error("digest {index}: local_verdict must be KEEP, DROP or DROPPED")]
    Verdict { index: usize },
    #[error("digest {index}: policy {policy} is not in the batch's table of {table}")]
    Policy {
        index: usize,
        policy: u32,
        table: usize,
    },
}

/// The digests of an agent's batch, checked, for relaying.
pub fn relayable(batch: DigestBatch, cluster: &str) -> Result<Vec<PeerDigest>, DigestError> {
    if batch.digests.len() > MAX_DIGESTS_PER_BATCH {
        return Err(DigestError::TooMany(batch.digests.len()));
    }
    let mut out = Vec::with_capacity(batch.digests.len());
    for (index, d) in batch.digests.into_iter().enumerate() {
        TraceId::from_bytes(&d.trace_id).map_err(|e| DigestError::TraceId {
            index,
            message: e.to_string(),
        })?;
        let policy = match WireVerdict::try_from(d.local_verdict) {
            Ok(WireVerdict::Keep) => match d.policy {
                0 => "unnamed".to_owned(),
                p => batch
                    .policies
                    .get(p as usize - 1)
                    .cloned()
                    .ok_or(DigestError::Policy {
                        index,
                        policy: p,
                        table: batch.policies.len(),
                    })?,
            },
            Ok(WireVerdict::Drop | WireVerdict::Dropped) => String::new(),
            _ => return Err(DigestError::Verdict { index }),
        };
        out.push(PeerDigest {
            cluster: cluster.to_owned(),
            digest: Some(d),
            policy,
        });
    }
    Ok(out)
}

/// The trace id of a relayed digest (checked when it was accepted).
pub fn trace_of(d: &PeerDigest) -> Option<TraceId> {
    TraceId::from_bytes(&d.digest.as_ref()?.trace_id).ok()
}

/// Earliest start of a relayed digest: it picks the shard epoch.
pub fn start_of(d: &PeerDigest) -> u64 {
    d.digest.as_ref().map_or(0, |d| d.min_start_unix_nano)
}

/// Whether the digest is a local keep.
/// A report that the cluster dropped its spans for good (not a vote).
pub fn is_dropped_report(d: &PeerDigest) -> bool {
    d.digest
        .as_ref()
        .is_some_and(|d| d.local_verdict == WireVerdict::Dropped as i32)
}

pub fn is_keep(d: &PeerDigest) -> bool {
    d.digest
        .as_ref()
        .is_some_and(|d| d.local_verdict == WireVerdict::Keep as i32)
}

/// A relayed digest as the combiner takes it.
pub fn cluster_digest(d: &PeerDigest) -> Option<(TraceId, ClusterDigest)> {
    let w: &TraceDigest = d.digest.as_ref()?;
    let tid = TraceId::from_bytes(&w.trace_id).ok()?;
    Some((
        tid,
        ClusterDigest {
            cluster: d.cluster.clone(),
            statuses: u8::try_from(w.statuses & 0x7).unwrap_or(0),
            first_start: w.min_start_unix_nano,
            last_end: w.min_start_unix_nano.saturating_add(w.duration_nano),
            spans: u64::from(w.span_count),
            bytes: u64::from(w.bytes),
            kept_by: is_keep(d).then(|| d.policy.clone()),
        },
    ))
}

pub fn verdict(trace_id: TraceId, v: &Verdict) -> TraceVerdict {
    match v {
        Some(policy) => TraceVerdict {
            trace_id: trace_id.as_bytes().to_vec(),
            verdict: WireVerdict::Keep as i32,
            policy: policy.to_string(),
        },
        None => TraceVerdict {
            trace_id: trace_id.as_bytes().to_vec(),
            verdict: WireVerdict::Drop as i32,
            policy: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: Vec<u8>, verdict: WireVerdict, policy: u32) -> TraceDigest {
        TraceDigest {
            trace_id: id,
            local_verdict: verdict as i32,
            policy,
            min_start_unix_nano: 10,
            duration_nano: 5,
            span_count: 3,
            statuses: 4,
            bytes: 100,
        }
    }

    fn batch(digests: Vec<TraceDigest>) -> DigestBatch {
        DigestBatch {
            agent_id: "a".into(),
            cluster: "east".into(),
            digests,
            policies: vec!["errors".into()],
        }
    }

    #[test]
    fn good_digests_relay_with_their_policy_name() {
        let got = relayable(
            batch(vec![
                d(vec![1; 16], WireVerdict::Keep, 1),
                d(vec![2; 16], WireVerdict::Drop, 0),
            ]),
            "east",
        )
        .unwrap();
        assert_eq!(got[0].policy, "errors");
        assert!(is_keep(&got[0]) && !is_keep(&got[1]));
        let (tid, c) = cluster_digest(&got[0]).unwrap();
        assert_eq!(tid.as_bytes(), &[1; 16]);
        assert_eq!(
            (c.first_start, c.last_end, c.spans, c.statuses),
            (10, 15, 3, 4)
        );
        assert_eq!(c.kept_by.as_deref(), Some("errors"));
        assert_eq!(cluster_digest(&got[1]).unwrap().1.kept_by, None);
    }

    #[test]
    fn bad_digests_are_refused_by_index() {
        let bad =
            |x: TraceDigest| relayable(batch(vec![d(vec![1; 16], WireVerdict::Drop, 0), x]), "e");
        assert!(matches!(
            bad(d(vec![0; 16], WireVerdict::Drop, 0)),
            Err(DigestError::TraceId { index: 1, .. })
        ));
        assert!(matches!(
            bad(d(vec![1; 8], WireVerdict::Drop, 0)),
            Err(DigestError::TraceId { index: 1, .. })
        ));
        assert_eq!(
            bad(d(vec![1; 16], WireVerdict::Unspecified, 0)),
            Err(DigestError::Verdict { index: 1 })
        );
        assert_eq!(
            bad(d(vec![1; 16], WireVerdict::Keep, 2)),
            Err(DigestError::Policy {
                index: 1,
                policy: 2,
                table: 1
            })
        );
        let many = (0..=MAX_DIGESTS_PER_BATCH)
            .map(|_| d(vec![1; 16], WireVerdict::Drop, 0))
            .collect();
        assert_eq!(
            relayable(batch(many), "e"),
            Err(DigestError::TooMany(MAX_DIGESTS_PER_BATCH + 1))
        );
    }
}
