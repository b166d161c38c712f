//! The objects of the API: what the agent answers and the CLI sends and prints.
//!
//! Times are [`Timestamp`]s (RFC 3339 on the wire), ids are the newtypes of
//! [`crate::ids`] and closed sets are the enums of [`crate::kinds`]: a request
//! holding anything else is refused by serde before a handler runs.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::account::JobAccounts;
use crate::database::JobDatabases;
use crate::ids::{AlertId, DestinationId, JobId, RunId, SnapshotId};
use crate::kinds::{AlertKind, AlertLevel, DestinationKind, HookKind, JobKind, RunState, Structure, Trigger};

/// One file that could not be backed up as it was.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileError {
    /// Absolute source path (lossy UTF-8).
    pub path: String,
    /// The account whose snapshot it is missing from (accounts jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// What a backup did, counted.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    /// Entries looked at (after excludes).
    pub files_scanned: u64,
    /// Entries hardlinked to the previous snapshot.
    pub files_linked: u64,
    /// Files whose data was copied.
    pub files_copied: u64,
    /// Entries that could not be backed up.
    pub files_failed: u64,
    /// Bytes of regular files scanned.
    pub bytes_scanned: u64,
    /// Bytes of data copied.
    pub bytes_copied: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.files_scanned += o.files_scanned;
        self.files_linked += o.files_linked;
        self.files_copied += o.files_copied;
        self.files_failed += o.files_failed;
        self.bytes_scanned += o.bytes_scanned;
        self.bytes_copied += o.bytes_copied;
    }
}

/// Space on a destination, with the time it was measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiskUsageInfo {
    /// Bytes in use.
    pub usage: u64,
    /// Bytes free.
    pub free: u64,
    /// Bytes in all.
    pub total: u64,
    /// When it was measured.
    pub updated: Timestamp,
}

/// A destination as the API shows it: secret options are `********`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Destination {
    /// Stable id (also in the destination's `HINDSIGHT` marker).
    pub id: DestinationId,
    /// Unique name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: DestinationKind,
    /// Type-specific options (`path`, ...), secrets redacted.
    pub options: Map<String, Value>,
    /// Backups are refused when the destination's used % is at or above this (0 = no limit).
    pub disk_limit: u8,
    /// Visible to root only in the mount.
    pub hidden: bool,
    /// Never written to.
    pub readonly: bool,
    /// Jobs skip it.
    pub disabled: bool,
    /// Number of jobs that use it.
    pub jobs: u32,
    /// Last measured disk usage.
    pub disk_usage: Option<DiskUsageInfo>,
    /// Its integrity checks.
    #[serde(default)]
    pub check: CheckPlan,
}

/// `GET /v1/key`: the master key, for disaster recovery (no `Debug`: never logged).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MasterKeyExport {
    /// The 32-byte key as 64 lowercase hex digits.
    pub key: String,
    /// Where the agent keeps it.
    pub path: String,
}

/// Body of `POST /v1/destinations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDestination {
    /// Unique name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: DestinationKind,
    /// Type-specific options.
    #[serde(default)]
    pub options: Map<String, Value>,
    /// Disk limit in percent (0-100).
    #[serde(default)]
    pub disk_limit: Option<i64>,
    /// Hidden flag.
    #[serde(default)]
    pub hidden: bool,
    /// Read-only flag.
    #[serde(default)]
    pub readonly: bool,
    /// Disabled flag.
    #[serde(default)]
    pub disabled: bool,
    /// Use a non-empty directory that holds no marker.
    #[serde(default)]
    pub force: bool,
    /// When the root already holds a destination (another agent's, or one this
    /// agent forgot), keep writing to it; by default it is adopted read-only.
    #[serde(default)]
    pub writable: bool,
    /// Check schedule (none: only when asked).
    #[serde(default)]
    pub check_schedule: Option<String>,
    /// Time of day of timed check schedules (default 03:00).
    #[serde(default)]
    pub check_time: Option<String>,
    /// Percent of file contents a scheduled check hashes (default 0).
    #[serde(default)]
    pub check_read_data: Option<u8>,
}

