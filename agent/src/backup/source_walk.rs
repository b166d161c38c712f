//! A walk of the sources that hands every entry to a [`Sink`], in tar order
//! (a directory before its children), with index rows sent to the index thread.
//!
//! Used by the structures that do not build a tree of files on the
//! destination: archives (the sink appends tar entries) and content-addressed
//! remote snapshots (the sink stores file bodies as blobs). The walk owns what
//! they share: entry ids (children of a directory are consecutive), the
//! ancestors of the sources, excludes, the skipped directories, one file
//! system, symlink targets, hardlink groups inside the source, the previous
//! snapshot's entry of each name, and per-file errors.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc::SyncSender;

use hindsight_fs::entry::EntryKind;
use hindsight_fs::index::{IndexEntry, IndexReader, Location, ROOT_ID};
use hindsight_fs::posix;

use super::index_thread::RowQueue;
use super::progress::{Cancel, Progress};
use super::source_path;
use super::spec::{BackupError, BackupSpec, Row};
use super::walker::{join, open_source_file};

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
    /// Its directory.
    pub dir: BorrowedFd<'a>,
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
    /// Already on the destination.
    Reused,
    /// Could not be read: the file is left out.
    Skipped,
}

/// What a structure does with each entry. The row is sent to the index after
/// each call, with whatever location the sink filled in.
pub(super) trait Sink {
    /// A directory (its path ends with `/`), before its children.
    fn dir(&mut self, path: &[u8], row: &mut IndexEntry) -> Result<(), BackupError>;
    /// A symlink, fifo, device or socket.
    fn special(&mut self, path: &[u8], row: &mut IndexEntry) -> Result<(), BackupError>;
    /// A further name of a file whose first name is already stored.
    fn hardlink(&mut self, path: &[u8], first: &FirstName, row: &mut IndexEntry) -> Result<(), BackupError>;
    /// A regular file (its first name): `Stored::New` when this snapshot stored its
    /// content, `Stored::Reused` when it was there already, `Stored::Skipped` when
    /// it could not be read and is left out.
    fn file(&mut self, f: SourceFile<'_>, row: &mut IndexEntry) -> Result<Stored, BackupError>;
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
    fd: BorrowedFd<'d>,
    /// Path in the snapshot, ending with `/` (empty for `/`).
    path: &'d [u8],
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
        self.flush()?;
        Ok(self.sink)
    }

    fn send(&mut self, entry: IndexEntry) -> Result<(), BackupError> {
        self.rows.push(entry, false)
    }

    fn send_row(&mut self, entry: IndexEntry, added: bool) -> Result<(), BackupError> {
        self.rows.push(entry, added)
    }

    fn flush(&mut self) -> Result<(), BackupError> {
        self.rows.flush()
    }

    fn alloc(&mut self, n: usize) -> i64 {
        let first = self.next_id;
        self.next_id += n as i64;
        first
    }

