//! `snapshot.json`: the commit point of a snapshot.
//!
//! A snapshot exists when, and only when, its directory holds this file. It is
//! written last, after the index, and carries enough to list and restore the
//! snapshot on a machine that has never seen the catalog.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{FsError, Result};

/// File name of the manifest.
pub const MANIFEST_FILE: &str = "snapshot.json";
/// Largest manifest read (a few KiB with many sources and tags).
pub(crate) const MANIFEST_MAX: u64 = 1 << 20;

/// How a snapshot stores file contents: the API's closed set, written in
/// manifests and indexes by its lowercase name.
pub use hindsight_api::Structure;

/// Counters recorded with a snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Entries of every kind in the snapshot.
    pub entries: u64,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Bytes of regular file data in the snapshot.
    pub bytes: u64,
    /// Files whose data was written by this snapshot.
    pub files_added: u64,
    /// Bytes of file data written by this snapshot (unchanged files cost none).
    pub bytes_added: u64,
    /// Files that could not be backed up (unreadable, vanished, changing).
    pub files_failed: u64,
    /// Bytes of the data file of an archived or compressed snapshot (0 for incremental).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_stored: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Contents of `snapshot.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// On-destination format version.
    pub format: u32,
    /// Job that made the snapshot.
    pub job: String,
    /// Snapshot name (its directory name).
    pub name: String,
    /// Content structure.
    pub structure: Structure,
    /// Absolute source paths backed up.
    pub sources: Vec<String>,
    /// Host that made the snapshot.
    pub host: String,
    /// Start of the backup (RFC 3339 in the file; a manifest with anything
    /// else does not parse).
    pub started: jiff::Timestamp,
    /// End of the backup.
    pub finished: jiff::Timestamp,
    /// True when some files could not be backed up.
    pub partial: bool,
    /// Snapshot this one was made incrementally against, if any.
    pub parent: Option<String>,
    /// Counters.
    pub stats: SnapshotStats,
    /// blake3 of `index.sqlite`, hex.
    pub index_blake3: String,
    /// The schedules the snapshot was made for (`daily`, `weekly:sun`, `manual`):
    /// retention reads them, so a reindex keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Place of the snapshot in its job's completion order on its
    /// destination: one more than the highest there when it was made (0 in
    /// manifests from before it existed). Names and times come from the
    /// clock, which can step back or forward; this does not.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sequence: u64,
}

/// Sort key of a job's snapshots in completion order: by sequence, then by
/// name (snapshots from before sequences existed, which all have 0, sort
/// among themselves by name, as they always did, and before any newer one).
pub(crate) fn completion_key(sequence: u64, name: &str) -> (u64, (String, u64)) {
    (sequence, crate::layout::snapshot_sort_key(name))
}

/// Sorts a job's snapshots, each with its manifest as read, oldest first by
/// [`completion_key`]; one whose manifest does not read sorts by its name.
pub(crate) fn sort_by_completion(snaps: &mut [(String, Result<Manifest>)]) {
    snaps.sort_by_cached_key(|(name, m)| completion_key(m.as_ref().map_or(0, |m| m.sequence), name));
}

/// The sequence of the next snapshot of a job whose snapshots are `snaps`.
pub fn next_sequence(snaps: &[(String, Result<Manifest>)]) -> u64 {
    snaps.iter().filter_map(|(_, m)| m.as_ref().ok().map(|m| m.sequence)).max().unwrap_or(0) + 1
}

impl Manifest {
    /// Parses a manifest.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| FsError::Format { path: path.into(), message: format!("malformed snapshot manifest: {e}") })
    }

    /// Reads and parses a manifest file (a regular file, not a symlink, of at
    /// most [`MANIFEST_MAX`] bytes).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = crate::posix::read_small_file(path, MANIFEST_MAX).map_err(|e| FsError::io("read", path, e))?;
        Self::parse(path, &bytes)
    }

    /// Refuses a manifest that does not name the job and snapshot directory it
    /// was found in (`at`, for the message): its fields are shown, kept in the
    /// catalog and used by deletions, so they must be the names the listing
    /// checked, not what a hostile destination wrote.
    pub fn check_identity(&self, job: &str, name: &str, at: &Path) -> Result<()> {
        if self.job == job && self.name == name {
            return Ok(());
        }
        let shown = |s: &str| s.chars().take(80).collect::<String>();
        Err(FsError::Format {
            path: at.to_path_buf(),
            message: format!(
                "the manifest names snapshot {:?}/{:?}, not {job}/{name}: refused",
                shown(&self.job),
                shown(&self.name)
            ),
        })
    }

    /// Serialises the manifest as pretty JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(job: &str, name: &str) -> Manifest {
        Manifest {
            format: 1,
            job: job.into(),
            name: name.into(),
            structure: Structure::Incremental,
            sources: vec!["/src".into()],
            host: "h".into(),
            started: jiff::Timestamp::constant(1_795_319_400, 0),
            finished: jiff::Timestamp::constant(1_795_319_401, 0),
            partial: false,
            parent: None,
            stats: SnapshotStats::default(),
            index_blake3: String::new(),
            tags: vec![],
            sequence: 0,
        }
    }

    #[test]
    fn a_manifest_must_name_its_own_directory() {
        let at = Path::new("/d/j/2026-11-22T035000Z");
        manifest("j", "2026-11-22T035000Z").check_identity("j", "2026-11-22T035000Z", at).expect("its own name");
        let err = manifest("j", "x/../../../victim")
            .check_identity("j", "2026-11-22T035000Z", at)
            .expect_err("a traversal name");
        assert!(err.to_string().contains("refused"), "{err}");
        assert!(manifest("k", "2026-11-22T035000Z").check_identity("j", "2026-11-22T035000Z", at).is_err());
    }

    #[test]
    fn a_huge_or_linked_manifest_is_not_read() {
        let t = tempfile::tempdir().expect("tempdir");
        let big = t.path().join("big.json");
        std::fs::write(&big, vec![b' '; (MANIFEST_MAX + 1) as usize]).expect("write");
        assert!(Manifest::read(&big).is_err());
        let real = t.path().join("real.json");
        std::fs::write(&real, manifest("j", "2026-11-22T035000Z").to_bytes()).expect("write");
        Manifest::read(&real).expect("a manifest");
        let link = t.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(Manifest::read(&link).is_err(), "a symlinked manifest was followed");
    }
}
