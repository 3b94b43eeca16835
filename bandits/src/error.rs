//! The crate's error, named for what the caller can do about it.

/// Errors of the bandit service and its off-policy evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is wrong: `field` names the parameter, JSON path, file or line; `reason` says why.
    #[error("{field}: {reason}")]
    BadInput { field: String, reason: String },
    /// The named slot, arm or decision does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (e.g. a slot with no active arm, a duplicate id).
    #[error("{0}")]
    Conflict(String),
    /// A backend (Postgres, the bus, the event log) is unreachable; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an I/O failure on our side.
    #[error("{0}")]
    Internal(String),
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

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        pipelines::pg::from_sqlx(e).into()
    }
}

impl From<pipelines::Error> for Error {
    fn from(e: pipelines::Error) -> Self {
        match e {
            pipelines::Error::Unavailable(m) | pipelines::Error::Full(m) => Error::Unavailable(m),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<Error> for pipelines::http::ApiError {
    fn from(e: Error) -> Self {
        use pipelines::http::ApiError;
        match e {
            Error::BadInput { field, reason } => ApiError::BadInput { field, reason },
            Error::NotFound(m) => ApiError::NotFound(m),
            Error::Conflict(reason) => ApiError::Conflict {
                field: None,
                reason,
            },
            Error::Unavailable(m) => ApiError::unavailable(m),
            Error::Internal(m) => ApiError::Internal(m),
        }
    }
}
