//! Decoded-size bounds, checked before anything is decoded.
//!
//! Byte limits alone do not bound memory: protobuf `12 00` (an empty span)
//! is 2 bytes on the wire and a `Span` of about 240 bytes once decoded, so a
//! 32 MiB body of them decodes to gigabytes. Every decoder of outside bytes
//! first runs a scan from this module over the encoded message:
//!
//! - [`wire`] walks the protobuf wire format with a table of the message
//!   types ([`schema`]), counting every element of a repeated field
//!   without allocating;
//! - [`json`] tokenizes JSON (OTLP/JSON, Zipkin v2) the same way, counting
//!   every array element and object member.
//!
//! Each element adds the size of the struct it decodes into (an
//! over-estimate: heap data such as strings is bounded by the input bytes
//! themselves), and the scan refuses as soon as a cap of [`DecodeLimits`]
//! is passed. The scan is linear in the input and its own memory is its
//! nesting depth (at most 100 protobuf levels, prost's limit, or 128 JSON
//! levels, serde_json's).

mod json;
mod schema;
mod wire;

use std::mem::size_of;

pub use json::Dialect;
pub use schema::Schema;

/// Caps on what one decoded request may hold. The defaults accept what
/// OpenTelemetry SDKs and Collectors send by a wide margin: an SDK's batch
/// span processor exports at most 512 spans per request and limits spans
/// to 128 attributes, events and links each; the Collector's batch
/// processor sends 8,192 spans per batch by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Spans per request (`usize::MAX`: no cap, for federation batches that
    /// merge many requests each checked when it was received).
    pub max_spans: usize,
    /// Attributes per span, resource, scope, event or link.
    pub max_attributes: usize,
    /// Events per span.
    pub max_events: usize,
    /// Links per span.
    pub max_links: usize,
    /// Estimated bytes of decoded structures (the sum over every element
    /// of the size of its struct), per request.
    pub max_decoded_bytes: usize,
}

impl DecodeLimits {
    /// What the receivers accept (OTLP gRPC/HTTP, Zipkin).
    pub const RECEIVER: Self = Self {
        max_spans: 100_000,
        max_attributes: 1_024,
        max_events: 1_024,
        max_links: 1_024,
        max_decoded_bytes: 64 << 20,
    };

    /// What a federation batch may hold: no span cap (a batch concatenates
    /// up to 512 buffered requests), the rest as [`Self::RECEIVER`].
    pub const FEDERATION: Self = Self {
        max_spans: usize::MAX,
        ..Self::RECEIVER
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::RECEIVER
    }
}

/// Why a message was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error("the request holds more than {limit} spans; send smaller batches")]
    Spans { limit: usize },
    #[error("a {item} holds more than {limit} attributes")]
    Attributes { item: &'static str, limit: usize },
    #[error("a span holds more than {limit} events")]
    Events { limit: usize },
    #[error("a span holds more than {limit} links")]
    Links { limit: usize },
    #[error(
        "the request would decode to more than {limit} bytes of structures \
         (too many elements for its size); send smaller batches"
    )]
    Decoded { limit: usize },
    #[error("the request nests deeper than {limit} levels")]
    Depth { limit: usize },
    #[error("{0}")]
    Malformed(&'static str),
}

impl BoundsError {
    /// A malformed message (a bad request), not one that is too large.
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::Malformed(_) | Self::Depth { .. })
    }
}

/// What a scan found in a message it accepted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Spans (OTLP spans, Zipkin spans).
    pub spans: usize,
    /// Estimated bytes of decoded structures.
    pub decoded_bytes: usize,
}

/// Counts one element against the caps (shared by both scanners).
#[derive(Debug)]
struct Budget<'l> {
    limits: &'l DecodeLimits,
    found: Scanned,
}

impl<'l> Budget<'l> {
    fn new(limits: &'l DecodeLimits, root: usize) -> Self {
        Self {
            limits,
            found: Scanned {
                spans: 0,
                decoded_bytes: root,
            },
        }
    }

    fn bytes(&mut self, n: usize) -> Result<(), BoundsError> {
        self.found.decoded_bytes = self.found.decoded_bytes.saturating_add(n);
        if self.found.decoded_bytes > self.limits.max_decoded_bytes {
            return Err(BoundsError::Decoded {
                limit: self.limits.max_decoded_bytes,
            });
        }
        Ok(())
    }

    fn span(&mut self) -> Result<(), BoundsError> {
        self.found.spans += 1;
        if self.found.spans > self.limits.max_spans {
            return Err(BoundsError::Spans {
                limit: self.limits.max_spans,
            });
        }
        Ok(())
    }

    /// One more element of kind `elem` in a parent that already holds
    /// `held` of them (after this one).
    fn per_parent(&self, elem: Elem, parent: &'static str, held: usize) -> Result<(), BoundsError> {
        let l = self.limits;
        match elem {
            Elem::Attribute if held > l.max_attributes => Err(BoundsError::Attributes {
                item: parent,
                limit: l.max_attributes,
            }),
            Elem::Event if held > l.max_events => Err(BoundsError::Events {
                limit: l.max_events,
            }),
            Elem::Link if held > l.max_links => Err(BoundsError::Links { limit: l.max_links }),
            _ => Ok(()),
        }
    }
}

/// Which cap an element of a repeated field counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Span,
    Attribute,
    Event,
    Link,
    Other,
}

/// Checks an encoded protobuf message of type `schema` against `limits`.
pub fn check_protobuf(
    bytes: &[u8],
    schema: &Schema,
    limits: &DecodeLimits,
) -> Result<Scanned, BoundsError> {
    wire::scan(bytes, schema.root(), limits)
}

/// Checks a JSON body of `dialect` against `limits`.
pub fn check_json(
    bytes: &[u8],
    dialect: Dialect,
    limits: &DecodeLimits,
) -> Result<Scanned, BoundsError> {
    json::scan(bytes, dialect, limits)
}

/// Size of a `String` / `Vec<u8>` header, what each element of a repeated
/// string or bytes field costs besides its contents.
const STRING: usize = size_of::<String>();

#[cfg(test)]
pub(crate) mod tests;
