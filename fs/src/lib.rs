//! Hindsight snapshots at rest.
//!
//! This crate owns everything that lives on a destination and must stay readable
//! without the agent or its catalog:
//!
//! - [`destination`]: a destination whatever holds it (a local directory or
//!   a remote service), one closed type;
//! - [`layout`]: the directory layout of a destination (`HINDSIGHT` marker,
//!   `<job>/<snapshot>/`, `.partial-*` and `.deleting-*` work directories);
//! - [`marker`] and [`manifest`]: the JSON documents that identify a destination
//!   and commit a snapshot;
//! - [`index`]: the per-snapshot `index.sqlite`, written by backups and read by
//!   change detection, integrity checks and the FUSE filesystem;
//! - [`entry`]: the metadata of one entry (kind, mode, owner, times, xattrs);
//! - [`posix`]: fd-relative helpers that read and apply that metadata;
//! - [`check`]: integrity verification of complete snapshots, per structure;
//! - [`local`]: destination access for a local directory (validation, usage,
//!   locks, deletion);
//! - `cache`: the agent's private local copies of remote manifests and indexes;
//! - [`names`]: the rules every name that becomes a path obeys;
//! - [`archive`]: the `.tar`/`.tar.gz` format of archived and compressed
//!   snapshots, its writer and its random-access reader;
//! - [`remote`]: destinations on object stores (OpenDAL) and SSH servers:
//!   configuration, stores, blobs, leases, prunes and checks;
//! - [`mount`]: the FUSE filesystem that shows every destination's snapshots;
//! - `sync`: the one lock policy ([`lock`]);
//! - [`error`]: the crate's error, with the path and whether it is temporary;
//! - [`fuzzing`]: entry points of the fuzz targets.
//!
//! The crate knows nothing of jobs, schedules or the catalog.

pub mod archive;
mod cache;
pub mod check;
pub mod destination;
pub mod entry;
pub mod error;
pub mod fuzzing;
pub mod index;
pub mod layout;
pub mod local;
pub mod manifest;
pub mod marker;
pub mod mount;
pub mod names;
pub mod posix;
pub mod remote;
mod sync;

// The types most callers need, at the root.
pub use destination::Destination;
pub use error::{FsError, Result};
pub use layout::DestinationRoot;
pub use manifest::{Manifest, Structure};
pub use remote::{RemoteConfig, RemoteStore};
pub use sync::lock;
