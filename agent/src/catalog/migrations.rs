//! Versioned schema migrations; `PRAGMA user_version` is the number applied.

use rusqlite::Connection;

use super::{CatalogError, Result};

/// Each entry moves the schema one version up. Never edit a released entry:
/// add a new one.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE destinations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    options TEXT NOT NULL,
    disk_limit INTEGER NOT NULL DEFAULT 0,
    hidden INTEGER NOT NULL DEFAULT 0,
    readonly INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    usage INTEGER, free INTEGER, total INTEGER, usage_updated TEXT,
    created TEXT NOT NULL
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    sources TEXT NOT NULL,
    excludes TEXT NOT NULL,
    structure TEXT NOT NULL,
    one_file_system INTEGER NOT NULL,
    retry_failed INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL
);
CREATE TABLE job_destinations (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    destination_id TEXT NOT NULL REFERENCES destinations(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (job_id, destination_id)
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    job_name TEXT NOT NULL,
    state TEXT NOT NULL,
    trigger TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    message TEXT,
    stats TEXT NOT NULL DEFAULT '{}',
    destinations TEXT NOT NULL DEFAULT '[]',
    errors TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX runs_by_job ON runs(job_name, id);
CREATE INDEX runs_by_state ON runs(state, id);
CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY,
    destination_id TEXT NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    job_name TEXT NOT NULL,
    name TEXT NOT NULL,
    structure TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    files_added INTEGER NOT NULL,
    bytes_added INTEGER NOT NULL,
    partial INTEGER NOT NULL,
    run_id INTEGER,
    deleting INTEGER NOT NULL DEFAULT 0,
    UNIQUE (destination_id, job_name, name)
);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
",
    "
ALTER TABLE jobs ADD COLUMN time TEXT NOT NULL DEFAULT '00:00';
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 50;
ALTER TABLE jobs ADD COLUMN monitor_notran TEXT;
ALTER TABLE jobs ADD COLUMN monitor_ranfor TEXT;
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    spec TEXT NOT NULL,
    retain INTEGER NOT NULL,
    next_run TEXT,
    UNIQUE (job_id, spec)
);
ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE snapshots ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE snapshots ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    level TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    created TEXT NOT NULL,
    acked_at TEXT
);
CREATE INDEX alerts_open ON alerts(acked_at, kind, subject);
",
    // Caches are keyed by an id generated here, not by the marker's id a
    // destination supplies; rows from before get theirs in `fill_cache_ids`.
    "
ALTER TABLE destinations ADD COLUMN cache_id TEXT;
",
    // The completion order of a job's snapshots (the manifest's `sequence`):
    // names and end times come from a clock that can step.
    "
ALTER TABLE snapshots ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
",
    // Notification integrations and their outbox: a notification is queued
    // in the transaction that raises its alert, so none is lost to a crash.
    "
ALTER TABLE alerts ADD COLUMN job TEXT;
ALTER TABLE alerts ADD COLUMN destination TEXT;
ALTER TABLE alerts ADD COLUMN run_id INTEGER;
CREATE TABLE notifiers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    levels TEXT NOT NULL,
    digest_at TEXT NOT NULL,
    retries INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    last_digest TEXT,
    created TEXT NOT NULL
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    notifier_id INTEGER NOT NULL REFERENCES notifiers(id) ON DELETE CASCADE,
    alert_id INTEGER REFERENCES alerts(id) ON DELETE SET NULL,
    what TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,

    last_error TEXT,
    answer TEXT,
    created TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX deliveries_due ON deliveries(state, next_at);
CREATE INDEX deliveries_by_notifier ON deliveries(notifier_id, id);
",
    // Hooks and a ping URL per job; what each run's hooks did.
    "
ALTER TABLE jobs ADD COLUMN hooks TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN ping_url TEXT;
ALTER TABLE runs ADD COLUMN hooks TEXT NOT NULL DEFAULT '[]';
",
    // Scheduled integrity checks of destinations, and the reports of checks.
    "
ALTER TABLE destinations ADD COLUMN check_schedule TEXT;
ALTER TABLE destinations ADD COLUMN check_time TEXT NOT NULL DEFAULT '03:00';
ALTER TABLE destinations ADD COLUMN check_read_data INTEGER NOT NULL DEFAULT 0;
ALTER TABLE destinations ADD COLUMN check_next TEXT;
ALTER TABLE destinations ADD COLUMN check_last TEXT;
CREATE TABLE checks (
    id INTEGER PRIMARY KEY,
    destination_id TEXT NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    finished TEXT NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX checks_by_destination ON checks(destination_id, id);
",
    // Database servers whose databases jobs dump.
    "
CREATE TABLE database_servers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    created TEXT NOT NULL
);
",
    // The databases a job dumps into its snapshots.
    "
ALTER TABLE jobs ADD COLUMN databases TEXT NOT NULL DEFAULT '{}';
",
    // Restores and the other queued tasks.
    "
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    summary TEXT NOT NULL,
    request TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    bytes_done INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    message TEXT
);
CREATE INDEX tasks_by_state ON tasks(state, id);
",
    // Accounts jobs: which users they back up, the accounts the agent has
    // seen (priority, when one went missing), databases assigned to accounts.
    "
ALTER TABLE jobs ADD COLUMN accounts TEXT NOT NULL DEFAULT '{}';
CREATE TABLE accounts (
    name TEXT PRIMARY KEY,
    priority INTEGER NOT NULL DEFAULT 50,
    gone_since TEXT
);
CREATE TABLE database_assignments (
    server TEXT NOT NULL,
    database TEXT NOT NULL,
    account TEXT NOT NULL,
    PRIMARY KEY (server, database)
);
",
    // What restores must accept, and the permissions they give.
    "
CREATE TABLE restore_conditions (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE permission_rules (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL
);
CREATE TABLE downloads (
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    account TEXT,
    snapshot_id INTEGER NOT NULL,
    created TEXT NOT NULL
);
",
    // Queue priority groups of accounts.
    "
CREATE TABLE priority_groups (
    name TEXT PRIMARY KEY,
    priority INTEGER NOT NULL
);
ALTER TABLE accounts ADD COLUMN priority_group TEXT;
",
];

/// Applies the migrations not applied yet, each in its own transaction.
/// A catalog that a newer build migrated further is refused: this build's
/// statements would run against a schema they do not know.
pub(super) fn apply(conn: &Connection) -> Result<()> {
    let done: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if done > known || done < 0 {
        return Err(CatalogError::Newer { found: done, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1))?;
    }
    Ok(fill_cache_ids(conn)?)
}

/// Gives every destination without one a cache id: its own id when that is a
/// UUID (so its cache, kept under that name until now, stays), else a new one.
fn fill_cache_ids(conn: &Connection) -> rusqlite::Result<()> {
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM destinations WHERE cache_id IS NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        let cache_id =
            if hindsight_fs::check_destination_id(&id).is_ok() { id.clone() } else { uuid::Uuid::new_v4().to_string() };
        conn.execute("UPDATE destinations SET cache_id = ?2 WHERE id = ?1", [&id, &cache_id])?;
    }
    Ok(())
}