/// Body of `PATCH /v1/destinations/{name}`: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationPatch {
    /// Options to replace (merged key by key).
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    /// New disk limit.
    #[serde(default)]
    pub disk_limit: Option<i64>,
    /// New hidden flag.
    #[serde(default)]
    pub hidden: Option<bool>,
    /// New read-only flag.
    #[serde(default)]
    pub readonly: Option<bool>,
    /// New disabled flag.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Use a non-empty directory that holds no marker.
    #[serde(default)]
    pub force: bool,
    /// New check schedule (empty: none).
    #[serde(default)]
    pub check_schedule: Option<String>,
    /// New time of day of timed check schedules.
    #[serde(default)]
    pub check_time: Option<String>,
    /// New percent of file contents a scheduled check hashes.
    #[serde(default)]
    pub check_read_data: Option<u8>,
}

/// One option a destination type takes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OptionSpec {
    /// Option name.
    pub name: String,
    /// Required on add.
    pub required: bool,
    /// Stored encrypted and never returned.
    pub secret: bool,
    /// What it is.
    pub description: String,
}

/// A destination type.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DestinationType {
    /// Type name.
    pub name: DestinationKind,
    /// What it is.
    pub description: String,
    /// Options it takes.
    pub options: Vec<OptionSpec>,
}

/// Body of `POST /v1/destinations/{name}/check`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Also hash every file's content and compare it with the index (reads everything).
    #[serde(default)]
    pub read_data: bool,
    /// Hash only about this percent of the files, a new random share each time (1-100).
    #[serde(default)]
    pub read_data_percent: Option<u8>,
}

/// Answer of `POST /v1/destinations/{name}/check`: every complete snapshot checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DestinationCheck {
    /// Destination name.
    pub destination: String,
    /// Whether file contents were hashed (all or a share).
    pub read_data: bool,
    /// The percent of the files whose contents were hashed (0-100).
    #[serde(default)]
    pub read_data_percent: u8,
    /// Who asked for it.
    #[serde(default = "manual")]
    pub trigger: Trigger,
    /// When it started.
    #[serde(default)]
    pub started: Option<Timestamp>,
    /// When it ended.
    #[serde(default)]
    pub finished: Option<Timestamp>,
    /// One report per snapshot, by job then age.
    pub snapshots: Vec<SnapshotCheck>,
    /// True when no snapshot has a problem.
    pub ok: bool,
}

fn manual() -> Trigger {
    Trigger::Manual
}

/// A destination's integrity check by schedule, and the last check made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckPlan {
    /// Schedule spec, as for jobs (none: only when asked).
    pub schedule: Option<String>,
    /// Time of day (HH:MM, the schedules' time zone) of timed schedules.
    pub time: String,
    /// Percent of the file contents read and hashed (0: none, 100: all).
    pub read_data: u8,
    /// When it is next due.
    pub next: Option<Timestamp>,
    /// The last check, manual or scheduled.
    pub last: Option<CheckSummary>,
}

impl Default for CheckPlan {
    fn default() -> Self {
        CheckPlan { schedule: None, time: "03:00".into(), read_data: 0, next: None, last: None }
    }
}

/// A check in one line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckSummary {
    /// When it ended.
    pub finished: Timestamp,
    /// True when no snapshot had a problem.
    pub ok: bool,
    /// Snapshots checked.
    pub snapshots: u32,
    /// Problems found.
    pub problems: u32,
    /// Percent of the file contents hashed.
    pub read_data: u8,
    /// Who asked for it.
    pub trigger: Trigger,
}

/// The integrity of one snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotCheck {
    /// Job name.
    pub job: String,
    /// Snapshot name.
    pub snapshot: String,
    /// Structure (none when the manifest is unreadable).
    pub structure: Option<Structure>,
    /// True when no problem was found.
    pub ok: bool,
    /// Index entries checked.
    pub entries_checked: u64,
    /// Bytes read from the destination.
    pub bytes_read: u64,
    /// What is wrong, the most damaging first.
    pub problems: Vec<CheckProblem>,
}

