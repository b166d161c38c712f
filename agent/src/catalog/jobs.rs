//! Jobs in the catalog.

use rusqlite::{OptionalExtension, Row, params};

use jiff::Timestamp;

use super::columns::{named, parsed_opt};
use super::{Catalog, CatalogError, Result, from_json, json};
use crate::model::{Job, JobId, JobKind, JobSchedule, Monitor, RunId, RunState, RunSummary, Structure};

const COLUMNS: &str = "j.id, j.name, j.type, j.sources, j.excludes, j.structure, j.one_file_system, \
    j.retry_failed, j.disabled, \
    (SELECT json_group_array(d.name) FROM (SELECT d.name FROM job_destinations jd \
        JOIN destinations d ON d.id = jd.destination_id WHERE jd.job_id = j.id ORDER BY jd.position) d), \
    (SELECT r.id FROM runs r WHERE r.job_id = j.id ORDER BY r.id DESC LIMIT 1), \
    (SELECT r.state FROM runs r WHERE r.job_id = j.id ORDER BY r.id DESC LIMIT 1), \
    (SELECT r.finished_at FROM runs r WHERE r.job_id = j.id ORDER BY r.id DESC LIMIT 1), \
    j.time, j.priority, j.monitor_notran, j.monitor_ranfor, \
    (SELECT json_group_array(json_object('spec', s.spec, 'retain', s.retain, 'next_run', s.next_run)) \
        FROM (SELECT * FROM schedules s WHERE s.job_id = j.id ORDER BY s.position) s), \
    j.hooks, j.ping_url, j.databases, j.accounts";

struct Raw {
    job: Job,
    sources: String,
    excludes: String,
    destinations: String,
    schedules: String,
    hooks: String,
    databases: String,
    accounts: String,
}

fn map(r: &Row<'_>) -> rusqlite::Result<Raw> {
    let last_run = match r.get::<_, Option<i64>>(10)? {
        Some(id) => {
            Some(RunSummary { id: RunId(id), state: named(r, 11, RunState::parse)?, finished_at: parsed_opt(r, 12)? })
        }
        None => None,
    };
    Ok(Raw {
        job: Job {
            id: JobId(r.get(0)?),
            name: r.get(1)?,
            kind: named(r, 2, JobKind::parse)?,
            sources: Vec::new(),
            excludes: Vec::new(),
            destinations: Vec::new(),
            structure: named(r, 5, Structure::parse)?,
            one_file_system: r.get(6)?,
            retry_failed: r.get(7)?,
            disabled: r.get(8)?,
            schedules: Vec::new(),
            time: r.get(13)?,
            priority: r.get(14)?,
            monitor: Monitor { notran: r.get(15)?, ranfor: r.get(16)? },
            hooks: Default::default(),
            ping_url: r.get(19)?,
            databases: Default::default(),
            accounts: Default::default(),
            next_run: None,
            last_run,
        },
        sources: r.get(3)?,
        excludes: r.get(4)?,
        destinations: r.get::<_, Option<String>>(9)?.unwrap_or_else(|| "[]".into()),
        schedules: r.get::<_, Option<String>>(17)?.unwrap_or_else(|| "[]".into()),
        hooks: r.get(18)?,
        databases: r.get(20)?,
        accounts: r.get(21)?,
    })
}

fn finish(raw: Raw) -> Result<Job> {
    let mut job = raw.job;
    job.sources = from_json(&raw.sources, "job sources")?;
    job.excludes = from_json(&raw.excludes, "job excludes")?;
    job.destinations = from_json(&raw.destinations, "job destinations")?;
    job.schedules = from_json::<Vec<JobSchedule>>(&raw.schedules, "job schedules")?;
    job.hooks = from_json(&raw.hooks, "job hooks")?;
    job.databases = from_json(&raw.databases, "job databases")?;
    job.accounts = from_json(&raw.accounts, "job accounts")?;
    job.next_run = job.schedules.iter().filter_map(|s| s.next_run).min();
    Ok(job)
}

impl Catalog {
    /// Every job, by name.
    pub fn jobs(&self) -> Result<Vec<Job>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM jobs j ORDER BY j.name"))?;
        let rows = stmt.query_map([], map)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    /// The job called `name`.
    pub fn job(&self, name: &str) -> Result<Job> {
        let conn = self.conn();
        let raw = conn.query_row(&format!("SELECT {COLUMNS} FROM jobs j WHERE j.name = ?1"), [name], map).optional()?;
        finish(raw.ok_or_else(|| CatalogError::NotFound(format!("no job named {name}")))?)
    }

