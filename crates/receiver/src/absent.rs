//! OTLP metrics and logs, which Meridian does not take: answered the way
//! the OpenTelemetry Collector answers a signal it has no pipeline for,
//! never with a silent success that would make an SDK drop its data
//! believing it delivered.
//!
//! What the Collector does (`receiver/otlpreceiver/otlp.go`,
//! `startHTTPServer` / `startGRPCServer`): it registers the HTTP path and
//! the gRPC service of a signal only when a pipeline consumes it. Without
//! one, `POST /v1/metrics` falls through Go's `http.ServeMux` to its 404
//! (`404 page not found`), and a `MetricsService/Export` call reaches no
//! registered service, which grpc-go answers `UNIMPLEMENTED` with
//! `unknown service opentelemetry.proto.collector.metrics.v1.MetricsService`.
//! Here: the same status codes, with a message that says what to do.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    task::{Context, Poll},
};

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use tonic::{Status, body::Body, server::NamedService};

/// The OTLP gRPC service of metrics.
pub const METRICS_SERVICE: &str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
/// The OTLP gRPC service of logs.
pub const LOGS_SERVICE: &str = "opentelemetry.proto.collector.logs.v1.LogsService";

fn message(signal: &str, service: &str) -> String {
    format!(
        "unknown service {service}: Meridian receives traces only and has no {signal} pipeline; \
         send {signal} to an OpenTelemetry Collector"
    )
}

/// `POST /v1/metrics` or `/v1/logs` over HTTP: 404 with a message
/// (plain text, as the Collector's mux answers).
pub fn http(signal: &'static str) -> Response {
    let service = if signal == "metrics" {
        METRICS_SERVICE
    } else {
        LOGS_SERVICE
    };
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("404 page not found: {}\n", message(signal, service)),
    )
        .into_response()
}

macro_rules! absent_service {
    ($name:ident, $service:expr, $signal:literal) => {
        /// Every call of this OTLP gRPC service: `UNIMPLEMENTED` with a
        /// message.
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl NamedService for $name {
            const NAME: &'static str = $service;
        }

        impl<B> tower::Service<http::Request<B>> for $name {
            type Response = http::Response<Body>;
            type Error = Infallible;
            type Future = Ready<Result<Self::Response, Infallible>>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, _req: http::Request<B>) -> Self::Future {
                ready(Ok(
                    Status::unimplemented(message($signal, $service)).into_http()
                ))
            }
        }
    };
}

absent_service!(MetricsAbsent, METRICS_SERVICE, "metrics");
absent_service!(LogsAbsent, LOGS_SERVICE, "logs");
