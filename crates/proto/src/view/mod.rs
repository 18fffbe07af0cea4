//! A borrowed, zero-copy view of an encoded `ExportTraceServiceRequest`.
//!
//! The agent's receive path reads a handful of fields (ids, times, status,
//! kind, name, the resource's `service.name` and `k8s.cluster.name`) and
//! forwards everything else untouched, so it need not build the owned
//! prost tree only to encode it again. [`parse`] walks the wire format
//! once and returns those fields as slices of the input; nothing else is
//! materialised (two vectors per request, one entry per resource and per
//! span).
//!
//! **Never looser than prost.** A request the view accepts is one
//! `ExportTraceServiceRequest::decode` accepts too, and the fields it
//! returns are the ones prost would decode (this is fuzzed against prost:
//! `fuzz/fuzz_targets/otlp_view.rs`). Every field of every message reachable
//! from the request is known with its wire type, as prost 0.14 and
//! opentelemetry-proto 0.33 generate them: a known field with another wire
//! type, a string that is not UTF-8, a bad varint or key (prost's rules,
//! including the 10th varint byte) are refused. The view is stricter in
//! three places, where a caller falls back to prost: groups (wire types
//! 3/4), nesting deeper than [`MAX_DEPTH`], and more than `u32::MAX`
//! bytes. Repeated occurrences of a field follow prost: scalars and
//! strings take the last one, singular messages merge, and a oneof takes
//! the variant of its last field.
//!
//! What the view does not decide: whether a span is valid is
//! [`SpanView::problem`] (the same rules as [`crate::validate`]); a
//! request with any problem takes the decoding path, which removes the bad
//! spans and answers with partial success.

pub mod check;
mod reader;
mod splice;
#[cfg(test)]
mod tests;

use std::ops::Range;

use reader::Reader;
pub use splice::{SpanEdit, foreign_claim, rebuild, stamp_cluster};

use model::CLUSTER_ATTRIBUTE;

/// Nesting levels the view follows (the request is level 0; an attribute
/// value is level 5 under a span). prost allows 100; deeper requests take
/// the decoding path.
pub const MAX_DEPTH: usize = 32;

/// Why the view refused a request. Callers fall back to prost, which gives
/// the client its own message, so these stay short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    #[error("not handled by the view: {0}")]
    Unsupported(&'static str),
}

type Result<T> = std::result::Result<T, ViewError>;

/// What a resource says about `k8s.cluster.name` (the first attribute with
/// that key, as [`crate::otlp::string_attr`] reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterClaim<'a> {
    /// No attribute has the key.
    Absent,
    /// Exactly one attribute has it, with this string value.
    One(&'a str),
    /// Several have it, or the first is not a string.
    Other,
}

/// One `ResourceSpans` element of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceView<'a> {
    /// The whole field (key, length, body) in the request's bytes.
    pub field: Range<usize>,
    /// Its body.
    pub body: Range<usize>,
    /// `service.name`, when it is a string.
    pub service: Option<&'a str>,
    pub cluster: ClusterClaim<'a>,
    /// Its spans, in [`TraceView::spans`].
    pub spans: Range<usize>,
    /// Its `ScopeSpans`, in [`TraceView::scopes`].
    pub scopes: Range<usize>,
}

/// One `ScopeSpans` element of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeView {
    /// The whole field (key, length, body) in the request's bytes.
    pub field: Range<usize>,
    /// Its body.
    pub body: Range<usize>,
    /// Its spans, in [`TraceView::spans`].
    pub spans: Range<usize>,
}

/// One span, as prost would decode the fields the agent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: &'a str,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// `status.code`, when the span has a status.
    pub status_code: Option<i32>,
    /// A link has an id [`crate::validate::sanitize`] would drop it for.
    pub bad_link: bool,
    /// The W3C `tracestate` (the last occurrence, as prost keeps).
    pub trace_state: &'a str,
    /// Where the whole span field (key, length, body) lies in the
    /// request's bytes: start and end offsets.
    pub field: (usize, usize),
}

impl SpanView<'_> {
    /// Whether [`crate::validate::sanitize`] would change this span: an
    /// invalid id (the span is removed), an all-zero parent (normalised),
    /// or a link with an invalid id (dropped).
    pub fn problem(&self) -> bool {
        !valid_id(self.trace_id, 16)
            || !valid_id(self.span_id, 8)
            || !(self.parent_span_id.is_empty()
                || (self.parent_span_id.len() == 8 && self.parent_span_id.iter().any(|b| *b != 0)))
            || self.bad_link
    }
}

fn valid_id(bytes: &[u8], len: usize) -> bool {
    bytes.len() == len && bytes.iter().any(|b| *b != 0)
}

/// The view of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceView<'a> {
    pub resources: Vec<ResourceView<'a>>,
    pub scopes: Vec<ScopeView>,
    pub spans: Vec<SpanView<'a>>,
}

