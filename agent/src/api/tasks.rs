//! Route handlers of tasks: queue a database or file restore, list, show and cancel tasks.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use super::error::ApiResult;
use super::handlers::on_catalog;
use super::json::Body;
use crate::model::{DatabaseRestore, FileRestore, Task, TaskId};

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
