//! The index thread of a backup: rows come in batches from the walker and
//! the copy threads ([`RowQueue`]), go into the snapshot's `index.sqlite`
//! ([`write_index`]) and are tallied into its stats. A leaf of the engines.

use std::sync::mpsc::{Receiver, SyncSender};

use hindsight_fs::EntryKind;
use hindsight_fs::SnapshotStats;
use hindsight_fs::archive::FileHash;
use hindsight_fs::index::{IndexEntry, IndexWriter};

use super::pending_hashes::PendingHashes;
use super::spec::{BackupError, Row};

/// Index rows per message to the index thread.
pub(super) const ROW_BATCH: usize = 512;

/// Index rows on their way to the index thread, sent in batches: one channel
/// message per row would cost a thread wake-up per entry.
pub(super) struct RowQueue {
    tx: SyncSender<Vec<Row>>,
    pending: Vec<Row>,
}

impl RowQueue {
    /// A queue sending to `tx`; the channel closes when the queue is dropped.
    pub(super) fn new(tx: SyncSender<Vec<Row>>) -> Self {
        RowQueue { tx, pending: Vec::with_capacity(ROW_BATCH) }
    }

    /// Queues a row (`added` when its data is new in this snapshot).
    pub(super) fn push(&mut self, entry: IndexEntry, added: bool) -> Result<(), BackupError> {
        self.pending.push(Row { entry, added });
        if self.pending.len() >= ROW_BATCH { self.flush() } else { Ok(()) }
    }

    /// Hands the queued rows to the index thread.
    pub(super) fn flush(&mut self) -> Result<(), BackupError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(ROW_BATCH));
        self.tx.send(batch).map_err(|_| BackupError::IndexStopped)
    }
}

/// The index thread: inserts rows as they come and tallies the snapshot's stats;
/// rows of files hashed by an archive writer wait for their hash from `hashes`.
pub(super) fn write_index(
    mut index: IndexWriter,
    batches: Receiver<Vec<Row>>,
    hashes: Option<Receiver<FileHash>>,
) -> Result<(IndexWriter, SnapshotStats), BackupError> {
    let mut stats = SnapshotStats::default();
    let mut pending = PendingHashes::new(hashes);
    let mut ready = Vec::new();
    for batch in batches {
        for row in batch {
            let e = &row.entry;
            stats.entries += 1;
            if e.meta.kind == EntryKind::File {
                stats.files += 1;
                stats.bytes += e.meta.size;
                if row.added {
                    stats.files_added += 1;
                    stats.bytes_added += e.meta.size;
                }
            }
            pending.admit(row, &mut ready);
        }
        pending.poll(&mut ready);
        for row in ready.drain(..) {
            index.insert(&row.entry)?;
        }
    }
    pending.finish(&mut ready);
    for row in ready {
        index.insert(&row.entry)?;
    }
    Ok((index, stats))
}
