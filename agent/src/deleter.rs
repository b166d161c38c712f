//! The background deleter: removes the files of snapshots whose deletion
//! began (renamed to `.deleting-*`), one at a time, at low priority.
//!
//! Retention may delete many large snapshots right after a backup, while
//! other backups run. The deleter is one thread at the lowest CPU priority
//! and it unlinks in batches. While a backup runs it stops altogether:
//! unlinks and a backup's file creations contend inside the filesystem
//! (journal, allocator), whatever the CPU or I/O priority, and a fixed pause
//! of 20 ms between batches still slowed a concurrent backup by 38-127%
//! here. So that back-to-back backups cannot starve it, after waiting
//! [`MAX_WAIT`] in a row it goes on at a duty cycle instead, pausing
//! [`BUSY_SHARE`] times as long as each batch took. A crash leaves
//! `.deleting-*` directories, which the start-up reconcile finishes; so does
//! a shutdown, at which the deleter stops between two unlinks.
//!
//! The tree is removed one directory descriptor at a time, never by path
//! and never through a symlink (`DestinationRoot::finish_delete_with`): the
//! files of a snapshot keep their owners, and a user who could write in her
//! directory of it must not be able to send root's unlinks elsewhere.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use hindsight_fs::DestinationRoot;

use crate::catalog::Catalog;
use crate::shutdown::Shutdown;

/// Unlinks between two pauses.
const BATCH: usize = 256;
/// Longest wait in a row for running backups to end before deleting anyway.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// How often a waiting deleter looks whether the backups ended.
const WAIT_STEP: Duration = Duration::from_millis(100);
/// Past [`MAX_WAIT`], pause this many times the duration of the last batch.
const BUSY_SHARE: u32 = 9;
/// Longest pause while backups run.
const PAUSE_BUSY_MAX: Duration = Duration::from_secs(2);
/// Passes over a snapshot that failed before its deletion is given up (until the next start).
const RETRIES: u32 = 5;
/// Pause before the first retry (the n-th waits n times this).
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Pause between batches otherwise.
const PAUSE_IDLE: Duration = Duration::from_millis(1);

/// A snapshot whose deletion began: its files, and its catalog row to forget.
pub struct Pending {
    /// The destination root.
    pub root: DestinationRoot,
    /// Job directory name.
    pub job: String,
    /// Snapshot name.
    pub name: String,
    /// Catalog id.
    pub id: crate::model::SnapshotId,
}

/// Handle of the deleter thread.
pub struct Deleter {
    tx: Sender<Pending>,
    /// Local caches of remote destinations, one directory per destination id.
    cache_root: PathBuf,
    /// The agent's shutdown (prunes started after deletions are tracked by it too).
    shutdown: Shutdown,
}

/// Tells the deleter whether backups are running (it then pauses longer).
pub(crate) type Busy = Arc<dyn Fn() -> bool + Send + Sync>;

impl Deleter {
    /// Starts the deleter thread.
    pub fn start(catalog: Arc<Catalog>, busy: Busy, cache_root: PathBuf, shutdown: &Shutdown) -> Self {
        let (tx, rx) = channel();
        let stop = shutdown.clone();
        if let Err(e) = shutdown.thread("hindsight-deleter", move || work(&catalog, &busy, &rx, &stop)) {
            // Deletions then stay `.deleting-*` until the next start finishes them.
            tracing::error!("cannot start the deleter thread: {e}");
        }
        Deleter { tx, cache_root, shutdown: shutdown.clone() }
    }

    /// The agent's shutdown.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The local cache directory of a remote destination.
    pub fn cache_dir(&self, d: &crate::model::DestinationRecord) -> Result<PathBuf, String> {
        d.cache_dir(&self.cache_root)
    }

    /// Queues the removal of a snapshot's files.
    pub fn send(&self, p: Pending) {
        if self.tx.send(p).is_err() {
            tracing::error!("the deleter thread is gone; the deletion finishes at the next start");
        }
    }
}

/// How often an idle deleter looks whether the agent is stopping.
const IDLE_STEP: Duration = Duration::from_millis(200);

