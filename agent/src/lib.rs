//! Hindsight agent library: everything `hindsightd` does, callable from tests.
//!
//! - [`backup`]: the backup engine (sync; run on blocking threads);
//! - [`catalog`]: the SQLite catalog of destinations, jobs, runs and snapshots;
//! - [`api`]: the JSON HTTP API on the Unix socket (its types are the
//!   `hindsight-api` crate, shared with the CLI);
//! - [`model`]: those types as the agent uses them, plus the destination as
//!   the catalog keeps it (secrets sealed);
//! - [`runner`]: the run queue and the execution of runs;
//! - [`schedule`]: schedule specs and due-time arithmetic (pure);
//! - [`scheduler`]: queues due runs on an injectable clock, watches monitors;
//! - [`retention`]: which snapshots a completed run lets go;
//! - [`deleter`]: the low-priority background removal of deleted snapshots;
//! - [`settings`]: the agent's settings, defaults and ranges;
//! - [`destinations`]: validation and adoption of destinations;
//! - [`secrets`]: the master key and the sealing of secret options;
//! - [`check`]: integrity checks of every snapshot of a destination;
//! - [`daemon`]: start-up, the state-dir lock, signals and shutdown;
//! - [`shutdown`]: the one shutdown signal and the tracker of background work;
//! - [`config`]: the daemon's command line, validated into its configuration;
//! - [`jobs`]: validation of jobs, their schedules and monitors;
//! - [`snapshots`]: deleting a snapshot, and whether one can be browsed;
//! - [`prune`]: removing remote blobs no snapshot uses any more;
//! - [`suspicion`]: whether a new snapshot looks like a bad run;
//! - [`fuzzing`]: entry points of the fuzz targets.

pub mod api;
pub mod backup;
pub mod catalog;
pub mod check;
pub mod config;
pub mod daemon;
pub mod deleter;
pub mod destinations;
pub mod error;
pub mod fuzzing;
pub mod jobs;
pub mod model;
pub mod prune;
pub mod retention;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod secrets;
pub mod settings;
pub mod shutdown;
pub mod snapshots;
pub mod suspicion;
