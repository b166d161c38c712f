//! Route handlers: short adapters from HTTP to the catalog, the runner and the rules.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::json::{Body, parse_id};
use crate::model::*;
use crate::{destinations, jobs, secrets, snapshots};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Runs `f` on a blocking thread. Every catalog call is synchronous SQLite
/// behind one mutex, and a slow statement (the database locked by a
/// backup's write, a large listing) must not hold the runtime's few worker
/// threads, which the API, the dispatcher and the scheduler share.
pub(super) async fn on_catalog<T: Send + 'static>(
    s: AppState,
    f: impl FnOnce(&AppState) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&s)).await?
}

pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("no such API route")
}

pub(super) async fn status(State(s): State<AppState>) -> ApiResult<Json<Status>> {
    on_catalog(s, |s| {
        Ok(Json(Status {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: s.started.elapsed().as_secs(),
            state_dir: s.state_dir.to_string_lossy().into_owned(),
            jobs: s.catalog.jobs()?,
            active_runs: s.runner.active_runs()?,
            destinations: s.catalog.destinations()?.iter().map(DestinationRecord::view).collect(),
            alerts: s.catalog.alerts(false)?,
            timezone: {
                let tz = crate::settings::schedule_time_zone(&s.catalog.settings()?);
                tz.iana_name().unwrap_or("local").to_string()
            },
        }))
    })
    .await
}

pub(super) async fn destination_types() -> Json<Vec<DestinationType>> {
    Json(destinations::types())
}

pub(super) async fn list_destinations(State(s): State<AppState>) -> ApiResult<Json<Vec<Destination>>> {
    on_catalog(s, |s| Ok(Json(s.catalog.destinations()?.iter().map(DestinationRecord::view).collect()))).await
}

