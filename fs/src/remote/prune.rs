//! Removing file bodies that no snapshot references any more.
//!
//! Deleting a remote snapshot removes its index and manifest; the blobs and
//! packs it shared with other snapshots must stay, and those only it used are
//! garbage. Pruning reads every remaining snapshot's index (cached locally),
//! lists the stored objects and deletes those no index references. A pack is
//! kept while any file in it is referenced.
//!
//! A backup stores objects before the snapshot that references them exists.
//! Each holds a [`lease`](super::lease) in the destination meanwhile, and a
//! prune deletes no unreferenced object stored after the oldest live lease
//! began, whichever agent holds it (a job's first backup here, another
//! agent writing the same bucket). It also takes the lock of every job this
//! agent has backed up to the destination, and gives up (to run again
//! later) when one is held. Unreadable indexes stop it: nothing is deleted
//! unless every snapshot's references are known.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{FsError, Result};
use crate::index::IndexReader;
use crate::layout::{DestinationRoot, JobLock};

use super::store::RemoteStore;

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Objects deleted.
    pub deleted: u64,
    /// Bytes they held.
    pub freed: u64,
    /// Objects still referenced.
    pub kept: u64,
}

/// Deletes the objects under `blobs/` and `packs/` that no snapshot references.
/// `cache` is the destination's local cache (indexes, job locks).
pub fn prune(store: &RemoteStore, cache: &Path) -> Result<PruneReport> {
    // Hardlink trees hold no bodies that outlive their snapshots.
    let RemoteStore::Objects(bodies) = store else { return Ok(PruneReport::default()) };
    let local = DestinationRoot::new(cache);
    let mut locks = Vec::new();
    for job in local.list_jobs().unwrap_or_default() {
        // Busy: a backup of this job is storing objects right now.
        locks.push(JobLock::acquire(&local, &job)?);
    }
    let mut referenced = HashSet::new();
    for job in store.list_jobs()? {
        for snapshot in store.list_snapshots(&job)? {
            let index = IndexReader::open(&store.cached_index(cache, &job, &snapshot)?)?;
            index.for_each(|e| {
                if let Some(key) = e.location.blob {
                    referenced.insert(key);
                }
                Ok(())
            })?;
        }
    }
    let mut objects = bodies.objects("blobs/")?;
    objects.extend(bodies.objects("packs/")?);
    // After the objects: a backup that stored one of them had its lease by then.
    let cutoff = super::lease::cutoff(bodies, jiff::Timestamp::now())?;
    let mut report = PruneReport::default();
    for obj in objects {
        if referenced.contains(&obj.key) || !cutoff.allows(&obj) {
            report.kept += 1;
            continue;
        }
        store.delete(&obj.key)?;
        report.deleted += 1;
        report.freed += obj.size;
    }
    drop(locks);
    Ok(report)
}

/// True when `e` means a backup holds a job's lock (prune later).
pub fn is_busy(e: &FsError) -> bool {
    matches!(e, FsError::Busy(_))
}
