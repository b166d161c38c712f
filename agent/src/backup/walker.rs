//! Walks the sources and builds the snapshot tree, one directory at a time.
//!
//! For every entry the walker decides: hardlink to another name of the same
//! file already in this snapshot (hardlinks inside the source), hardlink to the
//! previous snapshot's file (unchanged: kind, size, mtime, mode, owner, xattrs
//! and symlink target equal), or create it fresh. Regular files to copy are
//! created here and handed to the copy threads, so that a directory's entries
//! all exist when the walker sets the directory's own metadata (writing file
//! data does not change a directory's mtime).
//!
//! Ids of a directory's children are allocated together, so they are
//! consecutive in the index.
//!
//! Errors on the source side (vanished, unreadable) are recorded per file and
//! the walk goes on; errors creating entries on the destination stop the run.
//!
//! What is recorded is what was read: a file's or directory's owner, mode,
//! size and times come from `fstat` of the descriptor whose bytes (or
//! entries) are copied, and a name that `lstat` showed as one file but that
//! opens as another (a rename or exchange in between, by a user who can
//! write in the directory) is recorded as changed and left out, never
//! stored under the first file's owner and mode.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use hindsight_fs::entry::EntryKind;
use hindsight_fs::index::{IndexEntry, IndexReader};
use hindsight_fs::posix;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::change::unchanged;
use super::copy;
use super::index_thread::RowQueue;
use super::progress::Progress;
use super::spec::{BackupError, BackupSpec, Stop};

/// The previous complete snapshot the new one is linked against.
pub(super) struct Previous {
    /// Its name.
    pub name: String,
    /// Its index.
    pub index: IndexReader,
    /// Its `tree/` directory.
    pub tree: OwnedFd,
}

/// A regular file created on the destination, waiting for its data.
pub(super) struct CopyTask {
    pub row: IndexEntry,
    pub abs: Vec<u8>,
    pub src_dir: Arc<OwnedFd>,
    pub dst_dir: Arc<OwnedFd>,
    pub src: OwnedFd,
    pub dst: OwnedFd,
}

/// One directory being walked.
pub(super) struct DirCtx {
    pub id: i64,
    pub prev_id: Option<i64>,
    pub src: Arc<OwnedFd>,
    pub dst: Arc<OwnedFd>,
    pub prev: Option<OwnedFd>,
    /// Absolute source path; empty for `/`.
    pub abs: Vec<u8>,
}

/// The walk of one backup.
pub(super) struct Walker<'a> {
    pub spec: &'a BackupSpec,
    pub progress: &'a Progress,
    pub stop: &'a Stop<'a>,
    pub prev: Option<&'a Previous>,
    pub tree: Arc<OwnedFd>,
    pub resumed: bool,
    pub next_id: i64,
    /// Index rows on their way to the index thread.
    pub rows: RowQueue,
    pub copies: SyncSender<CopyTask>,
    /// (dev, ino) of multiply-linked source files -> (entry id, path in the tree).
    pub hardlinks: HashMap<(u64, u64), (i64, Vec<u8>)>,
    /// Device of the source being walked (one_file_system).
    pub source_dev: u64,
}

/// Children of a directory in the previous snapshot, by name.
pub(super) type PrevChildren = HashMap<Vec<u8>, IndexEntry>;

pub(super) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn dest_err(op: &'static str, abs: &[u8], e: impl Into<io::Error>) -> BackupError {
    BackupError::Destination(format!("{op} {}: {}", String::from_utf8_lossy(abs), e.into()))
}

