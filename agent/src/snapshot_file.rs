//! Reading one file of a snapshot from its destination, found by its path
//! through the snapshot's index, its bytes checked against the blake3 the
//! index recorded (a file that does not match is an error at its end, never
//! data handed on as if it were good).
//!
//! What a destination holds may be hostile: names come from the index, one
//! component at a time; on a local destination each directory is opened
//! without following symlinks, and the file must be a regular file of the
//! recorded size.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use hindsight_fs::archive::ArchiveFiles;
use hindsight_fs::index::{INDEX_FILE, IndexEntry, IndexReader, ROOT_ID};
use hindsight_fs::remote::RemoteStore;
use hindsight_fs::{Destination, EntryKind, Structure, TREE_DIR, posix};
use rustix::fs::{Mode, OFlags};

use crate::catalog::Catalog;
use crate::destinations;
use crate::error::AgentError;
use crate::model::SnapshotId;

/// The components of an absolute path as backed up (the snapshot mirrors
/// absolute paths), refused when relative or holding `.` or `..`.
pub(crate) fn components(path: &str) -> Result<Vec<Vec<u8>>, AgentError> {
    if !path.starts_with('/') {
        return Err(AgentError::invalid(format!("{path:?} is not an absolute path")));
    }
    let comps: Vec<Vec<u8>> = path.split('/').filter(|c| !c.is_empty()).map(|c| c.as_bytes().to_vec()).collect();
    if comps.iter().any(|c| c == b"." || c == b"..") {
        return Err(AgentError::invalid(format!("{path:?}: give the path without . or ..")));
    }
    Ok(comps)
}

/// Bytes asked of a remote destination per request.
const REMOTE_CHUNK: u64 = 4 << 20;

/// One regular file of a snapshot, open for reading.
pub(crate) struct SnapshotFile {
    inner: Box<dyn Read + Send>,
    hasher: blake3::Hasher,
    expected: Option<[u8; 32]>,
    /// Its size as the index records it.
    pub size: u64,
    read: u64,
    what: String,
}

/// Opens `path` (components under the snapshot's root) of snapshot `id`;
/// `cache_root` is the agent's cache of remote destinations.
pub(crate) fn open(
    catalog: &Catalog,
    cache_root: &std::path::Path,
    id: SnapshotId,
    path: &[&[u8]],
) -> Result<SnapshotFile, AgentError> {
    let rec = catalog.snapshot(id)?;
    let snap = &rec.snapshot;
    let what = format!(
        "/{} in snapshot {} of job {} on {}",
        path.iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join("/"),
        snap.name,
        snap.job,
        snap.destination
    );
    if let Some(bad) = path.iter().find(|c| c.is_empty() || **c == b"." || **c == b".." || c.contains(&b'/')) {
        return Err(AgentError::invalid(format!("{what}: {:?} is not a file name", String::from_utf8_lossy(bad))));
    }
    let (index, source) = index_and_source(catalog, cache_root, snap)?;
    let fs_err = |e: hindsight_fs::FsError| AgentError::unreachable(format!("{what}: {e}"));
    let mut id = ROOT_ID;
    let mut entry = None;
    for c in path {
        let e = index.lookup(id, c).map_err(fs_err)?;
        let e = e.ok_or_else(|| AgentError::not_found(format!("{what}: not in the snapshot")))?;
        id = e.id;
        entry = Some(e);
    }
    let entry = entry.ok_or_else(|| AgentError::invalid(format!("{what}: no path given")))?;
    file_of(&source, &PackCache::default(), &entry, path, what)
}

/// The content of `entry` (at `path`), a regular file, from `source`.
fn file_of(
    source: &Source,
    packs: &PackCache,
    entry: &IndexEntry,
    path: &[&[u8]],
    what: String,
) -> Result<SnapshotFile, AgentError> {
    if entry.meta.kind != EntryKind::File {
        return Err(AgentError::invalid(format!("{what}: not a regular file")));
    }
    Ok(SnapshotFile {
        inner: source.open(entry, path, &what, packs)?,
        hasher: blake3::Hasher::new(),
        expected: entry.blake3,
        size: entry.meta.size,
        read: 0,
        what,
    })
}

/// A snapshot open for reading many files: its index and where their
/// contents are (a tree, objects, or an archive's data file).
pub(crate) struct SnapshotReader {
    /// The snapshot's index.
    pub index: IndexReader,
    source: Source,
    packs: PackCache,
    /// `snapshot NAME of job J on D`, for messages.
    pub what: String,
}

