//! The held-span encoding: how the tail sampler keeps spans in memory and
//! gives them back.
//!
//! Spans are held *encoded*, one [`Fragment`] per trace and incoming scope:
//! the encoded `ScopeSpans` with the trace id removed from every span (it
//! is the map key; 18 bytes a span) and a shared pointer to the request's
//! encoded resource. [`arrivals`] splits a request into fragments and sums
//! each one up (first start, last end, span count, statuses seen, one bit
//! per attribute predicate) for the trace's [`Pending`] summary, on which
//! policies are evaluated, so a decision never decodes the spans.
//!
//! On release ([`Released::encode_request`]) the trace id is written back
//! into each span while the `ResourceSpans` is assembled, and the policy
//! that kept the trace is named by appending an encoded
//! `ResourceSpans{resource{meridian.sampling.policy}}` that protobuf merges
//! into the fragment's resource.

use std::{collections::HashMap, sync::Arc};

use bytes::{BufMut, Bytes, BytesMut};
use model::TraceId;
use prost::Message;
use proto::otlp::{ExportTraceServiceRequest, Resource, ResourceSpans};
use sampling::tail::{Judge, TraceFacts, status_bit};

use super::{Digest, POLICY_ATTRIBUTE};

/// Spans of one trace from one incoming scope, held encoded.
#[derive(Debug, Clone)]
pub struct Fragment {
    /// The encoded `Resource`, shared by every fragment of a request.
    resource: Option<Arc<[u8]>>,
    /// The encoded `ScopeSpans`, spans without their trace id.
    scope_spans: Bytes,
}

impl Fragment {
    pub(super) fn held_bytes(&self) -> usize {
        self.scope_spans.len()
    }
}

/// A kept fragment on its way out: the trace id to restore and the encoded
/// `ResourceSpans{resource{meridian.sampling.policy}}` to append.
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub(super) trace_id: TraceId,
    pub(super) fragment: Fragment,
    pub(super) suffix: Bytes,
}

/// What a call released: kept spans (ready for
/// [`Released::encode_request`]) and counts.
#[derive(Debug, Default)]
pub struct Released {
    pub(super) parts: Vec<Part>,
    pub spans_kept: u64,
    pub spans_dropped: u64,
    pub traces_kept: u64,
    pub traces_dropped: u64,
    /// Digests of the traces decided (cross-cluster verdicts on).
    pub digests: Vec<Digest>,
    /// Traces dropped locally but kept by the gateway's verdict.
    pub remote_kept: u64,
    /// Traces whose local drop the gateway's verdict confirmed.
    pub remote_dropped: u64,
    /// Traces that took their local verdict because none came in time.
    pub verdict_timeouts: u64,
    /// Traces that took their local verdict because the caps were reached.
    pub forced_local: u64,
    /// Verdicts for traces no longer held (only later spans follow them).
    pub late_verdicts: u64,
}

impl Released {
    /// No spans to buffer.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// One encoded `ExportTraceServiceRequest` (field 1, repeated
    /// `ResourceSpans`) holding every kept span, built without decoding.
    pub fn encode_request(&self) -> Bytes {
        use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
        let mut out = BytesMut::new();
        let mut ss = BytesMut::new();
        for part in &self.parts {
            ss.clear();
            restore_trace_ids(&part.fragment.scope_spans, &part.trace_id, &mut ss);
            let res = part.fragment.resource.as_deref();
            let rs_len = res.map_or(0, |r| 1 + encoded_len_varint(r.len() as u64) + r.len())
                + 1
                + encoded_len_varint(ss.len() as u64)
                + ss.len()
                + part.suffix.len();
            encode_key(1, WireType::LengthDelimited, &mut out);
            encode_varint(rs_len as u64, &mut out);
            if let Some(r) = res {
                encode_key(1, WireType::LengthDelimited, &mut out);
                encode_varint(r.len() as u64, &mut out);
                out.put_slice(r);
            }
            encode_key(2, WireType::LengthDelimited, &mut out);
            encode_varint(ss.len() as u64, &mut out);
            out.put_slice(&ss);
            out.put_slice(&part.suffix);
        }
        out.freeze()
    }

