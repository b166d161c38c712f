//! Destinations in the catalog.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::columns::{named, parsed};
use super::{Catalog, CatalogError, Result, from_json, json};
use crate::model::{DestinationId, DestinationKind, DestinationRecord, DiskUsageInfo};
use crate::secrets;

const COLUMNS: &str = "d.id, d.name, d.type, d.options, d.disk_limit, d.hidden, d.readonly, d.disabled, \
    d.usage, d.free, d.total, d.usage_updated, \
    (SELECT count(*) FROM job_destinations jd WHERE jd.destination_id = d.id), d.cache_id";

fn map(r: &Row<'_>) -> rusqlite::Result<(DestinationRecord, String)> {
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
        },
        r.get(3)?,
    ))
}

fn finish(row: (DestinationRecord, String)) -> Result<DestinationRecord> {
    let (mut d, options) = row;
    d.options = from_json::<Map<String, Value>>(&options, "destination options")?;
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
             cache_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
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
                d.cache_id
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
            "UPDATE destinations SET options = ?2, disk_limit = ?3, hidden = ?4, readonly = ?5, disabled = ?6 \
             WHERE id = ?1",
            params![d.id.as_str(), json(&options), d.disk_limit, d.hidden, d.readonly, d.disabled],
        )?;
        Ok(())
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
