//! Passthrough backing files kept per node, shared by every open of it.
//!
//! Registering a backing file costs an `openat` and two ioctls (open and
//! close of the backing id) per open, on top of the index query that finds
//! the file: reading many small files again paid all of it each time. And
//! the kernel takes one backing file per FUSE inode at a time: a second open
//! of a node with another backing id fails (EBUSY) while the first is open, so
//! sharing one id per node is also what concurrent readers need.
//!
//! Bounded: least recently used nodes are dropped beyond [`backing_cache_size`],
//! except those an open handle still holds (a handle keeps its `Arc`, and
//! the kernel looks the id up only after the open reply, so an id must
//! outlive every handle it was given to). Those are bounded by the files open
//! at once, and become droppable at their release.

use crate::sync::lock;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Nodes whose backing file is kept once no handle holds it, for an
/// open-files limit of `fd_limit` (`None`: unlimited): half the limit, so
/// the kept files never starve the rest of the process, between 256 and
/// 65,536. A restore reads each file once: a cache smaller than the tree
/// restored (4,610 files in the benchmark's) pays an `openat` and two ioctls
/// for every file, every time (73 us against 4 us natively for open+close).
pub(super) fn backing_cache_size(fd_limit: Option<u64>) -> usize {
    fd_limit.map_or(65_536, |l| (l / 2).clamp(256, 65_536) as usize)
}

/// A bounded map of node id -> shared value, least recently used dropped first.
pub(super) struct Shared<V> {
    inner: Mutex<Inner<V>>,
    cap: usize,
}

struct Inner<V> {
    /// Node -> (its position in `order`, the value).
    by_node: HashMap<u64, (u64, Arc<V>)>,
    /// Position -> node, oldest use first.
    order: BTreeMap<u64, u64>,
    next: u64,
}

impl<V> Inner<V> {
    /// Marks `node` as just used; returns its value.
    fn touch(&mut self, node: u64) -> Option<Arc<V>> {
        let tick = self.next;
        let (pos, v) = self.by_node.get_mut(&node)?;
        self.order.remove(pos);
        *pos = tick;
        let v = v.clone();
        self.order.insert(tick, node);
        self.next += 1;
        Some(v)
    }

    /// Removes least recently used values no one else holds until at most
    /// `cap` remain (or only held ones); returns them, to be dropped unlocked.
    fn evict(&mut self, cap: usize) -> Vec<Arc<V>> {
        let mut gone = Vec::new();
        let excess = self.by_node.len().saturating_sub(cap);
        if excess == 0 {
            return gone;
        }
        let idle: Vec<(u64, u64)> = self
            .order
            .iter()
            .filter(|(_, node)| self.by_node.get(node).is_some_and(|(_, v)| Arc::strong_count(v) == 1))
            .take(excess)
            .map(|(&pos, &node)| (pos, node))
            .collect();
        for (pos, node) in idle {
            self.order.remove(&pos);
            if let Some((_, v)) = self.by_node.remove(&node) {
                gone.push(v);
            }
        }
        gone
    }
}

