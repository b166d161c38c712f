//! Settings in the catalog: text values by key (checked by [`crate::settings`]).

use std::collections::HashMap;

use rusqlite::params;

use super::{Catalog, Result};
use crate::model::Settings;

impl Catalog {
    /// The settings, with defaults for keys never set.
    pub fn settings(&self) -> Result<Settings> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT key, value FROM settings")?;
        let stored: HashMap<String, String> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(crate::settings::from_stored(&stored))
    }

    /// Stores a checked value.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}
