//! Accounts: the system users an accounts job backs up one snapshot each,
//! their priorities, the databases assigned to them, and what forgetting one
//! removed.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Which system users an accounts job backs up.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JobAccounts {
    /// Only these users (none: every user whose uid is in the settings'
    /// `accounts_min_uid`-`accounts_max_uid` range).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Never these users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl JobAccounts {
    /// True when every user in the uid range is backed up.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// An account as `GET /v1/accounts` shows it: a system user that accounts
/// jobs back up, or that has snapshots on a destination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    /// User name.
    pub name: String,
    /// Its uid, while the user exists.
    pub uid: Option<u32>,
    /// Its home directory, while the user exists.
    pub home: Option<String>,
    /// False for an orphan: snapshots of a user this system no longer has.
    pub exists: bool,
    /// When the agent first saw the user gone (orphans only).
    pub gone_since: Option<Timestamp>,
    /// Its queue priority group, if it has one.
    #[serde(default)]
    pub priority_group: Option<String>,
    /// Order within a run of an accounts job, from its group (or the default
    /// group): lower first (1-100).
    pub priority: u8,
    /// Its snapshots, on every destination.
    pub snapshots: u64,
    /// The accounts jobs that hold its snapshots or back it up.
    pub jobs: Vec<String>,
    /// Databases assigned to it (`SERVER:DB`).
    pub databases: Vec<String>,
}

/// Body of `PATCH /v1/accounts/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// Its queue priority group (empty: none, the default group applies).
    #[serde(default)]
    pub priority_group: Option<String>,
}

/// A queue priority group: accounts in it are backed up, within a run of an
/// accounts job, before those of groups with higher values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PriorityGroup {
    /// Unique name.
    pub name: String,
    /// 1-100, lower first.
    pub priority: u8,
}

/// Body of `POST /v1/database-assignments`: which account a database's
/// dumps go with (none: the assignment is removed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseAssignment {
    /// Database server name.
    pub server: String,
    /// Database name.
    pub database: String,
    /// Account (system user) name; none removes the assignment.
    pub account: Option<String>,
}

/// What `POST /v1/accounts/{name}/forget` removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForgetReport {
    /// The account.
    pub account: String,
    /// Snapshots whose deletion began: `destination/job-dir/snapshot`.
    pub snapshots: Vec<String>,
    /// Snapshots that could not be deleted now, with why.
    pub failed: Vec<String>,
    /// Runs whose record of the account was removed.
    pub runs: u64,
    /// Alerts removed.
    pub alerts: u64,
    /// Tasks removed (restores from its snapshots).
    pub tasks: u64,
    /// Database assignments removed.
    pub assignments: u64,
}

/// Body of `POST /v1/accounts/{name}/forget`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetRequest {
    /// Forget it even though the user still exists on the system.
    #[serde(default)]
    pub force: bool,
}