fn work(catalog: &Catalog, busy: &Busy, rx: &Receiver<Pending>, shutdown: &Shutdown) {
    lower_priority();
    loop {
        let p = match rx.recv_timeout(IDLE_STEP) {
            Ok(p) => p,
            Err(RecvTimeoutError::Timeout) if shutdown.is_requested() => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let pause = |batch: Duration| {
            let mut waited = Duration::ZERO;
            while busy() && !shutdown.is_requested() {
                if waited >= MAX_WAIT {
                    std::thread::sleep((batch * BUSY_SHARE).min(PAUSE_BUSY_MAX));
                    return;
                }
                std::thread::sleep(WAIT_STEP);
                waited += WAIT_STEP;
            }
            std::thread::sleep(PAUSE_IDLE);
        };
        let mut paced = throttle(&pause);
        let mut step = || if shutdown.is_requested() { ControlFlow::Break(()) } else { paced() };
        // Something changing the tree while it is removed (a user renaming in
        // her own directory) can make one pass fail: it is tried again.
        let mut attempt = 0;
        let deleted = loop {
            match p.root.finish_delete_with(&p.job, &p.name, &mut step) {
                Err(e) if attempt < RETRIES && !shutdown.is_requested() => {
                    attempt += 1;
                    tracing::warn!("deleting snapshot {}/{}: {e}; trying again", p.job, p.name);
                    std::thread::sleep(RETRY_PAUSE * attempt);
                }
                r => break r,
            }
        };
        match deleted {
            Ok(()) => {
                tracing::info!("deleted snapshot {}/{}", p.job, p.name);
                // A user that is gone leaves no directory named after it behind.
                if let Some(account) = hindsight_fs::split_job_dir(&p.job).1
                    && matches!(crate::accounts::lookup(account), crate::accounts::Lookup::Gone)
                {
                    remove_if_empty(&p.root.job_dir(&p.job));
                }
            }
            Err(_) if shutdown.is_requested() => {
                tracing::info!(
                    "deleting snapshot {}/{}: stopped by the shutdown; the next start finishes it",
                    p.job,
                    p.name
                )
            }
            Err(e) => tracing::error!("deleting snapshot {}/{}: {e}", p.job, p.name),
        }
        if let Err(e) = catalog.remove_snapshot(p.id) {
            tracing::error!("forgetting snapshot {}: {e}", p.id);
        }
    }
}

/// Removes a job directory that holds nothing but its lock file.
fn remove_if_empty(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let names: Vec<std::ffi::OsString> = entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
    if names.iter().all(|n| n == ".lock") {
        let _ = std::fs::remove_file(dir.join(".lock"));
        match std::fs::remove_dir(dir) {
            Ok(()) => tracing::info!("removed {}, which held nothing more", dir.display()),
            Err(e) => tracing::warn!("removing {}: {e}", dir.display()),
        }
    }
}

/// Nice 19 for this thread (Linux applies `setpriority` to a thread id).
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), 19) {
        tracing::warn!("cannot lower the deleter's priority: {e}");
    }
}

/// A callback for each file unlinked that calls `pause` with the batch's
/// duration every [`BATCH`] unlinks.
fn throttle(pause: &dyn Fn(Duration)) -> impl FnMut() -> ControlFlow<()> + '_ {
    let mut count = 0usize;
    let mut batch_start = std::time::Instant::now();
    move || {
        count += 1;
        if count.is_multiple_of(BATCH) {
            pause(batch_start.elapsed());
            batch_start = std::time::Instant::now();
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn throttled_removal_pauses_between_batches() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = DestinationRoot::new(t.path());
        let d = root.job_dir("j").join(".deleting-2026-01-01T000000Z");
        for i in 0..600 {
            let sub = d.join(format!("d{}", i % 3));
            std::fs::create_dir_all(&sub).expect("mkdir");
            std::fs::write(sub.join(format!("f{i}")), b"x").expect("write");
        }
        let pauses = Cell::new(0);
        let pause = |_| pauses.set(pauses.get() + 1);
        root.finish_delete_with("j", "2026-01-01T000000Z", &mut throttle(&pause)).expect("delete");
        assert_eq!(pauses.get(), 600 / BATCH);
        assert!(!d.exists());
    }
}
