//! The command line of `hindsight`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// hindsight: control the Hindsight backup agent.
#[derive(Debug, Parser)]
#[command(name = "hindsight", version, about)]
pub struct Cli {
    /// The agent's API socket.
    #[arg(long, global = true, env = "HINDSIGHT_SOCKET", default_value = "/run/hindsight/hindsightd.sock")]
    pub socket: PathBuf,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The agent, its jobs, runs and destinations at a glance.
    Status {
        /// Print one line and exit 0 when no alert is open, 1 with warnings,
        /// 2 with a critical alert, 3 when the agent cannot be reached (the
        /// Nagios plugin convention).
        #[arg(long)]
        check: bool,
    },
    /// Manage destinations.
    #[command(subcommand)]
    Destination(DestinationCmd),
    /// Manage backup jobs.
    #[command(subcommand)]
    Job(JobCmd),
    /// Inspect and cancel runs.
    #[command(subcommand)]
    Run(RunCmd),
    /// List, inspect and delete snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Show and change the agent's settings.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// List and acknowledge alerts.
    #[command(subcommand)]
    Alert(AlertCmd),
    /// Manage notification integrations (email, webhooks), which send alerts.
    #[command(subcommand)]
    Notify(NotifyCmd),
    /// Manage the database servers whose databases jobs dump.
    #[command(subcommand)]
    Database(DatabaseCmd),
    /// Restore from snapshots (each restore is a task the agent queues).
    #[command(subcommand)]
    Restore(RestoreCmd),
    /// Follow and cancel restores and the agent's other tasks.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Build a .tar.gz of files of a snapshot in the agent's download
    /// directory (`download SNAPSHOT PATH... [--wait]`); `download list`,
    /// `download remove ID`.
    Download(DownloadArgs),
    /// Texts every restore must accept (--accept-conditions).
    #[command(subcommand)]
    RestoreCondition(RestoreConditionCmd),
    /// Owners, groups and modes restores give at matching paths.
    #[command(subcommand)]
    PermissionRule(PermissionRuleCmd),
    /// The system users accounts jobs back up: list, priority groups, forget.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Queue priority groups of accounts.
    #[command(subcommand)]
    PriorityGroup(PriorityGroupCmd),
    /// Every distinct version of a file (or directory listing) across the
    /// snapshots, newest first, from the indexes (no file is read).
    Versions {
        /// Absolute path, as on the machine backed up.
        path: String,
        /// Only this job's snapshots (JOB@USER: one account's).
        #[arg(long)]
        job: Option<String>,
        /// Only this destination's.
        #[arg(long)]
        destination: Option<String>,
    },
    /// Paths matching a pattern across the snapshots, with the snapshots
    /// each is in: a glob on names (`*.conf`), or on whole paths when it
    /// holds a `/` (`/etc/**/*.conf`).
    Find {
        /// The pattern.
        pattern: String,
        /// Only this job's snapshots.
        #[arg(long)]
        job: Option<String>,
        /// Only this destination's.
        #[arg(long)]
        destination: Option<String>,
        /// Only snapshots completed at or after (2026-11-22 or RFC 3339, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only snapshots completed before.
        #[arg(long)]
        until: Option<String>,
    },
    /// What was added, removed or changed (content, mode, owner, xattrs, ...)
    /// from snapshot A to snapshot B, like `restic diff`.
    Diff {
        /// Snapshot id of the older side.
        a: i64,
        /// Snapshot id of the newer side.
        b: i64,
        /// Only this absolute path and what is below it.
        path: Option<String>,
    },
    /// The agent's master key, which encrypts the destinations' secrets.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Mount one destination's snapshots without the agent (disaster recovery).
    Mount(MountArgs),
    /// Unmount a snapshot filesystem.
    Umount {
        /// The mountpoint.
        dir: PathBuf,
    },
    /// Print a shell completion script (bash, zsh, fish): e.g.
    /// `source <(hindsight completions bash)`.
    Completions {
        /// bash, zsh or fish.
        shell: String,
    },
    /// Print the manual page hindsight(1) in roff: `hindsight man | man -l -`.
    Man,
}

