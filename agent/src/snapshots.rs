//! Snapshot housekeeping: deletion (crash-safe) and the start-up reconcile.
//!
//! Deleting renames the snapshot to `.deleting-<name>` first, which makes it
//! invisible at once, then the [`Deleter`] removes its files in the background. After a crash
//! the agent finds `.deleting-*` directories at start and finishes them. Data
//! hardlinked from other snapshots survives: only this snapshot's names go.

use std::sync::Arc;

use hindsight_fs::{DELETING_PREFIX, DestinationRoot};

use crate::catalog::Catalog;
use crate::deleter::{Deleter, Pending};
use crate::destinations;
use crate::error::AgentError;
use crate::model::SnapshotId;
use hindsight_fs::Destination;
use hindsight_fs::remote::ContentModel;

/// Starts deleting a snapshot; returns its destination's name once it is
/// invisible on the destination. The deleter removes its files in the background.
pub(crate) fn delete(catalog: &Arc<Catalog>, deleter: &Deleter, id: SnapshotId) -> Result<String, AgentError> {
    let rec = catalog.snapshot(id)?;
    let dest = catalog.destination(&rec.snapshot.destination)?;
    if dest.readonly {
        return Err(AgentError::conflict(format!("destination {} is read-only", dest.name)));
    }
    let (job, name) = (rec.snapshot.job.clone(), rec.snapshot.name.clone());
    // The names come from a manifest (checked when listed since, but the row
    // may be older): a deletion is built from checked names only.
    hindsight_fs::check_job_dir(&job)
        .and_then(|()| hindsight_fs::check_snapshot_name(&name))
        .map_err(|e| AgentError::conflict(format!("snapshot {id} cannot be deleted: {e}")))?;
    if let Destination::Remote(store) = destinations::open(catalog.master_key(), &dest)? {
        // No rename on object stores: the manifest goes first (the snapshot stops
        // existing at once), then its objects; a failure leaves the row for a retry.
        // Bodies it shared stay; those only it used go in the prune that follows.
        store
            .delete_snapshot(&job, &name)
            .map_err(|e| AgentError::from_fs(&e, format!("cannot delete snapshot {job}/{name}: {e}")))?;
        catalog.remove_snapshot(id)?;
        // ssh destinations hold hardlink trees: removing the snapshot's
        // directory freed what only it held, there are no bodies to prune.
        if store.content_model() == ContentModel::Blobs {
            match deleter.cache_dir(&dest) {
                Ok(cache) => crate::prune::start(store, cache, dest.name.clone(), deleter.shutdown()),
                Err(e) => tracing::error!("cannot prune destination {}: {e}", dest.name),
            }
        }
        return Ok(dest.name);
    }
    let root = destinations::local_root(&dest)?;
    if root.snapshot_dir(&job, &name).exists() {
        root.begin_delete(&job, &name).map_err(|e| AgentError::internal(format!("cannot delete snapshot: {e}")))?;
    }
    catalog.mark_snapshot_deleting(id)?;
    deleter.send(Pending { root, job, name, id });
    Ok(dest.name)
}

/// Why a snapshot directory cannot be browsed or restored, if it cannot:
/// its manifest or its index does not read.
pub(crate) fn health(dir: &std::path::Path) -> Option<String> {
    use hindsight_fs::index::{INDEX_FILE, IndexReader};
    use hindsight_fs::{MANIFEST_FILE, Manifest};
    if let Err(e) = Manifest::read(&dir.join(MANIFEST_FILE)) {
        return Some(e.to_string());
    }
    match IndexReader::open(&dir.join(INDEX_FILE)).and_then(|ix| ix.len()) {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// Finishes deletions a crash interrupted, on one destination root.
pub(crate) fn finish_interrupted_deletes(root: &DestinationRoot) {
    let Ok(jobs) = root.list_jobs() else { return };
    for job in jobs {
        let Ok(names) = root.list_work(&job, DELETING_PREFIX) else { continue };
        for name in names {
            tracing::info!("finishing the deletion of snapshot {job}/{name}");
            if let Err(e) = root.finish_delete(&job, &name) {
                tracing::error!("deleting snapshot {job}/{name}: {e}");
            }
        }
    }
}

/// At start: for every reachable local destination, finish interrupted deletions
/// and bring the catalog's snapshot list in line with what the destination holds.
/// Remote destinations are left to `destination reindex`: an unreachable service
/// would hold the start for its timeouts and retries.
pub(crate) fn reconcile_all(catalog: &Catalog) {
    let Ok(dests) = catalog.destinations() else { return };
    for d in dests {
        let Ok(root) = destinations::local_root(&d) else { continue };
        if root.read_marker().ok().flatten().is_none() {
            tracing::warn!(destination = %d.name, "destination {} is not reachable; keeping its catalog entries", root.path().display());
            continue;
        }
        let target = Destination::Local(root);
        destinations::secure_local(&d, &target);
        let Destination::Local(root) = &target else { continue };
        if !d.readonly {
            finish_interrupted_deletes(root);
        }
        match destinations::scan(&d, &target) {
            Ok(found) => {
                if let Err(e) = catalog.replace_snapshots(&d.id, &found) {
                    tracing::error!(destination = %d.name, "reindex: {e}");
                }
            }
            Err(e) => tracing::warn!(destination = %d.name, "reindex: {}", e.message),
        }
    }
}
