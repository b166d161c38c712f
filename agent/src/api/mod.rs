//! The JSON HTTP API, served on the agent's Unix socket.
//!
//! Routes live under `/v1`. Every error is `{"error": {"code", "message"}}`
//! with status 400 (bad input), 404 (unknown), 409 (conflict) or 422
//! (destination test failed). Handlers that touch the filesystem run on
//! blocking threads.

pub mod error;
mod handlers;
pub mod json;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::{get, post, put};

use crate::catalog::Catalog;
use crate::runner::Runner;
use crate::scheduler::Scheduler;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// The run queue.
    pub runner: Arc<Runner>,
    /// The scheduler.
    pub scheduler: Arc<Scheduler>,
    /// When the agent started.
    pub started: Instant,
    /// The state directory.
    pub state_dir: std::path::PathBuf,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    use handlers::*;
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/destination-types", get(destination_types))
        .route("/v1/destinations", get(list_destinations).post(add_destination))
        .route("/v1/destinations/{name}", get(show_destination).patch(edit_destination).delete(remove_destination))
        .route("/v1/destinations/{name}/validate", post(validate_destination))
        .route("/v1/destinations/{name}/check", post(check_destination))
        .route("/v1/destinations/{name}/reindex", post(reindex_destination))
        .route("/v1/key", get(export_key))
        .route("/v1/jobs", get(list_jobs).post(add_job))
        .route("/v1/jobs/{name}", get(show_job).patch(edit_job).delete(remove_job))
        .route("/v1/jobs/{name}/run", post(run_job))
        .route("/v1/jobs/{name}/enable", post(enable_job))
        .route("/v1/jobs/{name}/disable", post(disable_job))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(show_run))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/snapshots", get(list_snapshots))
        .route("/v1/snapshots/{id}", get(show_snapshot).delete(delete_snapshot))
        .route("/v1/snapshots/{id}/lock", post(lock_snapshot))
        .route("/v1/snapshots/{id}/unlock", post(unlock_snapshot))
        .route("/v1/settings", get(show_settings))
        .route("/v1/settings/{key}", put(set_setting))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/{id}/ack", post(ack_alert))
        .fallback(not_found)
        .with_state(state)
}
