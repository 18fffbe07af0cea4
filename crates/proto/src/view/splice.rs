//! Edits on encoded bytes: the cluster stamp, and head sampling.
//!
//! Protobuf merges repeated occurrences of a singular message field, and
//! appends repeated fields, so appending one more `resource` field holding
//! one attribute to a `ResourceSpans` body adds that attribute to its
//! resource (creating the resource when there was none). Only the
//! `ResourceSpans` length prefix changes: the request is copied once, with
//! a few dozen bytes spliced in per resource, and never decoded.
//!
//! Sampling ([`rebuild`]) copies the fields of the spans it keeps as they
//! are, leaves out the ones it drops, and sets a kept span's `tracestate`
//! by appending a second `trace_state` field to it (the last occurrence of
//! a string field wins); only the length prefixes of the messages around
//! an edit are written anew.

use super::{ClusterClaim, TraceView, ViewError, reader::Reader};
use model::CLUSTER_ATTRIBUTE;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `field 1 (LEN)` + length + body, for one nested message level.
fn wrap(out: &mut Vec<u8>, body: &[u8]) {
    out.push(0x0a);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// The fragment appended to a `ResourceSpans` body: `resource {
/// attributes { key: "k8s.cluster.name" value { string_value: cluster } } }`.
fn fragment(cluster: &str) -> Vec<u8> {
    let mut any = Vec::with_capacity(cluster.len() + 2);
    wrap(&mut any, cluster.as_bytes());
    let mut kv = Vec::with_capacity(any.len() + CLUSTER_ATTRIBUTE.len() + 4);
    wrap(&mut kv, CLUSTER_ATTRIBUTE.as_bytes());
    kv.push(0x12);
    put_varint(&mut kv, any.len() as u64);
    kv.extend_from_slice(&any);
    let mut attr = Vec::with_capacity(kv.len() + 2);
    wrap(&mut attr, &kv);
    let mut res = Vec::with_capacity(attr.len() + 2);
    wrap(&mut res, &attr);
    res
}

/// Whether a resource of `view` names a cluster other than `cluster` (or
/// several, or not as a string): the decoding path refuses it, with
/// partial success for the client.
pub fn foreign_claim(view: &TraceView<'_>, cluster: &str) -> bool {
    view.resources.iter().any(|r| match r.cluster {
        ClusterClaim::Absent => false,
        ClusterClaim::One(c) => c != cluster,
        ClusterClaim::Other => true,
    })
}

/// `bytes` (the request `view` was parsed from) with `k8s.cluster.name =
/// cluster` added to every resource that has no such attribute. `Ok(None)`:
/// every resource already names `cluster`, the bytes are the record as
/// they are. A resource with any other claim is an error: refusing it is
/// the decoding path's job ([`crate::convert::stamp_cluster`]).
pub fn stamp_cluster(
    bytes: &[u8],
    view: &TraceView<'_>,
    cluster: &str,
) -> Result<Option<Vec<u8>>, ViewError> {
    if foreign_claim(view, cluster) {
        return Err(ViewError::Unsupported("a resource claims another cluster"));
    }
    let missing = view
        .resources
        .iter()
        .filter(|r| r.cluster == ClusterClaim::Absent)
        .count();
    if missing == 0 {
        return Ok(None);
    }
    let frag = fragment(cluster);
    let grow = missing
        .checked_mul(frag.len() + 10)
        .and_then(|g| g.checked_add(bytes.len()))
        .ok_or(ViewError::Unsupported("request too large to stamp"))?;
    let mut out = Vec::with_capacity(grow);
    let mut at = 0;
    for r in &view.resources {
        if r.cluster != ClusterClaim::Absent {
            continue;
        }
        let body = bytes
            .get(r.body.clone())
            .ok_or(ViewError::Malformed("resource range outside the request"))?;
        let before = bytes
            .get(at..r.field.start)
            .ok_or(ViewError::Malformed("resources out of order"))?;
        out.extend_from_slice(before);
        out.push(0x0a);
        put_varint(&mut out, (body.len() + frag.len()) as u64);
        out.extend_from_slice(body);
        out.extend_from_slice(&frag);
        at = r.field.end;
    }
    out.extend_from_slice(bytes.get(at..).unwrap_or_default());
    debug_assert!(out.len() <= grow, "{} > {grow}", out.len());
    Ok(Some(out))
}

/// What [`rebuild`] does with one span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanEdit {
    Drop,
    Keep,
    /// Kept, with this `tracestate`.
    KeepWithTraceState(String),
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The offset where the body of the length-delimited field at `field`
/// starts (after its key and length, however they were encoded).
fn body_start(bytes: &[u8], field: (usize, usize)) -> Result<usize, ViewError> {
    let slice = bytes
        .get(field.0..field.1)
        .ok_or(ViewError::Malformed("span range outside the request"))?;
    let mut r = Reader::new(slice, field.0);
    r.key()?;
    r.varint()?;
    Ok(r.pos())
}

/// A field of number 1 or 2 (key `0x0a` / `0x12`), length-delimited.
fn put_field(out: &mut Vec<u8>, key: u8, body: &[u8]) {
    out.push(key);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// `bytes` (the request `view` was parsed from) with `edits[i]` applied to
/// `view.spans[i]`, and the cluster stamp of [`stamp_cluster`]. A
/// `ScopeSpans` left with no span, and a `ResourceSpans` left with no
/// `ScopeSpans`, are removed, as the decoding path removes them after
/// sampling. A resource claiming another cluster is an error, as in
/// [`stamp_cluster`].
pub fn rebuild(
    bytes: &[u8],
    view: &TraceView<'_>,
    edits: &[SpanEdit],
    cluster: &str,
) -> Result<Vec<u8>, ViewError> {
    if edits.len() != view.spans.len() {
        return Err(ViewError::Unsupported("one edit per span"));
    }
    if foreign_claim(view, cluster) {
        return Err(ViewError::Unsupported("a resource claims another cluster"));
    }
    let frag = fragment(cluster);
    let get = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .ok_or(ViewError::Malformed("range outside the request"))
    };
    let mut out = Vec::with_capacity(bytes.len() + view.resources.len() * (frag.len() + 10));
    let (mut body, mut scope) = (Vec::new(), Vec::new());
    let mut at = 0;
    for r in &view.resources {
        out.extend_from_slice(get(at..r.field.start)?);
        at = r.field.end;
        body.clear();
        let mut pos = r.body.start;
        let mut scopes_kept = 0usize;
        for sc in view.scopes.get(r.scopes.clone()).unwrap_or_default() {
            body.extend_from_slice(get(pos..sc.field.start)?);
            pos = sc.field.end;
            scope.clear();
            let mut spos = sc.body.start;
            let mut kept = 0usize;
            for i in sc.spans.clone() {
                let (Some(sp), Some(edit)) = (view.spans.get(i), edits.get(i)) else {
                    return Err(ViewError::Malformed("span index outside the view"));
                };
                scope.extend_from_slice(get(spos..sp.field.0)?);
                spos = sp.field.1;
                match edit {
                    SpanEdit::Drop => continue,
                    SpanEdit::Keep => scope.extend_from_slice(get(sp.field.0..sp.field.1)?),
                    SpanEdit::KeepWithTraceState(ts) => {
                        let span_body = get(body_start(bytes, sp.field)?..sp.field.1)?;
                        let extra = 1 + varint_len(ts.len() as u64) + ts.len();
                        scope.push(0x12);
                        put_varint(&mut scope, (span_body.len() + extra) as u64);
                        scope.extend_from_slice(span_body);
                        put_field(&mut scope, 0x1a, ts.as_bytes());
                    }
                }
                kept += 1;
            }
            scope.extend_from_slice(get(spos..sc.body.end)?);
            if kept > 0 {
                scopes_kept += 1;
                put_field(&mut body, 0x12, &scope);
            }
        }
        body.extend_from_slice(get(pos..r.body.end)?);
        if scopes_kept == 0 {
            continue;
        }
        if r.cluster == ClusterClaim::Absent {
            body.extend_from_slice(&frag);
        }
        put_field(&mut out, 0x0a, &body);
    }
    out.extend_from_slice(get(at..bytes.len())?);
    Ok(out)
}
