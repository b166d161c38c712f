//! The walk of a backup's sources, shared by every engine: it hands every
//! entry to a [`Sink`], in tar order (a directory before its children, and
//! [`Sink::dir_end`] after them), with index rows sent to the index thread.
//!
//! The sinks: the local hardlink tree (`local_tree`: links unchanged files to
//! the previous snapshot, queues the others to copy threads), archives (tar
//! entries), SSH trees (a tar stream extracted on the server) and
//! content-addressed remote snapshots (blobs). The walk owns what they share:
//! entry ids (children of a directory are consecutive), the ancestors of the
//! sources, excludes, the skipped directories, one file system, symlink
//! targets, hardlink groups inside the source, the previous snapshot's entry
//! of each name, the xattrs of unchanged entries, and per-file errors.
//!
//! Errors on the source side (vanished, unreadable) are recorded per file and
//! the walk goes on; errors of the sink (the destination) stop the run.
//!
//! What is recorded is what was read: a directory's owner, mode and times
//! come from `fstat` of the descriptor it is listed from, a file's from the
//! descriptor its bytes are read from ([`open_file`]), and a name that
//! `lstat` showed as one file but that opens as another (a rename or exchange
//! in between, by a user who can write in the directory) is left out, never
//! stored under the first file's owner and mode.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use hindsight_fs::entry::EntryKind;
use hindsight_fs::index::{IndexEntry, IndexReader, Location, ROOT_ID};
use hindsight_fs::posix;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::change::unchanged;
use super::index_thread::RowQueue;
use super::progress::{Cancel, Progress};
use super::source_path;
use super::spec::{BackupError, BackupSpec, Row};

/// The first name of a multiply-linked file, as the sink stored it.
pub(super) struct FirstName {
    /// Its entry id.
    pub id: i64,
    /// Its path in the snapshot (relative, as the sink saw it).
    pub path: Vec<u8>,
    /// Where its content went.
    pub location: Location,
    /// Its content hash.
    pub blake3: Option<[u8; 32]>,
}

/// A regular file to store.
pub(super) struct SourceFile<'a> {
    /// Its directory (shared: a copy thread may open the name again).
    pub dir: &'a Arc<OwnedFd>,
    /// Its name in the directory.
    pub name: &'a [u8],
    /// Its path in the snapshot (relative).
    pub path: &'a [u8],
    /// Its absolute source path, for messages.
    pub abs: &'a [u8],
    /// The previous snapshot's entry of the same name, if any.
    pub prev: Option<&'a IndexEntry>,
    /// (device, inode) that `lstat` gave: the file opened must be this one.
    pub ident: (u64, u64),
}

/// What became of a regular file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    /// Written by this snapshot.
    New,
    /// Written by this snapshot later, by another thread of the sink, which
    /// sends the index row itself once the content is stored.
    Queued,
    /// Already on the destination.
    Reused,
    /// Could not be read: the file is left out.
    Skipped,
}

/// What a structure does with each entry. Paths are relative to the
/// snapshot's root; a directory's ends with `/`. The row is sent to the index
/// after each call, with whatever the sink filled in (its location, its hash).
pub(super) trait Sink {
    /// What the sink keeps about a directory while its entries are stored.
    type Dir;
    /// The snapshot's root (the metadata of `/`), before anything else.
    fn root(&mut self, row: &mut IndexEntry) -> Result<Self::Dir, BackupError>;
    /// A directory, before its children; `prev` is its previous entry.
    fn dir(
        &mut self,
        parent: &mut Self::Dir,
        path: &[u8],
        prev: Option<&IndexEntry>,
        row: &mut IndexEntry,
    ) -> Result<Self::Dir, BackupError>;
    /// After a directory's children (`listed`: every entry it holds was
    /// walked; false for the ancestors of a source, which end last).
    fn dir_end(&mut self, _dir: Self::Dir, _path: &[u8], _listed: bool) -> Result<(), BackupError> {
        Ok(())
    }
    /// A symlink, fifo, device or socket; false when it is left out.
    fn special(
        &mut self,
        parent: &mut Self::Dir,
        path: &[u8],
        prev: Option<&IndexEntry>,
        row: &mut IndexEntry,
    ) -> Result<bool, BackupError>;
    /// A further name of a file whose first name is already stored; false
    /// when it cannot be linked there (too many links), and it is then
    /// stored as a file of its own.
    fn hardlink(
        &mut self,
        parent: &mut Self::Dir,
        path: &[u8],
        first: &FirstName,
        row: &mut IndexEntry,
    ) -> Result<bool, BackupError>;
    /// A regular file (its first name).
    fn file(&mut self, parent: &mut Self::Dir, f: SourceFile<'_>, row: &mut IndexEntry) -> Result<Stored, BackupError>;
}

/// A sink that keeps nothing per directory (a stream of entries, or a store
/// of file bodies): the calls of [`Sink`] without the directory handles.
pub(super) trait StreamSink {
    /// A directory, before its children.
    fn dir(&mut self, path: &[u8], row: &mut IndexEntry) -> Result<(), BackupError>;
    /// A symlink, fifo, device or socket.
    fn special(&mut self, path: &[u8], row: &mut IndexEntry) -> Result<(), BackupError>;
    /// A further name of a file whose first name is already stored.
    fn hardlink(&mut self, path: &[u8], first: &FirstName, row: &mut IndexEntry) -> Result<(), BackupError>;
    /// A regular file (its first name).
    fn file(&mut self, f: SourceFile<'_>, row: &mut IndexEntry) -> Result<Stored, BackupError>;
}

impl<T: StreamSink> Sink for T {
    type Dir = ();

