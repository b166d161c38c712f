//! The last step of every backup: the manifest, one sync, and the rename that
//! makes the snapshot appear complete or not at all.

use std::os::fd::AsFd;
use std::path::Path;

use hindsight_fs::error::FsError;
use hindsight_fs::index::INDEX_FILE;
use hindsight_fs::layout::{DestinationRoot, sync_dir, write_atomic};
use hindsight_fs::manifest::{MANIFEST_FILE, Manifest, SnapshotStats, Structure};
use hindsight_fs::marker;
use jiff::Timestamp;

use super::incremental::{BackupError, BackupSpec};
use super::progress::Progress;

/// A finished `.partial-*` directory, ready to become a snapshot.
pub(super) struct Commit<'a, F: AsFd> {
    pub root: &'a DestinationRoot,
    pub spec: &'a BackupSpec,
    pub name: &'a str,
    pub partial: &'a Path,
    pub structure: Structure,
    pub started: Timestamp,
    pub parent: Option<String>,
    pub stats: SnapshotStats,
    pub progress: &'a Progress,
    /// Any descriptor on the destination's filesystem, for `syncfs`.
    pub sync: &'a F,
    pub clock: std::time::Instant,
}

/// The manifest of a finished snapshot whose index is `index_path`.
pub(super) fn manifest<F: AsFd>(c: &Commit<'_, F>, index_path: &Path) -> Result<Manifest, BackupError> {
    // Streamed: the index of a large tree is tens of MiB, and memory must not grow with it.
    let mut index_hash = blake3::Hasher::new();
    std::fs::File::open(index_path)
        .and_then(|f| index_hash.update_reader(f).map(|_| ()))
        .map_err(|e| FsError::io("read", index_path, e))?;
    let counters = c.progress.counters();
    Ok(Manifest {
        format: marker::FORMAT_VERSION,
        job: c.spec.job.clone(),
        name: c.name.to_string(),
        structure: c.structure,
        sources: c.spec.sources.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
        host: hostname(),
        started: c.started.to_string(),
        finished: Timestamp::now().to_string(),
        partial: counters.files_failed > 0,
        parent: c.parent.clone(),
        stats: SnapshotStats { files_failed: counters.files_failed, ..c.stats.clone() },
        index_blake3: index_hash.finalize().to_hex().to_string(),
        tags: c.spec.tags.clone(),
    })
}

/// Writes `snapshot.json`, syncs the destination's filesystem and renames the
/// partial directory to the snapshot's name.
pub(super) fn commit<F: AsFd>(c: Commit<'_, F>) -> Result<Manifest, BackupError> {
    let manifest = manifest(&c, &c.partial.join(INDEX_FILE))?;
    write_atomic(&c.partial.join(MANIFEST_FILE), &manifest.to_bytes())?;
    // One syncfs makes every written file durable before the snapshot becomes visible.
    let sync_start = std::time::Instant::now();
    rustix::fs::syncfs(c.sync.as_fd()).map_err(|e| FsError::io("syncfs", c.partial, e))?;
    let sync_time = sync_start.elapsed();
    let final_dir = c.root.snapshot_dir(&c.spec.job, c.name);
    std::fs::rename(c.partial, &final_dir).map_err(|e| FsError::io("rename", c.partial, e))?;
    sync_dir(&c.root.job_dir(&c.spec.job))?;
    tracing::info!(
        job = %c.spec.job,
        "snapshot {} ({}) complete: sync {:.2}s, total {:.2}s",
        c.name,
        c.structure.as_str(),
        sync_time.as_secs_f64(),
        c.clock.elapsed().as_secs_f64()
    );
    Ok(manifest)
}

fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}
