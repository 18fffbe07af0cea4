//! The derived records stitching writes and the query API reads: trace
//! summaries ([`Summary`], key = trace id), per-minute service edges
//! ([`EdgeAgg`](crate::EdgeAgg)), clock offsets ([`StoredOffset`], key
//! `cluster|node`) and span-link backlinks ([`Backlink`], written by
//! ingest with the linked trace).

use control_state::NodeId;
use model::{Span, TraceId};
use store::{Record, RecordKind, RecordScan, SpanStore};

use crate::trace_state::Summary;

/// A clock-offset estimate as stored (`Offset` record, key
/// `cluster|node`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredOffset {
    pub cluster: String,
    pub reference: String,
    /// `reference time = local time − offset`.
    pub offset_ns: i64,
    pub samples: u64,
    pub node: NodeId,
    pub updated_ms: u64,
}

/// The summary record of a trace, if one was written.
pub async fn stored_summary(
    store: &dyn SpanStore,
    id: TraceId,
) -> Result<Option<Summary>, store::StoreError> {
    let found = store
        .scan_records(&RecordScan {
            kind: RecordKind::Summary,
            prefix: id.to_hex(),
            time: None,
            limit: 4,
            trace: Some(id),
        })
        .await?;
    Ok(found
        .into_iter()
        .filter(|r| r.key == id.to_hex())
        .filter_map(|r| serde_json::from_slice::<Summary>(&r.value).ok())
        .max_by_key(|s| s.spans))
}

/// Reads the stored clock offsets: per cluster, the estimate with the most
/// samples.
pub async fn offsets(
    store: &dyn SpanStore,
) -> Result<std::collections::BTreeMap<String, StoredOffset>, store::StoreError> {
    let records = store
        .scan_records(&RecordScan {
            kind: RecordKind::Offset,
            prefix: String::new(),
            time: None,
            limit: 10_000,
            trace: None,
        })
        .await?;
    let mut out: std::collections::BTreeMap<String, StoredOffset> = Default::default();
    for r in records {
        let Ok(o) = serde_json::from_slice::<StoredOffset>(&r.value) else {
            continue;
        };
        match out.get_mut(&o.cluster) {
            Some(best) if (best.samples, best.updated_ms) >= (o.samples, o.updated_ms) => {
                best.updated_ms = best.updated_ms.max(o.updated_ms);
            }
            _ => {
                out.insert(o.cluster.clone(), o);
            }
        }
    }
    Ok(out)
}

/// One span link, as the linked trace's backlink record stores it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backlink {
    /// The linking span.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// The span it links to (in the linked trace).
    #[serde(rename = "toSpanID")]
    pub to_span_id: String,
}

/// The backlink records of `spans`' links: kept with the linked trace, so
/// a trace view finds who links to it with one lookup.
pub fn backlinks(spans: &[Span]) -> Vec<Record> {
    let mut out = Vec::new();
    for span in spans {
        for link in &span.links {
            let b = Backlink {
                trace_id: span.trace_id.to_hex(),
                span_id: span.span_id.to_hex(),
                to_span_id: link.span_id.to_hex(),
            };
            let Ok(value) = serde_json::to_vec(&b) else {
                continue;
            };
            out.push(Record {
                kind: RecordKind::Backlink,
                key: format!(
                    "{}|{}|{}|{}",
                    link.trace_id.to_hex(),
                    b.trace_id,
                    b.span_id,
                    b.to_span_id
                ),
                time_ms: i64::try_from(span.start_unix_nano / 1_000_000).unwrap_or(i64::MAX),
                value,
                trace: Some(link.trace_id),
            });
        }
    }
    out
}
