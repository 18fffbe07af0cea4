//! The sampling policy language and its pure evaluation, shared by the
//! agent (which applies policies to the spans it receives) and the gateway
//! (which judges what every cluster saw of a trace).
//!
//! - [`head`]: consistent head sampling on the trace id (W3C `ot`
//!   tracestate), per cluster/service/operation probability, and its
//!   application to an OTLP request.
//! - [`tail`]: tail policies compiled into a [`tail::Judge`] that decides
//!   on a trace's summary ([`tail::TraceFacts`]), never on its spans.
//! - [`check`]: everything a policy must pass before it runs.
//!
//! The policy *data* (`SamplingConfig`, `HeadRule`, `TailPolicy`, …, with
//! their serde shape and range checks) lives in `model::sampling`, beside
//! the other replicated settings; this crate gives it meaning.
//!
//! Pure: no I/O, no tasks, no clock (time is passed in). It must not know
//! tokio, tonic, sqlx or axum, nor the agent's or the gateway's types.

mod check;
pub mod head;
pub mod tail;

pub use check::{InvalidPolicy, check};
