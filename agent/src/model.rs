//! The API's objects as the agent uses them: the types of `hindsight-api`,
//! plus the destination as the catalog keeps it ([`DestinationRecord`]:
//! secrets sealed, its cache id), which reaches the API only through
//! [`DestinationRecord::view`], where secrets are redacted.

pub use hindsight_api::*;
use serde_json::{Map, Value};

/// A destination as the catalog keeps it. It debug-prints with its secret
/// options shown as `********`, whatever state they are in.
#[derive(Clone, PartialEq)]
pub struct DestinationRecord {
    /// Stable id (also in the destination's `HINDSIGHT` marker).
    pub id: DestinationId,
    /// Unique name.
    pub name: String,
    /// Type.
    pub kind: DestinationKind,
    /// Type-specific options (`path`, ...); secrets are sealed, or in the clear
    /// between a request and the catalog.
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
    /// Name of its directory in the agent's cache (remote destinations): a
    /// UUID generated here, never a value read from the destination.
    pub cache_id: String,
    /// Its integrity checks.
    pub check: CheckPlan,
}

impl DestinationRecord {
    /// The local cache directory of this destination under `cache_root`.
    pub fn cache_dir(&self, cache_root: &std::path::Path) -> Result<std::path::PathBuf, String> {
        hindsight_fs::check_destination_id(&self.cache_id)
            .map_err(|e| format!("destination {}: its cache id is damaged ({e})", self.name))?;
        Ok(cache_root.join(&self.cache_id))
    }

    /// The API's view: the same fields, secret options redacted. Every answer
    /// that shows a destination is built here.
    pub fn view(&self) -> Destination {
        Destination {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind,
            options: crate::secrets::redact_options(self.kind.as_str(), &self.options),
            disk_limit: self.disk_limit,
            hidden: self.hidden,
            readonly: self.readonly,
            disabled: self.disabled,
            jobs: self.jobs,
            disk_usage: self.disk_usage.clone(),
            check: self.check.clone(),
        }
    }
}

impl std::fmt::Debug for DestinationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.view())
    }
}

/// A notification integration as the catalog keeps it: secrets sealed (or in
/// the clear between a request and the catalog). It reaches the API only
/// through [`NotifierRecord::view`], where secrets are redacted.
#[derive(Clone, PartialEq)]
pub struct NotifierRecord {
    /// Row id.
    pub id: i64,
    /// What it is.
    pub config: NotifierConfig,
    /// The day (YYYY-MM-DD) of the last digest made.
    pub last_digest: Option<String>,
}

impl NotifierRecord {
    /// The API's view, secrets redacted; `pending`, `last_error` and
    /// `deliveries` come from the outbox.
    pub fn view(&self, pending: u32, last_error: Option<String>, deliveries: Vec<Delivery>) -> Notifier {
        let config = NotifierConfig { settings: crate::notify::redact(&self.config.settings), ..self.config.clone() };
        Notifier { config, pending, last_error, deliveries }
    }
}

impl std::fmt::Debug for NotifierRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.view(0, None, Vec::new()))
    }
}