impl TraceView<'_> {
    /// Whether every span passes validation unchanged.
    pub fn clean(&self) -> bool {
        !self.spans.iter().any(SpanView::problem)
    }

    /// The service of every span, in order (`resources` partition `spans`).
    pub fn spans_with_service(&self) -> impl Iterator<Item = (Option<&str>, &SpanView<'_>)> {
        self.resources.iter().flat_map(move |r| {
            self.spans[r.spans.clone()]
                .iter()
                .map(move |s| (r.service, s))
        })
    }
}

/// Parses `bytes` as an `ExportTraceServiceRequest`. `spans_hint`: the
/// span count if known (from the bounds scan), to size the span vector.
pub fn parse(bytes: &[u8], spans_hint: usize) -> Result<TraceView<'_>> {
    if u32::try_from(bytes.len()).is_err() {
        return Err(ViewError::Unsupported("request above 4 GiB"));
    }
    let mut view = TraceView {
        resources: Vec::new(),
        scopes: Vec::new(),
        spans: Vec::with_capacity(spans_hint.min(bytes.len() / 2)),
    };
    let mut r = Reader::new(bytes, 0);
    while !r.done() {
        let start = r.pos();
        let (tag, wire) = r.key()?;
        match tag {
            1 => {
                let body = r.len_field(wire)?;
                let body_range = r.pos() - body.len()..r.pos();
                let first = view.spans.len();
                let first_scope = view.scopes.len();
                let mut res = ResourceView {
                    field: start..r.pos(),
                    body: body_range.clone(),
                    service: None,
                    cluster: ClusterClaim::Absent,
                    spans: first..first,
                    scopes: first_scope..first_scope,
                };
                resource_spans(
                    &mut Reader::new(body, body_range.start),
                    &mut res,
                    &mut view,
                )?;
                res.spans = first..view.spans.len();
                res.scopes = first_scope..view.scopes.len();
                view.resources.push(res);
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(view)
}

fn deeper(depth: usize) -> Result<usize> {
    if depth + 1 >= MAX_DEPTH {
        Err(ViewError::Unsupported(
            "nesting deeper than the view follows",
        ))
    } else {
        Ok(depth + 1)
    }
}

fn resource_spans<'a>(
    r: &mut Reader<'a>,
    res: &mut ResourceView<'a>,
    view: &mut TraceView<'a>,
) -> Result<()> {
    // `resource` merges across occurrences: its attributes append, so the
    // first `service.name` / `k8s.cluster.name` of the merged list wins.
    let mut attrs = ResourceAttrs::default();
    while !r.done() {
        let start = r.pos();
        let (tag, wire) = r.key()?;
        match tag {
            1 => resource(&mut Reader::new(r.len_field(wire)?, 0), &mut attrs)?,
            2 => {
                let body = r.len_field(wire)?;
                let at = r.pos() - body.len();
                let first = view.spans.len();
                scope_spans(&mut Reader::new(body, at), &mut view.spans)?;
                view.scopes.push(ScopeView {
                    field: start..r.pos(),
                    body: at..r.pos(),
                    spans: first..view.spans.len(),
                });
            }
            3 => {
                r.string(wire)?;
            }
            _ => r.skip(wire)?,
        }
    }
    res.service = attrs.service.flatten();
    res.cluster = match attrs.cluster {
        None => ClusterClaim::Absent,
        Some(Some(c)) if attrs.cluster_count == 1 => ClusterClaim::One(c),
        Some(_) => ClusterClaim::Other,
    };
    Ok(())
}

#[derive(Default)]
struct ResourceAttrs<'a> {
    /// The first `service.name` attribute: `Some(None)` when not a string.
    service: Option<Option<&'a str>>,
    cluster: Option<Option<&'a str>>,
    cluster_count: usize,
}

