//! File history answered from the snapshots' indexes: the versions of one
//! path, paths matching a pattern across snapshots, and what changed
//! between two snapshots. No file content is read to answer them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::SnapshotId;

/// A snapshot, as history answers name it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotRef {
    /// Catalog id.
    pub id: SnapshotId,
    /// Job directory (`JOB`, or `JOB@USER` for an account).
    pub job: String,
    /// Snapshot name.
    pub name: String,
    /// Destination name.
    pub destination: String,
    /// When it was completed.
    pub finished: Timestamp,
}

/// What an entry is and holds, as the index records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryState {
    /// `file`, `dir`, `symlink`, `fifo`, `chardev`, `blockdev` or `socket`.
    pub kind: String,
    /// Size in bytes (files).
    pub size: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// blake3 of the content (files), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Symlink target (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// One distinct version of a path (`GET /v1/versions`): identical contents
/// (by blake3 for files, target for symlinks, the list of names for
/// directories) are one version, whatever their times.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileVersion {
    /// What the path was in the newest snapshot holding this version.
    pub state: EntryState,
    /// The snapshots holding this version, newest first.
    pub snapshots: Vec<SnapshotRef>,
}

/// One path matching a `find` pattern (`GET /v1/find`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FindMatch {
    /// Absolute path in the snapshots (lossy UTF-8).
    pub path: String,
    /// Its kind in the newest snapshot holding it.
    pub kind: String,
    /// The snapshots holding it, newest first.
    pub snapshots: Vec<SnapshotRef>,
}

/// One entry that differs between two snapshots.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiffEntry {
    /// Absolute path (lossy UTF-8).
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// What changed: `kind`, `content`, `size`, `mode`, `owner`, `mtime`, `xattrs`, `target`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<String>,
}

/// What changed from snapshot `a` to snapshot `b` (`GET /v1/diff`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotDiff {
    /// The older side.
    pub a: SnapshotRef,
    /// The newer side.
    pub b: SnapshotRef,
    /// Entries added, removed or changed, by path.
    pub entries: Vec<DiffEntry>,
    /// How many were added.
    pub added: u64,
    /// How many were removed.
    pub removed: u64,
    /// How many changed.
    pub changed: u64,
}

/// Query of `GET /v1/versions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VersionsQuery {
    /// Absolute path.
    pub path: String,
    /// Only this job directory's snapshots (an accounts job: its accounts' too).
    #[serde(default)]
    pub job: Option<String>,
    /// Only this destination's.
    #[serde(default)]
    pub destination: Option<String>,
}

/// Query of `GET /v1/find`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FindQuery {
    /// Glob (`*`, `?`, `[...]`, `**`): on names, or on whole paths when it holds a `/`.
    pub pattern: String,
    /// Only this job directory's snapshots.
    #[serde(default)]
    pub job: Option<String>,
    /// Only this destination's.
    #[serde(default)]
    pub destination: Option<String>,
    /// Only snapshots completed at or after (RFC 3339 or YYYY-MM-DD, UTC).
    #[serde(default)]
    pub since: Option<String>,
    /// Only snapshots completed before (RFC 3339 or YYYY-MM-DD, UTC).
    #[serde(default)]
    pub until: Option<String>,
}

/// Query of `GET /v1/diff`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DiffQuery {
    /// Snapshot id of the older side.
    pub a: i64,
    /// Snapshot id of the newer side.
    pub b: i64,
    /// Only this absolute path and what is below it.
    #[serde(default)]
    pub path: Option<String>,
}
