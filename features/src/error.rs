//! The crate's error, named for what the caller can do about it.

/// Errors of the feature pipeline, store and API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is wrong: `field` names the parameter, JSON path or setting; `reason` says why.
    #[error("{field}: {reason}")]
    BadInput { field: String, reason: String },
    /// The requested shopper or product has no features.
    #[error("{0}")]
    NotFound(String),
    /// A backend (Redis, the bus, the event log) cannot be reached; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bounded store or queue is full; retry later.
    #[error("{0}")]
    Full(String),
    /// A bug or corrupt state on our side.
    #[error("{0}")]
    Internal(String),
}

impl From<pipelines::Error> for Error {
    fn from(e: pipelines::Error) -> Self {
        match e {
            pipelines::Error::BadInput(m) => Error::bad("request", m),
            pipelines::Error::Unavailable(m) => Error::Unavailable(m),
            pipelines::Error::Full(m) => Error::Full(m),
            pipelines::Error::Internal(m) => Error::Internal(m),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::BadInput`] naming `field`.
    pub fn bad(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::BadInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<Error> for pipelines::http::ApiError {
    fn from(e: Error) -> Self {
        use pipelines::http::ApiError;
        match e {
            Error::BadInput { field, reason } => ApiError::BadInput { field, reason },
            Error::NotFound(m) => ApiError::NotFound(m),
            Error::Unavailable(m) => ApiError::unavailable(m),
            Error::Full(m) => ApiError::Full(m),
            Error::Internal(m) => ApiError::Internal(m),
        }
    }
}
