//! File contents of remote snapshots, read by range through the mount.
//!
//! A file is a range of one object (a blob, or part of a pack). Reads fetch
//! aligned chunks of [`CHUNK`] bytes of the object, kept in the mount's shared
//! byte-bounded cache (the one that holds inflated archive members), so that
//! small reads do not each cost a request and several readers of one file
//! share its chunks. A read in the second half of a chunk of a file that goes
//! on fetches the next chunk in the background: sequential reads do not wait
//! for the network at every chunk. A failed fetch (after the store's retries)
//! is an I/O error for that read only.

use std::io;
use std::sync::Arc;

use crate::archive::reader::MemberCache;
use crate::mount::content::ReadAt;

use super::store::RemoteStore;

/// Bytes fetched per request.
pub(crate) const CHUNK: u64 = 1 << 20;

/// One file of a remote snapshot.
pub(crate) struct RemoteContent {
    store: RemoteStore,
    /// The object's path: bytes, as file names in the trees of ssh
    /// destinations are (object stores' keys are text).
    key: Arc<[u8]>,
    /// Cache identity of the object (chunks of one object are shared by every file in it).
    object: u64,
    start: u64,
    size: u64,
    cache: MemberCache,
}

impl RemoteContent {
    /// The `size` bytes at `start` of object `key`.
    pub(crate) fn new(store: RemoteStore, key: &[u8], start: u64, size: u64, cache: MemberCache) -> Self {
        // Keys of the archive members' cache are (identity, index); objects take
        // identities from the top half of the space, by name, so that every
        // reader of one object shares its chunks.
        let h = blake3::hash(key);
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.as_bytes()[..8]);
        let object = u64::from_le_bytes(first) | 1 << 63;
        RemoteContent { store, key: Arc::from(key), object, start, size, cache }
    }

    /// The cache key and byte count of chunk `index` as this file needs it.
    /// Asking past the object's end is an error for some services, and the
    /// object's size is not known here: a chunk where this file ends is fetched
    /// only up to its end, and cached under a key of its own length.
    fn chunk_key(&self, index: u64) -> ((u64, u64), u64) {
        let end = self.start + self.size;
        let len = CHUNK.min(end.saturating_sub(index * CHUNK));
        let object = if len == CHUNK { self.object } else { self.object ^ len.rotate_left(20) };
        ((object, index), len)
    }

    fn chunk(&self, index: u64) -> io::Result<Arc<[u8]>> {
        let (store, key) = (self.store.clone(), self.key.clone());
        let (ckey, len) = self.chunk_key(index);
        self.cache.get_or_load(ckey, move || fetch(&store, &key, index, len))
    }
}

fn fetch(store: &RemoteStore, key: &[u8], index: u64, len: u64) -> io::Result<Vec<u8>> {
    store.read_range_raw(key, index * CHUNK, len).map_err(|e| {
        tracing::warn!("remote read of {}: {e}", String::from_utf8_lossy(key));
        io::Error::other(e.to_string())
    })
}

impl ReadAt for RemoteContent {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let len = (self.size - offset).min(buf.len() as u64) as usize;
        let mut done = 0usize;
        while done < len {
            let pos = self.start + offset + done as u64;
            let (index, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let data = self.chunk(index)?;
            if within >= data.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} ends before the file's bytes do", String::from_utf8_lossy(&self.key)),
                ));
            }
            let n = (data.len() - within).min(len - done);
            buf[done..done + n].copy_from_slice(&data[within..within + n]);
            done += n;
            let file_end = self.start + self.size;
            if within + n > CHUNK as usize / 2 && (index + 1) * CHUNK < file_end {
                let (next, next_len) = self.chunk_key(index + 1);
                if !self.cache.contains(next) {
                    let (store, key, cache) = (self.store.clone(), self.key.clone(), self.cache.clone());
                    self.cache.prefetch(move || {
                        let _ = cache.get_or_load(next, || fetch(&store, &key, index + 1, next_len));
                    });
                }
            }
        }
        Ok(len)
    }
}
