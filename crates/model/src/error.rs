//! The failure classes every service maps to its protocol's status codes.

/// One code per failure class, mapped once to gRPC and once to HTTP by the
/// crates that speak those protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceErrorCode {
    /// The request is malformed; retrying it will not help (400 / INVALID_ARGUMENT).
    BadRequest,
    /// No or unusable credentials (401 / UNAUTHENTICATED).
    Unauthenticated,
    /// Credentials valid but not allowed to do this (403 / PERMISSION_DENIED).
    PermissionDenied,
    /// The thing asked for does not exist (404 / NOT_FOUND).
    NotFound,
    /// The request body or its decompressed form exceeds a limit (413 / RESOURCE_EXHAUSTED without retry info).
    TooLarge,
    /// Temporarily over capacity; retry later (429 / RESOURCE_EXHAUSTED with RetryInfo).
    Overloaded,
    /// A dependency is down; retry later (503 / UNAVAILABLE).
    Unavailable,
    /// A bug or an unexpected failure (500 / INTERNAL).
    Internal,
}

impl ServiceErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::TooLarge => 413,
            Self::Overloaded => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }

    /// Whether an OTLP client should retry a request that failed this way.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Overloaded | Self::Unavailable)
    }
}