/// One thing wrong with a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckProblem {
    /// Path of the entry concerned, relative to the snapshot root; null for the snapshot as a whole.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Summary of a job's last run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunSummary {
    /// Run id.
    pub id: RunId,
    /// Its state.
    pub state: RunState,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// A backup job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// Unique name.
    pub name: String,
    /// Job type.
    #[serde(rename = "type")]
    pub kind: JobKind,
    /// Absolute source paths.
    pub sources: Vec<String>,
    /// Exclude patterns.
    pub excludes: Vec<String>,
    /// Destination names, in order.
    pub destinations: Vec<String>,
    /// Structure of its snapshots.
    pub structure: Structure,
    /// Stay on the sources' filesystems.
    pub one_file_system: bool,
    /// Copies of a changing file before giving up on it.
    pub retry_failed: u32,
    /// Disabled jobs do not run.
    pub disabled: bool,
    /// When it runs and how many snapshots each schedule keeps.
    #[serde(default)]
    pub schedules: Vec<JobSchedule>,
    /// Run time of its timed schedules, `HH:MM` in the agent's time zone.
    #[serde(default = "default_time")]
    pub time: String,
    /// Queue priority group: among queued runs, lower runs first (1-100).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Alert thresholds.
    #[serde(default)]
    pub monitor: Monitor,
    /// Commands run around each run.
    #[serde(default)]
    pub hooks: Hooks,
    /// Dead-man-switch URL (healthchecks.io style) pinged at each run's start and end.
    #[serde(default)]
    pub ping_url: Option<String>,
    /// Databases dumped into each snapshot.
    #[serde(default, skip_serializing_if = "JobDatabases::is_empty")]
    pub databases: JobDatabases,
    /// The system users an accounts job backs up.
    #[serde(default, skip_serializing_if = "JobAccounts::is_empty")]
    pub accounts: JobAccounts,
    /// The earliest next run of its schedules.
    #[serde(default)]
    pub next_run: Option<Timestamp>,
    /// The last run, if any.
    pub last_run: Option<RunSummary>,
}

/// Default job run time.
pub fn default_time() -> String {
    "00:00".into()
}

/// Default queue priority group.
pub fn default_priority() -> u8 {
    50
}

/// One schedule of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobSchedule {
    /// The spec in canonical form (also the tag of the snapshots it makes).
    pub spec: String,
    /// How many snapshots tagged with it are kept on each destination.
    pub retain: u32,
    /// When it is next due (none for `manual`, and for `after:` until the other job ran).
    #[serde(default)]
    pub next_run: Option<Timestamp>,
}

/// A schedule as given by a client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// The spec (`daily:mon,fri`, `after:db+2h`, ...).
    pub spec: String,
    /// Snapshots to keep (at least 1).
    pub retain: i64,
}

/// A job's monitors: alert when no backup succeeded for `notran`, or when a
/// run has gone on for longer than `ranfor` (`2d`, `12h`; none = off).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// No successful backup for this long.
    #[serde(default)]
    pub notran: Option<String>,
    /// A run going on for longer than this.
    #[serde(default)]
    pub ranfor: Option<String>,
}

/// A job's hooks: shell commands (`sh -c`, as root, with the run's context
/// in `HINDSIGHT_*` variables) run around each run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Before anything is written; its failure fails the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// After a run that made snapshots; its failure makes the run partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// After a run that failed or was partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// At the end of every run, last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finally: Option<String>,
    /// Seconds each may run before it is killed (1-86400).
    #[serde(default = "default_hook_timeout")]
    pub timeout: u32,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks { before: None, after: None, on_error: None, finally: None, timeout: default_hook_timeout() }
    }
}

impl Hooks {
    /// The command of one hook.
    pub fn command(&self, kind: HookKind) -> Option<&str> {
        match kind {
            HookKind::Before => self.before.as_deref(),
            HookKind::After => self.after.as_deref(),
            HookKind::OnError => self.on_error.as_deref(),
            HookKind::Finally => self.finally.as_deref(),
        }
    }

    /// Sets (or with `None` removes) one hook's command.
    pub fn set(&mut self, kind: HookKind, command: Option<String>) {
        let slot = match kind {
            HookKind::Before => &mut self.before,
            HookKind::After => &mut self.after,
            HookKind::OnError => &mut self.on_error,
            HookKind::Finally => &mut self.finally,
        };
        *slot = command;
    }
}

