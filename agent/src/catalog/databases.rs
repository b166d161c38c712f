//! Database servers in the catalog; the password is sealed before it is stored.

use rusqlite::{OptionalExtension, params};

use super::{Catalog, CatalogError, Result, from_json, json};
use crate::model::DatabaseServer;

impl Catalog {
    /// Adds a database server (its password already sealed).
    pub fn add_database_server(&self, d: &DatabaseServer) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO database_servers (name, settings, created) VALUES (?1, ?2, ?3)",
                params![d.name, json(d), super::now()],
            )
            .map_err(|e| super::unless_taken(e, || format!("a database server named {} already exists", d.name)))?;
        Ok(())
    }

    /// Every database server, by name.
    pub fn database_servers(&self) -> Result<Vec<DatabaseServer>> {
        let conn = self.conn();
        let rows: Vec<String> = conn
            .prepare("SELECT settings FROM database_servers ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        rows.iter().map(|r| from_json(r, "database server")).collect()
    }

    /// One database server by name.
    pub fn database_server(&self, name: &str) -> Result<DatabaseServer> {
        let row: Option<String> = self
            .conn()
            .query_row("SELECT settings FROM database_servers WHERE name = ?1", [name], |r| r.get(0))
            .optional()?;
        let row = row.ok_or_else(|| CatalogError::NotFound(format!("no database server named {name}")))?;
        from_json(&row, "database server")
    }

    /// Saves an edited database server (its password already sealed).
    pub fn update_database_server(&self, d: &DatabaseServer) -> Result<()> {
        self.conn().execute("UPDATE database_servers SET settings = ?2 WHERE name = ?1", params![d.name, json(d)])?;
        Ok(())
    }

    /// Removes a database server.
    pub fn remove_database_server(&self, name: &str) -> Result<()> {
        let n = self.conn().execute("DELETE FROM database_servers WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(CatalogError::NotFound(format!("no database server named {name}")));
        }
        Ok(())
    }
}
