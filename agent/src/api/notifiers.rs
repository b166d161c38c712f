//! Route handlers of notification integrations: add, list, show, edit,
//! remove, and `test`, which sends a message at once and returns the
//! server's answer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::handlers::on_catalog;
use super::json::Body;
use crate::catalog::Catalog;
use crate::model::{Levels, NewNotifier, Notifier, NotifierConfig, NotifierPatch, NotifierRecord, NotifyTestResult};
use crate::notify;

/// Deliveries `notify show` lists.
const RECENT: u32 = 10;

fn view(catalog: &Catalog, n: &NotifierRecord, recent: u32) -> ApiResult<Notifier> {
    let (pending, last_error, deliveries) = catalog.outbox(n.id, recent)?;
    Ok(n.view(pending, last_error, deliveries))
}

/// The checks every add and edit makes, on the values the integration ends with.
fn check(n: &NotifierConfig) -> ApiResult<()> {
    hindsight_fs::check_name("notification integration", &n.name).map_err(ApiError::bad_request)?;
    notify::check(&n.settings).map_err(ApiError::bad_request)?;
    notify::check_retries(n.retries).map_err(ApiError::bad_request)?;
    notify::digest_time(&n.digest_at).map_err(ApiError::bad_request)?;
    if n.levels.is_empty() {
        return Err(ApiError::bad_request("levels: give at least one level to receive"));
    }
    Ok(())
}

pub(super) async fn list_notifiers(State(s): State<AppState>) -> ApiResult<Json<Vec<Notifier>>> {
    on_catalog(s, move |s| {
        let all = s.catalog.notifiers()?;
        Ok(Json(all.iter().map(|n| view(&s.catalog, n, 0)).collect::<ApiResult<Vec<_>>>()?))
    })
    .await
}

pub(super) async fn show_notifier(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Notifier>> {
    on_catalog(s, move |s| Ok(Json(view(&s.catalog, &s.catalog.notifier(&name)?, RECENT)?))).await
}

pub(super) async fn add_notifier(
    State(s): State<AppState>,
    Body(new): Body<NewNotifier>,
) -> ApiResult<(StatusCode, Json<Notifier>)> {
    on_catalog(s, move |s| {
        let mut n = NotifierConfig {
            name: new.name,
            settings: new.settings,
            levels: new.levels.unwrap_or_else(Levels::default_for_new),
            digest_at: new.digest_at.unwrap_or_else(|| notify::DEFAULT_DIGEST_AT.to_string()),
            retries: new.retries.unwrap_or(notify::DEFAULT_RETRIES),
            disabled: new.disabled,
        };
        check(&n)?;
        notify::seal(s.catalog.master_key(), &mut n.settings);
        s.catalog.add_notifier(&n)?;
        Ok((StatusCode::CREATED, Json(view(&s.catalog, &s.catalog.notifier(&n.name)?, 0)?)))
    })
    .await
}

pub(super) async fn edit_notifier(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(patch): Body<NotifierPatch>,
) -> ApiResult<Json<Notifier>> {
    on_catalog(s, move |s| {
        let record = s.catalog.notifier(&name)?;
        let mut n = record.config.clone();
        if let Some(p) = &patch.settings {
            n.settings = notify::patched(&n.settings, p).map_err(ApiError::bad_request)?;
        }
        n.levels = patch.levels.unwrap_or(n.levels);
        n.digest_at = patch.digest_at.unwrap_or(n.digest_at);
        n.retries = patch.retries.unwrap_or(n.retries);
        n.disabled = patch.disabled.unwrap_or(n.disabled);
        check(&n)?;
        notify::seal(s.catalog.master_key(), &mut n.settings);
        s.catalog.update_notifier(record.id, &n)?;
        Ok(Json(view(&s.catalog, &NotifierRecord { config: n, ..record }, 0)?))
    })
    .await
}

pub(super) async fn remove_notifier(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    on_catalog(s, move |s| Ok(s.catalog.remove_notifier(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn test_notifier(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<NotifyTestResult>> {
    let n = on_catalog(s.clone(), move |s| Ok(s.catalog.notifier(&name)?)).await?.config;
    let settings = notify::open(s.catalog.master_key(), &n.settings).map_err(|e| ApiError::internal(e.to_string()))?;
    match notify::deliver(&settings, &notify::Message::test(&n.name)).await {
        Ok(answer) => Ok(Json(NotifyTestResult { answer })),
        Err(e) => Err(ApiError::validation_failed(format!("notification integration {}: {e}", n.name))),
    }
}
