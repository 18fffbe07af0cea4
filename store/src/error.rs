//! The one error type of every store call, and what the caller should do
//! about each kind (fix the configuration, or retry).

use model::ServiceErrorCode;

use crate::shard::ShardMapError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL or options are wrong; fix the configuration.
    #[error("store configuration: {0}")]
    Config(String),
    /// The backend cannot be reached or is overloaded; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Applying migrations failed.
    #[error("store migration failed: {0}")]
    Migration(String),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("store error: {0}")]
    Backend(String),
    /// This backend does not do what was asked (derived records on
    /// Cassandra).
    #[error("not supported by this store backend: {0}")]
    Unsupported(String),
}

impl StoreError {
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::Config(_)
            | Self::Migration(_)
            | Self::Corrupt(_)
            | Self::Backend(_)
            | Self::Unsupported(_) => ServiceErrorCode::Internal,
            Self::Unavailable(_) => ServiceErrorCode::Unavailable,
        }
    }
}

impl From<ShardMapError> for StoreError {
    fn from(e: ShardMapError) -> Self {
        StoreError::Config(e.to_string())
    }
}
