//! Restore conditions and file permission rules in the catalog.

use rusqlite::params;

use super::columns::parsed;
use super::{Catalog, CatalogError, Result, from_json, json};
use crate::model::{PermissionRule, RestoreCondition};

impl Catalog {
    /// Every restore condition, oldest first.
    pub fn restore_conditions(&self) -> Result<Vec<RestoreCondition>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, text, created FROM restore_conditions ORDER BY id")?;
        let rows =
            stmt.query_map([], |r| Ok(RestoreCondition { id: r.get(0)?, text: r.get(1)?, created: parsed(r, 2)? }))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Adds a restore condition; returns its id.
    pub fn add_restore_condition(&self, text: &str) -> Result<i64> {
        let conn = self.conn();
        conn.execute("INSERT INTO restore_conditions (text, created) VALUES (?1, ?2)", params![text, super::now()])?;
        Ok(conn.last_insert_rowid())
    }

    /// Removes a restore condition.
    pub fn remove_restore_condition(&self, id: i64) -> Result<()> {
        match self.conn().execute("DELETE FROM restore_conditions WHERE id = ?1", [id])? {
            0 => Err(CatalogError::NotFound(format!("no restore condition {id}"))),
            _ => Ok(()),
        }
    }

    /// Every file permission rule, in the order they apply (later ones win).
    pub fn permission_rules(&self) -> Result<Vec<PermissionRule>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, rule FROM permission_rules ORDER BY id")?;
        let rows: Vec<(i64, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, rule)| {
                let mut r: PermissionRule = from_json(&rule, "permission rule")?;
                r.id = id;
                Ok(r)
            })
            .collect()
    }

    /// Adds a file permission rule (checked by the caller); returns its id.
    pub fn add_permission_rule(&self, rule: &PermissionRule) -> Result<i64> {
        let conn = self.conn();
        conn.execute("INSERT INTO permission_rules (rule) VALUES (?1)", [json(rule)])?;
        Ok(conn.last_insert_rowid())
    }

    /// Removes a file permission rule.
    pub fn remove_permission_rule(&self, id: i64) -> Result<()> {
        match self.conn().execute("DELETE FROM permission_rules WHERE id = ?1", [id])? {
            0 => Err(CatalogError::NotFound(format!("no file permission rule {id}"))),
            _ => Ok(()),
        }
    }
}
