//! Route handlers of file history: versions of a path, find, and the diff
//! of two snapshots, answered from the indexes.

use axum::Json;
use axum::extract::{Query, State};

use super::AppState;
use super::error::ApiResult;
use super::handlers::on_catalog;
use crate::history;
use crate::model::{DiffQuery, FileVersion, FindMatch, FindQuery, SnapshotDiff, VersionsQuery};

pub(super) async fn versions(
    State(s): State<AppState>,
    Query(q): Query<VersionsQuery>,
) -> ApiResult<Json<Vec<FileVersion>>> {
    on_catalog(s, move |s| Ok(Json(history::versions(&s.catalog, &cache(s), &q)?))).await
}

pub(super) async fn find(State(s): State<AppState>, Query(q): Query<FindQuery>) -> ApiResult<Json<Vec<FindMatch>>> {
    on_catalog(s, move |s| Ok(Json(history::find(&s.catalog, &cache(s), &q)?))).await
}

pub(super) async fn diff(State(s): State<AppState>, Query(q): Query<DiffQuery>) -> ApiResult<Json<SnapshotDiff>> {
    on_catalog(s, move |s| Ok(Json(history::diff(&s.catalog, &cache(s), &q)?))).await
}

/// The agent's cache of remote destinations' indexes.
fn cache(s: &AppState) -> std::path::PathBuf {
    s.state_dir.join(crate::config::CACHE_DIR)
}
