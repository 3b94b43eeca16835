//! The crate's error, named for what the caller can do about it.

/// Errors of the bandit service and its off-policy evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is wrong (the message names the file, line or field and the reason).
    #[error("{0}")]
    BadInput(String),
    /// A bug or an I/O failure on our side.
    #[error("{0}")]
    Internal(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
