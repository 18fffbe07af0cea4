//! The agent's sampling stage, in front of the buffer: it applies the
//! policy language of the `sampling` crate to the spans the receivers hand
//! over. In the order spans meet it:
//!
//! 1. head sampling ([`sampling::head`]): consistent on the trace id (W3C
//!    `ot` tracestate), per cluster/service/operation probability;
//! 2. [`tail`]: optional tail sampling, whole traces by policy, held in
//!    memory for their decision window.
//!
//! [`pipeline::SamplingSink`] chains the steps (after the RED tap,
//! [`crate::red_tap`], which counts every span before sampling).
//! [`verdicts`] links the tail sampler to the cross-cluster verdict stream
//! ([`crate::verdict_stream`]). [`remote`] serves the head policy to SDKs
//! (Jaeger remote sampling over HTTP) and [`remote_grpc`] (over gRPC).

pub mod pipeline;
pub mod remote;
pub mod remote_grpc;
pub mod tail;
pub mod verdicts;