    /// The root entry, the ancestors of every source, then every source.
    /// Ancestors are opened from `/` without following symlinks ([`source_path`]).
    fn walk_sources(&mut self) -> Result<(), BackupError> {
        let (root_fd, root_meta) = source_path::open_root()?;
        self.send(IndexEntry::new(ROOT_ID, 0, Vec::new(), root_meta))?;
        let mut ancestors: BTreeMap<Vec<u8>, (i64, Option<i64>)> = BTreeMap::new();
        let mut sources = self.spec.sources.clone();
        sources.sort();
        let prev_root = self.prev.map(|_| ROOT_ID);
        for src in &sources {
            let comps = source_path::components(src);
            let Some((last, parents)) = comps.split_last() else {
                self.source_dev = rustix::fs::fstat(&root_fd).map_err(|e| source_err(src, e))?.st_dev;
                self.walk_dir(&Dir { id: ROOT_ID, prev_id: prev_root, fd: root_fd.as_fd(), path: b"" })?;
                continue;
            };
            let (mut parent_id, mut parent_prev) = (ROOT_ID, prev_root);
            let mut parent_fd = rustix::io::fcntl_dupfd_cloexec(&root_fd, 0).map_err(|e| source_err(src, e))?;
            let mut path = Vec::new();
            for comp in parents {
                path.extend_from_slice(comp);
                path.push(b'/');
                let (fd, meta) = source_path::open_ancestor(parent_fd.as_fd(), comp, &abs_of(&path))?;
                parent_fd = fd;
                let (id, prev_id) = match ancestors.get(&path) {
                    Some(v) => *v,
                    None => {
                        let id = self.alloc(1);
                        let prev_id = self.prev_child(parent_prev, comp).filter(|p| p.meta.kind == EntryKind::Dir);
                        let mut r = IndexEntry::new(id, parent_id, comp.to_vec(), meta);
                        self.sink.dir(&path, &mut r)?;
                        self.send(r)?;
                        let v = (id, prev_id.map(|p| p.id));
                        ancestors.insert(path.clone(), v);
                        v
                    }
                };
                (parent_id, parent_prev) = (id, prev_id);
            }
            self.source_dev = posix::lstat_at(parent_fd.as_fd(), last).map_err(|e| source_err(src, e))?.st_dev;
            let id = self.alloc(1);
            let dir = Dir { id: parent_id, prev_id: parent_prev, fd: parent_fd.as_fd(), path: &path };
            let prevs = self.prev_children(parent_prev);
            self.entry(&dir, &prevs, last, id)?;
        }
        Ok(())
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

    fn walk_dir(&mut self, dir: &Dir<'_>) -> Result<(), BackupError> {
        let abs = abs_of(dir.path);
        self.progress.set_current(&abs);
        let names = match posix::list_dir_by_inode(dir.fd) {
            Ok(n) => n,
            Err(e) => {
                self.progress.failed(&abs, format!("cannot list directory: {e}"));
                return Ok(());
            }
        };
        let prevs = self.prev_children(dir.prev_id);
        let base = self.alloc(names.len());
        for (i, name) in names.iter().enumerate() {
            self.entry(dir, &prevs, name, base + i as i64)?;
        }
        Ok(())
    }

    /// Stores one entry of `dir` (and everything under it).
    fn entry(
        &mut self,
        dir: &Dir<'_>,
        prevs: &HashMap<Vec<u8>, IndexEntry>,
        name: &[u8],
        id: i64,
    ) -> Result<(), BackupError> {
        if self.cancel.is_cancelled() {
            return Err(BackupError::Cancelled);
        }
        let mut path = [dir.path, name].concat();
        let abs = abs_of(&path);
        let st = match posix::lstat_at(dir.fd, name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.progress.failed(&abs, "vanished during the backup");
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
                let fd = match posix::open_dir_at(dir.fd, name) {
                    Ok(fd) => fd,
                    Err(e) => {
                        self.progress.failed(&abs, format!("cannot open directory: {e}"));
                        return Ok(());
                    }
                };
                // The directory listed is the one described.
                match posix::fstat_meta(fd.as_fd()) {
                    Some((id, m)) if id == (st.st_dev, st.st_ino) => r.meta = m,
                    _ => {
                        self.progress.failed(&abs, super::walker::REPLACED);
                        return Ok(());
                    }
                }
                match posix::read_xattrs_fd(fd.as_fd()) {
                    Ok(x) => r.meta.xattrs = x,
                    Err(e) => self.progress.failed(&abs, format!("cannot read xattrs: {e}")),
                }
                path.push(b'/');
                self.sink.dir(&path, &mut r)?;
                self.send(r)?;
                if !(self.spec.one_file_system && st.st_dev != self.source_dev) {
                    let prev_id = prev.filter(|p| p.meta.kind == EntryKind::Dir).map(|p| p.id);
                    self.walk_dir(&Dir { id, prev_id, fd: fd.as_fd(), path: &path })?;
                }
            }
            EntryKind::File => {
                let nlink = st.st_nlink as u64;
                let key = (st.st_dev, st.st_ino);
                if nlink > 1
                    && let Some(first) = self.hardlinks.get(&key)
                {
                    read_xattrs(&mut r, dir.fd, name, &abs, self.progress);
                    r.hardlink = Some(first.id);
                    r.location = first.location.clone();
                    r.blake3 = first.blake3;
                    self.sink.hardlink(&path, first, &mut r)?;
                    self.progress.linked();
                    return self.send(r);
                }
                let f = SourceFile { dir: dir.fd, name, path: &path, abs: &abs, prev, ident: key };
                let stored = self.sink.file(f, &mut r)?;
                if stored == Stored::Skipped {
                    return Ok(());
                }
                if nlink > 1 {
                    r.hardlink = Some(id);
                    let first = FirstName { id, path: path.clone(), location: r.location.clone(), blake3: r.blake3 };
                    self.hardlinks.insert(key, first);
                }
                self.send_row(r, stored == Stored::New)?;
            }
            _ => {
                if r.meta.kind == EntryKind::Symlink {
                    match rustix::fs::readlinkat(dir.fd, std::ffi::OsStr::from_bytes(name), Vec::new()) {
                        Ok(t) => r.meta.target = Some(t.into_bytes()),
                        Err(e) => {
                            self.progress.failed(&abs, format!("cannot read symlink: {e}"));
                            return Ok(());
                        }
                    }
                }
                read_xattrs(&mut r, dir.fd, name, &abs, self.progress);
                self.sink.special(&path, &mut r)?;
                self.progress.linked();
                self.send(r)?;
            }
        }
        Ok(())
    }
}

/// Opens a regular file to store; its metadata and xattrs are taken again from
/// the open descriptor (what is read is what it describes). `None` when it
/// cannot be opened, or opens as another file than `lstat` saw (renamed or
/// exchanged in between): recorded as a failure of that file, which is left out.
pub(super) fn open_file(f: &SourceFile<'_>, r: &mut IndexEntry, progress: &Progress) -> Option<OwnedFd> {
    let fd = match open_source_file(f.dir, f.name) {
        Ok(fd) => fd,
        Err(e) => {
            let msg = if e == rustix::io::Errno::NOENT {
                "vanished during the backup".to_string()
            } else {
                format!("cannot open: {}", io::Error::from(e))
            };
            progress.failed(f.abs, msg);
            return None;
        }
    };
    match posix::fstat_meta(fd.as_fd()) {
        Some((id, m)) if id == f.ident && m.kind == EntryKind::File => r.meta = m,
        _ => {
            progress.failed(f.abs, super::walker::REPLACED);
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

/// Absolute source path of a snapshot path (`etc/passwd` -> `/etc/passwd`).
fn abs_of(path: &[u8]) -> Vec<u8> {
    join(b"", path.strip_suffix(b"/").unwrap_or(path))
}

fn source_err(src: &Path, e: impl Into<io::Error>) -> BackupError {
    BackupError::Source(format!("source {}: {}", src.display(), e.into()))
}