/// Default seconds a hook may run.
pub fn default_hook_timeout() -> u32 {
    300
}

/// How one hook of a run ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookResult {
    /// Which hook.
    pub hook: HookKind,
    /// Its command.
    pub command: String,
    /// It exited with status 0 within its timeout.
    pub ok: bool,
    /// Its exit status (none when it was killed or did not start).
    pub exit: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it ran, in milliseconds.
    pub millis: u64,
    /// The end of its output (stdout and stderr).
    pub output: String,
}

/// Body of `POST /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// Unique name.
    pub name: String,
    /// Job type (default directories).
    #[serde(rename = "type", default)]
    pub kind: Option<JobKind>,
    /// Absolute source paths.
    pub sources: Vec<String>,
    /// Exclude patterns.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Destination names.
    pub destinations: Vec<String>,
    /// Structure (default incremental).
    #[serde(default)]
    pub structure: Option<Structure>,
    /// Stay on one filesystem (default true).
    #[serde(default)]
    pub one_file_system: Option<bool>,
    /// Retries of changing files (default 1).
    #[serde(default)]
    pub retry_failed: Option<u32>,
    /// Create disabled.
    #[serde(default)]
    pub disabled: bool,
    /// Schedules (none: the job runs only when asked).
    #[serde(default)]
    pub schedules: Vec<ScheduleInput>,
    /// Run time `HH:MM` (default 00:00).
    #[serde(default)]
    pub time: Option<String>,
    /// Queue priority group, 1-100 (default 50).
    #[serde(default)]
    pub priority: Option<i64>,
    /// Monitors.
    #[serde(default)]
    pub monitor: Option<Monitor>,
    /// Hooks.
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// Ping URL.
    #[serde(default)]
    pub ping_url: Option<String>,
    /// Databases to dump.
    #[serde(default)]
    pub databases: Option<JobDatabases>,
    /// Users an accounts job backs up.
    #[serde(default)]
    pub accounts: Option<JobAccounts>,
}

impl NewJob {
    /// A directories job with every optional field left to its default.
    pub fn directories(name: &str, sources: Vec<String>, destinations: Vec<String>) -> Self {
        NewJob {
            name: name.into(),
            kind: None,
            sources,
            excludes: Vec::new(),
            destinations,
            structure: None,
            one_file_system: None,
            retry_failed: None,
            disabled: false,
            schedules: Vec::new(),
            time: None,
            priority: None,
            monitor: None,
            hooks: None,
            ping_url: None,
            databases: None,
            accounts: None,
        }
    }
}

/// Body of `PATCH /v1/jobs/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    /// New sources.
    #[serde(default)]
    pub sources: Option<Vec<String>>,
    /// New excludes.
    #[serde(default)]
    pub excludes: Option<Vec<String>>,
    /// New destinations.
    #[serde(default)]
    pub destinations: Option<Vec<String>>,
    /// New structure.
    #[serde(default)]
    pub structure: Option<Structure>,
    /// New one_file_system.
    #[serde(default)]
    pub one_file_system: Option<bool>,
    /// New retry_failed.
    #[serde(default)]
    pub retry_failed: Option<u32>,
    /// New disabled flag.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Replace the schedules.
    #[serde(default)]
    pub schedules: Option<Vec<ScheduleInput>>,
    /// New run time.
    #[serde(default)]
    pub time: Option<String>,
    /// New priority group.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Replace the monitors.
    #[serde(default)]
    pub monitor: Option<Monitor>,
    /// Replace the hooks.
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// New ping URL (empty: none).
    #[serde(default)]
    pub ping_url: Option<String>,
    /// Replace the databases dumped.
    #[serde(default)]
    pub databases: Option<JobDatabases>,
    /// Replace the users an accounts job backs up.
    #[serde(default)]
    pub accounts: Option<JobAccounts>,
}

/// What happened on one destination of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunDestination {
    /// Destination name.
    pub destination: String,
    /// The account this snapshot is of (accounts jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Its state (same values as the run's).
    pub state: RunState,
    /// Snapshot made there.
    pub snapshot: Option<String>,
    /// Why it failed or was skipped.
    pub message: Option<String>,
    /// Why the snapshot made there looks like a bad run (far fewer files or
    /// bytes than the previous one, or most files changed): retention was
    /// skipped for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspicious: Option<String>,
    /// It failed for a reason that may pass by itself (a timeout, a refused
    /// connection), after one more attempt within the run; false when the
    /// failure needs attention.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

