//! The cache of decompressed gzip members, shared by every archive of a mount.
//!
//! Bounded in bytes and least-recently-used out first. A member asked for by
//! several readers at once is decompressed by the first, the others wait for
//! its result. Read-ahead jobs run on a small fixed pool of threads started
//! on first use, fed through a bounded queue: when it is full, read-ahead is
//! skipped rather than queued without end.

use crate::sync::lock;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// Default bound of the cache: 32 MiB, 128 members of [`super::super::MEMBER_SIZE`] (256 KiB).
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// Threads decompressing members ahead of sequential readers.
const PREFETCH_THREADS: usize = 2;

/// Read-ahead jobs waiting for a thread; more are dropped (they are hints).
const PREFETCH_QUEUE: usize = 16;

/// A member of one archive: (archive identity, member index).
pub(super) type Key = (u64, u64);

/// A read-ahead job.
type Job = Box<dyn FnOnce() + Send>;

enum Slot {
    /// Being decompressed by some thread; wait on [`Shared::loaded`].
    Loading,
    /// Decompressed; `tick` is its position in [`State::lru`].
    Ready { data: Arc<[u8]>, tick: u64 },
}

#[derive(Default)]
struct State {
    slots: HashMap<Key, Slot>,
    /// Ready members by last use, oldest first.
    lru: BTreeMap<u64, Key>,
    tick: u64,
    bytes: usize,
}

struct Shared {
    state: Mutex<State>,
    loaded: Condvar,
    capacity: usize,
    next_identity: AtomicU64,
    loads: AtomicU64,
    prefetch: OnceLock<Option<SyncSender<Job>>>,
}

/// Decompressed members shared by all archives of a mount (cheap to clone).
#[derive(Clone)]
pub(crate) struct MemberCache(Arc<Shared>);

impl Default for MemberCache {
    fn default() -> Self {
        MemberCache::new(DEFAULT_CACHE_BYTES)
    }
}

impl MemberCache {
    /// A cache holding at most `capacity` bytes of decompressed members.
    pub(crate) fn new(capacity: usize) -> Self {
        MemberCache(Arc::new(Shared {
            state: Mutex::new(State::default()),
            loaded: Condvar::new(),
            capacity,
            next_identity: AtomicU64::new(1),
            loads: AtomicU64::new(0),
            prefetch: OnceLock::new(),
        }))
    }

    /// Bytes of decompressed members held now.
    #[cfg(test)]
    pub(crate) fn used_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// How many members were decompressed (or failed to) since the cache was made.
    #[cfg(test)]
    pub(crate) fn loads(&self) -> u64 {
        self.0.loads.load(Ordering::Relaxed)
    }

    /// A number no other archive of this cache has: the first half of its keys.
    pub(super) fn new_identity(&self) -> u64 {
        self.0.next_identity.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.0.state)
    }

    /// True when `key` is cached or being loaded.
    pub(crate) fn contains(&self, key: Key) -> bool {
        self.lock().slots.contains_key(&key)
    }

    /// The member `key`, from the cache, or waiting for the thread loading it,
    /// or loaded here with `load`. Errors are not cached (the caller remembers
    /// damaged members).
    pub(crate) fn get_or_load(&self, key: Key, load: impl FnOnce() -> io::Result<Vec<u8>>) -> io::Result<Arc<[u8]>> {
        let mut st = self.lock();
        loop {
            match st.slots.get(&key) {
                Some(Slot::Ready { data, tick }) => {
                    let (data, old) = (data.clone(), *tick);
                    st.touch(key, old);
                    return Ok(data);
                }
                Some(Slot::Loading) => st = self.0.loaded.wait(st).unwrap_or_else(|p| p.into_inner()),
                None => break,
            }
        }
        st.slots.insert(key, Slot::Loading);
        drop(st);
        self.0.loads.fetch_add(1, Ordering::Relaxed);
        // The guard clears the Loading slot even if `load` panics, so waiters never hang.
        let guard = LoadGuard { cache: self, key };
        let result = load().map(Arc::<[u8]>::from);
        let mut st = self.lock();
        st.slots.remove(&key);
        if let Ok(data) = &result
            && data.len() <= self.0.capacity
        {
            st.insert(key, data.clone(), self.0.capacity);
        }
        drop(st);
        std::mem::forget(guard);
        self.0.loaded.notify_all();
        result
    }

    /// Runs `job` on a read-ahead thread, unless the queue is full or the
    /// threads cannot be started (read-ahead is an optimisation).
    pub(crate) fn prefetch(&self, job: impl FnOnce() + Send + 'static) {
        let sender = self.0.prefetch.get_or_init(start_prefetchers);
        if let Some(tx) = sender {
            match tx.try_send(Box::new(job)) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

/// Clears a Loading slot whose loader unwound.
struct LoadGuard<'a> {
    cache: &'a MemberCache,
    key: Key,
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        self.cache.lock().slots.remove(&self.key);
        self.cache.0.loaded.notify_all();
    }
}

