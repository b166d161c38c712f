//! Stat read-ahead for directory walks through the mount.
//!
//! Why: the attributes of every entry the mount lists come with a stat of its
//! file in the snapshot's tree (its inode on the destination, its links), and
//! on a cold cache each stat waits for the disk to bring in the inode, one at
//! a time on the request thread: a cold `find` over 100,000 entries spent
//! ~45% of its time there (1.6 s instead of 2.9 s with those inodes cached).
//! Walkers (`find`, `du`, `rsync`, `ls -R`) list a directory and then its
//! subdirectories, depth first. So when a directory is listed, a thread of
//! its own stats the entries of its subdirectories, on the disk and on the
//! second CPU while the request thread serves the walker, and the walker finds
//! them in the kernel's caches when it gets there.
//!
//! The work is a stack: the directory listed last is the one the walker is
//! in, so its subdirectories come first; older work below is done when the
//! thread catches up, or dropped beyond [`MAX_PENDING`].

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

use super::workers::spawn_serving;
use crate::sync::lock;

/// Subdirectories of one listed directory whose entries are stat'ed.
pub(super) const SUBDIRS: usize = 256;
/// Entries stat'ed for one listed directory, over all its subdirectories: an
/// `ls` of a directory of large directories is not a walk, and must not set
/// off more than this.
pub(super) const ENTRIES: usize = 2048;
/// Pending work beyond which the oldest is dropped (a walker is far from it).
pub(super) const MAX_PENDING: usize = 1024;

/// One piece of work.
enum Work {
    /// A directory just listed: queue its subdirectories.
    Listed(Arc<OwnedFd>),
    /// A subdirectory (by name in its parent): stat its entries, as far as
    /// the budget shared by the subdirectories of one listing goes.
    Entries(Arc<OwnedFd>, OsString, Arc<AtomicUsize>),
}

#[derive(Default)]
struct Queue {
    /// Newest last.
    work: VecDeque<Work>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Entries stat'ed so far (for tests and debugging).
    stats: AtomicU64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    fn push(&self, items: impl IntoIterator<Item = Work>) {
        let mut q = self.lock();
        q.work.extend(items);
        while q.work.len() > MAX_PENDING {
            q.work.pop_front();
        }
        drop(q);
        self.ready.notify_one();
    }

    /// The newest work, waiting for some; `None` once closed.
    fn pop(&self) -> Option<Work> {
        let mut q = self.lock();
        loop {
            if q.closed {
                return None;
            }
            if let Some(w) = q.work.pop_back() {
                return Some(w);
            }
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Stats ahead of directory walks on a thread of its own.
pub(super) struct StatAhead {
    /// `None` when the thread could not be started: no stat read-ahead then.
    shared: Option<Arc<Shared>>,
}

impl StatAhead {
    /// Starts the thread.
    pub(super) fn new() -> Self {
        let shared =
            Arc::new(Shared { queue: Mutex::new(Queue::default()), ready: Condvar::new(), stats: AtomicU64::new(0) });
        let (queue, worker) = (shared.clone(), shared.clone());
        let spawned = spawn_serving(
            "hindsight-fuse-statahead".into(),
            "a stat read-ahead",
            move || queue.pop(),
            move |w| run(&worker, w),
        );
        match spawned {
            Ok(_) => StatAhead { shared: Some(shared) },
            Err(e) => {
                tracing::warn!("cannot start the stat read-ahead thread ({e}); the mount lists without it");
                StatAhead { shared: None }
            }
        }
    }

    /// Notes that directory `dir` (a descriptor of it in the snapshot's tree) was listed.
    pub(super) fn listed(&self, dir: Arc<OwnedFd>) {
        if let Some(s) = &self.shared {
            s.push([Work::Listed(dir)]);
        }
    }

    /// Entries stat'ed so far.
    #[cfg(test)]
    fn stats(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.stats.load(Ordering::Relaxed))
    }
}

impl Drop for StatAhead {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            s.lock().closed = true;
            s.ready.notify_all();
        }
    }
}