impl SnapshotReader {
    /// Opens snapshot `snap`.
    pub(crate) fn open(
        catalog: &Catalog,
        cache_root: &std::path::Path,
        snap: &crate::model::Snapshot,
    ) -> Result<Self, AgentError> {
        let what = format!("snapshot {} of job {} on {}", snap.name, snap.job, snap.destination);
        let (index, source) = index_and_source(catalog, cache_root, snap)?;
        Ok(SnapshotReader { index, source, packs: PackCache::default(), what })
    }

    /// The content of `entry`, at `path` (components under the snapshot's root).
    pub(crate) fn file(&self, entry: &IndexEntry, path: &[&[u8]]) -> Result<SnapshotFile, AgentError> {
        let shown = path.iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join("/");
        file_of(&self.source, &self.packs, entry, path, format!("/{shown} in {}", self.what))
    }
}

/// A snapshot's index, opened: on a local destination from the snapshot's
/// directory, on a remote one from the agent's cache (fetched when missing).
pub(crate) fn open_index(
    catalog: &Catalog,
    cache_root: &std::path::Path,
    snap: &crate::model::Snapshot,
) -> Result<IndexReader, AgentError> {
    index_and_source(catalog, cache_root, snap).map(|(index, _)| index)
}

/// A snapshot's index, and where its file contents are.
fn index_and_source(
    catalog: &Catalog,
    cache_root: &std::path::Path,
    snap: &crate::model::Snapshot,
) -> Result<(IndexReader, Source), AgentError> {
    let what = format!("snapshot {} of job {} on {}", snap.name, snap.job, snap.destination);
    let fs_err = |e: hindsight_fs::FsError| AgentError::unreachable(format!("{what}: {e}"));
    let dest = catalog.destination(&snap.destination)?;
    let target = destinations::open(catalog.master_key(), &dest)?;
    let archived = snap.structure != Structure::Incremental;
    let prefix = format!("{}/{}", snap.job, snap.name);
    Ok(match target {
        Destination::Local(root) => {
            let dir = root.snapshot_dir(&snap.job, &snap.name);
            let index = IndexReader::open(&dir.join(INDEX_FILE)).map_err(fs_err)?;
            let source = if archived {
                Source::Archive(ArchiveFiles::open_local(&dir, snap.structure, &index).map_err(fs_err)?)
            } else {
                Source::Tree(dir.join(TREE_DIR))
            };
            (index, source)
        }
        Destination::Remote(store) => {
            let cache = dest.cache_dir(cache_root).map_err(AgentError::internal)?;
            let index_path = store.cached_index(&cache, &snap.job, &snap.name).map_err(fs_err)?;
            let index = IndexReader::open(&index_path).map_err(fs_err)?;
            let source = match &store {
                _ if archived => Source::Archive(
                    ArchiveFiles::open_remote(&store, &prefix, &cache, snap.structure, &index).map_err(fs_err)?,
                ),
                RemoteStore::Objects(_) => Source::Objects(store),
                RemoteStore::Ssh(_) => Source::Server(store, format!("{prefix}/{TREE_DIR}")),
            };
            (index, source)
        }
    })
}

/// Where a snapshot's file contents are.
enum Source {
    /// The data file of an archived or compressed snapshot.
    Archive(ArchiveFiles),
    /// The `tree/` of an incremental snapshot on a local destination.
    Tree(std::path::PathBuf),
    /// Objects of a content-addressed destination.
    Objects(RemoteStore),
    /// The `tree/` (its path under the root) of a snapshot on an SSH server.
    Server(RemoteStore, String),
}

