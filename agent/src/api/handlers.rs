//! Route handlers: short adapters from HTTP to the catalog, the runner and the rules.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::json::{Body, parse_id};
use crate::model::*;
use crate::{destinations, jobs, snapshots};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await?
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such API route")
}

pub async fn status(State(s): State<AppState>) -> ApiResult<Json<Status>> {
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: s.started.elapsed().as_secs(),
        state_dir: s.state_dir.to_string_lossy().into_owned(),
        jobs: s.catalog.jobs()?,
        active_runs: s.runner.active_runs()?,
        destinations: s.catalog.destinations()?,
    }))
}

pub async fn destination_types() -> Json<Vec<DestinationType>> {
    Json(destinations::types())
}

pub async fn list_destinations(State(s): State<AppState>) -> ApiResult<Json<Vec<Destination>>> {
    Ok(Json(s.catalog.destinations()?))
}

pub async fn show_destination(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Destination>> {
    Ok(Json(s.catalog.destination(&name)?))
}

pub async fn add_destination(
    State(s): State<AppState>,
    Body(new): Body<NewDestination>,
) -> ApiResult<(StatusCode, Json<Destination>)> {
    let catalog = s.catalog.clone();
    let d = blocking(move || {
        if catalog.destination(&new.name).is_ok() {
            return Err(ApiError::conflict(format!("a destination named {} already exists", new.name)));
        }
        let (d, found) = destinations::create(new)?;
        if let Some(other) = catalog.destinations()?.into_iter().find(|o| o.id == d.id) {
            return Err(ApiError::conflict(format!(
                "that path holds destination {} of this agent, known as {}",
                d.id, other.name
            )));
        }
        catalog.insert_destination(&d)?;
        if let Some(u) = &d.disk_usage {
            catalog.set_disk_usage(&d.id, u)?;
        }
        catalog.replace_snapshots(&d.id, &found)?;
        Ok(catalog.destination(&d.name)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(d)))
}

pub async fn edit_destination(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(patch): Body<DestinationPatch>,
) -> ApiResult<Json<Destination>> {
    let catalog = s.catalog.clone();
    blocking(move || {
        let mut d = catalog.destination(&name)?;
        let old_root = destinations::local_root(&d)?.path().to_path_buf();
        if let Some(opts) = patch.options {
            for (k, v) in opts {
                d.options.insert(k, v);
            }
        }
        destinations::check_options(&d.kind, &d.options)?;
        if let Some(l) = patch.disk_limit {
            d.disk_limit = destinations::check_disk_limit(l)?;
        }
        d.hidden = patch.hidden.unwrap_or(d.hidden);
        d.readonly = patch.readonly.unwrap_or(d.readonly);
        d.disabled = patch.disabled.unwrap_or(d.disabled);
        let usage = destinations::validate(&d)?;
        let new_root = destinations::local_root(&d)?.path().to_path_buf();
        let id = d.id.clone();
        destinations::prepare_root(&mut d, patch.force)?;
        if d.id != id {
            return Err(ApiError::validation_failed(format!(
                "{} holds another destination ({}); add it as a destination of its own instead",
                new_root.display(),
                d.id
            )));
        }
        catalog.update_destination(&d)?;
        catalog.set_disk_usage(&d.id, &usage)?;
        if new_root != old_root {
            catalog.replace_snapshots(&d.id, &destinations::scan(&d)?)?;
        }
        Ok(Json(catalog.destination(&d.name)?))
    })
    .await
}

pub async fn remove_destination(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    s.catalog.delete_destination(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn validate_destination(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Destination>> {
    let catalog = s.catalog.clone();
    blocking(move || {
        let d = catalog.destination(&name)?;
        let usage = destinations::validate(&d)?;
        let root = destinations::local_root(&d)?;
        let marker = root.require_marker().map_err(|e| ApiError::validation_failed(e.to_string()))?;
        if marker.destination_id != d.id {
            return Err(ApiError::validation_failed(format!(
                "{} now holds another destination ({})",
                root.path().display(),
                marker.destination_id
            )));
        }
        catalog.set_disk_usage(&d.id, &usage)?;
        Ok(Json(catalog.destination(&name)?))
    })
    .await
}

pub async fn list_jobs(State(s): State<AppState>) -> ApiResult<Json<Vec<Job>>> {
    Ok(Json(s.catalog.jobs()?))
}

pub async fn show_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    Ok(Json(s.catalog.job(&name)?))
}

pub async fn add_job(State(s): State<AppState>, Body(new): Body<NewJob>) -> ApiResult<(StatusCode, Json<Job>)> {
    let catalog = s.catalog.clone();
    let job = blocking(move || {
        if catalog.job(&new.name).is_ok() {
            return Err(ApiError::conflict(format!("a job named {} already exists", new.name)));
        }
        let job = jobs::build(new)?;
        Ok(catalog.insert_job(&job)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(job)))
}

pub async fn edit_job(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(patch): Body<JobPatch>,
) -> ApiResult<Json<Job>> {
    let catalog = s.catalog.clone();
    blocking(move || {
        let mut job = catalog.job(&name)?;
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
            job.structure = jobs::check_structure(&st)?;
        }
        if let Some(n) = patch.retry_failed {
            job.retry_failed = jobs::check_retry(n)?;
        }
        job.one_file_system = patch.one_file_system.unwrap_or(job.one_file_system);
        job.disabled = patch.disabled.unwrap_or(job.disabled);
        Ok(Json(catalog.update_job(&job)?))
    })
    .await
}

async fn set_disabled(s: AppState, name: String, disabled: bool) -> ApiResult<Json<Job>> {
    let mut job = s.catalog.job(&name)?;
    job.disabled = disabled;
    Ok(Json(s.catalog.update_job(&job)?))
}

pub async fn enable_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    set_disabled(s, name, false).await
}

pub async fn disable_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Job>> {
    set_disabled(s, name, true).await
}

pub async fn remove_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let job = s.catalog.job(&name)?;
    if s.runner.active_runs()?.iter().any(|r| r.job == job.name) {
        return Err(ApiError::conflict(format!("job {name} has a queued or running run; cancel it first")));
    }
    s.catalog.delete_job(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn run_job(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<(StatusCode, Json<Run>)> {
    let job = s.catalog.job(&name)?;
    Ok((StatusCode::ACCEPTED, Json(s.runner.queue(&job, "manual")?)))
}

#[derive(Deserialize)]
pub struct RunQuery {
    job: Option<String>,
    limit: Option<u32>,
}

pub async fn list_runs(State(s): State<AppState>, Query(q): Query<RunQuery>) -> ApiResult<Json<Vec<Run>>> {
    let mut runs = s.catalog.runs(q.job.as_deref(), q.limit.unwrap_or(100))?;
    for r in runs.iter_mut().filter(|r| r.state == RunState::Running) {
        *r = s.runner.run(r.id)?;
    }
    Ok(Json(runs))
}

#[derive(Deserialize)]
pub struct RunWait {
    /// Answer once the run has ended or after this many milliseconds (at most 30000).
    wait_ms: Option<u64>,
}

pub async fn show_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RunWait>,
) -> ApiResult<Json<Run>> {
    let id = parse_id("run", &id)?;
    match q.wait_ms {
        Some(ms) => Ok(Json(s.runner.wait(id, std::time::Duration::from_millis(ms.min(30_000))).await?)),
        None => Ok(Json(s.runner.run(id)?)),
    }
}

pub async fn cancel_run(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Run>> {
    Ok(Json(s.runner.cancel(parse_id("run", &id)?)?))
}

#[derive(Deserialize)]
pub struct SnapshotQuery {
    job: Option<String>,
    destination: Option<String>,
}

pub async fn list_snapshots(
    State(s): State<AppState>,
    Query(q): Query<SnapshotQuery>,
) -> ApiResult<Json<Vec<Snapshot>>> {
    if let Some(d) = &q.destination {
        s.catalog.destination(d)?;
    }
    Ok(Json(s.catalog.snapshots(q.job.as_deref(), q.destination.as_deref())?))
}

pub async fn show_snapshot(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Snapshot>> {
    let mut snap = s.catalog.snapshot(parse_id("snapshot", &id)?)?.snapshot;
    let dir = snap.path.clone();
    snap.error = match dir {
        Some(dir) => blocking(move || Ok(snapshots::health(std::path::Path::new(&dir)))).await?,
        None => None,
    };
    Ok(Json(snap))
}

pub async fn delete_snapshot(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = parse_id("snapshot", &id)?;
    let catalog = s.catalog.clone();
    blocking(move || snapshots::delete(&catalog, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
