//! Route handlers of tasks: queue a database or file restore, list, show and
//! cancel tasks; the restore conditions and file permission rules restores obey.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::handlers::on_catalog;
use super::json::Body;
use crate::download;
use crate::model::{
    DatabaseRestore, Download, DownloadRequest, FileRestore, NewRestoreCondition, PermissionRule, RestoreCondition,
    Task, TaskId,
};
use crate::restore_rules;

pub(super) async fn restore_database(
    State(s): State<AppState>,
    Body(r): Body<DatabaseRestore>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    on_catalog(s, move |s| Ok((StatusCode::ACCEPTED, Json(s.tasks.queue_database_restore(r)?)))).await
}

pub(super) async fn restore_files(
    State(s): State<AppState>,
    Body(r): Body<FileRestore>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    on_catalog(s, move |s| Ok((StatusCode::ACCEPTED, Json(s.tasks.queue_file_restore(r)?)))).await
}

/// Query of `GET /v1/tasks`.
#[derive(Deserialize)]
pub(super) struct ListQuery {
    limit: Option<u32>,
}

pub(super) async fn list_tasks(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<Vec<Task>>> {
    on_catalog(s, move |s| Ok(Json(s.catalog.tasks(q.limit.unwrap_or(50))?))).await
}

pub(super) async fn show_task(State(s): State<AppState>, Path(id): Path<TaskId>) -> ApiResult<Json<Task>> {
    on_catalog(s, move |s| Ok(Json(s.catalog.task(id)?))).await
}

pub(super) async fn cancel_task(State(s): State<AppState>, Path(id): Path<TaskId>) -> ApiResult<Json<Task>> {
    on_catalog(s, move |s| Ok(Json(s.tasks.cancel(id)?))).await
}

pub(super) async fn list_conditions(State(s): State<AppState>) -> ApiResult<Json<Vec<RestoreCondition>>> {
    on_catalog(s, |s| Ok(Json(s.catalog.restore_conditions()?))).await
}

pub(super) async fn add_condition(
    State(s): State<AppState>,
    Body(c): Body<NewRestoreCondition>,
) -> ApiResult<(StatusCode, Json<Vec<RestoreCondition>>)> {
    on_catalog(s, move |s| {
        let text = c.text.trim();
        if text.is_empty() || text.contains('\0') {
            return Err(ApiError::bad_request("a restore condition needs a text"));
        }
        s.catalog.add_restore_condition(text)?;
        Ok((StatusCode::CREATED, Json(s.catalog.restore_conditions()?)))
    })
    .await
}

pub(super) async fn remove_condition(State(s): State<AppState>, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    on_catalog(s, move |s| {
        s.catalog.remove_restore_condition(id)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

pub(super) async fn list_rules(State(s): State<AppState>) -> ApiResult<Json<Vec<PermissionRule>>> {
    on_catalog(s, |s| Ok(Json(s.catalog.permission_rules()?))).await
}

pub(super) async fn add_rule(
    State(s): State<AppState>,
    Body(r): Body<PermissionRule>,
) -> ApiResult<(StatusCode, Json<Vec<PermissionRule>>)> {
    on_catalog(s, move |s| {
        s.catalog.add_permission_rule(&restore_rules::check_rule(r)?)?;
        Ok((StatusCode::CREATED, Json(s.catalog.permission_rules()?)))
    })
    .await
}

pub(super) async fn remove_rule(State(s): State<AppState>, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    on_catalog(s, move |s| {
        s.catalog.remove_permission_rule(id)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

pub(super) async fn list_downloads(State(s): State<AppState>) -> ApiResult<Json<Vec<Download>>> {
    on_catalog(s, |s| {
        let settings = s.catalog.settings()?;
        Ok(Json(s.catalog.downloads()?.into_iter().map(|d| download::with_expiry(d, &settings)).collect()))
    })
    .await
}

pub(super) async fn add_download(
    State(s): State<AppState>,
    Body(r): Body<DownloadRequest>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    on_catalog(s, move |s| Ok((StatusCode::ACCEPTED, Json(s.tasks.queue_download(r)?)))).await
}

pub(super) async fn remove_download(State(s): State<AppState>, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    on_catalog(s, move |s| {
        let d = s.catalog.download(id)?;
        download::remove(&s.catalog, &d)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
