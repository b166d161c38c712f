//! Archived and Compressed snapshots: one tar stream written straight to the destination.
//!
//! 1. Take the job's lock; an interrupted archive cannot be resumed (its stream
//!    is half written), so leftover `.partial-*` directories are removed.
//! 2. Walk the sources on this thread in tar order (a directory before its
//!    children), appending each entry to the [`ArchiveWriter`] and sending its
//!    index row (header and data offsets, member, blake3) to the index thread.
//! 3. Finish the stream, the index and the manifest, sync, and rename the
//!    partial directory into place, as incremental snapshots do.
//!
//! Every snapshot is a full archive: there is no previous snapshot to link to.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

use hindsight_fs::archive::tar::{self, TarKind};
use hindsight_fs::archive::writer::{ArchiveWriter, Compression, DataOutcome};
use hindsight_fs::archive::{MEMBER_SIZE, TAR_FILE, TGZ_FILE};
use hindsight_fs::entry::{EntryKind, EntryMeta};
use hindsight_fs::error::FsError;
use hindsight_fs::index::{INDEX_FILE, IndexEntry, IndexWriter, Location, ROOT_ID};
use hindsight_fs::layout::{DestinationRoot, JobLock, PARTIAL_PREFIX};
use hindsight_fs::manifest::{SnapshotStats, Structure};
use hindsight_fs::posix;
use jiff::Timestamp;

use super::commit::{self, Commit};
use super::incremental::{BackupError, BackupSpec, Row, check_sources, write_index};
use super::progress::{Cancel, Progress};
use super::walker::{ROW_BATCH, dir_meta_from_path, join, open_source_file};

/// How an archive is compressed.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveOptions {
    /// Archived or Compressed.
    pub structure: Structure,
    /// Deflate level (Compressed).
    pub level: i32,
    /// Compressor threads (Compressed).
    pub threads: usize,
}

/// Makes one archived or compressed snapshot of `spec` on `root`.
pub fn run_archive(
    root: &DestinationRoot,
    spec: &BackupSpec,
    opts: ArchiveOptions,
    progress: &Progress,
    cancel: &Cancel,
) -> Result<hindsight_fs::manifest::Manifest, BackupError> {
    root.require_marker()?;
    check_sources(&spec.sources)?;
    let _lock = JobLock::acquire(root, &spec.job)?;
    let started = Timestamp::now();
    let name = root.new_snapshot_name(&spec.job, started);
    let partial = root.partial_dir(&spec.job, &name);
    for old in root.list_work(&spec.job, PARTIAL_PREFIX)? {
        let p = root.partial_dir(&spec.job, &old);
        posix::remove_tree(&p).map_err(|e| FsError::io("remove", &p, e))?;
    }
    std::fs::create_dir_all(&partial).map_err(|e| FsError::io("create", &partial, e))?;
    let compressed = opts.structure == Structure::Compressed;
    let data_path = partial.join(if compressed { TGZ_FILE } else { TAR_FILE });
    let data = std::fs::File::create_new(&data_path).map_err(|e| FsError::io("create", &data_path, e))?;
    let compression = compressed.then_some(Compression { level: opts.level, threads: opts.threads.max(1) });
    let writer = ArchiveWriter::new(data, compression, MEMBER_SIZE);
    let mut index = IndexWriter::create(&partial.join(INDEX_FILE), opts.structure.as_str(), &name)?;
    index.set_meta("data_file", data_path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default().as_ref())?;
    if compressed {
        index.set_meta("member_size", &MEMBER_SIZE.to_string())?;
    }

    let clock = std::time::Instant::now();
    let (row_tx, row_rx) = sync_channel::<Vec<Row>>(8);
    let (walked, index_result) = std::thread::scope(|s| {
        let indexer = s.spawn(move || write_index(index, row_rx));
        let mut w = ArchiveWalk {
            spec,
            progress,
            cancel,
            writer,
            compressed,
            next_id: ROOT_ID + 1,
            rows: row_tx,
            pending: Vec::new(),
            hardlinks: HashMap::new(),
            source_dev: 0,
        };
        let walked = w.walk_sources().and_then(|()| w.flush());
        // The index thread ends when the rows channel closes, which it does with `w`.
        let ArchiveWalk { writer, rows, .. } = w;
        drop(rows);
        let walked = walked.map(|()| writer);
        let index_result = indexer.join().unwrap_or(Err(BackupError::IndexStopped));
        (walked, index_result)
    });
    let writer = walked?;
    let (mut index, stats) = index_result?;
    if cancel.is_cancelled() {
        return Err(BackupError::Cancelled);
    }
    let finished = writer.finish().map_err(|e| BackupError::Destination(format!("{}: {e}", data_path.display())))?;
    finished.sink.sync_all().map_err(|e| FsError::io("fsync", &data_path, e))?;
    for (i, m) in finished.members.iter().enumerate() {
        index.insert_member(
            i as i64,
            (m.compressed_offset, m.compressed_length),
            (m.uncompressed_offset, m.uncompressed_length),
        )?;
    }
    index.set_meta("stream_length", &finished.stream_length.to_string())?;
    let walk_time = clock.elapsed();
    index.finish()?;
    tracing::info!(
        job = %spec.job,
        "archive {} written: {} bytes of tar in {} bytes, {} members, {:.2}s",
        data_path.display(),
        finished.stream_length,
        finished.written,
        finished.members.len(),
        walk_time.as_secs_f64()
    );
    commit::commit(Commit {
        root,
        spec,
        name: &name,
        partial: &partial,
        structure: opts.structure,
        started,
        parent: None,
        stats: SnapshotStats { bytes_stored: finished.written, ..stats },
        progress,
        sync: &finished.sink,
        clock,
    })
}

