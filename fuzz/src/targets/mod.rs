//! The fuzz targets: one per decoder of bytes from outside the process
//! (the network, or a disk another version or a fault may have written).
//!
//! A target runs one input through the decoder the way the service does,
//! panics when an invariant fails (the engine catches it), and returns the
//! allocation bound that input must stay under. For the decoders behind
//! [`proto::bounds`] the bound is the scan's own estimate (twice it, for
//! `Vec` doubling, plus the input's bytes a few times over for strings and
//! buffers): the fuzzer checks that the estimate the receivers trust
//! really bounds what decoding allocates.

mod columns;
mod federation;
mod otlp;
mod query;
mod storage;
mod traceql;
mod view;
mod zipkin;

/// Bytes every input may use besides its bound (decoder contexts, error
/// strings, small tables).
pub const BASE: usize = 256 << 10;

#[derive(Debug)]
pub struct Target {
    pub name: &'static str,
    /// What it decodes.
    pub about: &'static str,
    /// How its allocation bound is computed (for the docs and reports).
    pub bound: &'static str,
    /// Tokens the mutator inserts.
    pub dict: &'static [&'static [u8]],
    /// Real encoded messages to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Runs one input; returns its allocation bound in bytes.
    pub run: fn(&[u8]) -> usize,
}

pub fn all() -> Vec<Target> {
    vec![
        otlp::PROTOBUF,
        otlp::JSON,
        otlp::ZIPKIN,
        view::VIEW,
        zipkin::PROTO3,
        federation::FORWARD,
        columns::FORWARD_COLUMNS,
        federation::DECIDE,
        federation::FORWARD_WINDOWS,
        federation::CONTROL,
        query::PARAMS,
        traceql::TRACEQL,
        storage::CHUNK,
        storage::SPAN_BODY,
        storage::WAL,
        storage::RAFT_LOG,
    ]
}

/// A structure-aware input: the first byte picks a mode, the rest is data.
pub fn mode(input: &[u8], modes: u8) -> (u8, &[u8]) {
    match input.split_first() {
        Some((m, rest)) => (m % modes, rest),
        None => (0, input),
    }
}

/// `data` split at `sep` into at most `max` parts.
pub fn parts(data: &[u8], sep: u8, max: usize) -> Vec<&[u8]> {
    data.split(|b| *b == sep).take(max).collect()
}
