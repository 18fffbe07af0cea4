//! The message types the scanners know: for each, the fields that make
//! the decoded message grow (repeated and nested messages, repeated
//! strings and scalars) and the size of its struct. Scalar and string
//! fields that are not repeated cost nothing beyond the struct and are
//! left out (the scan skips them like any unknown field).

use std::mem::size_of;

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};

use super::Elem;
use crate::federation::{
    ControlUpdate, DigestBatch, ForwardRequest, PeerDigest, PeerDigests, TraceDigest, TraceVerdict,
    VerdictBatch,
};
use crate::metrics::{Exemplar, RedSeries, RedWindow, WindowBatch};
use crate::otlp::{ExportTraceServiceRequest, ResourceSpans, ScopeSpans, Span};
use crate::zipkin::proto3 as zipkin;

/// A message type the protobuf scan can check
/// ([`super::check_protobuf`]).
#[derive(Debug, Clone, Copy)]
pub struct Schema(&'static Msg);

impl Schema {
    /// `ExportTraceServiceRequest` (OTLP receivers, federation payloads).
    pub const EXPORT_TRACE: Self = Self(&EXPORT_TRACE);
    /// `meridian.metrics.v1.WindowBatch` (ForwardWindows payloads).
    pub const WINDOW_BATCH: Self = Self(&WINDOW_BATCH);
    /// `meridian.federation.v1.DigestBatch` (Decide).
    pub const DIGEST_BATCH: Self = Self(&DIGEST_BATCH);
    /// `meridian.federation.v1.PeerDigests` (the Raft port's Peer RPC).
    pub const PEER_DIGESTS: Self = Self(&PEER_DIGESTS);
    /// `meridian.federation.v1.ControlUpdate` (what agents receive).
    pub const CONTROL_UPDATE: Self = Self(&CONTROL_UPDATE);
    /// `meridian.federation.v1.VerdictBatch` (what agents receive).
    pub const VERDICT_BATCH: Self = Self(&VERDICT_BATCH);
    /// Zipkin v2 proto3 `zipkin.proto3.ListOfSpans` (the Zipkin receiver).
    pub const ZIPKIN_SPANS: Self = Self(&ZIPKIN_SPANS);
    /// A message without repeated or nested message fields that grow
    /// (`ForwardRequest`, `ControlRequest`, `ForwardResponse`): it decodes
    /// to its struct and its strings and bytes, no more.
    pub const FLAT: Self = Self(&FLAT);

    pub(super) fn root(self) -> &'static Msg {
        self.0
    }
}

/// How a field grows the decoded message.
#[derive(Debug)]
pub(super) enum Kind {
    /// A repeated message field: every occurrence is one element.
    Repeated(&'static Msg, Elem),
    /// A singular message field, decoded in place (occurrences merge).
    Single(&'static Msg),
    /// A repeated string or bytes field: every occurrence one `String`.
    RepeatedBytes,
    /// A repeated varint field, packed or not, of `n`-byte elements.
    RepeatedVarint(usize),
}

#[derive(Debug)]
pub(super) struct Msg {
    /// What an error calls it.
    pub name: &'static str,
    /// `size_of` its struct: what one element of a repeated field costs.
    pub size: usize,
    pub fields: &'static [(u32, Kind)],
}

impl Msg {
    pub fn field(&self, number: u32) -> Option<&Kind> {
        self.fields
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, k)| k)
    }
}

// OTLP trace (opentelemetry-proto; field numbers from its .proto files).

static EXPORT_TRACE: Msg = Msg {
    name: "request",
    size: size_of::<ExportTraceServiceRequest>(),
    fields: &[(1, Kind::Repeated(&RESOURCE_SPANS, Elem::Other))],
};

static RESOURCE_SPANS: Msg = Msg {
    name: "resource",
    size: size_of::<ResourceSpans>(),
    fields: &[
        (1, Kind::Single(&RESOURCE)),
        (2, Kind::Repeated(&SCOPE_SPANS, Elem::Other)),
    ],
};

static RESOURCE: Msg = Msg {
    name: "resource",
    size: size_of::<Resource>(),
    fields: &[
        (1, Kind::Repeated(&KEY_VALUE, Elem::Attribute)),
        (3, Kind::Repeated(&ENTITY_REF, Elem::Other)),
    ],
};

static ENTITY_REF: Msg = Msg {
    name: "entity ref",
    size: size_of::<EntityRef>(),
    fields: &[(3, Kind::RepeatedBytes), (4, Kind::RepeatedBytes)],
};

static SCOPE_SPANS: Msg = Msg {
    name: "scope",
    size: size_of::<ScopeSpans>(),
    fields: &[
        (1, Kind::Single(&SCOPE)),
        (2, Kind::Repeated(&SPAN, Elem::Span)),
    ],
};

static SCOPE: Msg = Msg {
    name: "scope",
    size: size_of::<InstrumentationScope>(),
    fields: &[(3, Kind::Repeated(&KEY_VALUE, Elem::Attribute))],
};

static SPAN: Msg = Msg {
    name: "span",
    size: size_of::<Span>(),
    fields: &[
        (9, Kind::Repeated(&KEY_VALUE, Elem::Attribute)),
        (11, Kind::Repeated(&EVENT, Elem::Event)),
        (13, Kind::Repeated(&LINK, Elem::Link)),
    ],
};

