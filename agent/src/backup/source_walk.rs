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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

use hindsight_fs::index::{IndexEntry, IndexReader, Location, ROOT_ID};
use hindsight_fs::{EntryKind, EntryMeta};
use hindsight_fs::{lock, posix};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::change::unchanged;
use super::dump::{DATABASES_DIR, DumpSource, DumpStream, HINDSIGHT_DIR};
use super::index_thread::RowQueue;
use super::progress::{Cancel, Progress};
use super::source_path;
use super::spec::{BackupError, BackupSpec, Row, Stop};

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

/// A file whose bytes come from a stream of unknown length (a database dump).
pub(super) struct StreamFile<'a> {
    /// Its path in the snapshot (relative).
    pub path: &'a [u8],
    /// Its absolute path in the snapshot, for messages.
    pub abs: &'a [u8],
    /// What it is, for messages (`database shop on server pg1`).
    pub what: &'a str,
    /// The previous snapshot's entry of the same name, if any.
    pub prev: Option<&'a IndexEntry>,
    /// The bytes; an error, even at the end, means the stream is incomplete.
    pub src: &'a mut dyn std::io::Read,
    /// True once the run must stop (asked between reads).
    pub stopped: &'a dyn Fn() -> bool,
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
    /// True when the sink stores [`Sink::stream`]s.
    fn stores_streams(&self) -> bool {
        false
    }
    /// A file read from a stream, stored whole or not at all: when the stream
    /// fails, nothing of it is left and it is `Skipped` (the failure recorded).
    fn stream(
        &mut self,
        _parent: &mut Self::Dir,
        f: StreamFile<'_>,
        _row: &mut IndexEntry,
    ) -> Result<Stored, BackupError> {
        Err(BackupError::Destination(format!("{}: this destination cannot store database dumps", f.what)))
    }
    /// Another sink storing into the same snapshot, for a subtree walked on
    /// another thread; `None` (the default) when entries must come in one
    /// stream, in order.
    fn fork(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
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
    /// True when the sink stores [`StreamSink::stream`]s.
    fn stores_streams(&self) -> bool {
        false
    }
    /// A file read from a stream, stored whole or not at all ([`Sink::stream`]).
    fn stream(&mut self, f: StreamFile<'_>, _row: &mut IndexEntry) -> Result<Stored, BackupError> {
        Err(BackupError::Destination(format!("{}: this destination cannot store database dumps", f.what)))
    }
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

    fn stores_streams(&self) -> bool {
        StreamSink::stores_streams(self)
    }

    fn stream(&mut self, _: &mut (), f: StreamFile<'_>, row: &mut IndexEntry) -> Result<Stored, BackupError> {
        StreamSink::stream(self, f, row)
    }
}

/// The walk of one backup.
pub(super) struct SourceWalk<'a, S: Sink> {
    shared: Shared<'a>,
    sink: S,
}

/// What the threads of one walk share.
struct Shared<'a> {
    spec: &'a BackupSpec,
    progress: &'a Progress,
    /// The caller's cancel flag, and the first failure of any thread, which
    /// stops the others.
    stop: Stop<'a>,
    /// The previous snapshot's index, for sinks that reuse unchanged content.
    prev: Option<Readers>,
    rows: SyncSender<Vec<Row>>,
    next_id: AtomicI64,
    /// (dev, ino) of multiply-linked files -> their first name.
    hardlinks: Mutex<HashMap<(u64, u64), FirstName>>,
    /// Subtrees handed to other threads and not started yet.
    queued: AtomicUsize,
}

/// Handles on the previous snapshot's index, one per thread using it: a
/// handle is not shared between threads, and opening one is cheap.
struct Readers {
    path: PathBuf,
    free: Mutex<Vec<IndexReader>>,
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&IndexReader) -> hindsight_fs::Result<T>) -> hindsight_fs::Result<T> {
        let reader = lock(&self.free).pop();
        let reader = match reader {
            Some(r) => r,
            None => IndexReader::open(&self.path)?,
        };
        let out = f(&reader);
        lock(&self.free).push(reader);
        out
    }
}

