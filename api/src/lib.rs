//! The Hindsight API's vocabulary, shared by the agent (which serves it) and
//! the CLI (which speaks it): nothing here does I/O.
//!
//! - `ids`: one newtype per kind of object id (`RunId`, `JobId`, ...).
//! - `kinds`: the closed sets (structures, destination types, run states,
//!   triggers, alert kinds and levels), refused by serde when out of set.
//! - `model`: request bodies and answers.
//! - `notify`: notification integrations and the messages they send.
//! - `database`: database servers whose databases jobs dump.
//! - `task`: restores and other queued tasks.
//! - `account`: the system users accounts jobs back up.
//! - `history`: versions, find and diff, answered from the indexes.
//! - [`routes`]: the route patterns and the paths built from them.

// What is public is decided at the root (the `pub use` block below):
// a `pub` item no one outside the crate can reach is a mistake.
#![warn(unreachable_pub)]

mod account;
mod database;
mod history;
mod ids;
mod kinds;
mod model;
mod notify;
pub mod routes;
mod task;

pub use account::*;
pub use database::*;
pub use history::*;
pub use ids::{AlertId, BadId, DestinationId, JobId, RunId, SnapshotId, TaskId};
pub use kinds::{
    AlertKind, AlertLevel, DbEngine, DbTls, DeliveryState, DestinationKind, Frequency, HookKind, JobKind, RestoreMode,
    RunState, SmtpSecurity, Structure, TaskKind, Trigger, UnknownName,
};
pub use model::*;
pub use notify::*;
pub use task::*;