/// `hindsight restore ...`
#[derive(Debug, Subcommand)]
pub enum RestoreCmd {
    /// Restore a database from its dump in a snapshot, with the engine's own
    /// tool (pg_restore, mysql, mongorestore); an existing database is never
    /// dropped unless --replace is given.
    Database(RestoreDatabaseArgs),
    /// Restore files and directories of a snapshot, exactly (content checked,
    /// owner, mode, times, xattrs, ACLs, hardlinks, sparse files), never
    /// following a symlink or writing through a hardlink at the target.
    Files(RestoreFilesArgs),
}

/// `restore files`.
#[derive(Debug, Args)]
pub struct RestoreFilesArgs {
    /// Snapshot id (`snapshot list`).
    pub snapshot: String,
    /// Absolute paths as on the machine backed up (`/` for everything).
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Restore under DIR (as DIR/<absolute path>) instead of the original place.
    #[arg(long, value_name = "DIR")]
    pub to: Option<String>,
    /// merge (default: write what is missing or differs, keep files newer at
    /// the target), overwrite (write everything) or skip-existing.
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// Only list what would be written.
    #[arg(long)]
    pub dry_run: bool,
    /// Accept the administrator's restore conditions (`restore-condition list`).
    #[arg(long)]
    pub accept_conditions: bool,
    /// Follow the restore until it ends; exit 0 only if it completed.
    #[arg(long)]
    pub wait: bool,
}

/// `restore database`.
#[derive(Debug, Args)]
pub struct RestoreDatabaseArgs {
    /// Snapshot id (`snapshot list`).
    pub snapshot: String,
    /// The database server the dump was taken from.
    pub server: String,
    /// The database.
    pub database: String,
    /// Restore under another name.
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    /// Restore into another database server (of the same engine).
    #[arg(long, value_name = "SERVER")]
    pub to: Option<String>,
    /// Replace the database if it exists.
    #[arg(long)]
    pub replace: bool,
    /// Accept the administrator's restore conditions (`restore-condition list`).
    #[arg(long)]
    pub accept_conditions: bool,
    /// Follow the restore until it ends; exit 0 only if it completed.
    #[arg(long)]
    pub wait: bool,
}

/// `hindsight task ...`
#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Tasks, newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One task with its progress and result.
    Show {
        /// Task id.
        id: String,
    },
    /// Cancel a queued or running task.
    Cancel {
        /// Task id.
        id: String,
    },
    /// Follow a task until it ends; exit 0 only if it completed.
    Wait {
        /// Task id.
        id: String,
    },
}

/// `hindsight mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Root directory of the destination (the directory holding `HINDSIGHT`), or
    /// a remote destination's URL: s3://BUCKET/PATH, gcs://BUCKET/PATH,
    /// ftp[s]://USER@HOST:PORT/PATH, ssh://USER@HOST:PORT/PATH. Options the URL
    /// cannot carry come from --option / --option-file, or from the environment
    /// as HINDSIGHT_<OPTION> (e.g. HINDSIGHT_SECRET_KEY, HINDSIGHT_PASSWORD),
    /// HINDSIGHT_<OPTION>_FILE (a file holding it) or HINDSIGHT_<OPTION>_COMMAND
    /// (a command printing it).
    #[arg(long, value_name = "PATH_OR_URL")]
    pub destination: String,
    /// Options of a remote destination.
    #[command(flatten)]
    pub options: OptionArgs,
    /// Empty directory to mount on.
    pub dir: PathBuf,
    /// Detach once mounted (stop with `hindsight umount DIR`).
    #[arg(long)]
    pub background: bool,
}