fn run(shared: &Shared, work: Work) {
    match work {
        Work::Listed(dir) => {
            let subdirs: Vec<OsString> = entries(&dir)
                .into_iter()
                .filter(|(_, kind)| *kind == FileType::Directory)
                .map(|(name, _)| name)
                .take(SUBDIRS)
                .collect();
            let budget = Arc::new(AtomicUsize::new(ENTRIES));
            // The first subdirectory ends up on top: a walker goes there first.
            shared.push(subdirs.into_iter().rev().map(|name| Work::Entries(dir.clone(), name, budget.clone())));
        }
        Work::Entries(parent, name, budget) => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let Ok(sub) = rustix::fs::openat(parent.as_fd(), &name, flags, Mode::empty()) else { return };
            for (entry, _) in entries(&sub) {
                if budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err() {
                    return;
                }
                // Brings the dentry and the inode into the kernel's caches.
                if rustix::fs::statat(sub.as_fd(), &entry, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                    shared.stats.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The entries of directory `dir` but `.` and `..`: (name, type); what can be read.
fn entries(dir: &OwnedFd) -> Vec<(OsString, FileType)> {
    let Ok(fd) =
        rustix::fs::openat(dir.as_fd(), ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
    else {
        return Vec::new();
    };
    let Ok(listing) = Dir::read_from(&fd) else { return Vec::new() };
    listing
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_bytes() != b"." && e.file_name().to_bytes() != b"..")
        .map(|e| {
            use std::os::unix::ffi::OsStrExt;
            (std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string(), e.file_type())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn path_fd(p: &std::path::Path) -> Arc<OwnedFd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Arc::new(rustix::fs::open(p, flags, Mode::empty()).expect("open dir"))
    }

    fn wait_for(ahead: &StatAhead, n: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while ahead.stats() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        ahead.stats()
    }

    #[test]
    fn a_listed_directory_has_the_entries_of_its_subdirectories_stated() {
        let t = tempfile::tempdir().expect("tempdir");
        for d in ["a", "b", "c/deep"] {
            std::fs::create_dir_all(t.path().join(d)).expect("mkdir");
        }
        for f in ["a/1", "a/2", "b/3", "c/4", "c/deep/not-this-level", "top-file"] {
            std::fs::write(t.path().join(f), b"x").expect("write");
        }
        std::os::unix::fs::symlink("a/1", t.path().join("b/link")).expect("symlink");
        let ahead = StatAhead::new();
        ahead.listed(path_fd(t.path()));
        // a: 1, 2; b: 3, link; c: 4, deep. Not the top level, not c/deep's entries.
        assert_eq!(wait_for(&ahead, 6), 6);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ahead.stats(), 6, "nothing deeper than the subdirectories' entries");
    }

    #[test]
    fn one_listing_sets_off_at_most_its_budget_of_stats() {
        let t = tempfile::tempdir().expect("tempdir");
        for d in 0..3 {
            std::fs::create_dir(t.path().join(format!("d{d}"))).expect("mkdir");
            for f in 0..(ENTRIES / 2) {
                std::fs::write(t.path().join(format!("d{d}/{f}")), b"").expect("write");
            }
        }
        let ahead = StatAhead::new();
        ahead.listed(path_fd(t.path()));
        assert_eq!(wait_for(&ahead, ENTRIES as u64), ENTRIES as u64);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(ahead.stats(), ENTRIES as u64, "3 subdirectories of ENTRIES/2 entries: the budget ends it");
    }

    #[test]
    fn the_newest_work_comes_first_and_the_oldest_is_dropped() {
        let shared = Shared { queue: Mutex::new(Queue::default()), ready: Condvar::new(), stats: AtomicU64::new(0) };
        let fd = path_fd(std::path::Path::new("/"));
        let budget = Arc::new(AtomicUsize::new(ENTRIES));
        let names = |n: usize| (0..n).map(|i| Work::Entries(fd.clone(), OsString::from(i.to_string()), budget.clone()));
        shared.push(names(MAX_PENDING + 10));
        assert_eq!(shared.lock().work.len(), MAX_PENDING);
        match shared.pop() {
            Some(Work::Entries(_, name, _)) => assert_eq!(name, OsString::from((MAX_PENDING + 9).to_string())),
            _ => panic!("expected the newest entry work"),
        }
        match shared.lock().work.front() {
            Some(Work::Entries(_, name, _)) => assert_eq!(*name, OsString::from("10"), "the 10 oldest were dropped"),
            _ => panic!("expected entry work"),
        }
    }
}
