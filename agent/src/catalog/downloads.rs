//! Downloads in the catalog: the `.tar.gz` files the agent built.

use rusqlite::{OptionalExtension, params};

use jiff::Timestamp;

use super::columns::parsed;
use super::{Catalog, CatalogError, Result};
use crate::model::{Download, SnapshotId, TaskId};

const COLUMNS: &str = "id, task_id, path, size, account, snapshot_id, created";

fn map(r: &rusqlite::Row<'_>) -> rusqlite::Result<Download> {
    Ok(Download {
        id: r.get(0)?,
        task: TaskId(r.get(1)?),
        path: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        account: r.get(4)?,
        snapshot: SnapshotId(r.get(5)?),
        created: parsed(r, 6)?,
        expires: None,
    })
}

impl Catalog {
    /// Records a download just built; returns it.
    pub fn add_download(&self, d: &Download) -> Result<Download> {
        let id = {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO downloads (task_id, path, size, account, snapshot_id, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![d.task.0, d.path, d.size as i64, d.account, d.snapshot.0, d.created.to_string()],
            )?;
            conn.last_insert_rowid()
        };
        self.download(id)
    }

    /// One download.
    pub fn download(&self, id: i64) -> Result<Download> {
        let conn = self.conn();
        conn.query_row(&format!("SELECT {COLUMNS} FROM downloads WHERE id = ?1"), [id], map)
            .optional()?
            .ok_or_else(|| CatalogError::NotFound(format!("no download {id}")))
    }

    /// Every download, oldest first.
    pub fn downloads(&self) -> Result<Vec<Download>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM downloads ORDER BY id"))?;
        Ok(stmt.query_map([], map)?.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Forgets a download (its file is the caller's to remove).
    pub fn remove_download(&self, id: i64) -> Result<()> {
        self.conn().execute("DELETE FROM downloads WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Downloads built before `before`.
    pub fn downloads_before(&self, before: Timestamp) -> Result<Vec<Download>> {
        Ok(self.downloads()?.into_iter().filter(|d| d.created < before).collect())
    }
}
