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

use std::io::{Seek, Write};
use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags};
use std::sync::mpsc::sync_channel;

use hindsight_fs::EntryMeta;
use hindsight_fs::FsError;
use hindsight_fs::archive::{ArchiveWriter, Compression, DataOutcome, Finished, Placed};
use hindsight_fs::archive::{MEMBER_SIZE, TAR_FILE, TGZ_FILE};
use hindsight_fs::archive::{TarKind, kind_of};
use hindsight_fs::index::{INDEX_FILE, IndexEntry, IndexWriter};
use hindsight_fs::posix;
use hindsight_fs::{DestinationRoot, JobLock, PARTIAL_PREFIX};
use hindsight_fs::{SnapshotStats, Structure};
use jiff::Timestamp;

use super::archive_file::ArchiveFile;
use super::commit::{self, Commit, SnapshotInfo};
use super::copy::{CopyError, copy_stream};
use super::index_thread::write_index;
use super::progress::{Cancel, Progress};
use super::source_path::check_sources;
use super::source_walk::{FirstName, SourceFile, SourceWalk, Stored, StreamFile, StreamSink, open_file};
use super::spec::{BackupError, BackupSpec, Row};

/// How an archive is compressed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArchiveOptions {
    /// Archived or Compressed.
    pub structure: Structure,
    /// Deflate level (Compressed).
    pub level: i32,
    /// Compressor threads (Compressed).
    pub threads: usize,
}

/// Makes one archived or compressed snapshot of `spec` on `root`.
pub(crate) fn run_archive(
    root: &DestinationRoot,
    spec: &BackupSpec,
    opts: ArchiveOptions,
    progress: &Progress,
    cancel: &Cancel,
) -> Result<hindsight_fs::Manifest, BackupError> {
    root.require_marker()?;
    check_sources(&spec.sources)?;
    let _lock = JobLock::acquire(root, &spec.job)?;
    let started = Timestamp::now();
    let name = root.new_snapshot_name(&spec.job, started);
    let sequence = hindsight_fs::next_sequence(&root.snapshots_in_order(&spec.job)?);
    let partial = root.partial_dir(&spec.job, &name);
    for old in root.list_work(&spec.job, PARTIAL_PREFIX)? {
        let p = root.partial_dir(&spec.job, &old);
        posix::remove_tree(&p).map_err(|e| FsError::io("remove", &p, e))?;
    }
    hindsight_fs::create_private_dir_all(&partial)?;
    let data_path = partial.join(opts.data_file());
    let data = posix::create_private(&data_path).map_err(|e| FsError::io("create", &data_path, e))?;
    let clock = std::time::Instant::now();
    let out = ArchiveOut {
        data: ArchiveFile::new(data),
        shown: data_path.display().to_string(),
        index_path: &partial.join(INDEX_FILE),
        name: &name,
        spool_dir: Some(&partial),
    };
    let (finished, stats) = stream_archive(spec, opts, out, progress, cancel)?;
    if !finished.sink.was_direct() {
        tracing::debug!("{} written through the page cache (no direct I/O there)", data_path.display());
    }
    let file = finished.sink.into_file().map_err(|e| FsError::io("write", &data_path, e))?;
    file.sync_all().map_err(|e| FsError::io("fsync", &data_path, e))?;
    commit::commit(Commit {
        info: SnapshotInfo {
            spec,
            name: &name,
            structure: opts.structure,
            started,
            parent: None,
            stats,
            progress,
            sequence,
        },
        root,
        partial: &partial,
        sync: &file,
        clock,
    })
}

impl ArchiveOptions {
    /// Name of the data file: `data.tar` or `data.tar.gz`.
    pub(crate) fn data_file(&self) -> &'static str {
        if self.structure == Structure::Compressed { TGZ_FILE } else { TAR_FILE }
    }
}

/// Where one archive goes.
pub(super) struct ArchiveOut<'a, W> {
    /// The data file's stream.
    pub data: W,
    /// The data file, for messages.
    pub shown: String,
    /// The index to create.
    pub index_path: &'a std::path::Path,
    /// The snapshot's name.
    pub name: &'a str,
    /// A directory on the destination's filesystem where a dump is held,
    /// unnamed, until its size is known and it is appended; none on remote
    /// destinations, where dumps are not stored in archives.
    pub spool_dir: Option<&'a std::path::Path>,
}

