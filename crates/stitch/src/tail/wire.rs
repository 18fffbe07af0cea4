//! Checks and conversions between the federation messages and the
//! combiner's types.

use std::sync::Arc;

use model::TraceId;
use proto::federation::{
    DigestBatch, PeerDigest, TraceDigest, TraceVerdict, Verdict as WireVerdict,
};

use super::combiner::{ClusterDigest, Verdict};

/// Digests per batch an agent may send.
pub const MAX_DIGESTS_PER_BATCH: usize = 4_096;
/// Policy names per batch (an agent runs a handful of policies).
pub const MAX_POLICIES_PER_BATCH: usize = 256;
/// Bytes per policy name. With the two caps above, a batch's names hold
/// at most 64 KiB, and every digest shares its name (an `Arc<str>`):
/// nothing is copied per digest.
pub const MAX_POLICY_NAME_BYTES: usize = 256;

/// A digest batch that breaks the protocol (INVALID_ARGUMENT).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("a digest batch holds {0} digests, above the limit of {MAX_DIGESTS_PER_BATCH}")]
    TooMany(usize),
    #[error("a digest batch names {0} policies, above the limit of {MAX_POLICIES_PER_BATCH}")]
    TooManyPolicies(usize),
    #[error("policy name {index} is {len} bytes, above the limit of {MAX_POLICY_NAME_BYTES}")]
    PolicyName { index: usize, len: usize },
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

/// A checked digest as the relay holds it until its verdict. The cluster
/// and the policy name are shared with the other digests of the stream
/// and batch; [`Held::to_wire`] builds the message relayed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub cluster: Arc<str>,
    pub trace_id: TraceId,
    pub digest: TraceDigest,
    /// The policy that kept it locally (empty when none).
    pub policy: Arc<str>,
}

impl Held {
    pub fn to_wire(&self) -> PeerDigest {
        PeerDigest {
            cluster: self.cluster.to_string(),
            digest: Some(self.digest.clone()),
            policy: self.policy.to_string(),
        }
    }

    pub fn is_keep(&self) -> bool {
        self.digest.local_verdict == WireVerdict::Keep as i32
    }

    /// A report that the cluster dropped its spans for good (not a vote).
    pub fn is_dropped_report(&self) -> bool {
        self.digest.local_verdict == WireVerdict::Dropped as i32
    }

    /// Earliest start: it picks the shard epoch.
    pub fn start(&self) -> u64 {
        self.digest.min_start_unix_nano
    }
}

/// The digests of an agent's batch, checked, for relaying. Every bound
/// is checked before anything is allocated per digest.
pub fn relayable(batch: DigestBatch, cluster: &Arc<str>) -> Result<Vec<Held>, DigestError> {
    if batch.digests.len() > MAX_DIGESTS_PER_BATCH {
        return Err(DigestError::TooMany(batch.digests.len()));
    }
    if batch.policies.len() > MAX_POLICIES_PER_BATCH {
        return Err(DigestError::TooManyPolicies(batch.policies.len()));
    }
    if let Some((index, p)) = batch
        .policies
        .iter()
        .enumerate()
        .find(|(_, p)| p.len() > MAX_POLICY_NAME_BYTES)
    {
        return Err(DigestError::PolicyName {
            index,
            len: p.len(),
        });
    }
    let names: Vec<Arc<str>> = batch.policies.into_iter().map(Arc::from).collect();
    let unnamed: Arc<str> = Arc::from("unnamed");
    let none: Arc<str> = Arc::from("");
    let mut out = Vec::with_capacity(batch.digests.len());
    for (index, d) in batch.digests.into_iter().enumerate() {
        let trace_id = TraceId::from_bytes(&d.trace_id).map_err(|e| DigestError::TraceId {
            index,
            message: e.to_string(),
        })?;
        let policy = match WireVerdict::try_from(d.local_verdict) {
            Ok(WireVerdict::Keep) => match d.policy {
                0 => Arc::clone(&unnamed),
                p => names
                    .get(p as usize - 1)
                    .cloned()
                    .ok_or(DigestError::Policy {
                        index,
                        policy: p,
                        table: names.len(),
                    })?,
            },
            Ok(WireVerdict::Drop | WireVerdict::Dropped) => Arc::clone(&none),
            _ => return Err(DigestError::Verdict { index }),
        };
        out.push(Held {
            cluster: Arc::clone(cluster),
            trace_id,
            digest: d,
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
            &Arc::from("east"),
        )
        .unwrap();
        assert_eq!(&*got[0].policy, "errors");
        assert!(got[0].is_keep() && !got[1].is_keep());
        let wire: Vec<PeerDigest> = got.iter().map(Held::to_wire).collect();
        assert!(is_keep(&wire[0]) && !is_keep(&wire[1]));
        assert_eq!(wire[0].cluster, "east");
        let (tid, c) = cluster_digest(&wire[0]).unwrap();
        assert_eq!(tid.as_bytes(), &[1; 16]);
        assert_eq!(
            (c.first_start, c.last_end, c.spans, c.statuses),
            (10, 15, 3, 4)
        );
        assert_eq!(c.kept_by.as_deref(), Some("errors"));
        assert_eq!(cluster_digest(&wire[1]).unwrap().1.kept_by, None);
    }

    #[test]
    fn bad_digests_are_refused_by_index() {
        let bad = |x: TraceDigest| {
            relayable(
                batch(vec![d(vec![1; 16], WireVerdict::Drop, 0), x]),
                &Arc::from("e"),
            )
        };
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
            relayable(batch(many), &Arc::from("e")),
            Err(DigestError::TooMany(MAX_DIGESTS_PER_BATCH + 1))
        );
    }

    /// Defect: one batch with a 32 MiB policy name and 4,096 digests used
    /// to copy the name into every digest (about 128 GiB). Names are now
    /// capped before anything is built, and digests share them. Failed on
    /// the old code emulated (neither cap checked).
    #[test]
    fn policy_tables_are_bounded_and_shared() {
        let keep = |n| d(vec![1; 16], WireVerdict::Keep, n);
        let with = |policies: Vec<String>| DigestBatch {
            policies,
            ..batch(vec![keep(1), keep(1)])
        };
        let e: Arc<str> = Arc::from("e");
        assert_eq!(
            relayable(with(vec!["x".repeat(MAX_POLICY_NAME_BYTES + 1)]), &e),
            Err(DigestError::PolicyName {
                index: 0,
                len: MAX_POLICY_NAME_BYTES + 1
            })
        );
        let many = (0..=MAX_POLICIES_PER_BATCH)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            relayable(with(many), &e),
            Err(DigestError::TooManyPolicies(MAX_POLICIES_PER_BATCH + 1))
        );
        let longest = "p".repeat(MAX_POLICY_NAME_BYTES);
        let got = relayable(with(vec![longest]), &e).unwrap();
        assert!(Arc::ptr_eq(&got[0].policy, &got[1].policy));
        assert!(Arc::ptr_eq(&got[0].cluster, &e));
    }
}
