//! Incremental snapshots on a local destination: the orchestration.
//!
//! 1. Take the job's lock on the destination; find the previous complete
//!    incremental snapshot; reuse an interrupted run's `.partial-*` (renamed to
//!    the new snapshot's name) or create a fresh one.
//! 2. Walk the sources on this thread ([`super::source_walk`]) into the
//!    tree ([`super::local_tree`]), copy file data on `threads` copy
//!    threads, write index rows on one index thread.
//! 3. Finish the index, write `snapshot.json`, `syncfs`, and rename the
//!    partial directory into place: the snapshot appears complete or not at all.
//!
//! A cancelled or failed run leaves its `.partial-*` for the next run to resume.

use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use hindsight_fs::archive::{TAR_FILE, TGZ_FILE};
use hindsight_fs::index::{INDEX_FILE, IndexEntry, IndexReader, IndexWriter};
use hindsight_fs::lock;
use hindsight_fs::posix;
use hindsight_fs::{DestinationRoot, JobLock, PARTIAL_PREFIX, TREE_DIR};
use hindsight_fs::{EntryKind, EntryMeta};
use hindsight_fs::{FsError, Result as FsResult};
use hindsight_fs::{MANIFEST_FILE, Manifest, Structure, next_sequence};
use jiff::Timestamp;

use super::commit::{self, Commit, SnapshotInfo};
use super::copy::{Copier, CopyError};
use super::index_thread::write_index;
use super::local_tree::{CopyTask, Previous, TreeSink};
use super::progress::{Cancel, Progress};
use super::source_path::check_sources;
use super::source_walk::{REPLACED, SourceWalk, open_source_file};
use super::spec::{BackupError, BackupSpec, Row, Stop};

/// Makes one incremental snapshot of `spec` on `root`.
pub(crate) fn run_incremental(
    root: &DestinationRoot,
    spec: &BackupSpec,
    progress: &Progress,
    cancel: &Cancel,
) -> Result<Manifest, BackupError> {
    root.require_marker()?;
    check_sources(&spec.sources)?;
    let _lock = JobLock::acquire(root, &spec.job)?;
    let started = Timestamp::now();
    let name = root.new_snapshot_name(&spec.job, started);
    let partial = root.partial_dir(&spec.job, &name);
    let resumed = prepare_partial(root, &spec.job, &partial)?;
    let snapshots = root.snapshots_in_order(&spec.job)?;
    let prev = find_previous(root, &spec.job, &snapshots);
    let tree_path = partial.join(TREE_DIR);
    hindsight_fs::create_private_dir_all(&tree_path)?;
    let tree = Arc::new(posix::open_dir(&tree_path).map_err(|e| FsError::io("open", &tree_path, e))?);
    let index = IndexWriter::create(&partial.join(INDEX_FILE), Structure::Incremental.as_str(), &name)?;
    if resumed {
        tracing::info!(job = %spec.job, "resuming the interrupted backup in {}", partial.display());
    }

    let clock = std::time::Instant::now();
    let stop = Stop::new(cancel);
    let (row_tx, row_rx) = sync_channel::<Vec<Row>>(8);
    let (copy_tx, copy_rx) = sync_channel::<CopyTask>(spec.threads * 16);
    let copy_rx = Arc::new(Mutex::new(copy_rx));

    let (walked, index_result) = std::thread::scope(|s| {
        let indexer = s.spawn(move || write_index(index, row_rx, None));
        let mut workers = Vec::new();
        for _ in 0..spec.threads.max(1) {
            let rx = copy_rx.clone();
            let rows = row_tx.clone();
            let stop = &stop;
            workers.push(s.spawn(move || copy_worker(rx, rows, progress, stop, spec.retry_failed)));
        }
        let sink = TreeSink {
            progress,
            stop: &stop,
            prev_tree: prev.as_ref().map(|p| &p.tree),
            tree: tree.clone(),
            resumed,
            copies: copy_tx,
        };
        let walk = SourceWalk::new(spec, progress, cancel, sink, prev.as_ref().map(|p| &p.index), row_tx);
        // The sink is dropped with the walk's end: the copy queue closes and the workers finish.
        let walked = walk.run().map(drop);
        for h in workers {
            let _ = h.join();
        }
        let index_result = indexer.join().unwrap_or(Err(BackupError::IndexStopped));
        (walked, index_result)
    });

    if let Some(fatal) = stop.take_fatal() {
        return Err(fatal);
    }
    walked?;
    let (index, stats) = index_result?;
    if cancel.is_cancelled() {
        return Err(BackupError::Cancelled);
    }
    let walk_time = clock.elapsed();
    index.finish()?;
    let index_time = clock.elapsed() - walk_time;

    tracing::info!(
        job = %spec.job,
        "snapshot {name}: walk and copy {:.2}s, index {:.2}s",
        walk_time.as_secs_f64(),
        index_time.as_secs_f64()
    );
    commit::commit(Commit {
        info: SnapshotInfo {
            spec,
            name: &name,
            structure: Structure::Incremental,
            started,
            parent: prev.as_ref().map(|p| p.name.clone()),
            stats,
            progress,
            sequence: next_sequence(&snapshots),
        },
        root,
        partial: &partial,
        sync: &*tree,
        clock,
    })
}