/// A run of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Run {
    /// Id.
    pub id: RunId,
    /// Job name.
    pub job: String,
    /// State.
    pub state: RunState,
    /// What started it.
    pub trigger: Trigger,
    /// The schedules it serves (its snapshots carry these tags); "manual" for manual runs.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Summary of what went wrong.
    pub message: Option<String>,
    /// Counters (live while running).
    pub stats: Counters,
    /// Path being worked on (while running).
    pub current_path: Option<String>,
    /// Per destination outcome.
    pub destinations: Vec<RunDestination>,
    /// Files that could not be backed up (the first 1000).
    pub errors: Vec<FileError>,
    /// The hooks it ran, in order.
    #[serde(default)]
    pub hooks: Vec<HookResult>,
}

/// A snapshot on a destination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    /// Catalog id.
    pub id: SnapshotId,
    /// Destination name.
    pub destination: String,
    /// Job name (as recorded on the destination).
    pub job: String,
    /// Snapshot name.
    pub name: String,
    /// Structure.
    pub structure: Structure,
    /// Backup start.
    pub started: Timestamp,
    /// Backup end.
    pub finished: Timestamp,
    /// Regular files.
    pub files: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// Files written by this snapshot.
    pub files_added: u64,
    /// Bytes written by this snapshot.
    pub bytes_added: u64,
    /// Some files could not be backed up.
    pub partial: bool,
    /// The schedules it was made for ("manual" for a manual run).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Locked snapshots are never pruned by retention.
    #[serde(default)]
    pub locked: bool,
    /// Its place in the job's completion order on its destination (0: made
    /// before Hindsight recorded it; such snapshots order by name).
    #[serde(default)]
    pub sequence: u64,
    /// Directory of the snapshot (local destinations).
    pub path: Option<String>,
    /// Why the snapshot cannot be browsed or restored (unreadable index), from `snapshot show`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Agent version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// State directory.
    pub state_dir: String,
    /// Jobs with their last run.
    pub jobs: Vec<Job>,
    /// Runs queued or running.
    pub active_runs: Vec<Run>,
    /// Destinations with usage.
    pub destinations: Vec<Destination>,
    /// Alerts not acknowledged yet.
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// The time zone of schedules.
    #[serde(default)]
    pub timezone: String,
}

/// Something the user should know about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Alert {
    /// Id.
    pub id: AlertId,
    /// Level.
    pub level: AlertLevel,
    /// What it is about.
    pub kind: AlertKind,
    /// The job, destination or integration it concerns (one open alert per kind and subject).
    pub subject: String,
    /// The job it concerns.
    #[serde(default)]
    pub job: Option<String>,
    /// The destination it concerns.
    #[serde(default)]
    pub destination: Option<String>,
    /// The run it concerns.
    #[serde(default)]
    pub run: Option<RunId>,
    /// One line for humans.
    pub message: String,
    /// When it was raised.
    pub created: Timestamp,
    /// When it was acknowledged.
    pub acked_at: Option<Timestamp>,
}