    fn root(&mut self, _row: &mut IndexEntry) -> Result<(), BackupError> {
        Ok(())
    }

    fn dir(
        &mut self,
        _: &mut (),
        path: &[u8],
        _: Option<&IndexEntry>,
        row: &mut IndexEntry,
    ) -> Result<(), BackupError> {
        StreamSink::dir(self, path, row)
    }

    fn special(
        &mut self,
        _: &mut (),
        path: &[u8],
        _: Option<&IndexEntry>,
        row: &mut IndexEntry,
    ) -> Result<bool, BackupError> {
        StreamSink::special(self, path, row).map(|()| true)
    }

    fn hardlink(
        &mut self,
        _: &mut (),
        path: &[u8],
        first: &FirstName,
        row: &mut IndexEntry,
    ) -> Result<bool, BackupError> {
        StreamSink::hardlink(self, path, first, row).map(|()| true)
    }

    fn file(&mut self, _: &mut (), f: SourceFile<'_>, row: &mut IndexEntry) -> Result<Stored, BackupError> {
        StreamSink::file(self, f, row)
    }
}

/// The walk of one backup.
pub(super) struct SourceWalk<'a, S: Sink> {
    pub spec: &'a BackupSpec,
    pub progress: &'a Progress,
    pub cancel: &'a Cancel,
    pub sink: S,
    /// The previous snapshot's index, for sinks that reuse unchanged content.
    pub prev: Option<&'a IndexReader>,
    next_id: i64,
    rows: RowQueue,
    /// (dev, ino) of multiply-linked files -> their first name.
    hardlinks: HashMap<(u64, u64), FirstName>,
    source_dev: u64,
}

/// One directory being walked.
struct Dir<'d> {
    id: i64,
    /// The same directory's id in the previous snapshot.
    prev_id: Option<i64>,
    fd: &'d Arc<OwnedFd>,
    /// Path in the snapshot, ending with `/` (empty for `/`).
    path: &'d [u8],
}

/// An ancestor directory of a source: made once, ended after every source.
struct Ancestor<D> {
    id: i64,
    prev_id: Option<i64>,
    dir: D,
}

impl<'a, S: Sink> SourceWalk<'a, S> {
    /// A walk sending rows to `rows`.
    pub fn new(
        spec: &'a BackupSpec,
        progress: &'a Progress,
        cancel: &'a Cancel,
        sink: S,
        prev: Option<&'a IndexReader>,
        rows: SyncSender<Vec<Row>>,
    ) -> Self {
        SourceWalk {
            spec,
            progress,
            cancel,
            sink,
            prev,
            next_id: ROOT_ID + 1,
            rows: RowQueue::new(rows),
            hardlinks: HashMap::new(),
            source_dev: 0,
        }
    }

    /// Walks every source; returns the sink. The rows channel closes with the
    /// walk, which ends the index thread.
    pub fn run(mut self) -> Result<S, BackupError> {
        self.walk_sources()?;
        self.rows.flush()?;
        Ok(self.sink)
    }