    /// Adds `other`'s spans and counts to these.
    pub fn absorb(&mut self, other: Released) {
        self.parts.extend(other.parts);
        self.spans_kept += other.spans_kept;
        self.spans_dropped += other.spans_dropped;
        self.traces_kept += other.traces_kept;
        self.traces_dropped += other.traces_dropped;
        self.digests.extend(other.digests);
        self.remote_kept += other.remote_kept;
        self.remote_dropped += other.remote_dropped;
        self.verdict_timeouts += other.verdict_timeouts;
        self.forced_local += other.forced_local;
        self.late_verdicts += other.late_verdicts;
    }
}

/// Copies an encoded `ScopeSpans`, writing `trace_id` (field 1) at the
/// front of every span (field 2). Fields it does not know are copied as is.
fn restore_trace_ids(scope_spans: &[u8], trace_id: &TraceId, out: &mut BytesMut) {
    use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
    const ID_FIELD: usize = 2 + 16;
    let mut b = scope_spans;
    while !b.is_empty() {
        let start = b;
        let Ok((tag, wt)) = decode_key(&mut b) else {
            break;
        };
        let skip = match wt {
            WireType::Varint => decode_varint(&mut b).map(|_| 0).ok(),
            WireType::SixtyFourBit => Some(8),
            WireType::ThirtyTwoBit => Some(4),
            WireType::LengthDelimited => decode_varint(&mut b).ok().map(|l| l as usize),
            _ => None,
        };
        let Some(skip) = skip.filter(|n| *n <= b.len()) else {
            // We encoded this ourselves; a malformed tail cannot happen, but
            // never read past the end.
            break;
        };
        if tag == 2 && wt == WireType::LengthDelimited {
            encode_key(2, WireType::LengthDelimited, out);
            encode_varint((skip + ID_FIELD) as u64, out);
            encode_key(1, WireType::LengthDelimited, out);
            encode_varint(16, out);
            out.put_slice(trace_id.as_bytes());
            out.put_slice(&b[..skip]);
        } else {
            let header = start.len() - b.len();
            out.put_slice(&start[..header + skip]);
        }
        b = &b[skip..];
    }
}

/// A held trace: its summary and its fragments.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) first_start: u64,
    pub(super) last_end: u64,
    pub(super) spans: u64,
    pub(super) statuses: u8,
    pub(super) matched: u64,
    /// Most traces arrive in one request: the first fragment is inline.
    pub(super) first: Fragment,
    pub(super) more: Vec<Fragment>,
    pub(super) bytes: usize,
}

impl Pending {
    pub(super) fn facts(&self, trace_id: TraceId) -> TraceFacts {
        TraceFacts {
            trace_id,
            first_start: self.first_start.min(self.last_end),
            last_end: self.last_end,
            spans: self.spans,
            statuses: self.statuses,
            matched: self.matched,
        }
    }

    pub(super) fn add(&mut self, f: Arrival) {
        self.first_start = self.first_start.min(f.first_start);
        self.last_end = self.last_end.max(f.last_end);
        self.spans += f.spans;
        self.statuses |= f.statuses;
        self.matched |= f.bits;
        self.bytes += f.fragment.held_bytes();
        self.more.push(f.fragment);
    }

    pub(super) fn parts(self, trace_id: TraceId, suffix: &Bytes) -> impl Iterator<Item = Part> {
        std::iter::once(self.first)
            .chain(self.more)
            .map(move |fragment| Part {
                trace_id,
                fragment,
                suffix: suffix.clone(),
            })
    }
}

/// One trace's spans of one incoming scope, summarised.
pub(super) struct Arrival {
    pub(super) fragment: Fragment,
    pub(super) first_start: u64,
    pub(super) last_end: u64,
    pub(super) spans: u64,
    pub(super) statuses: u8,
    pub(super) bits: u64,
}

