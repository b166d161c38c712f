//! The local hardlink tree: the sink of the source walk
//! ([`super::source_walk`]) for incremental snapshots on a local destination.
//!
//! For every entry it decides: hardlink to another name of the same file
//! already in this snapshot (a hardlink group of the source), hardlink to
//! the previous snapshot's file (unchanged, [`super::change`]), or create it
//! fresh. Regular files to copy are created here and handed to the copy
//! threads, which send their index rows once the data is in; a directory's
//! own metadata is set at its end, when its entries all exist (writing file
//! data does not change a directory's mtime).
//!
//! A resumed run builds into the tree an interrupted run left: an entry of
//! the same name is kept when it is what this run would make (a directory, a
//! link to the same file, a copy whose metadata was set, which is last),
//! replaced otherwise, and what the source no longer has is removed when its
//! directory ends.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use hindsight_fs::index::{IndexEntry, IndexReader};
use hindsight_fs::posix;
use hindsight_fs::{EntryKind, EntryMeta};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::change::unchanged;
use super::copy::{self, CopyError};
use super::progress::Progress;
use super::source_walk::{FirstName, Sink, SourceFile, Stored, StreamFile, abs_of, join, open_file};
use super::spec::{BackupError, Stop};

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

/// One directory of the tree being built.
pub(super) struct TreeDir {
    dst: Arc<OwnedFd>,
    /// The same directory in the previous snapshot's tree.
    prev: Option<OwnedFd>,
    /// Its metadata, set once its entries are made.
    meta: EntryMeta,
    /// Names made in it, kept on a resumed run: the others are strays.
    made: Vec<Vec<u8>>,
}

/// Builds the snapshot's `tree/` (one per thread of the walk).
#[derive(Clone)]
pub(super) struct TreeSink<'a> {
    pub progress: &'a Progress,
    pub stop: &'a Stop<'a>,
    /// The previous snapshot's `tree/`.
    pub prev_tree: Option<&'a OwnedFd>,
    /// This snapshot's `tree/`.
    pub tree: Arc<OwnedFd>,
    /// Building into an interrupted run's tree.
    pub resumed: bool,
    pub copies: SyncSender<CopyTask>,
}

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn dest_err(op: &'static str, abs: &[u8], e: impl Into<io::Error>) -> BackupError {
    BackupError::Destination(format!("{op} {}: {}", String::from_utf8_lossy(abs), e.into()))
}

impl TreeSink<'_> {
    fn made(&self, dir: &mut TreeDir, name: &[u8]) {
        if self.resumed {
            dir.made.push(name.to_vec());
        }
    }

    /// Removes entries an interrupted run left in a directory that the source no longer has.
    fn remove_strays(&self, dir: &mut TreeDir, abs: &[u8]) -> Result<(), BackupError> {
        dir.made.sort_unstable();
        let present = posix::list_dir(dir.dst.as_fd()).map_err(|e| dest_err("list", abs, e))?;
        for name in present {
            if dir.made.binary_search(&name).is_err() {
                posix::remove_tree_at(dir.dst.as_fd(), &name).map_err(|e| dest_err("remove", &join(abs, &name), e))?;
            }
        }
        Ok(())
    }

    /// Creates a directory, accepting one left by an interrupted run.
    fn make_dir(&self, dir: BorrowedFd<'_>, name: &[u8], abs: &[u8]) -> Result<(), BackupError> {
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

    /// Links the previous snapshot's copy of an unchanged entry; false when it
    /// cannot be linked (the caller makes the entry afresh).
    fn link_previous(
        &self,
        dir: &mut TreeDir,
        prev: &IndexEntry,
        row: &mut IndexEntry,
        abs: &[u8],
    ) -> Result<bool, BackupError> {
        let Some(pdir) = dir.prev.as_ref() else { return Ok(false) };
        if !self.link(pdir.as_fd(), &row.name, dir.dst.as_fd(), &row.name, abs)? {
            return Ok(false);
        }
        row.blake3 = prev.blake3;
        row.location.ino = match prev.location.ino {
            Some(ino) => Some(ino),
            None => posix::lstat_at(dir.dst.as_fd(), &row.name).ok().map(|st| st.st_ino),
        };
        self.made(dir, &row.name);
        Ok(true)
    }

    /// Runs `make`; on a resumed run an existing entry of that name is removed first.
    fn replace_on_resume(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        abs: &[u8],
        mut make: impl FnMut(BorrowedFd<'_>) -> Result<(), Errno>,
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

    /// On a resumed run: keeps a file the interrupted run finished copying (its
    /// metadata was set last, so matching size, mtime, mode and owner mean its
    /// data is complete); removes anything else of that name.
    fn reuse_partial_copy(&self, dir: &TreeDir, row: &mut IndexEntry, abs: &[u8]) -> Result<bool, BackupError> {
        let name = &row.name;
        let st = match posix::lstat_at(dir.dst.as_fd(), name) {
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
                    dir.dst.as_fd(),
                    os(name),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| dest_err("open", abs, e))?;
                let now = rustix::fs::fstat(&fd).map_err(|e| dest_err("stat", abs, e))?;
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                    return Err(dest_err("open", abs, io::Error::other("replaced while it was being checked")));
                }
                let hash = copy::hash_fd(&fd, row.meta.size).map_err(|e| dest_err("read", abs, e))?;
                row.blake3 = Some(hash);
                row.location.ino = Some(st.st_ino);
                self.progress.copied(0);
                return Ok(true);
            }
        }
        posix::remove_tree_at(dir.dst.as_fd(), name).map_err(|e| dest_err("remove", abs, e))?;
        Ok(false)
    }
}

