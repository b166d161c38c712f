//! Read-ahead across the files of a directory being copied out of the mount.
//!
//! Why: `cp -a` and `rsync` read a directory's files one after another. On a
//! cold cache each file waits for the disk in turn, and through the mount each
//! open also waits for a round trip to this process, so a restore ran 1.3-1.7x
//! native. The index numbers a directory's entries consecutively, so two opens
//! of nearby node ids are a directory being read file by file: the mount asks
//! the disk for the start of the other files of that directory at once,
//! and the disk works on many of them while the copier goes through them one
//! by one. A reader of a few scattered files sets nothing off, and a
//! directory whose files are already in the page cache (copied again) is left
//! after the first two files found there.
//!
//! This module decides when (from node ids alone, on the request thread, under
//! a short lock) and runs the read-ahead on a thread of its own; what to read
//! is the filesystem's business (see `Core::read_ahead_around`).

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use super::workers::spawn_serving;
use crate::sync::lock;

/// Opens this close (in node ids) to the previous one look like a directory read in order.
const NEAR: u64 = 64;
/// Ranges of nodes already read ahead that are remembered.
const COVERED: usize = 16;
/// Read-aheads waiting for the thread; more are dropped (the copier is ahead anyway).
const QUEUE: usize = 8;

/// Bytes asked for at the start of each file.
pub(super) const FILE_AHEAD: u64 = 1 << 20;
/// Bytes asked for per read-ahead (files of one directory).
pub(super) const BATCH_AHEAD: u64 = 32 << 20;
/// Files per read-ahead.
pub(super) const BATCH_FILES: u32 = 256;
/// Files found in the page cache, before any that is not, that end a read-ahead
/// early: a directory copied again is warm, and opening its files costs cpu.
pub(super) const WARM_PROBES: u32 = 2;

type Job = Box<dyn FnOnce(&Coverage) + Send>;

/// Which nodes were read ahead recently, and the last one opened.
#[derive(Default)]
struct State {
    last: Option<u64>,
    /// Consecutive opens that were near the previous one or already covered.
    streak: u32,
    covered: VecDeque<RangeInclusive<u64>>,
}

impl State {
    fn is_covered(&self, node: u64) -> bool {
        self.covered.iter().any(|r| r.contains(&node))
    }

    fn cover(&mut self, nodes: RangeInclusive<u64>) {
        if self.covered.len() == COVERED {
            self.covered.pop_front();
        }
        self.covered.push_back(nodes);
    }
}

/// What a read-ahead job reports back: the nodes it has read ahead.
#[derive(Clone)]
pub(super) struct Coverage(Arc<Mutex<State>>);

impl Coverage {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.0)
    }

    /// Records that `nodes` were read ahead (opening them sets nothing off),
    /// in place of the nodes `claim` reserved for the read-ahead.
    pub(super) fn settle(&self, claim: &Claim, nodes: RangeInclusive<u64>) {
        let mut s = self.lock();
        s.covered.retain(|r| *r != claim.0);
        s.cover(nodes);
    }
}

/// The nodes an open claimed for its read-ahead until the read-ahead knows
/// which it covers (the claim may reach into the next directory).
#[derive(Debug)]
pub(super) struct Claim(RangeInclusive<u64>);

/// Decides when to read ahead, and runs read-aheads on one thread.
pub(super) struct Prefetch {
    state: Coverage,
    /// `None` when the thread could not be started: no read-ahead then.
    jobs: Option<SyncSender<Job>>,
}

impl Prefetch {
    /// Starts the read-ahead thread.
    pub(super) fn new() -> Self {
        let state = Coverage(Arc::new(Mutex::new(State::default())));
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let coverage = state.clone();
        let spawned = spawn_serving(
            "hindsight-fuse-readahead".into(),
            "a read-ahead",
            move || rx.recv().ok(),
            move |job: Job| job(&coverage),
        );
        let jobs = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!("cannot start the read-ahead thread ({e}); the mount reads without it");
                None
            }
        };
        Prefetch { state, jobs }
    }

    /// Notes an open of entry node `node`; a claim when the files around it
    /// should be read ahead. The claim covers the nodes just after it, so the
    /// next opens of the same run do not ask again while the read-ahead is
    /// being prepared; the read-ahead settles it.
    pub(super) fn opened(&self, node: u64) -> Option<Claim> {
        self.jobs.as_ref()?;
        let mut s = self.state.lock();
        let near = s.last.is_some_and(|last| last != node && last.abs_diff(node) <= NEAR);
        s.last = Some(node);
        if s.is_covered(node) {
            s.streak = s.streak.saturating_add(1);
            return None;
        }
        // Within a run of ordered opens, the first file of the next directory
        // is far from the last one of the previous: a run keeps going there.
        let wanted = near || s.streak >= 2;
        s.streak = if near { s.streak.saturating_add(1) } else { 0 };
        if !wanted {
            return None;
        }
        let claim = node..=node.saturating_add(NEAR);
        s.cover(claim.clone());
        Some(Claim(claim))
    }

    /// Queues read-ahead `job`; dropped when the thread is that far behind.
    pub(super) fn run(&self, job: impl FnOnce(&Coverage) + Send + 'static) {
        if let Some(tx) = &self.jobs {
            match tx.try_send(Box::new(job)) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => tracing::debug!("the read-ahead thread is gone"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn scattered_opens_set_nothing_off() {
        let p = Prefetch::new();
        for node in [10_000, 500, 90_000, 3_000, 70_000, 20_000] {
            assert!(p.opened(node).is_none(), "node {node}");
        }
        assert!(p.opened(20_000).is_none(), "the same file again is not a run");
    }

    #[test]
    fn a_directory_read_in_order_is_read_ahead_once() {
        let p = Prefetch::new();
        assert!(p.opened(1_000).is_none());
        assert!(p.opened(1_001).is_some(), "second file next to the first");
        for node in 1_002..1_020 {
            assert!(p.opened(node).is_none(), "node {node} was claimed by the first read-ahead");
        }
    }

    #[test]
    fn a_run_carries_over_to_the_next_directory() {
        let p = Prefetch::new();
        p.opened(1_000);
        let claim = p.opened(1_001).expect("read ahead");
        // The job reports the files it read ahead: the rest of the directory.
        p.state.settle(&claim, 1_002..=1_010);
        for node in 1_002..=1_010 {
            assert!(p.opened(node).is_none());
        }
        // The claim reached 1_065, but the next directory starts at 1_011.
        assert!(p.opened(1_011).is_some(), "first file of the next directory, within a run");
        assert!(p.opened(50_000).is_some(), "a run goes on in a directory further away");
        assert!(p.opened(50_001).is_none());
        // A lone open far away after a scattered one is not a run.
        let q = Prefetch::new();
        q.opened(5);
        q.opened(90_000);
        assert!(q.opened(40_000).is_none());
    }

    #[test]
    fn jobs_run_and_report_coverage() {
        let p = Prefetch::new();
        let (tx, rx) = std::sync::mpsc::channel();
        p.run(move |c| {
            c.settle(&Claim(0..=0), 7..=9);
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(5)).expect("job ran");
        assert!(p.opened(8).is_none(), "covered by the job");
        p.run(|_| panic!("a read-ahead panicked (expected by this test)"));
        let (tx, rx) = std::sync::mpsc::channel();
        p.run(move |_| {
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(5)).expect("the thread survived a panicking job");
    }
}