/// Splits a validated request into one [`Arrival`] per trace and incoming
/// scope, in arrival order; attribute bits are those of `judge`'s
/// predicates.
pub(super) fn arrivals(req: ExportTraceServiceRequest, judge: &Judge) -> Vec<(TraceId, Arrival)> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let resource_bits = rs
            .resource
            .as_ref()
            .map_or(0, |r| judge.attribute_bits(&r.attributes));
        let resource: Option<Arc<[u8]>> =
            rs.resource.as_ref().map(|r| Arc::from(r.encode_to_vec()));
        for ss in rs.scope_spans {
            let scope_enc = ss.scope.as_ref().map(Message::encode_to_vec);
            // Group this scope's spans by trace, keeping arrival order.
            let mut groups: Vec<(TraceId, Vec<proto::otlp::Span>)> = Vec::new();
            let mut index: HashMap<TraceId, usize> = HashMap::new();
            for span in ss.spans {
                // Receivers validated ids; anything else is skipped.
                let Ok(tid) = TraceId::from_bytes(&span.trace_id) else {
                    continue;
                };
                let i = *index.entry(tid).or_insert_with(|| {
                    groups.push((tid, Vec::new()));
                    groups.len() - 1
                });
                groups[i].1.push(span);
            }
            for (tid, mut spans) in groups {
                let n = spans.len() as u64;
                let mut bits = resource_bits;
                let mut first_start = u64::MAX;
                let mut last_end = 0;
                let mut statuses = 0;
                for s in &mut spans {
                    bits |= judge.attribute_bits(&s.attributes);
                    first_start = first_start.min(s.start_time_unix_nano);
                    last_end = last_end.max(s.end_time_unix_nano);
                    statuses |= status_bit(s.status.as_ref().map_or(0, |st| st.code));
                    // Held once, as the map key.
                    s.trace_id = Vec::new();
                }
                let arrival = Arrival {
                    fragment: Fragment {
                        resource: resource.clone(),
                        scope_spans: encode_scope_spans(
                            scope_enc.as_deref(),
                            &ss.schema_url,
                            &spans,
                        ),
                    },
                    first_start,
                    last_end,
                    spans: n,
                    statuses,
                    bits,
                };
                out.push((tid, arrival));
            }
        }
    }
    out
}

/// The encoded `ResourceSpans{resource{meridian.sampling.policy = name}}`
/// appended to every fragment of a trace `name` kept.
pub(super) fn policy_suffix(name: &str) -> Bytes {
    let rs = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![proto::otlp::string_kv(POLICY_ATTRIBUTE, name)],
            ..Default::default()
        }),
        ..Default::default()
    };
    Bytes::from(rs.encode_to_vec())
}

/// Encodes one `ScopeSpans` holding `spans` under the given (already
/// encoded) scope.
pub(super) fn encode_scope_spans(
    scope: Option<&[u8]>,
    schema_url: &str,
    spans: &[proto::otlp::Span],
) -> Bytes {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
    let mut len = scope.map_or(0, |s| 1 + encoded_len_varint(s.len() as u64) + s.len());
    for s in spans {
        let l = s.encoded_len();
        len += 1 + encoded_len_varint(l as u64) + l;
    }
    if !schema_url.is_empty() {
        len += 1 + encoded_len_varint(schema_url.len() as u64) + schema_url.len();
    }
    let mut out = BytesMut::with_capacity(len);
    if let Some(s) = scope {
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(s.len() as u64, &mut out);
        out.put_slice(s);
    }
    for s in spans {
        prost::encoding::message::encode(2, s, &mut out);
    }
    if !schema_url.is_empty() {
        encode_key(3, WireType::LengthDelimited, &mut out);
        encode_varint(schema_url.len() as u64, &mut out);
        out.put_slice(schema_url.as_bytes());
    }
    out.freeze()
}
