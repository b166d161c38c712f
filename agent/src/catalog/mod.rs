//! The catalog: one SQLite database in the state directory.
//!
//! WAL mode, a busy timeout, and versioned migrations applied at open
//! (`PRAGMA user_version` counts the applied ones). The snapshots table is a
//! cache of what destinations hold: it is rebuilt from the destinations
//! themselves when one is adopted or reindexed.
//!
//! One connection behind a mutex serves the whole agent; every statement is
//! short, so callers hold it briefly.
//!
//! The catalog holds the agent's master key (`master.key` beside the database):
//! secret destination options are sealed with it on every write, so no path
//! stores one in the clear.

mod accounts;
mod alerts;
mod columns;
mod databases;
mod destinations;
mod downloads;
mod jobs;
mod migrations;
mod notifiers;
mod restore_rules;
mod runs;
mod settings;
mod snapshots;
mod tasks;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

use crate::secrets::{MasterKey, SecretError};
use hindsight_fs::lock;

pub(crate) use accounts::is_account_dir;
pub use accounts::{AccountRow, ForgottenRecords};
pub use alerts::NewAlert;
pub use notifiers::DueDelivery;
pub use runs::RunUpdate;
pub use snapshots::SnapshotRecord;

/// A catalog failure.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the catalog's state.
    #[error("{0}")]
    Conflict(String),
    /// SQLite failed.
    #[error("catalog: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored JSON column is malformed.
    #[error("catalog: malformed {0}")]
    Corrupt(&'static str),
    /// The master key cannot be loaded.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A newer build of Hindsight migrated the catalog past what this one knows.
    #[error(
        "the catalog has schema version {found}, written by a newer version of Hindsight (this one knows versions up to {known}): run that version again, or restore the state directory from before the upgrade"
    )]
    Newer {
        /// The catalog's `user_version`.
        found: i64,
        /// The last version this build knows.
        known: i64,
    },
}

/// Result alias for catalog calls.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// The agent's catalog.
pub struct Catalog {
    conn: Mutex<Connection>,
    key: MasterKey,
}

impl Catalog {
    /// Opens (creating and migrating) the catalog at `path`, with the master key
    /// beside it (created on first use; refused if others can read it).
    pub fn open(path: &Path) -> Result<Self> {
        // The key lives with the catalog: the secrets in one are useless without the other.
        let key = MasterKey::load_or_create(path.parent().unwrap_or(Path::new(".")))?;
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 5000;",
        )?;
        migrations::apply(&conn)?;
        Ok(Catalog { conn: Mutex::new(conn), key })
    }

    /// The master key that seals secret destination options.
    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (it has
        // its own transactions), so a poisoned lock is still usable.
        lock(&self.conn)
    }
}

/// Now, as stored in the catalog (RFC 3339, UTC).
pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// A failed insert as the error to show: a name already taken is a
/// [`CatalogError::Conflict`] saying `taken`.
fn unless_taken(e: rusqlite::Error, taken: impl FnOnce() -> String) -> CatalogError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            CatalogError::Conflict(taken())
        }
        e => e.into(),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &'static str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| CatalogError::Corrupt(what))
}
