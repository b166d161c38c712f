//! The last step of every backup: the manifest, one sync, and the rename that
//! makes the snapshot appear complete or not at all.

use std::os::fd::AsFd;
use std::path::Path;

use hindsight_fs::FORMAT_VERSION;
use hindsight_fs::FsError;
use hindsight_fs::index::INDEX_FILE;
use hindsight_fs::{DestinationRoot, sync_dir, write_atomic};
use hindsight_fs::{MANIFEST_FILE, Manifest, SnapshotStats, Structure};
use jiff::Timestamp;

use super::progress::Progress;
use super::spec::{BackupError, BackupSpec};

/// What a snapshot's manifest records about the backup that made it.
pub(super) struct SnapshotInfo<'a> {
    pub spec: &'a BackupSpec,
    pub name: &'a str,
    pub structure: Structure,
    pub started: Timestamp,
    pub parent: Option<String>,
    pub stats: SnapshotStats,
    pub progress: &'a Progress,
    /// Its place in the job's completion order on the destination.
    pub sequence: u64,
}

/// A finished `.partial-*` directory on a local destination, ready to become a snapshot.
pub(super) struct Commit<'a, F: AsFd> {
    pub info: SnapshotInfo<'a>,
    pub root: &'a DestinationRoot,
    pub partial: &'a Path,
    /// Any descriptor on the destination's filesystem, for `syncfs`.
    pub sync: &'a F,
    pub clock: std::time::Instant,
}

/// The manifest of a finished snapshot whose index is `index_path`.
pub(super) fn manifest(s: &SnapshotInfo<'_>, index_path: &Path) -> Result<Manifest, BackupError> {
    // Streamed: the index of a large tree is tens of MiB, and memory must not grow with it.
    let mut index_hash = blake3::Hasher::new();
    std::fs::File::open(index_path)
        .and_then(|f| index_hash.update_reader(f).map(|_| ()))
        .map_err(|e| FsError::io("read", index_path, e))?;
    let counters = s.progress.counters();
    Ok(Manifest {
        format: FORMAT_VERSION,
        job: s.spec.job.clone(),
        name: s.name.to_string(),
        structure: s.structure,
        sources: s.spec.sources.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
        host: crate::host::hostname(),
        started: s.started,
        finished: Timestamp::now(),
        partial: counters.files_failed > 0,
        parent: s.parent.clone(),
        stats: SnapshotStats { files_failed: counters.files_failed, ..s.stats.clone() },
        index_blake3: index_hash.finalize().to_hex().to_string(),
        tags: s.spec.tags.clone(),
        sequence: s.sequence,
    })
}

/// Writes `snapshot.json`, syncs the destination's filesystem and renames the
/// partial directory to the snapshot's name.
pub(super) fn commit<F: AsFd>(c: Commit<'_, F>) -> Result<Manifest, BackupError> {
    let manifest = manifest(&c.info, &c.partial.join(INDEX_FILE))?;
    write_atomic(&c.partial.join(MANIFEST_FILE), &manifest.to_bytes())?;
    // One syncfs makes every written file durable before the snapshot becomes visible.
    let sync_start = std::time::Instant::now();
    rustix::fs::syncfs(c.sync.as_fd()).map_err(|e| FsError::io("syncfs", c.partial, e))?;
    let sync_time = sync_start.elapsed();
    let final_dir = c.root.snapshot_dir(&c.info.spec.job, c.info.name);
    std::fs::rename(c.partial, &final_dir).map_err(|e| FsError::io("rename", c.partial, e))?;
    sync_dir(&c.root.job_dir(&c.info.spec.job))?;
    tracing::info!(
        job = %c.info.spec.job,
        "snapshot {} ({}) complete: sync {:.2}s, total {:.2}s",
        c.info.name,
        c.info.structure.as_str(),
        sync_time.as_secs_f64(),
        c.clock.elapsed().as_secs_f64()
    );
    Ok(manifest)
}
