//! Notification integrations and their outbox (`deliveries`): one row per
//! notification, from queued to sent or given up, so that nothing is lost
//! when a server is down or the agent restarts.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, params};

use super::columns::{named, parsed, parsed_opt};
use super::{Catalog, CatalogError, Result};
use crate::model::{AlertId, Delivery, DeliveryState, NotifierConfig, NotifierRecord};

const COLUMNS: &str = "id, name, settings, levels, digest_at, retries, disabled, last_digest";

/// A row as stored: settings and levels still JSON text.
struct Raw {
    id: i64,
    name: String,
    settings: String,
    levels: String,
    digest_at: String,
    retries: u32,
    disabled: bool,
    last_digest: Option<String>,
}

fn map(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: r.get(0)?,
        name: r.get(1)?,
        settings: r.get(2)?,
        levels: r.get(3)?,
        digest_at: r.get(4)?,
        retries: r.get(5)?,
        disabled: r.get(6)?,
        last_digest: r.get(7)?,
    })
}

/// The JSON columns decoded into the record.
fn decode(r: Raw) -> Result<NotifierRecord> {
    Ok(NotifierRecord {
        id: r.id,
        config: NotifierConfig {
            name: r.name,
            settings: super::from_json(&r.settings, "notifier settings")?,
            levels: super::from_json(&r.levels, "notifier levels")?,
            digest_at: r.digest_at,
            retries: r.retries,
            disabled: r.disabled,
        },
        last_digest: r.last_digest,
    })
}

const DELIVERY_COLUMNS: &str = "id, what, alert_id, state, attempts, next_at, last_error, answer, created, sent_at";

fn map_delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        what: r.get(1)?,
        alert: r.get::<_, Option<i64>>(2)?.map(AlertId),
        state: named(r, 3, DeliveryState::parse)?,
        attempts: r.get(4)?,
        next_at: Timestamp::from_millisecond(r.get(5)?).unwrap_or(Timestamp::UNIX_EPOCH),
        last_error: r.get(6)?,
        answer: r.get(7)?,
        created: parsed(r, 8)?,
        sent_at: parsed_opt(r, 9)?,
    })
}

/// A notification due for an attempt.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Row id.
    pub id: i64,
    /// The integration's row id.
    pub notifier: i64,
    /// The JSON message.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

