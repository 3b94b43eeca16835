//! One error enum for the crate, named for what the caller can do about it.

use thiserror::Error;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, grouped by what the caller can do.
#[derive(Debug, Error)]
pub enum Error {
    /// The caller sent something unusable (bad SQL, bad config value, bad URL); fix the input.
    #[error("bad input: {0}")]
    BadInput(String),
    /// A backend (broker, ClickHouse, disk) cannot take the request now; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bounded queue or log is full; back off and retry.
    #[error("full: {0}")]
    Full(String),
    /// Something that should not happen did; a bug or corrupted data.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// True when retrying later can succeed (the backend is down or full).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Full(_))
    }
}