pub(super) async fn show_destination(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Destination>> {
    on_catalog(s, move |s| Ok(Json(s.catalog.destination(&name)?.view()))).await
}

pub(super) async fn add_destination(
    State(s): State<AppState>,
    Body(new): Body<NewDestination>,
) -> ApiResult<(StatusCode, Json<Destination>)> {
    let catalog = s.catalog.clone();
    let d = blocking(move || {
        if catalog.destination(&new.name).is_ok() {
            return Err(ApiError::conflict(format!("a destination named {} already exists", new.name)));
        }
        let (d, found) = destinations::create(catalog.master_key(), new)?;
        if let Some(other) = catalog.destinations()?.into_iter().find(|o| o.id == d.id) {
            return Err(ApiError::conflict(format!(
                "that location holds destination {} of this agent, known as {}",
                d.id, other.name
            )));
        }
        catalog.insert_destination(&d)?;
        if let Some(u) = &d.disk_usage {
            catalog.set_disk_usage(&d.id, u)?;
        }
        catalog.replace_snapshots(&d.id, &found)?;
        Ok(catalog.destination(&d.name)?.view())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(d)))
}

pub(super) async fn edit_destination(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(patch): Body<DestinationPatch>,
) -> ApiResult<Json<Destination>> {
    let catalog = s.catalog.clone();
    blocking(move || {
        let mut d = catalog.destination(&name)?;
        let moved = patch.options.as_ref().is_some_and(|o| destinations::merge_options(&mut d, o.clone()));
        // Sealed values are opaque text to the checks, which only test secrets for presence.
        destinations::check_options(d.kind, &d.options)?;
        if let Some(l) = patch.disk_limit {
            d.disk_limit = destinations::check_disk_limit(l)?;
        }
        d.hidden = patch.hidden.unwrap_or(d.hidden);
        d.readonly = patch.readonly.unwrap_or(d.readonly);
        d.disabled = patch.disabled.unwrap_or(d.disabled);
        d.check = destinations::check_plan(d.check, patch.check_schedule, patch.check_time, patch.check_read_data)?;
        let t = destinations::open(catalog.master_key(), &d)?;
        let usage = destinations::validate(&d, &t)?;
        let id = d.id.clone();
        destinations::prepare_root(&mut d, &t, patch.force)?;
        if d.id != id {
            return Err(ApiError::validation_failed(format!(
                "{} holds another destination ({}); add it as a destination of its own instead",
                t.describe(),
                d.id
            )));
        }
        catalog.update_destination(&d)?;
        if let Some(u) = &usage {
            catalog.set_disk_usage(&d.id, u)?;
        }
        if moved {
            catalog.replace_snapshots(&d.id, &destinations::scan(&d, &t)?)?;
        }
        Ok(Json(catalog.destination(&d.name)?.view()))
    })
    .await
}

pub(super) async fn remove_destination(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    on_catalog(s, move |s| Ok(s.catalog.delete_destination(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn validate_destination(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Destination>> {
    let catalog = s.catalog.clone();
    blocking(move || {
        let d = catalog.destination(&name)?;
        let t = destinations::open(catalog.master_key(), &d)?;
        let usage = destinations::validate(&d, &t)?;
        destinations::check_marker(&d, &t)?;
        if let Some(u) = &usage {
            catalog.set_disk_usage(&d.id, u)?;
        }
        Ok(Json(catalog.destination(&name)?.view()))
    })
    .await
}

pub(super) async fn reindex_destination(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Snapshot>>> {
    let catalog = s.catalog.clone();
    blocking(move || {
        let d = catalog.destination(&name)?;
        destinations::reindex(&catalog, &d)?;
        Ok(Json(catalog.snapshots(None, Some(&d.name))?))
    })
    .await
}

pub(super) async fn export_key(State(s): State<AppState>) -> Json<MasterKeyExport> {
    // Logged without the key: who exported it and when is worth knowing.
    tracing::warn!("the master key was exported through the API");
    Json(MasterKeyExport {
        key: s.catalog.master_key().to_hex(),
        path: s.state_dir.join(secrets::KEY_FILE).to_string_lossy().into_owned(),
    })
}

pub(super) async fn check_destination(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(req): Body<CheckRequest>,
) -> ApiResult<Json<DestinationCheck>> {
    let (catalog, cache) = (s.catalog.clone(), s.state_dir.join(crate::config::CACHE_DIR));
    blocking(move || {
        let d = catalog.destination(&name)?;
        let read_data = match req.read_data_percent {
            Some(p @ 1..=100) => hindsight_fs::check::ReadData::share(p),
            Some(p) => return Err(ApiError::bad_request(format!("read_data_percent must be 1 to 100, not {p}"))),
            None => req.read_data.into(),
        };
        Ok(Json(crate::check::check_destination(&catalog, &cache, &d, read_data, Trigger::Manual)?))
    })
    .await
}

pub(super) async fn last_check(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<DestinationCheck>> {
    on_catalog(s, move |s| {
        let d = s.catalog.destination(&name)?;
        s.catalog
            .last_check(&d.id)?
            .map(Json)
            .ok_or_else(|| ApiError::not_found(format!("destination {name} has not been checked yet")))
    })
    .await
}

pub(super) async fn list_jobs(State(s): State<AppState>) -> ApiResult<Json<Vec<Job>>> {
    on_catalog(s, |s| Ok(Json(s.catalog.jobs()?))).await
}

pub(super) async fn show_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    on_catalog(s, move |s| Ok(Json(s.catalog.job(&name)?))).await
}

pub(super) async fn add_job(State(s): State<AppState>, Body(new): Body<NewJob>) -> ApiResult<(StatusCode, Json<Job>)> {
    let catalog = s.catalog.clone();
    let scheduler = s.scheduler.clone();
    let job = blocking(move || {
        if catalog.job(&new.name).is_ok() {
            return Err(ApiError::conflict(format!("a job named {} already exists", new.name)));
        }
        let job = jobs::build(new)?;
        jobs::check_job(&catalog, &job)?;
        jobs::check_dependencies(&catalog, &job.name, &job.schedules)?;
        let job = catalog.insert_job(&job)?;
        scheduler.replan_job(&job.name)?;
        Ok(catalog.job(&job.name)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(job)))
}

pub(super) async fn edit_job(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(patch): Body<JobPatch>,
) -> ApiResult<Json<Job>> {
    let catalog = s.catalog.clone();
    let scheduler = s.scheduler.clone();
    blocking(move || {
        let mut job = catalog.job(&name)?;
        if let Some(sch) = patch.schedules {
            job.schedules = jobs::check_schedules(&sch)?;
            jobs::check_dependencies(&catalog, &job.name, &job.schedules)?;
        }
        if let Some(t) = patch.time {
            job.time = jobs::check_time(&t)?;
        }
        if let Some(p) = patch.priority {
            job.priority = jobs::check_priority(p)?;
        }
        if let Some(h) = patch.hooks {
            job.hooks = jobs::check_hooks(h)?;
        }
        if let Some(u) = patch.ping_url {
            job.ping_url = jobs::check_ping_url(Some(u))?;
        }
        if let Some(m) = patch.monitor {
            job.monitor = jobs::check_monitor(m)?;
        }
        if let Some(src) = patch.sources {
            job.sources = jobs::check_sources(&src)?;
        }
        if let Some(ex) = patch.excludes {
            jobs::check_excludes(&ex)?;
            job.excludes = ex;
        }
        if let Some(d) = patch.destinations {
            job.destinations = jobs::check_destinations(&d)?;
        }
        if let Some(st) = patch.structure {
            job.structure = st;
        }
        if let Some(n) = patch.retry_failed {
            job.retry_failed = jobs::check_retry(n)?;
        }
        if let Some(d) = patch.databases {
            job.databases = jobs::check_databases(d)?;
        }
        if let Some(a) = patch.accounts {
            job.accounts = jobs::check_accounts(a)?;
        }
        job.one_file_system = patch.one_file_system.unwrap_or(job.one_file_system);
        job.disabled = patch.disabled.unwrap_or(job.disabled);
        jobs::check_job(&catalog, &job)?;
        catalog.update_job(&job)?;
        scheduler.replan_job(&job.name)?;
        Ok(Json(catalog.job(&job.name)?))
    })
    .await
}

async fn set_disabled(s: AppState, name: String, disabled: bool) -> ApiResult<Json<Job>> {
    on_catalog(s, move |s| {
        let mut job = s.catalog.job(&name)?;
        job.disabled = disabled;
        Ok(Json(s.catalog.update_job(&job)?))
    })
    .await
}

pub(super) async fn enable_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    set_disabled(s, name, false).await
}

pub(super) async fn disable_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    set_disabled(s, name, true).await
}

pub(super) async fn remove_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    on_catalog(s, move |s| {
        let job = s.catalog.job(&name)?;
        if s.runner.active_runs()?.iter().any(|r| r.job == job.name) {
            return Err(ApiError::conflict(format!("job {name} has a queued or running run; cancel it first")));
        }
        if let Some(other) = s.catalog.jobs()?.iter().find(|j| jobs::upstream(&j.schedules).contains(&job.name)) {
            return Err(ApiError::conflict(format!(
                "job {} has a schedule after:{name}; change that schedule first",
                other.name
            )));
        }
        Ok(s.catalog.delete_job(&name)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn run_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<(StatusCode, Json<Run>)> {
    on_catalog(s, move |s| {
        let job = s.catalog.job(&name)?;
        Ok((StatusCode::ACCEPTED, Json(s.runner.queue(&job)?)))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct RunQuery {
    job: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn list_runs(State(s): State<AppState>, Query(q): Query<RunQuery>) -> ApiResult<Json<Vec<Run>>> {
    on_catalog(s, move |s| {
        let mut runs = s.catalog.runs(q.job.as_deref(), q.limit.unwrap_or(100))?;
        for r in runs.iter_mut().filter(|r| r.state == RunState::Running) {
            *r = s.runner.run(r.id)?;
        }
        Ok(Json(runs))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct RunWait {
    /// Answer once the run has ended or after this many milliseconds (at most 30000).
    wait_ms: Option<u64>,
}

pub(super) async fn show_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RunWait>,
) -> ApiResult<Json<Run>> {
    let id: RunId = parse_id(&id)?;
    match q.wait_ms {
        Some(ms) => Ok(Json(s.runner.wait(id, std::time::Duration::from_millis(ms.min(30_000))).await?)),
        None => on_catalog(s, move |s| Ok(Json(s.runner.run(id)?))).await,
    }
}

pub(super) async fn cancel_run(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Run>> {
    let id: RunId = parse_id(&id)?;
    on_catalog(s, move |s| Ok(Json(s.runner.cancel(id)?))).await
}

#[derive(Deserialize)]
pub(super) struct SnapshotQuery {
    job: Option<String>,
    destination: Option<String>,
}

pub(super) async fn list_snapshots(
    State(s): State<AppState>,
    Query(q): Query<SnapshotQuery>,
) -> ApiResult<Json<Vec<Snapshot>>> {
    on_catalog(s, move |s| {
        if let Some(d) = &q.destination {
            s.catalog.destination(d)?;
        }
        Ok(Json(s.catalog.snapshots(q.job.as_deref(), q.destination.as_deref())?))
    })
    .await
}

pub(super) async fn show_snapshot(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Snapshot>> {
    let id: SnapshotId = parse_id(&id)?;
    on_catalog(s, move |s| {
        let mut snap = s.catalog.snapshot(id)?.snapshot;
        snap.error = snap.path.as_deref().and_then(|dir| snapshots::health(std::path::Path::new(dir)));
        Ok(Json(snap))
    })
    .await
}

pub(super) async fn delete_snapshot(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id: SnapshotId = parse_id(&id)?;
    let catalog = s.catalog.clone();
    let runner = s.runner.clone();
    blocking(move || {
        let destination = snapshots::delete(&catalog, runner.deleter(), id)?;
        runner.refresh_mount(&[destination]);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_locked(s: AppState, id: String, locked: bool) -> ApiResult<Json<Snapshot>> {
    let id: SnapshotId = parse_id(&id)?;
    on_catalog(s, move |s| {
        s.catalog.set_snapshot_locked(id, locked)?;
        Ok(Json(s.catalog.snapshot(id)?.snapshot))
    })
    .await
}

pub(super) async fn lock_snapshot(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Snapshot>> {
    set_locked(s, id, true).await
}

pub(super) async fn unlock_snapshot(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Snapshot>> {
    set_locked(s, id, false).await
}

pub(super) async fn show_settings(State(s): State<AppState>) -> ApiResult<Json<Settings>> {
    on_catalog(s, |s| Ok(Json(s.catalog.settings()?))).await
}

pub(super) async fn set_setting(
    State(s): State<AppState>,
    Path(key): Path<String>,
    Body(v): Body<SettingValue>,
) -> ApiResult<Json<Settings>> {
    let value = crate::settings::check(&key, &v.value)?;
    on_catalog(s, move |s| {
        s.catalog.set_setting(&key, &value)?;
        if key == "timezone" {
            s.scheduler.replan_all()?;
        }
        // A higher concurrency may let queued runs start now.
        s.runner.wake();
        Ok(Json(s.catalog.settings()?))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct AlertQuery {
    /// Acknowledged ones too.
    all: Option<bool>,
}

pub(super) async fn list_alerts(State(s): State<AppState>, Query(q): Query<AlertQuery>) -> ApiResult<Json<Vec<Alert>>> {
    on_catalog(s, move |s| Ok(Json(s.catalog.alerts(q.all.unwrap_or(false))?))).await
}

pub(super) async fn ack_alert(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Alert>> {
    let id: AlertId = parse_id(&id)?;
    on_catalog(s, move |s| Ok(Json(s.catalog.ack_alert(id)?))).await
}