/// Subtrees queued for other threads per thread of the walk, at most: each
/// holds its directory open until it starts.
const QUEUED_PER_THREAD: usize = 8;

/// One thread's part of the walk.
struct Walker<'w, 'a, S: Sink> {
    shared: &'w Shared<'a>,
    sink: S,
    rows: RowQueue,
    threads: usize,
}

/// One directory being walked.
struct Dir<'d> {
    id: i64,
    /// The same directory's id in the previous snapshot.
    prev_id: Option<i64>,
    fd: &'d Arc<OwnedFd>,
    /// Path in the snapshot, ending with `/` (empty for `/`).
    path: &'d [u8],
    /// Device of the source being walked (one_file_system).
    dev: u64,
}

/// A directory whose entries are yet to walk, with its sink's handle.
struct Subtree<D> {
    id: i64,
    prev_id: Option<i64>,
    fd: Arc<OwnedFd>,
    path: Vec<u8>,
    dev: u64,
    handle: D,
    /// Its entries are not walked (another file system): it only ends.
    skip: bool,
}

/// An ancestor directory of a source: made once, ended after every source.
struct Ancestor<D> {
    id: i64,
    prev_id: Option<i64>,
    dir: D,
}

impl<'a, S: Sink> SourceWalk<'a, S>
where
    S: Send,
    S::Dir: Send,
{
    /// A walk sending rows to `rows`.
    pub(super) fn new(
        spec: &'a BackupSpec,
        progress: &'a Progress,
        cancel: &'a Cancel,
        sink: S,
        prev: Option<&IndexReader>,
        rows: SyncSender<Vec<Row>>,
    ) -> Self {
        let prev = prev.map(|r| Readers { path: r.path().to_path_buf(), free: Mutex::new(Vec::new()) });
        let shared = Shared {
            spec,
            progress,
            stop: Stop::new(cancel),
            prev,
            rows,
            next_id: AtomicI64::new(ROOT_ID + 1),
            hardlinks: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
        };
        SourceWalk { shared, sink }
    }

    /// Walks every source; returns the sink. The rows channel closes with the
    /// walk, which ends the index thread. A sink that forks walks subtrees on
    /// `threads` threads (a directory's children still end before it).
    pub(super) fn run(self) -> Result<S, BackupError> {
        let SourceWalk { shared, sink } = self;
        let threads = match sink.fork() {
            Some(_) => shared.spec.threads.clamp(1, std::thread::available_parallelism().map_or(1, |n| n.get())),
            None => 1,
        };
        let rows = RowQueue::new(shared.rows.clone());
        let mut w = Walker { shared: &shared, sink, rows, threads };
        let walked = if threads > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("walk-{i}"))
                .build()
                .map_err(|e| BackupError::Source(format!("cannot start the walk's threads: {e}")))?;
            pool.install(|| w.walk_sources().map(|()| w))
        } else {
            w.walk_sources().map(|()| w)
        };
        // The first failure of any thread is the one reported: the others
        // stopped because of it.
        if let Some(e) = shared.stop.take_fatal() {
            return Err(e);
        }
        let mut w = walked?;
        w.rows.flush()?;
        Ok(w.sink)
    }
}

impl Shared<'_> {
    fn prev_child(&self, parent: Option<i64>, name: &[u8]) -> Option<IndexEntry> {
        let (Some(prev), Some(pid)) = (&self.prev, parent) else { return None };
        prev.with(|r| r.lookup(pid, name)).ok().flatten()
    }

    fn prev_children(&self, parent: Option<i64>) -> HashMap<Vec<u8>, IndexEntry> {
        let (Some(prev), Some(pid)) = (&self.prev, parent) else { return HashMap::new() };
        match prev.with(|r| r.children(pid)) {
            Ok(kids) => kids.into_iter().map(|e| (e.name.clone(), e)).collect(),
            Err(e) => {
                tracing::warn!("previous snapshot: {e}; storing this directory in full");
                HashMap::new()
            }
        }
    }
}