    /// Adds a job; its destinations are given by name and must exist.
    pub fn insert_job(&self, job: &Job) -> Result<Job> {
        {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "INSERT INTO jobs (name, type, sources, excludes, structure, one_file_system, retry_failed, \
                 disabled, created, time, priority, monitor_notran, monitor_ranfor, hooks, ping_url, databases, \
                 accounts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
                 ON CONFLICT DO NOTHING",
                params![
                    job.name,
                    job.kind.as_str(),
                    json(&job.sources),
                    json(&job.excludes),
                    job.structure.as_str(),
                    job.one_file_system,
                    job.retry_failed,
                    job.disabled,
                    super::now(),
                    job.time,
                    job.priority,
                    job.monitor.notran,
                    job.monitor.ranfor,
                    json(&job.hooks),
                    job.ping_url,
                    json(&job.databases),
                    json(&job.accounts)
                ],
            )?;
            if n == 0 {
                return Err(CatalogError::Conflict(format!("a job named {} already exists", job.name)));
            }
            let id = tx.last_insert_rowid();
            set_destinations(&tx, id, &job.destinations)?;
            set_schedules(&tx, id, &job.schedules)?;
            tx.commit()?;
        }
        self.job(&job.name)
    }

    /// Stores a job's editable fields.
    pub fn update_job(&self, job: &Job) -> Result<Job> {
        {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE jobs SET sources = ?2, excludes = ?3, structure = ?4, one_file_system = ?5, \
                 retry_failed = ?6, disabled = ?7, time = ?8, priority = ?9, monitor_notran = ?10, \
                 monitor_ranfor = ?11, hooks = ?12, ping_url = ?13, databases = ?14, accounts = ?15 WHERE id = ?1",
                params![
                    job.id.0,
                    json(&job.sources),
                    json(&job.excludes),
                    job.structure.as_str(),
                    job.one_file_system,
                    job.retry_failed,
                    job.disabled,
                    job.time,
                    job.priority,
                    job.monitor.notran,
                    job.monitor.ranfor,
                    json(&job.hooks),
                    job.ping_url,
                    json(&job.databases),
                    json(&job.accounts)
                ],
            )?;
            tx.execute("DELETE FROM job_destinations WHERE job_id = ?1", [job.id.0])?;
            set_destinations(&tx, job.id.0, &job.destinations)?;
            set_schedules(&tx, job.id.0, &job.schedules)?;
            tx.commit()?;
        }
        self.job(&job.name)
    }

    /// Sets when one schedule of a job is next due (none: not by the clock).
    pub fn set_next_run(&self, job: &str, spec: &str, next_run: Option<Timestamp>) -> Result<()> {
        self.conn().execute(
            "UPDATE schedules SET next_run = ?3 WHERE spec = ?2 AND job_id = (SELECT id FROM jobs WHERE name = ?1)",
            params![job, spec, next_run.map(|t| t.to_string())],
        )?;
        Ok(())
    }

    /// Removes a job (its runs stay in the history, its snapshots on the destinations).
    pub fn delete_job(&self, name: &str) -> Result<()> {
        let n = self.conn().execute("DELETE FROM jobs WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(CatalogError::NotFound(format!("no job named {name}")));
        }
        Ok(())
    }
}

/// Replaces a job's schedules, keeping the next run of a spec that stays
/// unless the caller computed a new one.
fn set_schedules(tx: &rusqlite::Transaction<'_>, job_id: i64, schedules: &[JobSchedule]) -> Result<()> {
    let specs: Vec<&str> = schedules.iter().map(|s| s.spec.as_str()).collect();
    tx.execute(
        "DELETE FROM schedules WHERE job_id = ?1 AND spec NOT IN (SELECT value FROM json_each(?2))",
        params![job_id, json(&specs)],
    )?;
    for (pos, s) in schedules.iter().enumerate() {
        tx.execute(
            "INSERT INTO schedules (job_id, position, spec, retain, next_run) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (job_id, spec) DO UPDATE SET position = excluded.position, retain = excluded.retain, \
             next_run = coalesce(excluded.next_run, next_run)",
            params![job_id, pos as i64, s.spec, s.retain, s.next_run.map(|t| t.to_string())],
        )?;
    }
    Ok(())
}

fn set_destinations(tx: &rusqlite::Transaction<'_>, job_id: i64, names: &[String]) -> Result<()> {
    for (pos, name) in names.iter().enumerate() {
        let id: String = tx
            .query_row("SELECT id FROM destinations WHERE name = ?1", [name], |r| r.get(0))
            .optional()?
            .ok_or_else(|| CatalogError::NotFound(format!("no destination named {name}")))?;
        tx.execute(
            "INSERT INTO job_destinations (job_id, destination_id, position) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![job_id, id, pos as i64],
        )?;
    }
    Ok(())
}