/// Reuses the newest interrupted run's directory (renamed to `partial`) and
/// removes older ones; true when something was reused.
fn prepare_partial(root: &DestinationRoot, job: &str, partial: &Path) -> Result<bool, BackupError> {
    let mut leftovers = root.list_work(job, PARTIAL_PREFIX)?;
    let Some(newest) = leftovers.pop() else {
        hindsight_fs::create_private_dir_all(partial)?;
        return Ok(false);
    };
    for old in leftovers {
        let p = root.partial_dir(job, &old);
        posix::remove_tree(&p).map_err(|e| FsError::io("remove", &p, e))?;
    }
    let from = root.partial_dir(job, &newest);
    std::fs::rename(&from, partial).map_err(|e| FsError::io("rename", &from, e))?;
    // A manifest or index left by a run that died while committing is rebuilt.
    for f in [MANIFEST_FILE, INDEX_FILE, TAR_FILE, TGZ_FILE] {
        let p = partial.join(f);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::io("remove", &p, e).into()),
        }
    }
    Ok(true)
}

/// The newest complete incremental snapshot of the job whose index opens,
/// among its `snapshots` (in completion order, oldest first).
fn find_previous(root: &DestinationRoot, job: &str, snapshots: &[(String, FsResult<Manifest>)]) -> Option<Previous> {
    for (name, manifest) in snapshots.iter().rev() {
        let dir = root.snapshot_dir(job, name);
        match manifest {
            Ok(m) if m.structure == Structure::Incremental => {}
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!("skipping snapshot {name} as a base: {e}");
                continue;
            }
        }
        let index = match IndexReader::open(&dir.join(INDEX_FILE)) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("skipping snapshot {name} as a base: {e}");
                continue;
            }
        };
        let Ok(tree) = posix::open_dir(&dir.join(TREE_DIR)) else { continue };
        return Some(Previous { name: name.clone(), index, tree });
    }
    None
}

/// A copy thread: copies, hashes, applies metadata, and sends the index row.
fn copy_worker(
    tasks: Arc<Mutex<Receiver<CopyTask>>>,
    rows: SyncSender<Vec<Row>>,
    progress: &Progress,
    stop: &Stop<'_>,
    retry_failed: u32,
) {
    let mut copier = Copier::default();
    let mut batch = Vec::new();
    let flush = |batch: &mut Vec<Row>| {
        if !batch.is_empty() && rows.send(std::mem::take(batch)).is_err() {
            stop.fail(BackupError::IndexStopped);
        }
    };
    loop {
        let task = lock(&tasks).recv();
        let Ok(task) = task else { break };
        if stop.stopped() {
            continue;
        }
        match copy_one(&mut copier, task, progress, stop.aborted(), stop.cancelled(), retry_failed) {
            Ok(Some(row)) => {
                batch.push(Row { entry: row, added: true });
                if batch.len() >= 64 {
                    flush(&mut batch);
                }
            }
            Ok(None) | Err(CopyError::Cancelled) | Err(CopyError::Read(_)) => {}
            Err(CopyError::Write(e)) => stop.fail(BackupError::Destination(e.to_string())),
        }
    }
    flush(&mut batch);
}

