//! The JSON scan: a tokenizer that counts array elements and object
//! members without building anything. An element of a known array costs
//! the struct it decodes into (a span in `"spans"`, a key-value in
//! `"attributes"`, …). serde ignores unknown fields without allocating,
//! except inside an OTLP `AnyValue` (`"value"`, `"values"`): its field is
//! `#[serde(flatten)]`, so serde first buffers the whole value as
//! `Content`; there every element costs [`ELEMENT`] bytes more and every
//! member [`MEMBER`]. Keys are matched after unescaping, as serde reads
//! them.
//!
//! The scan is lenient where serde is strict (it validates nothing serde
//! would not refuse afterwards); its memory is the nesting depth, at most
//! [`MAX_DEPTH`] (serde_json's recursion limit).

use std::mem::size_of;

use opentelemetry_proto::tonic::common::v1::{AnyValue, EntityRef, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};

use super::{BoundsError, Budget, DecodeLimits, Elem, STRING, Scanned};
use crate::otlp::{ResourceSpans, ScopeSpans, Span};
use crate::zipkin::{Annotation, ZipkinSpan};

/// serde_json's recursion limit.
const MAX_DEPTH: usize = 128;
/// What one buffered array element costs (a `Content`, and the `Vec`
/// slot it is moved through when the flattened value is deserialized).
const ELEMENT: usize = 64;
/// What one buffered object member costs (a key and a value `Content`,
/// twice: the map and the entries flatten collects).
const MEMBER: usize = 128;
/// Longest escaped key that can still name a known field (each character
/// is at most a 6-byte `\uXXXX`).
const MAX_KEY: usize = 128;

/// Which JSON format a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OTLP/JSON `ExportTraceServiceRequest`.
    Otlp,
    /// A Zipkin v2 span array (decoded, then converted to OTLP).
    Zipkin,
}

/// What the elements (arrays) or members (objects) of a container are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Class {
    /// Struct bytes per element (besides [`ELEMENT`] / [`MEMBER`] when
    /// buffered).
    size: usize,
    elem: Elem,
    /// What a per-item error calls the container's owner.
    owner: &'static str,
    /// serde buffers a container under this key (an `AnyValue`).
    buffers: bool,
}

const PLAIN: Class = Class {
    size: 0,
    elem: Elem::Other,
    owner: "value",
    buffers: false,
};

fn class(dialect: Dialect, key: &[u8]) -> Class {
    let c = |size, elem, owner| Class {
        size,
        elem,
        owner,
        buffers: false,
    };
    match (dialect, key) {
        (Dialect::Otlp, b"resourceSpans") => c(size_of::<ResourceSpans>(), Elem::Other, "request"),
        (Dialect::Otlp, b"scopeSpans") => c(size_of::<ScopeSpans>(), Elem::Other, "resource"),
        (Dialect::Otlp, b"spans") => c(size_of::<Span>(), Elem::Span, "scope"),
        (Dialect::Otlp, b"attributes") => {
            c(size_of::<KeyValue>(), Elem::Attribute, "span or other item")
        }
        (Dialect::Otlp, b"events") => c(size_of::<Event>(), Elem::Event, "span"),
        (Dialect::Otlp, b"links") => c(size_of::<Link>(), Elem::Link, "span"),
        (Dialect::Otlp, b"value") => Class {
            buffers: true,
            ..PLAIN
        },
        (Dialect::Otlp, b"values") => Class {
            buffers: true,
            ..c(
                size_of::<KeyValue>().max(size_of::<AnyValue>()),
                Elem::Other,
                "value",
            )
        },
        (Dialect::Otlp, b"entityRefs") => c(size_of::<EntityRef>(), Elem::Other, "resource"),
        (Dialect::Otlp, b"idKeys" | b"descriptionKeys") => c(STRING, Elem::Other, "entity ref"),
        (Dialect::Zipkin, b"annotations") => c(
            size_of::<Annotation>() + size_of::<Event>(),
            Elem::Event,
            "span",
        ),
        // A tag: two strings in a BTreeMap node, then an OTLP attribute.
        (Dialect::Zipkin, b"tags") => c(
            3 * STRING + size_of::<KeyValue>() + size_of::<AnyValue>(),
            Elem::Attribute,
            "span",
        ),
        _ => PLAIN,
    }
}