/// Walks the sources of `spec` into a tar stream written to `out`; returns the
/// finished stream and the snapshot's stats. The index is complete (members
/// and stream length recorded) and closed.
pub(super) fn stream_archive<W: std::io::Write + Send + 'static>(
    spec: &BackupSpec,
    opts: ArchiveOptions,
    out: ArchiveOut<'_, W>,
    progress: &Progress,
    cancel: &Cancel,
) -> Result<(Finished<W>, SnapshotStats), BackupError> {
    let ArchiveOut { data, shown, index_path, name, spool_dir } = out;
    let compressed = opts.structure == Structure::Compressed;
    let compression = compressed.then_some(Compression { level: opts.level, threads: opts.threads.max(1) });
    let mut writer = ArchiveWriter::new(data, compression, MEMBER_SIZE);
    let mut index = IndexWriter::create(index_path, opts.structure.as_str(), name)?;
    index.set_meta("data_file", opts.data_file())?;
    if compressed {
        index.set_meta("member_size", &MEMBER_SIZE.to_string())?;
    }

    let clock = std::time::Instant::now();
    let (row_tx, row_rx) = sync_channel::<Vec<Row>>(8);
    let hashes = writer.hashes();
    let sink = TarSink { writer, compressed, progress, spool_dir };
    let (finished, index_result) = std::thread::scope(|s| {
        let indexer = s.spawn(move || write_index(index, row_rx, hashes));
        // Finished before the index thread is joined: it waits for the last hashes.
        let finished = SourceWalk::new(spec, progress, cancel, sink, None, row_tx)
            .run()
            .and_then(|sink| sink.writer.finish().map_err(|e| BackupError::Destination(format!("{shown}: {e}"))));
        let index_result = indexer.join().unwrap_or(Err(BackupError::IndexStopped));
        (finished, index_result)
    });
    let finished = finished?;
    let (mut index, stats) = index_result?;
    if cancel.is_cancelled() {
        return Err(BackupError::Cancelled);
    }
    for (i, m) in finished.members.iter().enumerate() {
        index.insert_member(
            i as i64,
            (m.compressed_offset, m.compressed_length),
            (m.uncompressed_offset, m.uncompressed_length),
        )?;
    }
    index.set_meta("stream_length", &finished.stream_length.to_string())?;
    index.finish()?;
    tracing::info!(
        job = %spec.job,
        "archive {shown} written: {} bytes of tar in {} bytes, {} members, {:.2}s",
        finished.stream_length,
        finished.written,
        finished.members.len(),
        clock.elapsed().as_secs_f64()
    );
    let stats = SnapshotStats { bytes_stored: finished.written, ..stats };
    Ok((finished, stats))
}

/// Appends every entry to the tar stream and locates it in the index row.
struct TarSink<'a, W: std::io::Write + Send + 'static> {
    writer: ArchiveWriter<W>,
    compressed: bool,
    progress: &'a Progress,
    spool_dir: Option<&'a std::path::Path>,
}

impl<W: std::io::Write + Send + 'static> TarSink<'_, W> {
    fn member_of(&self, data_offset: u64) -> Option<i64> {
        self.compressed.then_some((data_offset / MEMBER_SIZE) as i64)
    }

    fn append(&mut self, path: &[u8], meta: &EntryMeta, kind: TarKind<'_>) -> Result<Placed, BackupError> {
        self.writer
            .append_entry(path, meta, kind)
            .map_err(|e| BackupError::Destination(format!("writing the archive: {e}")))
    }
}

impl<W: std::io::Write + Send + 'static> StreamSink for TarSink<'_, W> {
    fn dir(&mut self, path: &[u8], row: &mut IndexEntry) -> Result<(), BackupError> {
        let placed = self.append(path, &row.meta, TarKind::Dir)?;
        row.location.header_offset = Some(placed.header_offset as i64);
        Ok(())
    }

    fn special(&mut self, path: &[u8], row: &mut IndexEntry) -> Result<(), BackupError> {
        // Sockets stay in the index for browsing; tar has no type for them.
        if let Some(kind) = kind_of(&row.meta) {
            let placed = self.append(path, &row.meta, kind)?;
            row.location.header_offset = Some(placed.header_offset as i64);
        }
        Ok(())
    }

    fn hardlink(&mut self, path: &[u8], first: &FirstName, row: &mut IndexEntry) -> Result<(), BackupError> {
        let placed = self.append(path, &row.meta, TarKind::Hardlink { first: &first.path })?;
        row.location.header_offset = Some(placed.header_offset as i64);
        Ok(())
    }

