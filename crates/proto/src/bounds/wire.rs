//! The protobuf scan: walks the wire format (key varint, then a varint, a
//! fixed 8 or 4 bytes, or a length-delimited body) following
//! [`super::schema`], so it sees every element prost would allocate. It
//! never allocates: nested messages are walked in place, recursively, at
//! most [`MAX_DEPTH`] deep (prost's own recursion limit).
//!
//! Stricter than prost in one way: groups (wire types 3 and 4, deprecated
//! and unused by every message here) are refused.

use super::{
    BoundsError, Budget, DecodeLimits, Elem, STRING, Scanned,
    schema::{Kind, Msg},
};

/// Nesting levels accepted, as prost's `RECURSION_LIMIT`.
pub(super) const MAX_DEPTH: usize = 100;

fn malformed(what: &'static str) -> BoundsError {
    BoundsError::Malformed(what)
}

fn varint(buf: &mut &[u8]) -> Result<u64, BoundsError> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *buf = &buf[i + 1..];
            return Ok(v);
        }
    }
    Err(malformed("invalid protobuf: bad varint"))
}

fn take<'a>(buf: &mut &'a [u8], n: u64) -> Result<&'a [u8], BoundsError> {
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= buf.len())
        .ok_or_else(|| malformed("invalid protobuf: a field runs past the end"))?;
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

pub(super) fn scan(
    bytes: &[u8],
    root: &'static Msg,
    limits: &DecodeLimits,
) -> Result<Scanned, BoundsError> {
    let mut budget = Budget::new(limits, root.size);
    message(&mut budget, bytes, root, 0)?;
    Ok(budget.found)
}

fn message(
    budget: &mut Budget<'_>,
    mut buf: &[u8],
    msg: &'static Msg,
    depth: usize,
) -> Result<(), BoundsError> {
    if depth >= MAX_DEPTH {
        return Err(BoundsError::Depth { limit: MAX_DEPTH });
    }
    // Per-parent counts for the per-item caps.
    let (mut attributes, mut events, mut links) = (0usize, 0usize, 0usize);
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| *n != 0 && *n < (1 << 29))
            .ok_or_else(|| malformed("invalid protobuf: bad field number"))?;
        let field = msg.field(number);
        match key & 7 {
            0 => {
                varint(&mut buf)?;
                if let Some(Kind::RepeatedVarint(n)) = field {
                    budget.bytes(*n)?;
                }
            }
            1 => {
                take(&mut buf, 8)?;
            }
            5 => {
                take(&mut buf, 4)?;
            }
            2 => {
                let len = varint(&mut buf)?;
                let body = take(&mut buf, len)?;
                match field {
                    Some(Kind::Repeated(child, elem)) => {
                        let held = match elem {
                            Elem::Attribute => {
                                attributes += 1;
                                attributes
                            }
                            Elem::Event => {
                                events += 1;
                                events
                            }
                            Elem::Link => {
                                links += 1;
                                links
                            }
                            Elem::Span => {
                                budget.span()?;
                                0
                            }
                            Elem::Other => 0,
                        };
                        budget.per_parent(*elem, msg.name, held)?;
                        budget.bytes(child.size)?;
                        message(budget, body, child, depth + 1)?;
                    }
                    Some(Kind::Single(child)) => message(budget, body, child, depth + 1)?,
                    Some(Kind::RepeatedBytes) => budget.bytes(STRING)?,
                    Some(Kind::RepeatedVarint(n)) => {
                        // Packed: one element per byte that ends a varint.
                        let count = body.iter().filter(|b| **b < 0x80).count();
                        budget.bytes(count.saturating_mul(*n))?;
                    }
                    None => {}
                }
            }
            _ => return Err(malformed("invalid protobuf: groups are not accepted")),
        }
    }
    Ok(())
}