static EVENT: Msg = Msg {
    name: "event",
    size: size_of::<Event>(),
    fields: &[(3, Kind::Repeated(&KEY_VALUE, Elem::Attribute))],
};

static LINK: Msg = Msg {
    name: "link",
    size: size_of::<Link>(),
    fields: &[(4, Kind::Repeated(&KEY_VALUE, Elem::Attribute))],
};

static KEY_VALUE: Msg = Msg {
    name: "attribute",
    size: size_of::<KeyValue>(),
    fields: &[(2, Kind::Single(&ANY_VALUE))],
};

static ANY_VALUE: Msg = Msg {
    name: "value",
    size: size_of::<AnyValue>(),
    fields: &[
        (5, Kind::Single(&ARRAY_VALUE)),
        (6, Kind::Single(&KEY_VALUE_LIST)),
    ],
};

static ARRAY_VALUE: Msg = Msg {
    name: "array value",
    size: size_of::<ArrayValue>(),
    fields: &[(1, Kind::Repeated(&ANY_VALUE, Elem::Other))],
};

static KEY_VALUE_LIST: Msg = Msg {
    name: "key-value list",
    size: size_of::<KeyValueList>(),
    fields: &[(1, Kind::Repeated(&KEY_VALUE, Elem::Other))],
};

// zipkin.proto3 (proto/zipkin/zipkin.proto). A span is decoded, turned
// into a `ZipkinSpan`, then into an OTLP span: each element counts all three
// (and an OTLP span's 5 endpoint attributes).

static ZIPKIN_SPANS: Msg = Msg {
    name: "request",
    size: size_of::<zipkin::ListOfSpans>(),
    fields: &[(1, Kind::Repeated(&ZIPKIN_SPAN, Elem::Span))],
};

static ZIPKIN_SPAN: Msg = Msg {
    name: "span",
    size: size_of::<zipkin::wire::Span>()
        + size_of::<crate::zipkin::ZipkinSpan>()
        + size_of::<Span>()
        + 5 * size_of::<KeyValue>(),
    fields: &[
        (8, Kind::Single(&FLAT)),
        (9, Kind::Single(&FLAT)),
        (10, Kind::Repeated(&ZIPKIN_ANNOTATION, Elem::Event)),
        (11, Kind::Repeated(&ZIPKIN_TAG, Elem::Attribute)),
    ],
};

static ZIPKIN_ANNOTATION: Msg = Msg {
    name: "annotation",
    size: size_of::<zipkin::wire::Annotation>()
        + size_of::<crate::zipkin::Annotation>()
        + size_of::<Event>(),
    fields: &[],
};

/// A `tags` map entry: a key and a value in the decoded map, the
/// `ZipkinSpan`'s map, and an OTLP attribute.
static ZIPKIN_TAG: Msg = Msg {
    name: "tag",
    size: 4 * size_of::<String>() + size_of::<KeyValue>(),
    fields: &[],
};

// meridian.metrics.v1

static WINDOW_BATCH: Msg = Msg {
    name: "window batch",
    size: size_of::<WindowBatch>(),
    fields: &[(1, Kind::Repeated(&RED_WINDOW, Elem::Other))],
};

static RED_WINDOW: Msg = Msg {
    name: "window",
    size: size_of::<RedWindow>(),
    fields: &[(3, Kind::Repeated(&RED_SERIES, Elem::Other))],
};

static RED_SERIES: Msg = Msg {
    name: "series",
    size: size_of::<RedSeries>(),
    fields: &[
        (9, Kind::RepeatedVarint(size_of::<i32>())),
        (10, Kind::RepeatedVarint(size_of::<u64>())),
        (11, Kind::Repeated(&EXEMPLAR, Elem::Other)),
    ],
};

static EXEMPLAR: Msg = Msg {
    name: "exemplar",
    size: size_of::<Exemplar>(),
    fields: &[],
};

// meridian.federation.v1

static DIGEST_BATCH: Msg = Msg {
    name: "digest batch",
    size: size_of::<DigestBatch>(),
    fields: &[
        (3, Kind::Repeated(&TRACE_DIGEST, Elem::Other)),
        (4, Kind::RepeatedBytes),
    ],
};

static TRACE_DIGEST: Msg = Msg {
    name: "digest",
    size: size_of::<TraceDigest>(),
    fields: &[],
};

static PEER_DIGESTS: Msg = Msg {
    name: "peer digests",
    size: size_of::<PeerDigests>(),
    fields: &[(1, Kind::Repeated(&PEER_DIGEST, Elem::Other))],
};

static PEER_DIGEST: Msg = Msg {
    name: "peer digest",
    size: size_of::<PeerDigest>(),
    fields: &[(2, Kind::Single(&TRACE_DIGEST))],
};

static CONTROL_UPDATE: Msg = Msg {
    name: "control update",
    size: size_of::<ControlUpdate>(),
    fields: &[(1, Kind::RepeatedBytes)],
};

static VERDICT_BATCH: Msg = Msg {
    name: "verdict batch",
    size: size_of::<VerdictBatch>(),
    fields: &[(1, Kind::Repeated(&TRACE_VERDICT, Elem::Other))],
};

static TRACE_VERDICT: Msg = Msg {
    name: "verdict",
    size: size_of::<TraceVerdict>(),
    fields: &[],
};

static FLAT: Msg = Msg {
    name: "message",
    size: size_of::<ForwardRequest>(),
    fields: &[],
};
