//! Runs in the catalog: the queue and the history.

use rusqlite::{OptionalExtension, Row, params};

use jiff::Timestamp;

use super::columns::{named, parsed, parsed_opt};
use super::{Catalog, CatalogError, Result, from_json, json};
use crate::model::{Counters, FileError, HookResult, JobId, Run, RunDestination, RunId, RunState, Trigger};

const COLUMNS: &str = "id, job_name, state, trigger, queued_at, started_at, finished_at, message, stats, \
    destinations, errors, tags, hooks";

/// The fields of a run that change while it works.
#[derive(Debug, Clone)]
pub struct RunUpdate {
    /// New state.
    pub state: RunState,
    /// Summary message.
    pub message: Option<String>,
    /// Counters.
    pub stats: Counters,
    /// Per destination outcome.
    pub destinations: Vec<RunDestination>,
    /// Per-file errors.
    pub errors: Vec<FileError>,
    /// The hooks run so far.
    pub hooks: Vec<HookResult>,
}

fn map(r: &Row<'_>) -> rusqlite::Result<(Run, String, String, String, String, String)> {
    Ok((
        Run {
            id: RunId(r.get(0)?),
            job: r.get(1)?,
            state: named(r, 2, RunState::parse)?,
            trigger: named(r, 3, Trigger::parse)?,
            tags: Vec::new(),
            queued_at: parsed(r, 4)?,
            started_at: parsed_opt(r, 5)?,
            finished_at: parsed_opt(r, 6)?,
            message: r.get(7)?,
            stats: Counters::default(),
            current_path: None,
            destinations: Vec::new(),
            errors: Vec::new(),
            hooks: Vec::new(),
        },
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn finish(raw: (Run, String, String, String, String, String)) -> Result<Run> {
    let (mut run, stats, dests, errors, tags, hooks) = raw;
    run.hooks = from_json(&hooks, "run hooks")?;
    run.tags = from_json(&tags, "run tags")?;
    run.stats = from_json(&stats, "run stats")?;
    run.destinations = from_json(&dests, "run destinations")?;
    run.errors = from_json(&errors, "run errors")?;
    Ok(run)
}

impl Catalog {
    /// Queues a run of a job serving the schedules `tags`; returns its id.
    pub fn queue_run(&self, job_id: JobId, job_name: &str, trigger: Trigger, tags: &[String]) -> Result<RunId> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO runs (job_id, job_name, state, trigger, queued_at, stats, tags) \
             VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6)",
            params![job_id.0, job_name, trigger.as_str(), super::now(), json(&Counters::default()), json(&tags)],
        )?;
        Ok(RunId(conn.last_insert_rowid()))
    }

    /// Adds schedule tags to a run still queued; false when it is no longer queued.
    pub fn add_run_tags(&self, id: RunId, tags: &[String]) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<String> = tx
            .query_row("SELECT tags FROM runs WHERE id = ?1 AND state = 'queued'", [id.0], |r| r.get(0))
            .optional()?;
        let Some(current) = current else { return Ok(false) };
        let mut all: Vec<String> = from_json(&current, "run tags")?;
        for t in tags {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
        tx.execute("UPDATE runs SET tags = ?2, trigger = 'schedule' WHERE id = ?1", params![id.0, json(&all)])?;
        tx.commit()?;
        Ok(true)
    }

    /// Queued runs in the order they should start: by their job's priority
    /// group (lower first), then oldest first.
    pub fn queued_runs(&self) -> Result<Vec<Run>> {
        let conn = self.conn();
        let cols: Vec<String> = COLUMNS.split(", ").map(|c| format!("r.{}", c.trim())).collect();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM runs r LEFT JOIN jobs j ON j.id = r.job_id WHERE r.state = 'queued' \
             ORDER BY coalesce(j.priority, 50), r.id",
            cols.join(", ")
        ))?;
        let rows = stmt.query_map([], map)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    /// Forgets ended runs that finished before `before`; returns how many.
    pub fn prune_runs(&self, before: Timestamp) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM runs WHERE state NOT IN ('queued', 'running') AND finished_at < ?1",
            [before.to_string()],
        )?)
    }

    /// When the job last completed a run, else when it was created.
    pub fn last_success(&self, job: &str) -> Result<Option<Timestamp>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT coalesce((SELECT max(finished_at) FROM runs WHERE job_name = ?1 AND state = 'completed'), \
                 (SELECT created FROM jobs WHERE name = ?1))",
                [job],
                |r| parsed_opt(r, 0),
            )
            .optional()?
            .flatten())
    }

    /// The run with this id.
    pub fn run(&self, id: RunId) -> Result<Run> {
        let conn = self.conn();
        let raw = conn.query_row(&format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"), [id.0], map).optional()?;
        finish(raw.ok_or_else(|| CatalogError::NotFound(format!("no run with id {id}")))?)
    }

    /// Runs, newest first, optionally of one job.
    pub fn runs(&self, job: Option<&str>, limit: u32) -> Result<Vec<Run>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM runs WHERE (?1 IS NULL OR job_name = ?1) ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![job, limit], map)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    /// Runs in a state, oldest first.
    pub fn runs_in_state(&self, state: RunState) -> Result<Vec<Run>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM runs WHERE state = ?1 ORDER BY id"))?;
        let rows = stmt.query_map([state.as_str()], map)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    /// Marks a queued run as running; false when it is no longer queued.
    pub fn start_run(&self, id: RunId) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE runs SET state = 'running', started_at = ?2 WHERE id = ?1 AND state = 'queued'",
            params![id.0, super::now()],
        )?;
        Ok(n == 1)
    }

    /// Stores a run's progress or outcome; a final state also sets its end time.
    pub fn update_run(&self, id: RunId, u: &RunUpdate) -> Result<()> {
        let finished = u.state.is_final().then(super::now);
        self.conn().execute(
            "UPDATE runs SET state = ?2, message = ?3, stats = ?4, destinations = ?5, errors = ?6, \
             finished_at = coalesce(?7, finished_at), hooks = ?8 WHERE id = ?1",
            params![
                id.0,
                u.state.as_str(),
                u.message,
                json(&u.stats),
                json(&u.destinations),
                json(&u.errors),
                finished,
                json(&u.hooks)
            ],
        )?;
        Ok(())
    }

    /// Cancels a queued run; false when it was not queued.
    pub fn cancel_queued_run(&self, id: RunId) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE runs SET state = 'cancelled', finished_at = ?2, message = 'cancelled before it started' \
             WHERE id = ?1 AND state = 'queued'",
            params![id.0, super::now()],
        )?;
        Ok(n == 1)
    }

    /// At start-up: runs left `running` by a crash are failed (their partial
    /// snapshots are resumed by the next run).
    pub fn fail_interrupted_runs(&self) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE runs SET state = 'failed', finished_at = ?1, \
             message = 'the agent stopped while this run was running; the next run resumes it' \
             WHERE state = 'running'",
            [super::now()],
        )?)
    }
}
