//! The JSON HTTP API, served on the agent's Unix socket.
//!
//! Routes live under `/v1`. Every error is `{"error": {"code", "message"}}`
//! with status 400 (bad input), 404 (unknown), 409 (conflict) or 422
//! (destination test failed). Handlers that touch the filesystem run on
//! blocking threads.

mod accounts;
mod databases;
pub(crate) mod error;
mod handlers;
mod history;
pub(crate) mod json;
mod notifiers;
mod tasks;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::catalog::Catalog;
use crate::runner::Runner;
use crate::scheduler::Scheduler;
use crate::tasks::Tasks;

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// The run queue.
    pub runner: Arc<Runner>,
    /// The scheduler.
    pub scheduler: Arc<Scheduler>,
    /// The task queue (restores).
    pub tasks: Arc<Tasks>,
    /// When the agent started.
    pub started: Instant,
    /// The state directory.
    pub state_dir: std::path::PathBuf,
}

/// The API's routes.
pub(crate) fn router(state: AppState) -> Router {
    use handlers::*;
    use hindsight_api::routes;
    Router::new()
        .route(routes::STATUS, get(status))
        .route(routes::DESTINATION_TYPES, get(destination_types))
        .route(routes::DESTINATIONS, get(list_destinations).post(add_destination))
        .route(routes::DESTINATION, get(show_destination).patch(edit_destination).delete(remove_destination))
        .route(routes::DESTINATION_VALIDATE, post(validate_destination))
        .route(routes::DESTINATION_CHECK, post(check_destination).get(last_check))
        .route(routes::DESTINATION_REINDEX, post(reindex_destination))
        .route(routes::KEY, get(export_key))
        .route(routes::JOBS, get(list_jobs).post(add_job))
        .route(routes::JOB, get(show_job).patch(edit_job).delete(remove_job))
        .route(routes::JOB_RUN, post(run_job))
        .route(routes::JOB_ENABLE, post(enable_job))
        .route(routes::JOB_DISABLE, post(disable_job))
        .route(routes::RUNS, get(list_runs))
        .route(routes::RUN, get(show_run))
        .route(routes::RUN_CANCEL, post(cancel_run))
        .route(routes::SNAPSHOTS, get(list_snapshots))
        .route(routes::SNAPSHOT, get(show_snapshot).delete(delete_snapshot))
        .route(routes::SNAPSHOT_LOCK, post(lock_snapshot))
        .route(routes::SNAPSHOT_UNLOCK, post(unlock_snapshot))
        .route(routes::SETTINGS, get(show_settings))
        .route(routes::SETTING, put(set_setting))
        .route(routes::ALERTS, get(list_alerts))
        .route(routes::ALERT_ACK, post(ack_alert))
        .route(routes::NOTIFIERS, get(notifiers::list_notifiers).post(notifiers::add_notifier))
        .route(
            routes::NOTIFIER,
            get(notifiers::show_notifier).patch(notifiers::edit_notifier).delete(notifiers::remove_notifier),
        )
        .route(routes::NOTIFIER_TEST, post(notifiers::test_notifier))
        .route(routes::DATABASES, get(databases::list_databases).post(databases::add_database))
        .route(
            routes::DATABASE,
            get(databases::show_database).patch(databases::edit_database).delete(databases::remove_database),
        )
        .route(routes::DATABASE_TEST, post(databases::test_database))
        .route(routes::RESTORE_DATABASE, post(tasks::restore_database))
        .route(routes::RESTORE_FILES, post(tasks::restore_files))
        .route(routes::RESTORE_CONDITIONS, get(tasks::list_conditions).post(tasks::add_condition))
        .route(routes::RESTORE_CONDITION, delete(tasks::remove_condition))
        .route(routes::PERMISSION_RULES, get(tasks::list_rules).post(tasks::add_rule))
        .route(routes::PERMISSION_RULE, delete(tasks::remove_rule))
        .route(routes::DOWNLOADS, get(tasks::list_downloads).post(tasks::add_download))
        .route(routes::DOWNLOAD, delete(tasks::remove_download))
        .route(routes::TASKS, get(tasks::list_tasks))
        .route(routes::TASK, get(tasks::show_task))
        .route(routes::TASK_CANCEL, post(tasks::cancel_task))
        .route(routes::DATABASE_ASSIGNMENTS, get(accounts::list_assignments).post(accounts::set_assignment))
        .route(routes::VERSIONS, get(history::versions))
        .route(routes::FIND, get(history::find))
        .route(routes::DIFF, get(history::diff))
        .route(routes::PRIORITY_GROUPS, get(accounts::list_groups).post(accounts::set_group))
        .route(routes::PRIORITY_GROUP, delete(accounts::remove_group))
        .route(routes::ACCOUNTS, get(accounts::list_accounts))
        .route(routes::ACCOUNT, get(accounts::show_account).patch(accounts::edit_account))
        .route(routes::ACCOUNT_FORGET, post(accounts::forget_account))
        .fallback(not_found)
        .with_state(state)
}