/// `hindsight destination ...`
#[derive(Debug, Subcommand)]
pub enum DestinationCmd {
    /// Destination types and the options they take.
    Types,
    /// Add a destination (it is validated first).
    Add(DestinationAdd),
    /// List destinations.
    List,
    /// Show one destination.
    Show {
        /// Destination name.
        name: String,
    },
    /// Change a destination (it is validated again).
    Edit(DestinationEdit),
    /// Remove a destination from the agent (its snapshots stay on disk).
    Remove {
        /// Destination name.
        name: String,
    },
    /// Test a destination and refresh its disk usage.
    Validate {
        /// Destination name.
        name: String,
    },
    /// Rebuild the agent's list of a destination's snapshots from what it holds.
    Reindex {
        /// Destination name.
        name: String,
    },
    /// Verify the integrity of every snapshot on a destination.
    ///
    /// Checks each complete snapshot's manifest and index, then its contents:
    /// for incremental snapshots every entry of the index in tree/ (kind,
    /// size), for archived and compressed ones every gzip member and tar
    /// header. With --read-data, every file's content is also hashed and
    /// compared with the index (reads everything). Works on read-only and
    /// disabled destinations.
    ///
    /// Exit status: 0 when every snapshot is intact, 1 when a problem was
    /// found (or the check could not run).
    Check {
        /// Destination name.
        name: String,
        /// Also hash every file's content (slow: reads all the data).
        #[arg(long, conflicts_with_all = ["read_data_percent", "last"])]
        read_data: bool,
        /// Hash about this percent of the files (1-100), a new random share each check.
        #[arg(long, value_name = "PCT", conflicts_with = "last")]
        read_data_percent: Option<u8>,
        /// Show the report of the last check (manual or scheduled) instead of checking.
        #[arg(long)]
        last: bool,
    },
}

/// `hindsight key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Print the master key (hex), to keep offline for disaster recovery.
    ///
    /// The key decrypts every password, key and token stored in the catalog:
    /// whoever has it and a copy of the state directory has them all.
    Export,
}

/// One `KEY=VALUE` destination option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionArg {
    /// Option name (`secret_key`; `secret-key` is accepted too).
    pub key: String,
    /// Its value.
    pub value: String,
}

/// Parses `KEY=VALUE`; the value may contain `=`.
fn option_arg(s: &str) -> Result<OptionArg, String> {
    let (key, value) = s.split_once('=').ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("{s:?} has no option name before ="));
    }
    Ok(OptionArg { key: key.replace('-', "_"), value: value.to_string() })
}

/// Destination options given as flags (`destination add` and `destination edit`).
#[derive(Debug, Args)]
pub struct OptionArgs {
    /// A type option, KEY=VALUE (repeatable; see `destination types`), e.g. -o bucket=backups.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE", value_parser = option_arg)]
    pub options: Vec<OptionArg>,
    /// A type option read from a file, KEY=PATH (repeatable): keeps secrets out of
    /// the command line; one trailing newline is dropped.
    #[arg(long = "option-file", value_name = "KEY=PATH", value_parser = option_arg)]
    pub option_files: Vec<OptionArg>,
}

/// `destination add`.
#[derive(Debug, Args)]
pub struct DestinationAdd {
    /// Destination name.
    pub name: String,
    /// Type (see `destination types`).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// Root directory (local), or root inside the service (same as -o path=...).
    #[arg(long)]
    pub path: Option<String>,
    #[command(flatten)]
    pub options: OptionArgs,
    /// Refuse backups when the disk is this % full (0 = no limit).
    #[arg(long, value_name = "PCT", allow_negative_numbers = true)]
    pub disk_limit: Option<i64>,
    /// Visible to root only in the mount.
    #[arg(long)]
    pub hidden: bool,
    /// Never write to it.
    #[arg(long)]
    pub readonly: bool,
    /// Jobs skip it.
    #[arg(long)]
    pub disabled: bool,
    /// Use a non-empty directory that holds no Hindsight marker.
    #[arg(long)]
    pub force: bool,
    /// A root that already holds a destination (another agent's) is adopted
    /// read-only; with this, this agent writes to it too.
    #[arg(long, conflicts_with = "readonly")]
    pub writable: bool,
    #[command(flatten)]
    pub check: CheckArgs,
}

