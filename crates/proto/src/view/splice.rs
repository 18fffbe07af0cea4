//! The cluster stamp on encoded bytes.
//!
//! Protobuf merges repeated occurrences of a singular message field, and
//! appends repeated fields, so appending one more `resource` field holding
//! one attribute to a `ResourceSpans` body adds that attribute to its
//! resource (creating the resource when there was none). Only the
//! `ResourceSpans` length prefix changes: the request is copied once, with
//! a few dozen bytes spliced in per resource, and never decoded.

use super::{ClusterClaim, TraceView, ViewError};
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
    let mut missing = 0usize;
    for r in &view.resources {
        match r.cluster {
            ClusterClaim::Absent => missing += 1,
            ClusterClaim::One(c) if c == cluster => {}
            _ => return Err(ViewError::Unsupported("a resource claims another cluster")),
        }
    }
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
