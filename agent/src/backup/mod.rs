//! The backup engine: turns a job's sources into a snapshot on a destination.
//!
//! Synchronous code, run on a blocking thread by the runner. One engine per
//! structure and kind of destination:
//! - [`incremental`]: hardlink snapshots on a local destination; its sink
//!   `local_tree` decides, entry by entry, between linking to the previous
//!   snapshot and copying, `copy` moves file data;
//! - [`archive`]: archived and compressed snapshots on a local destination;
//! - [`remote`]: content-addressed snapshots on object stores;
//! - [`ssh`]: hardlink trees on SSH servers, extracted by GNU tar there;
//! - [`remote_archive`]: archived and compressed snapshots on any remote.
//!
//! What they share: `spec` (the backup's vocabulary: spec, error, row, stop
//! conditions), `index_thread` (rows into `index.sqlite`), `source_walk`
//! (the one walker of the sources; every engine is a sink of it), `change`
//! (the one "unchanged since the previous snapshot" rule),
//! `source_path` (opening sources without following symlinks), `commit`
//! (manifests and the commit point), `dump` (database dumps streamed into
//! the snapshot), `remote_run` (a run on a remote
//! destination: lock, lease, previous snapshot), [`progress`] (live counters
//! and the cancel flag) and [`exclude`] (the job's patterns).

mod archive;
mod archive_file;
mod change;
mod commit;
mod copy;
mod dump;
mod exclude;
mod incremental;
mod index_thread;
mod local_tree;
mod pending_hashes;
mod progress;
mod remote;
mod remote_archive;
mod remote_run;
mod source_path;
mod source_walk;
mod spec;
pub(crate) mod ssh;
pub(crate) mod tar_stderr;

pub(crate) use archive::{ArchiveOptions, run_archive};
pub(crate) use dump::{DATABASES_DIR, DumpSource, HINDSIGHT_DIR, Normalize};
pub(crate) use exclude::Excludes;
pub(crate) use incremental::run_incremental;
pub(crate) use progress::{Cancel, Counters, FileError, MAX_RECORDED_ERRORS, Progress};
pub(crate) use remote::run_remote;
pub(crate) use remote_archive::run_remote_archive;
pub(crate) use source_path::check_path as check_source_path;
pub(crate) use spec::{BackupError, BackupSpec};
pub(crate) use ssh::run_ssh;
