//! Live counters of a backup, shared between the engine's threads and the API.

use std::sync::Mutex;

use hindsight_fs::lock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Per-file errors kept in memory and in the catalog; the count goes on beyond it.
pub(crate) const MAX_RECORDED_ERRORS: usize = 1000;

pub(crate) use hindsight_api::{Counters, FileError};

/// Counters updated by the engine while it runs.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    files_scanned: AtomicU64,
    files_linked: AtomicU64,
    files_copied: AtomicU64,
    files_failed: AtomicU64,
    bytes_scanned: AtomicU64,
    bytes_copied: AtomicU64,
    current: Mutex<Option<String>>,
    errors: Mutex<Vec<FileError>>,
}

impl Progress {
    /// Counts a scanned entry of `size` bytes.
    pub(crate) fn scanned(&self, size: u64) {
        self.files_scanned.fetch_add(1, Ordering::Relaxed);
        self.bytes_scanned.fetch_add(size, Ordering::Relaxed);
    }

    /// Counts an entry linked to the previous snapshot.
    pub(crate) fn linked(&self) {
        self.files_linked.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a copied file.
    pub(crate) fn copied(&self, bytes: u64) {
        self.files_copied.fetch_add(1, Ordering::Relaxed);
        self.bytes_copied.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Forgets what was counted and recorded: the run starts its walk again
    /// (a retried transfer), which counts every entry anew.
    pub(crate) fn restart(&self) {
        for c in [
            &self.files_scanned,
            &self.files_linked,
            &self.files_copied,
            &self.files_failed,
            &self.bytes_scanned,
            &self.bytes_copied,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        lock(&self.errors).clear();
    }

    /// Records a file that failed; the run will be partial.
    pub(crate) fn failed(&self, path: &[u8], message: impl Into<String>) {
        self.files_failed.fetch_add(1, Ordering::Relaxed);
        let path = String::from_utf8_lossy(path).into_owned();
        let message = message.into();
        tracing::warn!(path = %path, "{message}");
        let mut errors = lock(&self.errors);
        if errors.len() < MAX_RECORDED_ERRORS {
            errors.push(FileError { path, message, account: None });
        }
    }

    /// Sets the path shown as "current".
    pub(crate) fn set_current(&self, path: &[u8]) {
        *lock(&self.current) = Some(String::from_utf8_lossy(path).into_owned());
    }

    /// The counters now.
    pub(crate) fn counters(&self) -> Counters {
        Counters {
            files_scanned: self.files_scanned.load(Ordering::Relaxed),
            files_linked: self.files_linked.load(Ordering::Relaxed),
            files_copied: self.files_copied.load(Ordering::Relaxed),
            files_failed: self.files_failed.load(Ordering::Relaxed),
            bytes_scanned: self.bytes_scanned.load(Ordering::Relaxed),
            bytes_copied: self.bytes_copied.load(Ordering::Relaxed),
        }
    }

    /// The path being worked on.
    pub(crate) fn current(&self) -> Option<String> {
        lock(&self.current).clone()
    }

    /// The recorded per-file errors.
    pub(crate) fn errors(&self) -> Vec<FileError> {
        lock(&self.errors).clone()
    }
}

/// A flag that asks a running backup to stop at the next entry or chunk.
#[derive(Debug, Default)]
pub(crate) struct Cancel(AtomicBool);

impl Cancel {
    /// Asks the backup to stop.
    pub(crate) fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