/// A destination's scheduled check (`destination add` and `destination edit`).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check the destination on this schedule (daily, weekly:sun, monthly:1,
    /// hourly:6...; empty in edit: no scheduled check).
    #[arg(long, value_name = "SPEC")]
    pub check_schedule: Option<String>,
    /// Time of day of the scheduled check, HH:MM (default 03:00).
    #[arg(long, value_name = "HH:MM")]
    pub check_time: Option<String>,
    /// Percent of the file contents a scheduled check reads and hashes (0-100, default 0).
    #[arg(long, value_name = "PCT")]
    pub check_read_data: Option<u8>,
}

/// `destination edit`.
#[derive(Debug, Args)]
pub struct DestinationEdit {
    /// Destination name.
    pub name: String,
    /// New root directory (local), or root inside the service.
    #[arg(long)]
    pub path: Option<String>,
    /// Changed options (an empty VALUE removes the option; a secret given as
    /// ******** keeps its stored value).
    #[command(flatten)]
    pub options: OptionArgs,
    /// New disk limit in %.
    #[arg(long, value_name = "PCT", allow_negative_numbers = true)]
    pub disk_limit: Option<i64>,
    /// Hidden (true/false).
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub hidden: Option<bool>,
    /// Read-only (true/false).
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub readonly: Option<bool>,
    /// Disabled (true/false).
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub disabled: Option<bool>,
    /// Use a non-empty directory that holds no Hindsight marker.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub check: CheckArgs,
}

/// `hindsight job ...`
#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Add a directories backup job.
    Add(JobAdd),
    /// List jobs.
    List,
    /// Show one job.
    Show {
        /// Job name.
        name: String,
    },
    /// Change a job.
    Edit(JobEdit),
    /// Let a job run again.
    Enable {
        /// Job name.
        name: String,
    },
    /// Stop a job from running.
    Disable {
        /// Job name.
        name: String,
    },
    /// Remove a job (its snapshots stay on the destinations).
    Remove {
        /// Job name.
        name: String,
    },
    /// Queue a run of a job now.
    Run {
        /// Job name.
        name: String,
        /// Follow the run until it ends; exit 0 only if it completed.
        #[arg(long)]
        wait: bool,
    },
}

/// `job add`.
#[derive(Debug, Args)]
pub struct JobAdd {
    /// Job name.
    pub name: String,
    /// directories (default: the --source paths) or accounts (one snapshot
    /// per system user: home, crontab, mail spool, their databases).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Absolute path to back up (repeatable; a job needs sources, databases or both).
    #[arg(long = "source", value_name = "DIR")]
    pub sources: Vec<String>,
    /// Destination name (repeatable: each gets its own snapshot).
    #[arg(long = "destination", value_name = "NAME", required = true)]
    pub destinations: Vec<String>,
    /// Exclude pattern (repeatable; see README).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// incremental (hardlink tree, default), archived (data.tar) or compressed (data.tar.gz).
    #[arg(long, value_name = "STRUCTURE")]
    pub structure: Option<String>,
    /// Cross mount points below the sources.
    #[arg(long)]
    pub no_one_file_system: bool,
    /// Copies of a file that changes while being read before giving up (default 1).
    #[arg(long, value_name = "N")]
    pub retry_failed: Option<u32>,
    /// Create the job disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub timing: Timing,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub databases: JobDatabaseArgs,
    #[command(flatten)]
    pub accounts: JobAccountArgs,
}