/// Copies one file, retrying when it changes underneath; `None` when it could
/// not be read (recorded, and the half-written copy removed).
fn copy_one(
    copier: &mut Copier,
    task: CopyTask,
    progress: &Progress,
    abort: &Cancel,
    cancel: &Cancel,
    retry_failed: u32,
) -> Result<Option<IndexEntry>, CopyError> {
    let CopyTask { mut row, abs, src_dir, dst_dir, mut src, dst } = task;
    let either = Cancel::default();
    let mut attempt = 0;
    let (hash, copied) = loop {
        if abort.is_cancelled() || cancel.is_cancelled() {
            either.cancel();
        }
        let result = copier.copy(src.as_fd(), dst.as_fd(), if cancel.is_cancelled() { cancel } else { &either });
        let (hash, copied) = match result {
            Ok(v) => v,
            Err(CopyError::Read(e)) => {
                progress.failed(&abs, format!("read failed: {e}"));
                let _ = rustix::fs::unlinkat(
                    dst_dir.as_fd(),
                    std::ffi::OsStr::from_bytes(&row.name),
                    rustix::fs::AtFlags::empty(),
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let after = rustix::fs::fstat(src.as_fd()).map_err(|e| CopyError::Read(e.into()))?;
        let after = posix::meta_from_stat(&after);
        let changed = after.as_ref().is_none_or(|a| a.size != row.meta.size || a.mtime_ns != row.meta.mtime_ns);
        if !changed {
            break (hash, copied);
        }
        if attempt < retry_failed {
            attempt += 1;
            tracing::info!(path = %String::from_utf8_lossy(&abs), "changed while being copied; copying again");
            // The name is opened again: it must still be the same file (a rename
            // in between would store another file's bytes under this one's entry).
            let before = rustix::fs::fstat(src.as_fd()).map_err(|e| CopyError::Read(e.into()))?;
            let reopened = open_source_file(src_dir.as_fd(), &row.name).ok().and_then(|fd| {
                let st = rustix::fs::fstat(fd.as_fd()).ok()?;
                let m = posix::meta_from_stat(&st).filter(|m| m.kind == EntryKind::File)?;
                ((st.st_dev, st.st_ino) == (before.st_dev, before.st_ino)).then_some((fd, m))
            });
            let Some((fd, m)) = reopened else {
                progress.failed(&abs, REPLACED);
                let _ = rustix::fs::unlinkat(
                    dst_dir.as_fd(),
                    std::ffi::OsStr::from_bytes(&row.name),
                    rustix::fs::AtFlags::empty(),
                );
                return Ok(None);
            };
            src = fd;
            row.meta = EntryMeta { xattrs: row.meta.xattrs.clone(), target: None, ..m };
            rustix::fs::ftruncate(dst.as_fd(), 0).map_err(|e| CopyError::Write(e.into()))?;
            continue;
        }
        progress.failed(&abs, "changed while being copied; the copy may not be consistent");
        if let Some(a) = after {
            row.meta.size = a.size;
            row.meta.mtime_ns = a.mtime_ns;
        }
        break (hash, copied);
    };
    if let Ok(st) = rustix::fs::fstat(dst.as_fd()) {
        row.meta.size = st.st_size as u64;
    }
    if let Err(e) = posix::apply_meta_fd(dst.as_fd(), &row.meta) {
        progress.failed(&abs, format!("cannot set metadata: {e}"));
    }
    row.blake3 = Some(hash);
    progress.copied(copied);
    Ok(Some(row))
}