/// The agent's settings (`GET /v1/settings`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    /// Backups running at once, 1-10.
    pub backup_concurrency: u32,
    /// Restores running at once, 1-10.
    pub restore_concurrency: u32,
    /// A run going on for longer is stopped and failed (hours; 0 = no limit).
    pub run_ttl_hours: u32,
    /// Manual snapshots kept per job and destination, 1-99.
    pub manual_retain: u32,
    /// Manual snapshots older than this many days are deleted (0 = never).
    pub manual_ttl: u32,
    /// Days of run history kept.
    pub logs_ttl: u32,
    /// Days acknowledged alerts are kept.
    pub alerts_ttl: u32,
    /// Deflate level of compressed snapshots, 1-12 (6 = gzip's default ratio).
    pub compress_level: u32,
    /// Compressor threads of compressed snapshots; 0 = one per core.
    pub compress_threads: u32,
    /// MiB of inflated archive members and remote file chunks the mount keeps in memory.
    pub cache_size: u32,
    /// IANA time zone of schedules; empty = the host's.
    pub timezone: String,
    /// A snapshot with this many percent fewer files or bytes than the one
    /// before is suspicious: retention is skipped and a warning raised (0 = off).
    #[serde(default)]
    pub suspicious_drop: u32,
    /// Likewise for a snapshot in which this many percent of the files changed (0 = off).
    #[serde(default)]
    pub suspicious_change: u32,
    /// Where PostgreSQL's `psql` is (empty: found in PATH).
    #[serde(default)]
    pub bin_psql: String,
    /// Where MariaDB's or MySQL's `mysql` is (empty: found in PATH).
    #[serde(default)]
    pub bin_mysql: String,
    /// Where MongoDB's `mongosh` is (empty: found in PATH).
    #[serde(default)]
    pub bin_mongosh: String,
    /// Where `mysqldump` is (empty: found in PATH).
    #[serde(default)]
    pub bin_mysqldump: String,
    /// Where `pg_dump` is (empty: found in PATH).
    #[serde(default)]
    pub bin_pg_dump: String,
    /// Where `pg_dumpall` is (empty: found in PATH).
    #[serde(default)]
    pub bin_pg_dumpall: String,
    /// Where `pg_restore` is (empty: found in PATH).
    #[serde(default)]
    pub bin_pg_restore: String,
    /// Where `mongodump` is (empty: found in PATH).
    #[serde(default)]
    pub bin_mongodump: String,
    /// Where `mongorestore` is (empty: found in PATH).
    #[serde(default)]
    pub bin_mongorestore: String,
    /// `mysqldump --max-allowed-packet`, in MiB (0: the tool's default).
    #[serde(default)]
    pub mysqldump_max_allowed_packet: u32,
    /// `mysqldump --force`: go on after an SQL error (1) or stop (0).
    #[serde(default)]
    pub mysqldump_force: u32,
    /// `mysqldump --opt` (1, the tool's default) or `--skip-opt` (0).
    #[serde(default = "one")]
    pub mysqldump_opt: u32,
    /// `mysqldump --skip-lock-tables` (1: `--single-transaction` alone keeps InnoDB tables consistent).
    #[serde(default = "one")]
    pub mysqldump_skip_lock_tables: u32,
    /// Lowest uid an accounts job backs up when it names no users.
    #[serde(default)]
    pub accounts_min_uid: u32,
    /// Highest uid an accounts job backs up when it names no users.
    #[serde(default)]
    pub accounts_max_uid: u32,
    /// Where each user's crontab is (a file named after the user).
    #[serde(default)]
    pub accounts_crontab_dir: String,
    /// Where each user's mail spool is (a file named after the user).
    #[serde(default)]
    pub accounts_mail_dir: String,
    /// The account whose snapshots hold the databases assigned to no account (empty: none).
    #[serde(default)]
    pub default_database_account: String,
    /// Days a snapshot of an account that no longer exists is kept (0: forever).
    #[serde(default)]
    pub orphan_ttl: u32,
    /// Days after a user is gone that every record of its account is deleted (0: off).
    #[serde(default)]
    pub forget_ttl: u32,
    /// Where downloads are built (empty: `<state dir>/downloads`).
    #[serde(default)]
    pub download_dir: String,
    /// Days a download is kept (0: until removed).
    #[serde(default)]
    pub downloads_ttl: u32,
    /// Downloads kept per account, the oldest removed first (0: no limit).
    #[serde(default)]
    pub downloads_per_account: u32,
    /// The queue priority group of accounts that name none (empty: priority 50).
    #[serde(default)]
    pub default_priority_group: String,
}

fn one() -> u32 {
    1
}

/// Body of `PUT /v1/settings/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingValue {
    /// The new value, as text.
    pub value: String,
}

/// Body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable code and a readable message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Stable code: bad_request, not_found, conflict, validation_failed, internal.
    pub code: String,
    /// One line for humans.
    pub message: String,
    /// The same request may succeed later, unchanged (a destination that
    /// timed out or refused a connection).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

/// Converts JSON `null` in options to absence, for display.
pub fn option_str<'a>(options: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    options.get(key).and_then(Value::as_str)
}