/// The users of an accounts job (`job add` and `job edit`).
#[derive(Debug, Args)]
pub struct JobAccountArgs {
    /// Back up only this user (repeatable; default: every user whose uid is
    /// within the accounts_min_uid..accounts_max_uid settings; in `edit`,
    /// replaces the list).
    #[arg(long = "account", value_name = "USER")]
    pub account: Vec<String>,
    /// Never back up this user (repeatable; in `edit`, replaces the list).
    #[arg(long = "exclude-account", value_name = "USER")]
    pub exclude_account: Vec<String>,
}

/// The database dumps of a job (`job add` and `job edit`).
#[derive(Debug, Args)]
pub struct JobDatabaseArgs {
    /// Dump databases of this server into each snapshot: SERVER (every
    /// database but the server's own) or SERVER:DB,DB (repeatable; in `edit`,
    /// replaces the list).
    #[arg(long = "database", value_name = "SERVER[:DB,...]")]
    pub databases: Vec<String>,
    /// Leave out databases whose name matches (repeatable).
    #[arg(long = "exclude-database", value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Leave out databases larger than SIZE (bytes, or with K, M, G, T; 0 = no limit).
    #[arg(long = "exclude-database-larger-than", value_name = "SIZE")]
    pub larger_than: Option<String>,
}

impl JobDatabaseArgs {
    /// True when no database flag was given.
    pub fn is_empty(&self) -> bool {
        self.databases.is_empty() && self.exclude.is_empty() && self.larger_than.is_none()
    }
}

/// Hooks and the ping URL of a job (`job add` and `job edit`; in `edit` an
/// empty value removes one).
#[derive(Debug, Args)]
pub struct HookArgs {
    /// Command run before the backup (sh -c, as root); if it fails the run
    /// fails and nothing is written.
    #[arg(long, value_name = "COMMAND")]
    pub before: Option<String>,
    /// Command run after a run that made snapshots; if it fails the run is partial.
    #[arg(long, value_name = "COMMAND")]
    pub after: Option<String>,
    /// Command run after a run that failed or was partial.
    #[arg(long, value_name = "COMMAND")]
    pub on_error: Option<String>,
    /// Command run at the end of every run.
    #[arg(long, value_name = "COMMAND")]
    pub finally: Option<String>,
    /// Seconds a hook may run before it is killed (default 300).
    #[arg(long, value_name = "SECONDS")]
    pub hook_timeout: Option<u32>,
    /// Dead-man-switch URL (healthchecks.io style): URL/start at each run's
    /// start, URL when it completes, URL/fail when it fails or is partial.
    #[arg(long, value_name = "URL")]
    pub ping_url: Option<String>,
}

impl HookArgs {
    /// True when no hook flag was given.
    pub fn is_empty(&self) -> bool {
        self.before.is_none()
            && self.after.is_none()
            && self.on_error.is_none()
            && self.finally.is_none()
            && self.hook_timeout.is_none()
    }
}

/// Schedules, run time, priority and monitors of a job (`job add` and `job edit`).
#[derive(Debug, Args)]
pub struct Timing {
    /// When to run: manual, hourly[:N], daily[:mon,...], weekly:DAY, monthly:1,15,
    /// after:JOB[+2h] (repeatable; each takes the --retain given in the same position).
    #[arg(long = "schedule", value_name = "SPEC")]
    pub schedules: Vec<String>,
    /// Snapshots the schedule in the same position keeps (repeatable).
    #[arg(long = "retain", value_name = "N", allow_negative_numbers = true)]
    pub retains: Vec<i64>,
    /// Run time of timed schedules, HH:MM in the agent's time zone (default 00:00).
    #[arg(long, value_name = "HH:MM")]
    pub time: Option<String>,
    /// Queue priority group, 1-100: among queued runs, lower runs first (default 50).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// Alert when no backup completed for this long (days, or 12h; 0 = off).
    #[arg(long, value_name = "DAYS")]
    pub notran: Option<String>,
    /// Alert when a run goes on for longer than this (days, or 12h; 0 = off).
    #[arg(long, value_name = "DAYS")]
    pub ranfor: Option<String>,
}

