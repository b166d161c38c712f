//! Index rows waiting for the hash of their file's data.
//!
//! Archives and ssh streams hash file data on the archive writer's thread
//! (`ArchiveWriter::hashes`), after the walk has sent the file's row. The
//! index thread parks such rows here and inserts them once the hash is in;
//! it never waits for a hash while rows still arrive, so a writer that lags
//! behind the walk cannot stall it.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;

use hindsight_fs::EntryKind;
use hindsight_fs::archive::FileHash;

use super::spec::Row;

/// Rows of one backup waiting for their hashes.
pub(super) struct PendingHashes {
    rx: Option<Receiver<FileHash>>,
    /// Rows waiting, by the id whose data they are (a hardlink's first name).
    waiting: HashMap<i64, Vec<Row>>,
    /// Hashes that came before their row.
    early: HashMap<i64, [u8; 32]>,
    /// Hashes of the first names of hardlink groups, for the later names.
    groups: HashMap<i64, [u8; 32]>,
}

impl PendingHashes {
    /// Rows take their hashes from `rx`; with `None` no row waits.
    pub(super) fn new(rx: Option<Receiver<FileHash>>) -> Self {
        PendingHashes { rx, waiting: HashMap::new(), early: HashMap::new(), groups: HashMap::new() }
    }

    /// Takes a row: into `ready` when it has its hash (or needs none), else parked.
    pub(super) fn admit(&mut self, row: Row, ready: &mut Vec<Row>) {
        let e = &row.entry;
        if self.rx.is_none() || e.meta.kind != EntryKind::File || e.blake3.is_some() {
            return ready.push(row);
        }
        let key = e.hardlink.unwrap_or(e.id);
        let known = self.early.remove(&key).or_else(|| self.groups.get(&key).copied());
        match known {
            Some(h) => self.give(row, h, ready),
            None => self.waiting.entry(key).or_default().push(row),
        }
    }

    /// Moves the rows whose hashes have arrived into `ready`, without waiting.
    pub(super) fn poll(&mut self, ready: &mut Vec<Row>) {
        while let Some(Ok(h)) = self.rx.as_ref().map(Receiver::try_recv) {
            self.arrived(h, ready);
        }
    }

    /// Waits for the hashes of every parked row (the writer has finished or
    /// stopped); rows whose hash never comes go into `ready` without one.
    pub(super) fn finish(mut self, ready: &mut Vec<Row>) {
        while !self.waiting.is_empty() {
            match self.rx.as_ref().map(Receiver::recv) {
                Some(Ok(h)) => self.arrived(h, ready),
                _ => break,
            }
        }
        ready.extend(self.waiting.into_values().flatten());
    }

    fn arrived(&mut self, (id, h): FileHash, ready: &mut Vec<Row>) {
        match self.waiting.remove(&id) {
            Some(rows) => {
                for row in rows {
                    self.give(row, h, ready);
                }
            }
            None => {
                self.early.insert(id, h);
            }
        }
    }

    /// Gives `row` its hash and makes it ready; the hash of a hardlink
    /// group's first name is kept for its later names.
    fn give(&mut self, mut row: Row, h: [u8; 32], ready: &mut Vec<Row>) {
        if row.entry.hardlink == Some(row.entry.id) {
            self.groups.insert(row.entry.id, h);
        }
        row.entry.blake3 = Some(h);
        ready.push(row);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use hindsight_fs::index::{IndexEntry, Location};
    use hindsight_fs::{EntryMeta, Xattrs};

    use super::*;

    fn file(id: i64, hardlink: Option<i64>) -> Row {
        let meta = EntryMeta {
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 1,
            mtime_ns: 0,
            atime_ns: 0,
            ctime_ns: 0,
            rdev: 0,
            target: None,
            xattrs: Xattrs::default(),
        };
        let entry = IndexEntry {
            id,
            parent: 1,
            name: vec![b'f'],
            meta,
            nlink: 1,
            blake3: None,
            hardlink,
            location: Location::default(),
        };
        Row { entry, added: true }
    }

    fn ids(rows: &[Row]) -> Vec<(i64, Option<u8>)> {
        rows.iter().map(|r| (r.entry.id, r.entry.blake3.map(|h| h[0]))).collect()
    }

    #[test]
    fn rows_get_their_hashes_early_or_late_and_hardlinks_share_them() {
        let (tx, rx) = channel();
        let mut p = PendingHashes::new(Some(rx));
        let mut ready = Vec::new();
        // A hash before its row, a row before its hash.
        tx.send((2, [2; 32])).expect("send");
        p.poll(&mut ready);
        p.admit(file(2, None), &mut ready);
        p.admit(file(3, Some(3)), &mut ready);
        p.admit(file(4, Some(3)), &mut ready);
        assert_eq!(ids(&ready), vec![(2, Some(2))]);
        tx.send((3, [3; 32])).expect("send");
        p.poll(&mut ready);
        // A later name after its first name's hash came.
        p.admit(file(5, Some(3)), &mut ready);
        p.admit(file(6, None), &mut ready);
        drop(tx);
        p.finish(&mut ready);
        let mut got = ids(&ready);
        got.sort();
        assert_eq!(got, vec![(2, Some(2)), (3, Some(3)), (4, Some(3)), (5, Some(3)), (6, None)]);
    }

    #[test]
    fn without_a_channel_nothing_waits() {
        let mut p = PendingHashes::new(None);
        let mut ready = Vec::new();
        p.admit(file(2, None), &mut ready);
        assert_eq!(ids(&ready), vec![(2, None)]);
    }
}
