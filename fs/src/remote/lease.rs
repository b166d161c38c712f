//! Leases: how a backup to a content-addressed destination keeps a prune,
//! on this agent or on any other writing the same bucket, from deleting the
//! bodies it has stored but no manifest references yet.
//!
//! A backup writes `.leases/<random>` before it stores anything and deletes
//! it once its manifest is published (or it failed). A prune lists the
//! objects first and the leases after: a body it saw was stored after its
//! backup's lease was written, so that lease is in the second listing, and
//! the prune deletes no unreferenced object stored after the oldest live
//! lease began (times are the service's own, with [`SLACK`] for services
//! that list times to the minute). A lease older than [`LEASE_MAX`] was left
//! by a crash: it is ignored and removed. Objects whose time the service
//! does not list are kept while any lease is live.
//!
//! A lease that could not be deleted (the service was down when the run
//! failed, the agent was killed) is recorded in the job's directory of the
//! agent's local cache, and the job's next run, which holds the job's lock,
//! deletes it before taking its own.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use super::store::{ObjectInfo, ObjectStore, RemoteStore};
use crate::error::Result;

/// Where leases live: a dot name is never a job's.
pub(crate) const LEASES_DIR: &str = ".leases/";

/// A lease older than this is a crashed backup's (documented as the longest
/// backup a content-addressed destination supports).
pub(crate) const LEASE_MAX: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Margin for the coarsest time a service lists (FTP: the minute).
pub(crate) const SLACK: SignedDuration = SignedDuration::from_mins(2);

/// A backup's lease on a destination; released on drop.
pub struct Lease {
    store: RemoteStore,
    key: String,
    /// Where the key is recorded until the lease is gone.
    record: PathBuf,
}

impl Lease {
    /// Writes a lease for a backup of `job` (its body says who holds it, for
    /// a person looking at the bucket), after deleting the one an earlier run
    /// of the job left. `job_cache` is the job's directory in the agent's
    /// cache, whose lock the caller holds.
    pub fn take(store: &RemoteStore, job: &str, job_cache: &Path) -> Result<Lease> {
        let record = job_cache.join(RECORD);
        if let Ok(old) = std::fs::read_to_string(&record) {
            let old = old.trim();
            // Only a name this agent writes: the record is the agent's, but stay strict.
            if old
                .strip_prefix(LEASES_DIR)
                .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                store.delete(old)?;
            }
        }
        let key = format!("{LEASES_DIR}{}", uuid::Uuid::new_v4().simple());
        crate::layout::write_atomic(&record, key.as_bytes())?;
        let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
        let body = serde_json::json!({ "job": job, "host": host, "started": Timestamp::now().to_string() });
        store.write(&key, body.to_string().into_bytes())?;
        Ok(Lease { store: store.clone(), key, record })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self.store.delete(&self.key) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.record);
            }
            // Left for the job's next run to delete; until then it holds prunes back.
            Err(e) => tracing::warn!("cannot release the backup lease {}: {e}", self.key),
        }
    }
}

/// Name of the record of a job's lease in its cache directory.
const RECORD: &str = ".lease";

/// What a prune may delete, from the leases listed after the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cutoff {
    /// No backup holds a lease: any unreferenced object may go.
    Free,
    /// Only unreferenced objects listed as stored before this time may go.
    Before(Timestamp),
}

impl Cutoff {
    /// Whether an unreferenced object may be deleted.
    pub(crate) fn allows(&self, obj: &ObjectInfo) -> bool {
        match self {
            Cutoff::Free => true,
            Cutoff::Before(t) => obj.modified.is_some_and(|m| m < *t),
        }
    }
}

/// Lists the live leases (removing those a crash left, older than
/// [`LEASE_MAX`]); `now` is the agent's clock, used only for that age.
pub(crate) fn cutoff(store: &ObjectStore, now: Timestamp) -> Result<Cutoff> {
    let mut oldest: Option<Timestamp> = None;
    for lease in store.objects(LEASES_DIR)? {
        match lease.modified {
            Some(m) if now.duration_since(m) > LEASE_MAX => {
                tracing::warn!("removing the backup lease {}, left {m} by a backup that never ended", lease.key);
                store.delete(&lease.key)?;
            }
            // Undated: as old as can be.
            None => oldest = Some(Timestamp::MIN),
            Some(m) => oldest = Some(oldest.map_or(m, |o| o.min(m))),
        }
    }
    Ok(match oldest {
        None => Cutoff::Free,
        Some(t) => Cutoff::Before(t.checked_sub(SLACK).unwrap_or(Timestamp::MIN)),
    })
}