    fn send(&mut self, entry: IndexEntry) -> Result<(), BackupError> {
        self.rows.push(entry, false)
    }

    fn alloc(&mut self, n: usize) -> i64 {
        let first = self.next_id;
        self.next_id += n as i64;
        first
    }

    /// The root entry, the ancestors of every source, then every source.
    /// Ancestors are opened from `/` without following symlinks
    /// ([`source_path`]); they and the root end last, deepest first.
    fn walk_sources(&mut self) -> Result<(), BackupError> {
        let (root_fd, root_meta) = source_path::open_root()?;
        let root_fd = Arc::new(root_fd);
        let mut row = IndexEntry::new(ROOT_ID, 0, Vec::new(), root_meta);
        let mut root = self.sink.root(&mut row)?;
        self.send(row)?;
        let mut root_listed = false;
        let mut ancestors: BTreeMap<Vec<u8>, Ancestor<S::Dir>> = BTreeMap::new();
        let mut sources = self.spec.sources.clone();
        sources.sort();
        let prev_root = self.prev.map(|_| ROOT_ID);
        for src in &sources {
            let comps = source_path::components(src);
            let Some((last, parents)) = comps.split_last() else {
                self.source_dev = rustix::fs::fstat(&*root_fd).map_err(|e| source_err(src, e))?.st_dev;
                let dir = Dir { id: ROOT_ID, prev_id: prev_root, fd: &root_fd, path: b"" };
                root_listed = self.walk_dir(&dir, &mut root)?;
                continue;
            };
            let (mut parent_id, mut parent_prev) = (ROOT_ID, prev_root);
            let mut parent_fd = root_fd.clone();
            let mut path = Vec::new();
            for comp in parents {
                let parent_path = path.clone();
                path.extend_from_slice(comp);
                path.push(b'/');
                let (fd, meta) = source_path::open_ancestor(parent_fd.as_fd(), comp, &abs_of(&path))?;
                parent_fd = Arc::new(fd);
                if !ancestors.contains_key(&path) {
                    let id = self.alloc(1);
                    let prev = self.prev_child(parent_prev, comp).filter(|p| p.meta.kind == EntryKind::Dir);
                    let mut r = IndexEntry::new(id, parent_id, comp.to_vec(), meta);
                    let parent = match ancestors.get_mut(&parent_path) {
                        Some(a) => &mut a.dir,
                        None => &mut root,
                    };
                    let dir = self.sink.dir(parent, &path, prev.as_ref(), &mut r)?;
                    self.send(r)?;
                    ancestors.insert(path.clone(), Ancestor { id, prev_id: prev.map(|p| p.id), dir });
                }
                let a = &ancestors[&path];
                (parent_id, parent_prev) = (a.id, a.prev_id);
            }
            self.source_dev = posix::lstat_at(parent_fd.as_fd(), last).map_err(|e| source_err(src, e))?.st_dev;
            let id = self.alloc(1);
            let dir = Dir { id: parent_id, prev_id: parent_prev, fd: &parent_fd, path: &path };
            let prevs = self.prev_children(parent_prev);
            let parent = match ancestors.get_mut(&path) {
                Some(a) => &mut a.dir,
                None => &mut root,
            };
            self.entry(&dir, parent, &prevs, last, id)?;
        }
        while let Some((path, a)) = ancestors.pop_last() {
            self.sink.dir_end(a.dir, &path, false)?;
        }
        self.sink.dir_end(root, b"", root_listed)
    }

    fn prev_child(&self, parent: Option<i64>, name: &[u8]) -> Option<IndexEntry> {
        let (Some(prev), Some(pid)) = (self.prev, parent) else { return None };
        prev.lookup(pid, name).ok().flatten()
    }

    fn prev_children(&self, parent: Option<i64>) -> HashMap<Vec<u8>, IndexEntry> {
        let (Some(prev), Some(pid)) = (self.prev, parent) else { return HashMap::new() };
        match prev.children(pid) {
            Ok(kids) => kids.into_iter().map(|e| (e.name.clone(), e)).collect(),
            Err(e) => {
                tracing::warn!("previous snapshot: {e}; storing this directory in full");
                HashMap::new()
            }
        }
    }

