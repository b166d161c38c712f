//! Snapshots on destinations without hardlinks (S3, GCS, FTP, cloud drives):
//! content-addressed file bodies, the index, then the manifest.
//!
//! 1. Read the previous snapshot's index (cached locally) and the journal of
//!    an interrupted run: together they say which contents the destination
//!    already holds.
//! 2. Walk the sources ([`SourceWalk`]): an unchanged file takes its previous
//!    location without being read; other files are hashed, and only content
//!    the destination lacks is uploaded: small files packed together, large
//!    ones streamed as their own objects, `threads` uploads at once.
//! 3. Upload `index.sqlite`, then `snapshot.json`: the snapshot exists once the
//!    manifest does, and everything it references was stored before it.
//!
//! A run that fails leaves no manifest, so no snapshot; what it stored is in
//! the journal, and the next run does not upload it again.

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::mpsc::sync_channel;

use hindsight_fs::index::{INDEX_FILE, IndexEntry, IndexWriter};
use hindsight_fs::remote::ObjectWriter;
use hindsight_fs::remote::RemoteStore;
use hindsight_fs::remote::Upload;
use hindsight_fs::remote::{Journal, Known, SMALL_FILE, StoredAt, blob_key, new_pack_key};
use hindsight_fs::{Manifest, SnapshotStats, Structure};

use super::change::unchanged;
use super::commit::{self, SnapshotInfo};
use super::copy::{CopyError, copy_stream, hash_fd};
use super::index_thread::write_index;
use super::progress::{Cancel, Progress};
use super::remote_run::{RemoteRun, previous};
use super::source_walk::{FirstName, SourceFile, SourceWalk, Stored, StreamFile, StreamSink, open_file};
use super::spec::{BackupError, BackupSpec, Row};

/// Bytes read from a file per request of a streamed upload.
const READ_CHUNK: usize = 4 << 20;

/// Makes one content-addressed snapshot of `spec` on `store`; `cache` is this
/// destination's local cache directory (indexes, journal, lock).
pub(crate) fn run_remote(
    store: &RemoteStore,
    cache: &Path,
    spec: &BackupSpec,
    progress: &Progress,
    cancel: &Cancel,
) -> Result<Manifest, BackupError> {
    let run = RemoteRun::begin(store, cache, &spec.job, &spec.sources)?;
    let name = run.name.clone();
    let prev = previous(store, cache, &spec.job, &run);
    let mut known = Known::default();
    if let Some((_, index)) = &prev {
        index.for_each(|e| {
            if let (Some(hash), Some(key)) = (e.blake3, e.location.blob) {
                known.insert(hash, StoredAt { key, offset: e.location.data_offset.unwrap_or(0) as u64 });
            }
            Ok(())
        })?;
    }
    let journal_path = run.local.job_dir(&spec.job).join("journal");
    let resumed = load_journal(store, &journal_path, &mut known)?;
    if resumed > 0 {
        tracing::info!(job = %spec.job, "reusing {resumed} contents stored by an interrupted run");
    }
    match Journal::started(&journal_path).and_then(|keys| store.remove_stray_uploads(&keys)) {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(job = %spec.job, "removed {n} temporary objects of uploads an interrupted run cut short")
        }
        // Only space is at stake: the backup goes on.
        Err(e) => tracing::warn!(job = %spec.job, "cannot remove what an interrupted run's uploads left: {e}"),
    }
    let journal = Journal::open(&journal_path)?;

    let index = IndexWriter::create(&run.work.join(INDEX_FILE), Structure::Incremental.as_str(), &name)?;
    let threads = store.config().threads();
    let sink = BlobSink {
        store,
        progress,
        known,
        journal,
        pack: Pack::new(),
        inflight: VecDeque::new(),
        max_inflight: threads.clamp(1, 8),
        pack_size: store.config().pack_size(),
        stored_bytes: 0,
    };

    let clock = std::time::Instant::now();
    let (row_tx, row_rx) = sync_channel::<Vec<Row>>(8);
    let prev_index = prev.as_ref().map(|(_, i)| i);
    let (walked, index_result) = std::thread::scope(|s| {
        let indexer = s.spawn(move || write_index(index, row_rx, None));
        let walked = SourceWalk::new(spec, progress, cancel, sink, prev_index, row_tx).run();
        let index_result = indexer.join().unwrap_or(Err(BackupError::IndexStopped));
        (walked, index_result)
    });
    let mut sink = walked?;
    let (index, stats) = index_result?;
    sink.finish()?;
    if cancel.is_cancelled() {
        return Err(BackupError::Cancelled);
    }
    index.finish()?;
    let info = SnapshotInfo {
        spec,
        name: &name,
        structure: Structure::Incremental,
        started: run.started,
        parent: prev.as_ref().map(|(n, _)| n.clone()),
        stats: SnapshotStats { bytes_stored: sink.stored_bytes, ..stats },
        progress,
        sequence: run.sequence,
    };
    let manifest = commit::manifest(&info, &run.work.join(INDEX_FILE))?;
    // The commit point: nothing the snapshot references is missing once the manifest exists.
    run.publish(store, &format!("{}/{name}", spec.job), &manifest)?;
    run.keep(&spec.job, &manifest)?;
    sink.journal.remove()?;
    tracing::info!(
        job = %spec.job,
        "snapshot {name} complete on {store:?}: {} bytes stored, {:.2}s",
        sink.stored_bytes,
        clock.elapsed().as_secs_f64()
    );
    Ok(manifest)
}

