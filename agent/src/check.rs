//! `destination check`: the integrity of every complete snapshot of a destination.

use hindsight_fs::check::{Checker, SnapshotCheck as FsCheck};

use crate::error::AgentError;
use std::path::Path;

use hindsight_fs::remote::RemoteStore;
use hindsight_fs::remote::{check_remote, list_objects};

use crate::catalog::Catalog;
use crate::destinations::open;
use crate::model::{CheckProblem, DestinationCheck, DestinationRecord, SnapshotCheck, Structure};
use hindsight_fs::Destination;

/// Checks every complete snapshot of `d`, job by job, oldest first. Works on
/// read-only and disabled destinations: nothing is written. Blocking.
pub(crate) fn check_destination(
    catalog: &Catalog,
    cache_dir: &Path,
    d: &DestinationRecord,
    read_data: bool,
) -> Result<DestinationCheck, AgentError> {
    let root = match open(catalog.master_key(), d)? {
        Destination::Remote(store) => {
            let cache = d.cache_dir(cache_dir).map_err(AgentError::internal)?;
            return check_remote_destination(&store, &cache, d, read_data);
        }
        Destination::Local(root) => root,
    };
    let unreadable =
        |e: hindsight_fs::FsError| AgentError::from_fs(&e, format!("cannot read destination {}: {e}", d.name));
    root.require_marker().map_err(unreadable)?;
    let mut checker = Checker::new(read_data);
    let mut snapshots = Vec::new();
    for job in root.list_jobs().map_err(unreadable)? {
        for name in root.list_snapshots(&job).map_err(unreadable)? {
            let dir = root.snapshot_dir(&job, &name);
            let report = match checker.check(&dir) {
                Ok(r) => r,
                // Deleted (retention, `snapshot delete`) while the check ran: not a problem.
                Err(_) if !dir.exists() => continue,
                Err(e) => FsCheck {
                    job: job.clone(),
                    snapshot: name.clone(),
                    structure: "unknown".into(),
                    ok: false,
                    entries_checked: 0,
                    bytes_read: 0,
                    problems: vec![hindsight_fs::check::Problem { path: None, message: e.to_string() }],
                },
            };
            // A snapshot deleted during its check reports its files missing: drop it.
            if !report.ok && !dir.exists() {
                continue;
            }
            tracing::info!(destination = %d.name, "checked {job}/{name}: {} problems", report.problems.len());
            snapshots.push(to_api(report));
        }
    }
    let ok = snapshots.iter().all(|s| s.ok);
    Ok(DestinationCheck { destination: d.name.clone(), read_data, snapshots, ok })
}

/// The remote flavour: every snapshot's manifest and index, and every file's
/// stored body against one listing of the stored objects.
fn check_remote_destination(
    store: &RemoteStore,
    cache: &Path,
    d: &DestinationRecord,
    read_data: bool,
) -> Result<DestinationCheck, AgentError> {
    let unreadable =
        |e: hindsight_fs::FsError| AgentError::from_fs(&e, format!("cannot read destination {}: {e}", d.name));
    store.require_marker().map_err(unreadable)?;
    let objects = list_objects(store).map_err(unreadable)?;
    let mut snapshots = Vec::new();
    for job in store.list_jobs().map_err(unreadable)? {
        for name in store.list_snapshots(&job).map_err(unreadable)? {
            let report = check_remote(store, cache, &job, &name, &objects, read_data);
            tracing::info!(destination = %d.name, "checked {job}/{name}: {} problems", report.problems.len());
            snapshots.push(to_api(report));
        }
    }
    let ok = snapshots.iter().all(|s| s.ok);
    Ok(DestinationCheck { destination: d.name.clone(), read_data, snapshots, ok })
}

fn to_api(r: FsCheck) -> SnapshotCheck {
    SnapshotCheck {
        job: r.job,
        snapshot: r.snapshot,
        // fs says "unknown" when the manifest does not read.
        structure: Structure::parse(&r.structure),
        ok: r.ok,
        entries_checked: r.entries_checked,
        bytes_read: r.bytes_read,
        problems: r.problems.into_iter().map(|p| CheckProblem { path: p.path, message: p.message }).collect(),
    }
}
