//! The backup engine: turns a job's sources into a snapshot on a destination.
//!
//! Synchronous code, run on a blocking thread by the runner. [`incremental`]
//! writes hardlink snapshots on POSIX destinations; [`walker`] walks the source
//! fd-relative and decides, entry by entry, between linking to the previous
//! snapshot and copying; [`copy`] moves file data; [`progress`] carries the live
//! counters and the cancel flag; [`exclude`] compiles the job's patterns.

pub mod archive;
mod archive_file;
mod commit;
pub mod copy;
pub mod exclude;
pub mod incremental;
mod pending_hashes;
pub mod progress;
pub mod remote;
pub mod remote_archive;
mod remote_run;
mod source_path;
mod source_walk;
pub mod ssh;
pub(crate) mod tar_stderr;
mod walker;

pub use archive::{ArchiveOptions, run_archive};
pub use exclude::Excludes;
pub use incremental::{BackupError, BackupSpec, run_incremental};
pub use progress::{Cancel, Counters, FileError, Progress};
pub use remote::run_remote;
pub use remote_archive::run_remote_archive;
pub use source_path::check_path as check_source_path;
pub use ssh::run_ssh;