impl Catalog {
    /// Adds an integration (secrets already sealed).
    pub fn add_notifier(&self, n: &NotifierConfig) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO notifiers (name, settings, levels, digest_at, retries, disabled, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                n.name,
                super::json(&n.settings),
                super::json(&n.levels),
                n.digest_at,
                n.retries,
                n.disabled,
                super::now()
            ],
        )
        .map_err(|e| {
            super::unless_taken(e, || format!("a notification integration named {} already exists", n.name))
        })?;
        Ok(())
    }

    /// Every integration, by name.
    pub fn notifiers(&self) -> Result<Vec<NotifierRecord>> {
        let conn = self.conn();
        let rows = conn
            .prepare(&format!("SELECT {COLUMNS} FROM notifiers ORDER BY name"))?
            .query_map([], map)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(decode).collect()
    }

    /// One integration by name.
    pub fn notifier(&self, name: &str) -> Result<NotifierRecord> {
        let row = self
            .conn()
            .query_row(&format!("SELECT {COLUMNS} FROM notifiers WHERE name = ?1"), [name], map)
            .optional()?
            .ok_or_else(|| CatalogError::NotFound(format!("no notification integration named {name}")))?;
        decode(row)
    }

    /// One integration by row id (`None` once removed).
    pub fn notifier_by_id(&self, id: i64) -> Result<Option<NotifierRecord>> {
        let row =
            self.conn().query_row(&format!("SELECT {COLUMNS} FROM notifiers WHERE id = ?1"), [id], map).optional()?;
        row.map(decode).transpose()
    }

    /// Saves an edited integration (secrets already sealed).
    pub fn update_notifier(&self, id: i64, n: &NotifierConfig) -> Result<()> {
        self.conn().execute(
            "UPDATE notifiers SET settings = ?2, levels = ?3, digest_at = ?4, retries = ?5, disabled = ?6 WHERE id = ?1",
            params![id, super::json(&n.settings), super::json(&n.levels), n.digest_at, n.retries, n.disabled],
        )?;
        Ok(())
    }

    /// Removes an integration and its outbox.
    pub fn remove_notifier(&self, name: &str) -> Result<()> {
        let n = self.conn().execute("DELETE FROM notifiers WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(CatalogError::NotFound(format!("no notification integration named {name}")));
        }
        Ok(())
    }

    /// Notifications due at `now`, oldest first, at most `limit`.
    pub fn due_deliveries(&self, now: Timestamp, limit: u32) -> Result<Vec<DueDelivery>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT d.id, d.notifier_id, d.body, d.attempts FROM deliveries d \
             JOIN notifiers n ON n.id = d.notifier_id \
             WHERE d.state = 'pending' AND d.next_at <= ?1 AND n.disabled = 0 ORDER BY d.id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now.as_millisecond(), limit], |r| {
            Ok(DueDelivery { id: r.get(0)?, notifier: r.get(1)?, body: r.get(2)?, attempts: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a delivered notification and the server's answer.
    pub fn delivery_sent(&self, id: i64, attempts: u32, answer: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE deliveries SET state = 'sent', attempts = ?2, answer = ?3, last_error = NULL, sent_at = ?4 \
             WHERE id = ?1",
            params![id, attempts, answer, super::now()],
        )?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    pub fn delivery_failed(&self, id: i64, attempts: u32, error: &str, retry_at: Option<Timestamp>) -> Result<()> {
        let (state, next) = match retry_at {
            Some(t) => (DeliveryState::Pending, t.as_millisecond()),
            None => (DeliveryState::Failed, Timestamp::now().as_millisecond()),
        };
        self.conn().execute(
            "UPDATE deliveries SET state = ?2, attempts = ?3, last_error = ?4, next_at = ?5 WHERE id = ?1",
            params![id, state.as_str(), attempts, error, next],
        )?;
        Ok(())
    }

    /// The messages held for an integration's next digest, oldest first.
    pub fn waiting_deliveries(&self, notifier: i64) -> Result<Vec<(i64, String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, body FROM deliveries WHERE notifier_id = ?1 AND state = 'waiting' ORDER BY id")?;
        let rows = stmt.query_map([notifier], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records that the digest of `day` was made: `body` (when there were
    /// messages) is queued, the messages it holds are marked digested.
    pub fn queue_digest(&self, notifier: i64, day: &str, digested: &[i64], body: Option<&str>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(body) = body {
            let now = Timestamp::now();
            tx.execute(
                "INSERT INTO deliveries (notifier_id, what, body, state, next_at, created) \
                 VALUES (?1, 'digest', ?2, 'pending', ?3, ?4)",
                params![notifier, body, now.as_millisecond(), now.to_string()],
            )?;
        }
        for id in digested {
            tx.execute("UPDATE deliveries SET state = 'digested' WHERE id = ?1 AND state = 'waiting'", [id])?;
        }
        tx.execute("UPDATE notifiers SET last_digest = ?2 WHERE id = ?1", params![notifier, day])?;
        tx.commit()?;
        Ok(())
    }

    /// An integration's outbox at a glance: notifications not delivered yet,
    /// the error of the last failed attempt when the last attempt failed, and
    /// the `recent` newest deliveries.
    pub fn outbox(&self, notifier: i64, recent: u32) -> Result<(u32, Option<String>, Vec<Delivery>)> {
        let conn = self.conn();
        let pending: u32 = conn.query_row(
            "SELECT count(*) FROM deliveries WHERE notifier_id = ?1 AND state IN ('pending', 'waiting')",
            [notifier],
            |r| r.get(0),
        )?;
        // The newest notification tried decides: a failure followed by a delivery is over.
        let last: Option<(String, Option<String>)> = conn
            .query_row(
                "SELECT state, last_error FROM deliveries WHERE notifier_id = ?1 AND attempts > 0 \
                 ORDER BY id DESC LIMIT 1",
                [notifier],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let last_error = last.filter(|(state, _)| state != DeliveryState::Sent.as_str()).and_then(|(_, e)| e);
        let deliveries = conn
            .prepare(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE notifier_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))?
            .query_map(params![notifier, recent], map_delivery)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((pending, last_error, deliveries))
    }

    /// Forgets delivered, digested and given-up notifications queued before `before`.
    pub fn prune_deliveries(&self, before: Timestamp) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM deliveries WHERE state IN ('sent', 'digested', 'failed') AND next_at < ?1",
            [before.as_millisecond()],
        )?)
    }
}
