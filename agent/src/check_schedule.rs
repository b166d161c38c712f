//! Scheduled integrity checks: a destination with a check schedule (the
//! same specs as jobs, at its check time) is checked when it falls due, with
//! the share of file contents it asks for, one destination at a time. A check
//! missed while the agent was down runs once at the next start. A check that
//! cannot run (the destination is unreachable) raises a warning; one that
//! finds damage, a critical alert (`check::check_destination`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hindsight_fs::check::ReadData;
use jiff::Timestamp;

use crate::catalog::{Catalog, NewAlert};
use crate::error::AgentError;
use crate::model::{AlertKind, AlertLevel, DestinationRecord, Trigger};
use crate::schedule::{Clock, Spec, next_after, parse_time};
use crate::shutdown::Shutdown;

/// How often due checks are looked for.
const TICK: Duration = Duration::from_secs(5);

/// Runs due checks until shutdown.
pub(crate) async fn run(catalog: Arc<Catalog>, cache_dir: PathBuf, clock: Arc<dyn Clock>, shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.requested() => return,
        }
        let (c, cache, clock, stop) = (catalog.clone(), cache_dir.clone(), clock.clone(), shutdown.clone());
        match tokio::task::spawn_blocking(move || tick(&c, &cache, clock.as_ref(), &stop)).await {
            Ok(Err(e)) => tracing::error!("scheduled checks: {}", e.message),
            Err(e) => tracing::error!("scheduled checks: {e}"),
            Ok(Ok(())) => {}
        }
    }
}

/// Plans the checks not planned yet and runs those due.
fn tick(
    catalog: &Catalog,
    cache_dir: &std::path::Path,
    clock: &dyn Clock,
    shutdown: &Shutdown,
) -> Result<(), AgentError> {
    let tz = crate::settings::schedule_time_zone(&catalog.settings()?);
    for d in catalog.destinations()? {
        let Some(spec) = d.check.schedule.as_deref().and_then(|s| Spec::parse(s).ok()) else { continue };
        let time = parse_time(&d.check.time).map_err(AgentError::internal)?;
        let now = clock.now();
        let Some(due) = d.check.next else {
            catalog.set_check_next(&d.id, next_after(&spec, time, &tz, now))?;
            continue;
        };
        if due > now || d.disabled || shutdown.is_requested() {
            continue;
        }
        check_now(catalog, cache_dir, &d);
        // From the end of the check: a check longer than its period does not pile up.
        catalog.set_check_next(&d.id, next_after(&spec, time, &tz, clock.now().max(Timestamp::now())))?;
    }
    Ok(())
}

fn check_now(catalog: &Catalog, cache_dir: &std::path::Path, d: &DestinationRecord) {
    let read_data = match d.check.read_data {
        0 => ReadData::NONE,
        p => ReadData::share(p),
    };
    tracing::info!(destination = %d.name, "scheduled check (reading {}% of the file contents)", read_data.percent());
    match crate::check::check_destination(catalog, cache_dir, d, read_data, Trigger::Schedule) {
        Ok(r) => {
            let problems: usize = r.snapshots.iter().map(|s| s.problems.len()).sum();
            tracing::info!(destination = %d.name, "scheduled check: {} snapshots, {problems} problems", r.snapshots.len());
        }
        Err(e) => {
            let text = format!("the scheduled check of destination {} could not run: {}", d.name, e.message);
            crate::notify::raise(
                catalog,
                NewAlert::new(AlertLevel::Warning, AlertKind::CheckFailed, &d.name, text).destination(&d.name),
            );
        }
    }
}