    fn file(&mut self, f: SourceFile<'_>, r: &mut IndexEntry) -> Result<Stored, BackupError> {
        let Some(fd) = open_file(&f, r, self.progress) else { return Ok(Stored::Skipped) };
        self.append_located(f.path, &fd, f.abs, r)
    }

    fn stores_streams(&self) -> bool {
        self.spool_dir.is_some()
    }

    /// A tar header holds the size before the data: the stream is held in an
    /// unnamed file (`O_TMPFILE`, gone with its descriptor whatever happens)
    /// on the destination's filesystem, then appended.
    fn stream(&mut self, f: StreamFile<'_>, r: &mut IndexEntry) -> Result<Stored, BackupError> {
        let Some(dir) = self.spool_dir else {
            return Err(BackupError::Destination(format!("{}: dumps are not stored in remote archives", f.what)));
        };
        let failed =
            |e: std::io::Error| BackupError::Destination(format!("spooling {} in {}: {e}", f.what, dir.display()));
        let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
        let spool = rustix::fs::open(dir, flags, Mode::from_raw_mode(0o600)).map_err(|e| failed(e.into()))?;
        let mut file = std::fs::File::from(spool);
        match copy_stream(f.src, |b| file.write_all(b), f.stopped) {
            Ok(_) => {}
            Err(CopyError::Read(e)) => {
                self.progress.failed(f.abs, format!("{}: {e}", f.what));
                return Ok(Stored::Skipped);
            }
            Err(CopyError::Write(e)) => return Err(failed(e)),
            Err(CopyError::Cancelled) => return Err(BackupError::Cancelled),
        }
        file.seek(std::io::SeekFrom::Start(0)).map_err(failed)?;
        let st = rustix::fs::fstat(&file).map_err(|e| failed(e.into()))?;
        r.meta.size = st.st_size as u64;
        r.meta.mtime_ns = posix::meta_from_stat(&st).map_or(r.meta.mtime_ns, |m| m.mtime_ns);
        let fd = std::os::fd::OwnedFd::from(file);
        self.append_located(f.path, &fd, f.abs, r)
    }
}

impl<W: std::io::Write + Send + 'static> TarSink<'_, W> {
    /// Appends a regular file and locates it in its row.
    fn append_located(
        &mut self,
        path: &[u8],
        fd: &std::os::fd::OwnedFd,
        abs: &[u8],
        r: &mut IndexEntry,
    ) -> Result<Stored, BackupError> {
        let placed = append_file(&mut self.writer, path, fd, abs, r, self.progress)?;
        r.location.header_offset = Some(placed.header_offset as i64);
        r.location.data_offset = Some(placed.data_offset as i64);
        r.location.member = self.member_of(placed.data_offset);
        Ok(Stored::New)
    }
}

/// Appends a regular file (header and data read from `fd`) to `writer` under
/// `path`, its hash to come from the writer under the row's id (the index
/// thread fills it in); records a file that changed, shrank or failed while
/// being read (`abs` names it).
pub(super) fn append_file<W: std::io::Write + Send + 'static>(
    writer: &mut ArchiveWriter<W>,
    path: &[u8],
    fd: &std::os::fd::OwnedFd,
    abs: &[u8],
    r: &mut IndexEntry,
    progress: &Progress,
) -> Result<Placed, BackupError> {
    let size = r.meta.size;
    let failed = |e: std::io::Error| BackupError::Destination(format!("writing the archive: {e}"));
    let placed = writer.append_entry(path, &r.meta, TarKind::File { size }).map_err(failed)?;
    match writer.append_data(fd.as_fd(), size, r.id).map_err(failed)? {
        DataOutcome::Complete => {
            let after = rustix::fs::fstat(fd).ok().and_then(|st| posix::meta_from_stat(&st));
            if after.is_none_or(|a| a.size != size || a.mtime_ns != r.meta.mtime_ns) {
                progress.failed(abs, "changed while being read; the archived copy may not be consistent");
            }
        }
        DataOutcome::Short(n) => {
            progress.failed(abs, format!("shrank while being read: {n} of {size} bytes, the rest is zeros"))
        }
        DataOutcome::Failed(n, e) => {
            progress.failed(abs, format!("read failed after {n} bytes ({e}); the rest is zeros"))
        }
    }
    progress.copied(size);
    Ok(placed)
}
