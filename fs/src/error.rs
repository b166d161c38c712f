//! The error type of the fs crate, and the rules the crate follows:
//!
//! 1. Public functions return [`Result`]; one error type for the crate,
//!    whose variants say what failed (a system call, an index, a document on
//!    the destination, a remote service, the crate itself).
//! 2. Every failure names what it concerns: a path, an object key, a snapshot.
//! 3. Whether retrying later may succeed is part of the error
//!    ([`FsError::is_temporary`]): callers decide with it, never by reading
//!    messages. A remote error keeps the service's own reason, its whole
//!    cause chain, because that is what a user can act on.
//! 4. [`FsError::Refused`] is a refusal a user can act on (a path that is no
//!    destination, a directory that is not empty); a fault of this crate is
//!    [`FsError::Internal`].

use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// A failure reading or writing snapshots at rest.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A system call on `path` failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("open", "link", ...).
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The snapshot index could not be read or written.
    #[error("index {path}: {source}")]
    Index {
        /// Path of the `index.sqlite` file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A JSON document on the destination is malformed.
    #[error("{path}: {message}")]
    Format {
        /// The document.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The destination is in a state that forbids the operation.
    #[error("{0}")]
    Refused(String),
    /// This crate failed (a task or runtime it needs is gone).
    #[error("internal error: {0}")]
    Internal(String),
    /// Another run holds the lock.
    #[error("{0}")]
    Busy(String),
    /// A remote service refused or failed (after the retries).
    #[error("{op} {path}: {message}")]
    Remote {
        /// What was being done ("write", "list", ...).
        op: &'static str,
        /// The object or directory concerned, inside the destination root.
        path: String,
        /// The service's own message.
        message: String,
        /// Retrying later may succeed.
        temporary: bool,
        /// The object does not exist.
        not_found: bool,
    },
}

impl FsError {
    /// Wraps an OS error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        FsError::Io { op, path: path.into(), source: source.into() }
    }

    /// A remote service refused `op` on `path`, for good (not temporary, the
    /// object exists).
    pub fn remote(op: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        FsError::Remote { op, path: path.into(), message: message.into(), temporary: false, not_found: false }
    }

    /// A remote object that does not exist.
    pub fn remote_missing(op: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        FsError::Remote { op, path: path.into(), message: message.into(), temporary: false, not_found: true }
    }

    /// Wraps an SQLite error with the index path.
    pub fn index(path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        FsError::Index { path: path.into(), source }
    }

    /// True when retrying the same operation later may succeed (network, lock, EINTR).
    pub fn is_temporary(&self) -> bool {
        match self {
            FsError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
            ),
            FsError::Busy(_) => true,
            FsError::Remote { temporary, .. } => *temporary,
            _ => false,
        }
    }

    /// True when an index query was interrupted for outliving its budget.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            FsError::Index { source: rusqlite::Error::SqliteFailure(e, _), .. }
                if e.code == rusqlite::ErrorCode::OperationInterrupted
        )
    }

    /// The OS error number, when this is an OS error.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FsError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
