//! Destinations in the catalog.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::columns::{named, parsed, parsed_opt};
use super::{Catalog, CatalogError, Result, from_json, json};
use crate::model::{
    CheckPlan, CheckSummary, DestinationCheck, DestinationId, DestinationKind, DestinationRecord, DiskUsageInfo,
};

/// Check reports kept per destination.
const CHECKS_KEPT: u32 = 20;
use crate::secrets;

const COLUMNS: &str = "d.id, d.name, d.type, d.options, d.disk_limit, d.hidden, d.readonly, d.disabled, \
    d.usage, d.free, d.total, d.usage_updated, \
    (SELECT count(*) FROM job_destinations jd WHERE jd.destination_id = d.id), d.cache_id, \
    d.check_schedule, d.check_time, d.check_read_data, d.check_next, d.check_last";

fn map(r: &Row<'_>) -> rusqlite::Result<(DestinationRecord, String, Option<String>)> {
    let disk_usage = match r.get::<_, Option<String>>(11)? {
        Some(_) => Some(DiskUsageInfo {
            usage: r.get::<_, i64>(8)? as u64,
            free: r.get::<_, i64>(9)? as u64,
            total: r.get::<_, i64>(10)? as u64,
            updated: parsed(r, 11)?,
        }),
        None => None,
    };
    Ok((
        DestinationRecord {
            id: DestinationId(r.get(0)?),
            name: r.get(1)?,
            kind: named(r, 2, DestinationKind::parse)?,
            options: Map::new(),
            disk_limit: r.get(4)?,
            hidden: r.get(5)?,
            readonly: r.get(6)?,
            disabled: r.get(7)?,
            jobs: r.get(12)?,
            disk_usage,
            cache_id: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
            check: CheckPlan {
                schedule: r.get(14)?,
                time: r.get(15)?,
                read_data: r.get(16)?,
                next: parsed_opt(r, 17)?,
                last: None,
            },
        },
        r.get(3)?,
        r.get(18)?,
    ))
}

fn finish(row: (DestinationRecord, String, Option<String>)) -> Result<DestinationRecord> {
    let (mut d, options, last_check) = row;
    d.options = from_json::<Map<String, Value>>(&options, "destination options")?;
    d.check.last = last_check.map(|l| from_json(&l, "destination check summary")).transpose()?;
    Ok(d)
}

impl Catalog {
    /// Every destination, by name.
    pub fn destinations(&self) -> Result<Vec<DestinationRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM destinations d ORDER BY d.name"))?;
        let rows = stmt.query_map([], map)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    /// The destination called `name`.
    pub fn destination(&self, name: &str) -> Result<DestinationRecord> {
        let conn = self.conn();
        let row = conn
            .query_row(&format!("SELECT {COLUMNS} FROM destinations d WHERE d.name = ?1"), [name], map)
            .optional()?;
        finish(row.ok_or_else(|| CatalogError::NotFound(format!("no destination named {name}")))?)
    }

    /// Adds a destination (name must be free); its secret options are sealed.
    pub fn insert_destination(&self, d: &DestinationRecord) -> Result<()> {
        let options = self.sealed_options(d);
        let conn = self.conn();
        let n = conn.execute(
            "INSERT INTO destinations (id, name, type, options, disk_limit, hidden, readonly, disabled, created, \
             cache_id, check_schedule, check_time, check_read_data) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
            params![
                d.id.as_str(),
                d.name,
                d.kind.as_str(),
                json(&options),
                d.disk_limit,
                d.hidden,
                d.readonly,
                d.disabled,
                super::now(),
                d.cache_id,
                d.check.schedule,
                d.check.time,
                d.check.read_data
            ],
        )?;
        if n == 0 {
            return Err(CatalogError::Conflict(format!(
                "a destination named {} (or with id {}) already exists",
                d.name, d.id
            )));
        }
        Ok(())
    }

