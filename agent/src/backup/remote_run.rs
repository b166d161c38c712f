//! The start and the end every backup to a remote destination shares,
//! whatever it stores (blobs, an rsync tree, an archive).
//!
//! Start: the destination's marker, readable sources, the job's lock (in the
//! destination's local cache: a remote store has no locks), a snapshot name
//! after every name the job's directory holds, and a fresh local work
//! directory for the index. End: the index, then the manifest (the commit
//! point) uploaded into the snapshot's directory, and both kept in the local
//! cache, where the mount and the next run read them.

use std::path::{Path, PathBuf};

use hindsight_fs::FsError;
use hindsight_fs::index::{INDEX_FILE, IndexReader};
use hindsight_fs::posix;
use hindsight_fs::remote::Lease;
use hindsight_fs::remote::RemoteStore;
use hindsight_fs::{DestinationRoot, JobLock, PARTIAL_PREFIX, snapshot_name_after};
use hindsight_fs::{MANIFEST_FILE, Manifest, Structure};
use jiff::Timestamp;

use super::source_path::check_sources;
use super::spec::BackupError;

/// A backup to a remote destination, from its start to its commit.
pub(super) struct RemoteRun {
    /// The destination's local cache.
    pub local: DestinationRoot,
    /// Held for the whole run: no other run of the job writes meanwhile.
    _lock: JobLock,
    /// Held until the manifest is published (content-addressed destinations):
    /// no prune, on any agent, deletes what this run stored before that.
    _lease: Option<Lease>,
    /// When the run started (the snapshot's name is made from it).
    pub started: Timestamp,
    /// What the job's directory on the destination holds (names without `/`).
    pub existing: Vec<String>,
    /// The job's complete snapshots with their manifests, in completion order.
    pub snapshots: Vec<(String, hindsight_fs::Result<Manifest>)>,
    /// The new snapshot's place in that order.
    pub sequence: u64,
    /// The new snapshot's name.
    pub name: String,
    /// Local work directory of the new snapshot (its index), fresh.
    pub work: PathBuf,
}

impl RemoteRun {
    /// Checks the destination and the sources, takes the job's lock and names the snapshot.
    pub(super) fn begin(
        store: &RemoteStore,
        cache: &Path,
        job: &str,
        sources: &[PathBuf],
    ) -> Result<Self, BackupError> {
        store.require_marker()?;
        check_sources(sources)?;
        hindsight_fs::create_private_dir_all(cache)?;
        let local = DestinationRoot::new(cache);
        let lock = JobLock::acquire(&local, job)?;
        let started = Timestamp::now();
        let existing: Vec<String> =
            store.list(&format!("{job}/"))?.into_iter().map(|n| n.trim_end_matches('/').to_string()).collect();
        let name = snapshot_name_after(&existing, started);
        let snapshots = store.snapshots_in_order(cache, job)?;
        let sequence = hindsight_fs::next_sequence(&snapshots);
        // Work directories of earlier runs hold only indexes being built: they go.
        for old in local.list_work(job, PARTIAL_PREFIX)? {
            let p = local.partial_dir(job, &old);
            posix::remove_tree(&p).map_err(|e| FsError::io("remove", &p, e))?;
        }
        let work = local.partial_dir(job, &name);
        hindsight_fs::create_private_dir_all(&work)?;
        // ssh destinations hold hardlink trees: no shared bodies, no prune.
        let lease = match store {
            RemoteStore::Objects(_) => Some(Lease::take(store, job, &local.job_dir(job))?),
            RemoteStore::Ssh(_) => None,
        };
        Ok(RemoteRun { local, _lock: lock, _lease: lease, started, existing, snapshots, sequence, name, work })
    }

    /// Uploads the finished index and then `manifest` into `dir` on the
    /// destination: once the manifest is there, so is everything it references.
    pub(super) fn publish(&self, store: &RemoteStore, dir: &str, manifest: &Manifest) -> Result<(), BackupError> {
        let index_file = self.work.join(INDEX_FILE);
        let index_bytes = std::fs::read(&index_file).map_err(|e| FsError::io("read", &index_file, e))?;
        store.write(&format!("{dir}/{INDEX_FILE}"), index_bytes)?;
        store.write(&format!("{dir}/{MANIFEST_FILE}"), manifest.to_bytes())?;
        Ok(())
    }

    /// Keeps the committed snapshot's index and manifest in the local cache.
    pub(super) fn keep(self, job: &str, manifest: &Manifest) -> Result<(), BackupError> {
        let cached = self.local.snapshot_dir(job, &self.name);
        std::fs::rename(&self.work, &cached).map_err(|e| FsError::io("rename", &self.work, e))?;
        std::fs::write(cached.join(MANIFEST_FILE), manifest.to_bytes())
            .map_err(|e| FsError::io("write", &cached, e))?;
        Ok(())
    }
}

/// The newest complete incremental snapshot of the run's job whose index
/// opens (cached locally), to reuse what it holds (archives hold no blobs
/// or trees to reuse); `None` (with a warning) when there is none.
pub(super) fn previous(store: &RemoteStore, cache: &Path, job: &str, run: &RemoteRun) -> Option<(String, IndexReader)> {
    for (name, _) in run.snapshots.iter().rev() {
        match store.cached_index(cache, job, name).and_then(|p| IndexReader::open(&p)) {
            Ok(i) => match i.meta("structure") {
                Ok(Some(s)) if s == Structure::Incremental.as_str() => return Some((name.clone(), i)),
                Ok(_) => {}
                Err(e) => tracing::warn!(job, "skipping snapshot {name} as a base: {e}"),
            },
            Err(e) => tracing::warn!(job, "skipping snapshot {name} as a base: {e}"),
        }
    }
    None
}