/// Values a [`Shared`] no longer keeps, dropped with this (never under its lock).
#[must_use = "dropping evicted values is what releases them"]
pub(super) struct Evicted<V>(#[allow(dead_code)] Vec<Arc<V>>);

impl<V> Shared<V> {
    /// An empty map keeping up to `cap` values no one else holds.
    pub(super) fn new(cap: usize) -> Self {
        Shared { inner: Mutex::new(Inner { by_node: HashMap::new(), order: BTreeMap::new(), next: 0 }), cap }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        lock(&self.inner)
    }

    /// The value of `node`, if kept.
    pub(super) fn get(&self, node: u64) -> Option<Arc<V>> {
        self.lock().touch(node)
    }

    /// Keeps `value` for `node` and returns it; when another open of the same
    /// node got there first, returns that one instead (and drops `value`).
    /// Also returns the values it stopped keeping, for the caller to drop when
    /// convenient: dropping a backing id is an ioctl, better after the reply.
    pub(super) fn insert(&self, node: u64, value: V) -> (Arc<V>, Evicted<V>) {
        let (kept, gone) = {
            let mut inner = self.lock();
            match inner.touch(node) {
                Some(v) => (v, Vec::new()),
                None => {
                    let v = Arc::new(value);
                    let tick = inner.next;
                    inner.next += 1;
                    inner.by_node.insert(node, (tick, v.clone()));
                    inner.order.insert(tick, node);
                    // `v` is held here, so it is never its own victim.
                    let gone = inner.evict(self.cap);
                    (v, gone)
                }
            }
        };
        (kept, Evicted(gone))
    }

    /// Forgets every node `keep` refuses (the nodes of deleted snapshots, so
    /// that their files are closed and their space freed).
    pub(super) fn retain(&self, keep: impl Fn(u64) -> bool) {
        let gone: Vec<Arc<V>> = {
            let mut inner = self.lock();
            let nodes: Vec<u64> = inner.by_node.keys().copied().filter(|n| !keep(*n)).collect();
            let mut gone = Vec::with_capacity(nodes.len());
            for node in nodes {
                if let Some((pos, v)) = inner.by_node.remove(&node) {
                    inner.order.remove(&pos);
                    gone.push(v);
                }
            }
            gone
        };
        drop(gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_follows_the_open_files_limit() {
        assert_eq!(backing_cache_size(Some(1024)), 512);
        assert_eq!(backing_cache_size(Some(20_000)), 10_000);
        assert_eq!(backing_cache_size(Some(100)), 256);
        assert_eq!(backing_cache_size(Some(1 << 20)), 65_536);
        assert_eq!(backing_cache_size(None), 65_536);
    }

    impl<V> Shared<V> {
        fn len(&self) -> usize {
            self.lock().by_node.len()
        }
    }

    #[test]
    fn least_recently_used_goes_first() {
        let c = Shared::new(2);
        drop(c.insert(1, "a"));
        drop(c.insert(2, "b"));
        assert!(c.get(1).is_some());
        let (_, evicted) = c.insert(3, "c");
        assert_eq!(evicted.0.iter().map(|v| **v).collect::<Vec<_>>(), vec!["b"], "handed back to be dropped");
        assert!(c.get(2).is_none(), "2 was the least recently used");
        assert!(c.get(1).is_some() && c.get(3).is_some());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn held_values_are_never_dropped() {
        let c = Shared::new(1);
        let (held, _) = c.insert(1, "a");
        drop(c.insert(2, "b"));
        drop(c.insert(3, "c"));
        // 1 is held by an open handle: kept beyond the bound, and still the same value.
        let again = c.get(1).expect("held value kept");
        assert!(Arc::ptr_eq(&held, &again));
        assert_eq!(c.len(), 2);
        drop((held, again));
        drop(c.insert(4, "d"));
        assert!(c.get(1).is_none(), "released, then dropped as the oldest");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_second_insert_of_a_node_shares_the_first_value() {
        let c = Shared::new(4);
        let (first, _) = c.insert(7, String::from("first"));
        let (second, _) = c.insert(7, String::from("second"));
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(*second, "first");
    }

    #[test]
    fn retain_forgets_refused_nodes_even_when_held() {
        let c = Shared::new(4);
        let (held, _) = c.insert(1, 10);
        drop(c.insert(2, 20));
        c.retain(|n| n != 1);
        assert!(c.get(1).is_none());
        assert_eq!(*held, 10, "the holder keeps its value");
        assert!(c.get(2).is_some());
    }

    #[test]
    fn memory_stays_bounded_under_many_nodes_and_reuses() {
        let c = Shared::new(8);
        for i in 0..10_000u64 {
            drop(c.insert(i, i));
            c.get(i / 2);
        }
        let inner = c.lock();
        assert_eq!(inner.by_node.len(), 8);
        assert_eq!(inner.order.len(), 8);
    }
}
