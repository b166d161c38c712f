//! Route handlers of database servers: add, list, show, edit, remove, and
//! `test`, which connects with the server's own client and lists its databases.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::handlers::on_catalog;
use super::json::Body;
use crate::databases;
use crate::model::{DatabaseServer, DatabaseServerPatch, DatabaseTest};

pub(super) async fn list_databases(State(s): State<AppState>) -> ApiResult<Json<Vec<DatabaseServer>>> {
    on_catalog(s, move |s| Ok(Json(s.catalog.database_servers()?.iter().map(databases::redact).collect()))).await
}

pub(super) async fn show_database(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<DatabaseServer>> {
    on_catalog(s, move |s| Ok(Json(databases::redact(&s.catalog.database_server(&name)?)))).await
}

pub(super) async fn add_database(
    State(s): State<AppState>,
    Body(mut d): Body<DatabaseServer>,
) -> ApiResult<(StatusCode, Json<DatabaseServer>)> {
    on_catalog(s, move |s| {
        databases::check(&d)?;
        databases::seal(s.catalog.master_key(), &mut d);
        s.catalog.add_database_server(&d)?;
        Ok((StatusCode::CREATED, Json(databases::redact(&d))))
    })
    .await
}

pub(super) async fn edit_database(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(patch): Body<DatabaseServerPatch>,
) -> ApiResult<Json<DatabaseServer>> {
    on_catalog(s, move |s| {
        let mut d = databases::patched(s.catalog.database_server(&name)?, patch);
        databases::check(&d)?;
        databases::seal(s.catalog.master_key(), &mut d);
        s.catalog.update_database_server(&d)?;
        Ok(Json(databases::redact(&d)))
    })
    .await
}

pub(super) async fn remove_database(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    on_catalog(s, move |s| {
        let users: Vec<String> = s
            .catalog
            .jobs()?
            .into_iter()
            .filter(|j| j.databases.servers.iter().any(|d| d.server == name))
            .map(|j| j.name)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "database server {name} is dumped by job {}: remove it from the job first",
                users.join(", ")
            )));
        }
        Ok(s.catalog.remove_database_server(&name)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn test_database(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<DatabaseTest>> {
    on_catalog(s, move |s| {
        let d = s.catalog.database_server(&name)?;
        let d = databases::open(s.catalog.master_key(), &d).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Json(databases::test(&d, &s.state_dir, &s.catalog.settings()?)?))
    })
    .await
}
