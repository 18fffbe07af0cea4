//! The [`Sink`] receivers hand validated requests to, and why it may refuse.

use std::{future::Future, time::Duration};

use bytes::Bytes;
use proto::{otlp::ExportTraceServiceRequest, view::TraceView};

/// Where receivers hand validated requests. The agent's sink appends to its
/// buffer; the gateway's writes to the store. `accept` returns when the
/// spans are as safe as the sink promises (buffered, or committed).
pub trait Sink: Clone + Send + Sync + 'static {
    /// Runs on every validated request before [`Sink::accept`]: removes
    /// what this sink refuses outright (the agent: resources claiming
    /// another cluster) and says so. The receiver reports it as OTLP partial
    /// success, or refuses the request when nothing is left. Default:
    /// refuses nothing.
    fn screen(&self, req: &mut ExportTraceServiceRequest) -> Screened {
        let _ = req;
        Screened::default()
    }

    /// `spans` is the number of spans in `req` (already counted).
    fn accept(
        &self,
        req: ExportTraceServiceRequest,
        spans: u64,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// A refusal known before a request is read (the agent: its buffer is
    /// full under the `block` policy), so that refusing costs no parsing.
    /// Asked by the protobuf paths before the view or prost decoding.
    /// Default: none.
    fn refuse_early(&self) -> Option<SinkError> {
        None
    }

    /// Whether this sink takes encoded requests now ([`Sink::prepare_encoded`]; asked per request);
    /// when not, receivers do not build the view. Default: no.
    fn takes_encoded(&self) -> bool {
        false
    }

    /// The encoded path, for a protobuf request whose every span is valid
    /// ([`TraceView::clean`]): does what [`Sink::screen`] and
    /// [`Sink::accept`] would do before buffering, reading only `view`, and
    /// returns the record to hand to [`Sink::accept_encoded`] (`bytes`
    /// themselves when nothing changes; fewer spans when the sink samples).
    /// `None`: this request needs the decoded form (nothing was done; the
    /// receiver decodes it and takes the usual path). Default: `None`.
    fn prepare_encoded(&self, bytes: &Bytes, view: &TraceView<'_>) -> Option<Prepared> {
        let _ = (bytes, view);
        None
    }

    /// Accepts a record [`Sink::prepare_encoded`] returned. Only called
    /// after it returned `Some`; the receiver counts every span of the
    /// request as accepted when this succeeds.
    fn accept_encoded(
        &self,
        prepared: Prepared,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = prepared;
        async {
            Err(SinkError::Internal(
                "this sink takes no encoded requests".into(),
            ))
        }
    }
}

/// What [`Sink::prepare_encoded`] made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The record to buffer.
    pub record: Bytes,
    /// The spans it holds (0: the sink keeps nothing of the request).
    pub spans: u64,
}

/// What [`Sink::screen`] removed from a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Screened {
    /// Spans removed.
    pub refused_spans: u64,
    /// Why, for the client (the first reason).
    pub message: Option<String>,
}

/// Why a sink did not take a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Out of buffer space; the client should retry after the hint.
    #[error("buffer full, retry in {}s", retry_after.as_secs())]
    Full { retry_after: Duration },
    /// A dependency is down; the client should retry after the hint.
    #[error("unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Duration,
    },
    /// The request is not allowed (e.g. a foreign cluster claim); permanent.
    #[error("{0}")]
    PermissionDenied(String),
    /// The request cannot be processed; permanent.
    #[error("{0}")]
    Invalid(String),
    /// A bug or unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}