/// Adds what an interrupted run stored (and is still there) to `known`; returns how many.
fn load_journal(store: &RemoteStore, path: &Path, known: &mut Known) -> Result<usize, BackupError> {
    let entries = Journal::read(path)?;
    let mut present = std::collections::HashMap::new();
    let mut n = 0;
    for (hash, stored) in entries {
        let exists = match present.get(&stored.key) {
            Some(e) => *e,
            None => {
                let e = store.size(&stored.key)?.is_some();
                present.insert(stored.key.clone(), e);
                e
            }
        };
        if exists {
            known.insert(hash, stored);
            n += 1;
        }
    }
    Ok(n)
}

/// Small file bodies collected into one object.
struct Pack {
    key: String,
    data: Vec<u8>,
    items: Vec<([u8; 32], StoredAt)>,
}

impl Pack {
    fn new() -> Self {
        Pack { key: new_pack_key(), data: Vec::new(), items: Vec::new() }
    }
}

/// An upload under way, with what to journal once it is done.
type Inflight = (Upload, Vec<([u8; 32], StoredAt)>, u64);

/// Stores file bodies by content and locates them in the index rows.
struct BlobSink<'a> {
    store: &'a RemoteStore,
    progress: &'a Progress,
    known: Known,
    journal: Journal,
    pack: Pack,
    inflight: VecDeque<Inflight>,
    max_inflight: usize,
    /// A pack is sealed and uploaded at this size.
    pack_size: usize,
    stored_bytes: u64,
}

