//! `destination check`: the integrity of every complete snapshot of a
//! destination, asked for or by the destination's check schedule. Every
//! report is kept in the catalog (`destination check NAME --last`), and damage
//! raises a critical alert naming the snapshots and files.

use hindsight_fs::check::{Checker, ReadData, SnapshotCheck as FsCheck};

use crate::error::AgentError;
use std::path::Path;

use hindsight_fs::remote::RemoteStore;
use hindsight_fs::remote::{check_remote, list_objects};

use crate::catalog::{Catalog, NewAlert};
use crate::destinations::open;
use crate::model::{
    AlertKind, AlertLevel, CheckProblem, DestinationCheck, DestinationRecord, SnapshotCheck, Structure, Trigger,
};
use hindsight_fs::Destination;

/// Checks every complete snapshot of `d`, job by job, oldest first, and
/// records the report (a damaged one raises an alert). Works on read-only
/// and disabled destinations: nothing is written to them. Blocking.
pub(crate) fn check_destination(
    catalog: &Catalog,
    cache_dir: &Path,
    d: &DestinationRecord,
    read_data: ReadData,
    trigger: Trigger,
) -> Result<DestinationCheck, AgentError> {
    let started = jiff::Timestamp::now();
    let snapshots = match open(catalog.master_key(), d)? {
        Destination::Remote(store) => {
            let cache = d.cache_dir(cache_dir).map_err(AgentError::internal)?;
            check_remote_destination(&store, &cache, d, read_data)?
        }
        Destination::Local(root) => check_local_destination(&root, d, read_data)?,
    };
    let report = DestinationCheck {
        destination: d.name.clone(),
        read_data: read_data.percent() > 0,
        read_data_percent: read_data.percent(),
        trigger,
        started: Some(started),
        finished: Some(jiff::Timestamp::now()),
        ok: snapshots.iter().all(|s| s.ok),
        snapshots,
    };
    catalog.record_check(&d.id, &report)?;
    if !report.ok {
        crate::notify::raise(catalog, damage_alert(&report).destination(&d.name));
    }
    Ok(report)
}

/// Most damaged files an alert names.
const NAMED_IN_ALERT: usize = 5;

/// The alert of a check that found damage: the snapshots, then the first files.
fn damage_alert(r: &DestinationCheck) -> NewAlert {
    let bad: Vec<&SnapshotCheck> = r.snapshots.iter().filter(|s| !s.ok).collect();
    let names: Vec<String> = bad.iter().map(|s| format!("{}/{}", s.job, s.snapshot)).collect();
    let files: Vec<String> = bad
        .iter()
        .flat_map(|s| s.problems.iter().map(move |p| (s, p)))
        .take(NAMED_IN_ALERT)
        .map(|(s, p)| format!("{}/{}: {}: {}", s.job, s.snapshot, p.path.as_deref().unwrap_or("(snapshot)"), p.message))
        .collect();
    let problems: usize = bad.iter().map(|s| s.problems.len()).sum();
    let text = format!(
        "the check of destination {} found {problems} problems in {} snapshots ({}): {}; see hindsight destination check {} --last",
        r.destination,
        bad.len(),
        names.join(", "),
        files.join("; "),
        r.destination
    );
    NewAlert::new(AlertLevel::Critical, AlertKind::CheckFailed, &r.destination, text)
}

/// The local flavour: the tree or archive of each snapshot against its index.
fn check_local_destination(
    root: &hindsight_fs::DestinationRoot,
    d: &DestinationRecord,
    read_data: ReadData,
) -> Result<Vec<SnapshotCheck>, AgentError> {
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
    Ok(snapshots)
}

/// The remote flavour: every snapshot's manifest and index, and every file's
/// stored body against one listing of the stored objects.
fn check_remote_destination(
    store: &RemoteStore,
    cache: &Path,
    d: &DestinationRecord,
    read_data: ReadData,
) -> Result<Vec<SnapshotCheck>, AgentError> {
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
    Ok(snapshots)
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
