//! Tail sampling policies compiled and judged: pure, shared by the agent's
//! tail sampler (on what one cluster holds of a trace) and the gateway's
//! cross-cluster combiner (on the digests of every cluster). A decision
//! never looks at spans, only at [`TraceFacts`]: the caller keeps them up to
//! date as spans arrive ([`status_bit`], [`Judge::attribute_bits`]).
//!
//! - [`compile`]: `model::sampling::TailPolicy` → a tree of nodes, checking
//!   every field (the error names the policy, `outer/inner` for
//!   sub-policies);
//! - [`judge`]: the [`Judge`] that walks the tree, with its rate budgets.

mod compile;
mod judge;

#[cfg(test)]
mod tests;

use model::TraceId;

pub use judge::Judge;

/// Attribute predicates are bits in a `u64`.
pub const MAX_PREDICATES: usize = 64;

/// Why tail policies do not compile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TailError {
    #[error("tail policy {policy:?}: {message}")]
    Policy { policy: String, message: String },
    #[error("more than {MAX_PREDICATES} attribute predicates across tail policies")]
    TooManyPredicates,
}

/// What policies see of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceFacts {
    pub trace_id: TraceId,
    /// Earliest span start and latest span end, unix ns.
    pub first_start: u64,
    pub last_end: u64,
    pub spans: u64,
    /// [`STATUS_UNSET`] | [`STATUS_OK`] | [`STATUS_ERROR`] bits.
    pub statuses: u8,
    /// One bit per attribute predicate that some span or resource matched
    /// (only the agent knows attributes; the gateway passes 0).
    pub matched: u64,
}

/// The status bits of a trace summary.
pub const STATUS_UNSET: u8 = 1;
pub const STATUS_OK: u8 = 2;
pub const STATUS_ERROR: u8 = 4;

pub fn status_bit(code: i32) -> u8 {
    match code {
        1 => STATUS_OK,
        2 => STATUS_ERROR,
        _ => STATUS_UNSET,
    }
}