impl Walker<'_> {
    /// Queues an index row.
    pub fn send(&mut self, row: IndexEntry, added: bool) -> Result<(), BackupError> {
        self.rows.push(row, added)
    }

    /// Hands the queued rows to the index thread.
    pub fn flush(&mut self) -> Result<(), BackupError> {
        self.rows.flush()
    }

    fn alloc(&mut self, n: usize) -> i64 {
        let first = self.next_id;
        self.next_id += n as i64;
        first
    }

    /// Children of `ctx` in the previous snapshot.
    pub fn prev_children(&self, ctx: &DirCtx) -> PrevChildren {
        let (Some(prev), Some(pid)) = (self.prev, ctx.prev_id) else { return HashMap::new() };
        match prev.index.children(pid) {
            Ok(kids) => kids.into_iter().map(|e| (e.name.clone(), e)).collect(),
            Err(e) => {
                tracing::warn!("previous snapshot {}: {e}; copying this directory in full", prev.name);
                HashMap::new()
            }
        }
    }

    /// Walks every entry of the directory `ctx`.
    pub fn walk_dir(&mut self, ctx: &DirCtx) -> Result<(), BackupError> {
        self.progress.set_current(if ctx.abs.is_empty() { b"/" } else { &ctx.abs });
        let names = match posix::list_dir(ctx.src.as_fd()) {
            Ok(n) => n,
            Err(e) => {
                self.progress.failed(&ctx.abs, format!("cannot list directory: {e}"));
                return Ok(());
            }
        };
        let prevs = self.prev_children(ctx);
        let base = self.alloc(names.len());
        let mut created = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if self.process_entry(ctx, &prevs, name, base + i as i64)? {
                created.push(name.as_slice());
            }
        }
        if self.resumed {
            self.remove_strays(ctx, &created)?;
        }
        self.flush()
    }

    /// Removes entries an interrupted run left in a directory that the source no longer has.
    fn remove_strays(&self, ctx: &DirCtx, created: &[&[u8]]) -> Result<(), BackupError> {
        let present = posix::list_dir(ctx.dst.as_fd()).map_err(|e| dest_err("list", &ctx.abs, e))?;
        for name in present {
            if created.binary_search(&name.as_slice()).is_err() {
                posix::remove_tree_at(ctx.dst.as_fd(), &name)
                    .map_err(|e| dest_err("remove", &join(&ctx.abs, &name), e))?;
            }
        }
        Ok(())
    }

    /// Backs up one entry; true when it was created in the snapshot.
    pub fn process_entry(
        &mut self,
        ctx: &DirCtx,
        prevs: &PrevChildren,
        name: &[u8],
        id: i64,
    ) -> Result<bool, BackupError> {
        self.stop.check()?;
        let abs = join(&ctx.abs, name);
        let st = match posix::lstat_at(ctx.src.as_fd(), name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.progress.failed(&abs, "vanished during the backup");
                return Ok(false);
            }
            Err(e) => {
                self.progress.failed(&abs, format!("cannot stat: {e}"));
                return Ok(false);
            }
        };
        let Some(meta) = posix::meta_from_stat(&st) else {
            self.progress.failed(&abs, "unsupported file type");
            return Ok(false);
        };
        let is_dir = meta.kind == EntryKind::Dir;
        if self.spec.excludes.is_excluded(&abs, is_dir) || (is_dir && self.spec.skip_dirs.contains(&abs)) {
            return Ok(false);
        }
        self.progress.scanned(if meta.kind == EntryKind::File { meta.size } else { 0 });
        let prev = prevs.get(name);
        let row = IndexEntry::new(id, ctx.id, name.to_vec(), meta);
        if row.meta.kind == EntryKind::Dir {
            return self.process_dir(ctx, row, abs, (st.st_dev, st.st_ino), prev);
        }
        self.process_leaf(ctx, row, abs, (st.st_dev, st.st_ino, st.st_nlink as u64), prev)
    }

    /// Records that `abs` was replaced by another file between its `lstat`
    /// and its `open`: it is left out of this snapshot (the next one has it).
    fn replaced(&self, abs: &[u8]) -> Result<bool, BackupError> {
        self.progress.failed(abs, REPLACED);
        Ok(false)
    }

    fn process_dir(
        &mut self,
        ctx: &DirCtx,
        mut row: IndexEntry,
        abs: Vec<u8>,
        ident: (u64, u64),
        prev: Option<&IndexEntry>,
    ) -> Result<bool, BackupError> {
        let dev = ident.0;
        let name = row.name.clone();
        let src = match posix::open_dir_at(ctx.src.as_fd(), &name) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.progress.failed(&abs, "vanished during the backup");
                return Ok(false);
            }
            Err(e) => {
                self.progress.failed(&abs, format!("cannot open directory: {e}"));
                return Ok(false);
            }
        };
        // The directory listed is the one described: its metadata from its descriptor.
        match posix::fstat_meta(src.as_fd()) {
            Some((id, m)) if id == ident => row.meta = m,
            _ => return self.replaced(&abs),
        }
        match posix::read_xattrs_fd(src.as_fd()) {
            Ok(x) => row.meta.xattrs = x,
            Err(e) => self.progress.failed(&abs, format!("cannot read xattrs: {e}")),
        }
        self.make_dir(ctx.dst.as_fd(), &name, &abs)?;
        let dst = posix::open_dir_at(ctx.dst.as_fd(), &name).map_err(|e| dest_err("open", &abs, e))?;
        row.location.ino = rustix::fs::fstat(&dst).ok().map(|st| st.st_ino);
        let dst = Arc::new(dst);
        let crosses_mount = self.spec.one_file_system && dev != self.source_dev;
        if !crosses_mount {
            let prev_dir = match (prev, ctx.prev.as_ref()) {
                (Some(p), Some(pd)) if p.meta.kind == EntryKind::Dir => posix::open_dir_at(pd.as_fd(), &name).ok(),
                _ => None,
            };
            let child = DirCtx {
                id: row.id,
                prev_id: prev.filter(|p| p.meta.kind == EntryKind::Dir).map(|p| p.id),
                src: Arc::new(src),
                dst: dst.clone(),
                prev: prev_dir,
                abs: abs.clone(),
            };
            self.walk_dir(&child)?;
        }
        if let Err(e) = posix::apply_meta_fd(dst.as_fd(), &row.meta) {
            self.progress.failed(&abs, format!("cannot set directory metadata: {e}"));
        }
        self.send(row, false)?;
        Ok(true)
    }

    /// Creates a directory, accepting one left by an interrupted run.
    pub fn make_dir(&self, dir: BorrowedFd<'_>, name: &[u8], abs: &[u8]) -> Result<(), BackupError> {
        match rustix::fs::mkdirat(dir, os(name), Mode::from_raw_mode(0o700)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) if self.resumed => {
                let st = posix::lstat_at(dir, name).map_err(|e| dest_err("stat", abs, e))?;
                if EntryKind::from_mode(st.st_mode) == Some(EntryKind::Dir) {
                    return Ok(());
                }
                posix::remove_tree_at(dir, name).map_err(|e| dest_err("remove", abs, e))?;
                rustix::fs::mkdirat(dir, os(name), Mode::from_raw_mode(0o700)).map_err(|e| dest_err("mkdir", abs, e))
            }
            Err(e) => Err(dest_err("mkdir", abs, e)),
        }
    }

    fn process_leaf(
        &mut self,
        ctx: &DirCtx,
        mut row: IndexEntry,
        abs: Vec<u8>,
        (dev, ino, nlink): (u64, u64, u64),
        prev: Option<&IndexEntry>,
    ) -> Result<bool, BackupError> {
        let name = row.name.clone();
        if row.meta.kind == EntryKind::Symlink {
            match rustix::fs::readlinkat(ctx.src.as_fd(), os(&name), Vec::new()) {
                Ok(t) => row.meta.target = Some(t.into_bytes()),
                Err(e) => {
                    self.progress.failed(&abs, format!("cannot read symlink: {e}"));
                    return Ok(false);
                }
            }
        }
        // A new single-named file is copied whatever its xattrs: they are read
        // from the descriptor the copy opens, sparing a path lookup through /proc.
        let read_at_copy = prev.is_none() && nlink == 1 && row.meta.kind == EntryKind::File;
        match prev.filter(|p| unchanged(&row.meta, &p.meta)) {
            // Setting an xattr changes ctime: with ctime and the rest equal, the
            // previous snapshot's xattrs are still the file's, and reading them
            // again (a path lookup through /proc per entry) is skipped.
            Some(p) => row.meta.xattrs = p.meta.xattrs.clone(),
            None if read_at_copy => {}
            None => match posix::read_xattrs_at(ctx.src.as_fd(), &name) {
                Ok(x) => row.meta.xattrs = x,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.progress.failed(&abs, "vanished during the backup");
                    return Ok(false);
                }
                Err(e) => self.progress.failed(&abs, format!("cannot read xattrs: {e}")),
            },
        }
        let rel = &abs[1..];
        if nlink > 1 {
            if let Some((first_id, first_rel)) = self.hardlinks.get(&(dev, ino)) {
                let first_id = *first_id;
                let first_rel = first_rel.clone();
                // EMLINK: the group is split and this name becomes a copy of its own.
                if self.link(self.tree.as_fd(), &first_rel, ctx.dst.as_fd(), &name, &abs)? {
                    row.hardlink = Some(first_id);
                    row.location.ino = posix::lstat_at(ctx.dst.as_fd(), &name).ok().map(|st| st.st_ino);
                    self.progress.linked();
                    self.send(row, false)?;
                    return Ok(true);
                }
            } else {
                self.hardlinks.insert((dev, ino), (row.id, rel.to_vec()));
                row.hardlink = Some(row.id);
            }
        }
        if let (Some(p), Some(pdir)) = (prev, ctx.prev.as_ref())
            && row.meta.unchanged_from(&p.meta)
            && self.link(pdir.as_fd(), &name, ctx.dst.as_fd(), &name, &abs)?
        {
            row.blake3 = p.blake3;
            row.location.ino = match p.location.ino {
                Some(ino) => Some(ino),
                None => posix::lstat_at(ctx.dst.as_fd(), &name).ok().map(|st| st.st_ino),
            };
            self.progress.linked();
            self.send(row, false)?;
            return Ok(true);
        }
        self.create_fresh(ctx, row, abs, (dev, ino))
    }

    /// Hardlinks `from` to `to`; false when linking is impossible here (too many
    /// links, source gone, not supported) and the caller should copy instead.
    fn link(
        &self,
        from_dir: BorrowedFd<'_>,
        from: &[u8],
        to_dir: BorrowedFd<'_>,
        to: &[u8],
        abs: &[u8],
    ) -> Result<bool, BackupError> {
        for attempt in 0..2 {
            match rustix::fs::linkat(from_dir, os(from), to_dir, os(to), AtFlags::empty()) {
                Ok(()) => return Ok(true),
                Err(Errno::EXIST) if self.resumed && attempt == 0 => {
                    let a = posix::lstat_at(from_dir, from).map_err(|e| dest_err("stat", abs, e))?;
                    let b = posix::lstat_at(to_dir, to).map_err(|e| dest_err("stat", abs, e))?;
                    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) {
                        return Ok(true);
                    }
                    posix::remove_tree_at(to_dir, to).map_err(|e| dest_err("remove", abs, e))?;
                }
                Err(Errno::MLINK | Errno::NOENT | Errno::XDEV | Errno::PERM | Errno::OPNOTSUPP) => return Ok(false),
                Err(e) => return Err(dest_err("link", abs, e)),
            }
        }
        Ok(false)
    }

    fn create_fresh(
        &mut self,
        ctx: &DirCtx,
        mut row: IndexEntry,
        abs: Vec<u8>,
        ident: (u64, u64),
    ) -> Result<bool, BackupError> {
        let name = row.name.clone();
        let dst_dir = ctx.dst.as_fd();
        match row.meta.kind {
            EntryKind::File => return self.start_copy(ctx, row, abs, ident),
            EntryKind::Symlink => {
                let target = row.meta.target.clone().unwrap_or_default();
                self.replace_on_resume(dst_dir, &name, &abs, |d| rustix::fs::symlinkat(os(&target), d, os(&name)))?;
            }
            _ => {
                let meta = row.meta.clone();
                let made = self.replace_on_resume(dst_dir, &name, &abs, |d| {
                    posix::make_special_at(d, &name, &meta).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))
                });
                if let Err(e) = made {
                    if matches!(e, BackupError::Destination(_))
                        && matches!(row.meta.kind, EntryKind::CharDev | EntryKind::BlockDev)
                    {
                        self.progress.failed(&abs, format!("cannot create device node: {e}"));
                        return Ok(false);
                    }
                    return Err(e);
                }
            }
        }
        if let Err(e) = posix::apply_meta_at(dst_dir, &name, &row.meta) {
            self.progress.failed(&abs, format!("cannot set metadata: {e}"));
        }
        row.location.ino = posix::lstat_at(dst_dir, &name).ok().map(|st| st.st_ino);
        self.send(row, false)?;
        Ok(true)
    }

    /// Runs `make`; on a resumed run an existing entry of that name is removed first.
    fn replace_on_resume(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        abs: &[u8],
        make: impl Fn(BorrowedFd<'_>) -> Result<(), Errno>,
    ) -> Result<(), BackupError> {
        match make(dir) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) if self.resumed => {
                posix::remove_tree_at(dir, name).map_err(|e| dest_err("remove", abs, e))?;
                make(dir).map_err(|e| dest_err("create", abs, e))
            }
            Err(e) => Err(dest_err("create", abs, e)),
        }
    }

    fn start_copy(
        &mut self,
        ctx: &DirCtx,
        mut row: IndexEntry,
        abs: Vec<u8>,
        ident: (u64, u64),
    ) -> Result<bool, BackupError> {
        let name = row.name.clone();
        let src = match open_source_file(ctx.src.as_fd(), &name) {
            Ok(fd) => fd,
            Err(e) if e == Errno::NOENT => {
                self.progress.failed(&abs, "vanished during the backup");
                return Ok(false);
            }
            Err(e) => {
                self.progress.failed(&abs, format!("cannot open: {}", io::Error::from(e)));
                return Ok(false);
            }
        };
        // The descriptor being copied is the authority on the copy's metadata
        // and xattrs; it must be the regular file `lstat` saw.
        match posix::fstat_meta(src.as_fd()) {
            Some((id, m)) if id == ident && m.kind == EntryKind::File => row.meta = m,
            _ => {
                if row.hardlink == Some(row.id) {
                    self.hardlinks.remove(&ident);
                }
                return self.replaced(&abs);
            }
        }
        match posix::read_xattrs_fd(src.as_fd()) {
            Ok(x) => row.meta.xattrs = x,
            Err(e) => self.progress.failed(&abs, format!("cannot read xattrs: {e}")),
        }
        if self.resumed && self.reuse_partial_copy(ctx, &mut row, &abs)? {
            return Ok(true);
        }
        let dst = rustix::fs::openat(
            ctx.dst.as_fd(),
            os(&name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| dest_err("create", &abs, e))?;
        row.location.ino = rustix::fs::fstat(&dst).ok().map(|st| st.st_ino);
        let task = CopyTask { row, abs, src_dir: ctx.src.clone(), dst_dir: ctx.dst.clone(), src, dst };
        self.copies.send(task).map_err(|_| BackupError::IndexStopped)?;
        Ok(true)
    }

    /// On a resumed run: keeps a file the interrupted run finished copying (its
    /// metadata was set last, so matching size, mtime, mode and owner mean its
    /// data is complete); removes anything else of that name.
    fn reuse_partial_copy(&mut self, ctx: &DirCtx, row: &mut IndexEntry, abs: &[u8]) -> Result<bool, BackupError> {
        let name = row.name.clone();
        let st = match posix::lstat_at(ctx.dst.as_fd(), &name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(dest_err("stat", abs, e)),
        };
        if let Some(have) = posix::meta_from_stat(&st) {
            let same = have.kind == EntryKind::File
                && have.size == row.meta.size
                && have.mtime_ns == row.meta.mtime_ns
                && have.mode == row.meta.mode
                && (have.uid, have.gid) == (row.meta.uid, row.meta.gid);
            if same {
                // The directory may be a user's (her own, restored): the name is
                // opened without following a symlink, and must still be the file seen.
                let fd = rustix::fs::openat(
                    ctx.dst.as_fd(),
                    os(&name),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| dest_err("open", abs, e))?;
                let now = rustix::fs::fstat(&fd).map_err(|e| dest_err("stat", abs, e))?;
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                    return Err(dest_err("open", abs, io::Error::other("replaced while it was being checked")));
                }
                let hash = copy::hash_file(fd.as_fd()).map_err(|e| dest_err("read", abs, e))?;
                row.blake3 = Some(hash);
                row.location.ino = Some(st.st_ino);
                self.progress.copied(0);
                self.send(row.clone(), true)?;
                return Ok(true);
            }
        }
        posix::remove_tree_at(ctx.dst.as_fd(), &name).map_err(|e| dest_err("remove", abs, e))?;
        Ok(false)
    }
}

/// What a file replaced between its `lstat` and its `open` is recorded as.
pub(super) const REPLACED: &str = "replaced by another file while it was being backed up; left out of this snapshot";

/// Opens a source file for reading without following symlinks or touching its atime.
pub(super) fn open_source_file(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    match rustix::fs::openat(dir, os(name), flags | OFlags::NOATIME, Mode::empty()) {
        // O_NOATIME is refused on files the caller does not own unless privileged.
        Err(Errno::PERM) => rustix::fs::openat(dir, os(name), flags, Mode::empty()),
        r => r,
    }
}