/// `job edit`.
#[derive(Debug, Args)]
pub struct JobEdit {
    /// Job name.
    pub name: String,
    /// Replace the sources.
    #[arg(long = "source", value_name = "DIR")]
    pub sources: Vec<String>,
    /// Replace the destinations.
    #[arg(long = "destination", value_name = "NAME")]
    pub destinations: Vec<String>,
    /// Replace the exclude patterns.
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Remove every exclude pattern.
    #[arg(long, conflicts_with = "excludes")]
    pub clear_excludes: bool,
    /// New structure (incremental, archived, compressed); the next snapshot uses it.
    #[arg(long, value_name = "STRUCTURE")]
    pub structure: Option<String>,
    /// Stay on the sources' filesystems (true/false).
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub one_file_system: Option<bool>,
    /// New retry_failed.
    #[arg(long, value_name = "N")]
    pub retry_failed: Option<u32>,
    /// Remove every schedule (the job then runs only when asked).
    #[arg(long, conflicts_with = "schedules")]
    pub clear_schedules: bool,
    #[command(flatten)]
    pub timing: Timing,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub databases: JobDatabaseArgs,
    /// Dump no database any more (and forget the database excludes).
    #[arg(long, conflicts_with_all = ["databases", "exclude", "larger_than"])]
    pub no_databases: bool,
    #[command(flatten)]
    pub accounts: JobAccountArgs,
    /// Back up every user in the uid range again (drop --account and --exclude-account).
    #[arg(long, conflicts_with_all = ["account", "exclude_account"])]
    pub all_accounts: bool,
}

/// `hindsight run ...`
#[derive(Debug, Subcommand)]
pub enum RunCmd {
    /// Runs, newest first.
    List {
        /// Only this job's.
        #[arg(long)]
        job: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One run with its counters and errors.
    Show {
        /// Run id.
        id: String,
    },
    /// Cancel a queued or running run (a running backup stops cleanly and resumes next time).
    Cancel {
        /// Run id.
        id: String,
    },
}

/// `hindsight snapshot ...`
#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Snapshots, newest first.
    List {
        /// Only this job's.
        #[arg(long)]
        job: Option<String>,
        /// Only on this destination.
        #[arg(long)]
        destination: Option<String>,
    },
    /// One snapshot.
    Show {
        /// Snapshot id.
        id: String,
    },
    /// Delete one snapshot (data shared with other snapshots stays).
    Delete {
        /// Snapshot id.
        id: String,
    },
    /// Keep a snapshot whatever the retention says.
    Lock {
        /// Snapshot id.
        id: String,
    },
    /// Let retention prune a snapshot again.
    Unlock {
        /// Snapshot id.
        id: String,
    },
}

/// `hindsight settings ...`
#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    /// Every setting with its value.
    Show,
    /// Change one setting.
    Set {
        /// Setting name (see `settings show`).
        key: String,
        /// New value.
        value: String,
    },
}

