//! The one lock policy of Hindsight's crates.
//!
//! A panic while a lock is held poisons it. Every value behind these locks
//! is updated by whole assignments or pushes (caches, counters, lists of
//! errors, maps of running work), so a poisoned one is still consistent:
//! it is used as it is, never turned into a dropped update or a second panic.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the value of a poisoned lock (see the module docs).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