impl<S: Sink> Walker<'_, '_, S>
where
    S: Send,
    S::Dir: Send,
{
    fn send(&mut self, entry: IndexEntry) -> Result<(), BackupError> {
        self.rows.push(entry, false)
    }

    /// `n` consecutive entry ids (a directory's children are consecutive).
    fn alloc(&mut self, n: usize) -> i64 {
        self.shared.next_id.fetch_add(n as i64, Ordering::Relaxed)
    }

    /// The root entry, the ancestors of every source, then every source.
    /// Ancestors are opened from `/` without following symlinks
    /// ([`source_path`]); they and the root end last, deepest first.
    fn walk_sources(&mut self) -> Result<(), BackupError> {
        let shared = self.shared;
        let (root_fd, root_meta) = source_path::open_root()?;
        let root_fd = Arc::new(root_fd);
        let mut row = IndexEntry::new(ROOT_ID, 0, Vec::new(), root_meta);
        let mut root = self.sink.root(&mut row)?;
        self.send(row)?;
        let mut root_listed = false;
        let mut ancestors: BTreeMap<Vec<u8>, Ancestor<S::Dir>> = BTreeMap::new();
        let mut sources = shared.spec.sources.clone();
        sources.sort();
        let prev_root = shared.prev.as_ref().map(|_| ROOT_ID);
        for src in &sources {
            let comps = source_path::components(src);
            let Some((last, parents)) = comps.split_last() else {
                let dev = rustix::fs::fstat(&*root_fd).map_err(|e| source_err(src, e))?.st_dev;
                let dir = Dir { id: ROOT_ID, prev_id: prev_root, fd: &root_fd, path: b"", dev };
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
                    let prev = shared.prev_child(parent_prev, comp).filter(|p| p.meta.kind == EntryKind::Dir);
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
            let dev = posix::lstat_at(parent_fd.as_fd(), last).map_err(|e| source_err(src, e))?.st_dev;
            let id = self.alloc(1);
            let dir = Dir { id: parent_id, prev_id: parent_prev, fd: &parent_fd, path: &path, dev };
            let prevs = shared.prev_children(parent_prev);
            let parent = match ancestors.get_mut(&path) {
                Some(a) => &mut a.dir,
                None => &mut root,
            };
            if let Some(sub) = self.entry(&dir, parent, &prevs, last, id)? {
                self.walk_subtrees(vec![sub])?;
            }
        }
        while let Some((path, a)) = ancestors.pop_last() {
            self.sink.dir_end(a.dir, &path, false)?;
        }
        self.walk_dumps(&mut root, prev_root)?;
        self.sink.dir_end(root, b"", root_listed)
    }

    /// Makes a directory that is not in the sources (`/.hindsight/...`):
    /// root's, private; returns its id, previous id and handle.
    fn virtual_dir(
        &mut self,
        parent: &mut S::Dir,
        parent_id: i64,
        parent_prev: Option<i64>,
        path: &[u8],
        id: i64,
    ) -> Result<(i64, Option<i64>, S::Dir), BackupError> {
        let name = path.strip_suffix(b"/").unwrap_or(path);
        let name = name.rsplit(|b| *b == b'/').next().unwrap_or(name);
        let prev = self.shared.prev_child(parent_prev, name).filter(|p| p.meta.kind == EntryKind::Dir);
        let mut row = IndexEntry::new(id, parent_id, name.to_vec(), generated_meta(EntryKind::Dir, 0o700));
        let handle = self.sink.dir(parent, path, prev.as_ref(), &mut row)?;
        self.send(row)?;
        Ok((id, prev.map(|p| p.id), handle))
    }

    /// The job's database dumps, under `/.hindsight/databases/<server>/`,
    /// one at a time (each is its own consistent transaction on the server).
    fn walk_dumps(&mut self, root: &mut S::Dir, prev_root: Option<i64>) -> Result<(), BackupError> {
        let shared = self.shared;
        let spec = shared.spec;
        if spec.dumps.is_empty() && spec.dump_problems.is_empty() {
            return Ok(());
        }
        for (path, why) in &spec.dump_problems {
            shared.progress.failed(path, why.clone());
        }
        if spec.dumps.is_empty() {
            return Ok(());
        }
        let top_path = [HINDSIGHT_DIR, b"/"].concat();
        let id = self.alloc(1);
        let (top_id, top_prev, mut top) = self.virtual_dir(root, ROOT_ID, prev_root, &top_path, id)?;
        let dbs_path = [&top_path[..], DATABASES_DIR, b"/"].concat();
        let id = self.alloc(1);
        let (dbs_id, dbs_prev, mut dbs) = self.virtual_dir(&mut top, top_id, top_prev, &dbs_path, id)?;
        let mut servers: BTreeMap<&str, Vec<&DumpSource>> = BTreeMap::new();
        for d in &spec.dumps {
            servers.entry(&d.server).or_default().push(d);
        }
        let base = self.alloc(servers.len());
        for (i, (server, dumps)) in servers.into_iter().enumerate() {
            let path = [&dbs_path[..], server.as_bytes(), b"/"].concat();
            let (sid, sprev, mut dir) = self.virtual_dir(&mut dbs, dbs_id, dbs_prev, &path, base + i as i64)?;
            let first = self.alloc(dumps.len());
            for (j, d) in dumps.into_iter().enumerate() {
                self.dump(&mut dir, (sid, sprev), &path, d, first + j as i64)?;
            }
            self.sink.dir_end(dir, &path, true)?;
        }
        self.sink.dir_end(dbs, &dbs_path, true)?;
        self.sink.dir_end(top, &top_path, true)
    }

    /// Runs one dump into the sink; its failure is the dump's, recorded.
    fn dump(
        &mut self,
        dir: &mut S::Dir,
        (dir_id, dir_prev): (i64, Option<i64>),
        dir_path: &[u8],
        d: &DumpSource,
        id: i64,
    ) -> Result<(), BackupError> {
        let shared = self.shared;
        let progress = shared.progress;
        shared.stop.check()?;
        let path = [dir_path, &d.file].concat();
        let abs = abs_of(&path);
        progress.set_current(&abs);
        if !self.sink.stores_streams() {
            progress
                .failed(&abs, format!("{}: database dumps cannot be stored on this kind of destination yet", d.what));
            return Ok(());
        }
        let mut stream = match DumpStream::spawn(d) {
            Ok(s) => s,
            Err(e) => {
                progress.failed(&abs, format!("{}: {e}", d.what));
                return Ok(());
            }
        };
        let prev = shared.prev_child(dir_prev, &d.file).filter(|p| p.meta.kind == EntryKind::File);
        let mut row = IndexEntry::new(id, dir_id, d.file.clone(), generated_meta(EntryKind::File, 0o600));
        // A tool that writes nothing (waiting on a lock, a slow server) holds
        // the read: a cancel kills it from here.
        let group = stream.process_group();
        let stopped = || shared.stop.stopped();
        let f = StreamFile {
            path: &path,
            abs: &abs,
            what: &d.what,
            prev: prev.as_ref(),
            src: &mut stream,
            stopped: &stopped,
        };
        let done = std::sync::atomic::AtomicBool::new(false);
        let stored = std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if shared.stop.stopped() {
                        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            });
            let stored = self.sink.stream(dir, f, &mut row);
            done.store(true, Ordering::Relaxed);
            stored
        })?;
        if matches!(stored, Stored::New | Stored::Reused) {
            progress.scanned(row.meta.size);
            self.rows.push(row, stored == Stored::New)?;
        }
        Ok(())
    }

    /// Walks every entry of `dir`; true when it could be listed.
    fn walk_dir(&mut self, dir: &Dir<'_>, handle: &mut S::Dir) -> Result<bool, BackupError> {
        let shared = self.shared;
        let abs = abs_of(dir.path);
        shared.progress.set_current(&abs);
        let names = match posix::list_dir_by_inode(dir.fd.as_fd()) {
            Ok(n) => n,
            Err(e) => {
                shared.progress.failed(&abs, format!("cannot list directory: {e}"));
                return Ok(false);
            }
        };
        let prevs = shared.prev_children(dir.prev_id);
        let base = self.alloc(names.len());
        let mut subtrees = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let Some(sub) = self.entry(dir, handle, &prevs, name, base + i as i64)? else { continue };
            if self.threads == 1 {
                // One stream: a directory's entries right after it.
                self.subtree(sub)?;
                continue;
            }
            subtrees.push(sub);
            // A subtree holds its directory open: few wait at a time.
            if subtrees.len() >= QUEUED_PER_THREAD {
                self.walk_subtrees(std::mem::take(&mut subtrees))?;
            }
        }
        self.walk_subtrees(subtrees)?;
        Ok(true)
    }

    /// Walks subdirectories found in one directory and ends them: on other
    /// threads when the sink forks and few wait already, here otherwise.
    fn walk_subtrees(&mut self, subtrees: Vec<Subtree<S::Dir>>) -> Result<(), BackupError> {
        if subtrees.is_empty() {
            return Ok(());
        }
        let shared = self.shared;
        let limit = QUEUED_PER_THREAD * self.threads;
        if self.threads == 1 || shared.queued.load(Ordering::Relaxed) >= limit {
            for sub in subtrees {
                self.subtree(sub)?;
            }
            return Ok(());
        }
        let walked = rayon::in_place_scope(|s| {
            for sub in subtrees {
                let Some(sink) = self.sink.fork() else {
                    self.subtree(sub)?;
                    continue;
                };
                let rows = RowQueue::new(shared.rows.clone());
                let mut w = Walker { shared, sink, rows, threads: self.threads };
                shared.queued.fetch_add(1, Ordering::Relaxed);
                s.spawn(move |_| {
                    shared.queued.fetch_sub(1, Ordering::Relaxed);
                    if let Err(e) = w.subtree(sub).and_then(|()| w.rows.flush()) {
                        shared.stop.fail(e);
                    }
                });
            }
            Ok::<(), BackupError>(())
        });
        if let Err(e) = walked {
            shared.stop.fail(e);
        }
        shared.stop.check()
    }

    /// Walks a directory's entries and ends it.
    fn subtree(&mut self, sub: Subtree<S::Dir>) -> Result<(), BackupError> {
        let Subtree { id, prev_id, fd, path, dev, mut handle, skip } = sub;
        let listed = !skip && self.walk_dir(&Dir { id, prev_id, fd: &fd, path: &path, dev }, &mut handle)?;
        self.sink.dir_end(handle, &path, listed)
    }

    /// Stores one entry of `dir`; a directory is returned, made but not walked.
    fn entry(
        &mut self,
        dir: &Dir<'_>,
        parent: &mut S::Dir,
        prevs: &HashMap<Vec<u8>, IndexEntry>,
        name: &[u8],
        id: i64,
    ) -> Result<Option<Subtree<S::Dir>>, BackupError> {
        let shared = self.shared;
        let progress = shared.progress;
        shared.stop.check()?;
        let mut path = [dir.path, name].concat();
        let abs = abs_of(&path);
        let st = match posix::lstat_at(dir.fd.as_fd(), name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                progress.failed(&abs, VANISHED);
                return Ok(None);
            }
            Err(e) => {
                progress.failed(&abs, format!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        let Some(meta) = posix::meta_from_stat(&st) else {
            progress.failed(&abs, "unsupported file type");
            return Ok(None);
        };
        let is_dir = meta.kind == EntryKind::Dir;
        let spec = shared.spec;
        if dir.id == ROOT_ID && name == HINDSIGHT_DIR && !spec.dumps.is_empty() {
            progress.failed(&abs, "left out: /.hindsight is where this job's database dumps go");
            return Ok(None);
        }
        if spec.excludes.is_excluded(&abs, is_dir) || (is_dir && spec.skip_dirs.contains(&abs)) {
            return Ok(None);
        }
        progress.scanned(if meta.kind == EntryKind::File { meta.size } else { 0 });
        let mut r = IndexEntry::new(id, dir.id, name.to_vec(), meta);
        let prev = prevs.get(name);
        match r.meta.kind {
            EntryKind::Dir => {
                let fd = match posix::open_dir_at(dir.fd.as_fd(), name) {
                    Ok(fd) => Arc::new(fd),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        progress.failed(&abs, VANISHED);
                        return Ok(None);
                    }
                    Err(e) => {
                        progress.failed(&abs, format!("cannot open directory: {e}"));
                        return Ok(None);
                    }
                };
                // The directory listed is the one described.
                match posix::fstat_meta(fd.as_fd()) {
                    Some((id, m)) if id == (st.st_dev, st.st_ino) => r.meta = m,
                    _ => {
                        progress.failed(&abs, REPLACED);
                        return Ok(None);
                    }
                }
                match posix::read_xattrs_fd(fd.as_fd()) {
                    Ok(x) => r.meta.xattrs = x,
                    Err(e) => progress.failed(&abs, format!("cannot read xattrs: {e}")),
                }
                path.push(b'/');
                let prev = prev.filter(|p| p.meta.kind == EntryKind::Dir);
                let handle = self.sink.dir(parent, &path, prev, &mut r)?;
                self.send(r)?;
                let skip = spec.one_file_system && st.st_dev != dir.dev;
                let prev_id = prev.map(|p| p.id);
                return Ok(Some(Subtree { id, prev_id, fd, path, dev: dir.dev, handle, skip }));
            }
            EntryKind::File => {
                let key = (st.st_dev, st.st_ino);
                let f = SourceFile { dir: dir.fd, name, path: &path, abs: &abs, prev, ident: key };
                let stored = if st.st_nlink > 1 {
                    // Held while the name is stored: another thread meeting another
                    // name of the file waits, and links it, never stores it twice.
                    let mut hardlinks = lock(&shared.hardlinks);
                    if let Some(first) = hardlinks.get(&key) {
                        read_xattrs(&mut r, dir.fd.as_fd(), name, &abs, progress);
                        r.hardlink = Some(first.id);
                        r.location = first.location.clone();
                        r.blake3 = first.blake3;
                        if self.sink.hardlink(parent, &path, first, &mut r)? {
                            drop(hardlinks);
                            progress.linked();
                            self.send(r)?;
                            return Ok(None);
                        }
                        // Split from its group (too many links): a file of its own.
                        (r.hardlink, r.location, r.blake3) = (None, Location::default(), None);
                        self.sink.file(parent, f, &mut r)?
                    } else {
                        r.hardlink = Some(id);
                        let stored = self.sink.file(parent, f, &mut r)?;
                        if stored != Stored::Skipped {
                            let first =
                                FirstName { id, path: path.clone(), location: r.location.clone(), blake3: r.blake3 };
                            hardlinks.insert(key, first);
                        }
                        stored
                    }
                } else {
                    self.sink.file(parent, f, &mut r)?
                };
                match stored {
                    Stored::Skipped | Stored::Queued => {}
                    Stored::New | Stored::Reused => self.rows.push(r, stored == Stored::New)?,
                }
            }
            _ => {
                if r.meta.kind == EntryKind::Symlink {
                    match rustix::fs::readlinkat(dir.fd.as_fd(), OsStr::from_bytes(name), Vec::new()) {
                        Ok(t) => r.meta.target = Some(t.into_bytes()),
                        Err(e) => {
                            progress.failed(&abs, format!("cannot read symlink: {e}"));
                            return Ok(None);
                        }
                    }
                }
                match prev.filter(|p| unchanged(&r.meta, &p.meta)) {
                    // The inode has not changed: its recorded xattrs are still its own.
                    Some(p) => r.meta.xattrs = p.meta.xattrs.clone(),
                    None => read_xattrs(&mut r, dir.fd.as_fd(), name, &abs, progress),
                }
                if self.sink.special(parent, &path, prev, &mut r)? {
                    progress.linked();
                    self.send(r)?;
                }
            }
        }
        Ok(None)
    }
}

/// Metadata of an entry Hindsight makes (not read from the sources): root's, made now.
fn generated_meta(kind: EntryKind, mode: u32) -> EntryMeta {
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    EntryMeta {
        kind,
        mode,
        uid: 0,
        gid: 0,
        size: 0,
        mtime_ns: now,
        atime_ns: now,
        ctime_ns: now,
        rdev: 0,
        target: None,
        xattrs: Default::default(),
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
