//! Database servers whose databases jobs dump: how to reach them, and what
//! `database test` finds there.

use serde::{Deserialize, Serialize};

use crate::kinds::{DbEngine, DbTls};

/// A database server: the body of `POST /v1/databases`, and how the API
/// shows one (its password as `********`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseServer {
    /// Unique name.
    pub name: String,
    /// Which server software.
    pub engine: DbEngine,
    /// Host name or address (none: the Unix socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port (none: the engine's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Unix socket: its path (MariaDB/MySQL) or its directory (PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// User to connect as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password (a secret: stored encrypted, never on a command line or in a log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// TLS to the server.
    #[serde(default = "prefer")]
    pub tls: DbTls,
}

fn prefer() -> DbTls {
    DbTls::Prefer
}

/// Body of `PATCH /v1/databases/{name}`: only what is given changes; an
/// empty text removes host, port, socket, user or password.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseServerPatch {
    /// New host.
    #[serde(default)]
    pub host: Option<String>,
    /// New port (0: the default).
    #[serde(default)]
    pub port: Option<u16>,
    /// New socket.
    #[serde(default)]
    pub socket: Option<String>,
    /// New user.
    #[serde(default)]
    pub user: Option<String>,
    /// New password (`********` keeps the stored one).
    #[serde(default)]
    pub password: Option<String>,
    /// New TLS mode.
    #[serde(default)]
    pub tls: Option<DbTls>,
}

/// One database a server holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Its name.
    pub name: String,
    /// Its size on the server, in bytes.
    pub size: u64,
    /// The server's own (left out of dumps unless named).
    pub system: bool,
    /// Its owner (PostgreSQL), which accounts jobs read as its account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What `POST /v1/databases/{name}/test` found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatabaseTest {
    /// The server's version.
    pub version: String,
    /// Its databases, by name.
    pub databases: Vec<DatabaseInfo>,
}

/// The databases a job dumps into each of its snapshots, under
/// `/.hindsight/databases/<server>/`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JobDatabases {
    /// The servers, each with the databases taken from it.
    #[serde(default)]
    pub servers: Vec<DatabaseSelection>,
    /// Databases left out (globs on their names, `*` and `?`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Databases larger than this many bytes (as the server reports their size) are left out.
    #[serde(default)]
    pub exclude_larger_than: Option<u64>,
}

impl JobDatabases {
    /// True when nothing is dumped.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }
}

/// One server of a job's databases.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSelection {
    /// The database server's name.
    pub server: String,
    /// The databases dumped; empty: every database but the server's own.
    #[serde(default)]
    pub databases: Vec<String>,
}
