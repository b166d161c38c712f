//! A destination, whatever holds it: one closed type, so that code which must
//! treat backends differently matches on it and a new backend (WebDAV, an
//! encrypted object layer) is a compile error at each such place.
//!
//! The surface every backend offers is here: its marker, listing jobs and
//! snapshots, manifests, disk usage and its content model. What only one
//! kind can do (a local root's two-phase deletion, an object store's blobs)
//! stays on its own type, reached through a `match`.

use crate::error::Result;
use crate::layout::{DestinationRoot, InitOutcome};
use crate::local::{self, DiskUsage};
use crate::manifest::Manifest;
use crate::marker::Marker;
use crate::remote::RemoteStore;
use crate::remote::store::ContentModel;

/// Where a destination's snapshots live, ready for use.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A directory on this machine: hardlink trees and archives.
    Local(DestinationRoot),
    /// A remote service: an object store or an SSH server.
    Remote(RemoteStore),
}

impl Destination {
    /// The marker, if the root has one.
    pub fn read_marker(&self) -> Result<Option<Marker>> {
        match self {
            Destination::Local(r) => r.read_marker(),
            Destination::Remote(s) => s.read_marker(),
        }
    }

    /// The marker, or an error saying the root is not a Hindsight destination.
    pub fn require_marker(&self) -> Result<Marker> {
        match self {
            Destination::Local(r) => r.require_marker(),
            Destination::Remote(s) => s.require_marker(),
        }
    }

    /// Adopts an existing marker, or writes one into an empty root (any root with `force`).
    pub fn init(&self, destination_id: &str, force: bool) -> Result<InitOutcome> {
        match self {
            Destination::Local(r) => r.init(destination_id, force),
            Destination::Remote(s) => s.init(destination_id, force),
        }
    }

    /// Jobs with a directory on the destination.
    pub fn list_jobs(&self) -> Result<Vec<String>> {
        match self {
            Destination::Local(r) => r.list_jobs(),
            Destination::Remote(s) => s.list_jobs(),
        }
    }

    /// Complete snapshots of a job, oldest first.
    pub fn list_snapshots(&self, job: &str) -> Result<Vec<String>> {
        match self {
            Destination::Local(r) => r.list_snapshots(job),
            Destination::Remote(s) => s.list_snapshots(job),
        }
    }

    /// The manifest of a snapshot, checked to name the snapshot it was found in.
    pub fn read_manifest(&self, job: &str, snapshot: &str) -> Result<Manifest> {
        match self {
            Destination::Local(r) => r.read_manifest(job, snapshot),
            Destination::Remote(s) => s.read_manifest(job, snapshot),
        }
    }

    /// Space on the destination, where it can be measured (not on object stores).
    pub fn disk_usage(&self) -> Option<Result<DiskUsage>> {
        match self {
            Destination::Local(r) => Some(local::disk_usage(r.path())),
            Destination::Remote(s) => s.disk_usage(),
        }
    }

    /// How it keeps file contents.
    pub fn content_model(&self) -> ContentModel {
        match self {
            Destination::Local(_) => ContentModel::HardlinkTree,
            Destination::Remote(s) => s.content_model(),
        }
    }

    /// Where it is, for messages (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Destination::Local(r) => r.path().display().to_string(),
            Destination::Remote(s) => format!("{s:?}"),
        }
    }
}
