//! Orphans and the right to be forgotten.
//!
//! An account whose user no longer exists (the user database says so: an
//! NSS failure concludes nothing) is an orphan: each of its snapshots is
//! deleted once older than `orphan_ttl` days. Once the user has been gone
//! for `forget_ttl` days, or when `hindsight account forget` asks, every
//! record of the account goes: its snapshots on every destination (locked
//! ones too), its outcomes and file errors in run records, its alerts, the
//! tasks that restored from its snapshots, its database assignments.

use std::sync::Arc;

use hindsight_api::{ForgetReport, JobKind, RunId, RunState, SnapshotId};
use jiff::{SignedDuration, Timestamp};

use super::system::{Lookup, lookup};
use crate::catalog::{Catalog, is_account_dir};
use crate::error::AgentError;
use crate::runner::Runner;

/// Forgets `account`: deletes every snapshot and record of it. A user that
/// still exists is refused unless `force`; so is an account while a run of
/// an accounts job (other than `current`, the run that asks) or a task
/// reading its snapshots is queued or running.
pub(crate) fn forget(
    catalog: &Arc<Catalog>,
    runner: &Runner,
    account: &str,
    force: bool,
    current: Option<RunId>,
) -> Result<ForgetReport, AgentError> {
    hindsight_fs::check_account_name(account).map_err(AgentError::invalid)?;
    if !force {
        match lookup(account) {
            Lookup::Exists(_) => {
                return Err(AgentError::conflict(format!(
                    "account {account} still exists on this system: remove the user first, or pass --force \
                     to delete its backups anyway"
                )));
            }
            Lookup::Unknown(why) => {
                return Err(AgentError::conflict(format!(
                    "cannot tell whether account {account} exists ({why}): nothing was deleted"
                )));
            }
            Lookup::Gone => {}
        }
    }
    let accounts_jobs: Vec<String> =
        catalog.jobs()?.into_iter().filter(|j| j.kind == JobKind::Accounts).map(|j| j.name).collect();
    let active = runner.active_runs()?;
    if let Some(r) = active.iter().find(|r| accounts_jobs.contains(&r.job) && Some(r.id) != current) {
        return Err(AgentError::conflict(format!(
            "run {} of accounts job {} is {}: forget the account once it has ended",
            r.id,
            r.job,
            r.state.as_str()
        )));
    }
    let snaps: Vec<_> =
        catalog.snapshots(None, None)?.into_iter().filter(|s| is_account_dir(&s.job, account)).collect();
    let ids: Vec<i64> = snaps.iter().map(|s| s.id.0).collect();
    let busy = catalog.tasks(u32::MAX)?.into_iter().find(|t| {
        matches!(t.state, RunState::Queued | RunState::Running)
            && t.request.snapshots().iter().any(|s| ids.contains(&s.0))
    });
    if let Some(t) = busy {
        return Err(AgentError::conflict(format!(
            "task {} reads a snapshot of account {account}: cancel it or wait for it first",
            t.id
        )));
    }
    let mut report = ForgetReport { account: account.to_string(), ..Default::default() };
    for s in &snaps {
        let shown = format!("{}/{}/{}", s.destination, s.job, s.name);
        let deleted = catalog
            .set_snapshot_locked(s.id, false)
            .map_err(AgentError::from)
            .and_then(|()| crate::snapshots::delete(catalog, runner.deleter(), s.id));
        match deleted {
            Ok(_) => report.snapshots.push(shown),
            Err(e) => report.failed.push(format!("{shown}: {}", e.message)),
        }
    }
    let records = catalog.forget_account_records(account, &ids)?;
    report.runs = records.runs;
    report.alerts = records.alerts;
    report.tasks = records.tasks;
    report.assignments = records.assignments;
    tracing::info!(
        "account {account} forgotten: {} snapshot(s) deleted, {} could not be; {} run record(s), {} alert(s), \
         {} task(s), {} database assignment(s) removed",
        report.snapshots.len(),
        report.failed.len(),
        report.runs,
        report.alerts,
        report.tasks,
        report.assignments
    );
    Ok(report)
}

/// `ttl` days before `now` (none when `ttl` is 0: off).
fn cutoff(now: Timestamp, ttl: u32) -> Option<Timestamp> {
    (ttl > 0).then(|| now - SignedDuration::from_hours(i64::from(ttl) * 24))
}

/// Applies `orphan_ttl` and `forget_ttl` to the accounts that have
/// snapshots or were seen gone (`current`: the run ending, when a run asks);
/// returns how many snapshots it deleted and how many accounts it forgot.
pub(crate) fn sweep(
    catalog: &Arc<Catalog>,
    runner: &Runner,
    now: Timestamp,
    current: Option<RunId>,
) -> Result<(usize, usize), AgentError> {
    let settings = catalog.settings()?;
    let snaps = catalog.snapshots(None, None)?;
    let mut names: Vec<String> =
        snaps.iter().filter_map(|s| hindsight_fs::split_job_dir(&s.job).1.map(str::to_string)).collect();
    names.extend(catalog.account_rows()?.into_iter().filter(|r| r.gone_since.is_some()).map(|r| r.name));
    names.sort();
    names.dedup();
    let (mut deleted, mut forgotten) = (0, 0);
    for name in names {
        match lookup(&name) {
            Lookup::Exists(_) => {
                catalog.note_account_presence(&name, true, now)?;
                continue;
            }
            Lookup::Unknown(why) => {
                tracing::warn!("orphan check of account {name} skipped: {why}");
                continue;
            }
            Lookup::Gone => catalog.note_account_presence(&name, false, now)?,
        }
        let gone_since = catalog.account_row(&name)?.and_then(|r| r.gone_since);
        if gone_since.zip(cutoff(now, settings.forget_ttl)).is_some_and(|(gone, cut)| gone <= cut) {
            match forget(catalog, runner, &name, false, current) {
                Ok(_) => forgotten += 1,
                Err(e) => tracing::warn!("forget_ttl: account {name}: {}", e.message),
            }
            continue;
        }
        let Some(cut) = cutoff(now, settings.orphan_ttl) else { continue };
        for s in snaps.iter().filter(|s| is_account_dir(&s.job, &name) && !s.locked && s.finished < cut) {
            match crate::snapshots::delete(catalog, runner.deleter(), s.id) {
                Ok(_) => {
                    deleted += 1;
                    tracing::info!(
                        "orphan_ttl: deleting snapshot {} ({}/{}) of account {name}, which no longer exists",
                        s.id,
                        s.job,
                        s.name
                    );
                }
                Err(e) => tracing::warn!("orphan_ttl: deleting snapshot {}: {}", SnapshotId(s.id.0), e.message),
            }
        }
    }
    Ok((deleted, forgotten))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_of_zero_is_off_and_days_count_back_from_now() {
        let now: Timestamp = "2026-12-08T00:00:00Z".parse().expect("time");
        assert_eq!(cutoff(now, 0), None);
        assert_eq!(cutoff(now, 2), Some("2026-12-06T00:00:00Z".parse().expect("time")));
    }
}
