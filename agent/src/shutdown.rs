//! One shutdown signal and one tracker of the agent's background work, as
//! mini-redis does: the run dispatcher, the scheduler's tick, every run, the
//! deleter thread and the prune threads are started through [`Shutdown`],
//! watch the same signal, and the daemon's stop waits for all of them,
//! within a bound.
//!
//! Waiting is a courtesy, not a need: everything is crash-safe by design
//! (`.partial-*` work is resumed, `.deleting-*` directories are finished at
//! the next start, remote leases expire), so what is still running when the
//! bound passes is abandoned and logged.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The agent's shutdown signal and the work it waits for.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A signal not given yet, tracking nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// True once shutdown began: loops return, threads stop at their next step.
    pub fn is_requested(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown began.
    pub async fn requested(&self) {
        self.token.cancelled().await
    }

    /// Spawns a task the shutdown waits for.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Starts a named thread the shutdown waits for (it must watch
    /// [`Shutdown::is_requested`] to end in time).
    pub fn thread(&self, name: &str, work: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let held = self.tracker.token();
        std::thread::Builder::new().name(name.into()).spawn(move || {
            work();
            drop(held);
        })?;
        Ok(())
    }

    /// Gives the signal (loops and threads watching it stop).
    pub fn request(&self) {
        self.token.cancel();
    }

    /// Gives the signal, then waits up to `grace` for every tracked task and
    /// thread to end; false when some were still running.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.request();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn stop_waits_for_tasks_and_threads_that_watch_the_signal_and_no_longer() {
        let s = Shutdown::new();
        let ended = Arc::new(AtomicBool::new(false));
        let (s2, e2) = (s.clone(), ended.clone());
        s.thread("watcher", move || {
            while !s2.is_requested() {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(100));
            e2.store(true, Ordering::Relaxed);
        })
        .expect("thread");
        let s3 = s.clone();
        s.spawn(async move { s3.requested().await });
        assert!(s.stop(Duration::from_secs(5)).await, "tracked work did not end");
        assert!(ended.load(Ordering::Relaxed), "stop returned before the thread ended");

        let stuck = Shutdown::new();
        stuck.spawn(std::future::pending::<()>());
        assert!(!stuck.stop(Duration::from_millis(50)).await, "a task that never ends was reported ended");
    }
}
