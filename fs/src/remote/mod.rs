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

pub(crate) mod blobs;
pub(crate) mod check;
pub(crate) mod config;
pub(crate) mod content;
pub(crate) mod lease;
pub(crate) mod prune;
mod root;
pub(crate) mod ssh;
pub(crate) mod ssh_check;
pub(crate) mod store;
pub(crate) mod stream;
pub(crate) mod url;

// What the agent and the CLI use of remote destinations.
pub use blobs::{Journal, Known, SMALL_FILE, StoredAt, blob_key, new_pack_key};
pub use check::{check_remote, list_objects};
pub use config::{Need, RemoteConfig, Service};
pub use lease::Lease;
pub use prune::{is_busy, prune};
pub use ssh::{SshClient, backoff, quote, remove_private_dir};
pub use store::{ContentModel, RemoteStore, Upload};
pub use stream::ObjectWriter;
pub use url::parse_url;