    /// Walks every entry of `dir`; true when it could be listed.
    fn walk_dir(&mut self, dir: &Dir<'_>, handle: &mut S::Dir) -> Result<bool, BackupError> {
        let abs = abs_of(dir.path);
        self.progress.set_current(if abs.is_empty() { b"/" } else { &abs });
        let names = match posix::list_dir_by_inode(dir.fd.as_fd()) {
            Ok(n) => n,
            Err(e) => {
                self.progress.failed(&abs, format!("cannot list directory: {e}"));
                return Ok(false);
            }
        };
        let prevs = self.prev_children(dir.prev_id);
        let base = self.alloc(names.len());
        for (i, name) in names.iter().enumerate() {
            self.entry(dir, handle, &prevs, name, base + i as i64)?;
        }
        Ok(true)
    }

    /// Stores one entry of `dir` (and everything under it).
    fn entry(
        &mut self,
        dir: &Dir<'_>,
        parent: &mut S::Dir,
        prevs: &HashMap<Vec<u8>, IndexEntry>,
        name: &[u8],
        id: i64,
    ) -> Result<(), BackupError> {
        if self.cancel.is_cancelled() {
            return Err(BackupError::Cancelled);
        }
        let mut path = [dir.path, name].concat();
        let abs = abs_of(&path);
        let st = match posix::lstat_at(dir.fd.as_fd(), name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.progress.failed(&abs, VANISHED);
                return Ok(());
            }
            Err(e) => {
                self.progress.failed(&abs, format!("cannot stat: {e}"));
                return Ok(());
            }
        };
        let Some(meta) = posix::meta_from_stat(&st) else {
            self.progress.failed(&abs, "unsupported file type");
            return Ok(());
        };
        let is_dir = meta.kind == EntryKind::Dir;
        if self.spec.excludes.is_excluded(&abs, is_dir) || (is_dir && self.spec.skip_dirs.contains(&abs)) {
            return Ok(());
        }
        self.progress.scanned(if meta.kind == EntryKind::File { meta.size } else { 0 });
        let mut r = IndexEntry::new(id, dir.id, name.to_vec(), meta);
        let prev = prevs.get(name);
        match r.meta.kind {
            EntryKind::Dir => {
                let fd = match posix::open_dir_at(dir.fd.as_fd(), name) {
                    Ok(fd) => Arc::new(fd),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.progress.failed(&abs, VANISHED);
                        return Ok(());
                    }
                    Err(e) => {
                        self.progress.failed(&abs, format!("cannot open directory: {e}"));
                        return Ok(());
                    }
                };
                // The directory listed is the one described.
                match posix::fstat_meta(fd.as_fd()) {
                    Some((id, m)) if id == (st.st_dev, st.st_ino) => r.meta = m,
                    _ => {
                        self.progress.failed(&abs, REPLACED);
                        return Ok(());
                    }
                }
                match posix::read_xattrs_fd(fd.as_fd()) {
                    Ok(x) => r.meta.xattrs = x,
                    Err(e) => self.progress.failed(&abs, format!("cannot read xattrs: {e}")),
                }
                path.push(b'/');
                let prev = prev.filter(|p| p.meta.kind == EntryKind::Dir);
                let mut handle = self.sink.dir(parent, &path, prev, &mut r)?;
                self.send(r)?;
                let crosses_mount = self.spec.one_file_system && st.st_dev != self.source_dev;
                let listed = !crosses_mount
                    && self.walk_dir(&Dir { id, prev_id: prev.map(|p| p.id), fd: &fd, path: &path }, &mut handle)?;
                self.sink.dir_end(handle, &path, listed)?;
            }
            EntryKind::File => {
                let nlink = st.st_nlink as u64;
                let key = (st.st_dev, st.st_ino);
                let mut first_name = nlink > 1;
                if nlink > 1
                    && let Some(first) = self.hardlinks.get(&key)
                {
                    read_xattrs(&mut r, dir.fd.as_fd(), name, &abs, self.progress);
                    r.hardlink = Some(first.id);
                    r.location = first.location.clone();
                    r.blake3 = first.blake3;
                    if self.sink.hardlink(parent, &path, first, &mut r)? {
                        self.progress.linked();
                        return self.send(r);
                    }
                    // Split from its group: a file of its own from here on.
                    (r.hardlink, r.location, r.blake3, first_name) = (None, Location::default(), None, false);
                }
                if first_name {
                    r.hardlink = Some(id);
                }
                let f = SourceFile { dir: dir.fd, name, path: &path, abs: &abs, prev, ident: key };
                let stored = self.sink.file(parent, f, &mut r)?;
                if stored == Stored::Skipped {
                    return Ok(());
                }
                if first_name {
                    let first = FirstName { id, path: path.clone(), location: r.location.clone(), blake3: r.blake3 };
                    self.hardlinks.insert(key, first);
                }
                if stored != Stored::Queued {
                    self.rows.push(r, stored == Stored::New)?;
                }
            }
            _ => {
                if r.meta.kind == EntryKind::Symlink {
                    match rustix::fs::readlinkat(dir.fd.as_fd(), OsStr::from_bytes(name), Vec::new()) {
                        Ok(t) => r.meta.target = Some(t.into_bytes()),
                        Err(e) => {
                            self.progress.failed(&abs, format!("cannot read symlink: {e}"));
                            return Ok(());
                        }
                    }
                }
                match prev.filter(|p| unchanged(&r.meta, &p.meta)) {
                    // The inode has not changed: its recorded xattrs are still its own.
                    Some(p) => r.meta.xattrs = p.meta.xattrs.clone(),
                    None => read_xattrs(&mut r, dir.fd.as_fd(), name, &abs, self.progress),
                }
                if self.sink.special(parent, &path, prev, &mut r)? {
                    self.progress.linked();
                    self.send(r)?;
                }
            }
        }
        Ok(())
    }
}

