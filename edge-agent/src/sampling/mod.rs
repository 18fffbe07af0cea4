//! Sampling in the agent, in the order spans meet it:
//!
//! 1. [`red`]: RED metrics over *every* received span (before sampling).
//! 2. [`head`]: consistent head sampling on the trace id (W3C `ot`
//!    tracestate), per cluster/service/operation probability.
//! 3. [`tail`]: optional tail sampling, whole traces by policy.
//!
//! [`remote`] serves the head policy to SDKs (Jaeger remote sampling).
//! [`pipeline::SamplingSink`] chains the steps in front of the buffer.

pub mod head;
pub mod pipeline;
pub mod red;
pub mod remote;
pub mod tail;
pub mod verdicts;
