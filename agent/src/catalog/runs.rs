//! Runs in the catalog: the queue and the history.

use rusqlite::{OptionalExtension, Row, params};

use super::{Catalog, CatalogError, Result, from_json, json};
use crate::backup::{Counters, FileError};
use crate::model::{Run, RunDestination, RunState};

const COLUMNS: &str = "id, job_name, state, trigger, queued_at, started_at, finished_at, message, stats, \
    destinations, errors";

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
}

fn map(r: &Row<'_>) -> rusqlite::Result<(Run, String, String, String)> {
    let state: String = r.get(2)?;
    Ok((
        Run {
            id: r.get(0)?,
            job: r.get(1)?,
            state: RunState::parse(&state).unwrap_or(RunState::Failed),
            trigger: r.get(3)?,
            queued_at: r.get(4)?,
            started_at: r.get(5)?,
            finished_at: r.get(6)?,
            message: r.get(7)?,
            stats: Counters::default(),
            current_path: None,
            destinations: Vec::new(),
            errors: Vec::new(),
        },
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn finish(raw: (Run, String, String, String)) -> Result<Run> {
    let (mut run, stats, dests, errors) = raw;
    run.stats = from_json(&stats, "run stats")?;
    run.destinations = from_json(&dests, "run destinations")?;
    run.errors = from_json(&errors, "run errors")?;
    Ok(run)
}

impl Catalog {
    /// Queues a run of a job; returns its id.
    pub fn queue_run(&self, job_id: i64, job_name: &str, trigger: &str) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO runs (job_id, job_name, state, trigger, queued_at, stats) VALUES (?1, ?2, 'queued', ?3, ?4, ?5)",
            params![job_id, job_name, trigger, super::now(), json(&Counters::default())],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The run with this id.
    pub fn run(&self, id: i64) -> Result<Run> {
        let conn = self.conn();
        let raw = conn.query_row(&format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"), [id], map).optional()?;
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
    pub fn start_run(&self, id: i64) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE runs SET state = 'running', started_at = ?2 WHERE id = ?1 AND state = 'queued'",
            params![id, super::now()],
        )?;
        Ok(n == 1)
    }

    /// Stores a run's progress or outcome; a final state also sets its end time.
    pub fn update_run(&self, id: i64, u: &RunUpdate) -> Result<()> {
        let finished = u.state.is_final().then(super::now);
        self.conn().execute(
            "UPDATE runs SET state = ?2, message = ?3, stats = ?4, destinations = ?5, errors = ?6, \
             finished_at = coalesce(?7, finished_at) WHERE id = ?1",
            params![id, u.state.as_str(), u.message, json(&u.stats), json(&u.destinations), json(&u.errors), finished],
        )?;
        Ok(())
    }

    /// Cancels a queued run; false when it was not queued.
    pub fn cancel_queued_run(&self, id: i64) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE runs SET state = 'cancelled', finished_at = ?2, message = 'cancelled before it started' \
             WHERE id = ?1 AND state = 'queued'",
            params![id, super::now()],
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