    /// Stores the editable fields of a destination; its secret options are sealed.
    pub fn update_destination(&self, d: &DestinationRecord) -> Result<()> {
        let options = self.sealed_options(d);
        self.conn().execute(
            "UPDATE destinations SET options = ?2, disk_limit = ?3, hidden = ?4, readonly = ?5, disabled = ?6, \
             check_schedule = ?7, check_time = ?8, check_read_data = ?9, check_next = ?10 WHERE id = ?1",
            params![
                d.id.as_str(),
                json(&options),
                d.disk_limit,
                d.hidden,
                d.readonly,
                d.disabled,
                d.check.schedule,
                d.check.time,
                d.check.read_data,
                d.check.next.map(|t| t.to_string())
            ],
        )?;
        Ok(())
    }

    /// Sets when a destination's scheduled check is next due.
    pub fn set_check_next(&self, id: &DestinationId, next: Option<jiff::Timestamp>) -> Result<()> {
        self.conn().execute(
            "UPDATE destinations SET check_next = ?2 WHERE id = ?1",
            params![id.as_str(), next.map(|t| t.to_string())],
        )?;
        Ok(())
    }

    /// Keeps a check's report (the last [`CHECKS_KEPT`] per destination) and its summary.
    pub fn record_check(&self, id: &DestinationId, report: &DestinationCheck) -> Result<()> {
        let finished = report.finished.unwrap_or_else(jiff::Timestamp::now);
        let summary = CheckSummary {
            finished,
            ok: report.ok,
            snapshots: report.snapshots.len() as u32,
            problems: report.snapshots.iter().map(|s| s.problems.len() as u32).sum(),
            read_data: report.read_data_percent,
            trigger: report.trigger,
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO checks (destination_id, finished, report) VALUES (?1, ?2, ?3)",
            params![id.as_str(), finished.to_string(), json(report)],
        )?;
        tx.execute(
            "DELETE FROM checks WHERE destination_id = ?1 AND id NOT IN \
             (SELECT id FROM checks WHERE destination_id = ?1 ORDER BY id DESC LIMIT ?2)",
            params![id.as_str(), CHECKS_KEPT],
        )?;
        tx.execute("UPDATE destinations SET check_last = ?2 WHERE id = ?1", params![id.as_str(), json(&summary)])?;
        tx.commit()?;
        Ok(())
    }

    /// The report of a destination's last check, if it was ever checked.
    pub fn last_check(&self, id: &DestinationId) -> Result<Option<DestinationCheck>> {
        let report: Option<String> = self
            .conn()
            .query_row(
                "SELECT report FROM checks WHERE destination_id = ?1 ORDER BY id DESC LIMIT 1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        report.map(|r| from_json(&r, "check report")).transpose()
    }

    /// The options as stored: secrets sealed (those sealed already stay as they are).
    fn sealed_options(&self, d: &DestinationRecord) -> Map<String, Value> {
        let mut options = d.options.clone();
        secrets::seal_options(self.master_key(), d.kind.as_str(), &mut options);
        options
    }

    /// Records a disk usage measurement.
    pub fn set_disk_usage(&self, id: &DestinationId, u: &DiskUsageInfo) -> Result<()> {
        self.conn().execute(
            "UPDATE destinations SET usage = ?2, free = ?3, total = ?4, usage_updated = ?5 WHERE id = ?1",
            params![id.as_str(), u.usage as i64, u.free as i64, u.total as i64, u.updated.to_string()],
        )?;
        Ok(())
    }

    /// Removes a destination; refused while a job uses it. Its snapshots stay on disk.
    pub fn delete_destination(&self, name: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id: String = tx
            .query_row("SELECT id FROM destinations WHERE name = ?1", [name], |r| r.get(0))
            .optional()?
            .ok_or_else(|| CatalogError::NotFound(format!("no destination named {name}")))?;
        let users: Vec<String> = tx
            .prepare(
                "SELECT j.name FROM jobs j JOIN job_destinations jd ON jd.job_id = j.id \
                 WHERE jd.destination_id = ?1 ORDER BY j.name",
            )?
            .query_map([&id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if !users.is_empty() {
            return Err(CatalogError::Conflict(format!(
                "destination {name} is used by job(s) {}; remove it from them first",
                users.join(", ")
            )));
        }
        tx.execute("DELETE FROM snapshots WHERE destination_id = ?1", [&id])?;
        tx.execute("DELETE FROM destinations WHERE id = ?1", [&id])?;
        tx.commit()?;
        Ok(())
    }
}
