//! Alerts in the catalog.

use rusqlite::{OptionalExtension, Row, params};

use super::columns::{named, parsed, parsed_opt};
use super::{Catalog, CatalogError, Result};
use crate::model::{Alert, AlertId, AlertKind, AlertLevel};

const COLUMNS: &str = "id, level, kind, subject, message, created, acked_at";

fn map(r: &Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert {
        id: AlertId(r.get(0)?),
        level: named(r, 1, AlertLevel::parse)?,
        kind: named(r, 2, AlertKind::parse)?,
        subject: r.get(3)?,
        message: r.get(4)?,
        created: parsed(r, 5)?,
        acked_at: parsed_opt(r, 6)?,
    })
}

impl Catalog {
    /// Raises an alert unless one of the same kind and subject is still open
    /// (a condition that persists is one alert, not one per check). Returns
    /// the new alert's id, if one was raised.
    pub fn raise_alert(
        &self,
        level: AlertLevel,
        kind: AlertKind,
        subject: &str,
        message: &str,
    ) -> Result<Option<AlertId>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let open: Option<i64> = tx
            .query_row(
                "SELECT id FROM alerts WHERE kind = ?1 AND subject = ?2 AND acked_at IS NULL",
                params![kind.as_str(), subject],
                |r| r.get(0),
            )
            .optional()?;
        if open.is_some() {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO alerts (level, kind, subject, message, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![level.as_str(), kind.as_str(), subject, message, super::now()],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Some(AlertId(id)))
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