impl BlobSink<'_> {
    /// Points `row` at stored content.
    fn locate(row: &mut IndexEntry, hash: [u8; 32], stored: &StoredAt) {
        row.blake3 = Some(hash);
        row.location.blob = Some(stored.key.clone());
        row.location.data_offset = Some(stored.offset as i64);
    }

    /// Waits for the oldest uploads until fewer than `max` are running.
    fn drain(&mut self, max: usize) -> Result<(), BackupError> {
        while self.inflight.len() > max {
            let Some((upload, items, bytes)) = self.inflight.pop_front() else { break };
            upload.wait()?;
            self.journal.record(&items)?;
            self.stored_bytes += bytes;
        }
        Ok(())
    }

    /// Starts the upload of the current pack.
    fn seal_pack(&mut self) -> Result<(), BackupError> {
        if self.pack.items.is_empty() {
            return Ok(());
        }
        let pack = std::mem::replace(&mut self.pack, Pack::new());
        self.journal.start(&pack.key)?;
        let bytes = pack.data.len() as u64;
        let upload = self.store.write_detached(&pack.key, pack.data)?;
        self.inflight.push_back((upload, pack.items, bytes));
        self.drain(self.max_inflight)
    }

    /// Uploads everything still pending.
    fn finish(&mut self) -> Result<(), BackupError> {
        self.seal_pack()?;
        self.drain(0)
    }

    /// A small file: read whole, hashed, packed unless its content is stored already.
    fn small(&mut self, fd: &OwnedFd, size: u64, row: &mut IndexEntry) -> std::io::Result<Stored> {
        let mut data = Vec::with_capacity(size as usize);
        std::fs::File::from(fd.try_clone()?).take(size).read_to_end(&mut data)?;
        Ok(self.small_data(data, row))
    }

    /// A small body in memory: packed unless its content is stored already.
    fn small_data(&mut self, data: Vec<u8>, row: &mut IndexEntry) -> Stored {
        let hash = *blake3::hash(&data).as_bytes();
        row.meta.size = data.len() as u64;
        if let Some(s) = self.known.get(&hash).cloned() {
            Self::locate(row, hash, &s);
            self.progress.linked();
            return Stored::Reused;
        }
        let stored = StoredAt { key: self.pack.key.clone(), offset: self.pack.data.len() as u64 };
        self.pack.data.extend_from_slice(&data);
        self.pack.items.push((hash, stored.clone()));
        self.known.insert(hash, stored.clone());
        Self::locate(row, hash, &stored);
        self.progress.copied(data.len() as u64);
        Stored::New
    }

    /// A stream whose length is known at its end: a small one is packed; a
    /// large one is uploaded as an object of its own while it is hashed, and
    /// removed again when the destination held that content already.
    fn stream_body(&mut self, f: StreamFile<'_>, row: &mut IndexEntry) -> Result<Stored, BackupError> {
        let mut head = Vec::new();
        if let Err(e) = f.src.take(SMALL_FILE).read_to_end(&mut head) {
            self.progress.failed(f.abs, format!("{}: {e}", f.what));
            return Ok(Stored::Skipped);
        }
        // Shorter than the limit: the stream ended, and ended well.
        if (head.len() as u64) < SMALL_FILE {
            row.meta.size = head.len() as u64;
            let stored = self.small_data(head, row);
            if self.pack.data.len() >= self.pack_size {
                self.seal_pack()?;
            }
            return Ok(stored);
        }
        let key = new_pack_key();
        self.journal.start(&key)?;
        let mut w = ObjectWriter::create_whole(self.store, &key)?;
        let mut sent: Result<(), hindsight_fs::FsError> = Ok(());
        let mut chained = std::io::Cursor::new(head).chain(f.src);
        let copied = copy_stream(
            &mut chained,
            |b| {
                sent = w.send(b.to_vec());
                sent.as_ref().map_err(|_| std::io::Error::other("upload failed")).copied()
            },
            f.stopped,
        );
        // The destination's own error, when it is what stopped the copy.
        sent?;
        let (hash, size) = match copied {
            Ok(done) => done,
            // Dropped unclosed, the upload is aborted: nothing of it stays.
            Err(CopyError::Cancelled) => return Err(BackupError::Cancelled),
            Err(CopyError::Read(e) | CopyError::Write(e)) => {
                drop(w);
                self.progress.failed(f.abs, format!("{}: {e}", f.what));
                return Ok(Stored::Skipped);
            }
        };
        w.close()?;
        row.meta.size = size;
        if let Some(s) = self.known.get(&hash).cloned() {
            if let Err(e) = self.store.delete(&key) {
                tracing::warn!("{}: the copy of stored content stays in {key} until the next prune: {e}", f.what);
            }
            Self::locate(row, hash, &s);
            self.progress.linked();
            return Ok(Stored::Reused);
        }
        let stored = StoredAt { key, offset: 0 };
        self.journal.record(&[(hash, stored.clone())])?;
        self.stored_bytes += size;
        self.known.insert(hash, stored.clone());
        Self::locate(row, hash, &stored);
        self.progress.copied(size);
        Ok(Stored::New)
    }

    /// A large file: hashed, then streamed to its own object unless stored already.
    fn large(&mut self, fd: &OwnedFd, size: u64, row: &mut IndexEntry, abs: &[u8]) -> Result<Stored, BackupError> {
        let hash = match hash_fd(fd, size) {
            Ok(h) => h,
            Err(e) => {
                self.progress.failed(abs, format!("read failed: {e}"));
                return Ok(Stored::Skipped);
            }
        };
        if let Some(s) = self.known.get(&hash).cloned() {
            Self::locate(row, hash, &s);
            self.progress.linked();
            return Ok(Stored::Reused);
        }
        let key = blob_key(&hash);
        let stored = StoredAt { key: key.clone(), offset: 0 };
        if self.store.size(&key)? == Some(size) {
            self.known.insert(hash, stored.clone());
            Self::locate(row, hash, &stored);
            self.progress.linked();
            return Ok(Stored::Reused);
        }
        self.journal.start(&key)?;
        match self.upload(fd, size, &key, &hash)? {
            true => {
                self.journal.record(&[(hash, stored.clone())])?;
                self.stored_bytes += size;
                self.known.insert(hash, stored.clone());
                Self::locate(row, hash, &stored);
                self.progress.copied(size);
                Ok(Stored::New)
            }
            false => {
                self.progress.failed(abs, "changed while being stored; left out of this snapshot");
                Ok(Stored::Skipped)
            }
        }
    }

    /// Streams `size` bytes of `fd` to `key`; false (and nothing stored) when
    /// the bytes no longer hash to `hash`.
    fn upload(&mut self, fd: &OwnedFd, size: u64, key: &str, hash: &[u8; 32]) -> Result<bool, BackupError> {
        let mut w = ObjectWriter::create_whole(self.store, key)?;
        let mut hasher = blake3::Hasher::new();
        let mut off = 0u64;
        while off < size {
            let mut buf = vec![0u8; READ_CHUNK.min((size - off) as usize)];
            let n = match rustix::io::pread(fd, &mut buf, off) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.truncate(n);
            hasher.update(&buf);
            off += n as u64;
            w.send(buf)?;
        }
        if off != size || hasher.finalize().as_bytes() != hash {
            // Never leave other bytes under a content address: dropped unclosed, the upload is aborted.
            drop(w);
            return Ok(false);
        }
        w.close()?;
        Ok(true)
    }
}

