//! The settings every tonic server of both binaries shares. telemetry does
//! not depend on tonic: `receiver::grpc::serve` (OTLP gRPC) and
//! `mtls::grpc::server` (federation, Raft) apply them, with a
//! [`super::MessageBudgetLayer`] each.

use std::time::Duration;

/// HTTP/2 PING sent on a connection idle this long…
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// …and the connection closed when its ACK does not come in this time (a
/// peer that vanished no longer holds its streams and their bytes).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams open at once on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`);
/// a client opening more waits for one to end (HTTP/2's own back-pressure).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// Unread bytes a peer may push on one stream (HTTP/2 flow control)…
pub const STREAM_WINDOW: u32 = 1 << 20;
/// …and on one connection, all streams together.
pub const CONNECTION_WINDOW: u32 = 4 << 20;
/// A unary call (body read, handling, reply) is cancelled after this
/// (DEADLINE_EXCEEDED to the client; a client's shorter `grpc-timeout`
/// wins). A streaming call's limit is on producing its response headers;
/// the stream itself lives on under keepalive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// What a refused client is told to wait (`google.rpc.RetryInfo`).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
