//! Tasks: work the agent queues besides backups (restores of databases, and
//! later of files and downloads), each with its state, progress and result.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{SnapshotId, TaskId};
use crate::kinds::{RestoreMode, RunState, TaskKind};

/// A queued, running or finished task (`GET /v1/tasks/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Task {
    /// Id.
    pub id: TaskId,
    /// What it does.
    pub kind: TaskKind,
    /// Queued, running, completed, failed or cancelled.
    pub state: RunState,
    /// What was asked, in one line (`restore database shop from snapshot 4 ...`).
    pub summary: String,
    /// The request, as given.
    pub request: TaskRequest,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Bytes of the task's data handled so far.
    pub bytes_done: u64,
    /// Bytes to handle in all (0 while unknown).
    pub bytes_total: u64,
    /// The result in words, or why it failed.
    pub message: Option<String>,
}

/// What a task was asked to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskRequest {
    /// `POST /v1/restores/database`.
    RestoreDatabase(DatabaseRestore),
    /// `POST /v1/restores/files`.
    RestoreFiles(FileRestore),
    /// `POST /v1/downloads`.
    Download(DownloadRequest),
}

impl TaskRequest {
    /// The snapshots the task reads.
    pub fn snapshots(&self) -> Vec<SnapshotId> {
        match self {
            TaskRequest::RestoreDatabase(r) => vec![r.snapshot],
            TaskRequest::RestoreFiles(r) => vec![r.snapshot],
            TaskRequest::Download(r) => vec![r.snapshot],
        }
    }
}

/// Restore one database dump of a snapshot into a database server (the
/// body of `POST /v1/restores/database`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseRestore {
    /// The snapshot holding the dump.
    pub snapshot: SnapshotId,
    /// The server the dump was taken from (its directory in the snapshot).
    pub server: String,
    /// The database dumped.
    pub database: String,
    /// Restore under this name (default: the same name).
    #[serde(default)]
    pub as_name: Option<String>,
    /// Restore into this server (default: the one it was taken from).
    #[serde(default)]
    pub to: Option<String>,
    /// Replace the database if it exists (else a restore into an existing database is refused).
    #[serde(default)]
    pub replace: bool,
    /// Accept the administrator's restore conditions (required when there are any).
    #[serde(default)]
    pub accept_conditions: bool,
    /// The conditions accepted, as the agent recorded them with the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_conditions: Vec<String>,
}

/// Restore files and directories of a snapshot (the body of `POST /v1/restores/files`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileRestore {
    /// The snapshot to restore from.
    pub snapshot: SnapshotId,
    /// Absolute paths as on the machine backed up (`/` for everything).
    pub paths: Vec<String>,
    /// Restore under this directory (`DIR/<absolute path>`); none: to the original place.
    #[serde(default)]
    pub to: Option<String>,
    /// What to do with what exists at the target (default merge).
    #[serde(default = "merge")]
    pub mode: RestoreMode,
    /// Only say what would be written.
    #[serde(default)]
    pub dry_run: bool,
    /// Accept the administrator's restore conditions (required when there are any).
    #[serde(default)]
    pub accept_conditions: bool,
    /// The conditions accepted, as the agent recorded them with the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_conditions: Vec<String>,
}

fn merge() -> RestoreMode {
    RestoreMode::Merge
}

/// A text a restore must accept (`restore ... --accept-conditions`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestoreCondition {
    /// Id.
    pub id: i64,
    /// The text.
    pub text: String,
    /// When it was added.
    pub created: Timestamp,
}

/// Body of `POST /v1/restore-conditions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NewRestoreCondition {
    /// The text.
    pub text: String,
}

/// A rule giving what a restore writes at matching paths an owner, a group
/// and modes, instead of those the snapshot recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PermissionRule {
    /// Id (ignored when adding).
    #[serde(default)]
    pub id: i64,
    /// Glob on absolute paths as backed up (`/home/*/public_html`, `**/*.php`).
    pub glob: String,
    /// Owner (user name) to give.
    #[serde(default)]
    pub owner: Option<String>,
    /// Group (name) to give.
    #[serde(default)]
    pub group: Option<String>,
    /// Mode of files (octal text, `0640`).
    #[serde(default)]
    pub file_mode: Option<String>,
    /// Mode of directories (octal text, `0750`).
    #[serde(default)]
    pub dir_mode: Option<String>,
    /// Also everything below a matching directory.
    #[serde(default)]
    pub recursive: bool,
}

/// Build a `.tar.gz` of files of a snapshot in the download directory (the
/// body of `POST /v1/downloads`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DownloadRequest {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Absolute paths as on the machine backed up (`/` for everything).
    pub paths: Vec<String>,
}

/// A download built by the agent (`GET /v1/downloads`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Download {
    /// Id.
    pub id: i64,
    /// The task that built it.
    pub task: TaskId,
    /// Its file (`.tar.gz`, readable by root only).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The account whose snapshot it comes from (accounts jobs).
    pub account: Option<String>,
    /// The snapshot it comes from.
    pub snapshot: SnapshotId,
    /// When it was built.
    pub created: Timestamp,
    /// When it is deleted (`downloads_ttl`), if ever.
    pub expires: Option<Timestamp>,
}