impl Sink for TreeSink<'_> {
    type Dir = TreeDir;

    fn root(&mut self, row: &mut IndexEntry) -> Result<TreeDir, BackupError> {
        let prev = self.prev_tree.and_then(|t| rustix::io::fcntl_dupfd_cloexec(t, 0).ok());
        Ok(TreeDir { dst: self.tree.clone(), prev, meta: row.meta.clone(), made: Vec::new() })
    }

    fn dir(
        &mut self,
        parent: &mut TreeDir,
        path: &[u8],
        prev: Option<&IndexEntry>,
        row: &mut IndexEntry,
    ) -> Result<TreeDir, BackupError> {
        self.stop.check()?;
        let abs = abs_of(path);
        let name = &row.name;
        self.make_dir(parent.dst.as_fd(), name, &abs)?;
        let dst = posix::open_dir_at(parent.dst.as_fd(), name).map_err(|e| dest_err("open", &abs, e))?;
        row.location.ino = rustix::fs::fstat(&dst).ok().map(|st| st.st_ino);
        let prev = match (prev, parent.prev.as_ref()) {
            (Some(_), Some(pd)) => posix::open_dir_at(pd.as_fd(), name).ok(),
            _ => None,
        };
        self.made(parent, name);
        Ok(TreeDir { dst: Arc::new(dst), prev, meta: row.meta.clone(), made: Vec::new() })
    }

    fn dir_end(&mut self, mut dir: TreeDir, path: &[u8], listed: bool) -> Result<(), BackupError> {
        let abs = abs_of(path);
        if self.resumed && listed {
            self.remove_strays(&mut dir, &abs)?;
        }
        if let Err(e) = posix::apply_meta_fd(dir.dst.as_fd(), &dir.meta) {
            self.progress.failed(&abs, format!("cannot set directory metadata: {e}"));
        }
        Ok(())
    }

    fn special(
        &mut self,
        parent: &mut TreeDir,
        path: &[u8],
        prev: Option<&IndexEntry>,
        row: &mut IndexEntry,
    ) -> Result<bool, BackupError> {
        let abs = abs_of(path);
        if let Some(p) = prev.filter(|p| row.meta.unchanged_from(&p.meta))
            && self.link_previous(parent, p, row, &abs)?
        {
            return Ok(true);
        }
        let name = row.name.clone();
        let dst = parent.dst.as_fd();
        if row.meta.kind == EntryKind::Symlink {
            let target = row.meta.target.clone().unwrap_or_default();
            self.replace_on_resume(dst, &name, &abs, |d| rustix::fs::symlinkat(os(&target), d, os(&name)))?;
        } else {
            let meta = &row.meta;
            let made = self.replace_on_resume(dst, &name, &abs, |d| {
                posix::make_special_at(d, &name, meta).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))
            });
            if let Err(e) = made {
                if matches!(e, BackupError::Destination(_))
                    && matches!(meta.kind, EntryKind::CharDev | EntryKind::BlockDev)
                {
                    self.progress.failed(&abs, format!("cannot create device node: {e}"));
                    return Ok(false);
                }
                return Err(e);
            }
        }
        if let Err(e) = posix::apply_meta_at(dst, &name, &row.meta) {
            self.progress.failed(&abs, format!("cannot set metadata: {e}"));
        }
        row.location.ino = posix::lstat_at(dst, &name).ok().map(|st| st.st_ino);
        self.made(parent, &name);
        Ok(true)
    }

    fn hardlink(
        &mut self,
        parent: &mut TreeDir,
        path: &[u8],
        first: &FirstName,
        row: &mut IndexEntry,
    ) -> Result<bool, BackupError> {
        // EMLINK: the group is split and this name becomes a copy of its own.
        if !self.link(self.tree.as_fd(), &first.path, parent.dst.as_fd(), &row.name, &abs_of(path))? {
            return Ok(false);
        }
        row.location.ino = posix::lstat_at(parent.dst.as_fd(), &row.name).ok().map(|st| st.st_ino);
        self.made(parent, &row.name);
        Ok(true)
    }

    fn fork(&self) -> Option<Self> {
        Some(self.clone())
    }

    fn stores_streams(&self) -> bool {
        true
    }

    fn stream(&mut self, parent: &mut TreeDir, f: StreamFile<'_>, row: &mut IndexEntry) -> Result<Stored, BackupError> {
        self.stop.check()?;
        let name = row.name.clone();
        let dir = parent.dst.clone();
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut created = None;
        self.replace_on_resume(dir.as_fd(), &name, f.abs, |d| {
            created = Some(rustix::fs::openat(d, os(&name), flags, Mode::from_raw_mode(0o600))?);
            Ok(())
        })?;
        let Some(dst) = created else { return Err(dest_err("create", f.abs, Errno::NOENT)) };
        self.made(parent, &name);
        let mut file = std::fs::File::from(dst);
        let (hash, size) = match copy::copy_stream(f.src, |b| file.write_all(b), f.stopped) {
            Ok(done) => done,
            Err(e) => {
                // Nothing of a dump that did not end well stays.
                let _ = rustix::fs::unlinkat(dir.as_fd(), os(&name), AtFlags::empty());
                return match e {
                    CopyError::Read(e) => {
                        self.progress.failed(f.abs, format!("{}: {e}", f.what));
                        Ok(Stored::Skipped)
                    }
                    CopyError::Write(e) => Err(dest_err("write", f.abs, e)),
                    CopyError::Cancelled => self.stop.check().map(|()| Stored::Skipped),
                };
            }
        };
        row.blake3 = Some(hash);
        row.meta.size = size;
        // The same bytes as the previous snapshot's dump: that file is linked
        // in its place (through a temporary name, so that the dump is never missing).
        if let (Some(p), Some(pdir)) = (f.prev.filter(|p| p.blake3 == Some(hash) && p.meta.size == size), &parent.prev)
        {
            let mut tmp = name.clone();
            tmp.extend_from_slice(b".hindsight-link");
            let _ = rustix::fs::unlinkat(dir.as_fd(), os(&tmp), AtFlags::empty());
            if self.link(pdir.as_fd(), &name, dir.as_fd(), &tmp, f.abs)? {
                rustix::fs::renameat(dir.as_fd(), os(&tmp), dir.as_fd(), os(&name))
                    .map_err(|e| dest_err("rename", f.abs, e))?;
                row.meta = p.meta.clone();
                row.location.ino = match p.location.ino {
                    Some(ino) => Some(ino),
                    None => posix::lstat_at(dir.as_fd(), &name).ok().map(|st| st.st_ino),
                };
                self.progress.linked();
                return Ok(Stored::Reused);
            }
        }
        row.meta.mtime_ns = jiff::Timestamp::now().as_nanosecond() as i64;
        if let Err(e) = posix::apply_meta_fd(file.as_fd(), &row.meta) {
            self.progress.failed(f.abs, format!("cannot set metadata: {e}"));
        }
        row.location.ino = rustix::fs::fstat(&file).ok().map(|st| st.st_ino);
        self.progress.copied(size);
        Ok(Stored::New)
    }

    fn file(&mut self, parent: &mut TreeDir, f: SourceFile<'_>, row: &mut IndexEntry) -> Result<Stored, BackupError> {
        self.stop.check()?;
        // Equal ctime and metadata: the inode has not changed, xattrs included,
        // and it is linked without being opened.
        if let Some(p) = f.prev.filter(|p| unchanged(&row.meta, &p.meta)) {
            row.meta.xattrs = p.meta.xattrs.clone();
            if self.link_previous(parent, p, row, f.abs)? {
                self.progress.linked();
                return Ok(Stored::Reused);
            }
        }
        let Some(src) = open_file(&f, row, self.progress) else { return Ok(Stored::Skipped) };
        if let Some(p) = f.prev.filter(|p| row.meta.unchanged_from(&p.meta))
            && self.link_previous(parent, p, row, f.abs)?
        {
            self.progress.linked();
            return Ok(Stored::Reused);
        }
        if self.resumed && self.reuse_partial_copy(parent, row, f.abs)? {
            self.made(parent, f.name);
            return Ok(Stored::New);
        }
        let dst = rustix::fs::openat(
            parent.dst.as_fd(),
            os(f.name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| dest_err("create", f.abs, e))?;
        row.location.ino = rustix::fs::fstat(&dst).ok().map(|st| st.st_ino);
        self.made(parent, f.name);
        let task = CopyTask {
            row: row.clone(),
            abs: f.abs.to_vec(),
            src_dir: f.dir.clone(),
            dst_dir: parent.dst.clone(),
            src,
            dst,
        };
        self.copies.send(task).map_err(|_| BackupError::IndexStopped)?;
        Ok(Stored::Queued)
    }
}