/// The walk of one archive backup.
struct ArchiveWalk<'a> {
    spec: &'a BackupSpec,
    progress: &'a Progress,
    cancel: &'a Cancel,
    writer: ArchiveWriter<std::fs::File>,
    compressed: bool,
    next_id: i64,
    rows: SyncSender<Vec<Row>>,
    pending: Vec<Row>,
    /// (dev, ino) of multiply-linked files -> (first id, its tar path, its data offset).
    hardlinks: HashMap<(u64, u64), (i64, Vec<u8>, u64)>,
    source_dev: u64,
}

/// One directory being walked: its entry id, descriptor and tar path (ending with `/`, empty for `/`).
struct Dir<'d> {
    id: i64,
    fd: BorrowedFd<'d>,
    path: &'d [u8],
}

impl ArchiveWalk<'_> {
    fn send(&mut self, entry: IndexEntry) -> Result<(), BackupError> {
        self.pending.push(Row { entry, added: true });
        if self.pending.len() >= ROW_BATCH { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), BackupError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(ROW_BATCH));
        self.rows.send(batch).map_err(|_| BackupError::IndexStopped)
    }

    fn check(&self) -> Result<(), BackupError> {
        if self.cancel.is_cancelled() { Err(BackupError::Cancelled) } else { Ok(()) }
    }

    fn dest_err(&self, e: io::Error) -> BackupError {
        BackupError::Destination(format!("writing the archive: {e}"))
    }

    /// The root entry, the ancestors of every source, then every source.
    fn walk_sources(&mut self) -> Result<(), BackupError> {
        let root_meta = dir_meta_from_path(b"").map_err(|e| BackupError::Source(format!("/: {e}")))?;
        self.send(row(ROOT_ID, 0, Vec::new(), root_meta))?;
        let mut ancestors: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut sources = self.spec.sources.clone();
        sources.sort();
        for src in &sources {
            self.source_dev = std::fs::symlink_metadata(src)
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                .map_err(|e| BackupError::Source(format!("source {}: {e}", src.display())))?;
            let comps: Vec<&[u8]> = src
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.as_bytes()),
                    _ => None,
                })
                .collect();
            let root_fd = open_dir(Path::new("/"))?;
            let Some((last, parents)) = comps.split_last() else {
                self.walk_dir(&Dir { id: ROOT_ID, fd: root_fd.as_fd(), path: b"" })?;
                continue;
            };
            let mut parent_id = ROOT_ID;
            let mut path = Vec::new();
            for comp in parents {
                path.extend_from_slice(comp);
                path.push(b'/');
                let id = match ancestors.get(&path) {
                    Some(id) => *id,
                    None => {
                        let abs = [b"/".as_slice(), &path[..path.len() - 1]].concat();
                        let meta = dir_meta_from_path(&abs)
                            .map_err(|e| BackupError::Source(format!("{}: {e}", String::from_utf8_lossy(&abs))))?;
                        let id = self.alloc(1);
                        let placed =
                            self.writer.append_entry(&path, &meta, TarKind::Dir).map_err(|e| self.dest_err(e))?;
                        let mut r = row(id, parent_id, comp.to_vec(), meta);
                        r.location.header_offset = Some(placed.header_offset as i64);
                        self.send(r)?;
                        ancestors.insert(path.clone(), id);
                        id
                    }
                };
                parent_id = id;
            }
            let parent_abs = Path::new(std::ffi::OsStr::from_bytes(&path)).to_path_buf();
            let parent_fd = open_dir(&Path::new("/").join(parent_abs))?;
            let id = self.alloc(1);
            self.entry(&Dir { id: parent_id, fd: parent_fd.as_fd(), path: &path }, last, id)?;
        }
        Ok(())
    }

    fn alloc(&mut self, n: usize) -> i64 {
        let first = self.next_id;
        self.next_id += n as i64;
        first
    }

    fn walk_dir(&mut self, dir: &Dir<'_>) -> Result<(), BackupError> {
        let abs = abs_of(dir.path);
        self.progress.set_current(&abs);
        let names = match posix::list_dir(dir.fd) {
            Ok(n) => n,
            Err(e) => {
                self.progress.failed(&abs, format!("cannot list directory: {e}"));
                return Ok(());
            }
        };
        let base = self.alloc(names.len());
        for (i, name) in names.iter().enumerate() {
            self.entry(dir, name, base + i as i64)?;
        }
        Ok(())
    }

    /// Archives one entry of `dir` (and everything under it).
    fn entry(&mut self, dir: &Dir<'_>, name: &[u8], id: i64) -> Result<(), BackupError> {
        self.check()?;
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
        let Some(mut meta) = posix::meta_from_stat(&st) else {
            self.progress.failed(&abs, "unsupported file type");
            return Ok(());
        };
        let is_dir = meta.kind == EntryKind::Dir;
        if self.spec.excludes.is_excluded(&abs, is_dir) || (is_dir && self.spec.skip_dirs.contains(&abs)) {
            return Ok(());
        }
        self.progress.scanned(if meta.kind == EntryKind::File { meta.size } else { 0 });
        let mut r = row(id, dir.id, name.to_vec(), meta.clone());
        match meta.kind {
            EntryKind::Dir => {
                let fd = match posix::open_dir_at(dir.fd, name) {
                    Ok(fd) => fd,
                    Err(e) => {
                        self.progress.failed(&abs, format!("cannot open directory: {e}"));
                        return Ok(());
                    }
                };
                match posix::read_xattrs_fd(fd.as_fd()) {
                    Ok(x) => meta.xattrs = x,
                    Err(e) => self.progress.failed(&abs, format!("cannot read xattrs: {e}")),
                }
                path.push(b'/');
                let placed = self.writer.append_entry(&path, &meta, TarKind::Dir).map_err(|e| self.dest_err(e))?;
                r.meta = meta;
                r.location.header_offset = Some(placed.header_offset as i64);
                self.send(r)?;
                if !(self.spec.one_file_system && st.st_dev != self.source_dev) {
                    self.walk_dir(&Dir { id, fd: fd.as_fd(), path: &path })?;
                }
            }
            EntryKind::File => self.file(dir, name, r, &path, (st.st_dev, st.st_ino, st.st_nlink as u64))?,
            _ => {
                if meta.kind == EntryKind::Symlink {
                    match rustix::fs::readlinkat(dir.fd, std::ffi::OsStr::from_bytes(name), Vec::new()) {
                        Ok(t) => meta.target = Some(t.into_bytes()),
                        Err(e) => {
                            self.progress.failed(&abs, format!("cannot read symlink: {e}"));
                            return Ok(());
                        }
                    }
                }
                match posix::read_xattrs_at(dir.fd, name) {
                    Ok(x) => meta.xattrs = x,
                    Err(e) => self.progress.failed(&abs, format!("cannot read xattrs: {e}")),
                }
                // Sockets stay in the index for browsing; tar has no type for them.
                if let Some(kind) = tar::kind_of(&meta) {
                    let placed = self.writer.append_entry(&path, &meta, kind).map_err(|e| self.dest_err(e))?;
                    r.location.header_offset = Some(placed.header_offset as i64);
                }
                r.meta = meta;
                self.progress.linked();
                self.send(r)?;
            }
        }
        Ok(())
    }

    /// A regular file: a hardlink entry for a further name, otherwise header and data.
    fn file(
        &mut self,
        dir: &Dir<'_>,
        name: &[u8],
        mut r: IndexEntry,
        path: &[u8],
        (dev, ino, nlink): (u64, u64, u64),
    ) -> Result<(), BackupError> {
        let abs = abs_of(path);
        if nlink > 1
            && let Some((first_id, first_path, data_offset)) = self.hardlinks.get(&(dev, ino)).cloned()
        {
            match posix::read_xattrs_at(dir.fd, name) {
                Ok(x) => r.meta.xattrs = x,
                Err(e) => self.progress.failed(&abs, format!("cannot read xattrs: {e}")),
            }
            let placed = self
                .writer
                .append_entry(path, &r.meta, TarKind::Hardlink { first: &first_path })
                .map_err(|e| self.dest_err(e))?;
            r.hardlink = Some(first_id);
            r.location.header_offset = Some(placed.header_offset as i64);
            r.location.data_offset = Some(data_offset as i64);
            r.location.member = self.member_of(data_offset);
            self.progress.linked();
            return self.send(r);
        }
        let fd = match open_source_file(dir.fd, name) {
            Ok(fd) => fd,
            Err(e) => {
                let msg = if e == rustix::io::Errno::NOENT {
                    "vanished during the backup".to_string()
                } else {
                    format!("cannot open: {}", io::Error::from(e))
                };
                self.progress.failed(&abs, msg);
                return Ok(());
            }
        };
        // The open descriptor is the authority: what is read is what it describes.
        if let Ok(st) = rustix::fs::fstat(&fd)
            && let Some(m) = posix::meta_from_stat(&st)
        {
            r.meta = m;
        }
        match posix::read_xattrs_fd(fd.as_fd()) {
            Ok(x) => r.meta.xattrs = x,
            Err(e) => self.progress.failed(&abs, format!("cannot read xattrs: {e}")),
        }
        let size = r.meta.size;
        let placed = self.writer.append_entry(path, &r.meta, TarKind::File { size }).map_err(|e| self.dest_err(e))?;
        let mut hash = blake3::Hasher::new();
        let outcome = self.writer.append_data(fd.as_fd(), size, &mut hash).map_err(|e| self.dest_err(e))?;
        match outcome {
            DataOutcome::Complete => {
                let after = rustix::fs::fstat(&fd).ok().and_then(|st| posix::meta_from_stat(&st));
                if after.is_none_or(|a| a.size != size || a.mtime_ns != r.meta.mtime_ns) {
                    self.progress.failed(&abs, "changed while being read; the archived copy may not be consistent");
                }
            }
            DataOutcome::Short(n) => {
                self.progress.failed(&abs, format!("shrank while being read: {n} of {size} bytes, the rest is zeros"))
            }
            DataOutcome::Failed(n, e) => {
                self.progress.failed(&abs, format!("read failed after {n} bytes ({e}); the rest is zeros"))
            }
        }
        self.progress.copied(size);
        if nlink > 1 {
            self.hardlinks.insert((dev, ino), (r.id, path.to_vec(), placed.data_offset));
            r.hardlink = Some(r.id);
        }
        r.blake3 = Some(*hash.finalize().as_bytes());
        r.location.header_offset = Some(placed.header_offset as i64);
        r.location.data_offset = Some(placed.data_offset as i64);
        r.location.member = self.member_of(placed.data_offset);
        self.send(r)
    }

    fn member_of(&self, data_offset: u64) -> Option<i64> {
        self.compressed.then_some((data_offset / MEMBER_SIZE) as i64)
    }
}

fn row(id: i64, parent: i64, name: Vec<u8>, meta: EntryMeta) -> IndexEntry {
    IndexEntry { id, parent, name, meta, nlink: 1, blake3: None, hardlink: None, location: Location::default() }
}

/// Absolute source path of a tar path (`etc/passwd` -> `/etc/passwd`).
fn abs_of(path: &[u8]) -> Vec<u8> {
    join(b"", path.strip_suffix(b"/").unwrap_or(path))
}

fn open_dir(p: &Path) -> Result<OwnedFd, BackupError> {
    posix::open_dir(p).map_err(|e| BackupError::Source(format!("{}: {e}", p.display())))
}
