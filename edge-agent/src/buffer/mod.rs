//! The agent's buffer between receivers and the forwarder.
//!
//! Records are encoded OTLP `ExportTraceServiceRequest`s with a sequence
//! number. The forwarder reads them in order and releases them with
//! [`MemoryBuffer::ack`] only after the gateway said the store committed
//! them (end-to-end ack). Full policy: **reject** — `append` fails with
//! [`BufferFull`], which receivers turn into HTTP 429 + Retry-After / gRPC
//! RESOURCE_EXHAUSTED + RetryInfo, so memory stays bounded under any load.
//!
//! This is the in-memory buffer (`--durability memory`); the agent issue adds
//! the on-disk WAL behind the same operations.

mod memory;

pub use memory::{BufferFull, MemoryBuffer, Record};
