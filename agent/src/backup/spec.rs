//! The backup vocabulary every engine shares: what to back up
//! ([`BackupSpec`]), why a backup made no snapshot ([`BackupError`]), an
//! index row on its way ([`Row`]) and the stop conditions of a run's threads
//! ([`Stop`]). A leaf: it imports no engine.

use std::path::PathBuf;
use std::sync::Mutex;

use hindsight_fs::FsError;
use hindsight_fs::Structure;
use hindsight_fs::index::IndexEntry;
use hindsight_fs::lock;

use super::dump::DumpSource;
use super::exclude::Excludes;
use super::progress::Cancel;

/// What to back up and how.
#[derive(Debug, Clone)]
pub(crate) struct BackupSpec {
    /// Job name (directory on the destination).
    pub job: String,
    /// Absolute source paths.
    pub sources: Vec<PathBuf>,
    /// Compiled exclude patterns.
    pub excludes: Excludes,
    /// Do not descend into other filesystems.
    pub one_file_system: bool,
    /// How many times a file that changes while being copied is copied again.
    pub retry_failed: u32,
    /// Copy threads.
    pub threads: usize,
    /// Absolute paths of directories never backed up: destination roots, the
    /// snapshot mount and the agent's state (a backup must not contain itself).
    pub skip_dirs: Vec<Vec<u8>>,
    /// Tags recorded in the snapshot's manifest (the schedules it serves).
    pub tags: Vec<String>,
    /// How the snapshot stores file contents.
    pub structure: Structure,
    /// Database dumps stored under `/.hindsight/databases/`.
    pub dumps: Vec<DumpSource>,
    /// Dumps that could not be planned (server unreachable, database
    /// unknown): `(path in the snapshot, why)`, recorded as errors of each run.
    pub dump_problems: Vec<(Vec<u8>, String)>,
}

/// Why a backup produced no snapshot.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackupError {
    /// Cancelled by the user or by shutdown; the partial snapshot stays for resume.
    #[error("cancelled")]
    Cancelled,
    /// A source cannot be read at all.
    #[error("{0}")]
    Source(String),
    /// Writing to the destination failed.
    #[error("destination: {0}")]
    Destination(String),
    /// The destination layer refused or failed.
    #[error("{0}")]
    Fs(#[from] FsError),
    /// The index thread stopped (its own error is reported instead when known).
    #[error("the index writer stopped")]
    IndexStopped,
}

impl BackupError {
    /// True when the same backup may succeed if tried again in a moment
    /// (the destination timed out, refused a connection, or was busy).
    pub(crate) fn is_temporary(&self) -> bool {
        matches!(self, BackupError::Fs(e) if e.is_temporary())
    }
}

/// An index row on its way to the index thread; `added` when its data is new in this snapshot.
pub(crate) struct Row {
    pub entry: IndexEntry,
    pub added: bool,
}

/// Stop conditions shared by the walker and the copy threads: the caller's
/// cancel flag, and the run's own abort when a copy thread hits a fatal error.
pub(super) struct Stop<'a> {
    cancel: &'a Cancel,
    abort: Cancel,
    fatal: Mutex<Option<BackupError>>,
}

impl<'a> Stop<'a> {
    /// Stops when `cancel` is set or a thread of the run fails.
    pub(super) fn new(cancel: &'a Cancel) -> Self {
        Stop { cancel, abort: Cancel::default(), fatal: Mutex::new(None) }
    }

    /// Err when the run must stop now.
    pub(super) fn check(&self) -> Result<(), BackupError> {
        if self.abort.is_cancelled() {
            return Err(BackupError::IndexStopped);
        }
        if self.cancel.is_cancelled() {
            return Err(BackupError::Cancelled);
        }
        Ok(())
    }

    /// Stops the run for `e` (the first fatal error is the one reported).
    pub(super) fn fail(&self, e: BackupError) {
        let mut f = lock(&self.fatal);
        if f.is_none() {
            *f = Some(e);
        }
        drop(f);
        self.abort.cancel();
    }

    /// True once the run must stop.
    pub(super) fn stopped(&self) -> bool {
        self.abort.is_cancelled() || self.cancel.is_cancelled()
    }

    /// The run's own abort flag (set by [`Stop::fail`]).
    pub(super) fn aborted(&self) -> &Cancel {
        &self.abort
    }

    /// The caller's cancel flag.
    pub(super) fn cancelled(&self) -> &'a Cancel {
        self.cancel
    }

    /// The error that stopped the run, if one did.
    pub(super) fn take_fatal(&self) -> Option<BackupError> {
        lock(&self.fatal).take()
    }
}