/// `hindsight alert ...`
#[derive(Debug, Subcommand)]
pub enum AlertCmd {
    /// Open alerts, newest first.
    List {
        /// Acknowledged ones too.
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge an alert.
    Ack {
        /// Alert id.
        id: String,
    },
}

/// `hindsight notify ...`
#[derive(Debug, Subcommand)]
pub enum NotifyCmd {
    /// Add an integration.
    Add {
        /// Its name.
        name: String,
        /// Type: email or webhook.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        #[command(flatten)]
        settings: NotifierArgs,
    },
    /// List integrations.
    List,
    /// Show one integration and its recent deliveries.
    Show {
        /// Its name.
        name: String,
    },
    /// Change an integration: only what is given changes.
    Edit {
        /// Its name.
        name: String,
        #[command(flatten)]
        settings: NotifierArgs,
        /// Send nothing until enabled again.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Send again.
        #[arg(long)]
        enable: bool,
    },
    /// Remove an integration and its undelivered notifications.
    Remove {
        /// Its name.
        name: String,
    },
    /// Send a test message now and print the server's answer.
    Test {
        /// Its name.
        name: String,
    },
}

/// Settings of a notification integration (`notify add` and `notify edit`).
#[derive(Debug, Args)]
pub struct NotifierArgs {
    /// A level to receive and how often: LEVEL (in real time) or LEVEL:digest
    /// (in the daily digest); levels: information, warning, critical.
    /// Repeatable; replaces all levels. Default: warning and critical in real time.
    #[arg(long = "level", value_name = "LEVEL[:FREQUENCY]")]
    pub levels: Vec<String>,
    /// Time of the daily digest, HH:MM in the schedules' time zone (default 08:00).
    #[arg(long, value_name = "HH:MM")]
    pub digest_at: Option<String>,
    /// Retries of a notification that cannot be delivered (default 10, 10 s
    /// after the first failure, then twice as long each time, up to an hour).
    #[arg(long)]
    pub retries: Option<u32>,
    /// Seconds one attempt may take (default 30).
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Check the server's TLS certificate (default true).
    #[arg(long, value_name = "BOOL")]
    pub verify_tls: Option<bool>,
    /// email: sender address.
    #[arg(long)]
    pub from: Option<String>,
    /// email: a recipient (repeatable; replaces all recipients).
    #[arg(long = "to", value_name = "ADDRESS")]
    pub to: Vec<String>,
    /// email: SMTP server.
    #[arg(long)]
    pub host: Option<String>,
    /// email: SMTP port (default 25, 587 or 465 by --security).
    #[arg(long)]
    pub port: Option<u16>,
    /// email: user name to authenticate with.
    #[arg(long)]
    pub username: Option<String>,
    /// email: read the password from this file (stored encrypted, never shown).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// email: none, starttls (default) or tls.
    #[arg(long)]
    pub security: Option<String>,
    /// webhook: the http:// or https:// URL to POST to.
    #[arg(long)]
    pub url: Option<String>,
    /// webhook: a header NAME=VALUE (repeatable; with --secret-header, replaces all headers).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// webhook: a header NAME=VALUE whose value is a secret (stored encrypted, never shown).
    #[arg(long = "secret-header", value_name = "NAME=VALUE")]
    pub secret_headers: Vec<String>,
    /// webhook: a secret header NAME=PATH whose value is read from a file.
    #[arg(long = "secret-header-file", value_name = "NAME=PATH")]
    pub secret_header_files: Vec<String>,
}

/// `hindsight database ...`
#[derive(Debug, Subcommand)]
pub enum DatabaseCmd {
    /// Add a database server.
    Add {
        /// Its name.
        name: String,
        /// mysql (MariaDB and MySQL), postgresql or mongodb.
        #[arg(long)]
        engine: String,
        #[command(flatten)]
        settings: DatabaseArgs,
    },
    /// List database servers.
    List,
    /// Show one database server.
    Show {
        /// Its name.
        name: String,
    },
    /// Change a database server: only what is given changes (an empty value removes it).
    Edit {
        /// Its name.
        name: String,
        #[command(flatten)]
        settings: DatabaseArgs,
    },
    /// Remove a database server.
    Remove {
        /// Its name.
        name: String,
    },
    /// Connect and list the server's databases with their sizes.
    Test {
        /// Its name.
        name: String,
    },
    /// Assign a database to an account: accounts jobs store its dumps in
    /// that account's snapshots (PostgreSQL databases go with their owner
    /// unless assigned; the rest with the default_database_account setting).
    Assign {
        /// SERVER:DATABASE.
        #[arg(value_name = "SERVER:DATABASE")]
        database: String,
        /// The account (system user name).
        account: String,
    },
    /// Remove a database's assignment.
    Unassign {
        /// SERVER:DATABASE.
        #[arg(value_name = "SERVER:DATABASE")]
        database: String,
    },
    /// Databases assigned to accounts.
    Assignments,
}

/// `hindsight download ...`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DownloadArgs {
    #[command(subcommand)]
    pub cmd: Option<DownloadCmd>,
    /// Snapshot id (`snapshot list`).
    #[arg(required = true)]
    pub snapshot: Option<String>,
    /// Absolute paths as on the machine backed up (`/` for everything).
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Follow the build until it ends; exit 0 only if it completed.
    #[arg(long)]
    pub wait: bool,
}