/// What a file that disappeared between its listing and its reading is recorded as.
pub(super) const VANISHED: &str = "vanished during the backup";

/// What a file replaced between its `lstat` and its `open` is recorded as.
pub(super) const REPLACED: &str = "replaced by another file while it was being backed up; left out of this snapshot";

/// Opens a source file for reading without following symlinks or touching its atime.
pub(super) fn open_source_file(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    match rustix::fs::openat(dir, OsStr::from_bytes(name), flags | OFlags::NOATIME, Mode::empty()) {
        // O_NOATIME is refused on files the caller does not own unless privileged.
        Err(Errno::PERM) => rustix::fs::openat(dir, OsStr::from_bytes(name), flags, Mode::empty()),
        r => r,
    }
}

/// Opens a regular file to store; its metadata and xattrs are taken again from
/// the open descriptor (what is read is what it describes). `None` when it
/// cannot be opened, or opens as another file than `lstat` saw (renamed or
/// exchanged in between): recorded as a failure of that file, which is left out.
pub(super) fn open_file(f: &SourceFile<'_>, r: &mut IndexEntry, progress: &Progress) -> Option<OwnedFd> {
    let fd = match open_source_file(f.dir.as_fd(), f.name) {
        Ok(fd) => fd,
        Err(e) => {
            let msg =
                if e == Errno::NOENT { VANISHED.to_string() } else { format!("cannot open: {}", io::Error::from(e)) };
            progress.failed(f.abs, msg);
            return None;
        }
    };
    match posix::fstat_meta(fd.as_fd()) {
        Some((id, m)) if id == f.ident && m.kind == EntryKind::File => r.meta = m,
        _ => {
            progress.failed(f.abs, REPLACED);
            return None;
        }
    }
    match posix::read_xattrs_fd(fd.as_fd()) {
        Ok(x) => r.meta.xattrs = x,
        Err(e) => progress.failed(f.abs, format!("cannot read xattrs: {e}")),
    }
    Some(fd)
}

/// Reads an entry's xattrs by name (recording a failure, keeping the entry).
pub(super) fn read_xattrs(r: &mut IndexEntry, dir: BorrowedFd<'_>, name: &[u8], abs: &[u8], progress: &Progress) {
    match posix::read_xattrs_at(dir, name) {
        Ok(x) => r.meta.xattrs = x,
        Err(e) => progress.failed(abs, format!("cannot read xattrs: {e}")),
    }
}

/// `dir/name`.
pub(super) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Absolute source path of a snapshot path (`etc/passwd` -> `/etc/passwd`).
pub(super) fn abs_of(path: &[u8]) -> Vec<u8> {
    join(b"", path.strip_suffix(b"/").unwrap_or(path))
}

fn source_err(src: &Path, e: impl Into<io::Error>) -> BackupError {
    BackupError::Source(format!("source {}: {}", src.display(), e.into()))
}
