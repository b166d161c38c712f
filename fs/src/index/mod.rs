//! The per-snapshot index: `index.sqlite`.
//!
//! One row per entry of the snapshot with its parent, its name as raw bytes
//! (names are not always UTF-8), its metadata, the blake3 of regular files, its
//! hardlink group and the location of its content for the snapshot's structure.
//! Entry ids are assigned so that the children of a directory have consecutive
//! ids, which keeps directory listings a range scan. Id [`ROOT_ID`] is the root of
//! the snapshot (`tree/` for incremental snapshots).
//!
//! The index is written once, by the backup that creates the snapshot, and is
//! immutable afterwards: readers open it read-only and immutable.

mod reader;
mod schema;
mod writer;

pub use reader::IndexReader;
pub use writer::IndexWriter;

use crate::entry::EntryMeta;

/// File name of the index inside a snapshot directory.
pub const INDEX_FILE: &str = "index.sqlite";

/// Id of the root entry.
pub const ROOT_ID: i64 = 1;

/// Where an entry's content lives, per structure. Incremental snapshots on POSIX
/// destinations need none of it: the content is `tree/<path>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Content-addressed destinations: the blob holding the body.
    pub blob: Option<String>,
    /// Offset of the body inside the blob or the uncompressed tar stream.
    pub data_offset: Option<i64>,
    /// Offset of the tar header of the entry.
    pub header_offset: Option<i64>,
    /// Compressed archives: the gzip member holding the first byte of the body.
    pub member: Option<i64>,
    /// POSIX destinations: inode number of the entry in `tree/` when the
    /// snapshot was made. Snapshots that hardlink one file share it, which is
    /// what lets the mount show one `st_ino` for the file in every snapshot.
    pub ino: Option<u64>,
}

/// One gzip member of a compressed archive: a row of table `members`, where it
/// lies in `data.tar.gz` and which bytes of the tar stream it inflates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Offset of the gzip member in `data.tar.gz`.
    pub compressed_offset: u64,
    /// Length of the gzip member in `data.tar.gz`.
    pub compressed_length: u64,
    /// Offset in the tar stream of its first byte.
    pub uncompressed_offset: u64,
    /// Bytes of tar stream it inflates to.
    pub uncompressed_length: u64,
}

/// One row of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Entry id (stable within the snapshot).
    pub id: i64,
    /// Parent directory's id (0 for the root).
    pub parent: i64,
    /// File name, raw bytes.
    pub name: Vec<u8>,
    /// Metadata.
    pub meta: EntryMeta,
    /// Number of names of this entry's hardlink group in the snapshot (1 when alone).
    pub nlink: u32,
    /// blake3 of the content (regular files).
    pub blake3: Option<[u8; 32]>,
    /// Id of the first entry of its hardlink group, when it has several names.
    pub hardlink: Option<i64>,
    /// Where the content is, per structure.
    pub location: Location,
}

impl IndexEntry {
    /// An entry as a walk first records it: one name, no content hash, no
    /// hardlink group and no location yet.
    pub fn new(id: i64, parent: i64, name: Vec<u8>, meta: EntryMeta) -> Self {
        IndexEntry { id, parent, name, meta, nlink: 1, blake3: None, hardlink: None, location: Location::default() }
    }
}
