//! Pruning remote destinations in the background after snapshot deletions:
//! the bodies only deleted snapshots used are removed (see
//! `hindsight_fs::remote::prune`). One prune per destination at a time; a
//! deletion during a prune makes it run once more. The agent's shutdown
//! waits for a pass under way and starts no other.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use hindsight_fs::lock;
use hindsight_fs::remote::RemoteStore;
use hindsight_fs::remote::{is_busy, prune};

use crate::shutdown::Shutdown;

/// Destinations being pruned -> whether another pass is wanted.
static RUNNING: LazyLock<Mutex<HashMap<String, bool>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Prunes `store` (cache `cache`) on a background thread.
pub(crate) fn start(store: RemoteStore, cache: PathBuf, destination: String, shutdown: &Shutdown) {
    {
        let mut running = lock(&RUNNING);
        if let Some(again) = running.get_mut(&destination) {
            *again = true;
            return;
        }
        running.insert(destination.clone(), false);
    }
    let stop = shutdown.clone();
    let spawned = shutdown.thread("hindsight-prune", move || {
        loop {
            match prune(&store, &cache) {
                Ok(r) => tracing::info!(
                    destination = %destination,
                    "pruned {} unreferenced objects ({} bytes), {} kept", r.deleted, r.freed, r.kept
                ),
                Err(e) if is_busy(&e) => {
                    tracing::info!(destination = %destination, "prune postponed: a backup is running ({e})")
                }
                Err(e) => tracing::warn!(destination = %destination, "prune failed: {e}"),
            }
            let mut running = lock(&RUNNING);
            match running.get_mut(&destination) {
                Some(again) if *again && !stop.is_requested() => *again = false,
                _ => {
                    running.remove(&destination);
                    return;
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot start a prune thread: {e}");
    }
}
