//! The crate's error, named for what the caller can do about it.

/// Errors of the bandit service and its off-policy evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is wrong (the message names the file, line or field and the reason).
    #[error("{0}")]
    BadInput(String),
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
