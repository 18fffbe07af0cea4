//! Driver errors as [`StoreError`]s: what is worth a retry (`Unavailable`)
//! and what is not.

use scylla::errors::{
    DbError, ExecutionError, NewSessionError, NextPageError, NextRowError, PagerExecutionError,
    PrepareError, RequestAttemptError, RequestError,
};

use crate::StoreError;

fn attempt_retryable(e: &RequestAttemptError) -> bool {
    match e {
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => true,
        RequestAttemptError::DbError(db, _) => matches!(
            db,
            DbError::Unavailable { .. }
                | DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::ReadTimeout { .. }
                | DbError::WriteTimeout { .. }
                | DbError::RateLimitReached { .. }
        ),
        _ => false,
    }
}

pub(super) fn exec_error(e: ExecutionError) -> StoreError {
    let retryable = match &e {
        ExecutionError::ConnectionPoolError(_)
        | ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan => true,
        ExecutionError::LastAttemptError(a) => attempt_retryable(a),
        _ => false,
    };
    if retryable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

fn request_error(e: &RequestError) -> bool {
    match e {
        RequestError::ConnectionPoolError(_)
        | RequestError::RequestTimeout(_)
        | RequestError::EmptyPlan => true,
        RequestError::LastAttemptError(a) => attempt_retryable(a),
        _ => false,
    }
}

fn page_error(e: &NextPageError) -> bool {
    matches!(e, NextPageError::RequestFailure(r) if request_error(r))
}

pub(super) fn pager_error(e: PagerExecutionError) -> StoreError {
    let retryable = match &e {
        PagerExecutionError::NextPageError(p) => page_error(p),
        PagerExecutionError::PrepareError(PrepareError::ConnectionPoolError(_)) => true,
        _ => false,
    };
    if retryable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

pub(super) fn row_error(e: NextRowError) -> StoreError {
    match &e {
        NextRowError::NextPageError(p) if page_error(p) => StoreError::Unavailable(e.to_string()),
        NextRowError::RowDeserializationError(_) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

pub(super) fn session_error(e: NewSessionError) -> StoreError {
    match e {
        NewSessionError::EmptyKnownNodesList | NewSessionError::IllegalConfig(_) => {
            StoreError::Config(e.to_string())
        }
        other => StoreError::Unavailable(format!("connecting to cassandra: {other}")),
    }
}
