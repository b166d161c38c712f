//! Route handlers of accounts (list, show, edit, forget) and of the
//! assignment of databases to accounts.

use axum::Json;
use axum::extract::{Path, State};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::handlers::on_catalog;
use super::json::Body;
use crate::accounts;
use crate::model::{Account, AccountPatch, DatabaseAssignment, ForgetReport, ForgetRequest, PriorityGroup};

pub(super) async fn list_accounts(State(s): State<AppState>) -> ApiResult<Json<Vec<Account>>> {
    on_catalog(s, |s| Ok(Json(accounts::list(&s.catalog)?))).await
}

pub(super) async fn show_account(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Account>> {
    on_catalog(s, move |s| Ok(Json(accounts::show(&s.catalog, &name)?))).await
}

pub(super) async fn edit_account(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(patch): Body<AccountPatch>,
) -> ApiResult<Json<Account>> {
    on_catalog(s, move |s| {
        hindsight_fs::check_account_name(&name).map_err(ApiError::bad_request)?;
        match patch.priority_group.as_deref() {
            Some("") => s.catalog.set_account_group(&name, None)?,
            Some(g) => {
                if !s.catalog.priority_groups()?.iter().any(|x| x.name == g) {
                    return Err(ApiError::not_found(format!(
                        "no priority group named {g}; add it with `hindsight priority-group add`"
                    )));
                }
                s.catalog.set_account_group(&name, Some(g))?;
            }
            None => {}
        }
        Ok(Json(accounts::show(&s.catalog, &name)?))
    })
    .await
}

pub(super) async fn forget_account(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(req): Body<ForgetRequest>,
) -> ApiResult<Json<ForgetReport>> {
    on_catalog(s, move |s| {
        let report = accounts::forget(&s.catalog, &s.runner, &name, req.force, None)?;
        let touched: Vec<String> =
            report.snapshots.iter().filter_map(|p| p.split('/').next()).map(str::to_string).collect();
        s.runner.refresh_mount(&touched);
        Ok(Json(report))
    })
    .await
}

pub(super) async fn list_assignments(State(s): State<AppState>) -> ApiResult<Json<Vec<DatabaseAssignment>>> {
    on_catalog(s, |s| Ok(Json(s.catalog.database_assignments()?))).await
}

pub(super) async fn set_assignment(
    State(s): State<AppState>,
    Body(a): Body<DatabaseAssignment>,
) -> ApiResult<Json<Vec<DatabaseAssignment>>> {
    on_catalog(s, move |s| {
        s.catalog.database_server(&a.server)?;
        if a.database.is_empty() || a.database.contains('\0') {
            return Err(ApiError::bad_request(format!("{:?} is not a database name", a.database)));
        }
        if let Some(account) = &a.account {
            hindsight_fs::check_account_name(account).map_err(ApiError::bad_request)?;
        }
        if !s.catalog.set_database_assignment(&a)? {
            return Err(ApiError::not_found(format!(
                "database {} of server {} is assigned to no account",
                a.database, a.server
            )));
        }
        Ok(Json(s.catalog.database_assignments()?))
    })
    .await
}

pub(super) async fn list_groups(State(s): State<AppState>) -> ApiResult<Json<Vec<PriorityGroup>>> {
    on_catalog(s, |s| Ok(Json(s.catalog.priority_groups()?))).await
}

pub(super) async fn set_group(
    State(s): State<AppState>,
    Body(g): Body<PriorityGroup>,
) -> ApiResult<Json<Vec<PriorityGroup>>> {
    on_catalog(s, move |s| {
        hindsight_fs::check_name("priority group", &g.name).map_err(ApiError::bad_request)?;
        let priority = crate::jobs::check_priority(i64::from(g.priority))?;
        s.catalog.set_priority_group(&PriorityGroup { name: g.name, priority })?;
        Ok(Json(s.catalog.priority_groups()?))
    })
    .await
}

pub(super) async fn remove_group(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    on_catalog(s, move |s| {
        if s.catalog.settings()?.default_priority_group == name {
            return Err(ApiError::conflict(format!(
                "priority group {name} is the default_priority_group: set another first"
            )));
        }
        s.catalog.remove_priority_group(&name)?;
        Ok(axum::http::StatusCode::NO_CONTENT)
    })
    .await
}
