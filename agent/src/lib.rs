//! Hindsight agent library: everything `hindsightd` does, callable from tests.
//!
//! - `error`: the domain's error, its kinds and the rules every module follows;
//! - `backup`: the backup engine (sync; run on blocking threads);
//! - [`catalog`]: the SQLite catalog of destinations, jobs, runs and snapshots;
//! - `api`: the JSON HTTP API on the Unix socket (its types are the
//!   `hindsight-api` crate, shared with the CLI);
//! - [`model`]: those types as the agent uses them, plus the destination as
//!   the catalog keeps it (secrets sealed);
//! - [`runner`]: the run queue and the execution of runs;
//! - [`schedule`]: schedule specs and due-time arithmetic (pure);
//! - [`scheduler`]: queues due runs on an injectable clock, watches monitors;
//! - `retention`: which snapshots a completed run lets go;
//! - `deleter`: the low-priority background removal of deleted snapshots;
//! - `settings`: the agent's settings, defaults and ranges;
//! - [`destinations`]: validation and adoption of destinations;
//! - `secrets`: the master key and the sealing of secret options;
//! - `check`: integrity checks of every snapshot of a destination;
//! - `check_schedule`: the destinations' scheduled checks;
//! - `databases`: database servers, their settings and their clients;
//! - [`daemon`]: start-up, the state-dir lock, signals and shutdown;
//! - [`logging`]: the log on stderr, with syslog priorities under systemd;
//! - [`shutdown`]: the one shutdown signal and the tracker of background work;
//! - [`config`]: the daemon's command line, validated into its configuration;
//! - [`jobs`]: validation of jobs, their schedules and monitors;
//! - `snapshots`: deleting a snapshot, and whether one can be browsed;
//! - `prune`: removing remote blobs no snapshot uses any more;
//! - `suspicion`: whether a new snapshot looks like a bad run;
//! - `notify`: the one path of alerts (log, catalog, notifications) and
//!   the delivery of notifications (email, webhooks), with retries and digests;
//! - `host`: the machine's name;
//! - `hooks`: a job's commands run before and after its backups;
//! - `process`: running a helper program with a timeout, its output kept;
//! - `sd_notify`: the systemd notify protocol (ready, status, watchdog, stopping);
//! - `metrics`: the Prometheus exporter (`--metrics-listen`);
//! - [`fuzzing`]: entry points of the fuzz targets.

// What is public is decided at the root (the `pub use` block below):
// a `pub` item no one outside the crate can reach is a mistake.
#![warn(unreachable_pub)]

// What the daemon binary, the agent's tests and the fuzz targets use is
// public; the rest is the agent's own. Modules are listed above in the order
// a reader meets them.
mod accounts;
mod api;
mod backup;
pub mod catalog;
mod check;
mod check_schedule;
pub mod config;
pub mod daemon;
mod databases;
mod deleter;
pub mod destinations;
mod download;
mod error;
pub mod fuzzing;
mod history;
mod hooks;
mod host;
pub mod jobs;
pub mod logging;
mod metrics;
pub mod model;
mod notify;
mod process;
mod prune;
mod restore;
mod restore_rules;
mod retention;
pub mod runner;
pub mod schedule;
pub mod scheduler;
mod sd_notify;
mod secrets;
mod settings;
pub mod shutdown;
mod snapshot_file;
mod snapshots;
mod suspicion;
mod tasks;

// The agent's public surface besides those modules.
pub use error::{AgentError, AgentResult, ErrorKind};
pub use secrets::MasterKey;