/// `hindsight download list|remove`.
#[derive(Debug, Subcommand)]
pub enum DownloadCmd {
    /// The downloads kept, with their paths, sizes and expiry.
    List,
    /// Delete a download's file.
    Remove {
        /// Its id.
        id: i64,
    },
}

/// `hindsight restore-condition ...`
#[derive(Debug, Subcommand)]
pub enum RestoreConditionCmd {
    /// The conditions, with their ids.
    List,
    /// Add a condition.
    Add {
        /// Its text.
        text: String,
    },
    /// Remove a condition.
    Remove {
        /// Its id.
        id: i64,
    },
}

/// `hindsight permission-rule ...`
#[derive(Debug, Subcommand)]
pub enum PermissionRuleCmd {
    /// The rules, in the order they apply (later ones win).
    List,
    /// Add a rule: what a restore writes at paths matching GLOB gets these.
    Add {
        /// Glob on absolute paths as backed up (`/home/*/public_html`, `**/*.php`).
        glob: String,
        /// Owner (user name).
        #[arg(long)]
        owner: Option<String>,
        /// Group (name).
        #[arg(long)]
        group: Option<String>,
        /// Mode of files, octal (0640).
        #[arg(long, value_name = "MODE")]
        file_mode: Option<String>,
        /// Mode of directories, octal (0750).
        #[arg(long, value_name = "MODE")]
        dir_mode: Option<String>,
        /// Also everything below a matching directory.
        #[arg(long)]
        recursive: bool,
    },
    /// Remove a rule.
    Remove {
        /// Its id.
        id: i64,
    },
}

/// `hindsight priority-group ...`
#[derive(Debug, Subcommand)]
pub enum PriorityGroupCmd {
    /// The groups and their priorities.
    List,
    /// Add a group, or change its priority.
    Add {
        /// Its name.
        name: String,
        /// 1-100, lower first.
        #[arg(long)]
        priority: u8,
    },
    /// Remove a group no account is in (and not the default_priority_group).
    Remove {
        /// Its name.
        name: String,
    },
}

/// `hindsight account ...`
#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Accounts: users accounts jobs back up, and orphans (users that no
    /// longer exist but have snapshots).
    List,
    /// One account: its uid, home, snapshots, jobs and databases.
    Show {
        /// User name.
        name: String,
    },
    /// Put an account in a queue priority group: within a run of an accounts
    /// job, accounts of groups with lower values are backed up first.
    Edit {
        /// User name.
        name: String,
        /// The group (`priority-group list`); "" for none (the default group).
        #[arg(long, value_name = "GROUP")]
        priority_group: String,
    },
    /// Delete every snapshot (on every destination, locked ones included),
    /// run record, alert and task of an account, and say what was removed.
    Forget {
        /// User name.
        name: String,
        /// Even though the user still exists on this system.
        #[arg(long)]
        force: bool,
    },
}

/// How to reach a database server (`database add` and `database edit`).
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Host name or address (TCP).
    #[arg(long)]
    pub host: Option<String>,
    /// Port (default: the engine's).
    #[arg(long)]
    pub port: Option<u16>,
    /// Unix socket: its path (mysql) or its directory (postgresql).
    #[arg(long, value_name = "PATH")]
    pub unix_socket: Option<String>,
    /// User to connect as.
    #[arg(long)]
    pub user: Option<String>,
    /// Read the password from this file (stored encrypted, never shown, never on a command line).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// TLS: disable, prefer (default), require, verify.
    #[arg(long)]
    pub tls: Option<String>,
}
