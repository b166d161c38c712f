//! Alerts in the catalog, and the notifications each new one queues.

use rusqlite::{OptionalExtension, Row, params};

use super::columns::{named, parsed, parsed_opt};
use super::{Catalog, CatalogError, Result};
use crate::model::{Alert, AlertId, AlertKind, AlertLevel, AlertMessage, DeliveryState, Frequency, Levels, RunId};

const COLUMNS: &str = "id, level, kind, subject, job, destination, run_id, message, created, acked_at";

fn map(r: &Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert {
        id: AlertId(r.get(0)?),
        level: named(r, 1, AlertLevel::parse)?,
        kind: named(r, 2, AlertKind::parse)?,
        subject: r.get(3)?,
        job: r.get(4)?,
        destination: r.get(5)?,
        run: r.get::<_, Option<i64>>(6)?.map(RunId),
        message: r.get(7)?,
        created: parsed(r, 8)?,
        acked_at: parsed_opt(r, 9)?,
    })
}

/// An alert to raise.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// How serious.
    pub level: AlertLevel,
    /// What about.
    pub kind: AlertKind,
    /// One open alert per kind and subject (a job, destination or integration name).
    pub subject: String,
    /// One line for humans.
    pub message: String,
    /// The job it concerns.
    pub job: Option<String>,
    /// The destination it concerns.
    pub destination: Option<String>,
    /// The run it concerns.
    pub run: Option<RunId>,
}

impl NewAlert {
    /// An alert about `subject`, concerning no job, destination or run yet.
    pub fn new(level: AlertLevel, kind: AlertKind, subject: &str, message: impl Into<String>) -> Self {
        NewAlert {
            level,
            kind,
            subject: subject.to_string(),
            message: message.into(),
            job: None,
            destination: None,
            run: None,
        }
    }

    /// The job it concerns.
    pub fn job(mut self, job: &str) -> Self {
        self.job = Some(job.to_string());
        self
    }

    /// The destination it concerns.
    pub fn destination(mut self, destination: &str) -> Self {
        self.destination = Some(destination.to_string());
        self
    }

    /// The run it concerns.
    pub fn run(mut self, run: RunId) -> Self {
        self.run = Some(run);
        self
    }
}

impl Catalog {
    /// Raises an alert unless one of the same kind and subject is still open
    /// (a condition that persists is one alert, not one per check), and queues
    /// its notification for every enabled integration that takes its level, in
    /// the same transaction. An integration never hears of its own failure to
    /// deliver (that would loop). Returns the new alert's id, if one was raised.
    pub fn raise_alert(&self, a: &NewAlert, host: &str) -> Result<Option<AlertId>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let open: Option<i64> = tx
            .query_row(
                "SELECT id FROM alerts WHERE kind = ?1 AND subject = ?2 AND acked_at IS NULL",
                params![a.kind.as_str(), a.subject],
                |r| r.get(0),
            )
            .optional()?;
        if open.is_some() {
            return Ok(None);
        }
        let now = jiff::Timestamp::now();
        tx.execute(
            "INSERT INTO alerts (level, kind, subject, job, destination, run_id, message, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                a.level.as_str(),
                a.kind.as_str(),
                a.subject,
                a.job,
                a.destination,
                a.run.map(|r| r.0),
                a.message,
                now.to_string()
            ],
        )?;
        let id = AlertId(tx.last_insert_rowid());
        let body = super::json(&AlertMessage {
            id,
            level: a.level,
            kind: a.kind,
            job: a.job.clone(),
            destination: a.destination.clone(),
            run: a.run,
            message: a.message.clone(),
            time: now,
            host: host.to_string(),
        });
        let receivers: Vec<(i64, String, String)> = tx
            .prepare("SELECT id, name, levels FROM notifiers WHERE disabled = 0")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (notifier, name, levels) in receivers {
            if a.kind == AlertKind::NotifyFailed && a.subject == name {
                continue;
            }
            let levels: Levels = super::from_json(&levels, "notifier levels")?;
            let state = match levels.of(a.level) {
                None => continue,
                Some(Frequency::Realtime) => DeliveryState::Pending,
                Some(Frequency::Digest) => DeliveryState::Waiting,
            };
            tx.execute(
                "INSERT INTO deliveries (notifier_id, alert_id, what, body, state, next_at, created) \
                 VALUES (?1, ?2, 'alert', ?3, ?4, ?5, ?6)",
                params![notifier, id.0, body, state.as_str(), now.as_millisecond(), now.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(Some(id))
    }

    /// Acknowledges the open alert of `kind` about `subject`, if there is one
    /// (the condition it reported is over); returns whether there was.
    pub fn resolve_alert(&self, kind: AlertKind, subject: &str) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE alerts SET acked_at = ?3 WHERE kind = ?1 AND subject = ?2 AND acked_at IS NULL",
            params![kind.as_str(), subject, super::now()],
        )?;
        Ok(n > 0)
    }

    /// Alerts, newest first: open ones only unless `all`.
    pub fn alerts(&self, all: bool) -> Result<Vec<Alert>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare(&format!("SELECT {COLUMNS} FROM alerts WHERE ?1 OR acked_at IS NULL ORDER BY id DESC"))?;
        Ok(stmt.query_map([all], map)?.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Acknowledges an alert.
    pub fn ack_alert(&self, id: AlertId) -> Result<Alert> {
        let conn = self.conn();
        conn.execute("UPDATE alerts SET acked_at = coalesce(acked_at, ?2) WHERE id = ?1", params![id.0, super::now()])?;
        conn.query_row(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"), [id.0], map)
            .optional()?
            .ok_or_else(|| CatalogError::NotFound(format!("no alert with id {id}")))
    }

    /// Forgets acknowledged alerts raised before `before` (RFC 3339); returns how many.
    pub fn prune_alerts(&self, before: jiff::Timestamp) -> Result<usize> {
        Ok(self
            .conn()
            .execute("DELETE FROM alerts WHERE acked_at IS NOT NULL AND created < ?1", [before.to_string()])?)
    }
}
