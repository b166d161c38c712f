//! Worker threads for the requests that may block: reads of archived,
//! compressed and remote files, anything inside a remote snapshot (its index
//! may have to be downloaded first) and the nodes above the snapshots (a job's
//! listing reads each snapshot's root entry).
//!
//! Why: the mount answers the kernel from one request thread. With two, the
//! RELEASE of a closed file woke one thread and the next OPEN the other, and on
//! this kind of VM every wake-up of an idle vCPU is a host round trip (cat of
//! 200 small files, 20k corpus, medians of 30 runs: 11.0-15.1 ms with two
//! request threads, 10.8-12.4 ms with one). One thread must then never wait
//! for a disk or a network, so those requests are answered from here.

use crate::sync::lock;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Starts thread `name`, which runs `run` on each item `next` gives until it
/// gives none. A panicking item is logged as `what` and the thread goes on:
/// the mount's helper threads must outlive one bad request or read-ahead.
pub(super) fn spawn_serving<T>(
    name: String,
    what: &'static str,
    mut next: impl FnMut() -> Option<T> + Send + 'static,
    mut run: impl FnMut(T) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new().name(name).spawn(move || {
        while let Some(item) = next() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(item))).is_err() {
                tracing::error!("{what} panicked");
            }
        }
    })?;
    Ok(())
}

/// A fixed set of threads running jobs in arrival order.
pub(super) struct Workers {
    /// `None` when no thread could be started: jobs then run on the caller.
    jobs: Option<Sender<Job>>,
}

impl Workers {
    /// Starts `n` threads (at least one is tried).
    pub(super) fn new(n: usize) -> Self {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..n.max(1) {
            let rx = rx.clone();
            // The lock is held only while waiting for the next job. A panicking
            // request's reply, dropped unsent, answers the kernel with an error.
            let next = move || lock(&rx).recv().ok();
            let name = format!("hindsight-fuse-worker-{i}");
            match spawn_serving(name, "a FUSE request on a worker thread", next, |job: Job| job()) {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!("cannot start a FUSE worker thread: {e}"),
            }
        }
        Workers { jobs: (started > 0).then_some(tx) }
    }

    /// Runs `job` on a worker, or here if none is left.
    pub(super) fn run(&self, job: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(job);
        let job = match &self.jobs {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(returned) => returned.0,
            },
            None => job,
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;
    use std::time::Duration;

    #[test]
    fn a_blocked_job_does_not_hold_the_next_one() {
        let workers = Workers::new(2);
        let (release, blocked) = sync_channel::<()>(0);
        let (done_tx, done) = channel::<&str>();
        let first = done_tx.clone();
        workers.run(move || {
            let _ = blocked.recv();
            let _ = first.send("slow");
        });
        workers.run(move || {
            let _ = done_tx.send("quick");
        });
        assert_eq!(done.recv_timeout(Duration::from_secs(5)), Ok("quick"), "the quick job waited for the slow one");
        release.send(()).expect("release");
        assert_eq!(done.recv_timeout(Duration::from_secs(5)), Ok("slow"));
    }

    #[test]
    fn a_panicking_job_leaves_the_workers_running() {
        let workers = Workers::new(1);
        workers.run(|| panic!("a job panicked (expected by this test)"));
        let (tx, rx) = channel();
        workers.run(move || {
            let _ = tx.send(1);
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
    }
}
