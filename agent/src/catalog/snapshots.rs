//! Snapshots in the catalog: a cache of what the destinations hold.

use rusqlite::{OptionalExtension, Row, params};

use super::columns::{named, parsed};
use super::{Catalog, CatalogError, Result, from_json, json};
use crate::model::{DestinationId, RunId, Snapshot, SnapshotId, Structure};

/// A snapshot as the catalog keeps it, with its destination's id.
#[derive(Debug, Clone)]
pub struct SnapshotRecord {
    /// The API view.
    pub snapshot: Snapshot,
    /// Destination id.
    pub destination_id: DestinationId,
    /// Marked for deletion (invisible).
    pub deleting: bool,
}

const COLUMNS: &str = "s.id, d.name, s.job_name, s.name, s.structure, s.started, s.finished, s.files, s.bytes, \
    s.files_added, s.bytes_added, s.partial, s.destination_id, s.deleting, d.type, d.options, s.tags, s.locked, s.sequence";

fn map(r: &Row<'_>) -> rusqlite::Result<SnapshotRecord> {
    let kind: String = r.get(14)?;
    let options: String = r.get(15)?;
    let job: String = r.get(2)?;
    let name: String = r.get(3)?;
    let path = if kind == "local" {
        serde_json::from_str::<serde_json::Value>(&options)
            .ok()
            .and_then(|o| o.get("path").and_then(|p| p.as_str()).map(String::from))
            .map(|root| format!("{}/{job}/{name}", root.trim_end_matches('/')))
    } else {
        None
    };
    Ok(SnapshotRecord {
        snapshot: Snapshot {
            id: SnapshotId(r.get(0)?),
            destination: r.get(1)?,
            job,
            name,
            structure: named(r, 4, Structure::parse)?,
            started: parsed(r, 5)?,
            finished: parsed(r, 6)?,
            files: r.get::<_, i64>(7)? as u64,
            bytes: r.get::<_, i64>(8)? as u64,
            files_added: r.get::<_, i64>(9)? as u64,
            bytes_added: r.get::<_, i64>(10)? as u64,
            partial: r.get(11)?,
            // A malformed tag list reads as none: retention then treats the snapshot as manual.
            tags: from_json(&r.get::<_, String>(16)?, "snapshot tags").unwrap_or_default(),
            locked: r.get(17)?,
            sequence: r.get::<_, i64>(18)? as u64,
            path,
            error: None,
        },
        destination_id: DestinationId(r.get(12)?),
        deleting: r.get(13)?,
    })
}

impl Catalog {
    /// Records a snapshot (replacing a row of the same destination, job and name).
    pub fn upsert_snapshot(
        &self,
        destination_id: &DestinationId,
        s: &Snapshot,
        run_id: Option<RunId>,
    ) -> Result<SnapshotId> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO snapshots (destination_id, job_name, name, structure, started, finished, files, bytes, \
             files_added, bytes_added, partial, run_id, tags, sequence) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (destination_id, job_name, name) DO UPDATE SET structure = excluded.structure, \
             started = excluded.started, finished = excluded.finished, files = excluded.files, \
             bytes = excluded.bytes, files_added = excluded.files_added, bytes_added = excluded.bytes_added, \
             partial = excluded.partial, tags = excluded.tags, sequence = excluded.sequence",
            params![
                destination_id.as_str(),
                s.job,
                s.name,
                s.structure.as_str(),
                s.started.to_string(),
                s.finished.to_string(),
                s.files as i64,
                s.bytes as i64,
                s.files_added as i64,
                s.bytes_added as i64,
                s.partial,
                run_id.map(|r| r.0),
                json(&s.tags),
                s.sequence as i64
            ],
        )?;
        Ok(conn.query_row(
            "SELECT id FROM snapshots WHERE destination_id = ?1 AND job_name = ?2 AND name = ?3",
            params![destination_id.as_str(), s.job, s.name],
            |r| r.get(0).map(SnapshotId),
        )?)
    }

    /// Visible snapshots, newest first, optionally filtered: by a job
    /// (an accounts job's name takes its accounts' `JOB@USER` too) and by a destination.
    pub fn snapshots(&self, job: Option<&str>, destination: Option<&str>) -> Result<Vec<Snapshot>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM snapshots s JOIN destinations d ON d.id = s.destination_id \
             WHERE s.deleting = 0 AND (?1 IS NULL OR s.job_name = ?1 OR (instr(?1, '@') = 0 \
               AND substr(s.job_name, 1, length(?1) + 1) = ?1 || '@')) AND (?2 IS NULL OR d.name = ?2) \
             ORDER BY s.sequence DESC, s.finished DESC, s.name DESC, d.name"
        ))?;
        let rows = stmt.query_map(params![job, destination], map)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.into_iter().map(|r| r.snapshot).collect())
    }

    /// A snapshot by id (deleting ones included, flagged).
    pub fn snapshot(&self, id: SnapshotId) -> Result<SnapshotRecord> {
        let conn = self.conn();
        conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM snapshots s JOIN destinations d ON d.id = s.destination_id WHERE s.id = ?1"
            ),
            [id.0],
            map,
        )
        .optional()?
        .filter(|r| !r.deleting)
        .ok_or_else(|| CatalogError::NotFound(format!("no snapshot with id {id}")))
    }

    /// Visible snapshots of one job on one destination, newest first, with their records.
    pub fn job_snapshots(&self, destination_id: &DestinationId, job: &str) -> Result<Vec<SnapshotRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM snapshots s JOIN destinations d ON d.id = s.destination_id \
             WHERE s.deleting = 0 AND s.destination_id = ?1 AND s.job_name = ?2 \
             ORDER BY s.sequence DESC, s.finished DESC, s.name DESC"
        ))?;
        let rows = stmt.query_map(params![destination_id.as_str(), job], map)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Locks or unlocks a snapshot (a locked one is never pruned).
    pub fn set_snapshot_locked(&self, id: SnapshotId, locked: bool) -> Result<()> {
        let n = self
            .conn()
            .execute("UPDATE snapshots SET locked = ?2 WHERE id = ?1 AND deleting = 0", params![id.0, locked])?;
        if n == 0 {
            return Err(CatalogError::NotFound(format!("no snapshot with id {id}")));
        }
        Ok(())
    }

    /// Marks a snapshot as being deleted (it disappears from listings).
    pub fn mark_snapshot_deleting(&self, id: SnapshotId) -> Result<()> {
        self.conn().execute("UPDATE snapshots SET deleting = 1 WHERE id = ?1", [id.0])?;
        Ok(())
    }

    /// Forgets a snapshot.
    pub fn remove_snapshot(&self, id: SnapshotId) -> Result<()> {
        self.conn().execute("DELETE FROM snapshots WHERE id = ?1", [id.0])?;
        Ok(())
    }

    /// Replaces the catalog's snapshots of one destination with `found` (reindex).
    pub fn replace_snapshots(&self, destination_id: &DestinationId, found: &[Snapshot]) -> Result<()> {
        {
            let conn = self.conn();
            let names: Vec<(String, String)> = found.iter().map(|s| (s.job.clone(), s.name.clone())).collect();
            let existing: Vec<(i64, String, String)> = conn
                .prepare("SELECT id, job_name, name FROM snapshots WHERE destination_id = ?1")?
                .query_map([destination_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, job, name) in existing {
                if !names.contains(&(job, name)) {
                    conn.execute("DELETE FROM snapshots WHERE id = ?1", [id])?;
                }
            }
        }
        for s in found {
            self.upsert_snapshot(destination_id, s, None)?;
        }
        Ok(())
    }
}
