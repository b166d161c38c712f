//! Hindsight snapshots at rest.
//!
//! This crate owns everything that lives on a destination and must stay readable
//! without the agent or its catalog:
//!
//! - `destination`: a destination whatever holds it (a local directory or
//!   a remote service), one closed type ([`Destination`]);
//! - `layout`: the directory layout of a destination ([`DestinationRoot`]:
//!   the `HINDSIGHT` marker, `<job>/<snapshot>/`, `.partial-*` and
//!   `.deleting-*` work directories, job locks);
//! - `marker` and `manifest`: the JSON documents that identify a destination
//!   and commit a snapshot ([`Manifest`]);
//! - [`index`]: the per-snapshot `index.sqlite`, written by backups and read by
//!   change detection, integrity checks and the FUSE filesystem;
//! - `entry`: the metadata of one entry ([`EntryMeta`]: kind, mode, owner,
//!   times, xattrs);
//! - [`posix`]: fd-relative helpers that read and apply that metadata;
//! - [`check`]: integrity verification of complete snapshots, per structure;
//! - `local`: what only a local directory has (validation, disk usage);
//! - `cache`: the agent's private local copies of remote manifests and indexes;
//! - `names`: the rules every name that becomes a path obeys;
//! - [`archive`]: the `.tar`/`.tar.gz` format of archived and compressed
//!   snapshots, its writer and its random-access reader;
//! - [`remote`]: destinations on object stores (OpenDAL) and SSH servers:
//!   configuration, stores, blobs, leases, prunes and checks;
//! - [`mount`]: the FUSE filesystem that shows every destination's snapshots;
//! - `sync`: the one lock policy ([`lock`]);
//! - `error`: the crate's error ([`FsError`]), with the path and whether it
//!   is temporary, and the rules of its use;
//! - [`fuzzing`]: entry points of the fuzz targets.
//!
//! The crate knows nothing of jobs, schedules or the catalog.

// What is public is decided at the root (the `pub use` block below):
// a `pub` item no one outside the crate can reach is a mistake.
#![warn(unreachable_pub)]

pub mod archive;
mod cache;
pub mod check;
mod destination;
mod entry;
mod error;
pub mod fuzzing;
pub mod index;
mod layout;
mod local;
mod manifest;
mod marker;
pub mod mount;
mod names;
pub mod posix;
pub mod remote;
mod sync;

// The crate's API: the types and rules of a destination at the root; the
// index, archive format, remote stores, checks, the mount and the POSIX
// helpers as namespaces of their own.
pub use destination::Destination;
pub use entry::{EntryKind, EntryMeta, Xattrs};
pub use error::{FsError, Result};
pub use layout::{
    DELETING_PREFIX, DestinationRoot, InitOutcome, JobLock, PARTIAL_PREFIX, TREE_DIR, create_private_dir_all,
    snapshot_name_after, sync_dir, write_atomic,
};
pub use local::{DiskUsage, disk_usage, validate as validate_local};
pub use manifest::{MANIFEST_FILE, Manifest, SnapshotStats, Structure, next_sequence};
pub use marker::FORMAT_VERSION;
pub use names::{
    check_account_name, check_destination_id, check_job_dir, check_name, check_snapshot_name, split_job_dir,
};
pub use remote::{RemoteConfig, RemoteStore};
pub use sync::lock;