/// The class of a top-level array's elements.
fn root_class(dialect: Dialect) -> Class {
    match dialect {
        Dialect::Otlp => PLAIN,
        Dialect::Zipkin => Class {
            // Decoded, then converted (both alive at once): a span whose
            // attributes have room for the tags and the 5 endpoint ones.
            size: size_of::<ZipkinSpan>() + size_of::<Span>() + 5 * size_of::<KeyValue>(),
            elem: Elem::Span,
            owner: "request",
            buffers: false,
        },
    }
}

#[derive(Debug)]
struct Frame {
    array: bool,
    class: Class,
    count: usize,
    /// Objects: the class of the value after the current key.
    next: Class,
    /// Inside a value serde buffers.
    buffered: bool,
}

pub(super) fn scan(
    bytes: &[u8],
    dialect: Dialect,
    limits: &DecodeLimits,
) -> Result<Scanned, BoundsError> {
    let mut budget = Budget::new(limits, 0);
    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    // In an object: the next string is a key (after `{` or `,`).
    let mut expect_key = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b':' => i += 1,
            b',' => {
                expect_key = stack.last().is_some_and(|f| !f.array);
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                i += 1;
            }
            b'"' => {
                let end = string_end(bytes, i + 1)?;
                if expect_key {
                    let key = &bytes[i + 1..end];
                    let class = if key.contains(&b'\\') {
                        unescape(key).map_or(PLAIN, |k| class(dialect, &k))
                    } else {
                        class(dialect, key)
                    };
                    if let Some(top) = stack.last_mut() {
                        top.next = class;
                    }
                    expect_key = false;
                } else {
                    value(&mut budget, &mut stack)?;
                }
                i = end + 1;
            }
            b'{' | b'[' => {
                let class = value(&mut budget, &mut stack)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(BoundsError::Depth { limit: MAX_DEPTH });
                }
                let array = b == b'[';
                let buffered = match stack.last() {
                    None => false,
                    Some(parent) => {
                        parent.buffered || class.buffers || (parent.array && parent.class.buffers)
                    }
                };
                stack.push(Frame {
                    array,
                    class: match (array, stack.is_empty()) {
                        (true, true) => root_class(dialect),
                        _ => class,
                    },
                    count: 0,
                    next: PLAIN,
                    buffered,
                });
                expect_key = !array;
                i += 1;
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                value(&mut budget, &mut stack)?;
                i += 1;
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b',' | b']' | b'}' | b'"' | b' ' | b'\t' | b'\n' | b'\r' | b':'
                    )
                {
                    i += 1;
                }
            }
        }
    }
    Ok(budget.found)
}

/// Counts a value starting in the innermost container; returns the class
/// of what a container starting here holds (the key's, in an object).
fn value(budget: &mut Budget<'_>, stack: &mut [Frame]) -> Result<Class, BoundsError> {
    let Some(top) = stack.last_mut() else {
        return Ok(PLAIN);
    };
    top.count += 1;
    let class = top.class;
    if top.array || class.elem == Elem::Attribute {
        // An element of an array, or a member of an object of elements
        // (Zipkin `tags`).
        if class.elem == Elem::Span {
            budget.span()?;
        }
        budget.per_parent(class.elem, class.owner, top.count)?;
        let base = match (top.buffered, top.array) {
            (false, _) => 0,
            (true, true) => ELEMENT,
            (true, false) => MEMBER,
        };
        budget.bytes(base + class.size)?;
    } else if top.buffered {
        budget.bytes(MEMBER)?;
    }
    Ok(if top.array { PLAIN } else { top.next })
}

/// Index of the closing quote of a string whose content starts at `from`.
fn string_end(bytes: &[u8], from: usize) -> Result<usize, BoundsError> {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Err(BoundsError::Malformed("invalid JSON: unterminated string"))
}

/// A key with its escapes resolved (ASCII only: no known key has other
/// characters), or `None` when it cannot be a known key.
fn unescape(key: &[u8]) -> Option<Vec<u8>> {
    if key.len() > MAX_KEY {
        return None;
    }
    let mut out = Vec::with_capacity(key.len());
    let mut i = 0;
    while i < key.len() {
        let b = key[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let c = match key.get(i + 1)? {
            b'u' => {
                let hex = std::str::from_utf8(key.get(i + 2..i + 6)?).ok()?;
                let code = u8::try_from(u16::from_str_radix(hex, 16).ok()?).ok()?;
                i += 6;
                code
            }
            other => {
                i += 2;
                match other {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    c => *c,
                }
            }
        };
        out.push(c);
    }
    Some(out)
}
