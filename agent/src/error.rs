//! The agent's domain error, and the rules every module of the agent follows:
//!
//! 1. The domain (runner, scheduler, destinations, jobs, settings, snapshots,
//!    checks) returns [`AgentError`]; it knows nothing of HTTP. Only `api/`
//!    turns an error into an answer (`impl From<AgentError> for ApiError`,
//!    the one place where kinds become statuses).
//! 2. Every error has a semantic [`ErrorKind`] that tells the caller what it
//!    can do about it, and says whether it is temporary: the same request,
//!    unchanged, may succeed later (a destination that timed out or refused a
//!    connection). Backups read the same distinction from
//!    [`crate::backup::BackupError::is_temporary`] and try a destination once
//!    more before a run records its failure.
//! 3. Errors are upgraded, never downgraded: a lower error (`CatalogError`,
//!    `FsError`) converts with its kind and its temporary flag kept, and its
//!    message keeps the cause a user can act on.
//! 4. Messages are one line for humans, naming the object concerned; code
//!    never decides anything by reading them.

use crate::catalog::CatalogError;

/// What kind of failure, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object named does not exist.
    NotFound,
    /// The request conflicts with the current state (a name taken, a run
    /// already ended, a destination read-only).
    Conflict,
    /// The request itself is wrong (a value out of range, a relative path).
    Invalid,
    /// A destination cannot be used as it is: unreachable, refusing the
    /// credentials, or not the destination it should be.
    Unreachable,
    /// The agent failed.
    Internal,
}

/// A failure of the agent's domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// One line for humans.
    pub message: String,
    /// The same request may succeed later, unchanged.
    pub temporary: bool,
}

impl AgentError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AgentError { kind, message: message.into(), temporary: false }
    }

    /// The object named does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// The request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// The request is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// A destination cannot be used as it is.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unreachable, message)
    }

    /// The agent failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A destination failed: `message` says what was being done and why,
    /// and the error is temporary when the destination's error is.
    pub fn from_fs(e: &hindsight_fs::FsError, message: impl Into<String>) -> Self {
        Self::unreachable(message).temporary_if(e.is_temporary())
    }

    /// The same error, marked temporary when `temporary`.
    pub fn temporary_if(mut self, temporary: bool) -> Self {
        self.temporary |= temporary;
        self
    }
}

impl From<CatalogError> for AgentError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound(m) => AgentError::not_found(m),
            CatalogError::Conflict(m) => AgentError::conflict(m),
            other => AgentError::internal(other.to_string()),
        }
    }
}

/// Result of the agent's domain functions.
pub type AgentResult<T> = Result<T, AgentError>;