impl StreamSink for BlobSink<'_> {
    fn dir(&mut self, _path: &[u8], _row: &mut IndexEntry) -> Result<(), BackupError> {
        Ok(())
    }

    fn special(&mut self, _path: &[u8], _row: &mut IndexEntry) -> Result<(), BackupError> {
        Ok(())
    }

    fn hardlink(&mut self, _path: &[u8], _first: &FirstName, _row: &mut IndexEntry) -> Result<(), BackupError> {
        Ok(())
    }

    fn stores_streams(&self) -> bool {
        true
    }

    fn stream(&mut self, f: StreamFile<'_>, row: &mut IndexEntry) -> Result<Stored, BackupError> {
        self.stream_body(f, row)
    }

    fn file(&mut self, f: SourceFile<'_>, r: &mut IndexEntry) -> Result<Stored, BackupError> {
        // Equal ctime and metadata: the inode has not changed, xattrs included.
        if let Some(p) = f.prev.filter(|p| p.location.blob.is_some() && p.blake3.is_some())
            && unchanged(&r.meta, &p.meta)
        {
            r.meta.xattrs = p.meta.xattrs.clone();
            r.location = p.location.clone();
            r.blake3 = p.blake3;
            self.progress.linked();
            return Ok(Stored::Reused);
        }
        let Some(fd) = open_file(&f, r, self.progress) else { return Ok(Stored::Skipped) };
        if let Some(p) = f.prev.filter(|p| p.location.blob.is_some() && p.blake3.is_some())
            && r.meta.unchanged_from(&p.meta)
        {
            r.location = p.location.clone();
            r.blake3 = p.blake3;
            self.progress.linked();
            return Ok(Stored::Reused);
        }
        let size = r.meta.size;
        if size < SMALL_FILE {
            let outcome = match self.small(&fd, size, r) {
                Ok(o) => o,
                Err(e) => {
                    self.progress.failed(f.abs, format!("read failed: {e}"));
                    return Ok(Stored::Skipped);
                }
            };
            if self.pack.data.len() >= self.pack_size {
                self.seal_pack()?;
            }
            return Ok(outcome);
        }
        self.large(&fd, size, r, f.abs)
    }
}