fn resource<'a>(r: &mut Reader<'a>, attrs: &mut ResourceAttrs<'a>) -> Result<()> {
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => {
                let (key, value) = key_value(&mut Reader::new(r.len_field(wire)?, 0), 3)?;
                if key == model::SERVICE_ATTRIBUTE && attrs.service.is_none() {
                    attrs.service = Some(value);
                }
                if key == CLUSTER_ATTRIBUTE {
                    attrs.cluster_count += 1;
                    attrs.cluster.get_or_insert(value);
                }
            }
            2 => {
                r.uint(wire)?;
            }
            3 => entity_ref(&mut Reader::new(r.len_field(wire)?, 0))?,
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn entity_ref(r: &mut Reader<'_>) -> Result<()> {
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1..=4 => {
                r.string(wire)?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn scope_spans<'a>(r: &mut Reader<'a>, spans: &mut Vec<SpanView<'a>>) -> Result<()> {
    while !r.done() {
        let start = r.pos();
        let (tag, wire) = r.key()?;
        match tag {
            1 => scope(&mut Reader::new(r.len_field(wire)?, 0))?,
            2 => {
                let body = r.len_field(wire)?;
                let mut s = span(&mut Reader::new(body, 0))?;
                s.field = (start, r.pos());
                spans.push(s);
            }
            3 => {
                r.string(wire)?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn scope(r: &mut Reader<'_>) -> Result<()> {
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 | 2 => {
                r.string(wire)?;
            }
            3 => {
                key_value(&mut Reader::new(r.len_field(wire)?, 0), 4)?;
            }
            4 => {
                r.uint(wire)?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

/// Span is level 3 (request 0, resource spans 1, scope spans 2).
fn span<'a>(r: &mut Reader<'a>) -> Result<SpanView<'a>> {
    let mut s = SpanView::default();
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => s.trace_id = r.len_field(wire)?,
            2 => s.span_id = r.len_field(wire)?,
            3 => s.trace_state = r.string(wire)?,
            4 => s.parent_span_id = r.len_field(wire)?,
            5 => s.name = r.string(wire)?,
            // int32 enum: prost keeps the low 32 bits of the varint.
            6 => s.kind = r.uint(wire)? as i32,
            7 => s.start_time_unix_nano = r.fixed64(wire)?,
            8 => s.end_time_unix_nano = r.fixed64(wire)?,
            9 => {
                key_value(&mut Reader::new(r.len_field(wire)?, 0), 4)?;
            }
            10 | 12 | 14 => {
                r.uint(wire)?;
            }
            11 => event(&mut Reader::new(r.len_field(wire)?, 0))?,
            13 => {
                if link(&mut Reader::new(r.len_field(wire)?, 0))? {
                    s.bad_link = true;
                }
            }
            15 => {
                // Singular message: occurrences merge, the last code wins.
                let code = status(&mut Reader::new(r.len_field(wire)?, 0))?;
                s.status_code = Some(code.or(s.status_code).unwrap_or(0));
            }
            16 => r.fixed32(wire)?,
            _ => r.skip(wire)?,
        }
    }
    Ok(s)
}

/// The code of one `Status` occurrence (`None`: not set in it).
fn status(r: &mut Reader<'_>) -> Result<Option<i32>> {
    let mut code = None;
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            2 => {
                r.string(wire)?;
            }
            3 => code = Some(r.uint(wire)? as i32),
            _ => r.skip(wire)?,
        }
    }
    Ok(code)
}

fn event(r: &mut Reader<'_>) -> Result<()> {
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => {
                r.fixed64(wire)?;
            }
            2 => {
                r.string(wire)?;
            }
            3 => {
                key_value(&mut Reader::new(r.len_field(wire)?, 0), 5)?;
            }
            4 => {
                r.uint(wire)?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

/// Whether the link has an id `sanitize` drops it for.
fn link(r: &mut Reader<'_>) -> Result<bool> {
    let (mut trace, mut span): (&[u8], &[u8]) = (&[], &[]);
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => trace = r.len_field(wire)?,
            2 => span = r.len_field(wire)?,
            3 => {
                r.string(wire)?;
            }
            4 => {
                key_value(&mut Reader::new(r.len_field(wire)?, 0), 5)?;
            }
            5 => {
                r.uint(wire)?;
            }
            6 => r.fixed32(wire)?,
            _ => r.skip(wire)?,
        }
    }
    Ok(!(valid_id(trace, 16) && valid_id(span, 8)))
}

/// A `KeyValue` at `depth`: its key and, when its value is a string, the
/// string (`None` for any other or no value).
fn key_value<'a>(r: &mut Reader<'a>, depth: usize) -> Result<(&'a str, Option<&'a str>)> {
    let depth = deeper(depth)?;
    let mut key = "";
    let mut value = AnyState::default();
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => key = r.string(wire)?,
            // Singular message: occurrences merge into one AnyValue.
            2 => any_value(&mut Reader::new(r.len_field(wire)?, 0), depth, &mut value)?,
            3 => {
                r.uint(wire)?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok((key, value.string()))
}

/// The oneof of an `AnyValue` so far: its last variant's field number and
/// the last string seen.
#[derive(Default)]
struct AnyState<'a> {
    variant: u32,
    string: &'a str,
}

impl<'a> AnyState<'a> {
    fn string(&self) -> Option<&'a str> {
        (self.variant == 1).then_some(self.string)
    }
}

fn any_value<'a>(r: &mut Reader<'a>, depth: usize, st: &mut AnyState<'a>) -> Result<()> {
    let depth = deeper(depth)?;
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => st.string = r.string(wire)?,
            2 | 3 | 8 => {
                r.uint(wire)?;
            }
            4 => {
                r.fixed64(wire)?;
            }
            5 => array_value(&mut Reader::new(r.len_field(wire)?, 0), depth)?,
            6 => kv_list(&mut Reader::new(r.len_field(wire)?, 0), depth)?,
            7 => {
                r.len_field(wire)?;
            }
            _ => {
                r.skip(wire)?;
                continue;
            }
        }
        st.variant = tag;
    }
    Ok(())
}

fn array_value(r: &mut Reader<'_>, depth: usize) -> Result<()> {
    let depth = deeper(depth)?;
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => any_value(
                &mut Reader::new(r.len_field(wire)?, 0),
                depth,
                &mut AnyState::default(),
            )?,
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn kv_list(r: &mut Reader<'_>, depth: usize) -> Result<()> {
    let depth = deeper(depth)?;
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => {
                key_value(&mut Reader::new(r.len_field(wire)?, 0), depth)?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}
