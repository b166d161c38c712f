//! Remote destinations reached through OpenDAL: S3-compatible stores, GCS,
//! FTP and cloud drives.
//!
//! They have no hardlinks, so snapshots are content-addressed: file bodies
//! are stored once under `blobs/` and `packs/` by blake3 ([`blobs`]), and each
//! snapshot is its `index.sqlite` and `snapshot.json` (written last: the
//! commit point) under `<job>/<snapshot>/`, the same layout as local.
//! Archived and compressed snapshots add their `data.tar[.gz]` there, streamed
//! ([`stream`]).
//!
//! - [`config`]: types, options and their checks;
//! - [`store`]: the operator with its layers, used through blocking calls;
//! - `root`: the marker, validation, listing of snapshots and the local
//!   cache of their indexes;
//! - [`blobs`]: content-addressed storage of file bodies;
//! - `content`: ranged, cached reads of file bodies for the mount;
//! - [`stream`]: one object written or read as a stream (archive data files);
//! - [`check`]: integrity of remote snapshots and their stored bodies;
//! - [`lease`]: what running backups tell prunes, on any agent;
//! - [`prune`]: deleting the bodies no snapshot references any more.

pub mod blobs;
pub mod check;
pub mod config;
pub(crate) mod content;
pub mod lease;
pub mod prune;
mod root;
pub mod ssh;
pub mod ssh_check;
pub mod store;
pub mod stream;
pub mod url;

pub use config::{RemoteConfig, Service};
pub use store::RemoteStore;