impl Source {
    /// The content of `e`, the entry at `path`.
    fn open(
        &self,
        e: &IndexEntry,
        path: &[&[u8]],
        what: &str,
        packs: &PackCache,
    ) -> Result<Box<dyn Read + Send>, AgentError> {
        match self {
            Source::Archive(files) => {
                let Some(start) = e.location.data_offset.filter(|&o| o >= 0) else {
                    return Err(AgentError::conflict(format!(
                        "{what}: the index gives no place in the archive for it"
                    )));
                };
                Ok(Box::new(files.reader(start as u64, e.meta.size)))
            }
            Source::Tree(tree) => {
                let fail = |e: io::Error| AgentError::unreachable(format!("{what}: {e}"));
                let Some((last, dirs)) = path.split_last() else {
                    return Err(AgentError::invalid(format!("{what}: no path given")));
                };
                let mut fd = posix::open_dir(tree).map_err(fail)?;
                for c in dirs {
                    fd = posix::open_dir_at(fd.as_fd(), c).map_err(fail)?;
                }
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let file = rustix::fs::openat(fd.as_fd(), OsStr::from_bytes(last), flags, Mode::empty())
                    .map_err(|e| fail(e.into()))?;
                let st = rustix::fs::fstat(&file).map_err(|e| fail(e.into()))?;
                if EntryKind::from_mode(st.st_mode) != Some(EntryKind::File) || st.st_size as u64 != e.meta.size {
                    return Err(AgentError::conflict(format!(
                        "{what}: the file on the destination is not the one its index describes"
                    )));
                }
                Ok(Box::new(std::fs::File::from(file)))
            }
            Source::Objects(store) => {
                let Some(key) = e.location.blob.clone() else {
                    return Err(AgentError::conflict(format!("{what}: the index gives no object for it")));
                };
                let start = e.location.data_offset.unwrap_or(0).max(0) as u64;
                if key.starts_with(PACKS_PREFIX) {
                    let pack =
                        packs.get(store, &key).map_err(|err| AgentError::unreachable(format!("{what}: {err}")))?;
                    let end = start.checked_add(e.meta.size).filter(|&end| end <= pack.len() as u64);
                    let Some(end) = end else {
                        return Err(AgentError::conflict(format!(
                            "{what}: pack {key} is shorter than its index says (damaged on the destination)"
                        )));
                    };
                    return Ok(Box::new(Slice { data: pack, at: start as usize, end: end as usize }));
                }
                let store = store.clone();
                Ok(Box::new(Ranges { store, key, next: start, end: start + e.meta.size, buf: Vec::new(), at: 0 }))
            }
            Source::Server(store, tree) => {
                let (store, mut key) = (store.clone(), tree.clone());
                for c in path {
                    key.push('/');
                    key.push_str(std::str::from_utf8(c).map_err(|_| {
                        AgentError::invalid(format!("{what}: names that are not UTF-8 are not read over SSH here"))
                    })?);
                }
                Ok(Box::new(Ranges { store, key, next: 0, end: e.meta.size, buf: Vec::new(), at: 0 }))
            }
        }
    }
}

impl Read for SnapshotFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.size - self.read) as usize);
        let n = if want == 0 { 0 } else { self.inner.read(&mut buf[..want])? };
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if n == 0 {
            if self.read != self.size {
                return Err(io::Error::other(format!(
                    "{}: ends after {} of its {} bytes",
                    self.what, self.read, self.size
                )));
            }
            if self.expected.is_some_and(|h| h != *self.hasher.finalize().as_bytes()) {
                return Err(io::Error::other(format!(
                    "{}: its content does not match the blake3 its index recorded (damaged on the destination)",
                    self.what
                )));
            }
        }
        Ok(n)
    }
}

/// Where packs of small files are, on content-addressed destinations.
const PACKS_PREFIX: &str = "packs/";

/// The last pack read, whole: the small files it holds are read from it in
/// turn (one request per pack instead of one per file; and a range that
/// stops before an object's end makes some FTP servers abort the transfer).
/// Packs are at most a few MiB.
#[derive(Default)]
struct PackCache(std::sync::Mutex<Option<(String, std::sync::Arc<Vec<u8>>)>>);

impl PackCache {
    fn get(&self, store: &RemoteStore, key: &str) -> Result<std::sync::Arc<Vec<u8>>, hindsight_fs::FsError> {
        let mut last = hindsight_fs::lock(&self.0);
        if let Some((k, data)) = last.as_ref()
            && k == key
        {
            return Ok(data.clone());
        }
        let data = std::sync::Arc::new(store.read(key)?);
        *last = Some((key.to_string(), data.clone()));
        Ok(data)
    }
}

/// Bytes `at..end` of a pack held in memory.
struct Slice {
    data: std::sync::Arc<Vec<u8>>,
    at: usize,
    end: usize,
}

impl Read for Slice {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.end - self.at);
        out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A byte range of a remote object, read in chunks.
struct Ranges {
    store: RemoteStore,
    key: String,
    next: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
}

impl Read for Ranges {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.buf.len() {
            if self.next >= self.end {
                return Ok(0);
            }
            let len = REMOTE_CHUNK.min(self.end - self.next);
            self.buf = self.store.read_range(&self.key, self.next, len).map_err(io::Error::other)?;
            self.at = 0;
            if self.buf.is_empty() {
                return Ok(0);
            }
            self.next += self.buf.len() as u64;
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