impl State {
    fn touch(&mut self, key: Key, old: u64) {
        self.tick += 1;
        let tick = self.tick;
        self.lru.remove(&old);
        self.lru.insert(tick, key);
        if let Some(Slot::Ready { tick: t, .. }) = self.slots.get_mut(&key) {
            *t = tick;
        }
    }

    fn insert(&mut self, key: Key, data: Arc<[u8]>, capacity: usize) {
        self.tick += 1;
        self.bytes += data.len();
        self.lru.insert(self.tick, key);
        self.slots.insert(key, Slot::Ready { data, tick: self.tick });
        while self.bytes > capacity {
            let Some((_, old)) = self.lru.pop_first() else { break };
            if let Some(Slot::Ready { data, .. }) = self.slots.remove(&old) {
                self.bytes -= data.len();
            }
        }
    }
}

/// Starts the read-ahead threads; they end when the cache (the sender) is dropped.
fn start_prefetchers() -> Option<SyncSender<Job>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(PREFETCH_QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    for i in 0..PREFETCH_THREADS {
        let rx = rx.clone();
        match std::thread::Builder::new().name(format!("hindsight-inflate-{i}")).spawn(move || prefetch_loop(&rx)) {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!("cannot start a read-ahead thread: {e}"),
        }
    }
    (started > 0).then_some(tx)
}

fn prefetch_loop(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = lock(rx).recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_bound() {
        let cache = MemberCache::new(30);
        let load = |n: u8| move || Ok(vec![n; 10]);
        for k in 0..3 {
            cache.get_or_load((1, k), load(k as u8)).expect("load");
        }
        assert_eq!(cache.used_bytes(), 30);
        // Touch member 0: member 1 is now the oldest.
        cache.get_or_load((1, 0), || panic!("cached")).expect("hit");
        cache.get_or_load((1, 3), load(3)).expect("load");
        assert_eq!(cache.used_bytes(), 30);
        assert!(cache.contains((1, 0)));
        assert!(!cache.contains((1, 1)));
        assert_eq!(cache.loads(), 4);
        // Larger than the whole cache: served, not kept.
        let big = cache.get_or_load((2, 0), || Ok(vec![0; 31])).expect("big");
        assert_eq!(big.len(), 31);
        assert!(!cache.contains((2, 0)));
        assert!(cache.used_bytes() <= 30);
    }

    #[test]
    fn errors_are_not_cached_and_a_panicking_loader_frees_waiters() {
        let cache = MemberCache::new(100);
        assert!(cache.get_or_load((1, 0), || Err(io::Error::other("bad"))).is_err());
        assert!(!cache.contains((1, 0)));
        let c = cache.clone();
        let r = std::thread::spawn(move || c.get_or_load((1, 1), || panic!("loader panics"))).join();
        assert!(r.is_err());
        assert!(!cache.contains((1, 1)));
        assert_eq!(&*cache.get_or_load((1, 1), || Ok(vec![7])).expect("load"), &[7]);
    }

    #[test]
    fn concurrent_readers_load_once() {
        let cache = MemberCache::new(1 << 20);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = cache.clone();
                std::thread::spawn(move || {
                    c.get_or_load((1, 0), || {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok(vec![1; 1000])
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("join").expect("load").len(), 1000);
        }
        assert_eq!(cache.loads(), 1);
    }

    #[test]
    fn prefetch_runs_jobs() {
        let cache = MemberCache::new(1 << 20);
        let (tx, rx) = std::sync::mpsc::channel();
        cache.prefetch(move || tx.send(()).expect("send"));
        rx.recv_timeout(std::time::Duration::from_secs(5)).expect("job ran");
    }
}
