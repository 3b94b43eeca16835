//! The crate's error, named for what the caller can do about it.

/// Errors of training, evaluation and the model registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is wrong (the message names the field or the line and the reason).
    #[error("{0}")]
    BadInput(String),
    /// The named model version or file does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the registry's state (e.g. nothing to roll back to).
    #[error("{0}")]
    Conflict(String),
    /// A backend (the event log) cannot be reached; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug, an I/O failure or a corrupt file on our side.
    #[error("{0}")]
    Internal(String),
}

impl From<pipelines::Error> for Error {
    fn from(e: pipelines::Error) -> Self {
        match e {
            pipelines::Error::BadInput(m) => Error::BadInput(m),
            pipelines::Error::Unavailable(m) | pipelines::Error::Full(m) => Error::Unavailable(m),
            pipelines::Error::Internal(m) => Error::Internal(m),
        }
    }
}

impl Error {
    /// An I/O failure on `path`.
    pub(crate) fn io(path: &std::path::Path, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound(format!("{}: not found", path.display()))
        } else {
            Error::Internal(format!("{}: {e}", path.display()))
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
