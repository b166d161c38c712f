//! Route handlers of accounts (list, show, edit, forget) and of the
//! assignment of databases to accounts.

use axum::Json;
use axum::extract::{Path, State};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::handlers::on_catalog;
use super::json::Body;
use crate::accounts;
use crate::model::{Account, AccountPatch, DatabaseAssignment, ForgetReport, ForgetRequest};

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
        if let Some(p) = patch.priority {
            s.catalog.set_account_priority(&name, crate::jobs::check_priority(p)?)?;
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
        let report = accounts::forget(&s.catalog, &s.runner, &name, req.force)?;
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
